"""Particle shapes as Gaussian blobs: centres zyx Å relative to the particle centre and sigmas Å."""

from __future__ import annotations

import numpy as np

__all__ = ["blobs_for", "clutter_blobs"]


def _sphere_points(count: int) -> np.ndarray:
    """``count`` nearly even unit vectors (golden-spiral lattice)."""
    i = np.arange(count) + 0.5
    polar = np.arccos(1 - 2 * i / count)
    azimuth = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(polar), np.sin(polar) * np.sin(azimuth), np.sin(polar) * np.cos(azimuth)], axis=1)


def _ball_points(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` random points uniformly inside the unit ball."""
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return directions * rng.uniform(0, 1, size=(count, 1)) ** (1 / 3)


def blobs_for(name: str, radius_a: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The blobs of one instance of a labelled class, unrotated, centred on the particle.

    Args:
        name: a class name of :data:`~octopi_core.particles.PARTICLE_CLASSES`.
        radius_a: the class radius, Å.
        rng: draws the irregular parts (the ribosome's subunits).

    Returns:
        ``(centres, sigmas)``: ``(M, 3)`` float64 zyx Å and ``(M,)`` float64 Å.

    Raises:
        ValueError: for an unknown class name.
    """
    r = radius_a
    if name == "apo-ferritin":  # hollow shell of 24 subunits, outer radius ~r, cavity ~0.55 r
        centres = _sphere_points(24) * 0.72 * r
        sigmas = np.full(24, 0.17 * r)
    elif name == "beta-amylase":  # small compact tetramer
        tetra = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / 3**0.5
        centres = np.concatenate([tetra * 0.32 * r, tetra * 0.5 * r])
        sigmas = np.concatenate([np.full(4, 0.24 * r), np.full(4, 0.16 * r)])
    elif name == "beta-galactosidase":  # D2 tetramer of elongated subunits
        corners = np.array([[0, 1, 1], [0, 1, -1], [0, -1, 1], [0, -1, -1]], float)
        parts = [corners * [0, 0.33 * r, 0.42 * r] + [dz * r, 0, 0] for dz in (-0.3, 0.0, 0.3)]
        centres = np.concatenate(parts)
        sigmas = np.full(len(centres), 0.18 * r)
    elif name == "ribosome":  # large (60S) plus small (40S) subunit, dense and irregular
        large = _ball_points(rng, 34) * 0.5 * r + [0.18 * r, 0, 0]
        small = _ball_points(rng, 16) * 0.34 * r + [-0.5 * r, 0.1 * r, 0]
        centres = np.concatenate([large, small])
        sigmas = np.concatenate([np.full(34, 0.16 * r), np.full(16, 0.13 * r)])
    elif name == "thyroglobulin":  # elongated dimer: two rods side by side
        t = np.linspace(-0.75, 0.75, 7)[:, None]
        rod = np.concatenate([t * r, np.zeros_like(t), np.zeros_like(t)], axis=1)
        centres = np.concatenate([rod + [0, 0.17 * r, 0], rod[::-1] * [0.9, 1, 1] - [0, 0.17 * r, 0]])
        sigmas = np.full(len(centres), 0.13 * r)
    elif name == "virus-like-particle":  # thin capsid with capsomer bumps
        centres = _sphere_points(92) * 0.86 * r
        sigmas = np.full(92, 0.085 * r)
    else:  # pragma: no cover - the class list is fixed
        raise ValueError(f"no shape for particle class {name!r}")
    return centres, sigmas


def clutter_blobs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """An unlabelled protein of a similar size: compact, elongated, hollow or lumpy.

    Args:
        rng: draws the radius (40-170 Å), kind and blobs.

    Returns:
        ``(centres, sigmas, radius_a)``: ``(M, 3)`` zyx Å, ``(M,)`` Å and the radius, Å.
    """
    radius_a = float(rng.uniform(40, 170))
    kind = rng.choice(["compact", "elongated", "hollow", "lumpy"], p=[0.35, 0.25, 0.15, 0.25])
    count = int(rng.integers(4, 30))
    if kind == "compact":
        centres = _ball_points(rng, count) * 0.55 * radius_a
        sigmas = np.full(count, rng.uniform(0.15, 0.25) * radius_a)
    elif kind == "elongated":
        centres = _ball_points(rng, count) * [0.8 * radius_a, 0.25 * radius_a, 0.25 * radius_a]
        sigmas = np.full(count, rng.uniform(0.1, 0.18) * radius_a)
    elif kind == "hollow":
        count = int(rng.integers(16, 60))
        centres = _sphere_points(count) * rng.uniform(0.6, 0.85) * radius_a
        sigmas = np.full(count, rng.uniform(0.1, 0.18) * radius_a)
    else:
        centres = _ball_points(rng, count) * 0.7 * radius_a
        sigmas = rng.uniform(0.08, 0.25, size=count) * radius_a
    return centres, sigmas, radius_a
