"""Voxel sizes: the plausible range in Å, and the zyx triple accepted by the writers."""

from __future__ import annotations

import math

__all__ = ["MIN_VOXEL_SIZE_A", "MAX_VOXEL_SIZE_A"]

MIN_VOXEL_SIZE_A = 0.5  # smallest plausible cryo-ET voxel size, Å
MAX_VOXEL_SIZE_A = 200.0  # largest plausible cryo-ET voxel size, Å
Zyx = tuple[float, float, float]


def _zyx_argument(value: float | tuple[float, float, float], name: str) -> Zyx:
    values = tuple(float(v) for v in (value if isinstance(value, (tuple, list)) else (value,) * 3))
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name} must be a positive finite number or three of them (z, y, x), got {value!r}")
    return values
