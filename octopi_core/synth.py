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
from pathlib import Path

import numpy as np
import scipy.fft
from pydantic import BaseModel, ConfigDict, Field
from scipy.spatial.transform import Rotation

from .export.coordinates import zyx_to_xyz
from .particles import PARTICLE_CLASSES, ParticleClass
from .picks import PickPoint, PicksDocument

__all__ = ["PhantomSettings", "Phantom", "make_phantom", "write_phantom", "HELD_OUT_SETTINGS"]

_ELECTRON_WAVELENGTH_300KV_A = 0.01969
_SPHERICAL_ABERRATION_A = 2.7e7  # 2.7 mm


class PhantomSettings(BaseModel):
    """Ranges the generator draws each tomogram's settings from (uniform unless stated).

    Ranges are ``(low, high)``; a tomogram uses one value drawn from each. Defaults are the
    training distribution; :data:`HELD_OUT_SETTINGS` is a shifted one for evaluation.
    """

    model_config = ConfigDict(extra="forbid")

    shape_zyx: tuple[int, int, int] = (128, 256, 256)
    voxel_size_a: float | tuple[float, float, float] = 10.0
    particles_per_1e9_a3: tuple[float, float] = (3.0, 12.0)
    clutter_per_1e9_a3: tuple[float, float] = (2.0, 10.0)
    class_mix_concentration: float = Field(2.0, gt=0, description="Dirichlet concentration of the class mix")
    vesicles: tuple[int, int] = (0, 3)
    gold_beads: tuple[int, int] = (0, 3)
    sample_thickness_fraction: tuple[float, float] = (0.55, 0.9)
    shape_jitter: float = Field(0.06, ge=0, description="per-blob position jitter, fraction of radius")
    defocus_um: tuple[float, float] = (1.5, 5.0)
    phase_flipped_probability: float = 0.5
    bfactor_a2: tuple[float, float] = (50.0, 400.0)
    amplitude_contrast: tuple[float, float] = (0.07, 0.15)
    tilt_max_deg: tuple[float, float] = (40.0, 60.0)
    snr: tuple[float, float] = (0.4, 2.0)
    tilt_noise_gain: tuple[float, float] = (0.0, 1.5)
    ice_gradient: tuple[float, float] = (0.0, 0.6)
    inverted_contrast_probability: float = 0.5
    grey_offset: tuple[float, float] = (-500.0, 500.0)
    grey_log10_scale: tuple[float, float] = (-2.0, 2.0)


# Evaluation settings the training distribution does not cover: thinner tilt ranges, other
# defocus and noise, denser crowding, more clutter.
HELD_OUT_SETTINGS = PhantomSettings(
    particles_per_1e9_a3=(10.0, 16.0),
    clutter_per_1e9_a3=(8.0, 14.0),
    defocus_um=(4.5, 6.5),
    bfactor_a2=(300.0, 600.0),
    tilt_max_deg=(35.0, 45.0),
    snr=(0.3, 0.6),
    shape_jitter=0.09,
)


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


# ---------------------------------------------------------------------------------------------
# Particle shapes: blobs (centre zyx Å relative to the particle centre, sigma Å, weight).


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


