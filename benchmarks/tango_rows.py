"""Section 9 of ``benchmarks/run.py``: the SequenceManager Tango device against a plain pytango one.

Both device servers run in the same run, each in its own forked process started with
``DeviceTestContext(..., process=True)``:

* the anchor, ``AnchorDevice``: a plain ``tango.server.Device`` (synchronous, as ours) with a void
  command, a ``DevVarDoubleArray`` command and a command pushing a change event of a spectrum
  attribute (``change_event_implemented=True, change_event_detect=False``), i.e. the devices the
  "Tango" table of the performance anchors (``spec/performance_anchors.md`` of the shared
  design notes) was measured with;
* ours, ``SequenceManager`` on the benchmark's private Redis (``env.server.url``), in a session of
  its own, with a sequence declaring one custom channel ``sum``.

The client is this (unpatched, synchronous) process. Rows: command round trip (``AddScan`` of a
pre-created, prepared scan by db_name vs the void command), ``EmitChannel`` of 1 / 1e3 / 1e5 doubles
vs the ``DevVarDoubleArray`` command of the same size, and command -> change event in the client's
callback (``EmitChannel`` of one point -> ``sum`` vs the anchor's push command). Every device
context started here is stopped before returning, also on errors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import queue
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy
import tango
from run import (
    BenchEnv,
    Row,
    median_of_medians,
    percentile,
    perf,
    scan_info,
    scan_parent,
)
from tango import AttrWriteType, EventType
from tango.server import Device, attribute, command
from tango.test_context import DeviceTestContext

from tango_groups.devices.sequence_manager import SequenceManager

__all__ = ["AnchorDevice", "tango_rows"]

SECTION = ("9. Tango device (SequenceManager) vs a plain pytango device "
           "(anchor = AnchorDevice, same run)")
SESSION = "bench_tango"
CHANNEL = "sum"
EVENT_TIMEOUT = 5.0  # seconds a change event may take before the row fails
SIZES = (1, 1000, 100_000)

# calls per repeat, by profile name: round trips, EmitChannel per size, command -> event
CALLS: dict[str, dict[str, Any]] = {
    "quick": {"round_trip": 200, "emit": {1: 200, 1000: 100, 100_000: 5}, "event": 150},
    "default": {"round_trip": 300, "emit": {1: 300, 1000: 200, 100_000: 10}, "event": 300},
}
WARMUP = 20


class AnchorDevice(Device):
    """The anchor: a plain pytango device doing nothing but what the commands carry."""


    def init_device(self) -> None:
        super().init_device()
        self._values = numpy.zeros(1)

    @attribute(dtype=(float,), max_dim_x=10_000_000, access=AttrWriteType.READ,
               change_event_implemented=True, change_event_detect=False)
    def values(self) -> numpy.ndarray:
        return self._values

    @command
    def Void(self) -> None:
        pass

    @command(dtype_in="DevVarDoubleArray", dtype_out=int)
    def Doubles(self, values: numpy.ndarray) -> int:
        return len(values)

    @command(dtype_in="DevVarDoubleArray")
    def Push(self, values: numpy.ndarray) -> None:
        self._values = values
        self.push_change_event("values", values)


# -- helpers ------------------------------------------------------------------------------------
def _start_device(stack: contextlib.ExitStack, device_class: type[Device],
                  properties: dict[str, Any] | None = None) -> tango.DeviceProxy:
    """A device server in a forked, monkey-patched process; stopped when ``stack`` closes."""
    context = DeviceTestContext(device_class, properties=properties or {}, process=True,
                                      timeout=30, debug=0)
    proxy = context.__enter__()
    stack.callback(context.__exit__, None, None, None)
    proxy.set_timeout_millis(30_000)
    return proxy


def _timed(call: Callable[[], Any], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = perf()
        call()
        samples.append(perf() - t0)
    return samples


class _Events:
    """Change events of one attribute, each stamped with ``perf()`` in the client's callback."""

    def __init__(self, proxy: tango.DeviceProxy, attr: str) -> None:
        self.proxy, self.attr = proxy, attr
        self.queue: queue.Queue[tuple[float, Any]] = queue.Queue()
        self.id = proxy.subscribe_event(attr, EventType.CHANGE_EVENT, self._callback)
        self.next()  # the event every subscription starts with (the current value)
        self.drain()

    def _callback(self, event: tango.EventData) -> None:
        self.queue.put((perf(), event.errors if event.err else None))

    def next(self) -> float:
        try:
            stamp, errors = self.queue.get(timeout=EVENT_TIMEOUT)
        except queue.Empty:
            raise RuntimeError(f"no change event of {self.attr} within {EVENT_TIMEOUT} s") from None
        if errors:
            raise RuntimeError(f"error event on {self.attr}: {errors[0].desc}")
        return stamp

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    def close(self) -> None:
        self.proxy.unsubscribe_event(self.id)


