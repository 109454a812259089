"""A worker's finisher: one background thread that ends the jobs whose inference is done.

A task reads and segments its tomogram, hands the rest of the job (localization, the picks document, the
outputs and the outcome in Redis) to the finisher and returns, so RQ gives the worker its next job, whose
reading and inference overlap this one's localization. The job stays in the running hash, owned by the
worker, until the finisher records its outcome: a worker killed meanwhile leaves it to the dead-worker sweep,
as it would a job being inferred, and no job is lost.

Bound: at most one job waits for or is in the finisher. :meth:`Finisher.submit` first waits for the job
before, so a worker holds at most two segmentations (label map uint8 + confidence map float16, 3 B/voxel
each): the one being localized and the one just inferred, waiting to be handed over.

Deadline: each call comes with the monotonic time its job must be done by (RQ's ``job_timeout`` only covers
the task function, not this thread). The call keeps to it itself (localization polls it); one that is still
running ``grace_s`` after it is stuck in something that cannot be interrupted (a hung write): the finisher
then runs that call's ``on_overdue`` (which records the job as timed out) and gives the thread up, and the
worker must restart, since a thread cannot be killed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Finisher", "FinisherStuckError"]

log = logging.getLogger(__name__)


class FinisherStuckError(RuntimeError):
    """The finisher's call ran past its deadline and grace: the thread is given up, the worker must restart."""


@dataclass(frozen=True)
class _Call:
    run: Callable[[], object]
    deadline: float | None  # time.monotonic()
    on_overdue: Callable[[], object] | None


class Finisher:
    """One daemon thread running one call at a time, handed over by the worker's main thread.

    Args:
        name: the worker's name, for the thread's name.
        grace_s: how long past its deadline a call may run before the thread is given up.
    """

    def __init__(self, name: str, *, grace_s: float = 60.0) -> None:
        self._calls: queue.Queue[_Call | None] = queue.Queue(maxsize=1)
        self._idle = threading.Event()
        self._idle.set()
        self._held: _Call | None = None
        self._grace_s = grace_s
        self.stuck = False
        self._thread = threading.Thread(target=self._run, name=f"finisher-{name}", daemon=True)
        self._thread.start()

    def submit(
        self,
        call: Callable[[], object],
        *,
        deadline: float | None = None,
        on_overdue: Callable[[], object] | None = None,
        wait_until: float | None = None,
    ) -> bool:
        """Run ``call`` in the thread, once the call before it has returned (the bound: one at a time).

        Args:
            call: the rest of a job.
            deadline: ``time.monotonic()`` by which ``call`` should have returned; None = none.
            on_overdue: run (in the caller's thread) if ``call`` is given up, ``grace_s`` after ``deadline``.
            wait_until: ``time.monotonic()`` after which the caller stops waiting for the call before.

        Returns:
            True when ``call`` was taken; False when the call before was still running, in its time, at
            ``wait_until``: the caller runs ``call`` itself.

        Raises:
            RuntimeError: after :meth:`close`, or once the thread was given up.
            FinisherStuckError: the call before ran past its deadline and grace, and is given up now (its
                ``on_overdue`` has run); ``call`` was not taken.
        """
        if not self._thread.is_alive() or self.stuck:
            raise RuntimeError("the finisher is closed")
        if not self._wait_for_held(wait_until):
            if self.stuck:
                raise FinisherStuckError("the finisher's job ran past its deadline; the worker must restart")
            return False
        self._idle.clear()
        self._held = _Call(call, deadline, on_overdue)
        self._calls.put(self._held)
        return True

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until the thread holds no call; return False when ``timeout_s`` seconds ran out first."""
        return self._idle.wait(timeout_s)

    @property
    def busy(self) -> bool:
        """Whether a call waits for or runs in the thread."""
        return not self._idle.is_set()

    def close(self) -> None:
        """Let the call it holds finish (up to its deadline and grace), then stop the thread."""
        if self._thread.is_alive() and not self.stuck:
            if not self._wait_for_held():
                return  # given up: a daemon thread, it ends with the process
            self._held = None
            self._calls.put(None)
            self._thread.join()

    def _wait_for_held(self, until: float | None = None) -> bool:
        """Wait for the held call, at most until ``until`` or its deadline and grace, whichever is first; give it
        up at the latter (run its on_overdue, set :attr:`stuck`). Return whether it has returned."""
        held = self._held
        give_up_at = None if held is None or held.deadline is None else held.deadline + self._grace_s
        limits = [t for t in (until, give_up_at) if t is not None]
        if not limits:
            return self.wait()
        if self.wait(max(0.0, min(limits) - time.monotonic())):
            return True
        if held is None or give_up_at is None or time.monotonic() < give_up_at:
            return False
        self.stuck = True
        log.error("the finisher's call ran %.0f s past its deadline: giving the thread up", self._grace_s)
        if held.on_overdue is not None:
            try:
                held.on_overdue()
            except Exception:
                log.exception("recording the overdue job failed")
        return False

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            try:
                call.run()
            except Exception:  # the call records its job's failure itself; this is a bug or Redis gone
                log.exception("the finisher's call failed")
            finally:
                self._idle.set()
