"""Helpers of the stress and load tests (``test_stress.py``, ``test_load.py``).

* ``sequence_manager(...)``: a SequenceManager server run the Tango way (its own embedded Tango
  database, ``SequenceManager <instance>``), so that the test owns the server process and knows how
  it ended: ``Device.death()`` says whether it died and how (a signal such as SIGSEGV, an exit
  code), with the tail of its log (``PYTHONFAULTHANDLER`` is on: a crash logs every thread's
  Python stack).
* ``cpu_load()``: one busy-loop process per core while the test runs.
* ``Workers``: client processes (``multiprocessing`` spawn: fresh interpreters, no state forked
  from pytest's Tango client) that report one result each: ``read_everything`` (readers),
  ``list_attributes`` (attribute lists and configurations), ``record_events`` (subscribers) and
  ``load_client`` (the load test's clients).
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Self

import numpy
import redis
import tango

from tango_groups.bliss1.writer import DataWriter
from tango_groups.devices.interface import ATTRIBUTES, event_value
from tango_groups.runtime.device_server import DeviceServer
from tango_groups.runtime.fixtures import load_config, sequence_manager_config
from tango_groups.runtime.process import log_tail
from tango_groups.runtime.tango_db import TangoDatabaseServer
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session

SPAWN = multiprocessing.get_context("spawn")
CLIENT_TIMEOUT_MS = 10_000  # under CPU load a busy device may answer late; late is not wrong

# -- the device server ------------------------------------------------------------------------


def how_it_ended(code: int) -> str:
    """``exited with code 1`` / ``was killed by signal 11 (SIGSEGV)``."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "unknown signal"
    return f"was killed by signal {-code} ({name})"


