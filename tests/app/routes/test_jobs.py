"""POST /predict, GET/DELETE /jobs/{id}, GET /jobs/{id}/picks, with no worker (states are driven directly)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from octopi_core.picks import PickPoint, PicksDocument
from tests.app.conftest import assert_problem
from worker.jobs.keys import job_key
from worker.jobs.lifecycle import claim_attempt, finish_attempt
from worker.jobs.state import JobStatus, set_progress, set_stage


def _submit(client, uri, **body):
    return client.post("/predict", json={"tomogram_uri": str(uri), **body})


def _succeed(redis_conn, settings, job_id: str) -> PicksDocument:
    """Finish a queued job as a worker would, with a one-pick document."""
    record = claim_attempt(redis_conn, settings, job_id, 1, "fake-worker")
    document = PicksDocument(
        tomogram_uri=record.tomogram_uri,
        run_name="small",
        voxel_size_xyz_a=(10.0, 10.0, 10.0),
        shape_zyx=(32, 64, 64),
        model_version=record.model_version,
        picks={"ribosome": [PickPoint(x=100.0, y=200.0, z=150.0, score=0.9)]},
    )
    assert finish_attempt(
        redis_conn,
        settings,
        record,
        JobStatus.SUCCEEDED,
        result_json=document.model_dump_json(),
        counts=document.counts(),
        timings_s={"total": 1.0},
    )
    return document


def test_predict_queues_a_job(client, tomograms, model_registry):
    response = _submit(client, tomograms.small, classes=["ribosome", "apo-ferritin"], tta=True)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}" == job["links"]["self"]
    assert int(response.headers["retry-after"]) > 0
    assert (job["status"], job["queue_position"], job["progress"]) == ("queued", 0, 0.0)
    assert job["model_version"] == model_registry.champion
    assert job["options"]["classes"] == ["apo-ferritin", "ribosome"] and job["options"]["window_vox"] == [
        32,
        32,
        32,
    ]
    assert job["tomogram_uri"] == str(tomograms.small)
    second = _submit(client, tomograms.small_mrc).json()
    assert client.get(f"/jobs/{second['id']}").json()["queue_position"] == 1
    assert client.get(job["links"]["self"]).json()["status"] == "queued"


def test_spectrum_matching_is_asked_of_a_model_that_has_an_input_spectrum(client, tomograms, model_registry):
    refused = _submit(client, tomograms.small, match_spectrum=True, model_version=model_registry.quiet)
    body = assert_problem(refused, 422, "no-input-spectrum")  # the quiet model has no input spectrum
    assert f"model {model_registry.quiet} has no input spectrum" in body["detail"]
    job = _submit(client, tomograms.small, match_spectrum=True).json()
    assert job["options"]["match_spectrum"] is True
    plain = _submit(client, tomograms.small).json()
    assert plain["options"]["match_spectrum"] is False


def test_relative_local_paths_are_made_absolute(client, tomograms, monkeypatch):
    monkeypatch.chdir(tomograms.root)
    job = _submit(client, "small.zarr").json()
    assert job["tomogram_uri"] == str(tomograms.small)


def test_running_job_reports_stage_progress_and_eta(client, redis_conn, service_settings, tomograms):
    job_id = _submit(client, tomograms.small).json()["id"]
    claim_attempt(redis_conn, service_settings, job_id, 1, "fake-worker")
    set_stage(redis_conn, job_id, "inferring")
    # Inference began 0.3 s ago: the ETA extrapolates from that rate (no sleeping for it).
    began = (datetime.now(UTC) - timedelta(seconds=0.3)).isoformat(timespec="microseconds")
    redis_conn.hset(job_key(job_id), "inferring_at", began)
    set_progress(redis_conn, job_id, 0.5)
    job = client.get(f"/jobs/{job_id}").json()
    assert (job["status"], job["stage"], job["tries"]) == ("running", "inferring", 1)
    assert job["progress"] == pytest.approx(0.05 + 0.9 * 0.5)
    assert 0.2 < job["eta_s"] < 30 and job["started_at"] and job["queue_position"] is None


def test_cancel_a_queued_job(client, tomograms):
    job = _submit(client, tomograms.small).json()
    response = client.delete(f"/jobs/{job['id']}")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert_problem(client.delete(f"/jobs/{job['id']}"), 409, "invalid-job-state")
    assert_problem(client.get(f"/jobs/{job['id']}/picks"), 409, "job-not-finished")


def test_cancel_a_running_job_is_accepted(client, redis_conn, service_settings, tomograms):
    job_id = _submit(client, tomograms.small).json()["id"]
    claim_attempt(redis_conn, service_settings, job_id, 1, "fake-worker")
    response = client.delete(f"/jobs/{job_id}")
    assert response.status_code == 202 and response.json()["status"] == "running"
    assert redis_conn.exists(f"octopi:cancel:{job_id}")


def test_unknown_jobs_are_404(client):
    for response in (client.get("/jobs/0123"), client.delete("/jobs/0123"), client.get("/jobs/0123/picks")):
        body = assert_problem(response, 404, "job-not-found")
        assert body["instance"].startswith("/jobs/0123")


def test_picks_in_every_format(client, redis_conn, service_settings, tomograms):
    job_id = _submit(client, tomograms.small).json()["id"]
    document = _succeed(redis_conn, service_settings, job_id)
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["progress"] == 1.0 and job["counts"] == {"ribosome": 1}
    default = client.get(f"/jobs/{job_id}/picks")
    assert default.headers["content-type"].startswith("application/json")
    assert PicksDocument.model_validate_json(default.text).picks == document.picks
    csv = client.get(f"/jobs/{job_id}/picks", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == [
        "run_name,particle_type,x,y,z,score",
        "small,ribosome,100.0,200.0,150.0,0.9",
    ]
    # issue 15: STAR in RELION 5's centred Å, NDJSON portal points (the markers change, as the issue asks)
    for fmt, marker in (
        ("star", "rlnCenteredCoordinateXAngst"),
        ("ndjson", '"type": "point"'),
    ):
        response = client.get(f"/jobs/{job_id}/picks", params={"format": fmt})
        assert response.status_code == 200 and marker in response.text, fmt
    assert client.get(f"/jobs/{job_id}/picks", params={"format": "xml"}).status_code == 422


def test_copick_picks_are_a_zip_of_copick_files(client, redis_conn, service_settings, tomograms):
    job_id = _submit(client, tomograms.small, classes=["ribosome", "apo-ferritin"]).json()["id"]
    _succeed(redis_conn, service_settings, job_id)
    response = client.get(f"/jobs/{job_id}/picks", params={"format": "copick"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == 'attachment; filename="small.picks.copick.zip"'
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == ["octopi_0_ribosome.json"]  # <user>_<session>_<object>.json, as copick
        content = json.loads(archive.read("octopi_0_ribosome.json"))
    assert (content["pickable_object_name"], content["user_id"], content["session_id"]) == (
        "ribosome",
        "octopi",
        "0",
    )
    assert content["run_name"] == "small" and content["unit"] == "angstrom"
    assert [p["location"] for p in content["points"]] == [{"x": 100.0, "y": 200.0, "z": 150.0}]


def test_run_name_is_a_job_option(client, tomograms):
    job = _submit(client, tomograms.small, run_name="TS_001").json()
    assert job["options"]["run_name"] == "TS_001"
    other = _submit(client, tomograms.small).json()
    assert other["options"]["run_name"] is None and other["id"] != job["id"]
    for bad in ("", "../etc", "a/b", ".hidden", "x" * 129):
        response = _submit(client, tomograms.small, run_name=bad)
        assert response.status_code == 422, bad


def test_idempotency_key_returns_the_same_job(client, tomograms):
    headers = {"Idempotency-Key": "req-42"}
    first = client.post("/predict", json={"tomogram_uri": str(tomograms.small)}, headers=headers)
    again = client.post("/predict", json={"tomogram_uri": str(tomograms.small)}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = client.post(
        "/predict", json={"tomogram_uri": str(tomograms.small)}, headers={"Idempotency-Key": "x"}
    )
    assert other.json()["id"] != first.json()["id"]
    conflict = client.post(
        "/predict", json={"tomogram_uri": str(tomograms.small), "tta": True}, headers=headers
    )
    assert_problem(conflict, 409, "idempotency-key-reused")


def test_identical_request_reuses_a_finished_result(
    client, redis_conn, service_settings, tomograms, tmp_path: Path
):
    first = _submit(client, tomograms.small, classes=["ribosome"]).json()
    _succeed(redis_conn, service_settings, first["id"])
    reused = _submit(client, tomograms.small, classes=["ribosome"], formats=["csv"])
    assert reused.status_code == 200 and reused.json()["id"] == first["id"]
    assert reused.json()["status"] == "succeeded" and "retry-after" not in reused.headers
    different = _submit(client, tomograms.small, classes=["ribosome"], tta=True)
    assert different.status_code == 202 and different.json()["id"] != first["id"]
    with_output = _submit(client, tomograms.small, classes=["ribosome"], output_uri=str(tmp_path / "out"))
    assert (
        with_output.status_code == 202 and with_output.json()["id"] != first["id"]
    )  # a worker writes the files


def test_a_changed_tomogram_is_not_reused(client, redis_conn, service_settings, tomograms, tmp_path: Path):
    import shutil

    copy = tmp_path / "copy.mrc"
    shutil.copy(tomograms.small_mrc, copy)
    first = _submit(client, copy).json()
    _succeed(redis_conn, service_settings, first["id"])
    before = copy.stat()
    copy.write_bytes(copy.read_bytes())  # same bytes, new mtime: a new content identity
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # whatever the clock's resolution
    second = _submit(client, copy)
    assert second.status_code == 202 and second.json()["id"] != first["id"]
