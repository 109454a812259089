from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from octopi_core.io import load_tomogram
from octopi_core.particles import PARTICLE_CLASSES
from octopi_core.picks import PicksDocument
from octopi_core.synth import (
    FAMILIES,
    HELD_OUT_SETTINGS,
    PhantomSettings,
    Reconstruction,
    family_for_seed,
    family_seeds,
    make_phantom,
    with_family,
    write_phantom,
)
from octopi_core.synth.subunits import MASS_KDA, render_subunits, subunits_for

SMALL = PhantomSettings(shape_zyx=(48, 96, 96), particles_per_1e9_a3=(40.0, 60.0))
# Clean imaging: high SNR, no gradient, near-perfect transfer, so densities themselves can be compared.
CLEAN = SMALL.model_copy(
    update={
        "snr": (50.0, 50.0),
        "ice_gradient": (0.0, 0.0),
        "bfactor_a2": (0.0, 0.0),
        "phase_flipped_probability": 1.0,
        "defocus_um": (0.5, 0.5),
        "inverted_contrast_probability": 0.0,
        "vesicles": (0, 0),
        "gold_beads": (0, 0),
        "tilt_max_deg": (89.0, 89.0),
        "shape_zyx": (64, 128, 128),
    }
)


def test_same_seed_same_tomogram_other_seed_differs():
    a, b, c = make_phantom(3, SMALL), make_phantom(3, SMALL), make_phantom(4, SMALL)
    assert np.array_equal(a.volume, b.volume)
    assert all(np.array_equal(a.truth_xyz_a[n], b.truth_xyz_a[n]) for n in a.truth_xyz_a)
    assert a.settings == b.settings
    assert not np.array_equal(a.volume, c.volume)


def test_truth_lies_inside_the_volume_and_particles_do_not_overlap():
    phantom = make_phantom(5, SMALL)
    extent_xyz = np.array(phantom.volume.shape[::-1]) * 10.0
    assert set(phantom.truth_xyz_a) == {p.name for p in PARTICLE_CLASSES}
    everything = []
    for particle in PARTICLE_CLASSES:
        points = phantom.truth_xyz_a[particle.name]
        assert points.shape[1] == 3
        assert np.all(points >= 0) and np.all(points <= extent_xyz)
        everything += [(p, particle.radius_a) for p in points]
    assert sum(len(v) for v in phantom.truth_xyz_a.values()) >= 6
    for i, (p, r) in enumerate(everything):
        for q, s in everything[i + 1 :]:
            assert np.linalg.norm(p - q) >= 0.9 * (r + s) - 1e-6


def test_clutter_is_recorded_apart_from_the_truth():
    crowded = SMALL.model_copy(
        update={
            "shape_zyx": (64, 128, 128),
            "particles_per_1e9_a3": (10.0, 20.0),
            "clutter_per_1e9_a3": (20.0, 30.0),
        }
    )
    phantom = make_phantom(5, crowded)
    clutter = phantom.clutter_xyz_a
    assert clutter.ndim == 2 and clutter.shape[1] == 3 and len(clutter) >= 3
    extent_xyz = np.array(phantom.volume.shape[::-1]) * 10.0
    assert np.all(clutter >= 0) and np.all(clutter <= extent_xyz)
    # Clutter is placed clear of the particles (radii >= 40 and >= 60 A), so no clutter centre is a true one.
    truth = np.concatenate([v for v in phantom.truth_xyz_a.values() if len(v)])
    assert np.linalg.norm(clutter[:, None] - truth[None], axis=2).min() >= 0.9 * (40 + 60) - 1e-6
    assert make_phantom(
        5, SMALL.model_copy(update={"clutter_per_1e9_a3": (0.0, 0.0)})
    ).clutter_xyz_a.shape == (0, 3)


def test_clutter_centres_hold_protein_density():
    clean = CLEAN.model_copy(update={"particles_per_1e9_a3": (5.0, 10.0), "clutter_per_1e9_a3": (20.0, 30.0)})
    phantom = make_phantom(12, clean)
    v = phantom.volume
    v = (v - np.median(v)) / v.std()
    at_clutter = [v[tuple(np.round(p[::-1] / 10).astype(int))] for p in phantom.clutter_xyz_a]
    assert len(at_clutter) >= 5 and abs(np.mean(at_clutter)) > 1.0


def _contrast(phantom, name):
    """Mean normalised grey level at the centres of one class's particles."""
    v = phantom.volume
    v = (v - np.median(v)) / v.std()
    if phantom.settings["inverted"]:
        v = -v
    values = [
        v[tuple(np.round(p[::-1] / 10).astype(int).clip(0, np.array(v.shape) - 1))]
        for p in phantom.truth_xyz_a[name]
    ]
    return np.mean(values) if values else None


