"""Rendering objects into a density volume in place (zyx voxels, positions in Å)."""

from __future__ import annotations

import numpy as np

__all__ = ["render_blobs", "render_vesicle"]


def render_blobs(
    volume: np.ndarray,
    centre_zyx_a: np.ndarray,
    centres_a: np.ndarray,
    sigmas_a: np.ndarray,
    voxel_size_zyx_a: np.ndarray,
    amplitude: float,
) -> None:
    """Add one object (blobs, saturated so overlaps do not over-brighten) into ``volume`` in place.

    Args:
        volume: ``(Z, Y, X)`` float32 density, changed in place (maximum with the object).
        centre_zyx_a: ``(3,)`` the object's centre, zyx Å.
        centres_a: ``(M, 3)`` blob centres relative to it, zyx Å.
        sigmas_a: ``(M,)`` blob widths, Å.
        voxel_size_zyx_a: ``(3,)`` voxel size, Å.
        amplitude: the saturated density.
    """
    extent_a = np.abs(centres_a).max(axis=0) + 3 * sigmas_a.max()
    lo = np.floor((centre_zyx_a - extent_a) / voxel_size_zyx_a).astype(int)
    hi = np.ceil((centre_zyx_a + extent_a) / voxel_size_zyx_a).astype(int) + 1
    lo_c, hi_c = np.maximum(lo, 0), np.minimum(hi, volume.shape)
    if np.any(hi_c <= lo_c):
        return
    axes = [np.arange(lo_c[d], hi_c[d]) * voxel_size_zyx_a[d] - centre_zyx_a[d] for d in range(3)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij", sparse=True)
    total = np.zeros((hi_c - lo_c), dtype=np.float32)
    for (cz, cy, cx), sigma in zip(centres_a, sigmas_a):
        total += np.exp(-((zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma * sigma)).astype(
            np.float32
        )
    region = volume[lo_c[0] : hi_c[0], lo_c[1] : hi_c[1], lo_c[2] : hi_c[2]]
    np.maximum(region, amplitude * (1 - np.exp(-1.5 * total)), out=region)


def render_vesicle(
    volume: np.ndarray, centre_zyx_a: np.ndarray, radius_a: float, voxel_size_zyx_a: np.ndarray
) -> None:
    """Add a lipid bilayer vesicle (two leaflets 40 Å apart) into ``volume`` in place.

    Args:
        volume: ``(Z, Y, X)`` float32 density, changed in place (maximum with the membrane).
        centre_zyx_a: ``(3,)`` the vesicle's centre, zyx Å.
        radius_a: its mid-membrane radius, Å.
        voxel_size_zyx_a: ``(3,)`` voxel size, Å.
    """
    extent = radius_a + 60
    lo = np.maximum(np.floor((centre_zyx_a - extent) / voxel_size_zyx_a).astype(int), 0)
    hi = np.minimum(np.ceil((centre_zyx_a + extent) / voxel_size_zyx_a).astype(int) + 1, volume.shape)
    if np.any(hi <= lo):
        return
    axes = [np.arange(lo[d], hi[d]) * voxel_size_zyx_a[d] - centre_zyx_a[d] for d in range(3)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij", sparse=True)
    distance = np.sqrt(zz**2 + yy**2 + xx**2)
    leaflets = np.exp(-((distance - radius_a - 20) ** 2) / 200) + np.exp(
        -((distance - radius_a + 20) ** 2) / 200
    )
    region = volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    np.maximum(region, (0.8 * leaflets).astype(np.float32), out=region)