def _latencies(command: Callable[[], Any], events: _Events, n: int) -> list[float]:
    """command -> its change event in our callback, one at a time (no sleeps: queue waits)."""
    samples = []
    for _ in range(n):
        t0 = perf()
        command()
        samples.append(events.next() - t0)
    return samples


class _Sequences:
    """Start/End sequences with the ``sum`` channel on our device."""

    def __init__(self, proxy: tango.DeviceProxy) -> None:
        self.proxy = proxy
        self.running = False

    def start(self) -> None:
        self.end()
        self.proxy.command_inout("Start", json.dumps({"title": "bench",
                                                      "channels": [{"name": CHANNEL}]}))
        self.running = True

    def end(self) -> None:
        if self.running:
            self.running = False
            self.proxy.command_inout("End")


# -- the rows -----------------------------------------------------------------------------------
Samples = list[list[float]]  # seconds, one list per repeat


@dataclasses.dataclass
class _Results:
    state: tuple[Samples, Samples] = ([], [])                 # (ours, anchor)
    round_trip: tuple[Samples, Samples] = ([], [])
    emit: dict[int, tuple[Samples, Samples]] = dataclasses.field(default_factory=dict)
    growth: dict[int, tuple[float, float]] = dataclasses.field(default_factory=dict)
    event_anchor: Samples = dataclasses.field(default_factory=list)
    event_sum: Samples = dataclasses.field(default_factory=list)
    event_sum_error: str = ""
    event_count: Samples = dataclasses.field(default_factory=list)
    add_scan_commands: str = ""  # Redis commands per AddScan (INFO commandstats)


def tango_rows(env: BenchEnv) -> list[Row]:
    """Section 9: both devices started, measured in turns, stopped (also on errors)."""
    env.fresh()
    calls = CALLS.get(env.profile.name, CALLS["default"])
    reps = env.profile.repeats
    started = perf()
    res = _Results()
    with contextlib.ExitStack() as stack:
        ours = _start_device(stack, SequenceManager, {
            "RedisURL": env.server.url, "Session": SESSION, "EndTimeout": 1.0,
            "HealthCheckPeriod": 2.0})
        anchor = _start_device(stack, AnchorDevice)
        env.log(f"  two device servers up in {perf() - started:.1f} s")
        sequences = _Sequences(ours)
        stack.callback(sequences.end)  # runs before the servers stop (LIFO)

        # scans to add: each can be added once, so pre-create (and prepare) them with our writer
        t0 = perf()
        parent = scan_parent(env, SESSION)
        needed = reps * (calls["round_trip"] + calls["event"] + WARMUP) + WARMUP
        scans = []
        for _ in range(needed):
            scan = env.writer.create_scan(parent, "bench", scan_info(SESSION, "bench"))
            scan.prepared({})
            scans.append(scan.db_name)
        env.log(f"  {needed} prepared scans written in {perf() - t0:.1f} s")
        todo = iter(scans)

        def add_scan() -> None:
            ours.command_inout("AddScan", next(todo))

        _measure_round_trips(res, env, ours, anchor, sequences, add_scan, calls, reps)
        env.log(f"  round trips done ({perf() - started:.1f} s)")
        _measure_emit(res, ours, anchor, sequences, calls, reps)
        env.log(f"  EmitChannel done ({perf() - started:.1f} s)")
        _measure_events(res, stack, ours, anchor, sequences, add_scan, calls, reps)
        env.log(f"  change events done ({perf() - started:.1f} s)")
    env.log(f"  devices stopped ({perf() - started:.1f} s)")
    return _rows(res, calls, reps)