def test_particles_have_their_shapes_hollow_shells_are_hollow():
    clean = CLEAN.model_copy(update={"clutter_per_1e9_a3": (0.0, 0.0)})
    phantom = make_phantom(11, clean)
    # A dense particle stands out from the background at its centre; a hollow capsid does not.
    ribosome = _contrast(phantom, "ribosome")
    vlp = _contrast(phantom, "virus-like-particle")
    assert ribosome is not None and vlp is not None
    assert abs(ribosome) > 2.0 and abs(vlp) < 1.0


def test_held_out_settings_and_anisotropic_voxels():
    settings = HELD_OUT_SETTINGS.model_copy(
        update={"shape_zyx": (40, 80, 96), "voxel_size_a": (12.0, 10.0, 8.0)}
    )
    phantom = make_phantom(2, settings)
    assert phantom.volume.shape == (40, 80, 96)
    assert phantom.voxel_size_zyx_a == (12.0, 10.0, 8.0)
    assert HELD_OUT_SETTINGS.tilt_max_deg[1] <= 45 and 35 <= phantom.settings["tilt_max_deg"] <= 45


def test_bad_arguments():
    with pytest.raises(ValueError, match="seed"):
        make_phantom(-1, SMALL)
    with pytest.raises(ValueError, match="shape_zyx"):
        make_phantom(0, SMALL, shape_zyx=(8, 64, 64))


@pytest.mark.parametrize("fmt,zarr_format", [("zarr", 2), ("zarr", 3), ("mrc", 2)])
def test_written_phantom_reads_back_with_truth(tmp_path, fmt, zarr_format):
    phantom = make_phantom(7, SMALL)
    path, truth_path = write_phantom(phantom, tmp_path, "run-7", fmt=fmt, zarr_format=zarr_format)
    loaded = load_tomogram(str(path))
    assert loaded.volume.shape == phantom.volume.shape
    assert loaded.voxel_size_zyx_a == pytest.approx((10.0, 10.0, 10.0))
    truth = PicksDocument.model_validate_json(truth_path.read_text())
    assert truth.run_name == "run-7"
    assert sum(truth.counts().values()) == sum(len(v) for v in phantom.truth_xyz_a.values())


# --- generator families ------------------------------------------------------------------------

# make_phantom(seed, SMALL) as the generator made it before the families existed (octopi_core/synth.py at
# 15d25f2, whose output these arrays were checked against byte for byte): each class's truth and the
# clutter, the volume's 4x4x4 block means and 512 of its voxels. Compared to a tolerance, not a hash: the
# FFTs' last bits differ between CPUs (a sha256 of the bytes failed on a CI machine of another kind).
DEFAULT_FAMILY_REFERENCE = Path(__file__).with_name("default_family_reference.npz")


@pytest.mark.parametrize("seed", [3, 8])
def test_default_family_is_the_original_generator(seed):
    reference = np.load(DEFAULT_FAMILY_REFERENCE)
    phantom = make_phantom(seed, SMALL)
    truth_names = {key.split("/")[2] for key in reference.files if key.startswith(f"{seed}/truth/")}
    assert set(phantom.truth_xyz_a) == truth_names
    for name in truth_names:
        np.testing.assert_allclose(
            phantom.truth_xyz_a[name], reference[f"{seed}/truth/{name}"], rtol=0, atol=1e-6
        )
    np.testing.assert_allclose(phantom.clutter_xyz_a, reference[f"{seed}/clutter"], rtol=0, atol=1e-6)
    volume = phantom.volume.astype(np.float64)
    # a thousandth of the volume's spread: far above rounding, far below any change to how it is drawn
    atol = 1e-3 * float(volume.std())
    blocks = volume.reshape(12, 4, 24, 4, 24, 4).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(blocks, reference[f"{seed}/block_mean"], rtol=0, atol=atol)
    voxels = volume[tuple(reference["voxel_index"].T)]
    np.testing.assert_allclose(voxels, reference[f"{seed}/voxels"], rtol=0, atol=atol)
    assert not {"shape_model", "reconstruction", "geometry", "crowding", "binning"} & set(phantom.settings)


def _ball_mean(volume, centre_zyx_vox, radius_vox):
    lo = np.maximum(np.floor(centre_zyx_vox - radius_vox).astype(int), 0)
    hi = np.minimum(np.ceil(centre_zyx_vox + radius_vox).astype(int) + 1, volume.shape)
    grid = np.mgrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    inside = np.sum((grid - centre_zyx_vox[:, None, None, None]) ** 2, axis=0) <= radius_vox**2
    return volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]][inside].mean()


