"""Tests for octopi_core.export.document: JSON picks documents."""

from __future__ import annotations

import json
import math

import pytest

from octopi_core.exceptions import PicksFormatError
from octopi_core.export import read_picks, render_picks, write_picks
from tests.core.export.samples import VOXEL_XYZ_A
from tests.core.export.samples import sample_doc as _doc


def test_json_list_of_documents(tmp_path):
    path = tmp_path / "many.json"
    path.write_text(json.dumps([json.loads(render_picks(_doc(r), "json")) for r in ("A", "B")]))
    assert [d.run_name for d in read_picks(path)] == ["A", "B"]


def test_garbage_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(PicksFormatError, match=r"bad\.json.*not valid JSON"):
        read_picks(path)


def test_json_of_wrong_shape(tmp_path):
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(PicksFormatError, match=r"odd\.json.*neither a picks document"):
        read_picks(path)


def test_unknown_voxel_size_survives_json(tmp_path):
    write_picks(_doc(), tmp_path / "p.csv")
    (from_csv,) = read_picks(tmp_path / "p.csv")
    assert all(math.isnan(v) for v in from_csv.voxel_size_xyz_a)
    write_picks(from_csv, tmp_path / "p.json")
    (back,) = read_picks(tmp_path / "p.json")
    assert all(math.isnan(v) for v in back.voxel_size_xyz_a)
    (given,) = read_picks(tmp_path / "p.csv", voxel_size_a=(10, 12.5, 8))
    assert given.voxel_size_xyz_a == VOXEL_XYZ_A
    with pytest.raises(ValueError, match="voxel_size_a"):
        read_picks(tmp_path / "p.csv", voxel_size_a=0)
