"""A service stack for benchmarks: a private Redis, the gateway and workers as child processes on loopback,
each of which can be killed and started again (what ``octopi_serve.stack`` supervises, made controllable).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from octopi_serve.redis_server import RedisServer, free_port

__all__ = ["ServiceStack", "stack_env"]

REPO = Path(__file__).resolve().parents[1]
_START_TIMEOUT_S = 300.0  # a worker imports torch and loads its model: slow on a busy 2-core machine
_STOP_GRACE_S = 30.0


def stack_env(*, redis_url: str, port: int, registry: Path, local_roots: list[Path], **extra: str) -> dict:
    """The children's environment: this one without any ``OCTOPI_*``/``AWS_*`` variable, plus benchmark
    settings (CPU, one torch thread, 32-voxel windows, 1 s heartbeats, no rate limit) and ``extra``
    (``OCTOPI_*`` names as keys)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCTOPI_", "AWS_"))}
    env.update(
        REDIS_URL=redis_url,
        OCTOPI_PORT=str(port),
        OCTOPI_REGISTRY_URI=str(registry),
        OCTOPI_LOCAL_ROOTS=",".join(str(r) for r in local_roots),
        OCTOPI_WINDOW_VOX="32",
        OCTOPI_BATCH_SIZE="2",
        OCTOPI_TORCH_THREADS="1",
        OCTOPI_DEVICE="cpu",
        OCTOPI_HEARTBEAT_S="1",
        OCTOPI_WORKER_TTL_S="6",
        OCTOPI_RATE_LIMIT_PER_MINUTE="0",
        OCTOPI_QUEUE_NAME="octopi-bench",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
    )
    env.update(extra)
    return env


class ServiceStack:
    """Redis, one gateway and named workers, started by :meth:`start` and stopped by :meth:`stop`.

    Args:
        work: directory for the Redis files (``redis/``) and the children's logs (``logs/<name>.log``).
        env_extra: settings added to :func:`stack_env` (``OCTOPI_*`` names as keys).
        registry: the model registry the children serve from.
        local_roots: directories the service may read tomograms from.
        persistent_redis: Redis keeps an append-only file (fsync every write), so a killed Redis
            restarted on the same port comes back with every job (see :class:`RedisServer`).
    """

    def __init__(
        self,
        work: Path,
        *,
        registry: Path,
        local_roots: list[Path],
        persistent_redis: bool = True,
        env_extra: dict[str, str] | None = None,
    ) -> None:
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(directory=work / "redis", persistent=persistent_redis)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = stack_env(
            redis_url=self.redis.url,
            port=self.port,
            registry=registry,
            local_roots=local_roots,
            **(env_extra or {}),
        )
        self.gateway: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}

    def start(self, worker_names: list[str]) -> ServiceStack:
        """Start Redis, the gateway and one worker per name; wait until all workers are live."""
        self.redis.start()
        self.start_gateway()
        for name in worker_names:
            self.start_worker(name)
        self.wait_ready(len(worker_names))
        return self

    def start_gateway(self) -> subprocess.Popen:
        self.gateway = self._spawn("gateway", ["gateway", "--port", str(self.port)])
        return self.gateway

    def start_worker(self, name: str) -> subprocess.Popen:
        """Start a worker called ``name`` (use a new name after a kill: the old heartbeat is still live)."""
        self.workers[name] = self._spawn(name, ["worker", "--name", name])
        return self.workers[name]

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker ``name`` and forget it."""
        process = self.workers.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def restart_redis(self, down_s: float, *, kill: bool = True) -> None:
        """Stop Redis (SIGKILL by default), wait ``down_s`` seconds, start it again on the same port."""
        self.redis.stop(kill=kill)
        time.sleep(down_s)
        self.redis.start()

    def wait_ready(self, workers: int, timeout_s: float = _START_TIMEOUT_S) -> None:
        """Wait until ``/readyz`` reports at least ``workers`` live workers.

        Raises:
            RuntimeError: a child exited, or not ready within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{self.url}/readyz", timeout=5)
                if ready.status_code == 200 and ready.json()["workers"] >= workers:
                    return
            except httpx.HTTPError:
                pass
            for name, process in [("gateway", self.gateway), *self.workers.items()]:
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}: {self.log_tail(name)}")
            time.sleep(0.3)
        raise RuntimeError(f"service not ready with {workers} workers; see {self.logs}")

    def log_tail(self, name: str, chars: int = 2000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM the workers, then the gateway (kill what outlives the grace period), then stop Redis."""
        for group in (list(self.workers.values()), [self.gateway]):
            processes = [p for p in group if p is not None and p.poll() is None]
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=_STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.redis.close()

    def _spawn(self, log_name: str, args: list[str]) -> subprocess.Popen:
        with open(self.logs / f"{log_name}.log", "ab") as log:  # the child keeps its own copy of the fd
            return subprocess.Popen(
                [sys.executable, "-m", "octopi_serve.cli", *args],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
