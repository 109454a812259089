"""A job's record in Redis: status, stage, progress, options and outcome, read and written in one place.

The record is one hash (``octopi:job:<id>``, see :mod:`worker.jobs.keys`). Timestamps are UTC ISO-8601
strings, numbers are decimal strings, lists and dicts are JSON. Writers take an optional ``pipeline``
so callers can change several keys atomically.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict
from redis import Redis
from redis.client import Pipeline

from octopi_core.options import DEFAULT_BATCH_SIZE, DEFAULT_OVERLAP, DEFAULT_WINDOW_VOX, PredictOptions
from octopi_core.stage import Stage as JobStage

from .exceptions import NoSuchJobError
from .keys import cancel_key, job_key, result_key

__all__ = [
    "JobStatus",
    "JobStage",
    "JobOptions",
    "JobRecord",
    "TERMINAL_STATUSES",
    "utc_now",
    "parse_time",
    "result_digest",
    "set_stage",
    "set_progress",
    "request_cancel",
    "is_cancel_requested",
    "store_result",
    "fetch_result",
    "expire_job",
]


class JobStatus(str, Enum):
    """Where a job is in its life.

    - ``queued``: waiting for a worker (also after a re-queue).
    - ``running``: a worker is on it; see :class:`JobStage`.
    - ``succeeded``: picks are ready.
    - ``failed``: the reason is in the job's problem details.
    - ``cancelled``: stopped by ``DELETE /jobs/{id}``.
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobOptions(BaseModel):
    """What a job was asked to do, with the gateway's inference settings fixed at submission.

    Attributes:
        classes: class names to pick; None = every class of the model.
        voxel_size_a: override of the tomogram's voxel size, Å.
        tta: test-time augmentation (y/x flips).
        match_spectrum: match the tomogram's power spectrum to the model's training data first.
        formats: formats written to ``output_uri`` (``json``, ``csv``, ``star``, ``copick``, ``ndjson``).
        output_uri: directory or prefix that receives ``<run_name>.picks.<format>`` files, or None.
        window_vox, overlap, batch_size: sliding-window settings (voxels, fraction, windows per pass).
        run_name: the run name of the picks (and of the output files); None = from the tomogram URI.
        copick_config: copick project (its config JSON) that receives the picks in run ``run_name``, or None.
        pick_user: copick user id of those picks.
        pick_session: their copick session id; None = a new one, taken when the picks are written.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    classes: list[str] | None = None
    voxel_size_a: float | None = None
    tta: bool = False
    match_spectrum: bool = False
    formats: list[str] = ["json"]
    output_uri: str | None = None
    window_vox: tuple[int, int, int] = DEFAULT_WINDOW_VOX
    overlap: float = DEFAULT_OVERLAP
    batch_size: int | None = DEFAULT_BATCH_SIZE
    run_name: str | None = None
    copick_config: str | None = None
    pick_user: str = "octopi"
    pick_session: str | None = None

    def predict_options(self, storage_options: dict | None = None) -> PredictOptions:
        """The pipeline's options for this job."""
        return PredictOptions(
            classes=self.classes,
            voxel_size_a=self.voxel_size_a,
            window_vox=self.window_vox,
            overlap=self.overlap,
            batch_size=self.batch_size,
            tta=self.tta,
            match_spectrum=self.match_spectrum,
            storage_options=storage_options,
            run_name=self.run_name,
        )


