"""Job lifecycle transitions, each one atomic in Redis (WATCH/MULTI/EXEC).

A running attempt is owned through an entry ``job id -> "<worker>|<attempt>"`` in
:data:`worker.jobs.keys.RUNNING_KEY`. Only the owner may finish or re-queue the attempt, and the reaper
may take it over only while the owner's heartbeat key is gone. Every transition checks ownership
and changes the record in one transaction, so a worker that was presumed dead (and whose job was
re-queued) can never overwrite the newer attempt's outcome.

Transitions:

- :func:`create_job`: new record + first attempt on the queue (gateway).
- :func:`create_reused_job`: new record, already succeeded with a shared result (gateway).
- :func:`claim_attempt`: queued -> running (worker, at the start of the task).
- :func:`finish_attempt`: running -> succeeded / failed / cancelled (worker).
- :func:`requeue_attempt`: running -> queued, by the owner at shutdown or by the reaper for a dead owner.
- :func:`cancel_job`: queued -> cancelled at once, or a running job flagged to stop (gateway).

Each new job is also listed in its owner's index (:func:`worker.jobs.keys.owner_jobs_key`), read back by
:func:`recent_job_ids` for ``GET /jobs``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from redis import Redis
from redis.client import Pipeline

from octopi_core.settings import Settings

from . import stats
from .exceptions import InvalidJobStateError, WorkerLostError
from .keys import (
    RUNNING_KEY,
    WORKERS_KEY,
    cancel_key,
    job_key,
    owner_jobs_key,
    reuse_key,
    rq_job_id,
    unclaimed_key,
    worker_key,
)
from .queue import enqueue_attempt, make_queue
from .state import (
    JobRecord,
    JobStatus,
    expire_job,
    parse_time,
    request_cancel,
    store_result,
    utc_now,
)

__all__ = [
    "OWNER_JOBS_KEPT",
    "owner_token",
    "running_owners",
    "create_job",
    "create_reused_job",
    "claim_attempt",
    "finish_attempt",
    "requeue_attempt",
    "cancel_job",
    "reap_dead_workers",
    "reap_unclaimed_attempts",
    "recent_job_ids",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
OWNER_JOBS_KEPT = 200  # newest job ids kept in each owner's index; older ones are dropped from it


def owner_token(worker_name: str, attempt: int) -> str:
    """The value stored in the running hash for ``attempt`` run by ``worker_name``."""
    return f"{worker_name}|{attempt}"


def _owner(token: str) -> str:
    """The worker name in an :func:`owner_token`."""
    return token.rsplit("|", 1)[0]


def running_owners(connection: Redis) -> list[str]:
    """The worker holding each running attempt, one entry per attempt, read at once: a worker can hold two
    (one inferring, one on its finisher thread), so the distinct names are the busy workers."""
    return [_owner(_text(token) or "") for token in connection.hvals(RUNNING_KEY)]


def _text(value: object) -> str | None:
    return value.decode() if isinstance(value, bytes) else (None if value is None else str(value))


def _transaction(connection: Redis, body: Callable[[Pipeline], T], *watched: str) -> T:
    """Run ``body`` in a WATCH/MULTI/EXEC transaction over ``watched`` keys, retrying on conflicts."""
    return connection.transaction(body, *watched, value_from_callable=True)


def _job_seconds(record: JobRecord) -> float | None:
    created = parse_time(record.created_at)
    return None if created is None else max(0.0, time.time() - created.timestamp())


def _index_for_owner(pipe: Redis | Pipeline, settings: Settings, record: JobRecord) -> None:
    """List ``record`` in its owner's index, newest first, bounded and expiring with the owner's last job."""
    key = owner_jobs_key(record.client_id)
    pipe.zadd(key, {record.id: time.time()})
    pipe.zremrangebyrank(key, 0, -OWNER_JOBS_KEPT - 1)
    pipe.expire(key, int(settings.result_ttl_s))


def recent_job_ids(connection: Redis, client_id: str, *, limit: int) -> list[str]:
    """The ids of ``client_id``'s newest jobs, newest first (some may have expired since).

    Args:
        client_id: the owner, as :attr:`JobRecord.client_id`.
        limit: at most this many ids (1..``OWNER_JOBS_KEPT``).

    Raises:
        ValueError: for ``limit`` out of range.
    """
    if not 1 <= limit <= OWNER_JOBS_KEPT:
        raise ValueError(f"limit must be in 1..{OWNER_JOBS_KEPT}; got {limit!r}")
    return [_text(v) or "" for v in connection.zrevrange(owner_jobs_key(client_id), 0, limit - 1)]


def create_job(
    connection: Redis, settings: Settings, record: JobRecord, *, pipeline: Pipeline | None = None
) -> None:
    """Store a new ``record`` (status queued, attempt 1) and put its first attempt on the queue."""
    record.status, record.attempt = JobStatus.QUEUED, 1
    own = pipeline is None
    pipe = connection.pipeline() if pipeline is None else pipeline
    if own:
        pipe.multi()  # RQ's enqueue insists on a MULTI block when given a pipeline
    record.save(connection, pipeline=pipe)
    _index_for_owner(pipe, settings, record)
    enqueue_attempt(connection, settings, record, pipeline=pipe)
    if own:
        pipe.execute()


def create_reused_job(
    connection: Redis,
    settings: Settings,
    record: JobRecord,
    source: JobRecord,
    result_json: str,
    *,
    pipeline: Pipeline | None = None,
) -> None:
    """Store ``record`` as already succeeded with the picks of ``source`` (a shared result given to another
    owner, who gets a job id of their own).

    Args:
        record: the new job (its id and owner are kept).
        source: the succeeded job whose result is reused.
        result_json: ``source``'s picks document, copied so each job keeps its own expiry.
    """
    now = utc_now()
    record.status, record.progress, record.reused_from = JobStatus.SUCCEEDED, 1.0, source.id
    record.started_at = record.finished_at = now
    record.counts, record.timings_s = dict(source.counts), dict(source.timings_s)
    pipe = connection if pipeline is None else pipeline
    record.save(connection, pipeline=pipeline)
    _index_for_owner(pipe, settings, record)
    store_result(pipe, record.id, result_json, settings.result_ttl_s)
    expire_job(pipe, record.id, settings.result_ttl_s)


def claim_attempt(
    connection: Redis, settings: Settings, job_id: str, attempt: int, worker_name: str
) -> JobRecord | None:
    """Mark attempt ``attempt`` of ``job_id`` as running on ``worker_name``.

    Returns:
        The running record, or None when the attempt is stale (the job moved on, finished, or is gone)
        or was cancelled while queued (then the job is marked cancelled here).
    """
    token = owner_token(worker_name, attempt)

    def body(pipe: Pipeline) -> JobRecord | None:
        raw = pipe.hgetall(job_key(job_id))
        if not raw:
            return None
        record = JobRecord.from_mapping(raw)
        if record.attempt != attempt or record.status is not JobStatus.QUEUED:
            return None
        cancelled = bool(pipe.exists(cancel_key(job_id)))
        pipe.multi()
        now = utc_now()
        if cancelled:
            record.update(pipe, status=JobStatus.CANCELLED, finished_at=now, stage=None)
            expire_job(pipe, job_id, settings.result_ttl_s)
            stats.record_job_end(pipe, job_id, JobStatus.CANCELLED.value, job_duration_s=_job_seconds(record))
            return None
        pipe.hset(RUNNING_KEY, job_id, token)
        record.update(
            pipe,
            status=JobStatus.RUNNING,
            tries=record.tries + 1,
            worker=worker_name,
            started_at=now,
            stage=None,
            progress=0.0,
            inferring_at="",
        )
        return record

    return _transaction(connection, body, RUNNING_KEY, job_key(job_id))


def finish_attempt(
    connection: Redis,
    settings: Settings,
    record: JobRecord,
    status: JobStatus,
    *,
    result_json: str | None = None,
    error: Exception | None = None,
    error_type: str = "",
    counts: dict[str, int] | None = None,
    timings_s: dict[str, float] | None = None,
    outputs: list[str] | None = None,
    reused_from: str = "",
) -> bool:
    """End the running attempt of ``record`` with ``status`` (succeeded, failed or cancelled).

    Args:
        result_json: the picks document, for ``succeeded``.
        error: the exception that failed the job; its class name and message become the problem details.
        error_type: overrides the error's class name.
        counts, timings_s, outputs: picks per class, pipeline timings (s), files written to ``output_uri``.
        reused_from: id of the job whose result was reused.

    Returns:
        False when this worker no longer owns the attempt (it was re-queued meanwhile): nothing is written.
    """
    token = owner_token(record.worker, record.attempt)
    status = JobStatus(status)

    def body(pipe: Pipeline) -> bool:
        if _text(pipe.hget(RUNNING_KEY, record.id)) != token:
            return False
        pipe.multi()
        pipe.hdel(RUNNING_KEY, record.id)
        changes: dict = {"status": status, "finished_at": utc_now()}
        if error is not None or error_type:
            changes.update(error_type=error_type or type(error).__name__, error_detail=str(error or ""))
        for name, value in (("counts", counts), ("timings_s", timings_s), ("outputs", outputs)):
            if value is not None:
                changes[name] = value
        if reused_from:
            changes["reused_from"] = reused_from
        if status is JobStatus.SUCCEEDED:
            changes["progress"] = 1.0
            store_result(pipe, record.id, result_json or "{}", settings.result_ttl_s)
            if record.digest:
                pipe.set(reuse_key(record.digest), record.id, ex=settings.result_ttl_s)
        record.update(pipe, **changes)
        expire_job(pipe, record.id, settings.result_ttl_s)
        inference_s = (
            (timings_s or {}).get("total") if status is JobStatus.SUCCEEDED and not reused_from else None
        )
        stats.record_job_end(
            pipe,
            record.id,
            status.value,
            job_duration_s=_job_seconds(record),
            inference_duration_s=inference_s,
        )
        return True

    return _transaction(connection, body, RUNNING_KEY)


def _requeue_in(
    pipe: Pipeline, connection: Redis, settings: Settings, record: JobRecord, *, count_try: bool
) -> None:
    """Queue the next attempt of ``record`` at the front (inside a MULTI)."""
    record.update(
        pipe,
        status=JobStatus.QUEUED,
        attempt=record.attempt + 1,
        tries=record.tries if count_try else max(0, record.tries - 1),
        stage=None,
        progress=0.0,
        worker="",
        started_at="",
        inferring_at="",
    )
    enqueue_attempt(connection, settings, record, at_front=True, pipeline=pipe)


def requeue_attempt(
    connection: Redis, settings: Settings, record: JobRecord, *, count_try: bool = False
) -> bool:
    """Put the running attempt of ``record`` back at the front of the queue as a new attempt.

    Used by a worker that shuts down mid-job (``count_try=False``: the attempt does not count against
    ``max_tries``). Returns False when the worker no longer owned the attempt.
    """
    token = owner_token(record.worker, record.attempt)

    def body(pipe: Pipeline) -> bool:
        if _text(pipe.hget(RUNNING_KEY, record.id)) != token:
            return False
        pipe.multi()
        pipe.hdel(RUNNING_KEY, record.id)
        _requeue_in(pipe, connection, settings, record, count_try=count_try)
        return True

    return _transaction(connection, body, RUNNING_KEY)


def cancel_job(connection: Redis, settings: Settings, job_id: str, *, owner: str | None = None) -> JobRecord:
    """Cancel ``job_id``: a queued job at once, a running one by raising its flag (the worker stops
    within one batch of windows).

    Args:
        owner: when given, the client id the job must belong to (checked in the same transaction).

    Returns:
        The record after the change (``cancelled``, or still ``running`` with the flag raised).

    Raises:
        NoSuchJobError: unknown job, or another owner's.
        InvalidJobStateError: the job already ended.
    """
    queue = make_queue(connection, settings)

    def body(pipe: Pipeline) -> JobRecord:
        record = JobRecord.fetch(pipe, job_id, owner=owner)
        if record.is_finished:
            raise InvalidJobStateError(
                f"job {job_id} already ended with status {record.status.value}; nothing to cancel"
            )
        pipe.multi()
        request_cancel(pipe, job_id, settings.result_ttl_s)
        if record.status is JobStatus.QUEUED:
            queue.remove(rq_job_id(job_id, record.attempt), pipeline=pipe)
            record.update(pipe, status=JobStatus.CANCELLED, finished_at=utc_now(), stage=None)
            expire_job(pipe, job_id, settings.result_ttl_s)
            stats.record_job_end(pipe, job_id, JobStatus.CANCELLED.value, job_duration_s=_job_seconds(record))
        return record

    return _transaction(connection, body, job_key(job_id))


def reap_dead_workers(connection: Redis, settings: Settings, *, self_name: str | None = None) -> list[str]:
    """Re-queue (or, after ``max_tries`` attempts, fail) the jobs of workers whose heartbeat expired.

    Safe to run from many processes at once: each dead attempt is taken over by exactly one of them.
    Also forgets dead workers in the worker set.

    Returns:
        The ids of the jobs taken over.
    """
    taken: list[str] = []
    for raw_id, raw_token in connection.hgetall(RUNNING_KEY).items():
        job_id, token = _text(raw_id) or "", _text(raw_token) or ""
        owner = _owner(token)
        if owner == self_name or connection.exists(worker_key(owner)):
            continue

        def body(pipe: Pipeline, job_id: str = job_id, token: str = token, owner: str = owner) -> bool:
            if _text(pipe.hget(RUNNING_KEY, job_id)) != token or pipe.exists(worker_key(owner)):
                return False
            raw = pipe.hgetall(job_key(job_id))
            pipe.multi()
            pipe.hdel(RUNNING_KEY, job_id)
            if not raw:
                return True
            record = JobRecord.from_mapping(raw)
            if record.tries >= settings.max_tries:
                error = WorkerLostError(
                    f"the worker running this job stopped responding on each of its {record.tries} attempts "
                    f"(last: {owner}); it may be killed for using too much memory"
                )
                record.update(
                    pipe,
                    status=JobStatus.FAILED,
                    finished_at=utc_now(),
                    error_type=type(error).__name__,
                    error_detail=str(error),
                )
                expire_job(pipe, job_id, settings.result_ttl_s)
                stats.record_job_end(
                    pipe, job_id, JobStatus.FAILED.value, job_duration_s=_job_seconds(record)
                )
            else:
                _requeue_in(pipe, connection, settings, record, count_try=True)
            return True

        if _transaction(connection, body, RUNNING_KEY, worker_key(owner)):
            log.warning("worker %s is gone; took over job %s", owner, job_id)
            taken.append(job_id)
    taken += reap_unclaimed_attempts(connection, settings)
    for raw_name in connection.smembers(WORKERS_KEY):
        name = _text(raw_name) or ""
        if name != self_name and not connection.exists(worker_key(name)):
            connection.srem(WORKERS_KEY, name)
    return taken


def reap_unclaimed_attempts(connection: Redis, settings: Settings) -> list[str]:
    """Re-queue attempts that a worker took off the queue but never claimed.

    RQ moves a job from the queue to its intermediate list, then to its started registry, before our task
    runs ``claim_attempt``; a worker killed in between leaves the job ``queued`` in no queue, and the
    dead-worker sweep (which reads the running hash) never sees it. An attempt found there, unclaimed,
    for longer than ``settings.worker_ttl_s`` gets a new attempt at the front of the queue; its tries are
    unchanged, since it never ran. A slow but live worker that claims the old attempt later is refused by
    ``claim_attempt`` (stale attempt), so each attempt still runs at most once.

    Returns:
        The ids of the jobs re-queued.
    """
    queue = make_queue(connection, settings)
    rq_ids = set(queue.intermediate_queue.get_job_ids()) | set(queue.started_job_registry.get_job_ids())
    now_s = float(connection.time()[0])
    taken: list[str] = []
    for rq_id in rq_ids:
        job_id, _, attempt_text = rq_id.rpartition("-")
        if not job_id or not attempt_text.isdigit() or connection.hexists(RUNNING_KEY, job_id):
            continue
        raw = connection.hgetall(job_key(job_id))
        record = JobRecord.from_mapping(raw) if raw else None
        if record is None or record.status is not JobStatus.QUEUED or record.attempt != int(attempt_text):
            continue  # claimed, moved on, cancelled or gone: nothing is stranded
        seen_key = unclaimed_key(rq_id)
        if connection.set(seen_key, now_s, nx=True, ex=max(60, int(10 * settings.worker_ttl_s))):
            continue  # first sight: its worker may be claiming it right now
        if now_s - float(connection.get(seen_key) or now_s) < settings.worker_ttl_s:
            continue

        def body(pipe: Pipeline, job_id: str = job_id, attempt: int = int(attempt_text)) -> bool:
            raw = pipe.hgetall(job_key(job_id))
            if not raw or pipe.hexists(RUNNING_KEY, job_id):
                return False
            record = JobRecord.from_mapping(raw)
            if record.status is not JobStatus.QUEUED or record.attempt != attempt:
                return False
            pipe.multi()
            _requeue_in(pipe, connection, settings, record, count_try=True)  # keeps tries: it never ran
            return True

        if _transaction(connection, body, RUNNING_KEY, job_key(job_id)):
            log.warning("attempt %s was taken off the queue and never claimed; queued it again", rq_id)
            connection.delete(seen_key)
            taken.append(job_id)
    return taken
