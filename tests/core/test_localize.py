import numpy as np
import pytest

from octopi_core.exceptions import InferenceCancelledError
from octopi_core.localize import _at_least, expected_blob_volume_vox, localize_particles
from octopi_core.particles import particle_by_name
from octopi_core.train import paint_targets

VOXEL = (10.0, 10.0, 10.0)


def _painted(points_by_class, shape=(64, 96, 96)):
    truth = {name: np.array(points, float) for name, points in points_by_class.items()}
    labels = paint_targets(shape, truth, VOXEL, 0.5)
    confidence = np.where(labels > 0, 0.9, 0.05).astype(np.float16)
    return labels, confidence, truth


def test_each_painted_sphere_gives_one_pick_at_its_centre():
    labels, confidence, truth = _painted(
        {
            "ribosome": [[300.0, 300.0, 300.0], [650.0, 420.0, 310.0]],
            "apo-ferritin": [[150.0, 700.0, 200.0]],
        }
    )
    found = localize_particles(labels, confidence, voxel_size_zyx_a=VOXEL)
    assert set(found) == {
        "apo-ferritin",
        "beta-amylase",
        "beta-galactosidase",
        "ribosome",
        "thyroglobulin",
        "virus-like-particle",
    }
    ribosomes = found["ribosome"].centres_zyx_vox[:, ::-1] * 10  # back to xyz Å
    assert len(ribosomes) == 2
    for point in truth["ribosome"]:
        assert np.min(np.linalg.norm(ribosomes - point, axis=1)) < 5.0
    assert len(found["apo-ferritin"].centres_zyx_vox) == 1
    assert len(found["thyroglobulin"].centres_zyx_vox) == 0
    assert np.allclose(found["ribosome"].scores, 0.9, atol=1e-3)


def test_small_specks_are_dropped():
    labels = np.zeros((32, 32, 32), np.uint8)
    labels[10, 10, 10] = particle_by_name("ribosome").label  # 1 voxel, far below a ribosome blob
    found = localize_particles(labels, np.ones_like(labels, np.float16), voxel_size_zyx_a=VOXEL)
    assert len(found["ribosome"].centres_zyx_vox) == 0
    assert expected_blob_volume_vox(150.0, VOXEL, 0.5) == pytest.approx(4 / 3 * np.pi * 7.5**3)


@pytest.mark.parametrize("threshold", [0.0, 6e-8, 0.2, 0.5, 0.7, 1.0, 65504.0, float("inf")])
def test_the_fast_float16_comparison_equals_numpys_for_every_half(threshold):
    every_half = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)  # NaNs, -0, ±inf
    with np.errstate(invalid="ignore"):
        expected = every_half >= threshold
    assert np.array_equal(_at_least(every_half, threshold), expected)
    assert np.array_equal(
        _at_least(every_half.astype(np.float32), threshold), every_half.astype(np.float32) >= threshold
    )


def test_a_component_as_large_as_the_smallest_kept_one_is_kept():
    # The smallest region that can give a pick: its box holds just the smallest class's minimum.
    apo = particle_by_name("apo-ferritin")
    smallest = 0.1 * expected_blob_volume_vox(apo.radius_a, VOXEL, 0.5)  # 11.3 voxels at 10 Å
    labels = np.zeros((32, 32, 32), np.uint8)
    confidence = np.zeros(labels.shape, np.float16)
    labels[4:7, 4:6, 4:6] = apo.label  # 12 voxels
    labels[20:22, 20:22, 20:22] = apo.label  # 8 voxels: too few
    confidence[labels > 0] = 0.9
    found = localize_particles(
        labels, confidence, voxel_size_zyx_a=VOXEL, min_volume_fraction=0.1, particles=[apo]
    )
    assert 8 < smallest < 12
    assert np.allclose(found[apo.name].centres_zyx_vox, [[5.0, 4.5, 4.5]])


def test_touching_blobs_are_split_into_two_picks():
    # Two ribosome targets closer than the sum of the painted radii merge into one component.
    labels, confidence, truth = _painted({"ribosome": [[400.0, 400.0, 300.0], [530.0, 400.0, 300.0]]})
    found = localize_particles(labels, confidence, voxel_size_zyx_a=VOXEL)
    centres = found["ribosome"].centres_zyx_vox[:, ::-1] * 10
    assert len(centres) == 2
    for point in truth["ribosome"]:
        assert np.min(np.linalg.norm(centres - point, axis=1)) < 0.5 * 150


