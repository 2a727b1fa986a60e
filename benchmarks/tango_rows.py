"""Section 9 of the table: the SequenceManager Tango device against a plain pytango one.

Both device servers run in the same run, each in its own forked process
(``benchmarks.tango_devices.start_device``): the anchor ``AnchorDevice``, and ours,
``SequenceManager``, on the benchmark's private Redis (``env.server.url``), in a session of its
own, with sequences declaring the custom channel ``sum``.

The client is this (unpatched, synchronous) process. Rows: command round trip (``AddScan`` of a
pre-created, prepared scan by db_name vs the void command; each device's ``State``),
``EmitChannel`` of 1 / 1e3 / 1e5 doubles vs the ``DevVarDoubleArray`` command of the same size,
and command -> change event in the client's callback (``EmitChannel`` of one point -> ``sum`` and
``AddScan`` -> ``ScanCount``, vs the anchor's push command). Every device started here is stopped
before returning, also on errors.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy
import tango

from tango_groups.devices.sequence_manager import SequenceManager

from .common import (
    BenchEnv,
    Row,
    Samples,
    median_of_medians,
    percentile,
    perf,
    redis_commands,
    scan_parent,
    timed,
)
from .fill import fill_scans
from .tango_devices import CHANNEL, AnchorDevice, Events, Sequences, latencies, start_device

__all__ = ["tango_rows"]

SECTION = ("9. Tango device (SequenceManager) vs a plain pytango device "
           "(anchor = AnchorDevice, same run)")
SESSION = "bench_tango"
SIZES = (1, 1000, 100_000)

# calls per repeat, by profile name: round trips, EmitChannel per size, command -> event
CALLS: dict[str, dict[str, Any]] = {
    "quick": {"round_trip": 200, "emit": {1: 200, 1000: 100, 100_000: 5}, "event": 150},
    "default": {"round_trip": 300, "emit": {1: 300, 1000: 200, 100_000: 10}, "event": 300},
}
WARMUP = 20


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
        ours, _ = start_device(stack, SequenceManager, {
            "RedisURL": env.server.url, "Session": SESSION, "EndTimeout": 1.0,
            "HealthCheckPeriod": 2.0})
        anchor, _ = start_device(stack, AnchorDevice)
        env.log(f"  two device servers up in {perf() - started:.1f} s")
        sequences = Sequences(ours)
        stack.callback(sequences.end)  # runs before the servers stop (LIFO)

        # scans to add: each can be added once, so write them beforehand (prepared, running)
        t0 = perf()
        needed = reps * (calls["round_trip"] + calls["event"] + WARMUP) + WARMUP
        scans = fill_scans(env, scan_parent(env, SESSION), needed, ended=False)
        env.log(f"  {needed} prepared scans written in {perf() - t0:.1f} s")
        todo = iter(db_name for db_name, _ in scans)

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
                         anchor: tango.DeviceProxy, sequences: Sequences,
                         add_scan: Callable[[], None], calls: dict[str, Any], reps: int) -> None:
    """AddScan vs void, and each device's built-in State (a fresh sequence per repeat: what
    AddScan pushes may grow with the scans added so far)."""
    n = calls["round_trip"]
    void = partial(anchor.command_inout, "Void")
    sequences.start()
    timed(add_scan, WARMUP)
    timed(void, WARMUP)
    for rep in range(reps):
        sequences.start()
        with redis_commands(env.client) as commands:  # what the device asked Redis for
            res.round_trip[0].append(timed(add_scan, n))
        res.add_scan_commands = commands.per_call(n)
        res.round_trip[1].append(timed(void, n))
        res.state[0].append(timed(partial(ours.command_inout, "State"), n // 2))
        res.state[1].append(timed(partial(anchor.command_inout, "State"), n // 2))


def _measure_emit(res: _Results, ours: tango.DeviceProxy, anchor: tango.DeviceProxy,
                  sequences: Sequences, calls: dict[str, Any], reps: int) -> None:
    """EmitChannel vs DevVarDoubleArray by size (a fresh sequence per repeat: what the channel
    attribute and its events carry may grow with the points so far)."""
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
            o.append(timed(emit, n))
            a.append(timed(doubles, n))
        res.emit[size] = (o, a)
        res.growth[size] = (float(numpy.median([s[0] for s in o])),
                            float(numpy.median([s[-1] for s in o])))


def _measure_events(res: _Results, stack: contextlib.ExitStack, ours: tango.DeviceProxy,
                    anchor: tango.DeviceProxy, sequences: Sequences,
                    add_scan: Callable[[], None], calls: dict[str, Any], reps: int) -> None:
    """command -> change event in this process's callback: anchor Push, ours EmitChannel -> sum
    (if the device lets a client subscribe to it) and AddScan -> ScanCount."""
    n = calls["event"]
    one = numpy.array([1.5])
    push = partial(anchor.command_inout, "Push", one)
    emit = partial(ours.command_inout, "EmitChannel", (one, [CHANNEL]))
    anchor_events = Events(anchor, "values")
    stack.callback(anchor_events.close)
    latencies(push, anchor_events, WARMUP)
    for _ in range(reps):
        # Start pushes every attribute: subscribe after it
        for attr, call, samples in ((CHANNEL, emit, res.event_sum),
                                    ("ScanCount", add_scan, res.event_count)):
            if attr == CHANNEL and res.event_sum_error:
                continue
            sequences.start()
            try:
                events = Events(ours, attr)
            except tango.DevFailed as error:
                if attr != CHANNEL:
                    raise
                res.event_sum_error = f"{error.args[0].reason}: {error.args[0].desc}"
                continue
            try:
                latencies(call, events, WARMUP)
                samples.append(latencies(call, events, n))
            finally:
                events.close()
        res.event_anchor.append(latencies(push, anchor_events, n))


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
        Row("command round trip: AddScan of a prepared scan vs void command, p50",
            percentile(rt_ours, 50) * ms, percentile(rt_anchor, 50) * ms, "ms", section=s,
            doc="void 490-536 µs; AddScan est. >= 0.65 ms", id="tango.add_scan.p50",
            note=f"AddScan by db_name of a prepared scan written beforehand; a fresh sequence per "
                 f"repeat of {calls['round_trip']} AddScans (p50 of the first 20 calls of a repeat "
                 f"{percentile([r[:20] for r in rt_ours], 50) * ms:.3g} ms, of the last 20 "
                 f"{percentile([r[-20:] for r in rt_ours], 50) * ms:.3g} ms); {reps} repeats "
                 f"pooled. Redis commands per AddScan: {res.add_scan_commands or '?'}"),
        Row("command round trip: AddScan of a prepared scan vs void command, p99",
            percentile(rt_ours, 99) * ms, percentile(rt_anchor, 99) * ms, "ms", section=s,
            doc="void 0.8-2.1 ms"),
    ]
    docs = {1: "(void 490-536 µs)", 1000: "0.67-0.74 ms", 100_000: "2.8-3.3 ms"}
    for size in SIZES:
        o, a = res.emit[size]
        first, last = res.growth[size]
        short = f"{size:.0e}".replace("e+0", "e") if size > 1 else "1"
        label = "1 point" if size == 1 else f"{short} doubles"
        rows.append(Row(
            f"EmitChannel {label} vs DevVarDoubleArray command of the same size",
            median_of_medians(o) * ms, median_of_medians(a) * ms, "ms", section=s,
            doc=docs[size], id=f"tango.emit.{short}",
            note=f"EmitChannel of {label}: XADD to Redis + change event of 'sum'; fresh sequence "
                 f"per repeat of "
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
                doc="0.78-0.93 ms", id="tango.event.emit.p50",
                note=f"anchor: Push(1 double) -> change event of its spectrum; {how}"),
            Row(f"{what}: EmitChannel 1 point -> 'sum' vs Push, p99",
                percentile(res.event_sum, 99) * ms, anchor_p99, "ms", section=s, doc="1.9-4 ms"),
        ]
    else:
        rows.append(Row(f"{what}: EmitChannel 1 point -> 'sum' vs Push", None, anchor_p50, "ms",
                        section=s, doc="0.78-0.93 ms", id="tango.event.emit.p50",
                        note=f"NOT MEASURED: a client cannot subscribe to the change events of "
                             f"the channel attribute ({res.event_sum_error[:150]}); anchor "
                             f"column = Push(1 double) -> its change event, p50"))
    rows += [
        Row(f"{what}: AddScan -> 'ScanCount' vs Push, p50",
            percentile(res.event_count, 50) * ms, anchor_p50, "ms", section=s,
            doc="0.78-0.93 ms", id="tango.event.scancount.p50",
            note=f"AddScan of a prepared scan by db_name; {how}"),
        Row(f"{what}: AddScan -> 'ScanCount' vs Push, p99",
            percentile(res.event_count, 99) * ms, anchor_p99, "ms", section=s, doc="1.9-4 ms"),
    ]
    return rows
