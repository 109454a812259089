"""Redis key names of the service: ``octopi:<noun>:<id>``, built only here.

RQ keeps its own ``rq:*`` keys (job hashes, queues, registries); everything the service adds lives
under ``octopi:``. Each builder documents what the key holds and its lifetime.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "PREFIX",
    "RUNNING_KEY",
    "WORKERS_KEY",
    "JOB_STATS_KEY",
    "FINISHED_KEY",
    "job_key",
    "result_key",
    "cancel_key",
    "reuse_key",
    "idempotency_key",
    "worker_key",
    "rate_key",
    "histogram_key",
    "rq_job_id",
    "unclaimed_key",
    "preview_key",
    "owner_jobs_key",
]

PREFIX = "octopi"

RUNNING_KEY = f"{PREFIX}:running"  # hash: job id -> "<worker name>|<attempt>" of the attempt now running
WORKERS_KEY = f"{PREFIX}:workers"  # set: names of workers that have sent a heartbeat (pruned when dead)
JOB_STATS_KEY = f"{PREFIX}:stats:jobs"  # hash: final status -> number of jobs that ended so
FINISHED_KEY = f"{PREFIX}:stats:finished"  # sorted set: job id scored by the time it succeeded (last hour)


def job_key(job_id: str) -> str:
    """Hash of one job's record (:class:`worker.jobs.state.JobRecord`); expires ``result_ttl_s`` after it
    ends."""
    return f"{PREFIX}:job:{job_id}"


def result_key(job_id: str) -> str:
    """String: the picks document (JSON) of a succeeded job; expires with the job."""
    return f"{PREFIX}:result:{job_id}"


def preview_key(job_id: str) -> str:
    """String: the preview projection of a succeeded job's tomogram (:mod:`octopi_core.preview`, compressed
    ``.npz`` bytes, tens of kB); expires with the result."""
    return f"{PREFIX}:preview:{job_id}"


def owner_jobs_key(client_id: str) -> str:
    """Sorted set: one client's job ids scored by creation time (Unix s), the newest
    ``worker.jobs.lifecycle.OWNER_JOBS_KEPT``; expires ``result_ttl_s`` after the client's last job."""
    return f"{PREFIX}:owner-jobs:{client_id}"


def cancel_key(job_id: str) -> str:
    """Flag set by ``DELETE /jobs/{id}``; the worker polls it between batches of windows."""
    return f"{PREFIX}:cancel:{job_id}"


def reuse_key(digest: str) -> str:
    """String: id of the succeeded job for a (tomogram identity, model version, options, owner) digest
    (:func:`worker.jobs.state.result_digest`; the owner is left out only when results are shared)."""
    return f"{PREFIX}:reuse:{digest}"


def idempotency_key(client_id: str, key: str) -> str:
    """String: the job created for a client's ``Idempotency-Key`` (hashed, so any bytes are safe)."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{PREFIX}:idempotency:{client_id}:{digest}"


def worker_key(name: str) -> str:
    """String with a TTL of ``worker_ttl_s``, renewed by the heartbeat: the worker lives while it exists."""
    return f"{PREFIX}:worker:{name}"


def rate_key(client_id: str, minute: int) -> str:
    """Counter of one client's requests in one wall-clock minute (expires after two minutes)."""
    return f"{PREFIX}:ratelimit:{client_id}:{minute}"


def histogram_key(name: str) -> str:
    """Hash of a duration histogram (written by workers): bucket upper bound (s) -> count, sum, count."""
    return f"{PREFIX}:stats:histogram:{name}"


def unclaimed_key(rq_id: str) -> str:
    """When the reaper first saw RQ job ``rq_id`` taken off the queue but not yet claimed (Redis time, s)."""
    return f"{PREFIX}:unclaimed:{rq_id}"


def rq_job_id(job_id: str, attempt: int) -> str:
    """Id of the RQ job that runs ``attempt`` of service job ``job_id`` (a re-queue is a new RQ job)."""
    return f"{job_id}-{attempt}"
