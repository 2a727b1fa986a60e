"""Fixtures of the Bliss 2 tests: a blissdata 2.x ``DataStore`` on the Redis with RedisJSON and
RediSearch (``modules_redis``, tests/conftest.py), a ``bliss2`` ``Session``, live blissdata
readers, and SequenceManager processes in ``DataFormat bliss2`` (``start_device``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
import tango
from tango.test_context import DeviceTestContext

from tango_groups.devices.sequence_manager import SequenceManager
from tango_groups.runtime.redis_server import RedisServer
from tango_groups.session import Session

_sessions = itertools.count(1)
CHANNELS = ['{"name": "sum", "unit": "count"}', '{"name": "spectrum", "shape": [4]}']


@pytest.fixture
def store(modules_redis):
    """A blissdata ``DataStore`` on the modules server (set up on first use)."""
    from tango_groups.bliss2 import data_store  # blissdata 2.x: only where the tests run

    return data_store(modules_redis.url)


@pytest.fixture
def session_name() -> str:
    return f"b2_{os.getpid()}_{next(_sessions)}"


@pytest.fixture
def url(modules_redis) -> str:
    return modules_redis.url


@pytest.fixture
def session(url, session_name) -> Iterator[Session]:
    """The current session: ``session_name`` writing the Bliss 2 model to ``url``."""
    session = Session(session_name, redis_url=url, data_format="bliss2").setup()
    yield session
    session.close()


@pytest.fixture
def follower(modules_redis) -> Iterator[Any]:
    """``follower(session)``: a started, READY live reader; killed at the end of the test."""
    from bliss2_support import Follower  # tests/bliss2; imports blissdata 2.x

    followers: list[Follower] = []

    def start(session: str) -> Follower:
        followers.append(Follower(modules_redis.url, session))
        return followers[-1]

    yield start
    for each in followers:
        each.close()


class Running(NamedTuple):
    """A started device (``start_device``): its proxy and its test context."""

    proxy: tango.DeviceProxy
    context: DeviceTestContext


@pytest.fixture
def start_device(modules_redis: RedisServer, session_name: str) -> Iterator[Callable[..., Running]]:
    """``start_device(**properties)``: a SequenceManager process in DataFormat bliss2."""
    contexts: list[DeviceTestContext] = []

    def start(**properties: object) -> Running:
        props = {"RedisURL": modules_redis.url, "Session": session_name, "DataFormat": "bliss2",
                 "EndTimeout": 1.0, "HealthCheckPeriod": 0.2, "LeaseTime": 1.5,
                 "Channels": CHANNELS,
                 **properties}
        context = DeviceTestContext(SequenceManager, properties=props, process=True, timeout=30)
        proxy = context.__enter__()
        contexts.append(context)
        proxy.set_timeout_millis(10_000)
        return Running(proxy, context)

    yield start
    for context in reversed(contexts):
        if context.server is not None and not context.thread.is_alive():
            context.server = None
        context.__exit__(None, None, None)
