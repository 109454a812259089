"""Errors of the job lifecycle, named after the condition (domain errors: ``octopi_core.exceptions``)."""

__all__ = [
    "ServiceError",
    "NoSuchJobError",
    "JobNotFinishedError",
    "InvalidJobStateError",
    "JobTimeoutError",
    "WorkerLostError",
    "OutputWriteError",
    "InternalJobError",
]


class ServiceError(Exception):
    """Base class of the service's own errors."""


class NoSuchJobError(ServiceError):
    """No job has that id (never created, or expired after ``result_ttl_s``)."""


class JobNotFinishedError(ServiceError):
    """The job's picks were asked for before it succeeded (or after it failed or was cancelled)."""


class InvalidJobStateError(ServiceError):
    """The operation does not apply to the job in its current status (e.g. cancelling a finished job)."""


class JobTimeoutError(ServiceError):
    """An attempt of the job ran longer than ``job_timeout_s``."""


class WorkerLostError(ServiceError):
    """The job's worker died (kill -9, out of memory, node loss) on every one of ``max_tries`` attempts."""


class OutputWriteError(ServiceError):
    """The picks were computed but could not be written to the job's ``output_uri``."""


class InternalJobError(ServiceError):
    """The worker failed for a reason that is not the input's fault (a bug); the detail names it."""
