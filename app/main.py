"""Gateway application factory: settings, Redis, middleware, the one error handler, the routers.

Run it with ``octopi-serve gateway`` (or ``uvicorn --factory app.main:create_app``). The gateway holds no
model: it validates requests, queues jobs in Redis and reports on them. If Redis goes away, requests
that need it get 503 problem+json and the gateway recovers by itself when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from octopi_core.exceptions import OctopiError
from octopi_core.settings import Settings, get_settings
from worker.jobs.exceptions import ServiceError
from worker.jobs.lifecycle import reap_dead_workers

from .api.main import api_router
from .core.body_limit import BodySizeLimitMiddleware
from .core.exceptions import RequestError
from .core.metrics import RequestMetricsMiddleware, ServiceMetrics
from .core.problem import PROBLEM_MEDIA_TYPE, problem_from_exception

__all__ = ["create_app"]

log = logging.getLogger(__name__)
_UI_DIR = Path(__file__).with_name("ui")
# The page's own files only: no inline script or style, images only from blob: URLs it makes itself.
_UI_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_HANDLED = (
    StarletteHTTPException,
    RequestValidationError,
    RequestError,
    ServiceError,
    OctopiError,
    redis.exceptions.RedisError,
    ValueError,
    Exception,
)


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """The one place errors become responses: RFC 9457 problem+json with the status from the table."""
    problem, headers = problem_from_exception(exc, instance=request.url.path)
    if problem["status"] >= 500 and problem["status"] != 503:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        problem, status_code=problem["status"], headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


def _connect(settings: Settings) -> redis.Redis:
    # No retries and short timeouts: with Redis down a request fails fast with 503 instead of hanging.
    return redis.Redis.from_url(
        settings.effective_redis_url,
        socket_connect_timeout=2,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


async def _sweep_dead_workers(app: FastAPI) -> None:
    """Re-queue jobs of dead workers even when no worker is left to do it."""
    settings: Settings = app.state.settings
    while True:
        await asyncio.sleep(settings.heartbeat_s)
        try:
            await asyncio.to_thread(reap_dead_workers, app.state.redis, settings)
        except Exception as e:  # noqa: BLE001 - Redis away: try again next time
            log.debug("dead-worker sweep skipped: %s", e)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Importing the registry loads torch (seconds); do it now, off the event loop, not in the first request.
    threading.Thread(target=lambda: __import__("octopi_core.registry"), daemon=True).start()
    sweeper = asyncio.create_task(_sweep_dead_workers(app))
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        app.state.redis.close()


class _UiFiles(StaticFiles):
    """The jobs page's static files, each sent with :data:`_UI_HEADERS`."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(_UI_HEADERS)
        return response


def _mount_ui(app: FastAPI) -> None:
    """Serve ``app/ui/`` at ``/ui/`` and send ``/`` there."""
    app.mount("/ui", _UiFiles(directory=_UI_DIR, html=True), name="ui")

    @app.get("/", include_in_schema=False)
    def _root() -> RedirectResponse:
        return RedirectResponse("/ui/")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway for ``settings`` (default: from the environment).

    ``/docs``, ``/redoc`` and ``/openapi.json`` are served only with ``settings.docs_enabled`` (by default
    in development); the jobs page at ``/ui/`` only with ``settings.ui_enabled`` (by default).

    Raises:
        ValueError: production settings without API keys (:meth:`Settings.check_gateway`).
    """
    settings = settings or get_settings()
    settings.check_gateway()
    if not settings.api_keys:
        log.warning(
            "OCTOPI_API_KEYS is empty: the gateway accepts every request and tells clients apart by address"
        )
    docs = bool(settings.docs_enabled)
    app = FastAPI(
        title="octopi-serve",
        version="0.1.0",
        summary="Particle picking in cryo-ET tomograms as a service",
        description="Submit a tomogram with POST /predict, poll GET /jobs/{id}, fetch GET /jobs/{id}/picks. "
        "Errors are RFC 9457 problem+json.",
        lifespan=_lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    app.state.settings = settings
    app.state.redis = _connect(settings)
    app.state.registry = None
    app.state.metrics = ServiceMetrics(lambda: app.state.redis, settings)
    for exc_class in _HANDLED:
        app.add_exception_handler(exc_class, handle_error)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    app.include_router(api_router)
    if settings.ui_enabled:
        _mount_ui(app)
    return app
