"""Synthetic cryo-ET tomograms with known particles, for training, tests, demos and benchmarks.

Each call of :func:`make_phantom` draws every setting of one tomogram from its seed (domain
randomisation) and renders, in this order:

1. density: the six CZII classes at their radii, each with a recognisable shape built from
   Gaussian blobs (apo-ferritin a hollow 24-mer shell, beta-amylase a compact tetramer,
   beta-galactosidase a D2 tetramer, the ribosome two unequal subunits, thyroglobulin an
   elongated dimer, the virus-like particle a thin capsid), randomly rotated and slightly
   deformed, packed without overlap among unlabelled clutter proteins of similar sizes, lipid
   vesicles and occasional gold beads, in a sample slab of random thickness;
2. imaging, in Fourier space: the contrast transfer function at a random defocus (optionally
   phase-flipped), a B-factor envelope, a missing wedge about the y axis (tilt range ±40-60°),
   noise that grows with tilt angle and is confined to the measured wedge, a smooth ice
   gradient, random contrast polarity, grey-level offset and scale;
3. optional anisotropic voxel sizes (the density is rendered in Å, so any grid works).

The truth is returned as xyz coordinates in Å (voxel ``i`` sits at ``i * voxel_size`` Å).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from ..export.coordinates import zyx_to_xyz
from ..particles import PARTICLE_CLASSES, ParticleClass
from ..picks import PickPoint, PicksDocument
from .crowding import add_crowding
from .imaging import image_density
from .render import render_blobs, render_vesicle
from .settings import Crowding, Geometry, PhantomSettings, Reconstruction, ShapeModel
from .shapes import blobs_for, clutter_blobs
from .subunits import render_subunits, subunits_for

__all__ = ["Phantom", "make_phantom"]


@dataclass
class Phantom:
    """One generated tomogram and its truth.

    Attributes:
        volume: ``(Z, Y, X)`` float32 grey levels.
        voxel_size_zyx_a: voxel size, Å.
        truth_xyz_a: class name -> ``(N, 3)`` float64 particle centres, xyz Å.
        seed: the seed that reproduces it.
        settings: the values drawn for this tomogram.
        clutter_xyz_a: ``(M, 3)`` centres of the unlabelled proteins, xyz Å: not picks, but the
            look-alikes training shows the network as hard negatives.
    """

    volume: np.ndarray
    voxel_size_zyx_a: tuple[float, float, float]
    truth_xyz_a: dict[str, np.ndarray]
    seed: int
    settings: dict = field(default_factory=dict)
    clutter_xyz_a: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def truth_document(self, run_name: str, tomogram_uri: str = "") -> PicksDocument:
        """The truth as a :class:`PicksDocument` (score 1.0)."""
        picks = {
            name: [PickPoint(x=float(x), y=float(y), z=float(z)) for x, y, z in points]
            for name, points in self.truth_xyz_a.items()
        }
        vz, vy, vx = self.voxel_size_zyx_a
        return PicksDocument(
            tomogram_uri=tomogram_uri or run_name,
            run_name=run_name,
            voxel_size_xyz_a=(vx, vy, vz),
            shape_zyx=tuple(self.volume.shape),
            picks=picks,
        )


def _uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _place(
    rng: np.random.Generator,
    radius_a: float,
    extent_zyx_a: np.ndarray,
    slab_zyx_a: tuple[float, float],
    placed: list[tuple[np.ndarray, float]],
    tries: int = 30,
) -> np.ndarray | None:
    """A random centre inside the sample slab not overlapping anything placed; None if crowded out."""
    for _ in range(tries):
        margin = 0.5 * radius_a
        centre = np.array(
            [
                rng.uniform(slab_zyx_a[0] + margin, slab_zyx_a[1] - margin),
                rng.uniform(margin, extent_zyx_a[1] - margin),
                rng.uniform(margin, extent_zyx_a[2] - margin),
            ]
        )
        if all(np.linalg.norm(centre - c) >= 0.9 * (radius_a + r) for c, r in placed):
            return centre
    return None


def _draw_family(settings: PhantomSettings, rng: np.random.Generator) -> dict:
    """The values a non-default family draws per tomogram (none for the original generator)."""
    drawn: dict = {}
    if settings.voxel_size_jitter_a > 0:
        mean_a = float(np.mean(settings.voxel_size_a))
        drawn["voxel_size_a"] = _uniform(
            rng, (mean_a - settings.voxel_size_jitter_a, mean_a + settings.voxel_size_jitter_a)
        )
    if settings.binning > 1:
        drawn["binning"] = settings.binning
    reconstruction = Reconstruction(settings.reconstruction)
    if reconstruction is Reconstruction.SIRT:
        drawn.update(reconstruction=reconstruction.value, lowpass_a=_uniform(rng, (15.0, 30.0)))
    elif reconstruction is Reconstruction.DENOISED:
        drawn.update(
            reconstruction=reconstruction.value,
            lowpass_a=_uniform(rng, (8.0, 14.0)),
            denoise_factor=_uniform(rng, (3.0, 6.0)),
        )
    geometry = Geometry(settings.geometry)
    if geometry is Geometry.ROTATED_AXIS:  # far enough from y to be another geometry
        drawn.update(geometry=geometry.value, tilt_axis_deg=_uniform(rng, (30.0, 150.0)))
    elif geometry is Geometry.DUAL_AXIS:
        drawn["geometry"] = geometry.value
    if ShapeModel(settings.shape_model) is not ShapeModel.BLOBS:
        drawn["shape_model"] = ShapeModel(settings.shape_model).value
    if Crowding(settings.crowding) is not Crowding.PROTEINS:
        drawn["crowding"] = Crowding(settings.crowding).value
    return drawn


def make_phantom(
    seed: int, settings: PhantomSettings | None = None, *, shape_zyx: tuple[int, int, int] | None = None
) -> Phantom:
    """Generate one synthetic tomogram and its truth, reproducibly from ``seed``.

    Args:
        seed: any non-negative integer; the same seed and settings give the same tomogram.
        settings: ranges to draw from; default :class:`PhantomSettings()` (training distribution).
        shape_zyx: overrides ``settings.shape_zyx`` (voxels).

    Returns:
        A :class:`Phantom`.

    Raises:
        ValueError: for a negative seed or a shape under 32 voxels on an axis.
    """
    if int(seed) < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    settings = settings or PhantomSettings()
    shape = tuple(int(n) for n in (shape_zyx or settings.shape_zyx))
    if len(shape) != 3 or min(shape) < 32:
        raise ValueError(f"shape_zyx must be three sizes of at least 32 voxels, got {shape}")
    rng = np.random.default_rng(int(seed))
    family_rng = np.random.default_rng([int(seed), 17])  # what other families draw; the default never
    family = _draw_family(settings, family_rng)
    vs = np.array(
        settings.voxel_size_a if isinstance(settings.voxel_size_a, tuple) else (settings.voxel_size_a,) * 3,
        float,
    )
    if "voxel_size_a" in family:
        vs = vs + family["voxel_size_a"] - float(vs.mean())
    extent_a = np.array(shape) * vs
    binning = settings.binning
    render_shape = tuple(n * binning for n in shape) if binning > 1 else shape
    render_vs = vs / binning if binning > 1 else vs  # the density and imaging grid
    thickness = _uniform(rng, settings.sample_thickness_fraction) * extent_a[0]
    slab_start = rng.uniform(0, extent_a[0] - thickness)
    slab = (slab_start, slab_start + thickness)
    slab_volume_1e9 = thickness * extent_a[1] * extent_a[2] / 1e9

    density = np.zeros(render_shape, dtype=np.float32)
    placed: list[tuple[np.ndarray, float]] = []
    for _ in range(int(rng.integers(settings.vesicles[0], settings.vesicles[1] + 1))):
        radius = float(rng.uniform(250, 900))
        vesicle_centre = np.array(
            [rng.uniform(*slab), rng.uniform(0, extent_a[1]), rng.uniform(0, extent_a[2])]
        )
        render_vesicle(density, vesicle_centre, radius, render_vs)
        placed.append(
            (vesicle_centre, radius + 40)
        )  # keep particles off the membrane... and out of the lumen

    # Labelled particles: class mix from a Dirichlet; every class appears at least once (unless none are asked for).
    mix = rng.dirichlet(np.full(len(PARTICLE_CLASSES), settings.class_mix_concentration))
    total = _uniform(rng, settings.particles_per_1e9_a3) * slab_volume_1e9
    counts = np.round(mix * total).astype(int)
    if total > 0:
        counts = np.maximum(counts, 1)
    jitter = {p.name: (rng.uniform(0.92, 1.04), rng.uniform(0.85, 1.15)) for p in PARTICLE_CLASSES}
    truth: dict[str, list[np.ndarray]] = {p.name: [] for p in PARTICLE_CLASSES}
    first_object = len(placed)  # vesicles come before; the crowding keeps clear of what follows
    subunit_shapes = ShapeModel(settings.shape_model) is ShapeModel.SUBUNITS
    # Place large particles first so that small ones fill the gaps.
    order: list[ParticleClass] = sorted(
        [p for p, n in zip(PARTICLE_CLASSES, counts) for _ in range(n)], key=lambda p: -p.radius_a
    )
    for particle in order:
        centre = _place(rng, particle.radius_a, extent_a, slab, placed)
        if centre is None:
            continue
        if subunit_shapes:
            subunits = subunits_for(particle.name, particle.radius_a, family_rng)
            shift = family_rng.normal(
                0, 0.5 * settings.shape_jitter * particle.radius_a, subunits.centres_a.shape
            )
            subunits.centres_a = subunits.centres_a + shift
            rotation = Rotation.random(random_state=rng)
            render_subunits(density, centre, subunits, rotation, render_vs, float(rng.uniform(0.85, 1.0)))
        else:
            centres, sigmas = blobs_for(particle.name, particle.radius_a, rng)
            scale, sigma_scale = jitter[particle.name]
            centres = centres * scale + rng.normal(
                0, settings.shape_jitter * particle.radius_a, centres.shape
            )
            centres = Rotation.random(random_state=rng).apply(centres)
            render_blobs(
                density,
                centre,
                centres,
                sigmas * sigma_scale,
                render_vs,
                amplitude=float(rng.uniform(0.85, 1.0)),
            )
        placed.append((centre, particle.radius_a))
        truth[particle.name].append(centre)

    clutter = round(_uniform(rng, settings.clutter_per_1e9_a3) * slab_volume_1e9)
    clutter_centres: list[np.ndarray] = []
    for _ in range(clutter):
        centres, sigmas, radius = clutter_blobs(rng)
        centre = _place(rng, radius, extent_a, slab, placed, tries=10)
        if centre is None:
            continue
        centres = Rotation.random(random_state=rng).apply(centres)
        render_blobs(density, centre, centres, sigmas, render_vs, amplitude=float(rng.uniform(0.6, 1.0)))
        placed.append((centre, radius))
        clutter_centres.append(centre)
    for _ in range(int(rng.integers(settings.gold_beads[0], settings.gold_beads[1] + 1))):
        centre = _place(rng, 60.0, extent_a, slab, placed, tries=10)
        if centre is not None:
            render_blobs(density, centre, np.zeros((1, 3)), np.array([25.0]), render_vs, amplitude=6.0)
            placed.append((centre, 60.0))
    family.update(
        add_crowding(density, settings.crowding, placed[first_object:], slab, render_vs, family_rng)
    )

    drawn = {
        "defocus_um": _uniform(rng, settings.defocus_um),
        "phase_flipped": bool(rng.random() < settings.phase_flipped_probability),
        "bfactor_a2": _uniform(rng, settings.bfactor_a2),
        "amplitude_contrast": _uniform(rng, settings.amplitude_contrast),
        "tilt_max_deg": _uniform(rng, settings.tilt_max_deg),
        "snr": _uniform(rng, settings.snr),
        "tilt_noise_gain": _uniform(rng, settings.tilt_noise_gain),
        "ice_gradient": _uniform(rng, settings.ice_gradient),
        "inverted": bool(rng.random() < settings.inverted_contrast_probability),
        "grey_offset": _uniform(rng, settings.grey_offset),
        "grey_scale": float(10 ** _uniform(rng, settings.grey_log10_scale)),
        "sample_slab_a": [float(slab[0]), float(slab[1])],
    }
    drawn.update(family)
    volume = image_density(density, render_vs, drawn, rng)
    del density
    if binning > 1:  # average-bin; a binned voxel's centre sits (b - 1) / 2 fine voxels in
        volume = volume.reshape(shape[0], binning, shape[1], binning, shape[2], binning).mean(axis=(1, 3, 5))
        offset_a = (binning - 1) / 2 * render_vs
        truth = {name: [p - offset_a for p in points] for name, points in truth.items()}
        clutter_centres = [p - offset_a for p in clutter_centres]
    return Phantom(
        volume=volume,
        voxel_size_zyx_a=(float(vs[0]), float(vs[1]), float(vs[2])),
        truth_xyz_a={name: zyx_to_xyz(points) for name, points in truth.items()},
        seed=int(seed),
        settings=drawn,
        clutter_xyz_a=zyx_to_xyz(clutter_centres),
    )
