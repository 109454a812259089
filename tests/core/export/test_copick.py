"""Tests for octopi_core.export.copick: copick picks files and projects."""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np

from octopi_core.export import read_picks, render_copick_zip, render_picks, write_picks
from tests.core.export.samples import same_points as _same_points
from tests.core.export.samples import sample_doc as _doc


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


def test_copick_zip_holds_the_per_object_files(tmp_path):
    doc = _doc()
    data = render_copick_zip(doc)
    assert render_copick_zip(doc) == data  # same picks, same bytes
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == [
            "octopi_0_apo-ferritin.json",
            "octopi_0_beta-galactosidase.json",
            "octopi_0_ribosome.json",
        ]
        archive.extractall(tmp_path / "proj" / "ExperimentRuns" / "TS_5_4" / "Picks")
        ribosome = json.loads(archive.read("octopi_0_ribosome.json"))
    assert ribosome["pickable_object_name"] == "ribosome" and len(ribosome["points"]) == 1
    (back,) = read_picks(tmp_path / "proj")
    _same_points(doc, back, keep_empty=True)
