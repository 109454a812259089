import redis
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from app.core.exceptions import RateLimitExceededError, TomogramTooLargeError, UriNotAllowedError
from app.core.problem import problem_from_error_type, problem_from_exception
from octopi_core.exceptions import (
    CorruptTomogramError,
    TomogramError,
    TomogramNotFoundError,
    UnknownParticleClassError,
)
from worker.jobs.exceptions import NoSuchJobError, WorkerLostError


def test_the_table_maps_each_error_to_its_status():
    cases = [
        (NoSuchJobError("x"), 404, "job-not-found"),
        (UriNotAllowedError("x"), 422, "uri-not-allowed"),
        (TomogramTooLargeError("x"), 413, "tomogram-too-large"),
        (TomogramNotFoundError("x"), 422, "tomogram-not-found"),
        (TomogramError("x"), 422, "tomogram-error"),
        (ValueError("x"), 422, "invalid-value"),
        (UnknownParticleClassError("x"), 422, "invalid-value"),
        (redis.exceptions.ConnectionError("x"), 503, "queue-unavailable"),
    ]
    for exc, status, slug in cases:
        problem, _ = problem_from_exception(exc, "/p")
        assert (problem["status"], problem["type"]) == (status, f"urn:octopi-serve:problem:{slug}"), exc
        assert problem["instance"] == "/p"


def test_headers_and_unknown_errors():
    problem, headers = problem_from_exception(RateLimitExceededError("slow down", 17))
    assert problem["status"] == 429 and headers == {"Retry-After": "17"}
    problem, headers = problem_from_exception(redis.exceptions.TimeoutError("boom"))
    assert headers["Retry-After"] and "boom" not in problem["detail"]
    problem, _ = problem_from_exception(RuntimeError("secret internals"))
    assert problem["status"] == 500 and "secret" not in problem["detail"]
    problem, _ = problem_from_exception(HTTPException(405))
    assert (problem["status"], problem["type"], problem["title"]) == (
        405,
        "about:blank",
        "Method Not Allowed",
    )


def test_validation_errors():
    problem, _ = problem_from_exception(
        RequestValidationError([{"loc": ("body",), "msg": "bad", "type": "json_invalid"}])
    )
    assert problem["status"] == 400
    problem, _ = problem_from_exception(
        RequestValidationError([{"loc": ("body", "tta"), "msg": "no", "type": "bool"}])
    )
    assert problem["status"] == 422 and problem["detail"] == "body.tta: no" and problem["errors"]


def test_failed_jobs_render_from_their_stored_error_type():
    assert problem_from_error_type("CorruptTomogramError", "bad chunk")["status"] == 422
    assert problem_from_error_type(CorruptTomogramError.__name__, "x")["type"].endswith("corrupt-tomogram")
    assert problem_from_error_type(WorkerLostError.__name__, "died")["status"] == 503
    assert problem_from_error_type("JobTimeoutError", "slow")["status"] == 504
    assert problem_from_error_type("UnknownParticleClassError", "")["type"].endswith("invalid-value")
    assert problem_from_error_type("SomethingNew", "")["status"] == 500
