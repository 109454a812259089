"""A folder (or ``s3://`` prefix) of tomograms as a data source, each with an optional picks file of its stem.

``TS_1.zarr`` (or ``.ome.zarr``, ``.mrc``, ``.rec``, ``.map``) is labelled by one of ``TS_1.picks.json``,
``TS_1.picks.csv``, ``TS_1.picks.star``, ``TS_1.picks.ndjson`` (``.jsonl``), ``TS_1.picks.copick.json``, the
same without ``.picks`` (``TS_1.csv``), or a folder ``TS_1.picks/`` of copick picks files: what
``octopi-serve predict`` writes, read by :func:`octopi_core.export.read_picks`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from octopi_core.exceptions import AmbiguousDataError, DataSourceError
from octopi_core.export import read_picks
from octopi_core.export.formats import SUFFIX_FORMATS
from octopi_core.io import open_tomogram
from octopi_core.picks import PicksDocument

from ._store import _open_store, _Store
from .item import DataItem, DataSource, SourceKind, _check_voxel_size, _run_name

__all__ = ["TOMOGRAM_SUFFIXES", "open_folder"]

TOMOGRAM_SUFFIXES = (".ome.zarr", ".zarr", ".mrc", ".rec", ".map")


def open_folder(
    uri: str,
    *,
    voxel_size_a: float | None = None,
    with_truth: bool = True,
    storage_options: dict | None = None,
) -> DataSource:
    """List the tomograms directly in ``uri`` and read the picks file of each one's stem.

    Args:
        uri: local folder or ``s3://`` prefix (not recursive; hidden entries skipped).
        voxel_size_a: the tomograms' voxel size, Å, when the caller knows it; also converts picks files in
            voxels that give none (STAR, NDJSON). Default None: each labelled tomogram's header is read
            (metadata only) for it.
        with_truth: read the picks files (default True); False lists tomograms only.
        storage_options: fsspec options for ``s3://``.

    Returns:
        The source, one item per tomogram in stem order; picks files with no tomogram are noted.

    Raises:
        DataSourceError: when the folder does not exist or holds no tomograms, or a picks file holds several runs.
        AmbiguousDataError: two tomograms or two picks files of one stem.
        PicksFormatError: for a picks file that cannot be read (as :func:`~octopi_core.export.read_picks`).
        TomogramError: when a labelled tomogram's header cannot be read for its voxel size.
        ValueError: for a ``voxel_size_a`` outside the cryo-ET range.
    """
    _check_voxel_size(voxel_size_a)
    store = _open_store(uri, storage_options, "folder")
    entries = store.names(store.path)
    if not entries and not store.exists(store.path):
        raise DataSourceError(f"folder {uri!r} does not exist")
    tomograms: dict[str, list[str]] = {}
    picks: dict[str, list[tuple[str, bool]]] = {}
    for name, is_dir in entries:
        if name.startswith("."):
            continue
        if name.lower().endswith(TOMOGRAM_SUFFIXES):
            tomograms.setdefault(_run_name(name), []).append(name)
        elif (stem := _picks_stem(name, is_dir)) is not None:
            picks.setdefault(stem, []).append((name, is_dir))
    if not tomograms:
        raise DataSourceError(f"folder {uri!r} holds no tomograms ({', '.join(TOMOGRAM_SUFFIXES)})")
    source = DataSource(spec=uri, kind=SourceKind.FOLDER)
    for stem in sorted(tomograms):
        if len(tomograms[stem]) > 1:
            raise AmbiguousDataError(
                f"folder {uri!r}: tomograms {tomograms[stem]} share the run name {stem!r}"
            )
        tomogram_uri = store.uri_of(store.join(tomograms[stem][0]))
        found = picks.pop(stem, [])
        if len(found) > 1:
            names = [n for n, _ in found]
            raise AmbiguousDataError(f"folder {uri!r}: several picks files for {stem!r}: {names}; keep one")
        truth, size_a = None, voxel_size_a
        if found and with_truth:
            if size_a is None:
                with open_tomogram(tomogram_uri, storage_options=storage_options) as tomogram:
                    size_a = float(tomogram.voxel_size_zyx_a[2])
            truth = _read_truth(store, stem, tomogram_uri, *found[0], size_a)
        uris = (store.uri_of(store.join(found[0][0])),) if truth is not None else ()
        source.items.append(DataItem(stem, tomogram_uri, size_a, truth, uris))
    orphans = sorted(n for names in picks.values() for n, _ in names if ".picks" in n.lower())
    if orphans:
        source._note(f"picks files without a tomogram of their stem, not used: {', '.join(orphans)}")
    return source


def _picks_stem(name: str, is_dir: bool) -> str | None:
    """The tomogram stem a picks entry labels (``TS_1.picks.csv`` -> ``TS_1``), None if it is no picks entry."""
    lower = name.lower()
    if is_dir:
        return name[: -len(".picks")] if lower.endswith(".picks") else None
    suffix = next((s for s in SUFFIX_FORMATS if lower.endswith(s)), None)
    if suffix is None:
        return None
    stem = name[: -len(suffix)]
    for marker in (".copick", ".picks"):
        if stem.lower().endswith(marker):
            stem = stem[: -len(marker)]
    return stem or None


def _read_truth(
    store: _Store, stem: str, tomogram_uri: str, name: str, is_dir: bool, voxel_size_a: float
) -> PicksDocument:
    with tempfile.TemporaryDirectory() as tmp:
        path = store.join(name)
        if store.scheme != "local":  # the picks readers take local files: fetch the few kB first
            store.fs.get(path, f"{tmp}/{name}", recursive=is_dir)
            path = f"{tmp}/{name}"
        docs = read_picks(Path(path), run_name=stem, voxel_size_a=voxel_size_a)
    if len(docs) != 1:
        runs = ", ".join(d.run_name for d in docs)
        raise DataSourceError(
            f"picks {store.uri_of(store.join(name))!r} hold runs {runs}; one file per tomogram"
        )
    return docs[0].model_copy(update={"run_name": stem, "tomogram_uri": tomogram_uri})