def utc_now() -> str:
    """The current time as a UTC ISO-8601 string (microseconds)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def parse_time(value: str | None) -> datetime | None:
    """Parse a stored timestamp; None for an empty one."""
    return datetime.fromisoformat(value) if value else None


def result_digest(
    tomogram_uri: str, identity: str, model_version: str, options: JobOptions, *, owner: str | None = None
) -> str | None:
    """Key under which a finished result is reused: tomogram URI and content identity, model, the
    options that change the picks, and the owner; None when the tomogram has no content identity.

    Output formats, ``output_uri`` and ``batch_size`` do not change the picks and are left out; ``run_name``
    changes the document, so it is in. The URI is kept in because an ETag or a size-mtime pair is only
    unique per URL.

    Args:
        owner: client id of the job's owner, so results are reused only within one owner; None gives the
            digest shared by every owner (the gateway's ``share_results`` mode).
    """
    if not identity or not model_version:
        return None
    material = {
        "owner": owner,
        "uri": tomogram_uri,
        "identity": identity,
        "model": model_version,
        "classes": sorted(options.classes) if options.classes is not None else None,
        "voxel_size_a": options.voxel_size_a,
        "tta": options.tta,
        "window_vox": options.window_vox,
        "overlap": options.overlap,
    }
    if options.run_name is not None:  # only when set: digests of jobs without one stay as they were
        material["run_name"] = options.run_name
    if options.match_spectrum:  # likewise
        material["match_spectrum"] = True
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class JobRecord:
    """One job, as stored in its hash. ``tries`` counts attempts started; ``attempt`` numbers the current
    one (it also grows on a shutdown re-queue, which does not count as a try) and fences stale workers."""

    id: str
    tomogram_uri: str
    model_version: str
    options: JobOptions = field(default_factory=JobOptions)
    status: JobStatus = JobStatus.QUEUED
    stage: JobStage | None = None
    progress: float = 0.0
    identity: str = ""
    digest: str = ""
    client_id: str = ""  # the owner: ``key:<hash>`` or ``ip:<address>`` (app.core.security.authenticate)
    fingerprint: str = ""
    created_at: str = field(default_factory=utc_now)
    started_at: str = ""
    inferring_at: str = ""
    finished_at: str = ""
    tries: int = 0
    attempt: int = 0
    worker: str = ""
    error_type: str = ""
    error_detail: str = ""
    reused_from: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return job_key(self.id)

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_mapping(self) -> dict[str, str]:
        """The hash fields: strings only."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, BaseModel):
                out[f.name] = value.model_dump_json()
            elif isinstance(value, Enum):
                out[f.name] = value.value
            elif value is None:
                out[f.name] = ""
            elif isinstance(value, (dict, list)):
                out[f.name] = json.dumps(value)
            else:
                out[f.name] = str(value)
        return out

    @classmethod
    def from_mapping(cls, raw: dict) -> JobRecord:
        """Rebuild a record from its hash (bytes or str keys and values)."""
        data = {_text(k): _text(v) for k, v in raw.items()}
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.name == "options":
                kwargs[f.name] = JobOptions.model_validate_json(value)
            elif f.name == "status":
                kwargs[f.name] = JobStatus(value)
            elif f.name == "stage":
                kwargs[f.name] = JobStage(value) if value else None
            elif f.name == "progress":
                kwargs[f.name] = float(value or 0.0)
            elif f.name in ("tries", "attempt"):
                kwargs[f.name] = int(value or 0)
            elif f.name in ("counts", "timings_s", "outputs"):
                kwargs[f.name] = json.loads(value) if value else f.default_factory()  # type: ignore[operator]
            else:
                kwargs[f.name] = value
        return cls(**kwargs)

    @classmethod
    def fetch(cls, connection: Redis, job_id: str, *, owner: str | None = None) -> JobRecord:
        """Read job ``job_id``.

        Args:
            owner: when given, the client id the job must belong to; another client's job is reported
                exactly as a missing one, so its existence is not revealed.

        Raises:
            NoSuchJobError: no such job (or it expired, or it belongs to another owner).
        """
        raw = connection.hgetall(job_key(job_id))
        record = cls.from_mapping(raw) if raw and (b"id" in raw or "id" in raw) else None
        if record is None or (owner is not None and record.client_id != owner):
            raise NoSuchJobError(f"no job with id {job_id!r} (unknown, or expired)")
        return record

    def save(self, connection: Redis | Pipeline, *, pipeline: Pipeline | None = None) -> None:
        """Write the whole record."""
        (pipeline if pipeline is not None else connection).hset(self.key, mapping=self.to_mapping())

    def update(
        self, connection: Redis | Pipeline, *, pipeline: Pipeline | None = None, **changes: Any
    ) -> None:
        """Set some fields here and in Redis (only those fields are written)."""
        for name, value in changes.items():
            setattr(self, name, value)
        mapping = {k: v for k, v in self.to_mapping().items() if k in changes}
        (pipeline if pipeline is not None else connection).hset(self.key, mapping=mapping)


def set_stage(
    connection: Redis, job_id: str, stage: JobStage | str, *, pipeline: Pipeline | None = None
) -> None:
    """Record that ``stage`` started now; ``inferring`` also stamps ``inferring_at`` (for the ETA)."""
    stage = JobStage(getattr(stage, "value", stage))
    mapping = {"stage": stage.value}
    if stage is JobStage.INFERRING:
        mapping["inferring_at"] = utc_now()
        mapping["progress"] = "0.0"
    (pipeline if pipeline is not None else connection).hset(job_key(job_id), mapping=mapping)


def set_progress(
    connection: Redis, job_id: str, fraction: float, *, pipeline: Pipeline | None = None
) -> None:
    """Record the fraction (0..1) of inference windows done."""
    (pipeline if pipeline is not None else connection).hset(
        job_key(job_id), "progress", f"{float(fraction):.4f}"
    )


def request_cancel(connection: Redis, job_id: str, ttl_s: int, *, pipeline: Pipeline | None = None) -> None:
    """Raise the cancellation flag of ``job_id`` (kept ``ttl_s`` seconds)."""
    (pipeline if pipeline is not None else connection).set(cancel_key(job_id), "1", ex=int(ttl_s))


def is_cancel_requested(connection: Redis, job_id: str) -> bool:
    """Whether ``DELETE /jobs/{id}`` asked to stop ``job_id``."""
    return bool(connection.exists(cancel_key(job_id)))


def store_result(
    connection: Redis, job_id: str, picks_json: str, ttl_s: int, *, pipeline: Pipeline | None = None
) -> None:
    """Keep the picks document (JSON) of ``job_id`` for ``ttl_s`` seconds."""
    (pipeline if pipeline is not None else connection).set(result_key(job_id), picks_json, ex=int(ttl_s))


def fetch_result(connection: Redis, job_id: str) -> str | None:
    """The picks document (JSON) of ``job_id``, or None when there is none (not succeeded, or expired)."""
    raw = connection.get(result_key(job_id))
    return None if raw is None else _text(raw)


def expire_job(connection: Redis, job_id: str, ttl_s: int, *, pipeline: Pipeline | None = None) -> None:
    """Let a finished job's record, picks and cancellation flag expire after ``ttl_s`` seconds."""
    target = pipeline if pipeline is not None else connection
    for key in (job_key(job_id), result_key(job_id), cancel_key(job_id)):
        target.expire(key, int(ttl_s))
