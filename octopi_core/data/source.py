"""Open any data source from one spec: a copick config, a folder or prefix of tomograms, or a URI list."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from .copick import open_copick
from .folder import TOMOGRAM_SUFFIXES, open_folder
from .item import DataSource, SourceKind
from .uri_list import open_uri_list, read_uri_list

__all__ = ["open_source", "source_kind"]


def source_kind(spec: str | Sequence[str]) -> SourceKind:
    """The kind of source ``spec`` names, from its form alone (nothing is opened).

    - a list or tuple of strings: ``uris``;
    - a string ending ``.json``: ``copick`` (the project's config);
    - a string ending ``.txt``: ``uris`` (a file of them, one a line);
    - a string ending like a tomogram (``.zarr``, ``.ome.zarr``, ``.mrc``, ``.rec``, ``.map``): ``uris``;
    - any other string: ``folder``.

    Args:
        spec: as for :func:`open_source`.

    Returns:
        The kind.

    Raises:
        TypeError: when ``spec`` is neither a string nor a sequence of strings.
    """
    if not isinstance(spec, str):
        if isinstance(spec, Sequence) and all(isinstance(s, str) for s in spec):
            return SourceKind.URIS
        raise TypeError(f"spec must be a string or a list of strings; got {spec!r}")
    lower = spec.rstrip("/").lower()
    if lower.endswith(".json"):
        return SourceKind.COPICK
    if lower.endswith(".txt") or lower.endswith(TOMOGRAM_SUFFIXES):
        return SourceKind.URIS
    return SourceKind.FOLDER


def open_source(
    spec: str | Sequence[str],
    *,
    kind: SourceKind | str | None = None,
    tomo_type: str | None = None,
    voxel_size_a: float | None = None,
    picks_user: str | None = None,
    picks_session: str | None = None,
    with_truth: bool = True,
    storage_options: dict | None = None,
) -> DataSource:
    """Open a data source: its tomograms, each with its truth picks when the source has them.

    Args:
        spec: a copick config JSON, a folder or ``s3://`` prefix of tomograms, a ``.txt`` file of URIs, one
            tomogram URI, or a list of tomogram URIs.
        kind: the :class:`SourceKind` or its string (``copick``, ``folder``, ``uris``); default None: from
            the form of ``spec`` (:func:`source_kind`).
        tomo_type: copick only: the tomogram type (``wbp``, ``denoised``, ...); None: the only one there is.
        voxel_size_a: copick: the voxel spacing to use, Å (None: the only one); folder and URIs: the voxel
            size of the tomograms, Å, when known (None: their headers').
        picks_user: copick only: whose picks are the truth (None: any).
        picks_session: copick only: which session's (None: any).
        with_truth: read the truth picks (default True); False lists tomograms only (e.g. to predict).
        storage_options: fsspec options for ``s3://``.

    Returns:
        The source: a :class:`~octopi_core.data.copick.CopickSource` (it also writes picks) for ``copick``,
        else a :class:`DataSource`.

    Raises:
        DataSourceError, AmbiguousDataError: as :func:`open_copick`, :func:`open_folder`, :func:`open_uri_list`.
        PicksFormatError: for a picks file that cannot be read.
        TypeError: for a ``spec`` of the wrong type.
        ValueError: for an unknown ``kind``, or a ``voxel_size_a`` outside the cryo-ET range.
    """
    if kind is None:
        kind = source_kind(spec)
    try:
        kind = SourceKind(str(getattr(kind, "value", kind)).strip().lower())
    except ValueError:
        allowed = ", ".join(k.value for k in SourceKind)
        raise ValueError(f"kind must be one of {allowed}; got {kind!r}") from None
    if kind is SourceKind.COPICK:
        if not isinstance(spec, str):
            raise TypeError(f"a copick source is the URI of its config JSON; got {spec!r}")
        return open_copick(
            spec,
            tomo_type=tomo_type,
            voxel_size_a=voxel_size_a,
            picks_user=picks_user,
            picks_session=picks_session,
            with_truth=with_truth,
            storage_options=storage_options,
        )
    ignored = [
        n
        for n, v in (("tomo_type", tomo_type), ("picks_user", picks_user), ("picks_session", picks_session))
        if v is not None
    ]
    if ignored:
        warnings.warn(
            f"{', '.join(ignored)} apply to copick projects only; ignored for a {kind.value} source",
            stacklevel=2,
        )
    if kind is SourceKind.FOLDER:
        if not isinstance(spec, str):
            raise TypeError(f"a folder source is one folder URI; got {spec!r}")
        return open_folder(
            spec, voxel_size_a=voxel_size_a, with_truth=with_truth, storage_options=storage_options
        )
    if isinstance(spec, str):
        is_list_file = spec.rstrip("/").lower().endswith(".txt")
        spec = read_uri_list(spec, storage_options=storage_options) if is_list_file else [spec]
    return open_uri_list(spec, voxel_size_a=voxel_size_a)
