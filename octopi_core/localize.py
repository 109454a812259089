"""Segmentation -> particle centres (zyx, voxels), per class.

A voxel belongs to a class when that class is its most probable particle class and its
probability reaches the class's ``threshold``. Each class's voxels are grouped into connected components.
Components far smaller than the blob the network was trained to paint (a sphere of ``target_radius_fraction`` x the class
radius) are noise and dropped; components much larger are touching particles and are split by
a watershed on their distance transform, seeded at peaks at least one painted radius apart.
Each remaining piece gives one pick at its confidence-weighted centroid, scored by its mean
confidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from .exceptions import InferenceCancelledError
from .particles import PARTICLE_CLASSES, ParticleClass

__all__ = [
    "ClassPicks",
    "localize_particles",
    "expected_blob_volume_vox",
    "DEFAULT_TARGET_RADIUS_FRACTION",
    "DEFAULT_THRESHOLD",
    "DEFAULT_MIN_VOLUME_FRACTION",
]

DEFAULT_TARGET_RADIUS_FRACTION = 0.5  # painted target sphere radius / class radius (training targets)
DEFAULT_THRESHOLD = 0.5  # class probability at which a voxel counts as particle
DEFAULT_MIN_VOLUME_FRACTION = 0.2  # smallest component kept, fraction of the painted sphere's volume
_FLOAT16_INF_BITS = 0x7C00  # +inf as float16 bits: larger patterns are NaNs or negative


@dataclass(frozen=True)
class ClassPicks:
    """Picks of one class.

    Attributes:
        centres_zyx_vox: ``(N, 3)`` float64 centres, zyx voxels of the segmented volume.
        scores: ``(N,)`` float64 confidences in [0, 1].
    """

    centres_zyx_vox: np.ndarray
    scores: np.ndarray


def expected_blob_volume_vox(
    radius_a: float, voxel_size_zyx_a: tuple[float, float, float], target_radius_fraction: float
) -> float:
    """Volume, in voxels, of the sphere the network paints for a particle of ``radius_a`` Å."""
    r = target_radius_fraction * radius_a
    return 4.0 / 3.0 * np.pi * r**3 / float(np.prod(voxel_size_zyx_a))


def localize_particles(
    labels: np.ndarray,
    confidence: np.ndarray,
    *,
    voxel_size_zyx_a: tuple[float, float, float],
    particles: Iterable[ParticleClass] = PARTICLE_CLASSES,
    target_radius_fraction: float = DEFAULT_TARGET_RADIUS_FRACTION,
    min_volume_fraction: float = DEFAULT_MIN_VOLUME_FRACTION,
    split_volume_fraction: float = 2.0,
    threshold: float | Mapping[str, float] = DEFAULT_THRESHOLD,
    min_score: float = 0.0,
    should_cancel: Callable[[], bool] | None = None,
) -> dict[str, ClassPicks]:
    """Find particle centres in a label map.

    Args:
        labels: ``(Z, Y, X)`` uint8 most probable particle class per voxel (0 = none), as from inference.
        confidence: ``(Z, Y, X)`` float16/float32 probability of that class.
        voxel_size_zyx_a: voxel size of ``labels``, Å.
        particles: classes to localize (default all six).
        target_radius_fraction: painted sphere radius / class radius used in training. Default 0.5.
        min_volume_fraction: components under this fraction of the painted sphere's volume are
            dropped. Default 0.2.
        split_volume_fraction: components over this multiple of that volume are split by watershed.
            Default 2.0.
        threshold: voxels whose class probability is lower are background: one value, or one per
            class name (classes left out use 0.5). Default 0.5.
        min_score: picks with a lower mean confidence are dropped. Default 0 (keep all).
        should_cancel: polled once the volume is labelled and before each confident region (make it
            cheap: a label map full of noise has hundreds of thousands of regions); True stops with
            InferenceCancelledError.

    Returns:
        Class name -> :class:`ClassPicks` (every requested class present, maybe empty).

    Raises:
        ValueError: on mismatched shapes or a non-positive voxel size.
        InferenceCancelledError: when ``should_cancel`` said so.
    """
    if labels.shape != confidence.shape or labels.ndim != 3:
        raise ValueError(
            f"labels {labels.shape} and confidence {confidence.shape} must be the same (Z, Y, X) shape"
        )
    if any(v <= 0 for v in voxel_size_zyx_a):
        raise ValueError(f"voxel_size_zyx_a must be positive, got {voxel_size_zyx_a}")
    particles = list(particles)
    if isinstance(threshold, Mapping):
        thresholds = {p.label: float(threshold.get(p.name, DEFAULT_THRESHOLD)) for p in particles}
    else:
        thresholds = {p.label: float(threshold) for p in particles}
    if not all(0.0 <= t <= 1.0 for t in thresholds.values()):
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    # One labelling pass over the whole volume finds the confident regions; each class is then
    # labelled only inside their boxes (a class's components lie within one region), which is
    # what keeps localization a few seconds on a full tomogram.
    regions, _ = ndimage.label(_at_least(confidence, min(thresholds.values(), default=1.0)))
    _check(should_cancel)
    found: dict[int, tuple[list[np.ndarray], list[float]]] = {p.label: ([], []) for p in particles}
    limits = {
        p.label: _ClassLimits.of(
            p, voxel_size_zyx_a, target_radius_fraction, min_volume_fraction, split_volume_fraction
        )
        for p in particles
    }
    smallest_kept_vox = min((limit.min_vox for limit in limits.values()), default=0.0)
    for index, box in enumerate(ndimage.find_objects(regions), start=1):
        _check(should_cancel)
        # A region whose box holds fewer voxels than any class keeps cannot give a pick (often a third).
        if box is None or math.prod(s.stop - s.start for s in box) < smallest_kept_vox:
            continue
        inside = regions[box] == index
        region_labels = np.where(inside, labels[box], 0)
        offset = np.array([s.start for s in box], dtype=np.float64)
        for label in np.unique(region_labels):
            if label not in limits:
                continue
            centres, scores = found[label]
            mask = (region_labels == label) & _at_least(confidence[box], thresholds[label])
            _add_class_centres(mask, confidence[box], offset, limits[label], centres, scores)
    result = {}
    for particle in particles:
        centres, scores = found[particle.label]
        centres_array = np.array(centres).reshape(-1, 3)
        scores_array = np.array(scores, dtype=np.float64)
        keep = scores_array >= min_score
        result[particle.name] = ClassPicks(centres_zyx_vox=centres_array[keep], scores=scores_array[keep])
    return result


def _at_least(values: np.ndarray, threshold: float) -> np.ndarray:
    """``values >= threshold``, as numpy computes it (a float16 array against a float16 threshold).

    For float16 and a positive threshold it compares the bit patterns as uint16, ten times faster (0.02 s
    against 0.18 s over 184x630x630 here): non-negative halves sort as their bits do, and negative values
    and NaNs, whose patterns lie above +inf's, are excluded as the float comparison excludes them.
    """
    if values.dtype != np.float16 or not threshold > 0:
        return values >= threshold
    bits = values.view(np.uint16)
    return (bits >= np.float16(threshold).view(np.uint16)) & (bits <= _FLOAT16_INF_BITS)


def _check(should_cancel: Callable[[], bool] | None) -> None:
    if should_cancel is not None and should_cancel():
        raise InferenceCancelledError("localization stopped")


@dataclass(frozen=True)
class _ClassLimits:
    """Component sizes (voxels) that one class's picks are judged by."""

    min_vox: float
    split_vox: float
    painted_radius_vox: float

    @classmethod
    def of(
        cls,
        particle: ParticleClass,
        voxel_size_zyx_a: tuple[float, float, float],
        target_radius_fraction: float,
        min_volume_fraction: float,
        split_volume_fraction: float,
    ) -> _ClassLimits:
        blob_vox = expected_blob_volume_vox(particle.radius_a, voxel_size_zyx_a, target_radius_fraction)
        return cls(
            min_vox=max(2.0, min_volume_fraction * blob_vox),
            split_vox=split_volume_fraction * blob_vox,
            painted_radius_vox=target_radius_fraction * particle.radius_a / max(voxel_size_zyx_a),
        )


