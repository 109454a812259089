from worker.jobs.keys import RUNNING_KEY, WORKERS_KEY, worker_key
from worker.jobs.lifecycle import owner_token


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_needs_a_live_worker(client, redis_conn):
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json() == {
        "status": "no-workers",
        "redis": True,
        "workers": 0,
    }
    redis_conn.sadd(WORKERS_KEY, "w1")
    redis_conn.set(worker_key("w1"), "{}", ex=30)
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json()["workers"] == 1


def test_metrics_expose_requests_queue_workers_and_job_statistics(client, redis_conn, tomograms):
    client.post("/predict", json={"tomogram_uri": str(tomograms.small)})
    client.get("/jobs/unknown")
    redis_conn.sadd(WORKERS_KEY, "w1")
    redis_conn.set(worker_key("w1"), "{}", ex=30)
    text = client.get("/metrics").text
    assert 'octopi_http_requests_total{method="GET",route="/jobs/{job_id}",status="404"} 1.0' in text
    assert 'octopi_http_requests_total{method="POST",route="/predict",status="202"} 1.0' in text
    assert "octopi_queue_depth 1.0" in text and "octopi_workers 1.0" in text
    assert 'octopi_jobs_total{status="succeeded"} 0.0' in text
    assert 'octopi_job_duration_seconds_bucket{le="3600.0"}' in text
    assert 'octopi_inference_duration_seconds_bucket{le="+Inf"}' in text
    assert "octopi_tomograms_per_hour 0.0" in text and "octopi_redis_up 1.0" in text
    assert "octopi_jobs_running 0.0" in text and "octopi_workers_busy 0.0" in text
    assert "octopi_http_request_duration_seconds_bucket" in text


def test_readyz_can_be_told_not_to_wait_for_workers(make_client):
    client = make_client(readyz_requires_worker=False)  # workers scaled to zero
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ready", "redis": True, "workers": 0}


def test_a_worker_holding_two_running_jobs_counts_once_as_busy(client, redis_conn):
    # w1 infers one job while its finisher stores the one before; w2 runs one: 3 jobs, 2 busy workers
    redis_conn.hset(
        RUNNING_KEY,
        mapping={"job-a": owner_token("w1", 1), "job-b": owner_token("w1", 1), "job-c": owner_token("w2", 2)},
    )
    text = client.get("/metrics").text
    assert "octopi_jobs_running 3.0" in text and "octopi_workers_busy 2.0" in text
