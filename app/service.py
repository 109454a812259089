"""The gateway's service layer, what the routes call: submit, look up, cancel and fetch jobs, list models,
check readiness.

Keyword-only functions over a Redis connection, the settings and the model registry. Validation of a
submission happens here, before anything is queued: the URI policy, the model version and classes (by
the rules of :meth:`octopi_core.registry.Registry.served_model` and
:func:`octopi_core.model_config.check_model_classes`), and the tomogram's metadata (existence, size
limit, content identity) read through :func:`octopi_core.io.open_tomogram` with a timeout.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING

from redis import Redis
from redis.client import Pipeline

from octopi_core.exceptions import CheckpointError, TomogramUnreachableError
from octopi_core.export import PicksFormat, render_copick_zip, render_picks
from octopi_core.model_config import (
    ModelConfig,
    check_model_classes,
    check_spectrum_matching,
    default_checkpoint_dir,
    read_config,
)
from octopi_core.picks import PicksDocument
from octopi_core.settings import Settings
from worker.jobs import stats
from worker.jobs.exceptions import JobNotFinishedError, NoSuchJobError
from worker.jobs.keys import idempotency_key, job_key, preview_key, reuse_key
from worker.jobs.lifecycle import cancel_job, create_job, create_reused_job, recent_job_ids
from worker.jobs.queue import queue_position
from worker.jobs.state import (
    JobOptions,
    JobRecord,
    JobStage,
    JobStatus,
    fetch_result,
    parse_time,
    result_digest,
)
from worker.jobs.workers import live_workers

from .core.exceptions import (
    IdempotencyKeyReusedError,
    NoModelAvailableError,
    RateLimitExceededError,
    UnknownModelVersionError,
)
from .core.problem import problem_from_error_type
from .core.uri_policy import check_output_uri, check_tomogram_uri, normalize_uri
from .schemas import (
    JobCreate,
    JobLinks,
    JobOptionsPublic,
    JobPublic,
    JobsPublic,
    ModelPublic,
    ModelsPublic,
    Problem,
    Readiness,
    TrainingDataPublic,
)

if TYPE_CHECKING:
    from octopi_core.registry import Registry

__all__ = [
    "submit_job",
    "read_job",
    "list_jobs",
    "describe",
    "cancel",
    "read_picks",
    "read_preview",
    "list_models",
    "readiness",
    "MEDIA_TYPES",
]

MEDIA_TYPES = {
    PicksFormat.JSON: "application/json",
    PicksFormat.CSV: "text/csv; charset=utf-8",
    PicksFormat.STAR: "text/plain; charset=utf-8",
    PicksFormat.COPICK: "application/zip",
    PicksFormat.NDJSON: "application/x-ndjson",
}
# Share of a job's progress per stage; inference is most of the time on any device.
_STAGE_SPAN = {
    JobStage.FETCHING: (0.0, 0.05),
    JobStage.INFERRING: (0.05, 0.95),
    JobStage.LOCALIZING: (0.95, 1.0),
}
# Opens in flight in this gateway process, all clients together; each client may hold
# settings.max_opens_per_client of them. A slot is held until the opening thread ends, not until the
# request stops waiting for it, so a slow host costs only its own client's slots.
_OPEN_THREADS = 32
_opener = ThreadPoolExecutor(max_workers=_OPEN_THREADS, thread_name_prefix="open-tomogram")
_opens_lock = threading.Lock()
_opens_by_client: dict[str, int] = {}


# -- models --------------------------------------------------------------------------------------------------


def _model_config(registry: Registry, version: str | None) -> ModelConfig:
    """Config of the model that serves ``version`` (None: the champion, else the shipped model)."""
    served = registry.served_model(version)
    if served.version is None:  # only the shipped model can be missing
        raise NoModelAvailableError("no model is available: no champion in the registry and no shipped model")
    if served.shipped:
        return read_config(default_checkpoint_dir())
    if version is None:  # the champion: a broken one is the registry's error, not the request's
        return registry.config(served.version)
    try:
        return registry.config(version)
    except CheckpointError:
        raise UnknownModelVersionError(
            f"model version {version!r} is not available; see GET /models"
        ) from None


def list_models(*, registry: Registry) -> ModelsPublic:
    """Every model version with its scores and what it was trained on, the champion marked."""
    from octopi_core.registry import training_provenance  # the gateway defers the registry module

    entries = registry.entries()
    data = []
    for e in entries:
        trained_on, held_out = training_provenance(e.config)  # from config.json; no weights are loaded
        data.append(
            ModelPublic(
                version=e.version,
                champion=e.champion,
                classes=list(e.config.classes),
                voxel_size_a=e.config.voxel_size_a,
                scores=e.config.scores,
                trained_on=TrainingDataPublic.model_validate(trained_on),
                held_out=held_out,
            )
        )
    champion = next((e.version for e in entries if e.champion), None)
    return ModelsPublic(data=data, count=len(data), champion=champion)


# -- submission --------------------------------------------------------------------------------


def _take_open_slot(client_id: str, settings: Settings) -> None:
    """Count one open for ``client_id``, or refuse it when the client or the gateway is at its budget.

    Raises:
        RateLimitExceededError: 429 with Retry-After (one open timeout).
    """
    retry_after_s = max(1, math.ceil(settings.open_timeout_s))
    with _opens_lock:
        mine = _opens_by_client.get(client_id, 0)
        if mine >= settings.max_opens_per_client:
            raise RateLimitExceededError(
                f"this client already has {mine} tomogram opens in progress (at most "
                f"{settings.max_opens_per_client}); retry when they end",
                retry_after_s,
            )
        if sum(_opens_by_client.values()) >= _OPEN_THREADS:
            raise RateLimitExceededError(
                "the gateway is opening too many tomograms; retry shortly", retry_after_s
            )
        _opens_by_client[client_id] = mine + 1


def _give_open_slot(client_id: str) -> None:
    with _opens_lock:
        left = _opens_by_client.get(client_id, 1) - 1
        if left > 0:
            _opens_by_client[client_id] = left
        else:
            _opens_by_client.pop(client_id, None)


def _inspect_tomogram(
    uri: str, settings: Settings, *, client_id: str, target_voxel_size_a: float, voxel_size_a: float | None
) -> str:
    """Open the tomogram's metadata within the client's open budget and a deadline, refuse it over the
    limits (voxels after resampling, bytes, chunks), and return its content identity.

    Raises:
        RateLimitExceededError: the client (or the gateway) has too many opens in progress.
        TomogramUnreachableError: the open took longer than ``open_timeout_s``.
        TomogramTooLargeError, TooManyChunksError, TomogramError: from :func:`octopi_core.io.open_tomogram`.
    """
    from octopi_core.io import open_tomogram, service_storage_options

    storage_options = service_storage_options(  # every request ends by the deadline, so the thread does too
        uri, s3_endpoint_url=settings.s3_endpoint_url, request_timeout_s=settings.open_timeout_s
    )

    def inspect() -> str:
        try:
            with open_tomogram(
                uri,
                target_voxel_size_a=target_voxel_size_a,
                voxel_size_a=voxel_size_a,
                storage_options=storage_options,
                limits=settings.tomogram_limits,
            ) as source:
                return source.identity
        finally:
            _give_open_slot(client_id)

    _take_open_slot(client_id, settings)
    try:
        future = _opener.submit(inspect)
    except BaseException:
        _give_open_slot(client_id)
        raise
    try:
        return future.result(timeout=settings.open_timeout_s)
    except FutureTimeout:
        raise TomogramUnreachableError(
            f"opening tomogram {uri} took longer than {settings.open_timeout_s:g} s"
        ) from None


def _check_output_writable(uri: str, settings: Settings) -> None:
    """Refuse at submission a local output directory the workers could not write (checked again by them).

    Raises:
        OutputNotWritableError: 422.
    """
    from octopi_core.io import check_output_writable

    check_output_writable(uri, local_roots=settings.local_roots)


def _check_copick_output(
    body: JobCreate, settings: Settings, classes: list[str] | None, model_classes: Sequence[str]
) -> list[str]:
    """Refuse at submission a copick project the workers could not write the picks into (checked again by
    them), and return the classes to pick: the asked ones, else the model's that the project has objects for.

    Raises:
        UriNotAllowedError: the config or one of its roots is outside the URI policy.
        DataSourceError, UnknownRunError, OutputNotWritableError, PicksExistError, ValueError: from
            :func:`octopi_core.data.copick_output.open_copick_output`.
    """
    from octopi_core.data.copick_output import copick_output_classes, copick_root_uris, open_copick_output
    from octopi_core.io import service_storage_options

    uri = str(body.copick_config)
    check_output_uri(uri, settings, what="copick_config")
    storage_options = service_storage_options(
        uri, s3_endpoint_url=settings.s3_endpoint_url, request_timeout_s=settings.open_timeout_s
    )
    for root in copick_root_uris(uri, storage_options=storage_options):  # before any root is listed
        check_output_uri(root, settings, what=f"a root of copick_config {uri!r}")
    source = open_copick_output(
        uri,
        str(body.run_name),
        user=body.pick_user or "octopi",
        session=body.pick_session,
        local_roots=settings.local_roots,
        storage_options=storage_options,
    )
    return copick_output_classes(source, classes, model_classes)


def _fingerprint(body: JobCreate) -> str:
    # match_spectrum only when asked for, so that bodies without it keep the fingerprints they had
    left_out = None if body.match_spectrum else {"match_spectrum"}
    return hashlib.sha256(body.model_dump_json(exclude=left_out).encode()).hexdigest()[:32]


def _replay(connection: Redis, stored: bytes | str, fingerprint: str) -> JobRecord | None:
    job_id, _, stored_fingerprint = (stored.decode() if isinstance(stored, bytes) else stored).partition("|")
    if stored_fingerprint != fingerprint:
        raise IdempotencyKeyReusedError("this Idempotency-Key was used with a different request body")
    try:
        return JobRecord.fetch(connection, job_id)
    except NoSuchJobError:
        return None


def _finished_twin(connection: Redis, digest: str | None) -> tuple[JobRecord, str] | None:
    """The succeeded job stored under ``digest`` and its picks document, while both exist."""
    if not digest:
        return None
    source = connection.get(reuse_key(digest))
    if source is None:
        return None
    try:
        record = JobRecord.fetch(connection, source.decode() if isinstance(source, bytes) else source)
    except NoSuchJobError:
        return None
    text = fetch_result(connection, record.id) if record.status is JobStatus.SUCCEEDED else None
    return None if text is None else (record, text)


def submit_job(
    *,
    connection: Redis,
    settings: Settings,
    registry: Registry,
    body: JobCreate,
    client_id: str,
    idem_key: str | None = None,
) -> tuple[JobRecord, bool]:
    """Validate a submission and queue it, unless an identical request or result already exists.

    The job belongs to ``client_id``. A finished result is reused only from the same client's jobs, or,
    with ``settings.share_results``, from any client's: then the caller gets a new job of its own that
    holds a copy of the result, never the other client's job id.

    Returns:
        ``(record, created)``: ``created`` is False for an idempotent replay or a reused finished result.

    Raises:
        UriNotAllowedError, UnknownModelVersionError, NoModelAvailableError, TomogramTooLargeError,
        TooManyChunksError, OutputNotWritableError, RateLimitExceededError (the client's open budget),
        IdempotencyKeyReusedError, TomogramError subclasses, UnknownParticleClassError (a class the model
        does not pick), NoInputSpectrumError (match_spectrum with a model without one), ValueError (no such
        class).
    """
    fingerprint = _fingerprint(body)
    ikey = idempotency_key(client_id, idem_key) if idem_key else None
    if ikey:
        stored = connection.get(ikey)
        if stored is not None:
            replayed = _replay(connection, stored, fingerprint)
            if replayed is not None:
                return replayed, False
    check_tomogram_uri(body.tomogram_uri, settings)
    if body.output_uri:
        check_output_uri(body.output_uri, settings)
        _check_output_writable(body.output_uri, settings)
    config = _model_config(registry, body.model_version)
    classes = check_model_classes(config, body.classes)
    check_spectrum_matching(config, body.match_spectrum)
    if body.copick_config:
        classes = _check_copick_output(body, settings, classes, config.classes)
    options = JobOptions(
        classes=classes,
        voxel_size_a=body.voxel_size_a,
        tta=body.tta,
        match_spectrum=body.match_spectrum,
        formats=[f.value for f in dict.fromkeys(body.formats)],
        output_uri=normalize_uri(body.output_uri) if body.output_uri else None,
        window_vox=settings.window_vox,
        overlap=settings.overlap,
        batch_size=settings.batch_size,
        run_name=body.run_name,
        copick_config=normalize_uri(body.copick_config) if body.copick_config else None,
        pick_user=body.pick_user or "octopi",
        pick_session=body.pick_session,
    )
    uri = normalize_uri(body.tomogram_uri)
    identity = _inspect_tomogram(  # the URI as given: errors must not show its resolved path or the cwd
        body.tomogram_uri,
        settings,
        client_id=client_id,
        target_voxel_size_a=config.voxel_size_a,
        voxel_size_a=body.voxel_size_a,
    )
    owner = None if settings.share_results else client_id  # who may reuse the result
    digest = result_digest(uri, identity, config.version, options, owner=owner)
    record = JobRecord(
        id=uuid.uuid4().hex,
        tomogram_uri=uri,
        model_version=config.version,
        options=options,
        identity=identity,
        digest=digest or "",
        client_id=client_id,
        fingerprint=fingerprint,
    )

    def store(pipe: Pipeline) -> tuple[JobRecord, bool]:
        if ikey:
            stored = pipe.get(ikey)
            if stored is not None:
                replayed = _replay(pipe, stored, fingerprint)
                if replayed is not None:
                    return replayed, False
        # a job that writes files must run, so its files are written
        twin = None if options.output_uri or options.copick_config else _finished_twin(pipe, digest)
        own_twin = twin[0] if twin is not None and twin[0].client_id == client_id else None
        pipe.multi()
        if ikey:
            pipe.set(ikey, f"{(own_twin or record).id}|{fingerprint}", ex=settings.result_ttl_s)
        if own_twin is not None:
            return own_twin, False
        if twin is not None:  # another client's result (shared mode): a new job of this client's holds a copy
            create_reused_job(connection, settings, record, *twin, pipeline=pipe)
            return record, False
        create_job(connection, settings, record, pipeline=pipe)
        return record, True

    watched = [ikey] if ikey else []
    if digest:
        watched.append(reuse_key(digest))
    return connection.transaction(store, *watched, value_from_callable=True)


# -- reading --------------------------------------------------------------------------------


def _progress(record: JobRecord) -> float:
    if record.status is JobStatus.SUCCEEDED:
        return 1.0
    if record.status is not JobStatus.RUNNING or record.stage is None:
        return 0.0
    start, end = _STAGE_SPAN[record.stage]
    fraction = record.progress if record.stage is JobStage.INFERRING else 0.0
    return round(start + (end - start) * min(max(fraction, 0.0), 1.0), 4)


def _eta_s(connection: Redis, record: JobRecord, position: int | None) -> float | None:
    if record.status is JobStatus.RUNNING and record.stage is JobStage.INFERRING and record.progress > 0:
        began = parse_time(record.inferring_at)
        if began is None:
            return None
        elapsed = max(0.0, time.time() - began.timestamp())
        return round(elapsed * (1.0 - record.progress) / record.progress, 1)
    if record.status is JobStatus.QUEUED and position is not None:
        _, total_s, count = stats.read_histogram(connection, stats.INFERENCE_DURATION)
        if count == 0:
            return None
        workers = max(1, len(live_workers(connection)))
        return round((position + 1) * (total_s / count) / workers, 1)
    return None


def _reused_from(connection: Redis, record: JobRecord) -> str | None:
    """The id of the job whose result ``record`` reused, only when it has the same owner (ids of other
    clients' jobs are never shown)."""
    if not record.reused_from:
        return None
    source_owner = connection.hget(job_key(record.reused_from), "client_id")
    source_owner = source_owner.decode() if isinstance(source_owner, bytes) else source_owner
    return record.reused_from if source_owner == record.client_id else None


def _public(connection: Redis, settings: Settings, record: JobRecord) -> JobPublic:
    position = queue_position(connection, settings, record) if record.status is JobStatus.QUEUED else None
    base = f"/jobs/{record.id}"
    error = None
    if record.status is JobStatus.FAILED:
        error = Problem(**problem_from_error_type(record.error_type, record.error_detail, instance=base))
    options = record.options
    return JobPublic(
        id=record.id,
        status=record.status,
        stage=record.stage if record.status is JobStatus.RUNNING else None,
        progress=_progress(record),
        queue_position=position,
        eta_s=_eta_s(connection, record, position),
        tomogram_uri=record.tomogram_uri,
        model_version=record.model_version,
        options=JobOptionsPublic.model_validate(options.model_dump(exclude={"batch_size"})),
        tries=record.tries,
        worker=record.worker or None,
        created_at=parse_time(record.created_at),
        started_at=parse_time(record.started_at),
        finished_at=parse_time(record.finished_at),
        timings_s=record.timings_s,
        counts=record.counts,
        outputs=record.outputs,
        reused_from=_reused_from(connection, record),
        error=error,
        links=JobLinks(self_=base, picks=f"{base}/picks", cancel=base, preview=f"{base}/preview.png"),
    )


def read_job(*, connection: Redis, settings: Settings, job_id: str, client_id: str) -> JobPublic:
    """The job's status, stage, progress, place in the queue, ETA, timings and outcome.

    Raises:
        NoSuchJobError: unknown or expired job, or a job of another client than ``client_id``.
    """
    return _public(connection, settings, JobRecord.fetch(connection, job_id, owner=client_id))


def list_jobs(*, connection: Redis, settings: Settings, client_id: str, limit: int) -> JobsPublic:
    """The newest ``limit`` jobs of ``client_id`` (only its own), newest first; expired ones are left out.

    Raises:
        ValueError: ``limit`` outside 1..``worker.jobs.lifecycle.OWNER_JOBS_KEPT``.
    """
    ids = recent_job_ids(connection, client_id, limit=limit)
    with connection.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hgetall(job_key(job_id))
        raws = pipe.execute()
    records = [JobRecord.from_mapping(raw) for raw in raws if raw and (b"id" in raw or "id" in raw)]
    data = [_public(connection, settings, r) for r in records if r.client_id == client_id]
    return JobsPublic(data=data, count=len(data))


def describe(*, connection: Redis, settings: Settings, record: JobRecord) -> JobPublic:
    """The public view of a record already read."""
    return _public(connection, settings, record)


def cancel(*, connection: Redis, settings: Settings, job_id: str, client_id: str) -> JobPublic:
    """Cancel a queued job at once, or ask its worker to stop a running one.

    Raises:
        NoSuchJobError: unknown job, or a job of another client than ``client_id``.
        InvalidJobStateError: the job already ended.
    """
    cancel_job(connection, settings, job_id, owner=client_id)
    return read_job(connection=connection, settings=settings, job_id=job_id, client_id=client_id)


def read_picks(
    *, connection: Redis, job_id: str, client_id: str, fmt: PicksFormat
) -> tuple[str | bytes, str, str]:
    """The picks of a succeeded job as ``(body, media type, file name)``: text, or for ``copick`` the bytes of
    a zip of the per-class copick files (``octopi_0_<class>.json``), which copick tools load as they are.

    Raises:
        NoSuchJobError: unknown job, a job of another client than ``client_id``, or its picks expired.
        JobNotFinishedError: the job has not succeeded.
    """
    record = JobRecord.fetch(connection, job_id, owner=client_id)
    if record.status is not JobStatus.SUCCEEDED:
        raise JobNotFinishedError(
            f"job {job_id} is {record.status.value}; picks exist only once it succeeded"
        )
    text = fetch_result(connection, job_id)
    if text is None:
        raise NoSuchJobError(f"the picks of job {job_id} have expired")
    document = PicksDocument.model_validate_json(text)
    body = render_copick_zip(document) if fmt is PicksFormat.COPICK else render_picks(document, fmt)
    return body, MEDIA_TYPES[fmt], f"{document.run_name}.picks.{fmt.download_extension}"


def read_preview(*, connection: Redis, job_id: str, client_id: str) -> bytes:
    """A PNG of a succeeded job's picks over its tomogram, drawn from the projection its worker kept.

    A job that reused another's result shows that job's projection (the same tomogram and picks).

    Raises:
        NoSuchJobError: unknown job, a job of another client than ``client_id``, or its result or
            projection expired (or it was made before previews were kept).
        JobNotFinishedError: the job has not succeeded.
    """
    record = JobRecord.fetch(connection, job_id, owner=client_id)
    if record.status is not JobStatus.SUCCEEDED:
        raise JobNotFinishedError(
            f"job {job_id} is {record.status.value}; a preview exists only once it succeeded"
        )
    text = fetch_result(connection, job_id)
    data = connection.get(preview_key(job_id))
    if data is None and record.reused_from:
        data = connection.get(preview_key(record.reused_from))
    if text is None or data is None:
        raise NoSuchJobError(f"job {job_id} has no preview (expired, or made before previews were kept)")
    return _render_preview(data, text)


# A render costs the gateway about a second of CPU; a finished job's projection and picks never change, so
# the PNGs of the last 32 (about 0.3 MB each, keyed by what they are drawn from) are kept per process.
@functools.lru_cache(maxsize=32)
def _render_preview(projection: bytes, picks_json: str) -> bytes:
    # numpy and matplotlib load here, on the first preview, not with the gateway
    from octopi_core.preview import PreviewProjection, render_preview_png

    return render_preview_png(
        PreviewProjection.from_bytes(projection), PicksDocument.model_validate_json(picks_json)
    )


def readiness(*, connection: Redis, settings: Settings) -> Readiness:
    """Redis reachable and, unless ``readyz_requires_worker`` is off, a live worker (raises when Redis is
    down)."""
    connection.ping()
    workers = len(live_workers(connection))
    ready = workers > 0 or not settings.readyz_requires_worker
    return Readiness(status="ready" if ready else "no-workers", redis=True, workers=workers)
