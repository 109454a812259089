"""Tests for octopi_core.export.star: the RELION STAR layout."""

from __future__ import annotations

import pytest
import starfile

from octopi_core.export import read_picks, write_picks
from tests.core.export.samples import same_points as _same_points
from tests.core.export.samples import sample_doc as _doc


def test_star_columns_in_voxels(tmp_path):
    doc = _doc()
    write_picks(doc, tmp_path / "p.star")
    blocks = starfile.read(tmp_path / "p.star", always_dict=True)
    particles = blocks["particles"]
    assert list(particles.columns) == [
        "rlnTomoName",
        "rlnCoordinateX",
        "rlnCoordinateY",
        "rlnCoordinateZ",
        "rlnClassNumber",
        "rlnAutopickFigureOfMerit",
    ]
    first = particles.iloc[0]
    assert first["rlnCoordinateX"] == pytest.approx(123.456 / 10.0, abs=1e-5)
    assert first["rlnCoordinateY"] == pytest.approx(2000.25 / 12.5, abs=1e-5)
    assert first["rlnCoordinateZ"] == pytest.approx(900.5 / 8.0, abs=1e-5)
    assert list(particles["rlnClassNumber"]) == [1, 1, 4]
    assert blocks["octopi"].iloc[0]["octopiVoxelSizeYAngst"] == pytest.approx(12.5)
    assert blocks["octopi"].iloc[0]["octopiClassNames"] == "apo-ferritin,beta-galactosidase,ribosome"


def test_star_without_model_version_or_shape(tmp_path):
    doc = _doc().model_copy(update={"model_version": None, "shape_zyx": None})
    write_picks(doc, tmp_path / "p.star")
    (back,) = read_picks(tmp_path / "p.star")
    assert back.model_version is None and back.shape_zyx is None
    _same_points(doc, back, keep_empty=True)
