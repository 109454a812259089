"""RELION STAR picks, read and written.

Block ``particles``: ``rlnTomoName``, ``rlnCoordinateX/Y/Z`` in voxels of the original tomogram
(``x_a / voxel_size_x``; the document frame puts voxel 0 at 0 Å), ``rlnClassNumber`` (label 1..6 of
:mod:`octopi_core.particles`), ``rlnAutopickFigureOfMerit`` (score). Block ``octopi``, one row per tomogram:
``rlnTomoName``, ``octopiVoxelSizeX/Y/ZAngst``, ``octopiSizeX/Y/Z`` (voxels, -1 if unknown),
``octopiTomogramUri``, ``octopiModelVersion``, ``octopiCreatedAt``, ``octopiClassNames`` (comma-separated,
empty classes included), so the file reads back to the same Å and classes. RELION 5
``rlnCenteredCoordinate*Angst`` are not written: they are centred in the unbinned tilt-series frame, which
a tomogram alone does not define.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import starfile

from octopi_core.exceptions import PicksFormatError
from octopi_core.export.formats import PicksFormat
from octopi_core.export.rows import ReadContext, pick_rows, positive_voxel_size
from octopi_core.particles import particle_by_label, particle_by_name
from octopi_core.picks import PicksDocument

__all__ = ["render_star", "read_star"]

_STAR_COLUMNS = [
    "rlnTomoName",
    "rlnCoordinateX",
    "rlnCoordinateY",
    "rlnCoordinateZ",
    "rlnClassNumber",
    "rlnAutopickFigureOfMerit",
]
_STAR_STRINGS = [
    "rlnTomoName",
    "octopiTomogramUri",
    "octopiModelVersion",
    "octopiCreatedAt",
    "octopiClassNames",
]


def render_star(doc: PicksDocument) -> str:
    """Return ``doc`` as STAR text (``particles`` and ``octopi`` blocks).

    Args:
        doc: the picks document (xyz, Å).

    Returns:
        The STAR file's text.

    Raises:
        ValueError: when the document's voxel size is not positive.
    """
    return starfile.to_string(_star_blocks(doc))


def _star_blocks(doc: PicksDocument) -> dict[str, pd.DataFrame]:
    vx, vy, vz = positive_voxel_size(doc, PicksFormat.STAR)
    rows = [
        (doc.run_name, x / vx, y / vy, z / vz, particle_by_name(n).label, s)
        for n, x, y, z, s in pick_rows(doc)
    ]
    size_z, size_y, size_x = doc.shape_zyx or (-1, -1, -1)
    meta = {
        "rlnTomoName": doc.run_name,
        "octopiVoxelSizeXAngst": vx,
        "octopiVoxelSizeYAngst": vy,
        "octopiVoxelSizeZAngst": vz,
        "octopiSizeX": size_x,
        "octopiSizeY": size_y,
        "octopiSizeZ": size_z,
        "octopiTomogramUri": doc.tomogram_uri,
        "octopiModelVersion": doc.model_version or "",
        "octopiCreatedAt": doc.created_at,
        "octopiClassNames": ",".join(doc.picks),
    }
    return {"particles": pd.DataFrame(rows, columns=_STAR_COLUMNS), "octopi": pd.DataFrame([meta])}


def read_star(path: Path, text: str, context: ReadContext) -> list[PicksDocument]:
    """Read a STAR file (ours, or a foreign one with a particles block) into documents, one per run.

    Args:
        path: the file (starfile reads it again from disk).
        text: its content (unused; the readers share one signature).
        context: run, class and voxel size for what the file lacks.

    Returns:
        The documents.

    Raises:
        PicksFormatError: for an unreadable file, no particles block, a bad class or ``octopi`` block,
            or a missing voxel size.
    """
    try:
        blocks = starfile.read(path, always_dict=True, parse_as_string=_STAR_STRINGS)
    except Exception as e:  # starfile raises assorted exception types on malformed files
        raise PicksFormatError(f"{path}: not a readable STAR file: {e}") from e
    table = blocks.get("particles", next(iter(blocks.values())) if len(blocks) == 1 else None)
    if not isinstance(table, pd.DataFrame) or not set(_STAR_COLUMNS[1:4]) <= set(table.columns):
        raise PicksFormatError(f"{path}: STAR file has no particles block with rlnCoordinateX/Y/Z")
    meta, classes = _star_meta(path, blocks.get("octopi"))
    n = len(table)
    runs = table["rlnTomoName"] if "rlnTomoName" in table.columns else [context.run_name] * n
    try:
        names = (
            [particle_by_label(c).name for c in table["rlnClassNumber"]]
            if "rlnClassNumber" in table.columns
            else [context.particle] * n
        )
    except ValueError as e:
        raise PicksFormatError(f"{path}: bad rlnClassNumber: {e}") from e
    scores = table["rlnAutopickFigureOfMerit"] if "rlnAutopickFigureOfMerit" in table.columns else [1.0] * n
    rows = []
    for run, name, x, y, z, s in zip(runs, names, *(table[c] for c in _STAR_COLUMNS[1:4]), scores):
        vx, vy, vz = context.voxel_size(path, meta.get(run, {}))
        rows.append((run, name, x * vx, y * vy, z * vz, s))
    return context.build(path, rows, classes, meta)


def _star_meta(path: Path, block: Any) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """Per-run document fields and class lists from the ``octopi`` STAR block (none when absent)."""
    meta, classes = {}, {}
    try:
        for row in block.to_dict("records") if isinstance(block, pd.DataFrame) else []:
            run = str(row["rlnTomoName"])
            shape = tuple(int(row[f"octopiSize{a}"]) for a in "ZYX")
            meta[run] = {
                "voxel_size_xyz_a": tuple(float(row[f"octopiVoxelSize{a}Angst"]) for a in "XYZ"),
                "shape_zyx": shape if min(shape) > 0 else None,
                "tomogram_uri": str(row["octopiTomogramUri"]),
                "model_version": str(row["octopiModelVersion"]) or None,
                "created_at": str(row["octopiCreatedAt"]),
            }
            classes[run] = [c for c in str(row["octopiClassNames"]).split(",") if c]
    except (KeyError, TypeError, ValueError) as e:
        raise PicksFormatError(f"{path}: bad octopi block: {e!r}") from e
    return meta, classes
