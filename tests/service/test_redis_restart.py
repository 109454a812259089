"""Redis dies (SIGKILL) and comes back mid-run: the gateway answers 503 meanwhile, and no job is lost."""

from __future__ import annotations

import time

import httpx
import pytest

from octopi_serve.client import ServiceCallError
from octopi_serve.redis_server import RedisServer, free_port
from tests.service.conftest import LiveService, service_env
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def _job(client, job_id: str) -> dict | None:
    try:
        return client.job(job_id)
    except (ServiceCallError, httpx.HTTPError):
        return None  # 503 while Redis is away


def test_redis_restart_loses_no_job(tmp_path, model_registry, tomograms):
    if not __import__("shutil").which("redis-server"):
        pytest.skip("redis-server is not installed")
    (tmp_path / "logs").mkdir()
    server = RedisServer(directory=tmp_path / "redis", persistent=True).start()
    port = free_port()
    env = service_env(
        redis_url=server.url,
        port=port,
        registry=model_registry.root,
        roots=[tomograms.root, tmp_path],
        s3_endpoint=None,
    )
    service = LiveService(url=f"http://127.0.0.1:{port}", env=env, logs=tmp_path / "logs", redis=server)
    try:
        service.start_gateway()
        service.start_worker("r1")
        service.wait_ready(workers=1)
        with service.client() as client:
            ids = [
                client.submit(str(tomograms.large), model_version=model_registry.quiet, classes=[name])["id"]
                for name in ("ribosome", "apo-ferritin", "beta-amylase")
            ]
            wait_until(
                lambda: (_job(client, ids[0]) or {}).get("progress", 0) >= 0.1,
                timeout_s=120,
                interval_s=0.1,
                what="the first job to start",
            )

            server.stop(kill=True)
            down = httpx.get(f"{service.url}/jobs/{ids[1]}")
            assert down.status_code == 503 and down.headers["content-type"] == "application/problem+json"
            assert httpx.get(f"{service.url}/healthz").status_code == 200
            time.sleep(2)  # the outage itself: Redis stays down for 2 s while the job runs
            server.start()

            final: dict[str, dict] = {}

            def all_finished() -> bool:
                for job_id in ids:
                    job = _job(client, job_id)
                    if job and job["status"] in ("succeeded", "failed", "cancelled"):
                        final[job_id] = job
                return len(final) == len(ids)

            wait_until(all_finished, timeout_s=300, interval_s=0.3, what="all three jobs to finish")
        assert [final[i]["status"] for i in ids] == ["succeeded"] * 3, [final[i]["error"] for i in ids]
        assert service.workers["r1"].poll() is None, service.log_tail("r1")
        assert httpx.get(f"{service.url}/readyz").json()["workers"] == 1
    finally:
        service.stop()
        server.close()
