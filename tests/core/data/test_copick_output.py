"""octopi_core.data.copick_output: the checks a service makes before it writes picks into a copick project."""

from __future__ import annotations

import json

import pytest

from octopi_core.data.copick_output import copick_root_uris, open_copick_output, write_copick_output
from octopi_core.exceptions import DataSourceError, OutputNotWritableError, PicksExistError, UnknownRunError
from octopi_core.picks import PickPoint, PicksDocument

from .conftest import write_config


def _doc(run_name: str) -> PicksDocument:
    return PicksDocument(
        tomogram_uri="t.zarr",
        run_name=run_name,
        voxel_size_xyz_a=(10.0, 10.0, 10.0),
        shape_zyx=(32, 64, 64),
        model_version="m",
        picks={"ribosome": [PickPoint(x=100.0, y=200.0, z=150.0, score=0.9)]},
    )


def test_project_fs_args_on_an_s3_root_are_refused_before_any_request(copick_project):
    config = json.loads(copick_project.read_text())
    config.update(
        overlay_root="s3://bucket/p", overlay_fs_args={"client_kwargs": {"endpoint_url": "http://x"}}
    )
    copick_project.write_text(json.dumps(config))
    with pytest.raises(DataSourceError, match="overlay_fs_args"):
        copick_root_uris(str(copick_project))


def test_roots_outside_the_local_roots_are_refused(copick_project, tmp_path):
    inside = tmp_path / "inside"
    inside.mkdir()
    static = write_config(inside / "static.json", overlay=inside, static=copick_project.parent)
    with pytest.raises(DataSourceError, match="static_root"):
        open_copick_output(str(static), "TS_001", local_roots=[inside])
    with pytest.raises(OutputNotWritableError, match="overlay_root"):
        open_copick_output(str(copick_project), "TS_001", local_roots=[inside])
    assert copick_root_uris(str(static)) == [str(inside), str(copick_project.parent)]


def test_unknown_runs_and_taken_sessions_are_refused(copick_project):
    with pytest.raises(UnknownRunError, match="TS_999"):
        open_copick_output(str(copick_project), "TS_999")
    with pytest.raises(PicksExistError):
        open_copick_output(str(copick_project), "TS_001", user="alice", session="2")
    with pytest.raises(ValueError, match="user"):
        open_copick_output(str(copick_project), "TS_001", user="a_b")


def test_each_write_takes_a_new_session(copick_project):
    first = write_copick_output(_doc("TS_002"), str(copick_project))
    second = write_copick_output(_doc("TS_002"), str(copick_project))
    assert [p.rsplit("/", 1)[1] for p in first + second] == [
        "octopi_0_ribosome.json",
        "octopi_1_ribosome.json",
    ]
    with pytest.raises(PicksExistError):
        write_copick_output(_doc("TS_002"), str(copick_project), session="1")
