"""RELION STAR picks, read and written, in RELION 5's tomography convention.

Block ``particles``: ``rlnTomoName``, ``rlnCenteredCoordinateX/Y/ZAngst``, ``rlnClassNumber`` (label 1..6 of
:mod:`octopi_core.particles`), ``rlnAutopickFigureOfMerit`` (score). Centred coordinates are Å from the centre
of the tomogram, ``x_a - size_x * voxel_size_x / 2``: RELION 5 turns them into pixels as
``centred / pixel_size + size / 2.0`` (``ParticleSet::getParticleCoordDecenteredPixel`` with the tomogram
centre ``(w0 / 2.0, h0 / 2.0, d0 / 2.0)`` of ``TomogramSet::loadTomogram``, src/jaz/tomography/ in the RELION
5 source), so voxel ``size / 2`` of an even axis is at 0 Å and the centre of an odd one falls half a voxel
past its middle voxel. copick centres alike (shape / 2 * voxel size, ``copick.util.relion``). In Å from the
centre the picks do not depend on binning: RELION reads them against its own tomogram of the same extent.

With ``pixel_coordinates`` (and always when the document has no shape, so no centre), the RELION 4 columns
``rlnCoordinateX/Y/Z`` are written too, in voxels of the original tomogram (``x_a / voxel_size_x``), with
``rlnOpticsGroup`` and a block ``optics`` giving ``rlnTomoTiltSeriesPixelSize``: RELION 5 reads the pixel size
from there (``ParticleSet::getTiltSeriesPixelSize``) and treats these coordinates as tilt-series pixels, which
they are only for an unbinned tomogram; copick's ``picks-relion`` importer reads the same column.

Block ``octopi``, one row per tomogram: ``rlnTomoName``, ``octopiVoxelSizeX/Y/ZAngst``, ``octopiSizeX/Y/Z``
(voxels, -1 if unknown), ``octopiTomogramUri``, ``octopiModelVersion``, ``octopiCreatedAt``,
``octopiClassNames`` (comma-separated, empty classes included), so the file reads back to the same Å and
classes. The reader also reads the files of earlier versions (``rlnCoordinateX/Y/Z`` and the ``octopi``
block only) to the same Å. ``particles`` is the first block: RELION's coordinate import reads the first one.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import starfile

from octopi_core.exceptions import PicksFormatError
from octopi_core.export.formats import PicksFormat
from octopi_core.export.rows import ReadContext, pick_rows, positive_voxel_size
from octopi_core.particles import particle_by_label, particle_by_name
from octopi_core.picks import PicksDocument

__all__ = ["render_star", "star_files", "read_star"]

_CENTRED = ["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst"]
_PIXELS = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]
_STAR_STRINGS = [
    "rlnTomoName",
    "rlnOpticsGroupName",
    "octopiTomogramUri",
    "octopiModelVersion",
    "octopiCreatedAt",
    "octopiClassNames",
]
_OPTICS_GROUP = 1


def render_star(doc: PicksDocument, *, pixel_coordinates: bool = False) -> str:
    """Return ``doc`` as STAR text (``particles``, ``optics`` with pixel coordinates, ``octopi``).

    Args:
        doc: the picks document (xyz, Å).
        pixel_coordinates: also write ``rlnCoordinateX/Y/Z`` (voxels) and the ``optics`` block (default
            False). A document without ``shape_zyx`` gets them anyway, with a warning: its centre is unknown.

    Returns:
        The STAR file's text.

    Raises:
        ValueError: when the document's voxel size is not positive.
    """
    return starfile.to_string(_star_blocks(doc, pixel_coordinates))


def star_files(doc: PicksDocument, *, pixel_coordinates: bool = False) -> list[tuple[str, str]]:
    """Return one STAR file per class of ``doc`` (empty classes included), as copick's importer wants.

    Args:
        doc: the picks document (xyz, Å).
        pixel_coordinates: as in :func:`render_star`.

    Returns:
        ``(<run>_<class>.star, text)`` per class.

    Raises:
        ValueError: when the document's voxel size is not positive.
    """
    return [
        (
            f"{doc.run_name}_{name}.star",
            render_star(
                doc.model_copy(update={"picks": {name: points}}), pixel_coordinates=pixel_coordinates
            ),
        )
        for name, points in doc.picks.items()
    ]


def _star_blocks(doc: PicksDocument, pixel_coordinates: bool) -> dict[str, pd.DataFrame]:
    vx, vy, vz = positive_voxel_size(doc, PicksFormat.STAR)
    rows = pick_rows(doc)
    xyz_a = [(x, y, z) for _, x, y, z, _ in rows]
    table: dict[str, list[Any]] = {"rlnTomoName": [doc.run_name] * len(rows)}
    if doc.shape_zyx is not None:
        # RELION 5: Å from the tomogram centre, which is at size / 2 voxels
        size_z, size_y, size_x = doc.shape_zyx
        centre_xyz_a = (size_x * vx / 2, size_y * vy / 2, size_z * vz / 2)
        for axis, column in enumerate(_CENTRED):
            table[column] = [p[axis] - centre_xyz_a[axis] for p in xyz_a]
    elif not pixel_coordinates:
        warnings.warn(
            f"picks of run {doc.run_name!r} have no tomogram shape, so no centre: the STAR file gets RELION 4 "
            "pixel coordinates only",
            stacklevel=3,
        )
    with_pixels = pixel_coordinates or doc.shape_zyx is None
    if with_pixels:
        for axis, (column, size_a) in enumerate(zip(_PIXELS, (vx, vy, vz))):
            table[column] = [p[axis] / size_a for p in xyz_a]
        table["rlnOpticsGroup"] = [_OPTICS_GROUP] * len(rows)
    table["rlnClassNumber"] = [particle_by_name(r[0]).label for r in rows]
    table["rlnAutopickFigureOfMerit"] = [r[4] for r in rows]
    blocks = {"particles": pd.DataFrame(table)}
    if with_pixels:
        blocks["optics"] = pd.DataFrame(
            [
                {
                    "rlnOpticsGroup": _OPTICS_GROUP,
                    "rlnOpticsGroupName": f"opticsGroup{_OPTICS_GROUP}",
                    "rlnTomoTiltSeriesPixelSize": vx,
                }
            ]
        )
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
    blocks["octopi"] = pd.DataFrame([meta])
    return blocks


def read_star(path: Path, text: str, context: ReadContext) -> list[PicksDocument]:
    """Read a STAR file (ours of any version, or a foreign one with a particles block) into documents, one per run.

    Centred coordinates are read against the tomogram shape and voxel size of the ``octopi`` block; pixel
    coordinates against its voxel size, else ``rlnTomoTiltSeriesPixelSize`` of the ``optics`` block, else
    the caller's.

    Args:
        path: the file (starfile reads it again from disk).
        text: its content (unused; the readers share one signature).
        context: run, class and voxel size for what the file lacks.

    Returns:
        The documents.

    Raises:
        PicksFormatError: for an unreadable file, no particles block, a bad class or ``octopi`` block,
            centred coordinates without the tomogram's shape, or pixel coordinates without a voxel size.
    """
    try:
        blocks = starfile.read(path, always_dict=True, parse_as_string=_STAR_STRINGS)
    except Exception as e:  # starfile raises assorted exception types on malformed files
        raise PicksFormatError(f"{path}: not a readable STAR file: {e}") from e
    table = blocks.get("particles", next(iter(blocks.values())) if len(blocks) == 1 else None)
    columns = set(table.columns) if isinstance(table, pd.DataFrame) else set()
    centred, pixels = set(_CENTRED) <= columns, set(_PIXELS) <= columns
    if not isinstance(table, pd.DataFrame) or not (centred or pixels):
        raise PicksFormatError(
            f"{path}: STAR file has no particles block with rlnCenteredCoordinateX/Y/ZAngst or rlnCoordinateX/Y/Z"
        )
    meta, classes = _star_meta(path, blocks.get("octopi"))
    optics = _optics_voxel_size(path, blocks.get("optics"))
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
    records = table.to_dict("records")
    rows = []
    for run, name, record, s in zip(runs, names, records, scores):
        run_meta = meta.get(run, {})
        if centred and run_meta.get("shape_zyx"):
            size_z, size_y, size_x = run_meta["shape_zyx"]
            vx, vy, vz = run_meta["voxel_size_xyz_a"]
            x, y, z = (
                record[c] + n_vox * v / 2
                for c, n_vox, v in zip(_CENTRED, (size_x, size_y, size_z), (vx, vy, vz))
            )
        elif pixels:
            vx, vy, vz = context.voxel_size(path, run_meta or optics)
            x, y, z = (record[c] * v for c, v in zip(_PIXELS, (vx, vy, vz)))
        else:
            raise PicksFormatError(
                f"{path}: rlnCenteredCoordinateX/Y/ZAngst are Å from the tomogram centre, but the file gives "
                f"no shape of tomogram {run!r} (octopi block) to place it"
            )
        rows.append((run, name, x, y, z, s))
    return context.build(path, rows, classes, meta)


def _optics_voxel_size(path: Path, block: Any) -> dict[str, tuple[float, float, float]]:
    """``{"voxel_size_xyz_a": ...}`` from ``rlnTomoTiltSeriesPixelSize`` of an ``optics`` block, else empty."""
    if (
        not isinstance(block, pd.DataFrame)
        or "rlnTomoTiltSeriesPixelSize" not in block.columns
        or block.empty
    ):
        return {}
    try:
        size_a = float(block["rlnTomoTiltSeriesPixelSize"].iloc[0])
    except (TypeError, ValueError) as e:
        raise PicksFormatError(f"{path}: bad rlnTomoTiltSeriesPixelSize in the optics block: {e!r}") from e
    return {"voxel_size_xyz_a": (size_a, size_a, size_a)}


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
