"""A SequenceManager server for fault tests: SIGKILL it, restart it under the same device name,
crash, empty or freeze its private Redis.

The stack is the runtime's, as a beamline runs it: an embedded Tango database
(``TangoDatabaseServer``, pytango-db, shared by every server of a test session), the server's
instance registered with ``fixtures.sequence_manager_config`` + ``load_config``, and the
``SequenceManager`` server process (``DeviceServer``). Each ``SequenceServer`` has its own
``RedisServer``, instance name and Redis session, so tests never see each other::

    server = SequenceServer(tango_host, RecoveryMode="resume").start()
    server.proxy.Start("")            # a client as users have one: Tango's default 3 s timeout
    scan = server.scan()              # a finished loopscan in the same Redis session
    server.kill(); server.start()     # SIGKILL, then the same device again
    server.redis.restart(keep_data=False)
    with server.redis.paused(): ...
    server.close()

Properties: ``RedisURL`` (the private Redis), ``Session``, ``HealthCheckPeriod`` 0.2,
``EndTimeout`` 1.0, ``RedisTimeout`` 1.0, then whatever the test passes (a list is a multi-line
property, e.g. ``Channels``; ``configure`` changes them; a running server reads them on ``Init``
or restart, ``Channels`` only on restart).

``poll`` is how tests wait: a predicate polled until it holds or a deadline passes (Tango errors
count as "not yet", since a restarting server refuses connections for a while).
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import redis
import tango

from tango_groups.data.connection import connect
from tango_groups.runtime.device_server import DeviceServer
from tango_groups.runtime.fixtures import device_names, load_config, sequence_manager_config
from tango_groups.runtime.process import log_tail
from tango_groups.runtime.redis_server import RedisServer
from tango_groups.scanning.scan import Scan
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session

__all__ = ["CLIENT_TIMEOUT_MS", "SequenceServer", "poll", "refused"]

CLIENT_TIMEOUT_MS = 3000  # Tango's default client timeout: what the device must stay below
DEFAULTS = {"HealthCheckPeriod": 0.2, "EndTimeout": 1.0, "RedisTimeout": 1.0}

_instances = itertools.count(1)
T = TypeVar("T")


def poll(predicate: Callable[[], T], timeout: float, what: str,
         describe: Callable[[], object] | None = None, period: float = 0.05) -> T:
    """``predicate()`` once it returns something true; fails after ``timeout`` seconds, naming
    ``what``, the last value or Tango error seen, and ``describe()`` (what else to show)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = predicate()
        except tango.DevFailed as error:
            value, last = None, f"{error.args[0].reason}: {error.args[0].desc.strip()}"
        else:
            if value:
                return value
            last = value
        if time.monotonic() > deadline:
            try:
                seen = "" if describe is None else f"; {describe()}"
            except tango.DevFailed as error:
                seen = f"; {error.args[0].reason}"
            pytest.fail(f"{what}: not within {timeout:g} s (last: {last!r}{seen})")
        time.sleep(period)


def refused(reason: str, call: Callable[[], object]) -> str:
    """Run ``call``; it must fail with DevFailed ``reason``. Returns the description."""
    with pytest.raises(tango.DevFailed) as failure:
        call()
    error = failure.value.args[0]
    assert error.reason == reason, f"{error.reason}: {error.desc}"
    return error.desc


class SequenceServer:
    """One SequenceManager device in its own server process, with its own Redis."""

    def __init__(self, tango_host: str, **properties: object) -> None:
        self.tango_host = tango_host
        self.instance = f"faults_{os.getpid()}_{next(_instances)}"
        self.device = device_names(self.instance)[0]
        self.session_name = self.instance
        self.redis = RedisServer().start()
        self.properties: dict[str, object] = {
            "RedisURL": self.redis.url, "Session": self.session_name, **DEFAULTS, **properties}
        self.server = DeviceServer(self.instance, tango_host)
        self.logs: list[str] = []  # log tails of the server processes that were killed
        self.client: redis.Redis = connect(self.redis.url)
        self.session = Session(self.session_name, redis_url=self.redis.url)
        self._proxy: tango.DeviceProxy | None = None
        try:
            self.configure()
        except BaseException:
            self.redis.stop()
            raise

    # -- configuration and process ----------------------------------------------------------
    def configure(self, **properties: object) -> None:
        """Update device properties in the Tango database (read by the next Init or start)."""
        self.properties.update(properties)
        config = sequence_manager_config(self.instance, 1, self.properties)
        load_config(config, self.tango_host, update=True)

    def start(self, timeout: float = 30.0) -> SequenceServer:
        """Start the server process; returns once the device answers State."""
        self.server.start(timeout)
        self._proxy = None
        return self

    @property
    def pid(self) -> int | None:
        return self.server.pid

    def alive(self) -> bool:
        return self.server.pid is not None and self.server.poll() is None

    def kill(self) -> None:
        """SIGKILL the server process (no shutdown code runs), and reap it."""
        pid = self.server.pid
        assert pid is not None and self.server.poll() is None, "the server is not running"
        os.kill(pid, signal.SIGKILL)
        poll(lambda: self.server.poll() is not None, 10, "the killed server to exit")
        self.logs.append(self.log())
        self.server.stop()  # reaped already: removes its work directory

    def restart(self, **properties: object) -> SequenceServer:
        """SIGKILL, new properties if given, start again: the same device name."""
        if self.alive():
            self.kill()
        if properties:
            self.configure(**properties)
        return self.start()

    def log(self) -> str:
        """The tail of the running (or last) server process's log."""
        try:
            return log_tail(self.server.log_path, 40)
        except RuntimeError:
            return ""

    def close(self) -> None:
        """Stop the server (SIGINT) and the Redis; print what the servers logged (shown by
        pytest for a failed test)."""
        self.logs.append(self.log())
        try:
            self.server.stop()
        finally:
            self.session.close()
            self.client.close()
            self.redis.stop()
            for number, text in enumerate(self.logs, 1):
                if text:
                    print(f"--- {self.instance} server process {number}, log tail:\n{text}")

    # -- clients ------------------------------------------------------------------------------
    @property
    def trl(self) -> str:
        return f"tango://{self.tango_host}/{self.device}"

    @property
    def proxy(self) -> tango.DeviceProxy:
        """A client of the current server process, with Tango's default 3 s timeout."""
        if self._proxy is None:
            self._proxy = tango.DeviceProxy(self.trl)
            self._proxy.set_timeout_millis(CLIENT_TIMEOUT_MS)
        return self._proxy

    def scan(self, npoints: int = 2, run: bool = True) -> Scan:
        """A loopscan of the device's session (finished unless ``run=False``)."""
        return loopscan(npoints, 0.0, self.session.config.get("diode"), session=self.session,
                        run=run)

    def last_scan_number(self) -> int:
        """The scan-saving container's counter (0 before the first scan)."""
        return int(self.client.hget(self.session.scan_saving_db_name, "last_scan_number") or 0)
