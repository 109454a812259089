"""Training targets: the label map painted as spheres around the true particles."""

from __future__ import annotations

import numpy as np

from ..export.coordinates import xyz_a_to_zyx_vox
from ..particles import PARTICLE_CLASSES

__all__ = ["paint_targets"]


def paint_targets(
    shape_zyx: tuple[int, int, int],
    truth_xyz_a: dict[str, np.ndarray],
    voxel_size_zyx_a: tuple[float, float, float],
    target_radius_fraction: float,
) -> np.ndarray:
    """Label map with a sphere of ``target_radius_fraction`` x class radius around each particle.

    Args:
        shape_zyx: output shape, voxels.
        truth_xyz_a: class name -> ``(N, 3)`` centres, xyz Å.
        voxel_size_zyx_a: voxel size, Å.
        target_radius_fraction: sphere radius as a fraction of the class radius.

    Returns:
        ``(Z, Y, X)`` uint8 labels (0 background, else the class label).
    """
    labels = np.zeros(shape_zyx, np.uint8)
    vs = np.asarray(voxel_size_zyx_a, float)
    for particle in PARTICLE_CLASSES:
        radius_a = target_radius_fraction * particle.radius_a
        for centre in xyz_a_to_zyx_vox(truth_xyz_a.get(particle.name, np.zeros((0, 3))), vs):
            lo = np.maximum(np.floor(centre - radius_a / vs).astype(int), 0)
            hi = np.minimum(np.ceil(centre + radius_a / vs).astype(int) + 1, shape_zyx)
            if np.any(hi <= lo):
                continue
            grids = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
            inside = sum(((g - c) * v) ** 2 for g, c, v in zip(grids, centre, vs)) <= radius_a**2
            labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]][inside] = particle.label
    return labels
