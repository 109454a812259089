"""Errors of a request to the gateway, named after the condition (job errors: ``worker.jobs.exceptions``)."""

# The worker refuses a tomogram over the limits too, so the error lives with the domain errors.
from octopi_core.exceptions import TomogramTooLargeError

__all__ = [
    "RequestError",
    "NotAuthenticatedError",
    "UriNotAllowedError",
    "TomogramTooLargeError",
    "RateLimitExceededError",
    "IdempotencyKeyReusedError",
    "UnknownModelVersionError",
    "NoModelAvailableError",
    "RequestBodyTooLargeError",
]


class RequestError(Exception):
    """Base class of the gateway's request errors."""


class NotAuthenticatedError(RequestError):
    """API keys are configured and the request carries no valid ``Authorization: Bearer`` key."""


class UriNotAllowedError(RequestError):
    """The URI's scheme is not allowed, its host is loopback/private/link-local/metadata and not allow-listed,
    or a local path lies outside the configured roots."""


class RateLimitExceededError(RequestError):
    """The client sent more than ``rate_limit_per_minute`` requests this minute."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class IdempotencyKeyReusedError(RequestError):
    """The ``Idempotency-Key`` was already used with a different request body."""


class UnknownModelVersionError(RequestError):
    """The requested model version is not in the registry."""


class NoModelAvailableError(RequestError):
    """No model version was given and there is neither a champion nor a shipped model."""


class RequestBodyTooLargeError(RequestError):
    """The request body exceeds ``max_body_bytes``."""
