"""copick picks, read and written.

A directory with one copick picks file per class, ``{user_id}_{session_id}_{object}.json``, user
``octopi``, session ``0``, ``voxel_spacing`` null, locations in Å. In memory the files are one JSON array
(:func:`render_copick`, the worker's output file) or a zip archive of the per-class files, as copick names
them (:func:`render_copick_zip`, the HTTP download; unzip it into ``ExperimentRuns/<run>/Picks/`` of a copick
project). copick loses the document metadata.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from octopi_core.exceptions import PicksFormatError
from octopi_core.export.rows import ReadContext
from octopi_core.picks import PicksDocument

__all__ = [
    "COPICK_USER_ID",
    "COPICK_SESSION_ID",
    "copick_files",
    "render_copick",
    "render_copick_zip",
    "write_copick",
    "read_copick",
]

COPICK_USER_ID = "octopi"
COPICK_SESSION_ID = "0"
_EYE4 = np.eye(4).tolist()


def copick_files(doc: PicksDocument) -> list[tuple[str, dict]]:
    """Return ``(file name, copick picks content)`` per class of ``doc``, empty classes included.

    Args:
        doc: the picks document (xyz, Å).

    Returns:
        One ``(octopi_0_{class}.json, content)`` pair per class.
    """
    files = []
    for name, points in doc.picks.items():
        content = {
            "pickable_object_name": name,
            "user_id": COPICK_USER_ID,
            "session_id": COPICK_SESSION_ID,
            "run_name": doc.run_name,
            "voxel_spacing": None,
            "unit": "angstrom",
            "points": [
                {
                    "location": {"x": p.x, "y": p.y, "z": p.z},
                    "transformation_": _EYE4,
                    "instance_id": 0,
                    "score": p.score,
                }
                for p in points
            ],
            "trust_orientation": False,
        }
        files.append((f"{COPICK_USER_ID}_{COPICK_SESSION_ID}_{name}.json", content))
    return files


def render_copick(doc: PicksDocument) -> str:
    """Return the per-class copick documents of ``doc`` as one JSON array.

    Args:
        doc: the picks document (xyz, Å).

    Returns:
        The JSON text.
    """
    return json.dumps([content for _, content in copick_files(doc)], indent=2)


def render_copick_zip(doc: PicksDocument) -> bytes:
    """Return the per-class copick picks files of ``doc`` as a zip archive, files at its top level.

    Args:
        doc: the picks document (xyz, Å).

    Returns:
        The archive's bytes: one ``octopi_0_{class}.json`` per class, empty classes included, deflated, with a
        fixed time stamp so that the same picks give the same bytes.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in copick_files(doc):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, json.dumps(content, indent=2))
    return buffer.getvalue()


def write_copick(doc: PicksDocument, directory: Path) -> list[Path]:
    """Write one copick picks file per class of ``doc`` into ``directory`` (created).

    Args:
        doc: the picks document (xyz, Å).
        directory: where the ``octopi_0_{class}.json`` files go.

    Returns:
        The paths written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in copick_files(doc):
        (directory / name).write_text(json.dumps(content, indent=2), encoding="utf-8")
        written.append(directory / name)
    return written


def read_copick(path: Path, files: list[dict], context: ReadContext) -> list[PicksDocument]:
    """Turn parsed copick picks files into documents, one per run.

    The run is the file's ``run_name``, else ``<run>`` of an ``ExperimentRuns/<run>/Picks`` path, else the
    caller's.

    Args:
        path: the file they were read from.
        files: the parsed copick picks files.
        context: run and voxel size for what the files lack.

    Returns:
        The documents.

    Raises:
        PicksFormatError: for a bad point, or a missing run.
    """
    # ExperimentRuns/<run>/Picks
    layout_run = path.parent.parent.name if path.parent.name == "Picks" else None
    rows: list[tuple] = []
    classes: dict[str | None, list[str]] = {}
    meta: dict[str | None, dict] = {}
    for f in files:
        run, name = f.get("run_name") or layout_run or context.run_name, f["pickable_object_name"]
        classes.setdefault(run, []).append(name)
        if isinstance(f.get("voxel_spacing"), (int, float)):
            meta[run] = {"voxel_size_xyz_a": (float(f["voxel_spacing"]),) * 3}
        try:
            for p in f.get("points") or []:
                # copick: the centre is location + the translation of transformation_ (0 for ours)
                shift = np.asarray(p.get("transformation_") or _EYE4, dtype=float)[:3, 3]
                xyz = np.array([p["location"][a] for a in "xyz"], dtype=float) + shift
                rows.append((run, name, *xyz.tolist(), p.get("score", 1.0)))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise PicksFormatError(f"{path}: bad copick point of {name!r}: {e!r}") from e
    return context.build(path, rows, classes, meta)
