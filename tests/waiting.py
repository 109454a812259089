"""Waiting on a condition in tests: poll the condition itself, never sleep a fixed time and hope."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_until"]

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], *, timeout_s: float = 30.0, interval_s: float = 0.05, what: str = ""
) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    Args:
        condition: checked first at once, then every ``interval_s`` seconds.
        timeout_s: how long to wait before failing the test (default 30 s: a loaded 2-core CI machine).
        interval_s: seconds between checks (default 0.05).
        what: what is awaited, for the failure message.

    Raises:
        AssertionError: the condition was still falsy after ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition!r}")
        time.sleep(interval_s)
