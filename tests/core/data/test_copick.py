"""octopi_core.data.copick against a project written by copick 1.31 (tests/fixtures/copick/make_project.py)."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from octopi_core.data import CopickSource, open_copick, open_source
from octopi_core.exceptions import AmbiguousDataError, DataSourceError, PicksExistError
from octopi_core.io import open_tomogram
from octopi_core.picks import PickPoint, PicksDocument, points_array
from octopi_core.pipeline import run_name_from_uri

from .conftest import COPICK_PYTHON, FIXTURES, write_config

pytestmark = pytest.mark.filterwarnings("ignore:.*none of octopi's classes")


def _open(config, **kwargs) -> CopickSource:
    source = open_source(str(config), **kwargs)
    assert isinstance(source, CopickSource)
    return source


def test_runs_tomograms_and_truth_as_copick_wrote_them(copick_project):
    with pytest.warns(UserWarning, match="none of octopi's classes.*proteasome"):
        source = _open(copick_project, tomo_type="wbp", picks_user="curation")
    assert (source.tomo_type, source.voxel_spacing_a) == ("wbp", 10.0)
    assert source.all_runs == source.run_names == ["TS_001", "TS_002"]
    assert source.unknown_objects == ("proteasome",)  # membrane is a segmentation, not a particle
    assert source.objects == {
        "apo-ferritin": "apo-ferritin",
        "ribosome": "ribosome",
        "proteasome": None,
        "membrane": None,
    }
    first, second = source.items
    assert first.tomogram_uri.endswith("ExperimentRuns/TS_001/VoxelSpacing10.000/wbp.zarr")
    assert run_name_from_uri(first.tomogram_uri) == "TS_001"
    with open_tomogram(first.tomogram_uri) as tomogram:  # copick's OME-Zarr, read by octopi
        assert (tomogram.shape_zyx, tomogram.voxel_size_zyx_a) == ((32, 64, 64), (10.0, 10.0, 10.0))
    assert first.classes == ("apo-ferritin", "ribosome") and second.classes == ("apo-ferritin",)
    assert first.truth is not None and second.truth is not None
    np.testing.assert_allclose(
        points_array(first.truth.picks["apo-ferritin"]), [[100, 200, 150], [400, 300, 120]]
    )
    # location + the translation of the transformation (5, -10, 2)
    np.testing.assert_allclose(points_array(first.truth.picks["ribosome"]), [[325, 310, 162]])
    np.testing.assert_allclose(points_array(second.truth.picks["apo-ferritin"]), [[250, 250, 50]])
    assert (first.truth.run_name, first.truth.tomogram_uri) == ("TS_001", first.tomogram_uri)
    assert first.truth.voxel_size_xyz_a == (10.0, 10.0, 10.0)
    assert len(first.truth_uris) == 2 and all("/Picks/curation_0_" in u for u in first.truth_uris)


def test_picks_by_user_and_session(copick_project):
    source = _open(copick_project, tomo_type="wbp", picks_user="alice", picks_session="1")
    first, second = source.items
    assert first.truth is not None and second.truth is not None
    np.testing.assert_allclose(points_array(first.truth.picks["apo-ferritin"]), [[110, 210, 150]])
    np.testing.assert_allclose(points_array(second.truth.picks["ribosome"]), [[600, 50, 250], [30, 40, 50]])
    two = _open(copick_project, tomo_type="wbp", picks_user="alice", picks_session="2")
    assert two.items[1].truth is None  # alice/2 picked only TS_001
    assert two.picks_sessions("TS_002") == [("alice", "1"), ("curation", "0")]
    with pytest.raises(AmbiguousDataError, match=r"alice/1, alice/2\).*pass picks_user and picks_session"):
        _open(copick_project, tomo_type="wbp", picks_user="alice")
    with pytest.raises(AmbiguousDataError, match="alice/1, alice/2, curation/0"):
        _open(copick_project, tomo_type="wbp")
    with pytest.raises(DataSourceError, match="no picks of user bob.*alice/1"):
        _open(copick_project, tomo_type="wbp", picks_user="bob")
    unlabelled = _open(copick_project, tomo_type="wbp", with_truth=False)
    assert [item.truth for item in unlabelled] == [None, None]


def test_missing_and_ambiguous_tomogram_type(copick_project):
    with pytest.raises(AmbiguousDataError, match="pass tomo_type, one of denoised, wbp"):
        _open(copick_project, picks_user="curation")
    with pytest.raises(
        DataSourceError, match=r"no tomogram of type isonet.*has: denoised at 10.000 Å, wbp at 10.000 Å"
    ):
        _open(copick_project, tomo_type="isonet")
    with pytest.raises(DataSourceError, match="no tomogram of type wbp at 7.84 Å"):
        _open(copick_project, tomo_type="wbp", voxel_size_a=7.84)
    with pytest.warns(UserWarning, match="runs without a tomogram denoised at 10.000 Å, left out: TS_002"):
        denoised = _open(copick_project, tomo_type="denoised", voxel_size_a=10, picks_user="curation")
    assert denoised.run_names == ["TS_001"] and denoised.all_runs == ["TS_001", "TS_002"]


def test_relative_root_static_root_and_bad_configs(copick_project, tmp_path):
    # the committed config's local://. is taken from the config's folder
    relative = copick_project.parent / "relative.json"
    shutil.copy(FIXTURES / "project" / "copick_config.json", relative)
    assert _open(relative, tomo_type="wbp", with_truth=False).run_names == ["TS_001", "TS_002"]
    overlay = tmp_path / "overlay"
    split = write_config(tmp_path / "split.json", overlay=overlay, static=copick_project.parent)
    source = _open(split, tomo_type="wbp", picks_user="curation")
    assert source.items[0].tomogram_uri.startswith(str(copick_project.parent))
    assert source.items[0].truth is not None
    (tmp_path / "portal.json").write_text(
        json.dumps({"config_type": "cryoet_data_portal", "pickable_objects": []})
    )
    with pytest.raises(DataSourceError, match="only filesystem configs"):
        open_copick(str(tmp_path / "portal.json"))
    with pytest.raises(DataSourceError, match="cannot be read"):
        open_copick(str(tmp_path / "missing.json"))
    config = json.loads(split.read_text())
    config["overlay_root"] = "ssh://host/p"
    (tmp_path / "ssh.json").write_text(json.dumps(config))
    with pytest.raises(DataSourceError, match="only local:// and s3://"):
        open_copick(str(tmp_path / "ssh.json"))


def _doc(**picks) -> PicksDocument:
    return PicksDocument(
        tomogram_uri="x",
        run_name="whatever",
        voxel_size_xyz_a=(10.0, 10.0, 10.0),
        picks={
            k.replace("_", "-"): [PickPoint(x=x, y=y, z=z, score=s) for x, y, z, s in v]
            for k, v in picks.items()
        },
    )


def test_write_picks_never_overwrites_unless_asked(copick_project):
    source = _open(copick_project, tomo_type="wbp", with_truth=False)
    assert [source.next_session_id(u) for u in ("alice", "curation", "octopi")] == ["3", "1", "0"]
    doc = _doc(apo_ferritin=[(10, 20, 30, 0.9)], ribosome=[])
    written = source.write_picks("TS_002", doc, user="octopi", session="0")
    assert [w.rsplit("/", 2)[-2:] for w in written] == [
        ["Picks", "octopi_0_apo-ferritin.json"],
        ["Picks", "octopi_0_ribosome.json"],
    ]
    content = json.loads(open(written[0]).read())
    assert (content["user_id"], content["session_id"], content["run_name"]) == ("octopi", "0", "TS_002")
    assert content["points"][0]["location"] == {"x": 10.0, "y": 20.0, "z": 30.0}
    assert source.next_session_id("octopi") == "1"
    with pytest.raises(PicksExistError, match="octopi_0_apo-ferritin.json"):
        source.write_picks("TS_002", _doc(apo_ferritin=[]), user="octopi", session="0")
    assert len(json.loads(open(written[0]).read())["points"]) == 1  # untouched
    source.write_picks("TS_002", _doc(apo_ferritin=[]), user="octopi", session="0", overwrite=True)
    assert json.loads(open(written[0]).read())["points"] == []
    # a file written by someone else after opening is found too
    late = copick_project.parent / "ExperimentRuns/TS_002/Picks/alice_7_ribosome.json"
    late.write_text("{}")
    with pytest.raises(PicksExistError, match="alice_7_ribosome.json"):
        source.write_picks("TS_002", _doc(ribosome=[]), user="alice", session="7")
    assert late.read_text() == "{}"
    # another user's files of the same object and session number are left alone
    source.write_picks("TS_002", _doc(apo_ferritin=[]), user="curation", session="1")
    curated = copick_project.parent / "ExperimentRuns/TS_002/Picks/curation_0_apo-ferritin.json"
    assert len(json.loads(curated.read_text())["points"]) == 1
    reread = _open(copick_project, tomo_type="wbp", picks_user="octopi", picks_session="0")
    assert reread.items[1].truth is not None
    assert reread.items[1].truth.counts() == {"apo-ferritin": 0, "ribosome": 0}


def test_write_picks_refuses_what_copick_would_not_read(copick_project):
    source = _open(copick_project, tomo_type="wbp", with_truth=False)
    with pytest.raises(DataSourceError, match="class 'thyroglobulin' is no pickable object here"):
        source.write_picks("TS_001", _doc(thyroglobulin=[]), user="octopi", session="0")
    with pytest.raises(DataSourceError, match="no run 'TS_009'"):
        source.write_picks("TS_009", _doc(ribosome=[]), user="octopi", session="0")
    for user, session in (("oc_topi", "0"), ("octopi", "1 2"), ("", "0"), ("octopi", "a/b")):
        with pytest.raises(ValueError, match="copick id without '_'"):
            source.write_picks("TS_001", _doc(ribosome=[]), user=user, session=session)
    assert not list((copick_project.parent / "ExperimentRuns/TS_001/Picks").glob("octopi_*"))


@pytest.mark.skipif(
    not COPICK_PYTHON.is_file(), reason="no .venv-copick (make copick-venv installs copick 1.31)"
)
def test_copick_reads_back_what_octopi_writes(copick_project, tmp_path):
    # static root: copick's project as it was written; overlay root: empty, receives octopi's picks
    config = write_config(tmp_path / "split.json", overlay=tmp_path / "overlay", static=copick_project.parent)
    source = _open(config, tomo_type="wbp", with_truth=False)
    session = source.next_session_id("octopi")
    doc = _doc(apo_ferritin=[(10, 20, 30, 0.9), (40.5, 50, 60, 0.25)], ribosome=[(300, 200, 100, 1.0)])
    written = source.write_picks("TS_001", doc, user="octopi", session=session)
    assert all(w.startswith(str(tmp_path / "overlay")) for w in written)
    out = subprocess.run(
        [str(COPICK_PYTHON), str(FIXTURES / "load_picks.py"), str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = {(p["run"], p["user"], p["session"], p["object"]): p for p in json.loads(out.stdout)}
    assert (session, len(loaded)) == ("0", 9)  # copick's 7 sets + octopi's 2
    ferritin = loaded[("TS_001", "octopi", "0", "apo-ferritin")]
    assert ferritin["locations_a"] == [[10, 20, 30], [40.5, 50, 60]]
    assert ferritin["shifts_a"] == [[0, 0, 0], [0, 0, 0]] and ferritin["scores"] == [0.9, 0.25]
    assert loaded[("TS_001", "octopi", "0", "ribosome")]["locations_a"] == [[300, 200, 100]]
    # and octopi reads copick's own picks the same way copick does (location + shift)
    ribosome = loaded[("TS_001", "curation", "0", "ribosome")]
    centre = np.add(ribosome["locations_a"], ribosome["shifts_a"])
    truth = _open(config, tomo_type="wbp", picks_user="curation").items[0].truth
    assert truth is not None
    np.testing.assert_allclose(points_array(truth.picks["ribosome"]), centre)


def test_project_on_s3(copick_project, tmp_path, s3_server, s3_bucket):
    s3_server.upload(copick_project.parent, s3_bucket, "project")
    config = json.loads(copick_project.read_text())
    config["overlay_root"] = f"s3://{s3_bucket}/project"
    (tmp_path / "bad.json").write_text(json.dumps(config))
    with pytest.raises(DataSourceError, match="bad filesystem options.*auto_mkdir"):  # copick's local fs args
        open_copick(str(tmp_path / "bad.json"))
    del config["overlay_fs_args"]
    (tmp_path / "s3.json").write_text(json.dumps(config))
    config_uri = s3_server.upload(tmp_path / "s3.json", s3_bucket, "copick_config.json")
    source = _open(config_uri, tomo_type="wbp", picks_user="alice", picks_session="1")
    assert (
        source.items[0].tomogram_uri
        == f"s3://{s3_bucket}/project/ExperimentRuns/TS_001/VoxelSpacing10.000/wbp.zarr"
    )
    with open_tomogram(source.items[0].tomogram_uri) as tomogram:
        assert tomogram.shape_zyx == (32, 64, 64)
    assert source.items[1].truth is not None
    np.testing.assert_allclose(
        points_array(source.items[1].truth.picks["ribosome"]), [[600, 50, 250], [30, 40, 50]]
    )
    written = source.write_picks("TS_001", _doc(ribosome=[(1, 2, 3, 1.0)]), user="octopi", session="5")
    assert written == [f"s3://{s3_bucket}/project/ExperimentRuns/TS_001/Picks/octopi_5_ribosome.json"]
    again = _open(config_uri, tomo_type="wbp", picks_user="octopi")
    assert again.items[0].truth is not None and again.items[0].truth.counts() == {"ribosome": 1}
