"""Workers scale to zero when idle (KEDA), so the gateway must stay ready with no worker running.

The gateway's readiness probe is /readyz. If /readyz required a live worker, an idle deployment would take
every gateway out of its Service, no job could be submitted, and KEDA would never start a worker.
"""

from __future__ import annotations

import os

import pytest
import redis

from .contract import settings_from_env

_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")


@pytest.fixture
def idle_redis() -> str:
    """A reachable Redis with no live worker registered."""
    from worker.jobs.workers import live_workers

    connection = redis.Redis.from_url(_REDIS_URL, socket_connect_timeout=1)
    try:
        connection.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {_REDIS_URL}")
    if live_workers(connection):
        pytest.skip("workers are running against this Redis")
    return _REDIS_URL


def _deployed_config() -> dict[str, str]:
    """The settings ConfigMap as the cluster gets it."""
    from .artifacts import render

    (config,) = [
        o for o in render("base") if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "octopi-config"
    ]
    return dict(config["data"])


def test_deployed_gateway_is_ready_with_redis_up_and_no_worker(idle_redis):
    from fastapi.testclient import TestClient

    from app.main import create_app

    env = {**_deployed_config(), "REDIS_URL": idle_redis, "OCTOPI_ENVIRONMENT": "development"}
    client = TestClient(create_app(settings_from_env(env)))
    assert client.get("/readyz").status_code == 200


def test_default_gateway_needs_a_live_worker_to_be_ready(idle_redis):
    from fastapi.testclient import TestClient

    from app.main import create_app

    client = TestClient(create_app(settings_from_env({"REDIS_URL": idle_redis})))
    assert client.get("/readyz").status_code == 503


def test_gateway_is_not_ready_without_redis():
    from fastapi.testclient import TestClient

    from app.main import create_app

    client = TestClient(create_app(settings_from_env({"REDIS_URL": "redis://127.0.0.1:9/0"})))
    assert client.get("/readyz").status_code == 503