def _add_class_centres(
    mask: np.ndarray,
    confidence: np.ndarray,
    offset: np.ndarray,
    limits: _ClassLimits,
    centres: list[np.ndarray],
    scores: list[float],
) -> None:
    """Append the picks of one class's voxels ``mask`` (a box at ``offset``) to ``centres``/``scores``."""
    components, count = ndimage.label(mask)
    if count == 0:
        return
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        if box is None or sizes[index] < limits.min_vox:
            continue
        local = components[box] == index
        weights = confidence[box].astype(np.float32) * local
        corner = offset + np.array([s.start for s in box], dtype=np.float64)
        pieces = _split(local, limits.painted_radius_vox) if sizes[index] > limits.split_vox else [local]
        for piece in pieces:
            if piece.sum() < limits.min_vox:
                continue
            w = weights * piece
            total = float(w.sum())
            if total <= 0:
                continue
            grid = np.nonzero(piece)
            centres.append(np.array([np.average(axis, weights=w[grid]) for axis in grid]) + corner)
            scores.append(total / float(piece.sum()))


def _split(local: np.ndarray, painted_radius_vox: float) -> list[np.ndarray]:
    """Split a component of touching blobs into pieces around distance-transform peaks."""
    distance = ndimage.distance_transform_edt(local)
    min_distance = max(1, round(painted_radius_vox))
    peaks = peak_local_max(
        distance, min_distance=min_distance, labels=local.astype(np.int32), exclude_border=False
    )
    if len(peaks) <= 1:
        return [local]
    markers = np.zeros(local.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    regions = watershed(-distance, markers, mask=local)
    return [regions == i for i in range(1, len(peaks) + 1)]
