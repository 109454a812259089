"""The job model on Redis, shared by the gateway and the workers (RQ's split: job, queue and registries
apart from the worker that runs jobs).

Torch-free: the gateway imports only this package of ``worker``. Key names (:mod:`.keys`) and the
service-wide statistics (:mod:`.stats`) are namespaces of their own; the rest is re-exported here.
"""

from . import keys, stats
from .exceptions import (
    InternalJobError,
    InvalidJobStateError,
    JobNotFinishedError,
    JobTimeoutError,
    NoSuchJobError,
    OutputWriteError,
    ServiceError,
    WorkerLostError,
)
from .lifecycle import (
    cancel_job,
    claim_attempt,
    create_job,
    finish_attempt,
    owner_token,
    reap_dead_workers,
    requeue_attempt,
)
from .queue import RQ_RESULT_TTL_S, TASK, enqueue_attempt, make_queue, queue_depth, queue_position
from .state import (
    TERMINAL_STATUSES,
    JobOptions,
    JobRecord,
    JobStage,
    JobStatus,
    expire_job,
    fetch_result,
    is_cancel_requested,
    parse_time,
    request_cancel,
    result_digest,
    set_progress,
    set_stage,
    store_result,
    utc_now,
)
from .workers import live_workers

__all__ = [
    "keys",
    "stats",
    "ServiceError",
    "NoSuchJobError",
    "JobNotFinishedError",
    "InvalidJobStateError",
    "JobTimeoutError",
    "WorkerLostError",
    "OutputWriteError",
    "InternalJobError",
    "JobStatus",
    "JobStage",
    "JobOptions",
    "JobRecord",
    "TERMINAL_STATUSES",
    "utc_now",
    "parse_time",
    "result_digest",
    "set_stage",
    "set_progress",
    "request_cancel",
    "is_cancel_requested",
    "store_result",
    "fetch_result",
    "expire_job",
    "TASK",
    "RQ_RESULT_TTL_S",
    "make_queue",
    "enqueue_attempt",
    "queue_position",
    "queue_depth",
    "owner_token",
    "create_job",
    "claim_attempt",
    "finish_attempt",
    "requeue_attempt",
    "cancel_job",
    "reap_dead_workers",
    "live_workers",
]
