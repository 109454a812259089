"""CryoET Data Portal point annotations (NDJSON), read and written.

One ``{"type": "point", "location": {"x", "y", "z"}}`` per line, as the portal's ingestion writes a ``Point``
annotation (``PointFile.point`` in cryoet-data-portal-backend; picks have no orientation, so not
``orientedPoint``). As on the portal (copick reads portal points by multiplying ``location`` by the
tomogram's voxel spacing), ``location`` is in voxels of the original tomogram. Our extension keys on each
line: ``particle``, ``score``, ``run_name``, ``voxel_size_xyz_a`` (Å). The portal keeps one file per
annotated object, ``<object>-<version>_point.ndjson`` (object lower case, other characters ``_``);
:func:`ndjson_files` names them so, version ``1.0``. The reader also reads ``orientedPoint`` lines (the
orientation is dropped). NDJSON loses the document metadata and empty classes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from octopi_core.exceptions import PicksFormatError
from octopi_core.export.formats import PicksFormat
from octopi_core.export.rows import ReadContext, pick_rows, positive_voxel_size
from octopi_core.picks import PicksDocument

__all__ = ["PORTAL_ANNOTATION_VERSION", "render_ndjson", "ndjson_files", "read_ndjson"]

PORTAL_ANNOTATION_VERSION = "1.0"  # the ``<version>`` of the portal's annotation file names


def render_ndjson(doc: PicksDocument) -> str:
    """Return ``doc`` as portal point annotations, one JSON object per line.

    Args:
        doc: the picks document (xyz, Å).

    Returns:
        The text, one line per pick, each ending in ``\\n``.

    Raises:
        ValueError: when the document's voxel size is not positive.
    """
    vx, vy, vz = positive_voxel_size(doc, PicksFormat.NDJSON)
    lines = [
        json.dumps(
            {
                "type": "point",
                "location": {"x": x / vx, "y": y / vy, "z": z / vz},
                "particle": name,
                "score": s,
                "run_name": doc.run_name,
                "voxel_size_xyz_a": [vx, vy, vz],
            }
        )
        for name, x, y, z, s in pick_rows(doc)
    ]
    return "".join(line + "\n" for line in lines)


def ndjson_files(doc: PicksDocument) -> list[tuple[str, str]]:
    """Return one portal annotation file per class of ``doc`` that has picks, named as the portal names them.

    Args:
        doc: the picks document (xyz, Å).

    Returns:
        ``(<object>-1.0_point.ndjson, text)`` per class with picks, e.g. ``apo_ferritin-1.0_point.ndjson``.

    Raises:
        ValueError: when the document's voxel size is not positive.
    """
    files = []
    for name, points in doc.picks.items():
        if points:
            slug = re.sub("[^0-9a-z]", "_", name.lower())
            text = render_ndjson(doc.model_copy(update={"picks": {name: points}}))
            files.append((f"{slug}-{PORTAL_ANNOTATION_VERSION}_point.ndjson", text))
    return files


def read_ndjson(path: Path, text: str, context: ReadContext) -> list[PicksDocument]:
    """Read portal point annotations (``point`` or ``orientedPoint``) into documents, one per run.

    Args:
        path: the file, for messages.
        text: its content.
        context: run, class and voxel size for what the lines lack.

    Returns:
        The documents.

    Raises:
        PicksFormatError: for a line that is not a point annotation, or a missing run, class or voxel size.
    """
    rows, meta = [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            run, loc = item.get("run_name") or context.run_name, item["location"]
            if "voxel_size_xyz_a" in item:
                meta[run] = {"voxel_size_xyz_a": tuple(float(v) for v in item["voxel_size_xyz_a"])}
            vx, vy, vz = context.voxel_size(path, meta.get(run, {}))
            name = item.get("particle") or context.particle
            rows.append((run, name, loc["x"] * vx, loc["y"] * vy, loc["z"] * vz, item.get("score", 1.0)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise PicksFormatError(f"{path}: line {number} is not a point annotation: {e!r}") from e
    return context.build(path, rows, {}, meta)