@dataclass
class Device:
    """A running SequenceManager: its server process, full TRL and a proxy to it."""

    server: DeviceServer
    trl: str
    proxy: tango.DeviceProxy

    def log(self, lines: int = 40) -> str:
        """The end of the server's log; after a crash, from the lines before the first "Fatal
        Python error" (what libc or libtango said, then every thread's Python stack)."""
        text = log_tail(self.server.log_path, 100_000).splitlines()
        fatal = next((k for k, line in enumerate(text) if "Fatal Python error" in line), None)
        first = max(0, fatal - 3) if fatal is not None else -lines
        return "\n".join(text[first:][:200])

    def death(self) -> str | None:
        """None while the server process runs, else how it ended, with its log."""
        code = self.server.poll()
        if code is None:
            return None
        return (f"the SequenceManager server {how_it_ended(code)}; its log ends with:\n"
                f"{self.log()}")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT (a clean shutdown), then the exit code; SIGKILL if it does not exit in time."""
        if self.server.poll() is None:
            os.kill(self.server.pid, signal.SIGINT)
            deadline = time.monotonic() + timeout
            while self.server.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        code = self.server.poll()
        if code is None:
            os.kill(self.server.pid, signal.SIGKILL)
            raise AssertionError(f"the SequenceManager server did not exit within {timeout:g} s "
                                 f"of SIGINT; its log ends with:\n{self.log()}")
        return code


@contextlib.contextmanager
def sequence_manager(redis_url: str, session: str, instance: str = "stress",
                     **properties: object) -> Iterator[Device]:
    """A SequenceManager server (device ``tango_groups/sequence_manager/<instance>``) registered in
    a private Tango database; stopped (SIGKILL if need be) at exit."""
    props = {"RedisURL": redis_url, "Session": session, **properties}
    with TangoDatabaseServer() as database:
        config = sequence_manager_config(instance, 1, props)
        load_config(config, database.tango_host)
        server = DeviceServer(instance, database.tango_host)
        saved = os.environ.get("PYTHONFAULTHANDLER")
        os.environ["PYTHONFAULTHANDLER"] = "1"  # the server inherits it: stacks on a crash
        try:
            server.start()
        finally:
            if saved is None:
                del os.environ["PYTHONFAULTHANDLER"]
            else:
                os.environ["PYTHONFAULTHANDLER"] = saved
        try:
            trl = f"tango://{database.tango_host}/{server.devices[0]}"
            proxy = tango.DeviceProxy(trl)
            proxy.set_timeout_millis(CLIENT_TIMEOUT_MS)
            yield Device(server, trl, proxy)
        finally:
            server.stop(timeout=5)


# -- CPU load -----------------------------------------------------------------------------------


@contextlib.contextmanager
def cpu_load(processes: int | None = None) -> Iterator[list[subprocess.Popen]]:
    """``processes`` busy loops (default: one per core) until the block exits."""
    count = processes if processes is not None else os.cpu_count() or 1
    burners: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            burners.append(subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                            stdin=subprocess.DEVNULL))
        yield burners
    finally:
        for burner in burners:
            burner.kill()
        for burner in burners:
            burner.wait()


# -- client processes ---------------------------------------------------------------------------


class Workers:
    """Client processes that each put one result (a picklable dict) on a shared queue.

    ``start(target, *args)`` runs ``target(*args, stop, results, key)`` in a spawned process:
    it loops until ``stop`` is set, then puts ``(key, result)``. ``collect()`` sets ``stop`` and
    gathers one result per process (a process that dies or does not report in time is an error
    naming its exit code). At exit, processes still alive are killed.
    """

    def __init__(self) -> None:
        self.stop = SPAWN.Event()
        self.results: Any = SPAWN.Queue()
        self.processes: dict[str, Any] = {}
        self.received: dict[str, dict[str, Any]] = {}

    def start(self, key: str, target: Callable[..., None], *args: Any) -> None:
        process = SPAWN.Process(target=target, args=(*args, self.stop, self.results, key),
                                name=key, daemon=True)
        process.start()
        self.processes[key] = process

    def receive(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for one message (kept in ``received``); False if none came."""
        try:
            key, result = self.results.get(timeout=timeout)
        except queue.Empty:
            return False
        self.received[key] = result
        return True

    def wait_for(self, keys: list[str], timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """The messages of ``keys``; a process that dies or is silent until ``timeout`` fails."""
        deadline = time.monotonic() + timeout
        while missing := [key for key in keys if key not in self.received]:
            if self.receive(0.2):
                continue
            owners = {key: self.processes[key.partition(":")[0]] for key in missing}
            if time.monotonic() > deadline or all(p.exitcode is not None
                                                  for p in owners.values()):
                while self.receive(0.5):  # a dead process's message may still be in the pipe
                    pass
                lost = {key: p.exitcode for key, p in owners.items() if key not in self.received}
                if lost:
                    raise AssertionError("client processes gave no result: " + ", ".join(
                        f"{key} ({'still running' if code is None else how_it_ended(code)})"
                        for key, code in lost.items()))
        return {key: self.received[key] for key in keys}

    def collect(self, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """Set ``stop`` and return every process's result (by key)."""
        self.stop.set()
        collected = self.wait_for(list(self.processes), timeout)
        for process in self.processes.values():
            process.join(10)
        return collected

    def close(self) -> None:
        self.stop.set()
        for process in self.processes.values():
            if process.is_alive():
                process.kill()
            process.join(10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def summarised(problems: list[str], shown: int = 3) -> list[str]:
    """The first ``shown`` problems, then how many more there are."""
    more = [f"... and {len(problems) - shown} more like them"] if len(problems) > shown else []
    return problems[:shown] + more


def reason(error: tango.DevFailed) -> str:
    return error.args[0].reason


def client(trl: str) -> tango.DeviceProxy:
    proxy = tango.DeviceProxy(trl)
    proxy.set_timeout_millis(CLIENT_TIMEOUT_MS)
    return proxy


def plain(value: object) -> object:
    """An attribute value as JSON-like Python (lists, ints, floats, str)."""
    if isinstance(value, numpy.ndarray):
        return value.tolist()
    if isinstance(value, tango.DevState):
        return str(value)
    if isinstance(value, numpy.generic):
        return value.item()
    if isinstance(value, enum.Enum):  # DevEnum values: a class made by PyTango, not picklable
        return value.value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def read_everything(trl: str, hot: bool, stop: Any, results: Any, key: str) -> None:
    """Worker: read the device's attributes until ``stop``, the attribute list asked again each
    round (so the channel attributes of each sequence are read too).

    Each round reads every attribute at once (``read_attributes``), then one by one; with ``hot``
    it reads only what commands push most (the channel attributes, ScanNumbers, ScanNames), one
    by one, ten times a round. Result: ``{"reads": n, "errors": {reason: count}, "examples":
    {reason: description}}``.
    """
    proxy = client(trl)
    reads, errors, examples = 0, Counter(), {}

    def failed(error: tango.DevErrorList | tango.DevFailed) -> None:
        first = error.args[0] if isinstance(error, tango.DevFailed) else error[0]
        errors[first.reason] += 1
        examples.setdefault(first.reason, first.desc.strip()[:300])

    while not stop.is_set():
        try:
            names = list(proxy.get_attribute_list())
        except tango.DevFailed as error:
            failed(error)
            continue
        if hot:
            names = [n for n in names if n not in STATIC_ATTRIBUTES] + ["ScanNumbers",
                                                                        "ScanNames"]
            names *= 10
        else:
            try:
                for attr in proxy.read_attributes(names):
                    if attr.has_failed:
                        failed(attr.get_err_stack())
                    else:
                        reads += 1
            except tango.DevFailed as error:
                failed(error)
        for name in names:
            if stop.is_set():
                break
            try:
                proxy.read_attribute(name)
                reads += 1
            except tango.DevFailed as error:
                failed(error)
    results.put((key, {"reads": reads, "errors": dict(errors), "examples": examples}))


def list_attributes(trl: str, stop: Any, results: Any, key: str) -> None:
    """Worker: what a GUI does when it connects, in a loop until ``stop``: the attribute list,
    then the configuration of every channel attribute in it. Result as ``read_everything``'s."""
    proxy = client(trl)
    reads, errors, examples = 0, Counter(), {}
    while not stop.is_set():
        try:
            names = [n for n in proxy.get_attribute_list() if n not in STATIC_ATTRIBUTES]
            reads += 1
            for name in names:
                proxy.get_attribute_config(name)
                reads += 1
        except tango.DevFailed as error:
            first = error.args[0]
            errors[first.reason] += 1
            examples.setdefault(first.reason, first.desc.strip()[:300])
    results.put((key, {"reads": reads, "errors": dict(errors), "examples": examples}))


STATIC_ATTRIBUTES = ("State", "Status", *ATTRIBUTES)


def record_events(trl: str, names: list[str], until: list[tuple[str, object]],
                  follow_channels: bool, stop: Any, results: Any, key: str) -> None:
    """Worker: subscribe to the change events of ``names`` and record them, in order.

    With ``follow_channels``, the channel attributes of each new sequence are subscribed as they
    appear (every 0.2 s the attribute list is read again; data-ready events too). Puts
    ``("<key>:ready", {})`` once every initial event of ``names`` is in. Stops when ``stop`` is set
    and the events after the initial ones have carried the ``until`` values, ``(attribute,
    value)`` pairs seen in that order (waiting at most 15 s after ``stop``). Result:
    ``{"events": [[attr, value]...], "errors": [[attr, reason]...], "until_seen": bool,
    "subscribe_errors": {reason: count}}``.
    """
    proxy = client(trl)
    lock = threading.Condition()
    events: list[list[object]] = []
    errors: list[list[str]] = []
    initial: set[str] = set()
    wanted = [(name.lower(), value) for name, value in until]
    subscribe_errors: Counter = Counter()

    def callback(event: tango.EventData) -> None:
        name = event.attr_name.rsplit("/", 1)[-1].partition("#")[0].lower()
        with lock:
            if event.err:
                errors.append([name, event.errors[0].reason])
            elif event.event == "data_ready":
                events.append([name + "#data_ready", event.ctr])
            else:
                value = plain(event_value(event.attr_value))
                if wanted and name in initial and (name, value) == wanted[0]:
                    wanted.pop(0)
                initial.add(name)
                events.append([name, value])
            lock.notify_all()

    subscriptions: dict[str, list[int]] = {}

    def subscribe(name: str, *kinds: tango.EventType) -> None:
        try:
            subscriptions[name] = [proxy.subscribe_event(name, kind, callback) for kind in kinds]
        except tango.DevFailed as error:
            subscribe_errors[reason(error)] += 1

    for name in names:
        subscribe(name, tango.EventType.CHANGE_EVENT)
    with lock:
        if not lock.wait_for(lambda: {n.lower() for n in names} <= initial, timeout=30):
            results.put((key, {"failed": f"initial events missing: got {sorted(initial)}"}))
            return
    results.put((f"{key}:ready", {}))
    known = {name.lower() for name in names}
    while not stop.wait(0.2):
        if not follow_channels:
            continue
        try:
            listed = {n for n in proxy.get_attribute_list()
                      if n not in STATIC_ATTRIBUTES and n.lower() not in known}
        except tango.DevFailed as error:
            subscribe_errors[reason(error)] += 1
            continue
        for name in sorted(listed):
            known.add(name.lower())
            subscribe(name, tango.EventType.CHANGE_EVENT, tango.EventType.DATA_READY_EVENT)
    with lock:
        lock.wait_for(lambda: not wanted, timeout=15)
        result = {"events": list(events), "errors": list(errors), "until_seen": not wanted,
                  "subscribe_errors": dict(subscribe_errors)}
    for ids in subscriptions.values():
        for event_id in ids:
            with contextlib.suppress(tango.DevFailed):
                proxy.unsubscribe_event(event_id)
    results.put((key, result))


def wait_ready(workers: Workers, keys: list[str], timeout: float = 60.0) -> None:
    """Wait for the ``<key>:ready`` messages of the ``record_events`` workers ``keys``."""
    try:
        workers.wait_for([f"{key}:ready" for key in keys], timeout)
    except AssertionError:
        failed = {key: workers.received[key]["failed"] for key in keys
                  if "failed" in workers.received.get(key, {})}
        if failed:
            raise AssertionError(f"subscribers failed: {failed}") from None
        raise


# -- the load test's client ---------------------------------------------------------------------


class AddWhenAllocated(DataWriter):
    """A writer that calls ``on_number(n)`` right after allocating scan number ``n`` (Bliss's
    HINCRBY) and before creating the scan's node: a client adding ``n`` meanwhile sees a number
    that is allocated but not registered yet."""

    def __init__(self, client: redis.Redis, on_number: Callable[[int], None]) -> None:
        super().__init__(client)
        self.on_number = on_number

    def next_scan_number(self, parent: str, shadow: bool = False) -> int:
        number = super().next_scan_number(parent, shadow)
        self.on_number(number)
        return number


def load_client(index: int, trl: str, redis_url: str, session_name: str, shared: list[list],
                stop: Any, results: Any, key: str) -> None:
    """Worker of the load test: until ``stop``, cycles of

    * a scan of its own (``loopscan``), added by number (odd cycles) or db_name (even ones);
    * one to three points on its channel ``c<index>`` and one on ``shared``, values unique to the
      client (``index * 1e6 + n``);
    * a read of ``c<index>`` (must be exactly the points this client emitted: nobody else writes
      it) and of ``shared`` (must hold them in order);
    * an attempt at one of the ``shared`` scans (``[number, db_name]``, made before the clients
      started; several clients race for each, by number or by db_name);
    * every third cycle, a scan whose number the client adds between its allocation and its
      node's creation (``AddWhenAllocated``): the device must answer ``pending:<number>`` and
      reference the scan when it starts.

    Result: ``{"calls": [...], "problems": [...]}``; each call is a dict ``command``, ``arg``,
    ``kind`` (own, shared, allocated, emit), ``scan`` (db_name), ``channel``, ``values``,
    ``result`` or ``reason`` + ``desc``, in call order.
    """
    proxy = client(trl)
    session = Session(session_name, redis_url=redis_url)
    diode = session.config.get("diode")
    calls: list[dict[str, Any]] = []
    problems: list[str] = []
    own, own_points, shared_points = f"c{index}", [], []
    serial = itertools.count()

    def call(command: str, *args: Any, **record: Any) -> dict[str, Any]:
        entry = {"command": command, **record}
        try:
            entry["result"] = plain(proxy.command_inout(command, *args))
        except tango.DevFailed as error:
            entry["reason"], entry["desc"] = reason(error), error.args[0].desc.strip()[:300]
        calls.append(entry)
        return entry

    def emit(channel: str, count: int) -> None:
        values = [index * 1e6 + next(serial) for _ in range(count)]
        entry = call("EmitChannel", (values, [channel]), kind="emit", channel=channel,
                     values=values)
        if "result" in entry:
            (own_points if channel == own else shared_points).extend(values)

    def read(channel: str) -> numpy.ndarray | None:
        try:
            return proxy.read_attribute(channel).value
        except tango.DevFailed as error:
            problems.append(f"read {channel}: {reason(error)}: {error.args[0].desc.strip()}")
            return None

    def add_allocated(number: int) -> None:
        entry = call("AddScan", str(number), kind="allocated", arg=str(number), number=number)
        if entry.get("result", f"pending:{number}") != f"pending:{number}":
            problems.append(f"AddScan({number}) of an allocated, unregistered number answered "
                            f"{entry['result']!r}, not 'pending:{number}'")

    allocating = Session(session_name, redis_url=redis_url, client=session.client)
    allocating.model.writer = AddWhenAllocated(session.client, add_allocated)
    cycle = 0
    while not stop.is_set():
        cycle += 1
        scan = loopscan(1, 0.0, diode, session=session)
        ref = str(scan.scan_number) if cycle % 2 else scan.db_name
        call("AddScan", ref, kind="own", arg=ref, scan=scan.db_name, number=scan.scan_number)
        emit(own, 1 + cycle % 3)
        emit("shared", 1)
        mine = read(own)
        if mine is not None and list(mine) != own_points:
            problems.append(f"read {own}: {len(mine)} points, not the {len(own_points)} emitted")
        everyone = read("shared")
        if everyone is not None:
            seen = [v for v in everyone if int(v) // 1_000_000 == index]
            if seen != shared_points:
                problems.append(f"read shared: this client's points {seen[:5]}... are not the "
                                f"{len(shared_points)} it emitted, in order")
        number, db_name = shared[(cycle * 5 + index) % len(shared)]
        ref = str(number) if (cycle + index) % 2 else db_name
        call("AddScan", ref, kind="shared", arg=ref, scan=db_name, number=number)
        if cycle % 3 == 0:
            scan = loopscan(1, 0.0, diode, session=allocating)
            for entry in reversed(calls):
                if entry["kind"] == "allocated":
                    entry["scan"] = scan.db_name
                    break
    session.close()
    results.put((key, {"calls": calls, "problems": problems}))
