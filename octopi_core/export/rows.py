"""Pick rows: the flat ``(run, class, x_a, y_a, z_a, score)`` form every format writes from and reads into."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from octopi_core.exceptions import PicksFormatError
from octopi_core.export.formats import PicksFormat
from octopi_core.particles import particle_by_name
from octopi_core.picks import PickPoint, PicksDocument

__all__ = ["pick_rows", "positive_voxel_size", "class_name", "ReadContext"]

_NAN_XYZ = (math.nan, math.nan, math.nan)


def pick_rows(doc: PicksDocument) -> list[tuple[str, float, float, float, float]]:
    """Return ``(class, x_a, y_a, z_a, score)`` for every pick of ``doc``, classes in document order.

    Args:
        doc: the picks document (xyz, Å).

    Returns:
        One tuple per pick.
    """
    return [(name, p.x, p.y, p.z, p.score) for name, points in doc.picks.items() for p in points]


def positive_voxel_size(doc: PicksDocument, fmt: PicksFormat) -> tuple[float, float, float]:
    """Return ``doc.voxel_size_xyz_a`` for a format that writes voxels.

    Args:
        doc: the picks document.
        fmt: the format being written, for the message.

    Returns:
        The voxel size, xyz, Å.

    Raises:
        ValueError: when the voxel size is not positive (unknown sizes are NaN).
    """
    if not all(math.isfinite(v) and v > 0 for v in doc.voxel_size_xyz_a):
        raise ValueError(
            f"doc.voxel_size_xyz_a must be positive to write {fmt.value}; got {doc.voxel_size_xyz_a}"
        )
    return doc.voxel_size_xyz_a


def class_name(path: Path, name: Any) -> str:
    """Return the canonical class name for ``name``.

    Args:
        path: the file being read, for the message.
        name: a class name as the file spells it.

    Returns:
        The name from :mod:`octopi_core.particles`.

    Raises:
        PicksFormatError: for an unknown class, naming the file.
    """
    try:
        return particle_by_name(str(name)).name
    except ValueError as e:
        raise PicksFormatError(f"{path}: {e}") from None


class ReadContext:
    """What the caller knows that a file may lack: the run, the class and the voxel size (xyz, Å)."""

    def __init__(
        self, run_name: str | None, particle: str | None, voxel_size_xyz_a: tuple[float, ...] | None
    ):
        self.run_name, self.particle, self.voxel_size_xyz_a = run_name, particle, voxel_size_xyz_a

    def voxel_size(self, path: Path, meta: dict) -> tuple[float, ...]:
        """The voxel size (xyz, Å) a file gives in ``meta``, else the caller's; raises PicksFormatError if none."""
        size = meta.get("voxel_size_xyz_a") or self.voxel_size_xyz_a
        if size is None:
            raise PicksFormatError(
                f"{path}: coordinates are in voxels but no voxel size is given; pass voxel_size_a"
            )
        return size

    def build(
        self, path: Path, rows: Iterable[tuple], classes: dict | None = None, meta: dict | None = None
    ) -> list[PicksDocument]:
        """Group ``(run, class, x_a, y_a, z_a, score)`` rows into one document per run; ``classes`` adds empty ones."""
        picks: dict[str, dict[str, list[PickPoint]]] = {}
        for run, names in (classes or {}).items():
            for name in names:
                picks.setdefault(run, {})[class_name(path, name)] = []
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
            picks.setdefault(run, {}).setdefault(class_name(path, name), []).append(point)
        docs = []
        for run, by_class in picks.items():
            if run is None:
                raise PicksFormatError(f"{path}: the file names no run; pass run_name")
            fields = {"tomogram_uri": "", "voxel_size_xyz_a": self.voxel_size_xyz_a or _NAN_XYZ}
            fields.update((meta or {}).get(run, {}))
            ordered = dict(sorted(by_class.items(), key=lambda kv: particle_by_name(kv[0]).label))
            docs.append(PicksDocument(run_name=run, picks=ordered, **fields))
        return docs
