"""A worker's finisher: one background thread that ends the jobs whose inference is done.

A task reads and segments its tomogram, hands the rest of the job (localization, the picks document, the
outputs and the outcome in Redis) to the finisher and returns, so RQ gives the worker its next job, whose
reading and inference overlap this one's localization. The job stays in the running hash, owned by the
worker, until the finisher records its outcome: a worker killed meanwhile leaves it to the dead-worker sweep,
as it would a job being inferred, and no job is lost.

Bound: at most one job waits for or is in the finisher. :meth:`Finisher.submit` first waits for the job
before, so a worker holds at most two segmentations (label map uint8 + confidence map float16, 3 B/voxel
each): the one being localized and the one just inferred, waiting to be handed over.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["Finisher"]

log = logging.getLogger(__name__)


class Finisher:
    """One daemon thread running one call at a time, handed over by the worker's main thread.

    Args:
        name: the worker's name, for the thread's name.
    """

    def __init__(self, name: str) -> None:
        self._calls: queue.Queue[Callable[[], object] | None] = queue.Queue(maxsize=1)
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name=f"finisher-{name}", daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], object]) -> None:
        """Run ``call`` in the thread, once the call before it has returned (the bound: one at a time).

        Raises:
            RuntimeError: after :meth:`close`.
        """
        if not self._thread.is_alive():
            raise RuntimeError("the finisher is closed")
        self.wait()
        self._idle.clear()
        self._calls.put(call)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until the thread holds no call; return False when ``timeout_s`` seconds ran out first."""
        return self._idle.wait(timeout_s)

    @property
    def busy(self) -> bool:
        """Whether a call waits for or runs in the thread."""
        return not self._idle.is_set()

    def close(self) -> None:
        """Let the call it holds finish, then stop the thread."""
        if self._thread.is_alive():
            self.wait()
            self._calls.put(None)
            self._thread.join()

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            try:
                call()
            except Exception:  # the call records its job's failure itself; this is a bug or Redis gone
                log.exception("the finisher's call failed")
            finally:
                self._idle.set()
