"""Per-client request limits: a fixed one-minute window counted in Redis (shared by all gateway replicas)."""

from __future__ import annotations

import time

from redis import Redis

from worker.jobs.keys import rate_key

from .exceptions import RateLimitExceededError

__all__ = ["check_rate_limit"]


def check_rate_limit(
    connection: Redis, client_id: str, limit_per_minute: int, *, now_s: float | None = None
) -> int:
    """Count one request of ``client_id`` and refuse it past ``limit_per_minute`` in the current minute.

    Returns:
        Requests left in this minute (``limit_per_minute`` when limits are off, i.e. the limit is 0).

    Raises:
        RateLimitExceededError: over the limit; ``retry_after_s`` says when the window resets.
    """
    if limit_per_minute <= 0:
        return limit_per_minute
    now_s = time.time() if now_s is None else now_s
    minute = int(now_s // 60)
    key = rate_key(client_id, minute)
    with connection.pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.expire(key, 120)
        count, _ = pipe.execute()
    if count > limit_per_minute:
        retry_after = max(1, int(60 - now_s % 60) + 1)
        raise RateLimitExceededError(
            f"more than {limit_per_minute} requests this minute; retry in {retry_after} s", retry_after
        )
    return limit_per_minute - int(count)
