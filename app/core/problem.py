"""RFC 9457 problem details: the one table from error types to HTTP status, title and problem type.

``app/main.py`` installs one exception handler that renders any error through :func:`problem_from_exception`;
``GET /jobs/{id}`` renders a failed job's stored error type through :func:`problem_from_error_type`, so both
use the same table. Problem types are ``urn:octopi-serve:problem:<slug>``.
"""

from __future__ import annotations

from http import HTTPStatus

import redis
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from octopi_core import exceptions as core
from worker.jobs import exceptions as job

from . import exceptions as request

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "problem_from_exception",
    "problem_from_error_type",
    "problem_type",
    "problem_responses",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_REDIS_RETRY_AFTER_S = 5

# Most specific classes first: the first isinstance match wins.
_TABLE: list[tuple[type[BaseException], int, str, str]] = [
    (job.NoSuchJobError, 404, "job-not-found", "Job not found"),
    (job.JobNotFinishedError, 409, "job-not-finished", "Job has no picks"),
    (job.InvalidJobStateError, 409, "invalid-job-state", "Operation not allowed in the job's status"),
    (job.JobTimeoutError, 504, "job-timeout", "Job timed out"),
    (job.WorkerLostError, 503, "worker-lost", "Worker lost"),
    (job.OutputWriteError, 502, "output-write-failed", "Picks could not be written to output_uri"),
    (job.InternalJobError, 500, "internal-job-error", "Internal error while processing the job"),
    (request.NotAuthenticatedError, 401, "not-authenticated", "Missing or invalid API key"),
    (request.RequestBodyTooLargeError, 413, "request-too-large", "Request body too large"),
    (core.TomogramTooLargeError, 413, "tomogram-too-large", "Tomogram too large"),
    (request.RateLimitExceededError, 429, "rate-limited", "Too many requests"),
    (
        request.IdempotencyKeyReusedError,
        409,
        "idempotency-key-reused",
        "Idempotency-Key reused with another body",
    ),
    (request.UriNotAllowedError, 422, "uri-not-allowed", "URI not allowed"),
    (request.UnknownModelVersionError, 422, "unknown-model-version", "Unknown model version"),
    (request.NoModelAvailableError, 503, "no-model", "No model available"),
    (core.TomogramNotFoundError, 422, "tomogram-not-found", "Tomogram not found"),
    (core.TomogramAccessDeniedError, 422, "tomogram-access-denied", "Tomogram access denied"),
    (core.TomogramUnreachableError, 422, "tomogram-unreachable", "Tomogram host unreachable"),
    (core.UnsupportedUriError, 422, "unsupported-uri", "Unsupported tomogram URI"),
    (core.UnsupportedFormatError, 422, "unsupported-format", "Unsupported tomogram format"),
    (core.UnsupportedDataTypeError, 422, "unsupported-data-type", "Tomogram voxels are not real numbers"),
    (core.RedirectRefusedError, 422, "redirect-refused", "Tomogram URL redirects elsewhere"),
    (core.CorruptTomogramError, 422, "corrupt-tomogram", "Corrupt tomogram"),
    (core.InvalidTomogramShapeError, 422, "invalid-tomogram-shape", "Tomogram is not 3-D"),
    (core.EmptyTomogramError, 422, "empty-tomogram", "Tomogram holds no signal"),
    (core.InvalidVoxelSizeError, 422, "invalid-voxel-size", "Invalid voxel size"),
    (core.TooManyChunksError, 422, "too-many-chunks", "Tomogram cut into too many chunks"),
    (core.OutputNotWritableError, 422, "output-not-writable", "output_uri is not writable"),
    (core.UnknownRunError, 422, "unknown-run", "No such run in the copick project"),
    (core.DataSourceError, 422, "data-source-error", "Copick project or data source cannot be used"),
    (core.PicksExistError, 409, "picks-exist", "Picks of that user and session exist"),
    (core.TomogramTooSmallError, 422, "tomogram-too-small", "Tomogram smaller than one inference window"),
    (core.TomogramError, 422, "tomogram-error", "Tomogram cannot be used"),
    (core.CheckpointError, 500, "model-error", "Model checkpoint cannot be loaded"),
    (core.NoInputSpectrumError, 422, "no-input-spectrum", "Model has no spectrum to match tomograms to"),
    # Also a ValueError: answered as one, as before the error had a name.
    (core.UnknownParticleClassError, 422, "invalid-value", "Invalid value"),
    (core.OctopiError, 422, "invalid-input", "Invalid input"),
    (ValueError, 422, "invalid-value", "Invalid value"),
    (redis.exceptions.ConnectionError, 503, "queue-unavailable", "Job queue unavailable"),
    (redis.exceptions.TimeoutError, 503, "queue-unavailable", "Job queue unavailable"),
    (redis.exceptions.BusyLoadingError, 503, "queue-unavailable", "Job queue unavailable"),
]
_BY_NAME = {cls.__name__: (status, slug, title) for cls, status, slug, title in reversed(_TABLE)}


def problem_type(slug: str) -> str:
    """The problem type URI for ``slug``."""
    return f"urn:octopi-serve:problem:{slug}"


def _problem(status: int, slug: str | None, title: str, detail: str, instance: str | None) -> dict:
    body = {
        "type": problem_type(slug) if slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    return body


def problem_from_exception(exc: BaseException, instance: str | None = None) -> tuple[dict, dict[str, str]]:
    """The problem details and extra response headers for ``exc``; unknown errors give a bare 500."""
    if isinstance(exc, RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            return _problem(
                400, "malformed-json", "Malformed JSON body", "the request body is not valid JSON", instance
            ) | {"errors": errors}, {}
        detail = (
            "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
            or "invalid request"
        )
        return _problem(422, "validation-error", "Invalid request", detail, instance) | {"errors": errors}, {}
    if isinstance(exc, StarletteHTTPException):
        headers: dict[str, str] = dict(exc.headers or {})
        try:
            title = HTTPStatus(exc.status_code).phrase
        except ValueError:
            title = "Error"
        detail = exc.detail if isinstance(exc.detail, str) else title
        return _problem(exc.status_code, None, title, detail, instance), headers
    for cls, status, slug, title in _TABLE:
        if isinstance(exc, cls):
            headers = {}
            if isinstance(exc, request.RateLimitExceededError):
                headers["Retry-After"] = str(exc.retry_after_s)
            elif isinstance(exc, request.NotAuthenticatedError):
                headers["WWW-Authenticate"] = 'Bearer realm="octopi-serve"'
            elif status == 503:
                headers["Retry-After"] = str(_REDIS_RETRY_AFTER_S)
            detail = str(exc) if slug != "queue-unavailable" else "Redis cannot be reached; try again shortly"
            return _problem(status, slug, title, detail or title, instance), headers
    return _problem(
        500, "internal-error", "Internal server error", "an unexpected error occurred", instance
    ), {}


def problem_from_error_type(error_type: str, detail: str, instance: str | None = None) -> dict:
    """The problem details of a failed job from its stored error class name and message."""
    status, slug, title = _BY_NAME.get(error_type, (500, "internal-job-error", "Internal error"))
    return _problem(status, slug, title, detail or title, instance)


def problem_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI ``responses`` entries documenting problem+json bodies for ``statuses``."""
    from ..schemas import Problem

    entry = {
        "model": Problem,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    out: dict[int | str, dict] = {}
    for status in statuses:
        try:
            description = HTTPStatus(status).phrase
        except ValueError:
            description = "Error"
        out[status] = {**entry, "description": f"{description} (RFC 9457 problem details)"}
    return out