def _measure_round_trips(res: _Results, env: BenchEnv, ours: tango.DeviceProxy,
                         anchor: tango.DeviceProxy, sequences: _Sequences,
                         add_scan: Callable[[], None], calls: dict[str, Any], reps: int) -> None:
    """AddScan vs void, and each device's built-in State (a fresh sequence per repeat: every
    AddScan pushes ScanNumbers/ScanNames with all the scans so far)."""
    n = calls["round_trip"]
    void = partial(anchor.command_inout, "Void")
    sequences.start()
    _timed(add_scan, WARMUP)
    _timed(void, WARMUP)
    for rep in range(reps):
        sequences.start()
        if rep == reps - 1:
            env.client.config_resetstat()
        res.round_trip[0].append(_timed(add_scan, n))
        if rep == reps - 1:  # what the device sent Redis meanwhile (health-check pings aside)
            stats = env.client.info("commandstats")
            res.add_scan_commands = ", ".join(
                f"{name.removeprefix('cmdstat_')} {value['calls'] / n:.3g}"
                for name, value in sorted(stats.items(), key=lambda kv: -kv[1]["calls"])
                # the measurement's own commands: Redis >= 7 names subcommands (config|resetstat)
                if name.removeprefix("cmdstat_").split("|")[0] not in ("ping", "config", "info"))
        res.round_trip[1].append(_timed(void, n))
        res.state[0].append(_timed(partial(ours.command_inout, "State"), n // 2))
        res.state[1].append(_timed(partial(anchor.command_inout, "State"), n // 2))


def _measure_emit(res: _Results, ours: tango.DeviceProxy, anchor: tango.DeviceProxy,
                  sequences: _Sequences, calls: dict[str, Any], reps: int) -> None:
    """EmitChannel vs DevVarDoubleArray by size (a fresh sequence per repeat: the channel
    attribute keeps, and each of its change events carries, every point so far)."""
    for size in SIZES:
        data = numpy.random.default_rng(0).random(size)
        n = calls["emit"][size]
        emit = partial(ours.command_inout, "EmitChannel", (data, [CHANNEL]))
        doubles = partial(anchor.command_inout, "Doubles", data)
        sequences.start()
        emit()  # warm-up
        doubles()
        o, a = [], []
        for _ in range(reps):
            sequences.start()
            o.append(_timed(emit, n))
            a.append(_timed(doubles, n))
        res.emit[size] = (o, a)
        res.growth[size] = (float(numpy.median([s[0] for s in o])),
                            float(numpy.median([s[-1] for s in o])))


def _measure_events(res: _Results, stack: contextlib.ExitStack, ours: tango.DeviceProxy,
                    anchor: tango.DeviceProxy, sequences: _Sequences,
                    add_scan: Callable[[], None], calls: dict[str, Any], reps: int) -> None:
    """command -> change event in this process's callback: anchor Push, ours EmitChannel -> sum
    (if the device lets a client subscribe to it) and AddScan -> ScanCount."""
    n = calls["event"]
    one = numpy.array([1.5])
    push = partial(anchor.command_inout, "Push", one)
    emit = partial(ours.command_inout, "EmitChannel", (one, [CHANNEL]))
    anchor_events = _Events(anchor, "values")
    stack.callback(anchor_events.close)
    _latencies(push, anchor_events, WARMUP)
    for _ in range(reps):
        # Start re-creates the channel attributes and pushes every attribute: subscribe after it
        for attr, call, samples in ((CHANNEL, emit, res.event_sum),
                                    ("ScanCount", add_scan, res.event_count)):
            if attr == CHANNEL and res.event_sum_error:
                continue
            sequences.start()
            try:
                events = _Events(ours, attr)
            except tango.DevFailed as error:
                if attr != CHANNEL:
                    raise
                res.event_sum_error = f"{error.args[0].reason}: {error.args[0].desc}"
                continue
            try:
                _latencies(call, events, WARMUP)
                samples.append(_latencies(call, events, n))
            finally:
                events.close()
        res.event_anchor.append(_latencies(push, anchor_events, n))


def _rows(res: _Results, calls: dict[str, Any], reps: int) -> list[Row]:
    s = SECTION
    ms = 1e3
    (rt_ours, rt_anchor), (state_ours, state_anchor) = res.round_trip, res.state
    rows = [
        Row("State command on each device (same work: baseline)",
            median_of_medians(state_ours) * ms, median_of_medians(state_anchor) * ms, "ms",
            section=s, doc="void 490-536 µs",
            note="the built-in State command of both servers: what each device class costs "
                 "before any code of ours runs"),
        Row("command round trip: AddScan (4 Redis round trips) vs void command, p50",
            percentile(rt_ours, 50) * ms, percentile(rt_anchor, 50) * ms, "ms", section=s,
            doc="void 490-536 µs; AddScan est. >= 0.65 ms",
            note=f"AddScan by db_name of a prepared scan written beforehand; a fresh sequence per "
                 f"repeat of {calls['round_trip']} AddScans (each pushes ScanNumbers/ScanNames "
                 f"with every scan so far; p50 of the first 20 calls of a repeat "
                 f"{percentile([r[:20] for r in rt_ours], 50) * ms:.3g} ms, of the last 20 "
                 f"{percentile([r[-20:] for r in rt_ours], 50) * ms:.3g} ms); {reps} repeats "
                 f"pooled. Redis commands per AddScan: {res.add_scan_commands or '?'}"),
        Row("command round trip: AddScan (4 Redis round trips) vs void command, p99",
            percentile(rt_ours, 99) * ms, percentile(rt_anchor, 99) * ms, "ms", section=s,
            doc="void 0.8-2.1 ms"),
    ]
    docs = {1: "(void 490-536 µs)", 1000: "0.67-0.74 ms", 100_000: "2.8-3.3 ms"}
    for size in SIZES:
        o, a = res.emit[size]
        first, last = res.growth[size]
        label = "1 point" if size == 1 else f"{size:.0e} doubles".replace("e+0", "e")
        rows.append(Row(
            f"EmitChannel {label} vs DevVarDoubleArray command of the same size",
            median_of_medians(o) * ms, median_of_medians(a) * ms, "ms", section=s,
            doc=docs[size],
            note=f"EmitChannel of {label}: XADD to Redis + change event of 'sum', which carries "
                 f"every point of the sequence so far; fresh sequence per repeat of "
                 f"{calls['emit'][size]} calls: 1st call {first * ms:.3g} ms, last "
                 f"{last * ms:.3g} ms (medians over repeats)"))
    anchor_p50, anchor_p99 = (percentile(res.event_anchor, q) * ms for q in (50, 99))
    what = "command -> change event in the client's callback"
    how = ("timed from before the command to the client's callback (queue waits, no sleeps); "
           f"fresh sequence and subscription per repeat of {calls['event']}")
    if res.event_sum:
        rows += [
            Row(f"{what}: EmitChannel 1 point -> 'sum' vs Push, p50",
                percentile(res.event_sum, 50) * ms, anchor_p50, "ms", section=s,
                doc="0.78-0.93 ms",
                note=f"anchor: Push(1 double) -> change event of its spectrum; {how}"),
            Row(f"{what}: EmitChannel 1 point -> 'sum' vs Push, p99",
                percentile(res.event_sum, 99) * ms, anchor_p99, "ms", section=s, doc="1.9-4 ms"),
        ]
    else:
        rows.append(Row(f"{what}: EmitChannel 1 point -> 'sum' vs Push", None, anchor_p50, "ms",
                        section=s, doc="0.78-0.93 ms",
                        note=f"NOT MEASURED: a client cannot subscribe to the change events of "
                             f"the channel attribute ({res.event_sum_error[:150]}); anchor "
                             f"column = Push(1 double) -> its change event, p50"))
    rows += [
        Row(f"{what}: AddScan -> 'ScanCount' vs Push, p50",
            percentile(res.event_count, 50) * ms, anchor_p50, "ms", section=s,
            doc="0.78-0.93 ms", note=f"AddScan pushes ScanNumbers, ScanNames and ScanCount; "
                                     f"{how}"),
        Row(f"{what}: AddScan -> 'ScanCount' vs Push, p99",
            percentile(res.event_count, 99) * ms, anchor_p99, "ms", section=s, doc="1.9-4 ms"),
    ]
    return rows
