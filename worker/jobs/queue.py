"""The RQ queue that carries job attempts from the gateway to the workers.

Each attempt of a service job is its own RQ job, ``<job id>-<attempt>`` (see
:func:`worker.jobs.keys.rq_job_id`), calling :func:`worker.tasks.pick_particles` by name, so the gateway
never imports the worker's model code.
A re-queue enqueues a fresh RQ job; RQ's bookkeeping of the abandoned one cannot touch the new attempt.
"""

from __future__ import annotations

from redis import Redis
from redis.client import Pipeline
from rq import Queue

from octopi_core.settings import Settings

from .keys import rq_job_id
from .state import JobRecord

__all__ = [
    "TASK",
    "RQ_RESULT_TTL_S",
    "make_queue",
    "enqueue_attempt",
    "queue_position",
    "queue_depth",
]

TASK = "worker.tasks.pick_particles"
RQ_RESULT_TTL_S = (
    3600  # RQ's own job hashes are bookkeeping only; the service's record lives in octopi:job:<id>
)


def make_queue(connection: Redis, settings: Settings) -> Queue:
    """The service's RQ queue (``settings.queue_name``)."""
    return Queue(settings.queue_name, connection=connection)


def enqueue_attempt(
    connection: Redis,
    settings: Settings,
    record: JobRecord,
    *,
    at_front: bool = False,
    pipeline: Pipeline | None = None,
) -> str:
    """Put attempt ``record.attempt`` of ``record`` on the queue; return its RQ job id.

    With ``pipeline``, nothing is sent until the caller executes it.
    """
    rq_id = rq_job_id(record.id, record.attempt)
    make_queue(connection, settings).enqueue(
        TASK,
        record.id,
        record.attempt,
        job_id=rq_id,
        job_timeout=settings.job_timeout_s,
        result_ttl=RQ_RESULT_TTL_S,
        failure_ttl=RQ_RESULT_TTL_S,
        at_front=at_front,
        pipeline=pipeline,
        description=f"pick particles in {record.tomogram_uri}",
    )
    return rq_id


def queue_position(connection: Redis, settings: Settings, record: JobRecord) -> int | None:
    """0-based place of the current attempt in the queue (0 = next), None when it is not waiting."""
    position = connection.lpos(make_queue(connection, settings).key, rq_job_id(record.id, record.attempt))
    return position if isinstance(position, int) else None  # lpos gives a list only when asked for COUNT


def queue_depth(connection: Redis, settings: Settings) -> int:
    """Attempts waiting in the queue."""
    return int(connection.llen(make_queue(connection, settings).key))
