"""The SequenceManager in a real device server process (``DeviceTestContext(process=True)``).

The server process is forked from pytest; gevent's monkey patching is applied in that child only,
first thing, as the ``SequenceManager`` entry point does, so pytest itself stays unpatched.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator

import pytest
import tango
from tango.test_context import DeviceTestContext
from tango_groups.devices.sequence_manager import SequenceManager

_sessions = itertools.count()


class GeventDeviceTestContext(DeviceTestContext):
    """A test context whose server process is monkey-patched before the server starts."""

    def target(self, runserver, process=False):
        from gevent import monkey

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "patching after ssl was imported": no TLS here
            monkey.patch_all(thread=False)
        super().target(runserver, process)


@pytest.fixture
def start_device(redis_url: str, session_name: str) -> Iterator[Callable[..., tango.DeviceProxy]]:
    """``start_device(**properties)``: a fresh SequenceManager server; returns its proxy.

    Defaults: the test Redis, a session of its own, a short EndTimeout.
    """
    contexts: list[GeventDeviceTestContext] = []

    def start(**properties: object) -> tango.DeviceProxy:
        props = {"RedisURL": redis_url, "Session": f"{session_name}_{next(_sessions)}",
                 "EndTimeout": 2.0, "HealthCheckPeriod": 0.2, **properties}
        context = GeventDeviceTestContext(SequenceManager, properties=props, process=True,
                                          timeout=30)
        proxy = context.__enter__()
        contexts.append(context)
        proxy.set_timeout_millis(10_000)
        return proxy

    yield start
    for context in reversed(contexts):
        context.__exit__(None, None, None)


@pytest.fixture
def device(start_device: Callable[..., tango.DeviceProxy]) -> tango.DeviceProxy:
    return start_device()
