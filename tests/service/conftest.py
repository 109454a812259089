"""A live service: its own Redis, the gateway under uvicorn and workers, all real processes on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from octopi_serve.client import OctopiClient
from octopi_serve.redis_server import RedisServer, free_port
from tests.waiting import wait_until

_REPO = Path(__file__).resolve().parents[2]
_START_TIMEOUT_S = 180.0


@dataclass
class LiveService:
    """The running processes; ``env`` is what they were started with."""

    url: str
    env: dict[str, str]
    logs: Path
    redis: RedisServer
    gateway: subprocess.Popen | None = None
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start_gateway(self) -> None:
        port = self.url.rsplit(":", 1)[1]
        self.gateway = self._spawn("gateway", ["gateway", "--port", port])

    def start_worker(self, name: str) -> subprocess.Popen:
        self.workers[name] = self._spawn(name, ["worker", "--name", name])
        return self.workers[name]

    def _spawn(self, log_name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{log_name}.log", "ab")
        return subprocess.Popen(
            [sys.executable, "-m", "octopi_serve.cli", *args],
            env=self.env,
            cwd=_REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def connection(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url)

    def client(self) -> OctopiClient:
        return OctopiClient(self.url, timeout_s=30)

    def wait_ready(self, workers: int, timeout_s: float = _START_TIMEOUT_S) -> None:
        """Wait until the gateway answers and ``workers`` workers are live."""
        last: object = None

        def ready() -> bool:
            nonlocal last
            for name, process in self.workers.items():
                assert process.poll() is None, f"worker {name} exited: {self.log_tail(name)}"
            try:
                last = httpx.get(f"{self.url}/readyz", timeout=5)
                return last.status_code == 200 and last.json()["workers"] >= workers
            except httpx.HTTPError as e:
                last = e
                return False

        try:
            wait_until(ready, timeout_s=timeout_s, interval_s=0.3, what=f"{workers} live workers")
        except AssertionError:
            raise AssertionError(
                f"service not ready with {workers} workers: {last}; gateway log: {self.log_tail('gateway')}"
            ) from None

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        processes = [p for p in [*self.workers.values(), self.gateway] if p is not None]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        outlived = []
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                outlived.append(process.args)
                process.kill()
                process.wait()
        # a service process that ignores SIGTERM for 30 s would be SIGKILLed by Kubernetes mid-job
        assert not outlived, f"still running 30 s after SIGTERM: {outlived}"


def service_env(
    *, redis_url: str, port: int, registry: Path, roots: list[Path], s3_endpoint: str | None
) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCTOPI_", "AWS_"))}
    env.update(
        {
            "REDIS_URL": redis_url,
            "OCTOPI_PORT": str(port),
            "OCTOPI_REGISTRY_URI": str(registry),
            "OCTOPI_LOCAL_ROOTS": ",".join(str(r) for r in roots),
            "OCTOPI_ALLOWED_HOSTS": "127.0.0.1",
            "OCTOPI_WINDOW_VOX": "32",
            "OCTOPI_BATCH_SIZE": "2",
            "OCTOPI_TORCH_THREADS": "1",
            "OCTOPI_DEVICE": "cpu",
            "OCTOPI_HEARTBEAT_S": "1",
            "OCTOPI_WORKER_TTL_S": "6",
            "OCTOPI_RATE_LIMIT_PER_MINUTE": "0",
            "OCTOPI_REDIS_RETRY_S": "120",
            "OCTOPI_QUEUE_NAME": "octopi-live",
            "PYTHONUNBUFFERED": "1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "OMP_NUM_THREADS": "1",
        }
    )
    if s3_endpoint:
        env["AWS_ENDPOINT_URL"] = s3_endpoint
    return env


def wait_for(client: OctopiClient, job_id: str, predicate, timeout_s: float = 180.0, what: str = "") -> dict:
    """Poll the job until ``predicate(job)`` holds; return that state."""
    seen: dict = {}

    def reached() -> dict | None:
        seen["job"] = client.job(job_id)
        return seen["job"] if predicate(seen["job"]) else None

    try:
        return wait_until(reached, timeout_s=timeout_s, interval_s=0.1, what=what or str(predicate))
    except AssertionError as e:
        raise AssertionError(f"{e}; last state: {seen.get('job')}") from None


@pytest.fixture(scope="module")
def live_service(tmp_path_factory, model_registry, tomograms, s3_server, http_server):
    """Gateway + two workers (w1, w2) on a private Redis, for one test module."""
    if not __import__("shutil").which("redis-server"):
        pytest.skip("redis-server is not installed")
    base = tmp_path_factory.mktemp("live")
    (base / "logs").mkdir()
    server = RedisServer(directory=base / "redis").start()
    port = free_port()
    env = service_env(
        redis_url=server.url,
        port=port,
        registry=model_registry.root,
        roots=[tomograms.root, base],
        s3_endpoint=s3_server.endpoint_url,
    )
    service = LiveService(url=f"http://127.0.0.1:{port}", env=env, logs=base / "logs", redis=server)
    try:
        service.start_gateway()
        service.start_worker("w1")
        service.start_worker("w2")
        service.wait_ready(workers=2)
        yield service
    finally:
        service.stop()
        server.close()
