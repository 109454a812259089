"""Starving the gateway's opener (issue 14, defect 2): hosts that trickle one byte at a time must be cut off
by a total deadline, and one client's slow opens must not block another client's submissions."""

from __future__ import annotations

import threading
import time

import pytest

from octopi_core.exceptions import TomogramUnreachableError
from octopi_core.io import open_tomogram, service_storage_options
from tests.app.conftest import assert_problem
from tests.waiting import wait_until

from .loopback import hostile_server

_ATTACKER, _VICTIM = "attacker-key-0123456789", "victim-key-0123456789"
_OPEN_TIMEOUT_S = 2.0


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def trickling(tomograms):
    """A loopback host answering every GET with a real MRC, one byte every 0.25 s (no silence reaches any
    read timeout; only a total deadline ends it)."""
    with hostile_server() as server:
        server.files["/t.mrc"] = tomograms.small_mrc.read_bytes()
        server.trickle_s = 0.25
        yield server


def test_a_read_from_a_trickling_host_ends_by_the_request_deadline(trickling):
    uri = f"{trickling.url}/t.mrc"
    started = time.monotonic()
    with pytest.raises(TomogramUnreachableError, match="t.mrc"):
        open_tomogram(uri, storage_options=service_storage_options(uri, request_timeout_s=1.0))
    assert time.monotonic() - started < 3.0


def test_trickling_opens_cost_only_their_client_and_end_by_the_deadline(make_client, trickling, tomograms):
    client = make_client(
        api_keys=[_ATTACKER, _VICTIM], open_timeout_s=_OPEN_TIMEOUT_S, max_opens_per_client=2
    )
    attack = {"tomogram_uri": f"{trickling.url}/t.mrc"}
    answers: list[tuple[int, str, float]] = []

    def submit() -> None:
        started = time.monotonic()
        response = client.post("/predict", json=attack, headers=_as(_ATTACKER))
        answers.append((response.status_code, response.json().get("type", ""), time.monotonic() - started))

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    wait_until(lambda: trickling.gets.get("/t.mrc", 0) >= 2, timeout_s=10, what="two opens in progress")

    over = client.post("/predict", json=attack, headers=_as(_ATTACKER))  # a third open: over the budget
    assert_problem(over, 429, "rate-limited")
    assert int(over.headers["Retry-After"]) >= 1
    victim = client.post("/predict", json={"tomogram_uri": str(tomograms.small)}, headers=_as(_VICTIM))
    assert victim.status_code == 202, victim.text

    for thread in threads:
        thread.join(15)
    assert [a[:2] for a in answers] == [(422, "urn:octopi-serve:problem:tomogram-unreachable")] * 2
    assert all(elapsed < _OPEN_TIMEOUT_S + 2.0 for *_, elapsed in answers), answers
    # The opening threads ended with the deadline, not only the waits: the budget is free again.
    again = client.post("/predict", json=attack, headers=_as(_ATTACKER))
    assert_problem(again, 422, "tomogram-unreachable")
