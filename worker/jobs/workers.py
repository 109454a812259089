"""Which workers are alive, read from their heartbeat keys (the heartbeat itself: :mod:`worker.heartbeat`).

A worker is alive while its key ``octopi:worker:<name>`` exists; the key's TTL is renewed by the
worker's heartbeat, so a killed worker drops out of :func:`live_workers` within ``worker_ttl_s``.
"""

from __future__ import annotations

from redis import Redis

from .keys import WORKERS_KEY, worker_key

__all__ = ["live_workers"]


def live_workers(connection: Redis) -> list[str]:
    """Names of the workers whose heartbeat has not expired.

    Args:
        connection: the service's Redis.

    Returns:
        The live workers' names, sorted.
    """
    names = [n.decode() if isinstance(n, bytes) else n for n in connection.smembers(WORKERS_KEY)]
    if not names:
        return []
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.exists(worker_key(name))
        alive = pipe.execute()
    return sorted(name for name, ok in zip(names, alive, strict=True) if ok)
