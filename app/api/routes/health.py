"""Liveness, readiness and Prometheus metrics (no authentication, no rate limit; metrics can be turned off)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ... import service
from ...core.problem import PROBLEM_MEDIA_TYPE, problem_responses
from ...schemas import Health, Readiness
from ..deps import RedisDep, SettingsDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses=problem_responses(413))
def healthz() -> Health:
    """The gateway process is alive (it does not look at Redis or the workers)."""
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "no live worker, or Redis unreachable (problem+json)",
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
        **problem_responses(413),
    },
)
def readyz(connection: RedisDep, settings: SettingsDep) -> JSONResponse:
    """Ready when Redis answers and at least one worker has a live heartbeat (503 otherwise); with
    ``OCTOPI_READYZ_REQUIRES_WORKER=false``, Redis alone."""
    ready = service.readiness(connection=connection, settings=settings)
    return JSONResponse(ready.model_dump(), status_code=200 if ready.status == "ready" else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **problem_responses(404)},
)
def metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus metrics: requests by route and status, queue depth, workers, jobs by final status,
    job and inference duration histograms, tomograms in the last hour (aggregates only; 404 with
    ``OCTOPI_METRICS_ENABLED=false``)."""
    if not settings.metrics_enabled:
        raise HTTPException(404)  # as for any path that is not served
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
