"""Crowding of other kinds: membrane sheets and actin-like filaments, kept clear of the particles."""

from __future__ import annotations

import numpy as np

from .render import render_blobs, render_vesicle
from .settings import Crowding

__all__ = ["add_crowding"]

_ACTIN_RISE_A = 27.5  # axial rise per subunit of F-actin, Å
_ACTIN_TWIST_DEG = -166.7  # twist per subunit (a 2-start helix: neighbours sit on opposite strands)
_ACTIN_RADIUS_A = 25.0  # subunit centres from the filament axis, Å (filament ~70 Å wide)
_CLEARANCE_A = 10.0  # gap kept between the extra density and any placed object, Å


def add_crowding(
    density: np.ndarray,
    crowding: Crowding,
    objects: list[tuple[np.ndarray, float]],
    slab_a: tuple[float, float],
    voxel_size_zyx_a: np.ndarray,
    rng: np.random.Generator,
) -> dict:
    """Add membrane sheets or filaments to ``density`` in place, never over a placed object.

    Args:
        density: ``(Z, Y, X)`` float32 density, changed in place.
        crowding: which kind; ``proteins`` adds nothing.
        objects: ``(centre zyx Å, radius Å)`` of every placed particle, clutter protein and bead.
        slab_a: the sample slab, ``(z low, z high)`` Å.
        voxel_size_zyx_a: ``(3,)`` voxel size, Å.
        rng: the family stream.

    Returns:
        What was drawn: ``{"membranes": n}`` or ``{"filaments": n}`` (empty for ``proteins``).
    """
    crowding = Crowding(crowding)
    if crowding is Crowding.PROTEINS:
        return {}
    extra = np.zeros_like(density)
    extent_a = np.array(density.shape) * voxel_size_zyx_a
    if crowding is Crowding.MEMBRANES:
        count = int(rng.integers(1, 4))
        for _ in range(count):
            # A gently curved sheet: a huge vesicle whose surface passes through the slab.
            radius_a = float(rng.uniform(3000, 8000))
            through = np.array(
                [rng.uniform(*slab_a), rng.uniform(0, extent_a[1]), rng.uniform(0, extent_a[2])]
            )
            normal = rng.normal(size=3)
            normal /= np.linalg.norm(normal)
            render_vesicle(extra, through + normal * radius_a, radius_a, voxel_size_zyx_a)
        drawn = {"membranes": count}
    else:
        count = int(rng.integers(3, 11))
        for _ in range(count):
            _render_filament(extra, slab_a, extent_a, voxel_size_zyx_a, rng)
        drawn = {"filaments": count}
    keep_out = np.zeros(density.shape, dtype=bool)
    for centre, radius_a in objects:
        _paint_ball(keep_out, centre, radius_a + _CLEARANCE_A, voxel_size_zyx_a)
    extra[keep_out] = 0
    np.maximum(density, extra, out=density)
    return drawn


def _render_filament(
    volume: np.ndarray,
    slab_a: tuple[float, float],
    extent_a: np.ndarray,
    voxel_size_zyx_a: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """One straight actin-like filament lying roughly in the slab, across the whole field."""
    point = np.array([rng.uniform(*slab_a), rng.uniform(0, extent_a[1]), rng.uniform(0, extent_a[2])])
    direction = np.array([rng.normal(0, 0.2), rng.normal(), rng.normal()])
    direction /= np.linalg.norm(direction)
    across = np.cross(direction, [1.0, 0.0, 0.0] if abs(direction[0]) < 0.9 else [0.0, 1.0, 0.0])
    across /= np.linalg.norm(across)
    other = np.cross(direction, across)
    half_length = float(np.linalg.norm(extent_a))
    steps = np.arange(-half_length, half_length, _ACTIN_RISE_A)
    angles = np.radians(_ACTIN_TWIST_DEG) * np.arange(len(steps)) + rng.uniform(0, 2 * np.pi)
    beads = (
        point
        + steps[:, None] * direction
        + _ACTIN_RADIUS_A * (np.cos(angles)[:, None] * across + np.sin(angles)[:, None] * other)
    )
    inside = np.all((beads > -50) & (beads < extent_a + 50), axis=1)
    beads = beads[inside]
    amplitude = float(rng.uniform(0.7, 0.9))
    for start in range(0, len(beads), 8):  # short pieces keep each rendering box small
        piece = beads[start : start + 8]
        centre = piece.mean(axis=0)
        render_blobs(volume, centre, piece - centre, np.full(len(piece), 14.0), voxel_size_zyx_a, amplitude)


def _paint_ball(
    mask: np.ndarray, centre_zyx_a: np.ndarray, radius_a: float, voxel_size_zyx_a: np.ndarray
) -> None:
    """Set ``mask`` (Z, Y, X) bool to True within ``radius_a`` of ``centre_zyx_a`` (Å)."""
    lo = np.maximum(np.floor((centre_zyx_a - radius_a) / voxel_size_zyx_a).astype(int), 0)
    hi = np.minimum(np.ceil((centre_zyx_a + radius_a) / voxel_size_zyx_a).astype(int) + 1, mask.shape)
    if np.any(hi <= lo):
        return
    axes = [np.arange(lo[d], hi[d]) * voxel_size_zyx_a[d] - centre_zyx_a[d] for d in range(3)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij", sparse=True)
    region = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    region |= zz**2 + yy**2 + xx**2 <= radius_a**2
