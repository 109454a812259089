"""Named generator families for evaluation: tomograms made in other ways than the training data.

Each family changes *how* tomograms are made (shape model, reconstruction, tilt geometry,
binning and voxel size, crowding), not only the ranges of the training settings; every other
setting is the generator default, so a family's score against ``generator`` isolates its change.
The shipped model never saw any of them. Keep them out of training and threshold tuning: their
seeds (:func:`family_seeds`) are 980000 + 1000 x the family's index + i, disjoint from the training
pools (config seed x 1000003 + ...), validation (1000000 + ...), tuning (2000000 + ...) and the
held-out sets (900000-3, 960000-3, 970000-7). Append new families at the end: an index is a seed.
"""

from __future__ import annotations

from .settings import Crowding, Geometry, PhantomSettings, Reconstruction, ShapeModel

__all__ = ["FAMILIES", "FAMILY_SEED_BASE", "family_seeds"]

FAMILY_SEED_BASE = 980_000

_DEFAULT = PhantomSettings()
FAMILIES: dict[str, PhantomSettings] = {
    # The original generator on new seeds: the reference each family is compared with.
    "generator": _DEFAULT,
    "subunit-shapes": _DEFAULT.model_copy(update={"shape_model": ShapeModel.SUBUNITS}),
    "sirt": _DEFAULT.model_copy(update={"reconstruction": Reconstruction.SIRT}),
    "denoised": _DEFAULT.model_copy(update={"reconstruction": Reconstruction.DENOISED}),
    "rotated-axis": _DEFAULT.model_copy(update={"geometry": Geometry.ROTATED_AXIS}),
    "dual-axis": _DEFAULT.model_copy(update={"geometry": Geometry.DUAL_AXIS}),
    "binned-9-11a": _DEFAULT.model_copy(update={"binning": 2, "voxel_size_jitter_a": 1.0}),
    "membranes": _DEFAULT.model_copy(update={"crowding": Crowding.MEMBRANES}),
    "filaments": _DEFAULT.model_copy(update={"crowding": Crowding.FILAMENTS}),
    # Everything at once: subunit shapes, SIRT look, a rotated axis, binned, filaments.
    "all-shifted": _DEFAULT.model_copy(
        update={
            "shape_model": ShapeModel.SUBUNITS,
            "reconstruction": Reconstruction.SIRT,
            "geometry": Geometry.ROTATED_AXIS,
            "binning": 2,
            "voxel_size_jitter_a": 1.0,
            "crowding": Crowding.FILAMENTS,
        }
    ),
}


def family_seeds(name: str, count: int) -> list[int]:
    """The held-out seeds of family ``name``: ``980000 + 1000 * index + i`` for ``i < count``.

    Args:
        name: a key of :data:`FAMILIES`.
        count: how many, 1-1000.

    Returns:
        ``count`` seeds, the same for the same family on every call.

    Raises:
        ValueError: for an unknown family or a count outside 1-1000.
    """
    if name not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {name!r}")
    if not 1 <= count <= 1000:
        raise ValueError(f"count must be 1-1000, got {count}")
    base = FAMILY_SEED_BASE + 1000 * list(FAMILIES).index(name)
    return list(range(base, base + count))
