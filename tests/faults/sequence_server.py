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

``SequenceServer(tango_host, data_format="bliss2")`` is the same device in ``DataFormat bliss2``:
its private Redis has RedisJSON and RediSearch (``RedisServer(modules=True)``; the test is skipped,
with the reason, where that server cannot start), ``store`` is a blissdata 2.x ``DataStore`` on
it, and ``scan()`` writes a finished Bliss 2 scan of the session with blissdata itself
(``bliss2_data.write_scan``), numbered after the session's newest scan. In either model ``scan()``
returns something with the ``db_name`` (the Bliss 2 key) and ``scan_number`` a client gives to
``AddScan``, and ``data_client`` is a client of the db the data lives in (db 1 for bliss1, the
store's db 0 for bliss2).

Properties: ``RedisURL`` (the private Redis), ``Session``, ``HealthCheckPeriod`` 0.2,
``EndTimeout`` 1.0, ``RedisTimeout`` 1.0, ``LeaseTime`` 2.0 (a restarted server waits for the
lease of the killed one to expire), then whatever the test passes (a list is a multi-line
property, e.g. ``Channels``; ``configure`` changes them; a running server reads them on ``Init``
or restart, ``Channels`` only on restart).

Client helpers: ``spectrum`` (an attribute as a list), ``device_view`` (for failure messages),
``refused`` (a call must fail with that reason), ``retried`` (a client repeating a call while it
answers RedisUnavailable). ``poll`` is how tests wait: a predicate polled until it holds or a
deadline passes (Tango errors count as "not yet", since a restarting server refuses connections
for a while).
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy
import pytest
import redis
import tango

from tango_groups.data.connection import connect
from tango_groups.runtime.device_server import DeviceServer
from tango_groups.runtime.fixtures import device_names, load_config, sequence_manager_config
from tango_groups.runtime.process import log_tail
from tango_groups.runtime.redis_server import RedisServer
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session

__all__ = ["CLIENT_TIMEOUT_MS", "DATA_FORMATS", "UNAVAILABLE", "SequenceServer", "device_view",
           "poll", "refused", "retried", "spectrum"]

CLIENT_TIMEOUT_MS = 3000  # Tango's default client timeout: what the device must stay below
UNAVAILABLE = "SequenceManager_RedisUnavailable"
DATA_FORMATS = ("bliss1", "bliss2")
DEFAULTS = {"HealthCheckPeriod": 0.2, "EndTimeout": 1.0, "RedisTimeout": 1.0,
            "LeaseTime": 2.0}

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


def spectrum(proxy: tango.DeviceProxy, name: str) -> list[Any]:
    """An attribute as a list (an empty spectrum may read as None)."""
    value = proxy.read_attribute(name).value
    return [] if value is None else numpy.asarray(value).tolist()


def device_view(proxy: tango.DeviceProxy) -> str:
    """State, Status and sequence of the device, for failure messages."""
    return (f"{proxy.State()}, {proxy.SequenceName!r} {proxy.SequenceState!r}: "
            f"{proxy.Status()}")


def retried(call: Callable[[], Any], timeout: float = 10.0) -> Any:
    """A client retrying ``call`` while it fails with RedisUnavailable (other errors raise)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except tango.DevFailed as error:
            if error.args[0].reason != UNAVAILABLE or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def refused(reason: str, call: Callable[[], object]) -> str:
    """Run ``call``; it must fail with DevFailed ``reason``. Returns the description."""
    with pytest.raises(tango.DevFailed) as failure:
        call()
    error = failure.value.args[0]
    assert error.reason == reason, f"{error.reason}: {error.desc}"
    return error.desc


class SequenceServer:
    """One SequenceManager device in its own server process, with its own Redis."""

    def __init__(self, tango_host: str, data_format: str = "bliss1", **properties: object
                 ) -> None:
        if data_format not in DATA_FORMATS:
            raise ValueError(f"data_format: one of {DATA_FORMATS}, not {data_format!r}")
        self.tango_host = tango_host
        self.data_format = data_format
        self.instance = f"faults_{os.getpid()}_{next(_instances)}"
        self.device = device_names(self.instance)[0]
        self.session_name = self.instance
        self.redis = _start_redis(modules=data_format == "bliss2")
        self.properties: dict[str, object] = {
            "RedisURL": self.redis.url, "Session": self.session_name, "DataFormat": data_format,
            **DEFAULTS, **properties}
        self.server = DeviceServer(self.instance, tango_host)
        self.logs: list[str] = []  # log tails of the server processes that were killed
        self.client: redis.Redis = connect(self.redis.url)
        self.session = Session(self.session_name, redis_url=self.redis.url)
        self.store: Any = None  # a blissdata 2.x DataStore, in DataFormat bliss2
        self._proxy: tango.DeviceProxy | None = None
        try:
            if data_format == "bliss2":
                from tango_groups.bliss2 import data_store  # blissdata 2.x: only in bliss2

                self.store = data_store(self.redis.url)
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
            if self.store is not None:
                self.data_client.close()
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

    @property
    def data_client(self) -> redis.Redis:
        """A client of the db the device's data lives in (see the module docstring)."""
        if self.store is None:
            return self.client
        from tango_groups.bliss2 import store_client

        return store_client(self.store)

    def scan(self, npoints: int = 2, run: bool = True) -> Any:
        """A loopscan of the device's session (finished unless ``run=False``, bliss1 only): a
        1.x ``Scan``, or in bliss2 a ``bliss2_data.WrittenScan`` (``db_name`` is its key)."""
        if self.store is None:
            return loopscan(npoints, 0.0, self.session.config.get("diode"),
                            session=self.session, run=run)
        from bliss2_data import WrittenScan, write_scan

        assert run, "bliss2: scan() writes finished scans only"
        number = self.last_scan_number() + 1
        return WrittenScan(write_scan(self.store, self.session_name, number, npoints), number)

    def last_scan_number(self) -> int:
        """The scan-saving container's counter (0 before the first scan); in bliss2 the number
        of the session's newest scan (0 when it has none)."""
        if self.store is None:
            return int(self.client.hget(self.session.scan_saving_db_name, "last_scan_number")
                       or 0)
        from bliss2_data import last_scan_number

        return last_scan_number(self.store, self.session_name)


def _start_redis(modules: bool) -> RedisServer:
    """The private Redis (with RedisJSON and RediSearch for bliss2: skip where it cannot run)."""
    server = RedisServer(modules=modules)
    try:
        return server.start()
    except RuntimeError as error:  # ModulesUnavailable, or the server refused a module
        if not modules:
            raise
        pytest.skip(f"no Redis with RedisJSON and RediSearch here: {error}")
