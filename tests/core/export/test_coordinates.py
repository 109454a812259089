"""Tests for octopi_core.export.coordinates: centres in voxels (zyx) -> picks document (xyz, Å)."""

from __future__ import annotations

import numpy as np
import pytest

from octopi_core.export import picks_document_from_voxels, xyz_a_to_zyx_vox, zyx_to_xyz
from octopi_core.localize import ClassPicks


def test_voxel_to_angstrom_anisotropic_with_origin():
    doc = picks_document_from_voxels(
        {
            "ribosome": ClassPicks(
                np.array([[2.0, 3.0, 4.0], [0.5, 0.0, 10.0]]), np.array([0.9, 0.25], dtype=np.float32)
            )
        },
        voxel_size_zyx_a=(20.0, 15.0, 10.0),
        origin_zyx_a=(100.0, -50.0, 7.0),
        tomogram_uri="/data/ts.zarr",
        run_name="TS",
        source_voxel_size_zyx_a=(10.0, 7.5, 5.0),
        source_shape_zyx=(200, 600, 630),
        model_version="v1",
        timings_s={"total": 2.0},
    )
    p0, p1 = doc.picks["ribosome"]
    # x = 7 + 4 * 10, y = -50 + 3 * 15, z = 100 + 2 * 20
    assert (p0.x, p0.y, p0.z) == pytest.approx((47.0, -5.0, 140.0))
    assert (p1.x, p1.y, p1.z) == pytest.approx((107.0, -50.0, 110.0))
    assert p0.score == pytest.approx(0.9) and p1.score == 0.25
    assert doc.voxel_size_xyz_a == (5.0, 7.5, 10.0)  # source voxel size, xyz order
    assert doc.shape_zyx == (200, 600, 630)
    assert doc.timings_s == {"total": 2.0} and doc.model_version == "v1"


def test_voxel_conversion_classes_in_label_order_and_empty_class():
    doc = picks_document_from_voxels(
        {
            "ribosome": ClassPicks(np.zeros((0, 3)), np.zeros(0)),
            "apoferritin": ClassPicks(np.ones((1, 3)), np.ones(1)),
        },
        voxel_size_zyx_a=(10, 10, 10),
        origin_zyx_a=(0, 0, 0),
        tomogram_uri="t",
        run_name="TS",
        source_voxel_size_zyx_a=(10, 10, 10),
        source_shape_zyx=None,
        model_version=None,
    )
    assert list(doc.picks) == ["apo-ferritin", "ribosome"]
    assert doc.picks["ribosome"] == [] and doc.shape_zyx is None


@pytest.mark.parametrize(
    ("change", "argument"),
    [
        ({"voxel_size_zyx_a": (10, 0, 10)}, "voxel_size_zyx_a"),
        (
            {"found": {"ribosome": ClassPicks(np.zeros((2, 2)), np.zeros(2))}},
            r"found\['ribosome'\].centres_zyx_vox",
        ),
        (
            {"found": {"ribosome": ClassPicks(np.zeros((2, 3)), np.array([0.5, 1.5]))}},
            r"found\['ribosome'\].scores",
        ),
        ({"found": {"ribosome": ClassPicks(np.zeros((2, 3)), np.zeros(3))}}, r"found\['ribosome'\].scores"),
        (
            {"found": {"proteasome": ClassPicks(np.zeros((2, 3)), np.zeros(2))}},
            "found: unknown particle class",
        ),
    ],
)
def test_voxel_conversion_rejects_bad_input(change, argument):
    kwargs = {
        "found": {"ribosome": ClassPicks(np.zeros((2, 3)), np.zeros(2))},
        "voxel_size_zyx_a": (10, 10, 10),
        "origin_zyx_a": (0, 0, 0),
        "tomogram_uri": "t",
        "run_name": "TS",
        "source_voxel_size_zyx_a": (10, 10, 10),
        "source_shape_zyx": None,
        "model_version": None,
    }
    kwargs.update(change)
    with pytest.raises(ValueError, match=argument):
        picks_document_from_voxels(**kwargs)


def test_axis_order_crossings_name_their_direction():
    zyx_a = [np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])]
    assert zyx_to_xyz(zyx_a).tolist() == [[3.0, 2.0, 1.0], [6.0, 5.0, 4.0]]
    assert zyx_to_xyz([]).shape == (0, 3)
    xyz_a = np.array([[30.0, 20.0, 10.0]])
    assert xyz_a_to_zyx_vox(xyz_a, (10.0, 5.0, 2.0)).tolist() == [[1.0, 4.0, 15.0]]
    assert xyz_a_to_zyx_vox(np.zeros((0, 3)), (1.0, 1.0, 1.0)).shape == (0, 3)
