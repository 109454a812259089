"""Attacks on keys and access (issue 14): another key's jobs, reused results, missing or short keys in
production, guessing keys, the API docs in production, and a spoofed X-Forwarded-For from loopback."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.main import create_app
from octopi_core.settings import Settings
from octopi_serve.redis_server import free_port
from tests.app.conftest import assert_problem
from tests.app.routes.test_jobs import _succeed

_KEY_A = "key-a-" + "a1" * 16
_KEY_B = "key-b-" + "b2" * 16
_A = {"Authorization": f"Bearer {_KEY_A}"}
_B = {"Authorization": f"Bearer {_KEY_B}"}
_REPO = Path(__file__).resolve().parents[2]


def _same_answer_as_unknown(client: TestClient, method: str, path: str, job_id: str, headers: dict) -> None:
    """``path`` of ``job_id`` answers exactly as it does for an id that never existed."""
    theirs = client.request(method, path.format(job_id), headers=headers)
    unknown_id = "0" * len(job_id)
    unknown = client.request(method, path.format(unknown_id), headers=headers)
    body = assert_problem(theirs, 404, "job-not-found")
    assert body["detail"].replace(job_id, "ID") == unknown.json()["detail"].replace(unknown_id, "ID")


def test_key_b_cannot_read_fetch_or_cancel_the_job_of_key_a(
    make_client, redis_conn, service_settings, tomograms
):
    client = make_client(api_keys=[_KEY_A, _KEY_B])
    queued = client.post("/predict", json={"tomogram_uri": str(tomograms.small)}, headers=_A).json()["id"]
    done = client.post("/predict", json={"tomogram_uri": str(tomograms.small_mrc)}, headers=_A).json()["id"]
    _succeed(redis_conn, service_settings, done)

    for method, path in (("GET", "/jobs/{}"), ("DELETE", "/jobs/{}"), ("GET", "/jobs/{}/picks")):
        for job_id in (queued, done):
            _same_answer_as_unknown(client, method, path, job_id, _B)
    assert client.get(f"/jobs/{queued}", headers=_A).json()["status"] == "queued"  # B's DELETE did nothing
    assert client.get(f"/jobs/{done}/picks", headers=_A).status_code == 200


def test_anonymous_clients_are_told_apart_by_address(make_client, tomograms):
    here = make_client()
    job_id = here.post("/predict", json={"tomogram_uri": str(tomograms.small)}).json()["id"]
    elsewhere = TestClient(here.app, raise_server_exceptions=False, client=("10.9.8.7", 4000))
    assert_problem(elsewhere.get(f"/jobs/{job_id}"), 404, "job-not-found")
    assert here.get(f"/jobs/{job_id}").status_code == 200


def test_reuse_does_not_hand_key_b_the_job_of_key_a(make_client, redis_conn, service_settings, tomograms):
    client = make_client(api_keys=[_KEY_A, _KEY_B])
    body = {"tomogram_uri": str(tomograms.small), "classes": ["ribosome"]}
    first = client.post("/predict", json=body, headers=_A).json()["id"]
    _succeed(redis_conn, service_settings, first)
    assert client.post("/predict", json=body, headers=_A).json()["id"] == first  # the owner reuses it

    theirs = client.post("/predict", json=body, headers=_B)
    assert theirs.status_code == 202 and theirs.json()["id"] != first  # computed again for B
    assert theirs.json()["status"] == "queued" and theirs.json()["reused_from"] is None


def test_shared_results_give_key_b_a_job_of_its_own(make_client, redis_conn, service_settings, tomograms):
    client = make_client(api_keys=[_KEY_A, _KEY_B], share_results=True)
    body = {"tomogram_uri": str(tomograms.small)}
    first = client.post("/predict", json=body, headers=_A).json()["id"]
    document = _succeed(redis_conn, service_settings, first)

    reused = client.post("/predict", json=body, headers=_B)
    job = reused.json()
    assert reused.status_code == 200 and job["id"] != first and first not in reused.text
    assert job["status"] == "succeeded" and job["reused_from"] is None
    assert client.get(f"/jobs/{job['id']}/picks", headers=_B).json()["picks"]["ribosome"][0]["x"] == (
        document.picks["ribosome"][0].x
    )
    assert_problem(client.get(f"/jobs/{first}", headers=_B), 404, "job-not-found")
    assert_problem(client.get(f"/jobs/{job['id']}", headers=_A), 404, "job-not-found")
    again = client.post("/predict", json=body, headers=_B).json()["id"]
    assert again != first and client.get(f"/jobs/{again}", headers=_B).json()["status"] == "succeeded"


def test_production_refuses_to_start_without_keys(service_settings):
    settings = Settings(**{**service_settings.model_dump(), "environment": "production", "api_keys": []})
    with pytest.raises(ValueError, match="OCTOPI_API_KEYS"):
        create_app(settings)


@pytest.mark.parametrize("key", ["k", "x" * 31])
def test_production_refuses_short_keys(key):
    with pytest.raises(ValidationError, match="OCTOPI_API_KEY_MIN_CHARS"):
        Settings(environment="production", redis_url="r://", api_keys=[key, _KEY_A])
    assert Settings(environment="production", redis_url="r://", api_keys="y" * 32).api_keys
    assert Settings(environment="production", redis_url="r://", api_keys=key, api_key_min_chars=1).api_keys


def test_development_without_keys_warns_once_at_start(make_client, caplog):
    with caplog.at_level(logging.WARNING, logger="app.main"):
        make_client()
    assert [r.message for r in caplog.records if "OCTOPI_API_KEYS" in r.message] != []
    assert len([r for r in caplog.records if "OCTOPI_API_KEYS" in r.message]) == 1


def test_guessing_keys_is_stopped_with_429_and_retry_after(make_client):
    client = make_client(api_keys=[_KEY_A])
    statuses = [
        client.get("/models", headers={"Authorization": f"Bearer guess-{i:04d}"}).status_code
        for i in range(25)
    ]
    assert statuses == [401] * 20 + [429] * 5
    locked = client.get("/jobs/x", headers=_A)  # even the right key, until the minute ends
    body = assert_problem(locked, 429, "rate-limited")
    assert 1 <= int(locked.headers["retry-after"]) <= 61 and "failed authentications" in body["detail"]
    other_peer = TestClient(client.app, raise_server_exceptions=False, client=("10.1.2.3", 5000))
    assert_problem(other_peer.get("/jobs/x", headers=_A), 404, "job-not-found")  # only that address


def test_api_docs_are_closed_in_production(make_client):
    production = {"environment": "production", "api_keys": [_KEY_A], "docs_enabled": None}
    client = make_client(**production)
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        assert client.get(path).status_code == 404, path
        assert client.get(path, headers=_A).status_code == 404, path
    assert make_client(**{**production, "docs_enabled": True}).get("/openapi.json").status_code == 200
    assert make_client().get("/openapi.json").status_code == 200  # development


def test_metrics_are_open_unless_turned_off(make_client):
    assert make_client(api_keys=[_KEY_A]).get("/metrics").status_code == 200
    assert_problem(make_client(metrics_enabled=False).get("/metrics"), 404)


def _gateway(redis_url: str, port: int, logs: Path, **env: str) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OCTOPI_")}
    environment.update({"REDIS_URL": redis_url, "OCTOPI_PORT": str(port), **env})
    with open(logs / f"gateway-{port}.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "octopi_serve.cli", "gateway", "--port", str(port)],
            env=environment,
            cwd=_REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait_up(url: str, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the gateway exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"the gateway at {url} did not start")


def _statuses_with_spoofed_addresses(url: str) -> list[int]:
    if time.time() % 60 > 55:  # the limit is per wall-clock minute: do not straddle two
        time.sleep(60 - time.time() % 60 + 0.1)
    return [
        httpx.get(
            f"{url}/jobs/nope-{i}", headers={"X-Forwarded-For": f"203.0.113.{i}"}, timeout=10
        ).status_code
        for i in range(4)
    ]


def test_spoofed_forwarded_for_from_loopback_does_not_change_the_client(redis_server, redis_conn, tmp_path):
    """The real launcher (uvicorn), as the attacker met it: each request claims another address."""
    plain_port, proxied_port = free_port(), free_port()
    limits = {"OCTOPI_RATE_LIMIT_PER_MINUTE": "3", "OCTOPI_QUEUE_NAME": "xff-test"}
    plain = _gateway(redis_server.url, plain_port, tmp_path, **limits)
    proxied = _gateway(redis_server.url, proxied_port, tmp_path, **limits, OCTOPI_TRUSTED_PROXIES="127.0.0.1")
    try:
        _wait_up(f"http://127.0.0.1:{plain_port}", plain)
        _wait_up(f"http://127.0.0.1:{proxied_port}", proxied)
        # The two gateways share the Redis counters: spend the loopback identity through the proxied one
        # first, which must count each claimed address apart since 127.0.0.1 is a listed proxy.
        assert _statuses_with_spoofed_addresses(f"http://127.0.0.1:{proxied_port}") == [404] * 4
        assert _statuses_with_spoofed_addresses(f"http://127.0.0.1:{plain_port}") == [404, 404, 404, 429]
    finally:
        for process in (plain, proxied):
            process.terminate()
            process.wait(timeout=30)
