import time

from worker.heartbeat import Heartbeat, live_workers
from worker.keys import WORKERS_KEY, worker_key


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


def test_a_silent_worker_drops_out_of_the_live_set(redis_conn, service_settings):
    redis_conn.sadd(WORKERS_KEY, "gone", "here")
    redis_conn.set(worker_key("here"), "{}", px=5000)
    assert live_workers(redis_conn) == ["here"]
