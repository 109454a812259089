"""RQ task: one attempt of a picking job, from its record in Redis to picks in Redis (and ``output_uri``).

The task loads the tomogram and computes through :class:`octopi_core.pipeline.Picker`, reports stage and
progress into the job record as it goes, checks between z-slabs while reading and between batches of
windows whether to stop (cancelled, shutting down, or no longer the owner), and returns a JSON-safe summary,
never arrays. With the worker's :class:`~worker.finisher.Finisher`, the task returns once the tomogram is
inferred, and the finisher localizes, writes the outputs and records the outcome (the job stays owned by
the worker until then); without one (``worker_overlap`` off, or a plain RQ worker) the task does it all.
An attempt has ``job_timeout_s`` in all: RQ's alarm holds the task to it, and localization, wherever it
runs, polls the same deadline.
Before reading a voxel it checks the output directory and, on the tomogram it opened itself,
the size and chunk limits (a host may answer the worker otherwise than it answered the gateway).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

import redis
from redis import Redis
from rq.timeouts import JobTimeoutException

from octopi_core.data.copick_output import open_copick_output, write_copick_output
from octopi_core.exceptions import InferenceCancelledError, OctopiError
from octopi_core.export import PicksFormat, render_picks
from octopi_core.io import check_output_writable, service_storage_options, write_output
from octopi_core.picks import PicksDocument
from octopi_core.pipeline import InferredTomogram, Picker, PredictOptions
from octopi_core.settings import Settings, get_settings

from .finisher import Finisher, FinisherStuckError
from .jobs.exceptions import InternalJobError, JobTimeoutError, OutputWriteError
from .jobs.keys import RUNNING_KEY, cancel_key, preview_key, reuse_key
from .jobs.lifecycle import claim_attempt, finish_attempt, owner_token, requeue_attempt
from .jobs.state import JobOptions, JobRecord, JobStage, JobStatus, fetch_result, set_progress, set_stage
from .model_cache import ModelCache

__all__ = ["TaskContext", "configure", "current_context", "pick_particles", "connect"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_PROGRESS_INTERVAL_S = 0.25  # least time between two progress writes
_CANCEL_POLL_S = 0.5  # least time between two reads of the cancel key while localizing
_REDIS_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)


def connect(settings: Settings) -> Redis:
    """A Redis client for job state: short timeouts, so an outage surfaces as an error instead of a hang."""
    return Redis.from_url(
        settings.effective_redis_url, socket_connect_timeout=5, socket_timeout=10, health_check_interval=15
    )


@dataclass
class TaskContext:
    """What a worker process shares with its tasks: settings, its name, its models, its shutdown flag and
    its finisher (None: each task ends its own job)."""

    settings: Settings
    worker_name: str
    models: ModelCache
    connection: Redis
    shutdown: threading.Event = field(default_factory=threading.Event)
    finisher: Finisher | None = None


_context: TaskContext | None = None


def configure(context: TaskContext) -> None:
    """Install the context the worker process's tasks run with."""
    global _context
    _context = context


def current_context() -> TaskContext:
    """The installed context, or a default one from the environment (a task run by a plain RQ worker)."""
    global _context
    if _context is None:
        settings = get_settings()
        _context = TaskContext(
            settings=settings,
            worker_name=f"rq-{os.getpid()}",
            connection=connect(settings),
            models=ModelCache.from_settings(settings),
        )
    return _context


