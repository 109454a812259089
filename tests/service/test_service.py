"""End to end: real uvicorn gateway, real worker processes, a private Redis, tomograms over HTTP and S3."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from octopi_core.picks import PicksDocument
from octopi_core.pipeline import Picker, PredictOptions
from octopi_core.registry import Registry
from tests.service.conftest import wait_for

pytestmark = pytest.mark.slow

_FINAL = ("succeeded", "failed", "cancelled")


def _finished(job: dict) -> bool:
    return job["status"] in _FINAL


def _inferring(job: dict) -> bool:
    # Each long-job test asks for other classes, so no test gets an earlier test's result reused.
    return _finished(job) or (
        job["status"] == "running" and job["stage"] == "inferring" and job["progress"] > 0.06
    )


@pytest.fixture(scope="module")
def direct_picks(model_registry, tomograms):
    """The champion's picks on the small tomogram, computed by the pipeline directly."""
    picker = Picker(Registry(model_registry.root).resolve(model_registry.champion), device="cpu")
    return picker.predict(str(tomograms.small_mrc), PredictOptions(window_vox=32, overlap=0.25, batch_size=2))


def test_lifecycle_over_http(live_service, http_server, tomograms, direct_picks):
    shutil.copy(tomograms.small_mrc, http_server.root / "small_mrc.mrc")
    with live_service.client() as client:
        job = client.submit(f"{http_server.url}/small_mrc.mrc")
        assert job["status"] in ("queued", "running")
        job = wait_for(client, job["id"], _finished, what="HTTP job to finish")
        assert job["status"] == "succeeded", job["error"]
        assert job["tries"] == 1 and job["progress"] == 1.0 and job["timings_s"]["total"] > 0
        served = PicksDocument.model_validate_json(client.picks(job["id"]))
        assert served.picks == direct_picks.picks and served.tomogram_uri.startswith("http://127.0.0.1")
        csv = client.picks(job["id"], "csv").splitlines()
        assert csv[0] == "run_name,particle_type,x,y,z,score"
        assert len(csv) - 1 == sum(len(points) for points in direct_picks.picks.values())


def test_lifecycle_over_s3_with_outputs(live_service, s3_server, s3_bucket, tomograms, direct_picks):
    uri = s3_server.upload(tomograms.small_mrc, s3_bucket, "runs/small_mrc.mrc")
    with live_service.client() as client:
        job = client.submit(uri, output_uri=f"s3://{s3_bucket}/picks/", formats=["json", "csv"])
        job = wait_for(client, job["id"], _finished, what="S3 job to finish")
        assert job["status"] == "succeeded", job["error"]
        assert sorted(job["outputs"]) == [
            f"s3://{s3_bucket}/picks/small_mrc.picks.csv",
            f"s3://{s3_bucket}/picks/small_mrc.picks.json",
        ]
    stored = s3_server.client().get_object(Bucket=s3_bucket, Key="picks/small_mrc.picks.json")["Body"].read()
    assert PicksDocument.model_validate_json(stored).picks == direct_picks.picks


def test_idempotency_and_result_reuse(live_service, tomograms):
    with live_service.client() as client:
        first = client.submit(str(tomograms.small), classes=["ribosome"], idempotency_key="live-1")
        again = client.submit(str(tomograms.small), classes=["ribosome"], idempotency_key="live-1")
        assert again["id"] == first["id"]
        done = wait_for(client, first["id"], _finished)
        assert done["status"] == "succeeded"
        started = time.monotonic()
        reused = client.submit(str(tomograms.small), classes=["ribosome"])
        assert reused["id"] == first["id"] and reused["status"] == "succeeded"
        assert time.monotonic() - started < 5


def test_cancel_a_running_job(live_service, tomograms, model_registry):
    with live_service.client() as client:
        job = client.submit(str(tomograms.large), model_version=model_registry.quiet, classes=["ribosome"])
        running = wait_for(client, job["id"], _inferring, what="inference to start")
        assert running["status"] == "running"
        asked = time.monotonic()
        response = client.cancel(job["id"])
        assert response["status"] in ("running", "cancelled")
        final = wait_for(client, job["id"], _finished, timeout_s=30)
        assert final["status"] == "cancelled" and final["progress"] < 1.0
        assert time.monotonic() - asked < 20
        with pytest.raises(Exception, match="409"):
            client.picks(job["id"])


