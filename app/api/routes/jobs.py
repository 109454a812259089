"""Submit picking jobs, poll them, cancel them and fetch their picks.

A job belongs to the client that submitted it (its API key, else its address); to any other client it
does not exist (404 job-not-found, never 403).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from octopi_core.export import PicksFormat
from worker.jobs.state import JobStatus

from ... import service
from ...core.problem import problem_responses
from ...schemas import JobCreate, JobPublic, JobsPublic, JobsQuery
from ..deps import ClientDep, IdempotencyKeyDep, RedisDep, RegistryDep, SettingsDep

__all__ = ["router"]

router = APIRouter(tags=["jobs"])
_RETRY_AFTER_S = "2"
_COMMON = (401, 413, 422, 429, 503)
JobId = Annotated[str, Path(min_length=1, max_length=64, description="job id from POST /predict")]


def _job_response(job: JobPublic, status_code: int) -> JSONResponse:
    headers = {"Location": job.links.self_}
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        headers["Retry-After"] = _RETRY_AFTER_S
    return JSONResponse(job.model_dump(mode="json", by_alias=True), status_code=status_code, headers=headers)


@router.post(
    "/predict",
    status_code=202,
    response_model=JobPublic,
    responses={
        200: {"model": JobPublic, "description": "an identical job or result already exists"},
        **problem_responses(400, 409, *_COMMON),
    },
)
def predict(
    body: JobCreate,
    settings: SettingsDep,
    connection: RedisDep,
    registry: RegistryDep,
    client: ClientDep,
    idempotency_key: IdempotencyKeyDep = None,
) -> JSONResponse:
    """Queue a picking job for one tomogram; poll the returned job's ``links.self``."""
    record, created = service.submit_job(
        connection=connection,
        settings=settings,
        registry=registry,
        body=body,
        client_id=client,
        idem_key=idempotency_key,
    )
    job = service.describe(connection=connection, settings=settings, record=record)
    return _job_response(job, 202 if created or not record.is_finished else 200)


@router.get("/jobs", response_model=JobsPublic, responses=problem_responses(*_COMMON))
def list_jobs(
    settings: SettingsDep,
    connection: RedisDep,
    client: ClientDep,
    query: Annotated[JobsQuery, Query()],
) -> JobsPublic:
    """The caller's most recent jobs (only its own), newest first."""
    return service.list_jobs(connection=connection, settings=settings, client_id=client, limit=query.limit)


@router.get("/jobs/{job_id}", response_model=JobPublic, responses=problem_responses(404, *_COMMON))
def read_job(job_id: JobId, settings: SettingsDep, connection: RedisDep, client: ClientDep) -> JSONResponse:
    """Status, stage, progress, place in the queue, ETA, timings and, on failure, the reason."""
    job = service.read_job(connection=connection, settings=settings, job_id=job_id, client_id=client)
    return _job_response(job, 200)


@router.get(
    "/jobs/{job_id}/picks",
    responses={
        200: {
            "content": {m: {} for m in service.MEDIA_TYPES.values()},
            "description": "the picks in the requested format",
        },
        **problem_responses(404, 409, *_COMMON),
    },
)
def read_picks(
    job_id: JobId,
    connection: RedisDep,
    client: ClientDep,
    format: Annotated[
        PicksFormat, Query(description="json (default), csv, star, copick or ndjson")
    ] = PicksFormat.JSON,
) -> Response:
    """The picks of a succeeded job: xyz in Å (STAR: Å from the tomogram centre; NDJSON: voxels of the
    original tomogram); copick as a zip of per-class copick files."""
    body, media_type, filename = service.read_picks(
        connection=connection, job_id=job_id, client_id=client, fmt=format
    )
    disposition = "attachment" if format is PicksFormat.COPICK else "inline"
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'{disposition}; filename="{filename}"'}
    )


@router.get(
    "/jobs/{job_id}/preview.png",
    response_class=Response,
    responses={
        200: {
            "content": {"image/png": {}},
            "description": "the picks over slabs and sections of the tomogram",
        },
        **problem_responses(404, 409, *_COMMON),
    },
)
def read_preview(job_id: JobId, connection: RedisDep, client: ClientDep) -> Response:
    """A PNG of a succeeded job's picks: z-slabs, an xz and a yz section, one circle per pick."""
    png = service.read_preview(connection=connection, job_id=job_id, client_id=client)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.delete(
    "/jobs/{job_id}",
    response_model=JobPublic,
    status_code=200,
    responses={
        202: {
            "model": JobPublic,
            "description": "cancellation requested; the job stops within one batch of windows",
        },
        **problem_responses(404, 409, *_COMMON),
    },
)
def cancel_job(job_id: JobId, settings: SettingsDep, connection: RedisDep, client: ClientDep) -> JSONResponse:
    """Cancel a job: at once when queued, within one batch of windows when running."""
    job = service.cancel(connection=connection, settings=settings, job_id=job_id, client_id=client)
    return _job_response(job, 200 if job.status is JobStatus.CANCELLED else 202)