def _blobs_for(name: str, radius_a: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blob centres ``(M, 3)`` Å and sigmas ``(M,)`` Å of one instance of class ``name``."""
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


def _clutter_blobs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """An unlabelled protein of a similar size: compact, elongated or hollow. Returns radius too."""
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


def _render_blobs(
    volume: np.ndarray,
    centre_zyx_a: np.ndarray,
    centres_a: np.ndarray,
    sigmas_a: np.ndarray,
    voxel_size_zyx_a: np.ndarray,
    amplitude: float,
) -> None:
    """Add one object (blobs, saturated so overlaps do not over-brighten) into ``volume`` in place."""
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


def _render_vesicle(
    volume: np.ndarray, centre_zyx_a: np.ndarray, radius_a: float, voxel_size_zyx_a: np.ndarray
) -> None:
    """Add a lipid bilayer vesicle (two leaflets 40 Å apart) into ``volume`` in place."""
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


# ---------------------------------------------------------------------------------------------


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
    vs = np.array(
        settings.voxel_size_a if isinstance(settings.voxel_size_a, tuple) else (settings.voxel_size_a,) * 3,
        float,
    )
    extent_a = np.array(shape) * vs
    thickness = _uniform(rng, settings.sample_thickness_fraction) * extent_a[0]
    slab_start = rng.uniform(0, extent_a[0] - thickness)
    slab = (slab_start, slab_start + thickness)
    slab_volume_1e9 = thickness * extent_a[1] * extent_a[2] / 1e9

    density = np.zeros(shape, dtype=np.float32)
    placed: list[tuple[np.ndarray, float]] = []
    for _ in range(int(rng.integers(settings.vesicles[0], settings.vesicles[1] + 1))):
        radius = float(rng.uniform(250, 900))
        vesicle_centre = np.array(
            [rng.uniform(*slab), rng.uniform(0, extent_a[1]), rng.uniform(0, extent_a[2])]
        )
        _render_vesicle(density, vesicle_centre, radius, vs)
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
    # Place large particles first so that small ones fill the gaps.
    order: list[ParticleClass] = sorted(
        [p for p, n in zip(PARTICLE_CLASSES, counts) for _ in range(n)], key=lambda p: -p.radius_a
    )
    for particle in order:
        centre = _place(rng, particle.radius_a, extent_a, slab, placed)
        if centre is None:
            continue
        centres, sigmas = _blobs_for(particle.name, particle.radius_a, rng)
        scale, sigma_scale = jitter[particle.name]
        centres = centres * scale + rng.normal(0, settings.shape_jitter * particle.radius_a, centres.shape)
        centres = Rotation.random(random_state=rng).apply(centres)
        _render_blobs(
            density, centre, centres, sigmas * sigma_scale, vs, amplitude=float(rng.uniform(0.85, 1.0))
        )
        placed.append((centre, particle.radius_a))
        truth[particle.name].append(centre)

    clutter = round(_uniform(rng, settings.clutter_per_1e9_a3) * slab_volume_1e9)
    clutter_centres: list[np.ndarray] = []
    for _ in range(clutter):
        centres, sigmas, radius = _clutter_blobs(rng)
        centre = _place(rng, radius, extent_a, slab, placed, tries=10)
        if centre is None:
            continue
        centres = Rotation.random(random_state=rng).apply(centres)
        _render_blobs(density, centre, centres, sigmas, vs, amplitude=float(rng.uniform(0.6, 1.0)))
        placed.append((centre, radius))
        clutter_centres.append(centre)
    for _ in range(int(rng.integers(settings.gold_beads[0], settings.gold_beads[1] + 1))):
        centre = _place(rng, 60.0, extent_a, slab, placed, tries=10)
        if centre is not None:
            _render_blobs(density, centre, np.zeros((1, 3)), np.array([25.0]), vs, amplitude=6.0)
            placed.append((centre, 60.0))

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
    volume = _image(density, vs, drawn, rng)
    del density
    return Phantom(
        volume=volume,
        voxel_size_zyx_a=(float(vs[0]), float(vs[1]), float(vs[2])),
        truth_xyz_a={name: zyx_to_xyz(points) for name, points in truth.items()},
        seed=int(seed),
        settings=drawn,
        clutter_xyz_a=zyx_to_xyz(clutter_centres),
    )


def _image(density: np.ndarray, vs: np.ndarray, drawn: dict, rng: np.random.Generator) -> np.ndarray:
    """Turn projected-potential density into a reconstructed-looking tomogram (float32)."""
    shape = density.shape
    kz = scipy.fft.fftfreq(shape[0], d=vs[0]).astype(np.float32)[:, None, None]
    ky = scipy.fft.fftfreq(shape[1], d=vs[1]).astype(np.float32)[None, :, None]
    kx = scipy.fft.rfftfreq(shape[2], d=vs[2]).astype(np.float32)[None, None, :]
    k2 = kz**2 + ky**2 + kx**2
    lam = _ELECTRON_WAVELENGTH_300KV_A
    chi = (
        np.pi * lam * drawn["defocus_um"] * 1e4 * k2 - 0.5 * np.pi * _SPHERICAL_ABERRATION_A * lam**3 * k2**2
    )
    a = drawn["amplitude_contrast"]
    ctf = -(np.sqrt(1 - a * a) * np.sin(chi) + a * np.cos(chi))
    if drawn["phase_flipped"]:
        ctf = np.abs(ctf)
    envelope = np.exp(-drawn["bfactor_a2"] * k2 / 4)
    # Missing wedge about y: frequencies whose (kx, kz) direction is steeper than the tilt range.
    tan_max = np.tan(np.radians(drawn["tilt_max_deg"]))
    wedge = (np.abs(kz) <= np.abs(kx) * tan_max + 0.5 / (shape[0] * vs[0])).astype(np.float32)
    transfer = (ctf * envelope * wedge).astype(np.float32)

    spectrum = scipy.fft.rfftn(density, workers=-1)
    spectrum *= transfer
    signal = scipy.fft.irfftn(spectrum, s=shape, workers=-1).astype(np.float32)
    del spectrum
    signal_std = float(signal[density > 0.2].std()) if np.any(density > 0.2) else float(signal.std())

    # Noise measured through the same tilts: inside the wedge only, stronger at high tilt
    # (longer path through the ice), with a mild ramp like weighted back-projection.
    tilt = np.abs(np.arctan2(np.abs(kz), np.abs(kx) + 1e-12))
    noise_shape = wedge * (1 + drawn["tilt_noise_gain"] * tilt / max(np.radians(drawn["tilt_max_deg"]), 1e-3))
    noise_shape = noise_shape * (0.3 + np.sqrt(k2) / np.sqrt(k2).max()) * np.exp(-30.0 * k2 / 4)
    white = rng.standard_normal(shape, dtype=np.float32)
    noise_spectrum = scipy.fft.rfftn(white, workers=-1)
    del white
    noise_spectrum *= noise_shape.astype(np.float32)
    noise = scipy.fft.irfftn(noise_spectrum, s=shape, workers=-1).astype(np.float32)
    del noise_spectrum
    noise *= signal_std / max(float(noise.std()), 1e-12) / drawn["snr"]
    signal += noise
    del noise

    # Smooth ice-thickness gradient across the field of view.
    grad = drawn["ice_gradient"] * signal_std
    zz, yy, xx = (np.linspace(-1, 1, n, dtype=np.float32) for n in shape)
    direction = rng.normal(size=3)
    signal += grad * (
        direction[0] * zz[:, None, None] + direction[1] * yy[None, :, None] + direction[2] * xx[None, None, :]
    )
    if drawn["inverted"]:
        np.negative(signal, out=signal)
    signal *= drawn["grey_scale"]
    signal += drawn["grey_offset"]
    return signal


def write_phantom(
    phantom: Phantom, directory: str | Path, run_name: str, *, fmt: str = "zarr", zarr_format: int = 2
) -> tuple[Path, Path]:
    """Write a phantom's tomogram and truth.

    Args:
        phantom: from :func:`make_phantom`.
        directory: folder to write into (created).
        run_name: file stem; the truth is ``<run_name>.truth.json``.
        fmt: ``"zarr"`` (OME-Zarr, ``<run_name>.zarr``) or ``"mrc"`` (``<run_name>.mrc``).
        zarr_format: 2 (NGFF 0.4) or 3 (NGFF 0.5), for ``fmt="zarr"``.

    Returns:
        ``(tomogram_path, truth_path)``.

    Raises:
        ValueError: for an unknown ``fmt``.
    """
    from .io import write_mrc, write_ome_zarr  # io depends on heavy readers; import on use

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "zarr":
        path = directory / f"{run_name}.zarr"
        write_ome_zarr(str(path), phantom.volume, phantom.voxel_size_zyx_a, zarr_format=zarr_format)
    elif fmt == "mrc":
        path = directory / f"{run_name}.mrc"
        write_mrc(str(path), phantom.volume, phantom.voxel_size_zyx_a)
    else:
        raise ValueError(f"fmt must be 'zarr' or 'mrc', got {fmt!r}")
    truth_path = directory / f"{run_name}.truth.json"
    truth_path.write_text(phantom.truth_document(run_name, str(path)).model_dump_json(indent=2))
    return path, truth_path