def test_a_worker_killed_mid_job_does_not_lose_it(live_service, tomograms, model_registry):
    with live_service.client() as client:
        job = client.submit(
            str(tomograms.large), model_version=model_registry.quiet, classes=["apo-ferritin"]
        )
        running = wait_for(client, job["id"], _inferring, what="inference to start")
        victim = running["worker"]
        assert victim in live_service.workers
        live_service.workers[victim].send_signal(signal.SIGKILL)
        live_service.workers[victim].wait(timeout=10)
        final = wait_for(client, job["id"], _finished, timeout_s=240, what="the job to finish elsewhere")
        assert final["status"] == "succeeded", final["error"]
        assert final["tries"] == 2 and final["worker"] != victim
    live_service.start_worker(victim)
    live_service.wait_ready(workers=2)


def test_sigterm_requeues_the_running_job_and_exits_cleanly(live_service, tomograms, model_registry):
    with live_service.client() as client:
        job = client.submit(
            str(tomograms.large), model_version=model_registry.quiet, classes=["thyroglobulin"]
        )
        running = wait_for(client, job["id"], _inferring, what="inference to start")
        leaving = running["worker"]
        process = live_service.workers[leaving]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        final = wait_for(client, job["id"], _finished, timeout_s=240, what="the job to finish elsewhere")
        assert final["status"] == "succeeded", final["error"]
        assert final["tries"] == 1 and final["worker"] != leaving  # a clean hand-over costs no try
    assert f"job {job['id']} re-queued" in live_service.log_tail(leaving)
    live_service.start_worker(leaving)
    live_service.wait_ready(workers=2)


def test_submit_command_waits_and_writes_the_picks(live_service, tomograms, tmp_path):
    out = tmp_path / "picks.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "octopi_serve.cli",
            "submit",
            str(tomograms.small_mrc),
            "--server",
            live_service.url,
            "--wait",
            "--format",
            "csv",
            "--out",
            str(out),
            "--poll",
            "0.2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=live_service.env,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("run_name,particle_type,x,y,z,score")
    bad = subprocess.run(
        [sys.executable, "-m", "octopi_serve.cli", "submit", "ftp://x/y.mrc", "--server", live_service.url],
        capture_output=True,
        text=True,
        timeout=120,
        env=live_service.env,
    )
    assert bad.returncode == 2 and "scheme 'ftp'" in bad.stderr


def test_metrics_and_readiness_of_the_live_service(live_service):
    ready = httpx.get(f"{live_service.url}/readyz").json()
    assert ready == {"status": "ready", "redis": True, "workers": 2}
    text = httpx.get(f"{live_service.url}/metrics").text

    def sample(name: str) -> float:
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        assert found, f"{name} missing from /metrics"
        return float(found.group(1))

    assert sample('octopi_jobs_total{status="succeeded"}') >= 3 and sample("octopi_workers") == 2
    assert sample('octopi_jobs_total{status="cancelled"}') >= 1
    assert sample("octopi_tomograms_per_hour") >= 3 and sample("octopi_inference_duration_seconds_count") >= 3
    assert sample("octopi_queue_depth") == 0
    docs = httpx.get(f"{live_service.url}/openapi.json").json()
    assert {"/predict", "/jobs/{job_id}", "/jobs/{job_id}/picks", "/models"} <= set(docs["paths"])
    assert json.dumps(docs)  # serialisable


def test_workers_hold_no_rq_command_channel(live_service):
    """RQ's command listener could hold a SIGTERM-ed worker's teardown for up to a minute (rq #1613)."""
    import redis

    connection = redis.Redis.from_url(live_service.env["REDIS_URL"])
    try:
        assert connection.pubsub_channels("rq:pubsub:*") == []
    finally:
        connection.close()
