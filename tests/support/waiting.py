"""Bounded waiting: the one way support code blocks on another thread."""

import threading
from typing import Callable


class WaitTimeout(AssertionError):
    """A bounded wait expired. An AssertionError so pytest reports it as a test failure."""


def wait_for(cond: threading.Condition, predicate: Callable[[], object], timeout: float, what: str):
    """Wait on `cond` until `predicate()` is truthy and return its value.

    Raises WaitTimeout naming `what` after `timeout` seconds, so a hung test
    says what it was waiting for instead of just hitting the global timeout.
    """
    with cond:
        result = cond.wait_for(predicate, timeout)
    if not result:
        raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
    return result
