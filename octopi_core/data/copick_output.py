"""A copick project as the service's output: checked when a job is submitted, written when its picks are ready.

The gateway calls :func:`copick_root_uris` (to put the roots through its URI policy before anything is listed)
and :func:`open_copick_output`; the worker calls :func:`write_copick_output`, which checks again. Picks land in
the overlay root as ``ExperimentRuns/<run>/Picks/<user>_<session>_<object>.json``. Without a session asked
for, a new one is taken when writing (one past the user's largest), so no job replaces another's picks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from octopi_core.exceptions import DataSourceError, OutputNotWritableError, PicksExistError, UnknownRunError
from octopi_core.io import check_output_writable
from octopi_core.picks import PicksDocument

from ._store import _open_store, _Store
from .copick import CopickSource, _check_name, _read_config, _root_store, open_copick

__all__ = ["copick_root_uris", "open_copick_output", "copick_output_classes", "write_copick_output"]

_NEW_SESSION_TRIES = 5  # another writer may take the same new session between listing and writing


def copick_root_uris(config_uri: str, *, storage_options: dict | None = None) -> list[str]:
    """The overlay root and, when the project has one, the static root of a copick config; nothing is listed.

    Args:
        config_uri: local path or ``s3://`` URI of the project's config JSON.
        storage_options: fsspec options for ``s3://`` (the service's own).

    Returns:
        Local paths (a relative ``local://`` root taken from the config's folder) or ``s3://`` URIs.

    Raises:
        DataSourceError: for an unreadable config, an unsupported root, or an ``s3://`` root whose config
            sets ``*_fs_args`` (a service uses its own S3 settings, never the project's endpoint or keys).
    """
    return [store.uri for store in _roots(config_uri, storage_options)]


def open_copick_output(
    config_uri: str,
    run_name: str,
    *,
    user: str = "octopi",
    session: str | None = None,
    local_roots: Sequence[str | os.PathLike] | None = None,
    storage_options: dict | None = None,
) -> CopickSource:
    """Open a copick project to write picks into its run ``run_name``, refusing what the write would refuse.

    Args:
        config_uri: local path or ``s3://`` URI of the project's config JSON.
        run_name: a run of the project (a folder under ``ExperimentRuns/``).
        user: copick user id of the picks (default ``octopi``).
        session: copick session id; None: a new one, taken when writing.
        local_roots: directories the local roots must resolve under (default None: anywhere).
        storage_options: fsspec options for ``s3://`` (the service's own).

    Returns:
        The project, opened without choosing a tomogram (no items).

    Raises:
        DataSourceError: as :func:`copick_root_uris`, or a static root outside ``local_roots``.
        OutputNotWritableError: a local overlay root outside ``local_roots``, or one the process cannot write.
        UnknownRunError: the project has no run ``run_name``.
        PicksExistError: ``session`` has picks of ``user`` in that run already.
        ValueError: for a user or session id copick would refuse.
    """
    _check_name(user, "user")
    if session is not None:
        _check_name(session, "session")
    overlay, *static = _roots(config_uri, storage_options)
    if overlay.scheme == "local":  # created when missing, as copick does
        try:
            check_output_writable(overlay.path, local_roots=local_roots)
        except OutputNotWritableError as e:
            raise OutputNotWritableError(f"overlay_root of copick config {config_uri!r}: {e}") from e
    if static and static[0].scheme == "local" and local_roots is not None:
        if not _is_under(static[0].path, local_roots):
            raise DataSourceError(f"copick config {config_uri!r}: its static_root is outside the local roots")
    source = open_copick(config_uri, with_truth=False, with_tomograms=False, storage_options=storage_options)
    if run_name not in source.all_runs:
        raise UnknownRunError(
            f"copick project {config_uri!r} has no run {run_name!r}; runs: {source.all_runs}"
        )
    if session is not None and (user, session) in source.picks_sessions(run_name):
        raise PicksExistError(
            f"run {run_name!r} of {config_uri!r} has picks of user {user!r}, session {session!r}; "
            "leave out the session for a new one"
        )
    return source


def copick_output_classes(
    source: CopickSource, asked: Sequence[str] | None, available: Sequence[str]
) -> list[str]:
    """The classes to pick into a copick project: those asked for, or every available one it has an object for.

    Args:
        source: the opened project.
        asked: canonical class names asked for; None: all of ``available``.
        available: the canonical class names the model picks.

    Returns:
        The class names, sorted.

    Raises:
        DataSourceError: an asked class, or every available one, has no pickable object in the project.
    """
    project = {cls for cls in source.objects.values() if cls is not None}
    names = sorted(set(asked) if asked is not None else {c for c in available if c in project})
    absent = [name for name in names if name not in project]
    if absent or not names:
        raise DataSourceError(
            f"copick project {source.config_uri!r} has no pickable object for {absent or 'any class picked'}; "
            f"its classes: {sorted(project)}"
        )
    return names


def write_copick_output(
    doc: PicksDocument,
    config_uri: str,
    *,
    user: str = "octopi",
    session: str | None = None,
    local_roots: Sequence[str | os.PathLike] | None = None,
    storage_options: dict | None = None,
) -> list[str]:
    """Write ``doc`` into its run (``doc.run_name``) of a copick project, one picks file per class.

    Args:
        doc: the picks (xyz, Å); every class must be a pickable object of the project.
        config_uri, user, local_roots, storage_options: as for :func:`open_copick_output`.
        session: copick session id; None: a new one (one past the user's largest), taken again if another
            writer takes it first.

    Returns:
        The URIs written.

    Raises:
        DataSourceError, OutputNotWritableError, UnknownRunError, ValueError: as for :func:`open_copick_output`.
        PicksExistError: ``session`` has picks already (or no new session could be taken); nothing is written.
    """
    for _ in range(_NEW_SESSION_TRIES):
        source = open_copick_output(
            config_uri,
            doc.run_name,
            user=user,
            session=session,
            local_roots=local_roots,
            storage_options=storage_options,
        )
        try:
            return source.write_picks(
                doc.run_name, doc, user=user, session=session or source.next_session_id(user)
            )
        except PicksExistError:
            if session is not None:
                raise
    raise PicksExistError(f"no new session of user {user!r} could be taken in {config_uri!r}; try again")


def _roots(config_uri: str, storage_options: dict | None) -> list[_Store]:
    # The overlay root, then the static root if any; project fs_args are refused before any S3 request.
    config_store = _open_store(config_uri, storage_options, "copick config")
    config = _read_config(config_store)
    roots = []
    for which in ("overlay", "static"):
        root = str(config.get(f"{which}_root") or "")
        if not root:
            continue
        scheme = root.partition("://")[0] if "://" in root else "local"
        if scheme not in ("local", "file") and config.get(f"{which}_fs_args"):
            raise DataSourceError(
                f"copick config {config_uri!r}: {which}_fs_args are not used here (the service's own S3 "
                "settings are); remove them"
            )
        roots.append(_root_store(config, which, config_store, storage_options))
    return roots


def _is_under(path: str, roots: Sequence[str | os.PathLike]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == Path(os.path.realpath(r)) or real.is_relative_to(os.path.realpath(r)) for r in roots)
