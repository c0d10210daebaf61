"""Waiting on a condition in tests: poll it until it holds, or fail saying what never came."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

WAIT_S = 60.0  # a bound on waiting on a shared machine, not a speed claim


def wait_for(
    condition: Callable[[], Any],
    what: str | Callable[[], str],
    timeout: float = WAIT_S,
    interval: float = 0.05,
) -> Any:
    """The first truthy value of `condition()`; fails the test naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting {timeout:g} s for {what() if callable(what) else what}")
        time.sleep(interval)
