"""Tests for octopi_core.export.ndjson: portal point annotations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from octopi_core.exceptions import PicksFormatError
from octopi_core.export import read_picks, write_picks
from tests.core.export.samples import same_points as _same_points
from tests.core.export.samples import sample_doc as _doc


def test_ndjson_one_point_per_line(tmp_path):
    # portal "point" lines instead of orientedPoint with identity matrices (issue 15: picks have no orientation)
    write_picks(_doc(), tmp_path / "p.ndjson")
    lines = (tmp_path / "p.ndjson").read_text().splitlines()
    assert len(lines) == 3
    items = [json.loads(line) for line in lines]
    assert all(i["type"] == "point" and "xyz_rotation_matrix" not in i for i in items)
    assert items[0]["location"] == pytest.approx(
        {"x": 123.456 / 10.0, "y": 2000.25 / 12.5, "z": 900.5 / 8.0}
    )  # voxels
    assert (items[0]["particle"], items[0]["score"], items[0]["run_name"]) == ("apo-ferritin", 0.93, "TS_5_4")


def test_ndjson_one_file_per_object_named_as_on_the_portal(tmp_path):
    doc = _doc()
    written = write_picks(doc, tmp_path / "annotations", "ndjson", per_object=True)
    # classes without picks get no file: the portal has no empty annotation
    assert sorted(p.name for p in written) == ["apo_ferritin-1.0_point.ndjson", "ribosome-1.0_point.ndjson"]
    lines = (tmp_path / "annotations" / "ribosome-1.0_point.ndjson").read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["point"]
    (back,) = read_picks(tmp_path / "annotations")
    _same_points(doc, back, keep_empty=False)


def test_ndjson_portal_file_without_extension_keys(tmp_path):
    path = tmp_path / "ribosome.ndjson"
    line = {
        "type": "orientedPoint",
        "location": {"x": 1.0, "y": 2.0, "z": 3.0},
        "xyz_rotation_matrix": np.eye(3).tolist(),
    }
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(PicksFormatError, match="voxel size"):
        read_picks(path, run_name="TS", particle="ribosome")
    (doc,) = read_picks(path, run_name="TS", particle="ribosome", voxel_size_a=10.0)
    p = doc.picks["ribosome"][0]
    assert (p.x, p.y, p.z, p.score) == (10.0, 20.0, 30.0, 1.0)
    path.write_text(json.dumps({"type": "point", "location": {"x": 1.0, "y": 2.0, "z": 3.0}}) + "\n")
    (doc,) = read_picks(path, run_name="TS", particle="ribosome", voxel_size_a=10.0)
    assert doc.picks["ribosome"][0].z == 30.0