CLEAN_SMALL = {
    **{k: CLEAN.__dict__[k] for k in ("snr", "ice_gradient", "bfactor_a2", "defocus_um", "tilt_max_deg")},
    "phase_flipped_probability": 1.0,
    "inverted_contrast_probability": 0.0,
    "vesicles": (0, 0),
    "gold_beads": (0, 0),
    "clutter_per_1e9_a3": (0.0, 0.0),
    "shape_zyx": (48, 96, 96),
    "particles_per_1e9_a3": (40.0, 60.0),
}


@pytest.mark.parametrize(
    "family", [pytest.param(f, marks=pytest.mark.slow) if f == "all-shifted" else f for f in FAMILIES]
)
def test_every_family_puts_density_at_the_truth(family):
    phantom = make_phantom(5, FAMILIES[family].model_copy(update=CLEAN_SMALL))
    v = (phantom.volume - np.median(phantom.volume)) / phantom.volume.std()
    vs = np.array(phantom.voxel_size_zyx_a)
    contrasts = [
        # compact particles fill their inner half; hollow shells show within their full radius
        max(
            _ball_mean(v, q[::-1] / vs, 0.5 * p.radius_a / vs[0]),
            _ball_mean(v, q[::-1] / vs, p.radius_a / vs[0]),
        )
        for p in PARTICLE_CLASSES
        for q in phantom.truth_xyz_a[p.name]
    ]
    assert len(contrasts) >= 6
    assert min(contrasts) > 0.0 and np.mean(contrasts) > 0.5


@pytest.mark.parametrize("particle", PARTICLE_CLASSES, ids=lambda p: p.name)
def test_subunit_shapes_keep_the_class_radius_and_mass(particle):
    subunits = subunits_for(particle.name, particle.radius_a, np.random.default_rng(0))
    assert subunits.extent_a() == pytest.approx(particle.radius_a, rel=0.02)
    voxel_a = 4.0
    n = int(2 * particle.radius_a / voxel_a) + 12
    volume = np.zeros((n, n, n), np.float32)
    centre = np.full(3, n * voxel_a / 2)
    render_subunits(volume, centre, subunits, Rotation.random(random_state=1), np.full(3, voxel_a), 1.0)
    occupied = np.argwhere(volume > 0.5 * 0.75)
    reach_a = np.linalg.norm(occupied * voxel_a - centre, axis=1).max()
    assert particle.radius_a - 2 * voxel_a <= reach_a <= particle.radius_a + voxel_a
    # volume near the mass at protein density (overlaps, soft edges: within 30 %)
    assert len(occupied) * voxel_a**3 == pytest.approx(MASS_KDA[particle.name] * 1210, rel=0.3)


def test_family_seeds_are_disjoint_from_every_other_seed_set():
    seeds = [s for name in FAMILIES for s in family_seeds(name, 10)]
    assert len(set(seeds)) == len(seeds)
    held_out = set(range(900000, 900004)) | set(range(960000, 960004)) | set(range(970000, 970008))
    assert not held_out & set(seeds) and min(seeds) >= 980000 and max(seeds) < 1_000_000
    with pytest.raises(ValueError, match="family"):
        family_seeds("nope", 1)


def test_families_differ_from_the_generator_and_binning_keeps_the_grid():
    base = make_phantom(4, SMALL)
    for name in ("sirt", "rotated-axis", "membranes"):
        other = make_phantom(4, FAMILIES[name].model_copy(update={"shape_zyx": SMALL.shape_zyx}))
        assert not np.array_equal(base.volume, other.volume)
    binned = make_phantom(4, FAMILIES["binned-9-11a"].model_copy(update={"shape_zyx": (32, 64, 64)}))
    assert binned.volume.shape == (32, 64, 64) and binned.volume.dtype == np.float32
    assert 9.0 <= binned.voxel_size_zyx_a[0] <= 11.0 and binned.settings["binning"] == 2


def test_a_family_applied_over_training_ranges_changes_only_how_tomograms_are_made():
    broad = PhantomSettings(snr=(0.3, 2.0), shape_zyx=(48, 96, 96))
    denoised = with_family("denoised", broad)
    assert denoised.reconstruction == Reconstruction.DENOISED
    assert denoised.snr == (0.3, 2.0) and denoised.shape_zyx == (48, 96, 96)
    assert with_family("generator", broad) == broad
    binned = with_family("binned-9-11a", broad)
    assert binned.binning == 2 and binned.voxel_size_jitter_a == 1.0 and binned.snr == broad.snr
    with pytest.raises(ValueError, match="family"):
        with_family("nope", broad)


def test_training_tomograms_draw_their_family_by_seed_evenly():
    names = ["generator", "sirt", "denoised", "filaments"]
    drawn = [family_for_seed(seed, names) for seed in range(4000)]
    assert drawn == [family_for_seed(seed, names) for seed in range(4000)]  # the same seed, the same family
    counts = {name: drawn.count(name) for name in names}
    assert all(900 < n < 1100 for n in counts.values()), counts  # binomial sd 27
