"""The ``subunits`` shape model: complexes as solid ellipsoidal subunits in their published symmetry.

A second way to build the six classes, unlike the Gaussian blobs of :mod:`.shapes`: sharp-edged
solid subunits with their own densities, arranged by the complex's point group (scipy's
``Rotation.create_group``), sized so that their summed volume matches the class mass at
1.21 Å³/Da (protein density) while the whole stays within the class radius.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = ["Subunits", "MASS_KDA", "subunits_for", "render_subunits"]

# Masses from the CZII phantom dataset's model card (kDa).
MASS_KDA = {
    "apo-ferritin": 450.0,
    "beta-amylase": 268.0,
    "beta-galactosidase": 540.0,
    "ribosome": 4300.0,
    "thyroglobulin": 660.0,
    "virus-like-particle": 3400.0,
}
_A3_PER_DA = 1.21  # protein partial specific volume
_EDGE_A = 3.0  # width of the soft edge, Å
_I = np.arange(400) + 0.5  # golden-spiral directions, for measuring extents
_DIRECTIONS = np.stack(
    [
        np.cos(np.arccos(1 - 2 * _I / 400)),
        np.sin(np.arccos(1 - 2 * _I / 400)) * np.sin(np.pi * (1 + 5**0.5) * _I),
        np.sin(np.arccos(1 - 2 * _I / 400)) * np.cos(np.pi * (1 + 5**0.5) * _I),
    ],
    axis=1,
)


@dataclass
class Subunits:
    """Ellipsoids relative to the particle centre.

    Attributes:
        centres_a: ``(M, 3)`` float64 centres, zyx Å.
        semi_axes_a: ``(M, 3)`` float64 semi-axes, Å.
        frames: ``(M, 3, 3)`` float64 orientations: column ``j`` is semi-axis ``j``'s direction.
        densities: ``(M,)`` float64 relative densities (0-1].
    """

    centres_a: np.ndarray
    semi_axes_a: np.ndarray
    frames: np.ndarray
    densities: np.ndarray

    def extent_a(self) -> float:
        """The largest distance from the centre to a subunit's surface, Å (sampled, within ~1%)."""
        return _extent_a(self.centres_a, self.semi_axes_a, self.frames)


def _extent_a(centres_a: np.ndarray, semi_axes_a: np.ndarray, frames: np.ndarray) -> float:
    """Largest distance from the origin to the ellipsoids' surfaces, over 400 surface directions."""
    surface = (frames[:, None] @ (semi_axes_a[:, None, :] * _DIRECTIONS[None])[..., None])[..., 0]
    return float(np.max(np.linalg.norm(centres_a[:, None] + surface, axis=2)))


