"""A worker's heartbeat: a Redis key with a TTL, renewed from a background thread, plus the dead-worker sweep.

While the key ``octopi:worker:<name>`` exists the worker is alive (read by
:func:`worker.jobs.workers.live_workers`). Each beat also sweeps the jobs of workers whose key expired
(:func:`worker.jobs.lifecycle.reap_dead_workers`), so a job of a worker killed with SIGKILL is re-queued
within about ``worker_ttl_s + heartbeat_s`` seconds by any surviving worker.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

import redis
from redis import Redis

from octopi_core.settings import Settings

from .jobs.keys import WORKERS_KEY, worker_key
from .jobs.lifecycle import reap_dead_workers

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)


class Heartbeat:
    """Beats every ``settings.heartbeat_s`` seconds for worker ``name`` until :meth:`stop`.

    Args:
        connection: a Redis client used only by this thread.
        settings: heartbeat_s, worker_ttl_s and the reaper's settings.
        name: the worker's name.
        reap: also sweep dead workers' jobs on each beat.
    """

    def __init__(self, connection: Redis, settings: Settings, name: str, *, reap: bool = True) -> None:
        self.connection, self.settings, self.name, self.reap = connection, settings, name, reap
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{name}", daemon=True)
        self.info = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time()}

    def beat(self) -> None:
        """Renew the liveness key once (and sweep when enabled)."""
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.set(worker_key(self.name), json.dumps(self.info), px=int(self.settings.worker_ttl_s * 1000))
            pipe.sadd(WORKERS_KEY, self.name)
            pipe.execute()
        if self.reap:
            reap_dead_workers(self.connection, self.settings, self_name=self.name)

    def start(self) -> None:
        try:
            self.beat()
        except redis.exceptions.RedisError as e:
            log.warning("first heartbeat failed: %s", e)
        self._thread.start()

    def stop(self, *, forget: bool = True) -> None:
        """Stop beating; with ``forget`` also delete the liveness key (a clean exit)."""
        self._stop.set()
        self._thread.join(timeout=self.settings.heartbeat_s + 5)
        if forget:
            try:
                with self.connection.pipeline(transaction=False) as pipe:
                    pipe.delete(worker_key(self.name))
                    pipe.srem(WORKERS_KEY, self.name)
                    pipe.execute()
            except redis.exceptions.RedisError as e:
                log.warning("could not unregister worker %s: %s", self.name, e)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_s):
            try:
                self.beat()
            except Exception as e:  # noqa: BLE001 - keep beating through Redis outages and sweep errors
                log.warning("heartbeat of %s failed: %s", self.name, e)
