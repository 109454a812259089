"""The picks document: what a prediction returns and what truth files hold.

Coordinates are xyz in Å in the frame of the original tomogram (voxel ``i`` of the original
tomogram sits at ``origin + i * voxel_size`` Å). The same document holds ground truth, with
``score`` 1.0, so ``evaluate`` reads predictions and truth alike.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PICKS_SCHEMA_VERSION", "PickPoint", "PicksDocument", "points_array"]

PICKS_SCHEMA_VERSION = "1.0"


class PickPoint(BaseModel):
    """One picked particle centre, in Å, with the model's confidence in [0, 1]."""

    model_config = ConfigDict(extra="forbid")

    x: float = Field(description="x coordinate, Å")
    y: float = Field(description="y coordinate, Å")
    z: float = Field(description="z coordinate, Å")
    score: float = Field(1.0, ge=0.0, le=1.0, description="confidence in [0, 1]; 1.0 for ground truth")


class PicksDocument(BaseModel):
    """The service's JSON picks for one tomogram (schema version ``1.0``).

    ``picks`` maps each CZII class name to its list of points; every requested class is present,
    possibly with an empty list. ``timings_s`` holds seconds per stage (read, inference, localize,
    export, total) and is empty for truth files.
    """

    model_config = ConfigDict(extra="ignore")

    schema_version: str = PICKS_SCHEMA_VERSION
    tomogram_uri: str = Field(description="URI the tomogram was read from")
    run_name: str = Field(description="short tomogram identifier, used to pair picks with truth")
    unit: str = Field("angstrom", description="unit of x, y, z")
    voxel_size_xyz_a: tuple[float, float, float] = Field(description="voxel size of the original tomogram, Å")
    shape_zyx: tuple[int, int, int] | None = Field(None, description="shape of the original tomogram, voxels")
    model_version: str | None = Field(
        None, description="version of the model that made the picks; null for truth"
    )
    picks: dict[str, list[PickPoint]] = Field(default_factory=dict)
    timings_s: dict[str, float] = Field(default_factory=dict)
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def counts(self) -> dict[str, int]:
        """Number of picks per class."""
        return {name: len(points) for name, points in self.picks.items()}


def points_array(points: list[PickPoint]) -> np.ndarray:
    """Return picks as an ``(N, 3)`` float64 array of xyz Å (``(0, 3)`` when empty)."""
    if not points:
        return np.zeros((0, 3), dtype=np.float64)
    return np.array([[p.x, p.y, p.z] for p in points], dtype=np.float64)