def test_class_subset_and_bad_input():
    labels, confidence, _ = _painted({"ribosome": [[300.0, 300.0, 300.0]]})
    only = localize_particles(
        labels, confidence, voxel_size_zyx_a=VOXEL, particles=[particle_by_name("ribosome")]
    )
    assert list(only) == ["ribosome"]
    with pytest.raises(ValueError, match="same"):
        localize_particles(labels, confidence[:-1], voxel_size_zyx_a=VOXEL)
    with pytest.raises(ValueError, match="voxel_size"):
        localize_particles(labels, confidence, voxel_size_zyx_a=(0.0, 10.0, 10.0))


def test_threshold_decides_what_is_particle():
    labels, confidence, _ = _painted({"ribosome": [[300.0, 300.0, 300.0]]})
    labels[labels == 0] = particle_by_name("ribosome").label  # inference always names a particle class
    assert len(localize_particles(labels, confidence, voxel_size_zyx_a=VOXEL)["ribosome"].scores) == 1
    assert (
        len(localize_particles(labels, confidence, voxel_size_zyx_a=VOXEL, threshold=0.95)["ribosome"].scores)
        == 0
    )
    with pytest.raises(ValueError, match="threshold"):
        localize_particles(labels, confidence, voxel_size_zyx_a=VOXEL, threshold=1.5)


def test_min_score_filters_low_confidence():
    labels, confidence, _ = _painted({"ribosome": [[300.0, 300.0, 300.0]]})
    assert (
        len(localize_particles(labels, confidence, voxel_size_zyx_a=VOXEL, min_score=0.95)["ribosome"].scores)
        == 0
    )


def test_per_class_thresholds_apply_to_their_own_class_only():
    labels, confidence, _ = _painted(
        {"ribosome": [[300.0, 300.0, 300.0]], "apo-ferritin": [[650.0, 650.0, 300.0]]}
    )
    apo = labels == particle_by_name("apo-ferritin").label
    confidence[apo] = 0.6  # a less certain apo-ferritin next to a confident ribosome
    counts = lambda found: {name: len(c.scores) for name, c in found.items() if len(c.scores)}  # noqa: E731
    both = localize_particles(
        labels, confidence, voxel_size_zyx_a=VOXEL, threshold={"apo-ferritin": 0.5, "ribosome": 0.8}
    )
    assert counts(both) == {"apo-ferritin": 1, "ribosome": 1}
    strict_apo = {"apo-ferritin": 0.7, "ribosome": 0.8}
    assert counts(localize_particles(labels, confidence, voxel_size_zyx_a=VOXEL, threshold=strict_apo)) == {
        "ribosome": 1
    }
    # a class left out of the mapping uses the default 0.5
    assert counts(
        localize_particles(labels, confidence, voxel_size_zyx_a=VOXEL, threshold={"ribosome": 0.95})
    ) == {"apo-ferritin": 1}
    with pytest.raises(ValueError, match="threshold"):
        localize_particles(labels, confidence, voxel_size_zyx_a=VOXEL, threshold={"ribosome": -0.1})


def test_localization_stops_when_asked_and_polls_per_region():
    labels, confidence, _ = _painted({"ribosome": [[300.0, 300.0, 300.0], [650.0, 420.0, 310.0]]})
    polls: list[int] = []

    def after_two() -> bool:
        polls.append(1)
        return len(polls) > 2

    with pytest.raises(InferenceCancelledError, match="localization stopped"):
        localize_particles(labels, confidence, voxel_size_zyx_a=VOXEL, should_cancel=after_two)
    assert len(polls) == 3  # once the volume is labelled, then before each of the two regions

    polls.clear()
    found = localize_particles(
        labels, confidence, voxel_size_zyx_a=VOXEL, should_cancel=lambda: bool(polls.append(1))
    )
    assert len(found["ribosome"].centres_zyx_vox) == 2 and len(polls) == 3

    empty = np.zeros((16, 16, 16), np.uint8)  # no region at all: still polled once
    with pytest.raises(InferenceCancelledError):
        localize_particles(
            empty, empty.astype(np.float16), voxel_size_zyx_a=VOXEL, should_cancel=lambda: True
        )
