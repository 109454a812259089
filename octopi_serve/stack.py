"""Run the whole service (Redis, gateway, workers) from one command, as a supervisor of child processes.

``octopi-serve serve`` with nothing configured starts a private redis-server on a free port (memory only),
the gateway on ``OCTOPI_HOST:OCTOPI_PORT`` and one worker serving the registry's champion (or the shipped
model). With ``REDIS_URL`` set it uses that Redis instead. Ctrl-C or SIGTERM stops the workers (a running
job is re-queued), then the gateway, then the private Redis. A worker that dies is restarted.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from octopi_core.settings import Settings

from .redis_server import RedisServer

__all__ = ["run_stack"]

log = logging.getLogger(__name__)
_STOP_GRACE_S = 60.0  # how long children get to exit after SIGTERM


def _spawn(command: str, env: dict[str, str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "octopi_serve.cli", command, *extra], env=env)


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE_S
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_stack(
    settings: Settings, *, workers: int = 1, host: str | None = None, port: int | None = None
) -> int:
    """Start Redis (unless ``settings.redis_url``), the gateway and ``workers`` workers; supervise them.

    Returns:
        0 after a requested stop, 1 when the gateway died.

    Raises:
        FileNotFoundError: no REDIS_URL and no redis-server binary.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    redis_server = None if settings.redis_url else RedisServer().start()
    redis_url = settings.redis_url or redis_server.url  # type: ignore[union-attr]
    env = {**os.environ, "REDIS_URL": redis_url}
    host, port = host or settings.host, port or settings.port
    env.update(OCTOPI_HOST=host, OCTOPI_PORT=str(port))
    gateway = _spawn("gateway", env)
    pool = [_spawn("worker", env) for _ in range(workers)]
    print(
        f"octopi-serve: gateway http://{host}:{port} (API docs at /docs), {workers} worker(s), "
        f"redis {redis_url}{' (private, in memory)' if redis_server else ''}; Ctrl-C stops",
        file=sys.stderr,
    )
    status = 0
    try:
        while not stop.wait(0.5):
            if gateway.poll() is not None:
                print(f"octopi-serve: the gateway exited with status {gateway.returncode}", file=sys.stderr)
                status = 1
                break
            for i, worker in enumerate(pool):
                if worker.poll() is not None:
                    print(
                        f"octopi-serve: worker exited with status {worker.returncode}; restarting it",
                        file=sys.stderr,
                    )
                    pool[i] = _spawn("worker", env)
    finally:
        _stop(pool)
        _stop([gateway])
        if redis_server is not None:
            redis_server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
