"""Bounded polling, for state only visible through an endpoint (no event to await)."""

import time
from typing import Callable, TypeVar

from .waiting import WaitTimeout

T = TypeVar("T")

_INTERVAL = 0.05


def poll(fetch: Callable[[], T], check: Callable[[T], object], timeout: float, what: str) -> T:
    """Call `fetch()` until `check(value)` holds; return that value.

    Raises WaitTimeout naming `what` and the last value seen after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}; last: {value!r}")
        time.sleep(_INTERVAL)
