"""The gateway in-process against the private Redis; no workers unless a test adds them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.main import create_app


@pytest.fixture
def make_client(redis_conn, service_settings):
    """``make_client(**settings overrides)``: a TestClient of a gateway built with those settings."""
    clients = []

    def make(**overrides) -> TestClient:
        settings = type(service_settings)(**{**service_settings.model_dump(), **overrides})  # re-validated
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def assert_problem(response, status: int, slug: str | None = None) -> dict:
    """Check ``response`` is problem+json with ``status`` (and problem type ``slug``); return the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == status and body["title"] and "detail" in body
    if slug is not None:
        assert body["type"] == f"urn:octopi-serve:problem:{slug}", body
    return body