def _frame(radial: np.ndarray) -> np.ndarray:
    """A frame whose first axis points along ``radial`` (3,)."""
    e0 = radial / np.linalg.norm(radial)
    helper = np.array([0.0, 0.0, 1.0]) if abs(e0[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(e0, helper)
    e1 /= np.linalg.norm(e1)
    return np.stack([e0, e1, np.cross(e0, e1)], axis=1)


def _symmetric(group: str, parts: list[tuple[list[float], list[float]]]) -> tuple[np.ndarray, ...]:
    """Copies of reference parts (centre, semi-axes, in units of the radius) under a point group."""
    rotations = Rotation.create_group(group).as_matrix() if group != "C1" else np.eye(3)[None]
    centres, axes, frames = [], [], []
    for g in rotations:
        for centre, semi in parts:
            c = np.asarray(centre, float)
            centres.append(g @ c)
            axes.append(semi)
            frames.append(g @ _frame(c if np.linalg.norm(c) > 0 else np.array([1.0, 0.0, 0.0])))
    return np.array(centres), np.array(axes, float), np.array(frames)


def _reference(name: str) -> tuple[np.ndarray, ...]:
    """Centres, semi-axes (radial first) and frames of a class, in units of its radius."""
    if name == "apo-ferritin":  # 24 four-helix bundles lining a shell (O), cavity ~0.65 r
        return _symmetric("O", [([0.25, 0.45, 0.68], [0.14, 0.36, 0.17])])
    if name == "beta-amylase":  # D2 tetramer of compact (beta/alpha)8 barrels
        return _symmetric("D2", [([0.25, 0.3, 0.35], [0.36, 0.3, 0.26])])
    if name == "beta-galactosidase":  # D2 tetramer, each subunit two domains
        return _symmetric(
            "D2", [([0.2, 0.35, 0.3], [0.28, 0.24, 0.2]), ([0.5, 0.15, 0.55], [0.2, 0.18, 0.16])]
        )
    if name == "ribosome":  # 60S body with central protuberance, 40S body with head
        return _symmetric(
            "C1",
            [
                ([0.2, 0.0, 0.0], [0.5, 0.58, 0.46]),
                ([0.45, 0.0, 0.5], [0.2, 0.2, 0.18]),
                ([-0.5, 0.1, 0.0], [0.24, 0.5, 0.3]),
                ([-0.55, 0.1, 0.5], [0.2, 0.22, 0.2]),
            ],
        )
    if name == "thyroglobulin":  # C2 dimer of elongated, slightly curved chains
        chain = [([0.08 * t * t, 0.16, 0.65 * t], [0.2, 0.2, 0.24]) for t in (-1.0, -0.35, 0.35, 1.0)]
        return _symmetric("C2", chain)
    if name == "virus-like-particle":  # T=3 icosahedral capsid: 60 x 3 subunits in a thin shell
        parts = [([0.2, 0.3, 0.85], [0.08, 0.14, 0.12]), ([0.45, 0.1, 0.78], [0.08, 0.14, 0.12])]
        parts.append(([0.0, 0.5, 0.75], [0.08, 0.14, 0.12]))
        return _symmetric("I", parts)
    raise ValueError(f"no subunit model for particle class {name!r}")


def subunits_for(name: str, radius_a: float, rng: np.random.Generator) -> Subunits:
    """One instance of class ``name`` built from subunits, unrotated, centred on the particle.

    Args:
        name: a class name of :data:`~octopi_core.particles.PARTICLE_CLASSES`.
        radius_a: the class radius, Å: the subunits reach it and stay within it.
        rng: draws each subunit's density (0.75-1).

    Returns:
        The :class:`Subunits`, summed volume near ``MASS_KDA[name] * 1210`` Å³ (overlaps and the
        radius limit can take some off).

    Raises:
        ValueError: for an unknown class name.
    """
    centres, semi, frames = _reference(name)
    centres, semi = centres * radius_a, semi * radius_a
    target_a3 = MASS_KDA[name] * 1000 * _A3_PER_DA
    for _ in range(6):  # alternate: axes to the mass, everything to the radius
        volume_a3 = float(np.sum(4 / 3 * np.pi * np.prod(semi, axis=1)))
        semi = semi * (target_a3 / volume_a3) ** (1 / 3)
        extent = _extent_a(centres, semi, frames)
        centres, semi = centres * radius_a / extent, semi * radius_a / extent
    return Subunits(centres, semi, frames, rng.uniform(0.75, 1.0, size=len(centres)))


def render_subunits(
    volume: np.ndarray,
    centre_zyx_a: np.ndarray,
    subunits: Subunits,
    rotation: Rotation,
    voxel_size_zyx_a: np.ndarray,
    amplitude: float,
) -> None:
    """Add one particle (solid soft-edged ellipsoids, the densest wins) into ``volume`` in place.

    Args:
        volume: ``(Z, Y, X)`` float32 density, changed in place (maximum with the particle).
        centre_zyx_a: ``(3,)`` the particle's centre, zyx Å.
        subunits: its subunits, unrotated.
        rotation: the particle's orientation.
        voxel_size_zyx_a: ``(3,)`` voxel size, Å.
        amplitude: the density of a subunit of relative density 1.
    """
    matrix = rotation.as_matrix()
    centres = subunits.centres_a @ matrix.T
    frames = matrix[None] @ subunits.frames
    extent_a = subunits.extent_a() + 3 * _EDGE_A
    lo = np.maximum(np.floor((centre_zyx_a - extent_a) / voxel_size_zyx_a).astype(int), 0)
    hi = np.minimum(np.ceil((centre_zyx_a + extent_a) / voxel_size_zyx_a).astype(int) + 1, volume.shape)
    if np.any(hi <= lo):
        return
    axes = [np.arange(lo[d], hi[d]) * voxel_size_zyx_a[d] - centre_zyx_a[d] for d in range(3)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).astype(np.float32)
    total = np.zeros(points.shape[:3], dtype=np.float32)
    for centre, semi, frame, density in zip(centres, subunits.semi_axes_a, frames, subunits.densities):
        local = (points - centre.astype(np.float32)) @ frame.astype(np.float32)
        distance = np.sqrt(np.sum(np.square(local / semi.astype(np.float32)), axis=-1))
        # Soft edge about 3 Å wide at the ellipsoid's surface, measured along its shortest axis.
        inside = 0.5 * (1 - np.tanh((distance - 1) * float(semi.min()) / _EDGE_A))
        np.maximum(total, float(density) * inside, out=total)
    region = volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    np.maximum(region, amplitude * total, out=region)
