"""Schemathesis: requests generated from the OpenAPI schema (valid and invalid ones) never make the gateway
answer 5xx, and its responses match the schema (status codes, content types, bodies)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.main import create_app
from octopi_serve.redis_server import free_port
from worker.jobs.keys import WORKERS_KEY, worker_key

pytestmark = pytest.mark.slow
_EXAMPLES_PER_OPERATION = 25
_KEY = "schemathesis-key"


@pytest.fixture
def api_schema(redis_conn, service_settings, monkeypatch):
    redis_conn.sadd(WORKERS_KEY, "schemathesis")  # a live worker, so /readyz is 200
    redis_conn.set(worker_key("schemathesis"), "{}", ex=3600)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # S3 URIs fail fast, offline
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # Schemathesis sends hundreds of wrong keys on purpose (it checks they get 401): no lock-out here;
    # tests/security/test_keys.py checks the failed-authentication limit.
    overrides = {
        "allowed_hosts": [],
        "open_timeout_s": 5.0,
        "api_keys": [_KEY],
        "auth_failures_per_minute": 0,
    }
    app_settings = type(service_settings)(**{**service_settings.model_dump(), **overrides})
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(app_settings))


def _auth_for(case) -> dict[str, str]:
    """Our key, unless the case's headers are invalid on purpose (Authorization left out or malformed): adding the
    key would make such a request valid again, and its 200 would read as invalid data accepted."""
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
        return {}
    return {"Authorization": f"Bearer {_KEY}"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_get_no_server_error(api_schema, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /predict",
        "GET /jobs/{job_id}",
        "DELETE /jobs/{job_id}",
        "GET /jobs/{job_id}/picks",
        "GET /models",
        "GET /readyz",
    }
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=_EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case) -> None:
            # Schema-valid is not always acceptable: a well-formed URI may still be refused (422) by policy.
            case.call_and_validate(headers=_auth_for(case), excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, (
                operation.label
            )  # nothing to break in a parameterless call
