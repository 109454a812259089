from worker.jobs.keys import WORKERS_KEY, worker_key
from worker.jobs.workers import live_workers


def test_a_silent_worker_drops_out_of_the_live_set(redis_conn, service_settings):
    redis_conn.sadd(WORKERS_KEY, "gone", "here")
    redis_conn.set(worker_key("here"), "{}", px=5000)
    assert live_workers(redis_conn) == ["here"]
