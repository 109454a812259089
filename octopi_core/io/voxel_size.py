"""Voxel sizes: the plausible range in Å, tidying of sizes read from headers, and the zyx triple accepted by
the writers."""

from __future__ import annotations

import math

__all__ = ["MIN_VOXEL_SIZE_A", "MAX_VOXEL_SIZE_A", "VOXEL_SIZE_SIGNIFICANT_DIGITS", "tidy_voxel_size_a"]

MIN_VOXEL_SIZE_A = 0.5  # smallest plausible cryo-ET voxel size, Å
MAX_VOXEL_SIZE_A = 200.0  # largest plausible cryo-ET voxel size, Å
# float32 (the MRC header) holds about 7 significant digits: 6 keep every digit it stores reliably and drop
# the binary noise, so 7.84 stored as 7.840000152587891 is read as 7.84.
VOXEL_SIZE_SIGNIFICANT_DIGITS = 6
Zyx = tuple[float, float, float]


def tidy_voxel_size_a(values_a: tuple[float, ...]) -> Zyx:
    """Round voxel sizes read from a file to :data:`VOXEL_SIZE_SIGNIFICANT_DIGITS` significant digits.

    Args:
        values_a: three voxel sizes (z, y, x), Å, as the file gives them (float32 headers, unit products).

    Returns:
        The three sizes, Å, e.g. ``7.840000152587891`` -> ``7.84``.
    """
    digits = VOXEL_SIZE_SIGNIFICANT_DIGITS
    z, y, x = (float(f"{float(v):.{digits}g}") if math.isfinite(v) and v != 0 else float(v) for v in values_a)
    return z, y, x


def _zyx_argument(value: float | tuple[float, float, float], name: str) -> Zyx:
    values = tuple(float(v) for v in (value if isinstance(value, (tuple, list)) else (value,) * 3))
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name} must be a positive finite number or three of them (z, y, x), got {value!r}")
    return values
