"""What tests of a real device check with: a command refused with a given reason, a condition
reached before a deadline (polled: no sleep stands for an event)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import tango


def refused(reason: str, call: Callable[[], object]) -> str:
    """Run ``call``; it must fail with DevFailed ``reason``. Returns the description."""
    with pytest.raises(tango.DevFailed) as failure:
        call()
    error = failure.value.args[0]
    assert error.reason == reason, error.desc
    return error.desc


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0,
               what: Callable[[], object] = lambda: "") -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds (saying ``what()``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"condition not reached in time {what()}"
        time.sleep(0.02)
