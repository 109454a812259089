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

import numpy as np

from .settings import Crowding, Geometry, PhantomSettings, Reconstruction, ShapeModel

__all__ = [
    "FAMILIES",
    "FAMILY_SEED_BASE",
    "family_seeds",
    "with_family",
    "family_for_seed",
    "settings_for_seed",
]

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


def with_family(name: str, base: PhantomSettings) -> PhantomSettings:
    """``base`` with family ``name``'s way of making tomograms: the family's changes from the generator
    default (shape model, reconstruction, geometry, binning, crowding...) applied over ``base``'s ranges.

    Training draws on this (``TrainConfig.train_families``) with its own seeds and ranges; the
    family's held-out seeds (:func:`family_seeds`) stay for evaluation.

    Raises:
        ValueError: for an unknown family.
    """
    if name not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {name!r}")
    changes = {field: value for field, value in FAMILIES[name] if value != getattr(_DEFAULT, field)}
    return base.model_copy(update=changes)


def family_for_seed(seed: int, families: list[str] | tuple[str, ...]) -> str:
    """The family a training tomogram of ``seed`` is made in, drawn uniformly from ``families`` by its seed."""
    return families[int(np.random.default_rng([int(seed), 29]).integers(len(families)))]


def settings_for_seed(
    seed: int, settings: PhantomSettings, families: list[str] | tuple[str, ...] = ()
) -> PhantomSettings:
    """The settings a training, validation or tuning tomogram of ``seed`` is made with: ``settings`` in the
    family drawn for the seed from ``families`` (:func:`family_for_seed`), or ``settings`` alone when none are given.
    """
    return with_family(family_for_seed(seed, families), settings) if families else settings
