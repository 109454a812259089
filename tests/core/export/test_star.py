"""Tests for octopi_core.export.star: the RELION 5 STAR layout, read back through starfile."""

from __future__ import annotations

import pandas as pd
import pytest
import starfile

from octopi_core.exceptions import PicksFormatError
from octopi_core.export import read_picks, write_picks
from octopi_core.picks import PickPoint, PicksDocument
from tests.core.export.samples import same_points as _same_points
from tests.core.export.samples import sample_doc as _doc

_CENTRED = ["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst"]


def _centre_doc(shape_zyx: tuple[int, int, int]) -> PicksDocument:
    """One ribosome at voxel (size // 2) of every axis of a 10 Å tomogram (xyz Å = index * 10)."""
    z, y, x = (n // 2 * 10.0 for n in shape_zyx)
    return PicksDocument(
        tomogram_uri="t.mrc",
        run_name="TS_1",
        voxel_size_xyz_a=(10.0, 10.0, 10.0),
        shape_zyx=shape_zyx,
        picks={"ribosome": [PickPoint(x=x, y=y, z=z, score=0.8)]},
    )


def test_star_columns_are_relion5_centred_angstrom(tmp_path):
    # RELION 5 columns instead of voxels (issue 15: RELION 5 and copick read rlnCoordinate as tilt-series pixels)
    doc = _doc()
    write_picks(doc, tmp_path / "p.star")
    blocks = starfile.read(tmp_path / "p.star", always_dict=True)
    assert list(blocks) == ["particles", "octopi"]  # RELION's coordinate import reads the first block
    particles = blocks["particles"]
    assert list(particles.columns) == [
        "rlnTomoName",
        *_CENTRED,
        "rlnClassNumber",
        "rlnAutopickFigureOfMerit",
    ]
    first = particles.iloc[0]
    # centre = size / 2 voxels: x 630 * 10 / 2, y 630 * 12.5 / 2, z 184 * 8 / 2 Å
    assert first["rlnCenteredCoordinateXAngst"] == pytest.approx(123.456 - 3150.0, abs=1e-5)
    assert first["rlnCenteredCoordinateYAngst"] == pytest.approx(2000.25 - 3937.5, abs=1e-5)
    assert first["rlnCenteredCoordinateZAngst"] == pytest.approx(900.5 - 736.0, abs=1e-5)
    assert list(particles["rlnClassNumber"]) == [1, 1, 4]
    assert blocks["octopi"].iloc[0]["octopiVoxelSizeYAngst"] == pytest.approx(12.5)
    assert blocks["octopi"].iloc[0]["octopiClassNames"] == "apo-ferritin,beta-galactosidase,ribosome"
    (back,) = read_picks(tmp_path / "p.star")
    _same_points(doc, back, keep_empty=True)


@pytest.mark.parametrize(("shape_zyx", "expected_a"), [((64, 64, 64), 0.0), ((63, 63, 63), -5.0)])
def test_pick_at_the_centre_voxel(tmp_path, shape_zyx, expected_a):
    # even axis: voxel N/2 is the centre, at 0 Å; odd: the centre N/2.0 lies half a voxel past voxel N//2
    write_picks(_centre_doc(shape_zyx), tmp_path / "c.star")
    particles = starfile.read(tmp_path / "c.star", always_dict=True)["particles"]
    assert [float(particles.iloc[0][c]) for c in _CENTRED] == pytest.approx([expected_a] * 3, abs=1e-9)


def test_pixel_coordinates_and_their_pixel_size(tmp_path):
    doc = _doc()
    write_picks(doc, tmp_path / "p.star", pixel_coordinates=True)
    blocks = starfile.read(tmp_path / "p.star", always_dict=True)
    assert list(blocks) == ["particles", "optics", "octopi"]
    particles, optics = blocks["particles"], blocks["optics"]
    assert set(_CENTRED) <= set(particles.columns)
    first = particles.iloc[0]
    assert first["rlnCoordinateX"] == pytest.approx(123.456 / 10.0, abs=1e-5)
    assert first["rlnCoordinateY"] == pytest.approx(2000.25 / 12.5, abs=1e-5)
    assert first["rlnCoordinateZ"] == pytest.approx(900.5 / 8.0, abs=1e-5)
    assert list(particles["rlnOpticsGroup"]) == [1, 1, 1]
    assert optics.iloc[0]["rlnOpticsGroup"] == 1
    assert optics.iloc[0]["rlnTomoTiltSeriesPixelSize"] == pytest.approx(10.0)
    (back,) = read_picks(tmp_path / "p.star")
    _same_points(doc, back, keep_empty=True)


def test_earlier_files_read_back_to_the_same_angstrom(tmp_path):
    # the layout written before RELION 5 centring: rlnCoordinateX/Y/Z in voxels plus the octopi block
    doc = _doc()
    vx, vy, vz = doc.voxel_size_xyz_a
    rows = [
        ("TS_5_4", p.x / vx, p.y / vy, p.z / vz, label, p.score)
        for name, label in (("apo-ferritin", 1), ("ribosome", 4))
        for p in doc.picks[name]
    ]
    particles = pd.DataFrame(
        rows,
        columns=[
            "rlnTomoName",
            "rlnCoordinateX",
            "rlnCoordinateY",
            "rlnCoordinateZ",
            "rlnClassNumber",
            "rlnAutopickFigureOfMerit",
        ],
    )
    meta = pd.DataFrame(
        [
            {
                "rlnTomoName": "TS_5_4",
                "octopiVoxelSizeXAngst": vx,
                "octopiVoxelSizeYAngst": vy,
                "octopiVoxelSizeZAngst": vz,
                "octopiSizeX": 630,
                "octopiSizeY": 630,
                "octopiSizeZ": 184,
                "octopiTomogramUri": doc.tomogram_uri,
                "octopiModelVersion": "octopi-1.2",
                "octopiCreatedAt": doc.created_at,
                "octopiClassNames": "apo-ferritin,beta-galactosidase,ribosome",
            }
        ]
    )
    starfile.write({"particles": particles, "octopi": meta}, tmp_path / "old.star")
    write_picks(doc, tmp_path / "new.star")
    (old,) = read_picks(tmp_path / "old.star")
    (new,) = read_picks(tmp_path / "new.star")
    _same_points(doc, old, keep_empty=True)
    _same_points(old, new, keep_empty=True)


def test_one_file_per_class_for_copick(tmp_path):
    doc = _doc()
    written = write_picks(doc, tmp_path / "star", "star", per_object=True)
    assert sorted(p.name for p in written) == [
        "TS_5_4_apo-ferritin.star",
        "TS_5_4_beta-galactosidase.star",
        "TS_5_4_ribosome.star",
    ]
    ribosome = starfile.read(tmp_path / "star" / "TS_5_4_ribosome.star", always_dict=True)["particles"]
    assert list(ribosome["rlnClassNumber"]) == [4]
    (back,) = read_picks(tmp_path / "star")
    _same_points(doc, back, keep_empty=True)


def test_star_without_model_version_or_shape(tmp_path):
    doc = _doc().model_copy(update={"model_version": None, "shape_zyx": None})
    with pytest.warns(UserWarning, match="no tomogram shape"):
        write_picks(doc, tmp_path / "p.star")
    particles = starfile.read(tmp_path / "p.star", always_dict=True)["particles"]
    assert "rlnCoordinateX" in particles.columns and _CENTRED[0] not in particles.columns
    (back,) = read_picks(tmp_path / "p.star")
    assert back.model_version is None and back.shape_zyx is None
    _same_points(doc, back, keep_empty=True)


def test_foreign_relion5_file_needs_the_tomogram_shape(tmp_path):
    table = pd.DataFrame({"rlnTomoName": ["TS_1"], **{c: [0.0] for c in _CENTRED}})
    starfile.write({"particles": table}, tmp_path / "relion5.star")
    with pytest.raises(PicksFormatError, match="tomogram centre"):
        read_picks(tmp_path / "relion5.star", particle="ribosome")


def test_foreign_pixel_file_takes_the_optics_pixel_size(tmp_path):
    particles = pd.DataFrame(
        {"rlnTomoName": ["TS_1"], "rlnCoordinateX": [1.0], "rlnCoordinateY": [2.0], "rlnCoordinateZ": [3.0]}
    )
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnTomoTiltSeriesPixelSize": [7.5]})
    starfile.write({"optics": optics, "particles": particles}, tmp_path / "relion4.star")
    (doc,) = read_picks(tmp_path / "relion4.star", particle="ribosome")
    p = doc.picks["ribosome"][0]
    assert (p.x, p.y, p.z) == pytest.approx((7.5, 15.0, 22.5))
