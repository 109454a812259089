"""Service-wide job statistics kept in Redis, so every gateway replica reports the same numbers.

Workers write them as jobs end (:func:`record_job_end`); the gateway's Prometheus collector reads them.
Histograms store per-bucket counts (not cumulative) in one hash, plus ``sum`` and ``count``.
"""

from __future__ import annotations

import time

from redis import Redis
from redis.client import Pipeline

from .keys import FINISHED_KEY, JOB_STATS_KEY, histogram_key

__all__ = [
    "DURATION_BUCKETS_S",
    "JOB_DURATION",
    "INFERENCE_DURATION",
    "record_job_end",
    "observe_duration",
    "read_histogram",
    "read_job_counts",
    "tomograms_last_hour",
]

# Upper bounds of the duration histograms, seconds: from a small tomogram on a GPU to an hour on a CPU.
DURATION_BUCKETS_S = (
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1200.0,
    1800.0,
    2700.0,
    3600.0,
)
JOB_DURATION = "job_duration_s"  # from submission to the end of the job
INFERENCE_DURATION = (
    "inference_duration_s"  # the pipeline's own time for one tomogram (read + infer + localize)
)
_HOUR_S = 3600.0


def observe_duration(pipeline: Pipeline | Redis, name: str, value_s: float) -> None:
    """Add one observation of ``value_s`` seconds to histogram ``name``."""
    bucket = next((b for b in DURATION_BUCKETS_S if value_s <= b), float("inf"))
    key = histogram_key(name)
    pipeline.hincrby(key, repr(bucket), 1)
    pipeline.hincrbyfloat(key, "sum", float(value_s))
    pipeline.hincrby(key, "count", 1)


def record_job_end(
    pipeline: Pipeline | Redis,
    job_id: str,
    status: str,
    *,
    job_duration_s: float | None = None,
    inference_duration_s: float | None = None,
    now_s: float | None = None,
) -> None:
    """Count a job that reached a final ``status``, with its durations when known (seconds)."""
    now_s = time.time() if now_s is None else now_s
    pipeline.hincrby(JOB_STATS_KEY, status, 1)
    if job_duration_s is not None:
        observe_duration(pipeline, JOB_DURATION, job_duration_s)
    if inference_duration_s is not None:
        observe_duration(pipeline, INFERENCE_DURATION, inference_duration_s)
    if status == "succeeded":
        pipeline.zadd(FINISHED_KEY, {job_id: now_s})
        pipeline.zremrangebyscore(FINISHED_KEY, "-inf", now_s - _HOUR_S)


def read_histogram(connection: Redis, name: str) -> tuple[list[tuple[float, int]], float, int]:
    """Return ``(cumulative buckets [(upper bound s, count)], sum s, count)``, the last bound being +inf."""
    raw = {
        k.decode() if isinstance(k, bytes) else k: v
        for k, v in connection.hgetall(histogram_key(name)).items()
    }
    cumulative, running = [], 0
    for bound in (*DURATION_BUCKETS_S, float("inf")):
        running += int(raw.get(repr(bound), 0))
        cumulative.append((bound, running))
    return cumulative, float(raw.get("sum", 0.0)), int(raw.get("count", 0))


def read_job_counts(connection: Redis) -> dict[str, int]:
    """Jobs per final status since the statistics were created."""
    return {
        (k.decode() if isinstance(k, bytes) else k): int(v)
        for k, v in connection.hgetall(JOB_STATS_KEY).items()
    }


def tomograms_last_hour(connection: Redis, *, now_s: float | None = None) -> int:
    """Tomograms picked successfully in the last hour."""
    now_s = time.time() if now_s is None else now_s
    return int(connection.zcount(FINISHED_KEY, now_s - _HOUR_S, "+inf"))
