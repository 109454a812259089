"""Picks files: centres (zyx, voxels) -> :class:`PicksDocument` (xyz, Å) -> files, and files back to documents.

This module and ``octopi_core/io`` are the only places that cross from volume indices (zyx, voxels)
to exported coordinates (xyz, Å); here the crossing is :func:`picks_document_from_voxels`.

Formats (:class:`PicksFormat`):

- ``json``: the :class:`PicksDocument` (``model_dump_json(indent=2)``); lossless.
- ``csv``: ``run_name,particle_type,x,y,z,score``, Å. Reading also accepts the Kaggle CZII submission
  layout ``id,experiment,particle_type,x,y,z`` (``experiment`` is the run, score 1.0).
- ``star``: RELION. Block ``particles``: ``rlnTomoName``, ``rlnCoordinateX/Y/Z`` in voxels of the original
  tomogram (``x_a / voxel_size_x``; the document frame puts voxel 0 at 0 Å), ``rlnClassNumber`` (label 1..6
  of :mod:`octopi_core.particles`), ``rlnAutopickFigureOfMerit`` (score). Block ``octopi``, one row per
  tomogram: ``rlnTomoName``, ``octopiVoxelSizeX/Y/ZAngst``, ``octopiSizeX/Y/Z`` (voxels, -1 if unknown),
  ``octopiTomogramUri``, ``octopiModelVersion``, ``octopiCreatedAt``, ``octopiClassNames`` (comma-separated,
  empty classes included), so the file reads back to the same Å and classes. RELION 5
  ``rlnCenteredCoordinate*Angst`` are not written: they are centred in the unbinned tilt-series frame,
  which a tomogram alone does not define.
- ``copick``: a directory with one copick picks file per class, ``{user_id}_{session_id}_{object}.json``,
  user ``octopi``, session ``0``, ``voxel_spacing`` null, locations in Å.
- ``ndjson``: CryoET Data Portal point annotations, one ``{"type": "orientedPoint", "location": {x, y, z},
  "xyz_rotation_matrix": 3x3}`` per line. As on the portal (copick reads portal points by multiplying
  ``location`` by the tomogram's voxel spacing), ``location`` is in voxels of the original tomogram. Our
  extension keys on each line: ``particle``, ``score``, ``run_name``, ``voxel_size_xyz_a`` (Å).

CSV, NDJSON and copick lose the document metadata; CSV and NDJSON also drop classes without picks.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import starfile
from pydantic import ValidationError

from octopi_core.exceptions import PicksFormatError
from octopi_core.export.formats import SUFFIX_FORMATS, PicksFormat, normalise_format
from octopi_core.particles import particle_by_label, particle_by_name
from octopi_core.picks import PickPoint, PicksDocument

if TYPE_CHECKING:  # the gateway renders picks without loading localization's image libraries
    from octopi_core.localize import ClassPicks

__all__ = [
    "COPICK_USER_ID",
    "COPICK_SESSION_ID",
    "picks_document_from_voxels",
    "render_picks",
    "write_picks",
    "read_picks",
]

COPICK_USER_ID = "octopi"
COPICK_SESSION_ID = "0"
_EYE3 = np.eye(3).tolist()
_EYE4 = np.eye(4).tolist()
_NAN_XYZ = (math.nan, math.nan, math.nan)
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


def _triple(value: Any, name: str, *, positive: bool) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(math.isfinite(v) and (v > 0 or not positive) for v in out):
        kind = "positive" if positive else "finite"
        raise ValueError(f"{name} must be three {kind} numbers; got {value!r}")
    return out  # type: ignore[return-value]


def picks_document_from_voxels(
    found: Mapping[str, ClassPicks],
    *,
    voxel_size_zyx_a: tuple[float, float, float],
    origin_zyx_a: tuple[float, float, float],
    tomogram_uri: str,
    run_name: str,
    source_voxel_size_zyx_a: tuple[float, float, float],
    source_shape_zyx: tuple[int, int, int] | None,
    model_version: str | None,
    timings_s: dict[str, float] | None = None,
) -> PicksDocument:
    """Turn per-class centres in voxels (zyx) of the processed volume into a picks document (xyz, Å).

    ``x_a = origin_x_a + centre_x_vox * voxel_size_x_a``, likewise y and z.

    Args:
        found: class name -> :class:`~octopi_core.localize.ClassPicks` (centres in zyx voxels of the loaded,
            possibly resampled, volume; scores in [0, 1]), as :func:`~octopi_core.localize.localize_particles` gives.
        voxel_size_zyx_a: voxel size of that volume, Å, positive.
        origin_zyx_a: where its voxel 0 lies in the original tomogram's frame, Å.
        tomogram_uri: where the tomogram was read from.
        run_name: tomogram identifier, non-empty.
        source_voxel_size_zyx_a: voxel size of the original tomogram, Å; stored as ``voxel_size_xyz_a`` (xyz).
        source_shape_zyx: shape of the original tomogram, voxels, or None when unknown.
        model_version: version of the model, or None.
        timings_s: seconds per stage; None for none.

    Returns:
        The :class:`PicksDocument`, classes in label order, every given class present.

    Raises:
        ValueError: naming the argument, for an unknown class, mismatched classes or lengths, a wrong-shaped
            or non-finite array, a score outside [0, 1], a non-positive voxel size or an empty ``run_name``.
    """
    size_zyx = np.array(_triple(voxel_size_zyx_a, "voxel_size_zyx_a", positive=True))
    origin_zyx = np.array(_triple(origin_zyx_a, "origin_zyx_a", positive=False))
    source_zyx = _triple(source_voxel_size_zyx_a, "source_voxel_size_zyx_a", positive=True)
    shape = None if source_shape_zyx is None else tuple(int(s) for s in source_shape_zyx)
    if shape is not None and (len(shape) != 3 or min(shape) <= 0):
        raise ValueError(f"source_shape_zyx must be three positive ints or None; got {source_shape_zyx!r}")
    if not isinstance(run_name, str) or not run_name:
        raise ValueError(f"run_name must be a non-empty string; got {run_name!r}")
    picks: dict[int, tuple[str, list[PickPoint]]] = {}
    for name, class_picks in found.items():
        try:
            particle = particle_by_name(name)
        except ValueError as e:
            raise ValueError(f"found: {e}") from None
        zyx = np.asarray(class_picks.centres_zyx_vox, dtype=np.float64)
        zyx = zyx.reshape(0, 3) if zyx.size == 0 else zyx
        if zyx.ndim != 2 or zyx.shape[1] != 3 or not np.all(np.isfinite(zyx)):
            raise ValueError(
                f"found[{name!r}].centres_zyx_vox must be a finite (N, 3) zyx array; got shape {zyx.shape}"
            )
        score = np.asarray(class_picks.scores, dtype=np.float64).reshape(-1)
        if len(score) != len(zyx) or not np.all((score >= 0) & (score <= 1)):
            raise ValueError(
                f"found[{name!r}].scores must hold {len(zyx)} values in [0, 1]; got {len(score)} values"
            )
        xyz_a = (origin_zyx + zyx * size_zyx)[:, ::-1]
        points = [PickPoint(x=x, y=y, z=z, score=s) for (x, y, z), s in zip(xyz_a.tolist(), score.tolist())]
        picks[particle.label] = (particle.name, points)
    return PicksDocument(
        tomogram_uri=tomogram_uri,
        run_name=run_name,
        voxel_size_xyz_a=source_zyx[::-1],
        shape_zyx=shape,
        model_version=model_version,
        picks=dict(picks[label] for label in sorted(picks)),
        timings_s=dict(timings_s or {}),
    )


# ------------------------------------------------------------------ writing
def _rows(doc: PicksDocument) -> list[tuple[str, float, float, float, float]]:
    """``(class, x_a, y_a, z_a, score)`` for every pick of ``doc``."""
    return [(name, p.x, p.y, p.z, p.score) for name, points in doc.picks.items() for p in points]


def _voxel_size_for(doc: PicksDocument, fmt: PicksFormat) -> tuple[float, float, float]:
    if not all(math.isfinite(v) and v > 0 for v in doc.voxel_size_xyz_a):
        raise ValueError(
            f"doc.voxel_size_xyz_a must be positive to write {fmt.value}; got {doc.voxel_size_xyz_a}"
        )
    return doc.voxel_size_xyz_a


def _star_blocks(doc: PicksDocument) -> dict[str, pd.DataFrame]:
    vx, vy, vz = _voxel_size_for(doc, PicksFormat.STAR)
    rows = [
        (doc.run_name, x / vx, y / vy, z / vz, particle_by_name(n).label, s) for n, x, y, z, s in _rows(doc)
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


def _copick_files(doc: PicksDocument) -> list[tuple[str, dict]]:
    """``(file name, copick picks content)`` per class of ``doc``."""
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


def _ndjson_text(doc: PicksDocument) -> str:
    vx, vy, vz = _voxel_size_for(doc, PicksFormat.NDJSON)
    lines = [
        json.dumps(
            {
                "type": "orientedPoint",
                "location": {"x": x / vx, "y": y / vy, "z": z / vz},
                "xyz_rotation_matrix": _EYE3,
                "particle": name,
                "score": s,
                "run_name": doc.run_name,
                "voxel_size_xyz_a": [vx, vy, vz],
            }
        )
        for name, x, y, z, s in _rows(doc)
    ]
    return "".join(line + "\n" for line in lines)


def render_picks(doc: PicksDocument, fmt: PicksFormat | str) -> str:
    """Return ``doc`` written as ``fmt``, in memory (for files and HTTP responses).

    Args:
        doc: the picks document (xyz, Å).
        fmt: a :class:`PicksFormat` or its string: ``json``, ``csv``, ``star``, ``copick`` (a JSON array of
            the per-class copick documents) or ``ndjson``.

    Returns:
        The text of the file.

    Raises:
        ValueError: for an unknown format, or ``star``/``ndjson`` of a document whose voxel size is not positive.
    """
    fmt = normalise_format(fmt)
    if fmt is PicksFormat.JSON:
        return doc.model_dump_json(indent=2)
    if fmt is PicksFormat.CSV:
        table = pd.DataFrame(
            [(doc.run_name, *row) for row in _rows(doc)],
            columns=["run_name", "particle_type", "x", "y", "z", "score"],
        )
        return table.to_csv(index=False, lineterminator="\n")
    if fmt is PicksFormat.STAR:
        return starfile.to_string(_star_blocks(doc))
    if fmt is PicksFormat.COPICK:
        return json.dumps([content for _, content in _copick_files(doc)], indent=2)
    return _ndjson_text(doc)


def write_picks(doc: PicksDocument, path: str | Path, fmt: PicksFormat | str | None = None) -> list[Path]:
    """Write ``doc`` to ``path`` (parent folders created) and return the files written.

    Args:
        doc: the picks document.
        path: the file; for ``copick`` a directory that receives ``octopi_0_{class}.json`` per class,
            empty classes included.
        fmt: the format; None takes it from the suffix (``.json``, ``.csv``, ``.star``, ``.ndjson``,
            ``.jsonl``), or ``copick`` when ``path`` is an existing directory.

    Returns:
        The paths written.

    Raises:
        ValueError: for an unknown format or one that cannot be inferred, or as :func:`render_picks`.
    """
    path = Path(path)
    if fmt is None:
        if not path.is_dir() and path.suffix.lower() not in SUFFIX_FORMATS:
            allowed = ", ".join(f.value for f in PicksFormat)
            raise ValueError(f"cannot infer the format of path {str(path)!r}; pass fmt (one of {allowed})")
        fmt = PicksFormat.COPICK if path.is_dir() else SUFFIX_FORMATS[path.suffix.lower()]
    fmt = normalise_format(fmt)
    if fmt is not PicksFormat.COPICK:
        text = render_picks(doc, fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        return [path]
    path.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in _copick_files(doc):
        (path / name).write_text(json.dumps(content, indent=2), encoding="utf-8")
        written.append(path / name)
    return written


# ------------------------------------------------------------------ reading
class _Reader:
    """Reads files into documents; ``run_name``, ``particle`` and ``voxel_size_xyz_a`` fill what a file lacks."""

    def __init__(
        self, run_name: str | None, particle: str | None, voxel_size_xyz_a: tuple[float, ...] | None
    ):
        self.run_name, self.particle, self.voxel_size_xyz_a = run_name, particle, voxel_size_xyz_a

    def path(self, path: Path) -> list[PicksDocument]:
        if path.is_dir():
            return [doc for f in _picks_files(path) for doc in self.path(f)]
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
        readers = {PicksFormat.JSON: self.json, PicksFormat.CSV: self.csv, PicksFormat.STAR: self.star}
        return readers.get(fmt, self.ndjson)(path, text)

    def json(self, path: Path, text: str) -> list[PicksDocument]:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise PicksFormatError(f"{path}: not valid JSON: {e}") from e
        docs, copick = [], []
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict) and isinstance(item.get("picks"), dict):
                docs.append(self.document(path, item))
            elif isinstance(item, dict) and "pickable_object_name" in item:
                copick.append(item)
            else:
                raise PicksFormatError(
                    f"{path}: JSON is neither a picks document (a 'picks' object) "
                    "nor a copick picks file ('pickable_object_name')"
                )
        return docs + self.copick(path, copick)

    def document(self, path: Path, item: dict) -> PicksDocument:
        item = {**item, "picks": {_class_name(path, k): v for k, v in item["picks"].items()}}
        if isinstance(item.get("voxel_size_xyz_a"), list):  # an unknown (NaN) voxel size is written as null
            item["voxel_size_xyz_a"] = [math.nan if v is None else v for v in item["voxel_size_xyz_a"]]
        if self.run_name and not item.get("run_name"):
            item["run_name"] = self.run_name
        try:
            return PicksDocument.model_validate(item)
        except ValidationError as e:
            raise PicksFormatError(f"{path}: not a valid picks document: {e}") from e

    def copick(self, path: Path, files: list[dict]) -> list[PicksDocument]:
        layout_run = (
            path.parent.parent.name if path.parent.name == "Picks" else None
        )  # ExperimentRuns/<run>/Picks
        rows, classes, meta = [], {}, {}
        for f in files:
            run, name = f.get("run_name") or layout_run or self.run_name, f["pickable_object_name"]
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
        return self.build(path, rows, classes, meta)

    def csv(self, path: Path, text: str) -> list[PicksDocument]:
        try:
            table = pd.read_csv(
                io.StringIO(text), dtype={"run_name": str, "experiment": str, "particle_type": str}
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
            raise PicksFormatError(f"{path}: not a readable CSV: {e}") from e
        if "run_name" not in table.columns and "experiment" in table.columns:  # Kaggle CZII submission
            table = table.rename(columns={"experiment": "run_name"})
        missing = [c for c in ("run_name", "particle_type", "x", "y", "z") if c not in table.columns]
        if missing:
            raise PicksFormatError(
                f"{path}: CSV is missing columns {missing}; expected run_name,particle_type,"
                "x,y,z[,score] or id,experiment,particle_type,x,y,z"
            )
        score = table["score"] if "score" in table.columns else [1.0] * len(table)
        columns = (table[c] for c in ("run_name", "particle_type", "x", "y", "z"))
        return self.build(path, zip(*columns, score))

    def star(self, path: Path, text: str) -> list[PicksDocument]:
        try:
            blocks = starfile.read(path, always_dict=True, parse_as_string=_STAR_STRINGS)
        except Exception as e:  # starfile raises assorted exception types on malformed files
            raise PicksFormatError(f"{path}: not a readable STAR file: {e}") from e
        table = blocks.get("particles", next(iter(blocks.values())) if len(blocks) == 1 else None)
        if not isinstance(table, pd.DataFrame) or not set(_STAR_COLUMNS[1:4]) <= set(table.columns):
            raise PicksFormatError(f"{path}: STAR file has no particles block with rlnCoordinateX/Y/Z")
        meta, classes = _star_meta(path, blocks.get("octopi"))
        n = len(table)
        runs = table["rlnTomoName"] if "rlnTomoName" in table.columns else [self.run_name] * n
        try:
            names = (
                [particle_by_label(c).name for c in table["rlnClassNumber"]]
                if "rlnClassNumber" in table.columns
                else [self.particle] * n
            )
        except ValueError as e:
            raise PicksFormatError(f"{path}: bad rlnClassNumber: {e}") from e
        scores = (
            table["rlnAutopickFigureOfMerit"] if "rlnAutopickFigureOfMerit" in table.columns else [1.0] * n
        )
        rows = []
        for run, name, x, y, z, s in zip(runs, names, *(table[c] for c in _STAR_COLUMNS[1:4]), scores):
            vx, vy, vz = self.voxel_size(path, meta.get(run, {}))
            rows.append((run, name, x * vx, y * vy, z * vz, s))
        return self.build(path, rows, classes, meta)

    def ndjson(self, path: Path, text: str) -> list[PicksDocument]:
        rows, meta = [], {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                run, loc = item.get("run_name") or self.run_name, item["location"]
                if "voxel_size_xyz_a" in item:
                    meta[run] = {"voxel_size_xyz_a": tuple(float(v) for v in item["voxel_size_xyz_a"])}
                vx, vy, vz = self.voxel_size(path, meta.get(run, {}))
                name = item.get("particle") or self.particle
                rows.append((run, name, loc["x"] * vx, loc["y"] * vy, loc["z"] * vz, item.get("score", 1.0)))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise PicksFormatError(f"{path}: line {number} is not a point annotation: {e!r}") from e
        return self.build(path, rows, {}, meta)

    def voxel_size(self, path: Path, meta: dict) -> tuple[float, ...]:
        size = meta.get("voxel_size_xyz_a") or self.voxel_size_xyz_a
        if size is None:
            raise PicksFormatError(
                f"{path}: coordinates are in voxels but no voxel size is given; pass voxel_size_a"
            )
        return size

    def build(self, path: Path, rows: Iterable[tuple], classes: dict | None = None, meta: dict | None = None):
        """Group ``(run, class, x_a, y_a, z_a, score)`` rows into one document per run; ``classes`` adds empty ones."""
        picks: dict[str, dict[str, list[PickPoint]]] = {}
        for run, names in (classes or {}).items():
            for name in names:
                picks.setdefault(run, {})[_class_name(path, name)] = []
        for run, name, x, y, z, score in rows:
            run = self.run_name if run is None or pd.isna(run) or run == "" else str(run)
            if not run or name is None or pd.isna(name):
                missing = "run name; pass run_name" if not run else "particle class; pass particle"
                raise PicksFormatError(f"{path}: a pick has no {missing}")
            try:
                values = [float(v) for v in (x, y, z, score)]
                if not all(math.isfinite(v) for v in values):
                    raise ValueError("NaN or inf")
                point = PickPoint(x=values[0], y=values[1], z=values[2], score=values[3])
            except (TypeError, ValueError, ValidationError) as e:
                raise PicksFormatError(f"{path}: bad pick of {name!r} in run {run!r}: {e}") from e
            picks.setdefault(run, {}).setdefault(_class_name(path, name), []).append(point)
        docs = []
        for run, by_class in picks.items():
            if run is None:
                raise PicksFormatError(f"{path}: the file names no run; pass run_name")
            fields = {"tomogram_uri": "", "voxel_size_xyz_a": self.voxel_size_xyz_a or _NAN_XYZ}
            fields.update((meta or {}).get(run, {}))
            ordered = dict(sorted(by_class.items(), key=lambda kv: particle_by_name(kv[0]).label))
            docs.append(PicksDocument(run_name=run, picks=ordered, **fields))
        return docs


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


def _class_name(path: Path, name: Any) -> str:
    try:
        return particle_by_name(str(name)).name
    except ValueError as e:
        raise PicksFormatError(f"{path}: {e}") from None


def _merge_by_run(docs: Sequence[PicksDocument]) -> list[PicksDocument]:
    merged: dict[str, PicksDocument] = {}
    for doc in docs:
        if doc.run_name not in merged:
            merged[doc.run_name] = doc.model_copy(deep=True)
        else:
            for name, points in doc.picks.items():
                merged[doc.run_name].picks.setdefault(name, []).extend(points)
    return list(merged.values())


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
        size = _triple(values, "voxel_size_a", positive=True)
    return _merge_by_run(_Reader(run_name, particle, size).path(Path(path)))
