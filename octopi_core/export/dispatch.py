"""Render, write and read picks in any :class:`~octopi_core.export.formats.PicksFormat`.

Each format's layout is in its module (:mod:`.document`, :mod:`.csv`, :mod:`.star`, :mod:`.copick`,
:mod:`.ndjson`); this module picks the module by format or file suffix, walks directories and merges
documents of one run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from octopi_core.exceptions import PicksFormatError
from octopi_core.export.coordinates import check_triple
from octopi_core.export.copick import render_copick, write_copick
from octopi_core.export.csv import read_csv, render_csv
from octopi_core.export.document import read_json, render_document
from octopi_core.export.formats import SUFFIX_FORMATS, PicksFormat, normalise_format
from octopi_core.export.ndjson import ndjson_files, read_ndjson, render_ndjson
from octopi_core.export.rows import ReadContext
from octopi_core.export.star import read_star, render_star, star_files
from octopi_core.picks import PicksDocument

__all__ = ["render_picks", "write_picks", "read_picks"]

_RENDERERS: dict[PicksFormat, Callable[[PicksDocument], str]] = {
    PicksFormat.JSON: render_document,
    PicksFormat.CSV: render_csv,
    PicksFormat.STAR: render_star,
    PicksFormat.COPICK: render_copick,
    PicksFormat.NDJSON: render_ndjson,
}
_READERS: dict[PicksFormat, Callable[[Path, str, ReadContext], list[PicksDocument]]] = {
    PicksFormat.JSON: read_json,  # copick files are JSON too
    PicksFormat.CSV: read_csv,
    PicksFormat.STAR: read_star,
    PicksFormat.NDJSON: read_ndjson,
}


def render_picks(doc: PicksDocument, fmt: PicksFormat | str) -> str:
    """Return ``doc`` written as ``fmt``, in memory (for files and HTTP responses).

    Args:
        doc: the picks document (xyz, Å).
        fmt: a :class:`PicksFormat` or its string: ``json``, ``csv``, ``star`` (RELION 5 centred Å),
            ``copick`` (a JSON array of the per-class copick documents) or ``ndjson`` (portal points).

    Returns:
        The text of the file.

    Raises:
        ValueError: for an unknown format, or ``star``/``ndjson`` of a document whose voxel size is not positive.
    """
    return _RENDERERS[normalise_format(fmt)](doc)


def write_picks(
    doc: PicksDocument,
    path: str | Path,
    fmt: PicksFormat | str | None = None,
    *,
    per_object: bool = False,
    pixel_coordinates: bool = False,
) -> list[Path]:
    """Write ``doc`` to ``path`` (parent folders created) and return the files written.

    Args:
        doc: the picks document.
        path: the file; for ``copick``, and for ``star`` or ``ndjson`` with ``per_object``, a directory
            that receives one file per class.
        fmt: the format; None takes it from the suffix (``.json``, ``.csv``, ``.star``, ``.ndjson``,
            ``.jsonl``), or ``copick`` when ``path`` is an existing directory.
        per_object: one file per class (default False), for ``star`` (``<run>_<class>.star``, every class, as
            copick's ``picks-relion`` importer takes one object per file) or ``ndjson``
            (``<object>-1.0_point.ndjson`` per class with picks, as the portal names them); ``copick`` always
            writes one ``octopi_0_{class}.json`` per class, empty classes included.
        pixel_coordinates: for ``star``, also write RELION 4 ``rlnCoordinateX/Y/Z`` in voxels and their pixel
            size (default False: RELION 5 centred Å only).

    Returns:
        The paths written.

    Raises:
        ValueError: for an unknown format or one that cannot be inferred, ``per_object`` for ``json`` or
            ``csv``, ``pixel_coordinates`` for anything but ``star``, or as :func:`render_picks`.
    """
    path = Path(path)
    if fmt is None:
        if not path.is_dir() and path.suffix.lower() not in SUFFIX_FORMATS:
            allowed = ", ".join(f.value for f in PicksFormat)
            raise ValueError(f"cannot infer the format of path {str(path)!r}; pass fmt (one of {allowed})")
        fmt = PicksFormat.COPICK if path.is_dir() else SUFFIX_FORMATS[path.suffix.lower()]
    fmt = normalise_format(fmt)
    if per_object and fmt in (PicksFormat.JSON, PicksFormat.CSV):
        raise ValueError(f"per_object applies to star, ndjson and copick; got fmt={fmt.value!r}")
    if pixel_coordinates and fmt is not PicksFormat.STAR:
        raise ValueError(f"pixel_coordinates applies to star only; got fmt={fmt.value!r}")
    if fmt is PicksFormat.COPICK:
        return write_copick(doc, path)
    if per_object:
        files = (
            star_files(doc, pixel_coordinates=pixel_coordinates)
            if fmt is PicksFormat.STAR
            else ndjson_files(doc)
        )
        path.mkdir(parents=True, exist_ok=True)
        for name, text in files:
            (path / name).write_text(text, encoding="utf-8", newline="\n")
        return [path / name for name, _ in files]
    text = render_star(doc, pixel_coordinates=True) if pixel_coordinates else render_picks(doc, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")
    return [path]


def read_picks(
    path: str | Path,
    *,
    run_name: str | None = None,
    particle: str | None = None,
    voxel_size_a: float | Sequence[float] | None = None,
) -> list[PicksDocument]:
    """Read picks in any :class:`PicksFormat` back into documents (xyz, Å), one per run.

    ``path`` is a file (format from the suffix; a ``.json`` may hold a picks document, a list of them, a
    copick picks file or a list of those), a directory of such files (searched recursively; hidden and
    ``.zarr`` folders skipped), or a copick project (only ``ExperimentRuns/<run>/Picks/*.json``; the run
    comes from the path when the file names none). Documents of one run are merged, keeping the first one's
    metadata; copick files of every user and session are merged alike.

    Args:
        path: file or directory.
        run_name: the run for picks whose file names none (portal NDJSON, foreign STAR or copick files).
        particle: the class for picks whose file names none (portal NDJSON, STAR without ``rlnClassNumber``).
        voxel_size_a: voxel size of the original tomogram, Å, one number or (x, y, z): converts voxel
            coordinates of files that give no voxel size, and becomes the voxel size of documents read from
            formats without one (CSV, copick); those get NaN when it is not given.

    Returns:
        The documents, in the order their runs first appear.

    Raises:
        PicksFormatError: for a missing path, an unreadable or malformed file, missing columns, an unknown
            class, a score outside [0, 1], or a missing run, class or voxel size; the message starts with the file.
        ValueError: for a ``voxel_size_a`` that is not positive.
    """
    size = None
    if voxel_size_a is not None:
        values = [voxel_size_a] * 3 if np.ndim(voxel_size_a) == 0 else list(voxel_size_a)  # type: ignore[arg-type]
        size = check_triple(values, "voxel_size_a", positive=True)
    return _merge_by_run(_read_path(Path(path), ReadContext(run_name, particle, size)))


def _read_path(path: Path, context: ReadContext) -> list[PicksDocument]:
    if path.is_dir():
        return [doc for f in _picks_files(path) for doc in _read_path(f, context)]
    if not path.is_file():
        raise PicksFormatError(f"{path}: no such file or directory")
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        allowed = ", ".join(SUFFIX_FORMATS)
        raise PicksFormatError(f"{path}: unknown picks file suffix {path.suffix!r}; use one of {allowed}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PicksFormatError(f"{path}: cannot read the file: {e}") from e
    return _READERS[fmt](path, text, context)


def _picks_files(path: Path) -> list[Path]:
    """Picks files under a directory: ``ExperimentRuns/*/Picks/*.json`` of a copick project, else all by suffix."""
    if (path / "ExperimentRuns").is_dir():
        files = sorted((path / "ExperimentRuns").glob("*/Picks/*.json"))
    else:
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in SUFFIX_FORMATS
            and not any(part.startswith(".") or part.endswith(".zarr") for part in p.relative_to(path).parts)
        )
    if not files:
        raise PicksFormatError(f"{path}: the directory holds no picks files ({', '.join(SUFFIX_FORMATS)})")
    return files


def _merge_by_run(docs: Sequence[PicksDocument]) -> list[PicksDocument]:
    merged: dict[str, PicksDocument] = {}
    for doc in docs:
        if doc.run_name not in merged:
            merged[doc.run_name] = doc.model_copy(deep=True)
        else:
            for name, points in doc.picks.items():
                merged[doc.run_name].picks.setdefault(name, []).extend(points)
    return list(merged.values())
