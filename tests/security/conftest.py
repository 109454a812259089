"""Fixtures of the attacks: the gateway's TestClient (tests/app) and jobs stored directly in Redis (tests/worker)."""

from tests.app.conftest import client, make_client
from tests.worker.conftest import new_job

__all__ = ["client", "make_client", "new_job"]
