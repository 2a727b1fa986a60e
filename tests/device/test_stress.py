"""Stress: the SequenceManager server must not crash, hang or fail reads under concurrent reads,
subscriptions and event pushes, on a machine whose every core is busy.

What this guards against (issue 6): in gevent green mode PyTango runs the device with
``SerialModel.NO_SYNC`` (no Tango monitor), so libtango packs an attribute's value for a client
read in an omniORB thread while a greenlet pushes a change event of the same attribute (which sets
a new value on the same ``Attribute`` and frees the old one), or while ``Start`` / ``Init``
remove the dynamic channel attributes being read (PyTango issue 172 shows the pattern). Seen:
the server killed by SIGSEGV ("Fatal Python error: Segmentation fault") or SIGABRT ("double free
or corruption"), reads failing with ``API_AttrValueNotSet``, reads hanging on an attribute lock
that is never released (the server then ignores SIGINT), ``Init`` failing with
``API_CommandTimedOut`` and leaving the device unconfigured.

With the device in synchronous mode (pushes and reads under the device monitor), a crash was
still seen: clients asking for the attribute list and configurations (what every GUI does when
it connects; libtango answers them outside the device monitor) while ``Start`` removed and added
the channel attributes. Channel attributes are now created once, when the server starts (the
``Channels`` property), and never added or removed.

The server runs the Tango way (its own database, ``SequenceManager <instance>``), so its exit
status is known. Reader processes read every attribute in a loop, others hammer the attributes
commands push most (the channel attributes, ScanNumbers, ScanNames), others ask for the attribute
list and the channel attributes' configurations; subscriber processes hold
change events on every attribute and follow each sequence's channel attributes; the test drives
commands that push events (Start with channels, AddScan by number, by db_name and pending,
EmitChannel, EmitChannelEncoded, End, Abort; Init in the second variant; in the third, only Start
and End, as fast as possible); one busy loop per core competes for the CPU. The server must never
die, every command and read must succeed, the subscribers must see the last sequence end, and
the server must stop cleanly on SIGINT.

Default: 8 s of driving per variant; ``--soak SECONDS`` for longer.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections import Counter

import numpy
import pytest
import tango
from stress_support import (
    STATIC_ATTRIBUTES,
    Device,
    Workers,
    cpu_load,
    how_it_ended,
    list_attributes,
    read_everything,
    record_events,
    sequence_manager,
    summarised,
    wait_ready,
)

from tango_groups.bliss1.keys import SCAN_COUNTER
from tango_groups.bliss1.node import get_node
from tango_groups.scanning.scan import Scan
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session

DURATION = 8.0  # seconds of driving per variant by default (--soak for more)
READERS = 2  # of every attribute
HOT_READERS = 2  # of the channel attributes, ScanNumbers and ScanNames
LISTERS = 2  # of the attribute list and the channel attributes' configurations
SUBSCRIBERS = 2
EMITS = 8  # EmitChannel calls of BLOCK points per sequence on the float channel
CHANNELS = ["ch_a", *(f'{{"name": "ch_{k}", "dtype": "int32"}}' for k in range(3)),
            '{"name": "spec", "dtype": "uint16", "shape": [3]}',
            '{"name": "img", "dtype": "uint16", "shape": [2, 2]}']
BLOCK = 200
REMOVED: set[str] = set()  # refusals a read may meet: none (no attribute is ever removed)


def npy(array: numpy.ndarray) -> bytes:
    buffer = io.BytesIO()
    numpy.save(buffer, array)
    return buffer.getvalue()


class CommandFailed(Exception):
    """A command of the driver failed while the server still runs."""


class Driver:
    """Runs commands on the device, each one checked. A dead server fails the test at once with
    its log; other failures are recorded (``failures``) and the next sequence starts clean."""

    def __init__(self, device: Device, session: Session, endings: tuple[str, ...]) -> None:
        self.device = device
        self.proxy = device.proxy
        self.session = session
        self.endings = endings
        self.diode = session.config.get("diode")
        self.calls: Counter = Counter()
        self.sequences = 0
        self.failures: list[str] = []

    def call(self, name: str, *args: object) -> object:
        """Command ``name`` with ``args``; without arguments, an attribute unless ``name`` is one
        of the commands that take none."""
        try:
            if args or name in ("End", "Abort", "Init", "State", "Status"):
                result = self.proxy.command_inout(name, *args)
            else:
                result = self.proxy.read_attribute(name).value
        except tango.DevFailed as error:
            death = self.device.death()
            if death:
                pytest.fail(f"{name} failed because {death}\n(after {self.sequences} sequences, "
                            f"{sum(self.calls.values())} commands)", pytrace=False)
            first = error.args[0]
            self.failures.append(f"{name}: {first.reason}: {first.desc.strip().splitlines()[0]}")
            raise CommandFailed(name) from error
        self.calls[name] += 1
        return result

    def check(self, condition: bool, what: str) -> None:
        if not condition:
            self.failures.append(what)
            raise CommandFailed(what)

    def scan(self) -> Scan:
        return loopscan(2, 0.0, self.diode, session=self.session)

    def sequence(self, index: int) -> None:
        """One sequence (``_sequence``); after a failure, Abort whatever may still run."""
        try:
            self._sequence(index)
        except CommandFailed:
            with contextlib.suppress(CommandFailed):
                if self.call("State") == tango.DevState.RUNNING:
                    self.call("Abort")

    def _sequence(self, index: int) -> None:
        """Four channels: scalar float64, scalar int32 whose name changes from one sequence to
        the next, uint16 points of shape [3] or [2, 2] (image attributes), all declared (their
        attributes exist from the start: see ``CHANNELS``), and one in Redis only; scans added
        by number, by db_name and pending (referenced by the device's watcher, not by a
        command), blocks of points, then the ending."""
        names = ["ch_a", f"ch_{index % 3}", "img" if index % 2 else "spec"]
        shape = [2, 2] if index % 2 else [3]
        self.call("Start", json.dumps({"title": f"stress {index}", "channels": [
            *names, {"name": "undeclared", "dtype": "int16"}]}))
        self.sequences += 1
        if self.endings == ("Restart",):  # Start and End only, at full speed
            self.check(self.call("End") == "DONE", "End")
            return
        done = self.scan()
        self.check(self.call("AddScan", str(done.scan_number)) == done.db_name, "AddScan number")
        other = self.scan()
        self.check(self.call("AddScan", other.db_name) == other.db_name, "AddScan db_name")
        last = int(self.session.client.hget(self.session.scan_saving_db_name, SCAN_COUNTER))
        self.check(self.call("AddScan", str(last + 1)) == f"pending:{last + 1}", "AddScan pending")
        for k in range(EMITS):
            points = numpy.arange(BLOCK, dtype=float) + k
            self.check(self.call("EmitChannel", (points, [names[0]])) == BLOCK, "EmitChannel")
            if k % 2:
                self.check(self.call("EmitChannel", ([float(k)], [names[1]])) == 1,
                           "EmitChannel int32")
                block = numpy.full((2, *shape), k, dtype=numpy.uint16)
                self.check(self.call("EmitChannelEncoded", (names[2], npy(block))) == 2,
                           "EmitChannelEncoded")
            if k == EMITS // 2:
                pending = self.scan()  # takes number last + 1: the watcher references it
                self.check(pending.scan_number == last + 1, "pending scan number")
        self.check(len(self.call(names[0])) == EMITS * BLOCK, f"read {names[0]}")
        ending = self.endings[index % len(self.endings)]
        if ending == "Init":
            self.call("Init")  # ends the sequence as KILLED
            self.check(self.call("State") == tango.DevState.ON, "State ON after Init")
        elif ending == "Abort":
            self.check(self.call("Abort") == "USER_ABORTED", "Abort")
        else:
            self.check(self.call("End") == "DONE", "End")

    def last_sequence(self) -> str | None:
        """A last short sequence, whose end the subscribers wait for; its db_name."""
        try:
            db_name = self.call("Start", '{"title": "last", "channels": ["ch_a"]}')
            self.call("EmitChannel", ([1.0], ["ch_a"]))
            self.check(self.call("End") == "DONE", "last End")
        except CommandFailed:
            return None
        return str(db_name)


@pytest.mark.slow
@pytest.mark.parametrize("endings", [("End", "End", "Abort"), ("End", "Init"), ("Restart",)],
                         ids=["end-abort", "init", "restart"])
def test_server_survives_reads_subscriptions_and_pushes_under_cpu_load(
        redis_url: str, session_name: str, soak: float, endings: tuple[str, ...]) -> None:
    duration = soak or DURATION
    session = Session(session_name, redis_url=redis_url)
    with (sequence_manager(redis_url, session_name, EndTimeout=2.0, HealthCheckPeriod=0.2,
                           Channels=CHANNELS) as device, Workers() as workers):
        for k in range(SUBSCRIBERS):
            workers.start(f"sub{k}", record_events, device.trl, list(STATIC_ATTRIBUTES),
                          [("Title", "last"), ("SequenceState", 4)], True)
        wait_ready(workers, [f"sub{k}" for k in range(SUBSCRIBERS)])
        for k in range(READERS):
            workers.start(f"reader{k}", read_everything, device.trl, False)
        for k in range(HOT_READERS):
            workers.start(f"hot{k}", read_everything, device.trl, True)
        for k in range(LISTERS):
            workers.start(f"lister{k}", list_attributes, device.trl)
        driver = Driver(device, session, endings)
        with cpu_load():
            deadline = time.monotonic() + duration
            index = 0
            while time.monotonic() < deadline:
                driver.sequence(index)
                index += 1
            last = driver.last_sequence()
            results = workers.collect()
        death = device.death()
        assert death is None, f"{death}\n(after {driver.sequences} sequences)"
        problems = summarised([f"command failed: {failure}" for failure in driver.failures])
        if driver.sequences < 3:
            problems.append(f"only {driver.sequences} sequences in {duration:g} s")
        if (state := device.proxy.State()) != tango.DevState.ON:
            problems.append(f"the device is {state} at the end")
        if last is None or get_node(last, connection=session.client).info["state"] != "DONE":
            problems.append(f"the last sequence {last} did not end DONE")
        problems += reader_problems(results) + subscriber_problems(results, last)
        try:
            code = device.stop()
        except AssertionError as error:  # does not exit: hung
            problems.append(str(error))
        else:
            if code != 0:
                problems.append(f"the server {how_it_ended(code)} on SIGINT; its log ends "
                                f"with:\n{device.log()}")
    session.close()
    print(f"{driver.sequences} sequences, {dict(driver.calls)};",
          {key: result.get("reads", len(result.get("events", ())))
           for key, result in sorted(results.items())})
    assert not problems, (f"{len(problems)} problems after {driver.sequences} sequences "
                          f"({sum(driver.calls.values())} commands):\n" + "\n".join(problems))


def reader_problems(results: dict[str, dict]) -> list[str]:
    problems = []
    for key, reader in sorted(results.items()):
        if key.startswith(("reader", "hot", "lister")):
            unexpected = {r: n for r, n in reader["errors"].items() if r not in REMOVED}
            if unexpected:
                problems.append(f"{key}: reads failed {unexpected} ({reader['reads']} succeeded);"
                                f" e.g. {[reader['examples'][r] for r in unexpected]}")
            elif not reader["reads"]:
                problems.append(f"{key} read nothing")
    return problems


def subscriber_problems(results: dict[str, dict], last: str | None) -> list[str]:
    problems = []
    for key, events in sorted(results.items()):
        if key.startswith("sub"):
            # following a channel attribute that the next Start removes: its subscription's
            # first read may find it gone (an error event), like a reader's read
            static = {name.lower() for name in STATIC_ATTRIBUTES}
            errors = [[name, reason] for name, reason in events["errors"]
                      if name in static or reason not in REMOVED]
            if errors:
                problems.append(f"{key}: error events {errors[:10]}")
            by_attr: dict[str, list[object]] = {}
            for name, value in events["events"]:
                by_attr.setdefault(str(name), []).append(value)
            if not events["until_seen"] or by_attr["sequencename"][-1] != last:
                problems.append(f"{key} did not see the last sequence end (last events: "
                                f"SequenceName {by_attr['sequencename'][-1]!r}, SequenceState "
                                f"{by_attr['sequencestate'][-1]!r})")
    return problems
