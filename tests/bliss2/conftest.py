"""Fixtures of the Bliss 2 tests: a Redis with RedisJSON and RediSearch (skipped, with the reason,
where it cannot start), a blissdata 2.x ``DataStore`` on it, live blissdata readers.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tango_groups.runtime.redis_server import RedisServer

_sessions = itertools.count(1)


@pytest.fixture(scope="session")
def modules_redis() -> Iterator[RedisServer]:
    server = RedisServer(modules=True)
    try:
        server.start()
    except RuntimeError as error:  # ModulesUnavailable, or the server refused a module
        pytest.skip(f"no Redis with RedisJSON and RediSearch here: {error}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store(modules_redis):
    """A blissdata ``DataStore`` on the modules server (set up on first use)."""
    from tango_groups.bliss2 import data_store  # blissdata 2.x: only where the tests run

    return data_store(modules_redis.url)


@pytest.fixture
def session_name() -> str:
    return f"b2_{os.getpid()}_{next(_sessions)}"


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
