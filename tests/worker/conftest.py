"""Helpers for the worker tests: jobs created directly in Redis, without the gateway."""

from __future__ import annotations

import uuid

import pytest

from worker.jobs.lifecycle import create_job
from worker.jobs.state import JobOptions, JobRecord, result_digest


@pytest.fixture
def new_job(redis_conn, service_settings, model_registry):
    """``new_job(uri, **options)``: store and queue a job for ``uri`` as the gateway would."""

    def make(
        uri: str, *, model_version: str | None = None, identity: str = "", settings=None, **options
    ) -> JobRecord:
        opts = JobOptions(
            window_vox=service_settings.window_vox,
            overlap=service_settings.overlap,
            batch_size=service_settings.batch_size,
            **options,
        )
        version = model_version or model_registry.champion
        record = JobRecord(
            id=uuid.uuid4().hex,
            tomogram_uri=str(uri),
            model_version=version,
            options=opts,
            identity=identity,
            digest=result_digest(str(uri), identity, version, opts) or "",
        )
        create_job(redis_conn, settings or service_settings, record)
        return record

    return make
