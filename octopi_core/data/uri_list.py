"""A list of tomogram URIs as a data source: unlabelled items, named by :func:`run_name_from_uri`."""

from __future__ import annotations

from collections.abc import Sequence

from octopi_core.exceptions import DataSourceError

from ._store import _open_store
from .item import DataItem, DataSource, SourceKind, _check_voxel_size, _run_name

__all__ = ["open_uri_list", "read_uri_list"]


def read_uri_list(uri: str, *, storage_options: dict | None = None) -> list[str]:
    """Read a text file of tomogram URIs: one a line, blank lines and ``#`` comments skipped.

    Args:
        uri: local path or ``s3://`` URI of the file.
        storage_options: fsspec options for ``s3://``.

    Returns:
        The URIs, in file order.

    Raises:
        DataSourceError: when the file cannot be read.
    """
    store = _open_store(uri, storage_options, "URI list")
    try:
        text = store.read_text(store.path)
    except (OSError, UnicodeDecodeError) as e:
        raise DataSourceError(f"URI list {uri!r} cannot be read: {e}") from e
    return [s for line in text.splitlines() if (s := line.split("#", 1)[0].strip())]


def open_uri_list(uris: Sequence[str], *, voxel_size_a: float | None = None) -> DataSource:
    """Make a source of ``uris``, one unlabelled item each (nothing is opened).

    Args:
        uris: tomogram URIs (local path, ``file://``, ``http(s)://``, ``s3://``).
        voxel_size_a: the items' voxel size, Å, when the caller knows it (default None: the headers').

    Returns:
        The source, items in the given order.

    Raises:
        DataSourceError: for an empty list, or two URIs with the same run name (their outputs would collide).
        TypeError: when ``uris`` is a string or holds a non-string.
        ValueError: for a ``voxel_size_a`` outside the cryo-ET range.
    """
    if isinstance(uris, str) or not all(isinstance(u, str) for u in uris):
        raise TypeError(f"uris must be a list of strings; got {uris!r}")
    _check_voxel_size(voxel_size_a)
    if not uris:
        raise DataSourceError("the URI list is empty")
    source = DataSource(spec=f"{len(uris)} URIs", kind=SourceKind.URIS)
    seen: dict[str, str] = {}
    for uri in uris:
        name = _run_name(uri)
        if name in seen:
            raise DataSourceError(f"URIs {seen[name]!r} and {uri!r} have the same run name {name!r}")
        seen[name] = uri
        source.items.append(DataItem(run_name=name, tomogram_uri=uri, voxel_size_a=voxel_size_a))
    return source
