"""Tests for octopi_core.export.ndjson: portal point annotations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from octopi_core.exceptions import PicksFormatError
from octopi_core.export import read_picks, write_picks
from tests.core.export.samples import sample_doc as _doc


def test_ndjson_one_oriented_point_per_line(tmp_path):
    write_picks(_doc(), tmp_path / "p.ndjson")
    lines = (tmp_path / "p.ndjson").read_text().splitlines()
    assert len(lines) == 3
    items = [json.loads(line) for line in lines]
    assert all(i["type"] == "orientedPoint" and i["xyz_rotation_matrix"] == np.eye(3).tolist() for i in items)
    assert items[0]["location"] == pytest.approx(
        {"x": 123.456 / 10.0, "y": 2000.25 / 12.5, "z": 900.5 / 8.0}
    )  # voxels
    assert (items[0]["particle"], items[0]["score"], items[0]["run_name"]) == ("apo-ferritin", 0.93, "TS_5_4")


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
