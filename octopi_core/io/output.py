"""Write a result file (picks) to a local path or ``s3://`` through the same parser the gateway checked."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import fsspec

from octopi_core.exceptions import OutputNotWritableError

from .uri import parse_uri

__all__ = ["write_output", "check_output_writable"]


def check_output_writable(uri: str, *, local_roots: Sequence[str | os.PathLike] | None = None) -> None:
    """Refuse, before any work, a local output directory that cannot be created or written.

    The directory (or, when it does not exist yet, its nearest existing ancestor, where
    :func:`write_output` would create it) must be a directory this process may write and enter. ``s3://``
    outputs are not probed: that would take a write; their failures surface when the picks are written.

    Args:
        uri: the output directory: local path, ``file:///`` or ``s3://``.
        local_roots: directories it must resolve under (default None: anywhere).

    Raises:
        OutputNotWritableError: naming ``uri`` as given (not its resolved path) and the reason.
        UnsupportedUriError: ``uri`` does not parse (see :func:`octopi_core.io.uri.parse_uri`).
    """
    parsed = parse_uri(uri)
    if parsed.scheme != "file":
        return
    target = Path(os.path.realpath(parsed.path))
    if local_roots is not None and not any(_is_under(str(target), root) for root in local_roots):
        raise OutputNotWritableError(f"output_uri {uri!r} resolves outside the allowed local roots")
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputNotWritableError(f"output_uri {uri!r}: a path component is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputNotWritableError(f"output_uri {uri!r} is not writable by the service")


def write_output(
    uri: str,
    text: str,
    *,
    local_roots: Sequence[str | os.PathLike] | None = None,
    storage_options: dict | None = None,
) -> str:
    """Write ``text`` (UTF-8) to the file ``uri``, creating missing local directories.

    A local target is written at its real path, which must stay under ``local_roots``: a symlink already
    there (the file, or a directory above it) cannot send the write elsewhere.

    Args:
        uri: local path, ``file:///`` or ``s3://bucket/key`` of the file to write; an existing file is replaced.
        text: the content.
        local_roots: directories a local target must resolve under (default None: anywhere; an empty list
            refuses every local target).
        storage_options: fsspec options for ``s3://`` (e.g. ``client_kwargs.endpoint_url``).

    Returns:
        The URI written: the real local path, or the ``s3://`` URL.

    Raises:
        UnsupportedUriError: ``uri`` is not a plain local or s3 URI (see :func:`octopi_core.io.uri.parse_uri`).
        ValueError: ``uri`` is an http(s) URL.
        PermissionError: the local target resolves outside ``local_roots``.
        OSError: the file cannot be written.
    """
    parsed = parse_uri(uri)
    if parsed.scheme == "s3":
        fs = fsspec.filesystem("s3", **(storage_options or {}))
        with fs.open(parsed.url.removeprefix("s3://"), "w") as stream:
            stream.write(text)
        return parsed.url
    if parsed.scheme != "file":
        raise ValueError(f"uri must be a local path or s3:// URI to write to, got {uri!r}")
    target = os.path.realpath(parsed.path)
    if local_roots is not None and not any(_is_under(target, root) for root in local_roots):
        raise PermissionError(f"output {uri!r} resolves outside the allowed local roots")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    # O_NOFOLLOW: a symlink put at the target after the check above is refused, not followed.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)
    return target


def _is_under(path: str, root: str | os.PathLike) -> bool:
    real_root = Path(os.path.realpath(root))
    return Path(path) == real_root or Path(path).is_relative_to(real_root)
