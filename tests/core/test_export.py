"""Tests for octopi_core.export: voxel -> Å conversion, every format's layout and round trip, bad files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import starfile

from octopi_core.exceptions import PicksFormatError
from octopi_core.export import PicksFormat, picks_document_from_voxels, read_picks, render_picks, write_picks
from octopi_core.localize import ClassPicks
from octopi_core.picks import PickPoint, PicksDocument

VOXEL_XYZ_A = (10.0, 12.5, 8.0)


def _doc(run: str = "TS_5_4") -> PicksDocument:
    return PicksDocument(
        tomogram_uri="s3://bucket/my tomo.zarr",
        run_name=run,
        voxel_size_xyz_a=VOXEL_XYZ_A,
        shape_zyx=(184, 630, 630),
        model_version="octopi-1.2",
        picks={
            "apo-ferritin": [
                PickPoint(x=123.456, y=2000.25, z=900.5, score=0.93),
                PickPoint(x=5.0, y=6.25, z=7.125, score=0.5),
            ],
            "beta-galactosidase": [],
            "ribosome": [PickPoint(x=3141.5926, y=2718.2818, z=1414.2135, score=0.071)],
        },
        timings_s={"total": 1.5},
    )


def _same_points(a: PicksDocument, b: PicksDocument, *, keep_empty: bool) -> None:
    assert b.run_name == a.run_name
    expected = {k: v for k, v in a.picks.items() if v or keep_empty}
    assert list(b.picks) == list(expected)
    for name, points in expected.items():
        got = b.picks[name]
        assert len(got) == len(points)
        for p, q in zip(points, got):
            assert (q.x, q.y, q.z) == pytest.approx((p.x, p.y, p.z), abs=1e-3)
            assert q.score == pytest.approx(p.score, abs=1e-6)


# ---------------------------------------------------------------- voxels -> Å
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


# ---------------------------------------------------------------- round trips
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


def test_json_list_of_documents(tmp_path):
    path = tmp_path / "many.json"
    path.write_text(json.dumps([json.loads(render_picks(_doc(r), "json")) for r in ("A", "B")]))
    assert [d.run_name for d in read_picks(path)] == ["A", "B"]


# ---------------------------------------------------------------- layouts
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


def test_copick_directory_layout(tmp_path):
    doc = _doc()
    written = write_picks(doc, tmp_path / "out", "copick")
    names = sorted(p.name for p in written)
    assert names == [
        "octopi_0_apo-ferritin.json",
        "octopi_0_beta-galactosidase.json",
        "octopi_0_ribosome.json",
    ]
    content = json.loads((tmp_path / "out" / "octopi_0_apo-ferritin.json").read_text())
    assert content["pickable_object_name"] == "apo-ferritin"
    assert (content["user_id"], content["session_id"], content["run_name"]) == ("octopi", "0", "TS_5_4")
    assert (
        content["unit"] == "angstrom"
        and content["voxel_spacing"] is None
        and content["trust_orientation"] is False
    )
    point = content["points"][0]
    assert point["location"] == {"x": 123.456, "y": 2000.25, "z": 900.5}
    assert point["transformation_"] == np.eye(4).tolist() and point["score"] == 0.93
    assert json.loads((tmp_path / "out" / "octopi_0_beta-galactosidase.json").read_text())["points"] == []
    rendered = json.loads(render_picks(doc, "copick"))
    assert [c["pickable_object_name"] for c in rendered] == ["apo-ferritin", "beta-galactosidase", "ribosome"]


def test_copick_project_layout(tmp_path):
    picks_dir = tmp_path / "proj" / "ExperimentRuns" / "TS_6_4" / "Picks"
    write_picks(_doc("ignored"), picks_dir, "copick")
    for f in picks_dir.glob("*.json"):  # files written by other tools may lack run_name
        content = json.loads(f.read_text())
        del content["run_name"]
        f.write_text(json.dumps(content))
    (tmp_path / "proj" / "copick_config.json").write_text(json.dumps({"pickable_objects": []}))
    (back,) = read_picks(tmp_path / "proj")
    assert back.run_name == "TS_6_4"
    assert sorted(back.picks) == ["apo-ferritin", "beta-galactosidase", "ribosome"]
    assert math.isnan(back.voxel_size_xyz_a[0])


def test_csv_header(tmp_path):
    write_picks(_doc(), tmp_path / "p.csv")
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "run_name,particle_type,x,y,z,score"
    assert lines[1].startswith("TS_5_4,apo-ferritin,123.456,2000.25,900.5,0.93")
    assert len(lines) == 4


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


def test_kaggle_csv(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_text(
        "id,experiment,particle_type,x,y,z\n"
        "0,TS_5_4,apo-ferritin,5871.7,4985.0,1218.5\n"
        "1,TS_5_4,virus-like-particle,100.0,200.0,300.0\n"
        "2,TS_69_2,apo-ferritin,1.0,2.0,3.0\n"
    )
    docs = read_picks(path)
    assert [d.run_name for d in docs] == ["TS_5_4", "TS_69_2"]
    assert list(docs[0].picks) == ["apo-ferritin", "virus-like-particle"]
    p = docs[0].picks["apo-ferritin"][0]
    assert (p.x, p.y, p.z, p.score) == (5871.7, 4985.0, 1218.5, 1.0)


# ---------------------------------------------------------------- bad files
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


def test_csv_missing_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("run_name,particle_type,x,y\nTS,ribosome,1,2\n")
    with pytest.raises(PicksFormatError, match=r"bad\.csv.*missing columns \['z'\]"):
        read_picks(path)


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


def test_star_without_model_version_or_shape(tmp_path):
    doc = _doc().model_copy(update={"model_version": None, "shape_zyx": None})
    write_picks(doc, tmp_path / "p.star")
    (back,) = read_picks(tmp_path / "p.star")
    assert back.model_version is None and back.shape_zyx is None
    _same_points(doc, back, keep_empty=True)


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


def test_files_of_one_run_are_merged(tmp_path):
    doc = _doc()
    for name in ("apo-ferritin", "ribosome"):
        part = doc.model_copy(update={"picks": {name: doc.picks[name]}})
        write_picks(part, tmp_path / "d" / f"{name}.ndjson")
    (back,) = read_picks(tmp_path / "d")
    _same_points(doc, back, keep_empty=False)
