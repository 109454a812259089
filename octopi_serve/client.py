"""A small Python client of the service (used by ``octopi-serve submit``).

Example::

    from octopi_serve.client import OctopiClient

    client = OctopiClient("http://127.0.0.1:8000")
    job = client.submit("s3://bucket/run_001.zarr", classes=["ribosome"])
    job = client.wait(job["id"])
    csv_text = client.picks(job["id"], "csv")
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import httpx

__all__ = ["OctopiClient", "ServiceCallError", "DEFAULT_SERVER_URL"]

DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
_FINAL = {"succeeded", "failed", "cancelled"}


class ServiceCallError(Exception):
    """The service answered with an error; ``problem`` holds its problem details."""

    def __init__(self, status: int, problem: dict) -> None:
        detail = problem.get("detail") or problem.get("title") or "error"
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.problem = problem


class OctopiClient:
    """Talks to an octopi-serve gateway.

    Args:
        server_url: the gateway's base URL (default ``$OCTOPI_SERVER_URL`` or http://127.0.0.1:8000).
        api_key: bearer token, when the service requires one (default ``$OCTOPI_API_KEY``).
        timeout_s: per-request timeout, seconds.
    """

    def __init__(
        self, server_url: str | None = None, *, api_key: str | None = None, timeout_s: float = 60.0
    ) -> None:
        self.server_url = (server_url or os.environ.get("OCTOPI_SERVER_URL") or DEFAULT_SERVER_URL).rstrip(
            "/"
        )
        key = api_key if api_key is not None else os.environ.get("OCTOPI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.server_url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OctopiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"title": response.reason_phrase, "detail": response.text[:500]}
            raise ServiceCallError(response.status_code, problem if isinstance(problem, dict) else {})
        return response

    def submit(
        self,
        tomogram_uri: str,
        *,
        model_version: str | None = None,
        classes: Sequence[str] | None = None,
        voxel_size_a: float | None = None,
        tta: bool = False,
        match_spectrum: bool = False,
        formats: Sequence[str] | None = None,
        output_uri: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict:
        """Submit a tomogram; return the job. A local path that exists here is sent as an absolute path."""
        if not urllib.parse.urlsplit(tomogram_uri).scheme and os.path.exists(tomogram_uri):
            tomogram_uri = os.path.abspath(tomogram_uri)
        body: dict[str, Any] = {"tomogram_uri": tomogram_uri, "tta": tta}
        if match_spectrum:  # only when asked: a gateway from before the option refuses unknown fields
            body["match_spectrum"] = True
        for name, value in (
            ("model_version", model_version),
            ("classes", list(classes) if classes else None),
            ("voxel_size_a", voxel_size_a),
            ("formats", list(formats) if formats else None),
            ("output_uri", output_uri),
        ):
            if value is not None:
                body[name] = value
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call("POST", "/predict", json=body, headers=headers).json()

    def job(self, job_id: str) -> dict:
        """The job's current state."""
        return self._call("GET", f"/jobs/{job_id}").json()

    def wait(
        self,
        job_id: str,
        *,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
        on_update: Callable[[dict], None] | None = None,
    ) -> dict:
        """Poll until the job succeeds, fails or is cancelled; return its last state.

        Raises:
            TimeoutError: still not finished after ``timeout_s`` seconds.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job["status"] in _FINAL:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")
            time.sleep(poll_s)

    def picks(self, job_id: str, fmt: str = "json") -> str:
        """The picks of a succeeded job in ``fmt`` (json, csv, star, copick, ndjson)."""
        return self._call("GET", f"/jobs/{job_id}/picks", params={"format": fmt}).text

    def cancel(self, job_id: str) -> dict:
        """Cancel the job; return its state."""
        return self._call("DELETE", f"/jobs/{job_id}").json()

    def models(self) -> dict:
        """The model versions and the champion."""
        return self._call("GET", "/models").json()
