"""Worker process entry: load the model once, beat, and run jobs from the queue until told to stop.

The worker is an RQ :class:`~rq.SimpleWorker` (no fork per job), so the model loaded at start stays on
its device (GPU when present) for every job. SIGTERM or SIGINT: a running job stops at its next batch
of windows and is re-queued at the front (not counted as a try), a job in the finisher (its localization
and outputs, see :mod:`worker.finisher`) is finished and recorded, then the process exits 0. A second
signal exits at once, leaving a job in the finisher to the dead-worker sweep. A finisher stuck past its job's
deadline (:mod:`worker.finisher`) makes the worker stop and exit 1. Between jobs the worker loads a newly
promoted champion.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import uuid

import redis
from rq import SimpleWorker
from rq.exceptions import StopRequested

from octopi_core.settings import Settings

from .finisher import Finisher
from .heartbeat import Heartbeat
from .jobs.queue import make_queue
from .tasks import TaskContext, configure, connect

__all__ = ["PickWorker", "run_worker", "default_worker_name"]

log = logging.getLogger(__name__)
_REDIS_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)


def default_worker_name() -> str:
    """``<host>-<pid>-<4 hex>``: unique across restarts and hosts."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


class PickWorker(SimpleWorker):
    """RQ worker running jobs in its own process, with the service's shutdown and champion handling."""

    def __init__(self, *args, context: TaskContext, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.context = context

    def subscribe(self) -> None:
        """Hold no RQ command channel: the service sends no RQ commands (cancel and stop go through its own
        job state and signals), and RQ's listener thread, polled once a minute, could hold a SIGTERM-ed
        worker's teardown for up to 60 s while redis-py joins it (rq issue #1613)."""

    def request_stop(self, signum, frame) -> None:
        self.context.shutdown.set()
        try:
            super().request_stop(signum, frame)
        except _REDIS_ERRORS:
            raise StopRequested() from None

    def execute_job(self, job, queue) -> None:
        super().execute_job(job, queue)
        if self.context.shutdown.is_set():
            self._stop_requested = True  # however shutdown was asked for, take no further job
        else:
            self.context.models.refresh_champion()


def run_worker(settings: Settings, *, name: str | None = None, burst: bool = False) -> int:
    """Run one worker until SIGTERM/SIGINT (or, with ``burst``, until the queue is empty).

    Args:
        settings: the service settings.
        name: the worker's name (default ``<host>-<pid>-<hex>``); letters, digits, ``_.-``.
        burst: stop when the queue is empty (for tests and batch use).

    Returns:
        The process exit status: 0 on a clean stop, 1 when the finisher's thread was given up (stuck past
        a job's deadline), so that the process is replaced.
    """
    import torch

    from .model_cache import ModelCache

    name = name or default_worker_name()
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"worker name must use letters, digits, '_', '.', '-' only; got {name!r}")
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    connection = connect(settings)
    models = ModelCache.from_settings(settings)
    finisher = Finisher(name, grace_s=settings.finisher_grace_s) if settings.worker_overlap else None
    context = TaskContext(
        settings=settings, worker_name=name, models=models, connection=connection, finisher=finisher
    )
    configure(context)
    models.refresh_champion()
    _warm_up(models, settings)
    heartbeat = Heartbeat(connect(settings), settings, name)
    heartbeat.start()
    log.info(
        "worker %s ready (models %s, redis %s)", name, models.loaded_versions(), settings.effective_redis_url
    )
    generation, delay, incarnation = 0, 0.5, uuid.uuid4().hex[:6]  # RQ names must be new after a kill -9
    try:
        while not context.shutdown.is_set():
            generation += 1
            started = time.monotonic()
            rq_connection = redis.Redis.from_url(settings.effective_redis_url, socket_connect_timeout=5)
            try:
                worker = PickWorker(
                    [make_queue(rq_connection, settings)],
                    connection=rq_connection,
                    name=f"{name}-{incarnation}-{generation}",
                    context=context,
                    worker_ttl=max(60, int(settings.worker_ttl_s * 4)),
                )
                worker.work(
                    burst=burst,
                    logging_level=logging.getLevelName(log.getEffectiveLevel()),
                    with_scheduler=False,
                )
            except (StopRequested, *_REDIS_ERRORS) as e:
                log.warning("worker loop of %s stopped: %s", name, e or type(e).__name__)
            finally:
                rq_connection.close()
            if burst or context.shutdown.is_set():
                break
            # RQ left its loop (Redis went away, or an error): back off, wait for Redis, start a fresh loop.
            delay = 0.5 if time.monotonic() - started > 60 else min(delay * 2, 10.0)
            try:
                context.shutdown.wait(delay)
                _wait_for_redis(connection, context.shutdown, delay)
            except StopRequested:
                break
    finally:
        try:
            if finisher is not None:  # beating meanwhile: the job it holds is recorded, not reaped
                if finisher.busy:
                    log.info("worker %s: finishing the job in the finisher before it stops", name)
                finisher.close()
        finally:
            heartbeat.stop(forget=True)
    if finisher is not None and finisher.stuck:
        log.error("worker %s stopped with its finisher stuck: exit 1, to be replaced", name)
        return 1
    log.info("worker %s stopped", name)
    return 0


def _warm_up(models, settings: Settings) -> None:
    """Run the champion once on an empty window, so the first job does not pay for kernel selection."""
    import numpy as np

    from octopi_core.inference import segment_tomogram

    try:
        picker = models.get(models.champion)
        volume = np.zeros(settings.window_vox, np.float32)
        segment_tomogram(
            picker.model,
            volume,
            num_classes=picker.config.out_channels,
            window_vox=settings.window_vox,
            batch_size=1,
            device=picker.device,
        )
    except Exception as e:  # noqa: BLE001 - a broken model is reported by the jobs that need it
        log.warning("warm-up skipped: %s", e)


def _wait_for_redis(connection: redis.Redis, shutdown: threading.Event, delay_s: float) -> None:
    """Sleep until Redis answers PING (or shutdown is requested)."""
    while not shutdown.is_set():
        try:
            if connection.ping():
                return
        except _REDIS_ERRORS:
            pass
        time.sleep(delay_s)
