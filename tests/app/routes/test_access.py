"""API keys, rate limits and a Redis outage, on any route."""

from __future__ import annotations

from octopi_serve.redis_server import RedisServer, free_port
from tests.app.conftest import assert_problem
from tests.waiting import wait_until


def test_api_keys_are_required_when_configured(make_client, tomograms):
    client = make_client(api_keys=["s3cret-key-1", "other-key"])
    body = {"tomogram_uri": str(tomograms.small)}
    missing = assert_problem(client.post("/predict", json=body), 401, "not-authenticated")
    assert "Bearer" in missing["detail"]
    assert client.post("/predict", json=body).headers["www-authenticate"].startswith("Bearer")
    assert_problem(client.get("/models", headers={"Authorization": "Bearer wrong"}), 401, "not-authenticated")
    assert_problem(client.get("/jobs/x", headers={"Authorization": "Basic czNjcmV0"}), 401)
    ok = client.post("/predict", json=body, headers={"Authorization": "Bearer other-key"})
    assert ok.status_code == 202
    assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200


def test_rate_limit_per_client(make_client):
    client = make_client(rate_limit_per_minute=3)
    statuses = [client.get("/models").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    limited = client.get("/jobs/anything")
    body = assert_problem(limited, 429, "rate-limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 61 and "3 requests" in body["detail"]
    assert client.get("/healthz").status_code == 200  # probes are never limited


def test_redis_down_is_503_and_the_gateway_stays_up(make_client, tomograms):
    client = make_client(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    for response in (
        client.post("/predict", json={"tomogram_uri": str(tomograms.small)}),
        client.get("/jobs/abc"),
        client.delete("/jobs/abc"),
        client.get("/readyz"),
    ):
        assert_problem(response, 503, "queue-unavailable")
        assert int(response.headers["retry-after"]) > 0
    assert client.get("/healthz").json() == {"status": "ok"}
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "octopi_redis_up 0.0" in metrics.text


def test_gateway_recovers_when_redis_returns(make_client, tomograms, tmp_path):
    server = RedisServer(directory=tmp_path / "redis").start()
    try:
        client = make_client(redis_url=server.url)
        assert client.post("/predict", json={"tomogram_uri": str(tomograms.small)}).status_code == 202
        server.stop()
        assert_problem(client.get("/jobs/abc"), 503)
        server.start()
        wait_until(lambda: client.get("/jobs/abc").status_code != 503, timeout_s=10, what="Redis to answer")
        assert_problem(client.get("/jobs/abc"), 404, "job-not-found")
        assert client.post("/predict", json={"tomogram_uri": str(tomograms.small)}).status_code == 202
    finally:
        server.close()
