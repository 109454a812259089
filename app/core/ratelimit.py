"""Per-client request limits: a fixed one-minute window counted in Redis (shared by all gateway replicas)."""

from __future__ import annotations

import time

from redis import Redis

from worker.jobs.keys import rate_key

from .exceptions import RateLimitExceededError

__all__ = ["check_rate_limit"]


def check_rate_limit(
    connection: Redis,
    client_id: str,
    limit_per_minute: int,
    *,
    cost: int = 1,
    what: str = "requests",
    now_s: float | None = None,
) -> int:
    """Count ``cost`` events of ``client_id`` and refuse past ``limit_per_minute`` in the current minute.

    Args:
        connection: Redis, where the counters live (shared by every gateway replica).
        client_id: whose counter: a client id, or any name such as ``auth-failures:<address>``.
        limit_per_minute: events allowed per wall-clock minute; 0 turns the limit off.
        cost: events to count (0 only checks whether the limit is already past).
        what: what is counted, for the error message.
        now_s: the time (Unix seconds; default now).

    Returns:
        Events left in this minute (``limit_per_minute`` when limits are off, i.e. the limit is 0).

    Raises:
        RateLimitExceededError: over the limit; ``retry_after_s`` says when the window resets.
    """
    if limit_per_minute <= 0:
        return limit_per_minute
    now_s = time.time() if now_s is None else now_s
    minute = int(now_s // 60)
    key = rate_key(client_id, minute)
    with connection.pipeline(transaction=False) as pipe:
        pipe.incrby(key, cost)
        pipe.expire(key, 120)
        count, _ = pipe.execute()
    if count > limit_per_minute:
        retry_after = max(1, int(60 - now_s % 60) + 1)
        raise RateLimitExceededError(
            f"more than {limit_per_minute} {what} this minute; retry in {retry_after} s", retry_after
        )
    return limit_per_minute - int(count)
