import time

from worker.heartbeat import Heartbeat
from worker.jobs.keys import WORKERS_KEY, worker_key
from worker.jobs.workers import live_workers


def test_heartbeat_keeps_a_worker_alive_until_stopped(redis_conn, service_settings):
    beat = Heartbeat(redis_conn, service_settings, "hb-1", reap=False)
    beat.start()
    try:
        ttl_ms = redis_conn.pttl(worker_key("hb-1"))
        assert 0 < ttl_ms <= service_settings.worker_ttl_s * 1000
        time.sleep(service_settings.worker_ttl_s + 0.5)  # outlives one TTL: renewed by the thread
        assert live_workers(redis_conn) == ["hb-1"]
    finally:
        beat.stop(forget=True)
    assert live_workers(redis_conn) == [] and not redis_conn.sismember(WORKERS_KEY, "hb-1")
