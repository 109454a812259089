"""Tests for octopi_core.export.dispatch: every format's round trip, format inference, directories, merging and bad files."""

from __future__ import annotations

import json
import math

import pytest

from octopi_core.exceptions import PicksFormatError
from octopi_core.export import PicksFormat, read_picks, render_picks, write_picks
from tests.core.export.samples import VOXEL_XYZ_A
from tests.core.export.samples import same_points as _same_points
from tests.core.export.samples import sample_doc as _doc


@pytest.mark.parametrize(
    ("fmt", "name", "keep_empty"),
    [
        (PicksFormat.JSON, "picks.json", True),
        (PicksFormat.CSV, "picks.csv", False),
        (PicksFormat.STAR, "picks.star", True),
        (PicksFormat.COPICK, "copick_dir", True),
        (PicksFormat.NDJSON, "picks.ndjson", False),
    ],
)
def test_round_trip_every_format(tmp_path, fmt, name, keep_empty):
    doc = _doc()
    written = write_picks(doc, tmp_path / name, fmt)
    assert all(p.exists() for p in written)
    (back,) = read_picks(tmp_path / name)
    _same_points(doc, back, keep_empty=keep_empty)
    if fmt in (PicksFormat.JSON, PicksFormat.STAR, PicksFormat.NDJSON):
        assert back.voxel_size_xyz_a == pytest.approx(VOXEL_XYZ_A)
    if fmt in (PicksFormat.JSON, PicksFormat.STAR):
        assert back.shape_zyx == doc.shape_zyx
        assert back.tomogram_uri == doc.tomogram_uri and back.model_version == doc.model_version


def test_format_inferred_from_suffix_and_string_accepted(tmp_path):
    doc = _doc()
    for name in ("a.json", "a.csv", "a.star", "a.ndjson", "a.jsonl"):
        write_picks(doc, tmp_path / name)
        _same_points(doc, read_picks(tmp_path / name)[0], keep_empty=name in ("a.json", "a.star"))
    assert render_picks(doc, "CSV").startswith("run_name,")
    with pytest.raises(ValueError, match="cannot infer"):
        write_picks(doc, tmp_path / "a.txt")


def test_unknown_format_lists_allowed():
    with pytest.raises(ValueError, match="json, csv, star, copick, ndjson"):
        render_picks(_doc(), "xml")


def test_directory_of_many_documents(tmp_path):
    write_picks(_doc("TS_1"), tmp_path / "d" / "one.json")
    write_picks(_doc("TS_2"), tmp_path / "d" / "sub" / "two.json")
    docs = read_picks(tmp_path / "d")
    assert [d.run_name for d in docs] == ["TS_1", "TS_2"]


def test_unknown_class_name_in_file(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("run_name,particle_type,x,y,z,score\nTS,proteasome,1,2,3,0.5\n")
    with pytest.raises(PicksFormatError, match=r"odd\.csv.*unknown particle class 'proteasome'"):
        read_picks(path)
    doc = json.loads(render_picks(_doc(), "json"))
    doc["picks"]["proteasome"] = []
    (tmp_path / "odd.json").write_text(json.dumps(doc))
    with pytest.raises(PicksFormatError, match=r"odd\.json.*proteasome"):
        read_picks(tmp_path / "odd.json")


def test_bad_values_and_paths(tmp_path):
    path = tmp_path / "score.csv"
    path.write_text("run_name,particle_type,x,y,z,score\nTS,ribosome,1,2,3,7.5\n")
    with pytest.raises(PicksFormatError, match=r"score\.csv"):
        read_picks(path)
    (tmp_path / "garbage.star").write_text("this is not\na star file\n")
    with pytest.raises(PicksFormatError, match=r"garbage\.star.*particles block"):
        read_picks(tmp_path / "garbage.star")
    (tmp_path / "bad.ndjson").write_text('{"type": "point"}\n')
    with pytest.raises(PicksFormatError, match=r"bad\.ndjson.*line 1"):
        read_picks(tmp_path / "bad.ndjson")
    with pytest.raises(PicksFormatError, match="no such file"):
        read_picks(tmp_path / "missing.json")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(PicksFormatError, match="unknown picks file suffix"):
        read_picks(tmp_path / "notes.txt")


def test_star_and_ndjson_need_voxel_size():
    doc = _doc().model_copy(update={"voxel_size_xyz_a": (math.nan,) * 3})
    for fmt in ("star", "ndjson"):
        with pytest.raises(ValueError, match="voxel_size_xyz_a"):
            render_picks(doc, fmt)


def test_files_of_one_run_are_merged(tmp_path):
    doc = _doc()
    for name in ("apo-ferritin", "ribosome"):
        part = doc.model_copy(update={"picks": {name: doc.picks[name]}})
        write_picks(part, tmp_path / "d" / f"{name}.ndjson")
    (back,) = read_picks(tmp_path / "d")
    _same_points(doc, back, keep_empty=False)


def test_per_object_and_pixel_coordinates_only_where_they_apply(tmp_path):
    with pytest.raises(ValueError, match="per_object"):
        write_picks(_doc(), tmp_path / "p.csv", per_object=True)
    with pytest.raises(ValueError, match="pixel_coordinates"):
        write_picks(_doc(), tmp_path / "p.ndjson", pixel_coordinates=True)
