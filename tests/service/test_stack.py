"""``octopi-serve serve``: one command starts Redis, the gateway and a worker, and stops them all."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx
import pytest
import redis

from octopi_serve.redis_server import free_port
from tests.service.conftest import _REPO, service_env
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def test_serve_runs_the_whole_service_and_stops_cleanly(tmp_path, model_registry, tomograms):
    if not __import__("shutil").which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = free_port()
    env = service_env(
        redis_url="", port=port, registry=model_registry.root, roots=[tomograms.root], s3_endpoint=None
    )
    del env["REDIS_URL"]  # nothing configured: serve starts its own Redis
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "octopi_serve.cli", "serve"],
            env=env,
            cwd=_REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout_s=180, interval_s=0.3, what="the stack to be ready")
        banner = re.search(r"redis (redis://127\.0\.0\.1:(\d+)/0) \(private", log.read_text())
        assert banner, log.read_text()[-2000:]
        job = httpx.post(f"{url}/predict", json={"tomogram_uri": str(tomograms.small)}).json()
        job_id = job["id"]
        job = wait_until(
            lambda: (
                (j := httpx.get(f"{url}/jobs/{job_id}").json())["status"] in ("succeeded", "failed") and j
            ),
            timeout_s=120,
            interval_s=0.2,
            what="the job to finish",
        )
        assert job["status"] == "succeeded", job
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0, log.read_text()[-3000:]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/healthz", timeout=2)
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis.from_url(banner.group(1), socket_connect_timeout=1).ping()