def _retrying(call: Callable[[], T], patience_s: float) -> T:
    """Run ``call``, retrying while Redis is unreachable for up to ``patience_s`` seconds."""
    deadline, delay = time.monotonic() + patience_s, 0.25
    while True:
        try:
            return call()
        except _REDIS_ERRORS:
            if time.monotonic() >= deadline:
                raise
            log.warning("Redis unreachable; retrying in %.1f s", delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _best_effort(call: Callable[[], object]) -> None:
    try:
        call()
    except _REDIS_ERRORS as e:
        log.warning("could not record job state: %s", e)


def pick_particles(job_id: str, attempt: int) -> dict:
    """Run attempt ``attempt`` of job ``job_id`` and record its outcome.

    Returns:
        ``{"job_id", "status"}``: the job's status afterwards (``running`` when handed to the finisher), or
        ``skipped`` for a stale attempt.
    """
    context = current_context()
    connection, settings = context.connection, context.settings
    deadline = time.monotonic() + settings.job_timeout_s  # RQ's alarm started about now
    record = _retrying(
        lambda: claim_attempt(connection, settings, job_id, attempt, context.worker_name),
        settings.redis_retry_s,
    )
    if record is None:
        return {"job_id": job_id, "status": "skipped"}
    try:
        status = _run(context, record, deadline)
    except JobTimeoutException:
        status = _finish(context, record, JobStatus.FAILED, error=_timeout_error(settings))
    return {"job_id": job_id, "status": status}


def _timeout_error(settings: Settings) -> JobTimeoutError:
    return JobTimeoutError(f"the job ran longer than job_timeout_s = {settings.job_timeout_s} s")


def _finish(context: TaskContext, record: JobRecord, status: JobStatus, **outcome) -> str:
    settings = context.settings
    owned = _retrying(
        lambda: finish_attempt(context.connection, settings, record, status, **outcome),
        settings.redis_retry_s,
    )
    return status.value if owned else "superseded"


def _run(context: TaskContext, record: JobRecord, deadline: float) -> str:
    connection = context.connection
    options = record.options

    reused = _reusable_result(connection, record)
    if reused is not None:
        source_id, document = reused
        return _succeed(context, record, document, reused_from=source_id)

    token = owner_token(context.worker_name, record.attempt)
    last_progress = [0.0]

    def on_stage(stage: object) -> None:
        _best_effort(lambda: set_stage(connection, record.id, JobStage(getattr(stage, "value", stage))))

    def progress(fraction: float) -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - last_progress[0] >= _PROGRESS_INTERVAL_S:
            last_progress[0] = now
            _best_effort(lambda: set_progress(connection, record.id, fraction))

    def should_cancel() -> bool:
        if context.shutdown.is_set():
            return True
        try:
            with connection.pipeline(transaction=False) as pipe:
                pipe.exists(cancel_key(record.id))
                pipe.hget(RUNNING_KEY, record.id)
                cancelled, owner = pipe.execute()
        except _REDIS_ERRORS:
            return False  # keep computing through a Redis outage; the outcome is stored when it is back
        owner = owner.decode() if isinstance(owner, bytes) else owner
        return bool(cancelled) or owner != token

    settings = context.settings
    previews: list[bytes] = []  # the preview projection, kept while the volume is in memory
    try:
        if options.output_uri or options.copick_config:  # before the computation, not after it
            _check_output(options, settings)
        picker = context.models.get(record.model_version)
        storage_options = service_storage_options(
            record.tomogram_uri,
            s3_endpoint_url=settings.s3_endpoint_url,
            request_timeout_s=settings.remote_read_timeout_s,
        )
        predict_options = replace(options.predict_options(storage_options), limits=settings.tomogram_limits)
        inferred = picker.infer(
            record.tomogram_uri,
            predict_options,
            on_stage=on_stage,
            progress=progress,
            should_cancel=should_cancel,
            on_preview=lambda projection: previews.append(projection.to_bytes()),
        )
    except InferenceCancelledError:
        return _stopped(context, record)
    except (OctopiError, ValueError, OutputWriteError) as e:
        return _finish(context, record, JobStatus.FAILED, error=e)
    except JobTimeoutException:
        raise
    except Exception as e:  # a bug or an exhausted resource: report it on the job, keep the worker alive
        log.exception("job %s failed unexpectedly", record.id)
        return _finish(context, record, JobStatus.FAILED, error=InternalJobError(f"{type(e).__name__}: {e}"))

    def conclude() -> str:
        preview = previews[0] if previews else None
        return _conclude(
            context,
            record,
            picker,
            inferred,
            predict_options,
            on_stage=on_stage,
            preview=preview,
            deadline=deadline,
        )

    def overdue() -> None:  # the finisher's thread is given up: its late outcome will find the job taken
        _finish(context, record, JobStatus.FAILED, error=_timeout_error(settings))

    if context.finisher is None:
        return conclude()
    # Waits for the job before it (at most one there), but keeps a grace of its own time to end itself.
    try:
        handed = context.finisher.submit(
            conclude, deadline=deadline, on_overdue=overdue, wait_until=deadline - settings.finisher_grace_s
        )
    except FinisherStuckError:
        log.error(
            "the finisher of %s is stuck: ending job %s here, then restarting", context.worker_name, record.id
        )
        context.shutdown.set()  # run_worker sees the finisher stuck and exits 1
        return conclude()
    if not handed:
        log.warning("the finisher of %s is still busy: ending job %s here", context.worker_name, record.id)
        return conclude()
    return JobStatus.RUNNING.value


def _conclude(
    context: TaskContext,
    record: JobRecord,
    picker: Picker,
    inferred: InferredTomogram,
    options: PredictOptions,
    *,
    on_stage: Callable[[object], None],
    preview: bytes | None,
    deadline: float,
) -> str:
    """Localize ``inferred``, write the outputs and record the outcome (in the finisher, or the task), by
    ``deadline`` (``time.monotonic()``): localization polls it and the cancel key."""
    connection = context.connection
    last_check = [time.monotonic()]

    def should_stop() -> bool:
        now = time.monotonic()
        if now >= deadline:
            return True
        if now - last_check[0] < _CANCEL_POLL_S:  # polled per confident region: Redis at most this often
            return False
        last_check[0] = now
        try:
            return bool(connection.exists(cancel_key(record.id)))
        except _REDIS_ERRORS:
            return False

    try:
        document = picker.picks_from(inferred, options, on_stage=on_stage, should_cancel=should_stop)
    except InferenceCancelledError:
        if time.monotonic() >= deadline:
            return _finish(context, record, JobStatus.FAILED, error=_timeout_error(context.settings))
        return _finish(context, record, JobStatus.CANCELLED)
    except (OctopiError, ValueError) as e:
        return _finish(context, record, JobStatus.FAILED, error=e)
    except Exception as e:  # a bug or an exhausted resource: report it on the job
        log.exception("job %s failed unexpectedly while localizing", record.id)
        return _finish(context, record, JobStatus.FAILED, error=InternalJobError(f"{type(e).__name__}: {e}"))
    try:
        cancelled = bool(context.connection.exists(cancel_key(record.id)))  # asked during localization
    except _REDIS_ERRORS:
        cancelled = False
    if cancelled:
        return _finish(context, record, JobStatus.CANCELLED)
    return _succeed(context, record, document, preview=preview)


def _succeed(
    context: TaskContext,
    record: JobRecord,
    document: PicksDocument,
    *,
    reused_from: str = "",
    preview: bytes | None = None,
) -> str:
    """Write the picks to ``output_uri`` (when asked) and store them as the job's result, with the preview
    projection beside them (a reused result keeps its source's: the gateway looks there)."""
    if preview is not None:  # before the result, so a succeeded job's preview is there when it is read
        connection, ttl_s = context.connection, context.settings.result_ttl_s
        _best_effort(lambda: connection.set(preview_key(record.id), preview, ex=ttl_s))
    try:
        outputs = _write_outputs(document, record.options, context.settings)
    except OutputWriteError as e:
        return _finish(context, record, JobStatus.FAILED, error=e)
    return _finish(
        context,
        record,
        JobStatus.SUCCEEDED,
        result_json=document.model_dump_json(),
        counts=document.counts(),
        timings_s=document.timings_s,
        outputs=outputs,
        reused_from=reused_from,
    )


def _stopped(context: TaskContext, record: JobRecord) -> str:
    """Inference stopped between batches: cancelled, shutting down, or the job was taken over."""
    connection, settings = context.connection, context.settings
    cancelled = _retrying(lambda: bool(connection.exists(cancel_key(record.id))), settings.redis_retry_s)
    if cancelled:
        return _finish(context, record, JobStatus.CANCELLED)
    if context.shutdown.is_set():
        requeued = _retrying(
            lambda: requeue_attempt(connection, settings, record, count_try=False), settings.redis_retry_s
        )
        log.info("shutting down: job %s %s", record.id, "re-queued" if requeued else "was already taken over")
        return JobStatus.QUEUED.value if requeued else "superseded"
    log.warning("job %s was taken over by another worker; dropping this attempt", record.id)
    return "superseded"


def _reusable_result(connection: Redis, record: JobRecord) -> tuple[str, PicksDocument] | None:
    """The picks of an earlier succeeded job with the same digest, if one is still stored."""
    if not record.digest:
        return None
    source = connection.get(reuse_key(record.digest))
    source_id = source.decode() if isinstance(source, bytes) else source
    if not source_id or source_id == record.id:
        return None
    text = fetch_result(connection, source_id)
    return None if text is None else (source_id, PicksDocument.model_validate_json(text))


def _check_output(options: JobOptions, settings: Settings) -> None:
    """Refuse an output directory or copick project the picks could not be written to, before computing them.

    Raises:
        OutputWriteError: as a failed write would (the gateway checked them too, with named errors).
    """
    try:
        if options.output_uri:
            check_output_writable(options.output_uri, local_roots=settings.local_roots)
        if options.copick_config:
            open_copick_output(
                options.copick_config,
                options.run_name or "",
                user=options.pick_user,
                session=options.pick_session,
                local_roots=settings.local_roots,
                storage_options=_copick_storage_options(options.copick_config, settings),
            )
    except (OctopiError, ValueError) as e:
        raise OutputWriteError(f"{e}; nothing was computed") from e


def _write_outputs(document: PicksDocument, options: JobOptions, settings: Settings) -> list[str]:
    """Write ``<output_uri>/<run_name>.picks.<ext>`` for each format (local targets under the local roots), and
    the copick picks files into the copick project; return the URIs written.

    Raises:
        OutputWriteError: when a file cannot be written.
    """
    written = []
    for name in options.formats if options.output_uri else []:
        fmt = PicksFormat(name)
        target = f"{str(options.output_uri).rstrip('/')}/{document.run_name}.picks.{fmt.extension}"
        storage_options = service_storage_options(target, s3_endpoint_url=settings.s3_endpoint_url)
        try:
            written.append(
                write_output(
                    target,
                    render_picks(document, fmt),
                    local_roots=settings.local_roots,
                    storage_options=storage_options,
                )
            )
        except Exception as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)  # not the resolved path
            raise OutputWriteError(f"could not write {target}: {type(e).__name__}: {reason}") from e
    if options.copick_config:  # a new session unless one was asked for: never another job's picks
        try:
            written += write_copick_output(
                document,
                options.copick_config,
                user=options.pick_user,
                session=options.pick_session,
                local_roots=settings.local_roots,
                storage_options=_copick_storage_options(options.copick_config, settings),
            )
        except Exception as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise OutputWriteError(
                f"could not write the picks into copick project {options.copick_config} run "
                f"{document.run_name}: {type(e).__name__}: {reason}"
            ) from e
    return written


def _copick_storage_options(config_uri: str, settings: Settings) -> dict | None:
    return service_storage_options(config_uri, s3_endpoint_url=settings.s3_endpoint_url)
