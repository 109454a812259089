"""Symlink attacks: links inside a zarr directory or at an output target that lead outside the local roots,
unreadable path components, and error details that would show resolved paths, the cwd or the home directory."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from octopi_core.exceptions import TomogramAccessDeniedError
from octopi_core.io import load_tomogram, open_tomogram, write_output
from tests.app.conftest import assert_problem
from worker.jobs.state import JobRecord, JobStatus
from worker.main import run_worker


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    """A directory outside every local root of ``service_settings``."""
    return tmp_path_factory.mktemp("outside-the-roots")


def _zarr_copy(tomograms, directory: Path) -> Path:
    path = directory / "evil.zarr"
    shutil.copytree(tomograms.small, path)
    return path


def _first_chunk(store: Path) -> Path:
    return next(p for p in sorted((store / "0").rglob("*")) if p.is_file() and not p.name.startswith("."))


def test_zarr_metadata_linked_outside_is_refused(client, tomograms, tmp_path, outside):
    store = _zarr_copy(tomograms, tmp_path)
    shutil.move(store / ".zattrs", outside / "stolen.zattrs")
    os.symlink(outside / "stolen.zattrs", store / ".zattrs")
    body = assert_problem(client.post("/predict", json={"tomogram_uri": str(store)}), 422)
    assert body["type"].endswith("tomogram-access-denied") and str(outside) not in body["detail"]


@pytest.mark.parametrize("what", ["chunk", "level directory"])
def test_zarr_data_linked_outside_is_refused(tomograms, tmp_path, outside, what):
    store = _zarr_copy(tomograms, tmp_path)
    if what == "chunk":
        chunk = _first_chunk(store)
        shutil.move(chunk, outside / "chunk")
        os.symlink(outside / "chunk", chunk)
    else:
        shutil.move(store / "0", outside / "level0")
        os.symlink(outside / "level0", store / "0")
    with pytest.raises(TomogramAccessDeniedError, match="links outside") as caught:
        load_tomogram(str(store), target_voxel_size_a=10.0)
    assert str(outside) not in str(caught.value)


def test_links_inside_the_zarr_directory_still_read(tomograms, tmp_path):
    store = _zarr_copy(tomograms, tmp_path)
    chunk = _first_chunk(store)
    shutil.move(chunk, store / "moved-chunk")
    os.symlink(store / "moved-chunk", chunk)
    expected = load_tomogram(str(tomograms.small)).volume
    assert (load_tomogram(str(store)).volume == expected).all()


def test_output_symlink_cannot_redirect_the_write(outside, tmp_path):
    victim = outside / "victim.json"
    victim.write_text("original")
    (tmp_path / "out").mkdir()
    os.symlink(victim, tmp_path / "out" / "t.picks.json")
    os.symlink(outside, tmp_path / "out-link")
    for target in (tmp_path / "out" / "t.picks.json", tmp_path / "out-link" / "victim.json"):
        with pytest.raises(PermissionError, match="outside the allowed local roots") as caught:
            write_output(str(target), "overwritten", local_roots=[tmp_path])
        assert str(outside) not in str(caught.value)
    assert victim.read_text() == "original"


def test_worker_does_not_follow_an_output_symlink(
    redis_conn, service_settings, new_job, tomograms, outside, tmp_path
):
    """A symlink already at the output file (or an output_uri cut by '::') must not get the picks written
    elsewhere, and the job must not name a file it did not write."""
    victim = outside / "victim.json"
    victim.write_text("original")
    (tmp_path / "out").mkdir()
    os.symlink(victim, tmp_path / "out" / "small.picks.json")
    linked = new_job(tomograms.small, identity="sym-1", output_uri=str(tmp_path / "out"), formats=["json"])
    chained = new_job(
        tomograms.small, identity="sym-2", output_uri=f"{tmp_path / 'victim2.json'}::", formats=["json"]
    )
    (tmp_path / "victim2.json").write_text("original")
    assert run_worker(service_settings, name="test-worker", burst=True) == 0
    for record in (linked, chained):
        done = JobRecord.fetch(redis_conn, record.id)
        assert done.status is JobStatus.FAILED and done.error_type == "OutputWriteError", done.error_detail
        assert str(outside) not in done.error_detail
    assert victim.read_text() == "original" and (tmp_path / "victim2.json").read_text() == "original"


def test_unreadable_path_component_is_a_4xx(client, tmp_path):
    try:
        os.path.realpath("/proc/1/cwd", strict=True)
        pytest.skip("/proc/1/cwd is readable here")
    except OSError:
        pass
    os.symlink("/proc/1/cwd", tmp_path / "proc-link")
    for uri in (str(tmp_path / "proc-link" / "t.mrc"), str(tmp_path / "proc-link")):
        body = assert_problem(client.post("/predict", json={"tomogram_uri": uri}), 422)
        assert "proc-link" in body["detail"]
    with pytest.raises(TomogramAccessDeniedError):
        open_tomogram(str(tmp_path / "proc-link" / "t.mrc"))


def test_refusals_do_not_show_resolved_paths_cwd_or_home(client, tmp_path, tmp_path_factory, monkeypatch):
    os.symlink("/etc", tmp_path / "etc-link")
    cwd = tmp_path_factory.mktemp("service-cwd")
    monkeypatch.chdir(cwd)
    home = os.path.expanduser("~")
    for uri, hidden in (
        (str(tmp_path / "etc-link" / "passwd"), "/etc"),
        ("t.mrc", str(cwd)),
        ("~/t.mrc", home),
        (str(tmp_path / "etc-link" / "passwd"), str(tmp_path.parent)),  # the roots themselves
    ):
        detail = assert_problem(client.post("/predict", json={"tomogram_uri": uri}), 422)["detail"]
        assert hidden not in detail.replace(uri, ""), detail


def test_open_errors_name_the_uri_as_given(client, tmp_path):
    """The gateway opens the tomogram to check it: a failure names the link, not where it points."""
    hidden = tmp_path / "hidden-target-dir"
    hidden.mkdir()
    (hidden / "real.mrc").write_bytes(b"not an MRC file" * 100)
    os.symlink(hidden / "real.mrc", tmp_path / "link.mrc")
    response = client.post("/predict", json={"tomogram_uri": str(tmp_path / "link.mrc")})
    detail = assert_problem(response, 422, "corrupt-tomogram")["detail"]
    assert "link.mrc" in detail and "hidden-target-dir" not in detail
