"""Section 10 of the table: the SequenceManager device at production scale (issue 8).

A beamline's data Redis holds hundreds of thousands of keys and containers with thousands of
scans. One SequenceManager (own forked server, the benchmark's private Redis) is measured twice:

* **small**: its scan-saving container holds ``SMALL_SCANS`` finished scans (END and the TTLs our
  writer sets at END) and Redis holds nothing else;
* **large**: ``LARGE_SCANS`` finished scans in the same container and ``UNRELATED`` keys of
  nobody's scans (``benchmarks.fill``).

At each size: ``AddScan`` of a finished scan by db_name and by number (the newest scans of the
container, so that as many scans are newer than the one asked for at both sizes), each call
followed by the device's built-in ``State`` (the Tango floor of the same moment), and
``CreateGroup`` of the newest ``GROUP_SIZE`` finished scans by number. Rows: p50 against State at
each size, and the large size against the small one.

Then, in one sequence: ``AddScan`` of ``RSS_SCANS`` running scans, ``EmitChannel`` of one point
(a client subscribed to the channel's change events, as a GUI is) into the empty channel and into
the channel once it holds ``RSS_POINTS`` points, and the device's RSS growth over the sequence
against the raw size of what it must keep (8 bytes per point, a db_name and a number per scan).

Each measurement stops early once its time budget is spent (with at least 3 calls), so a slow
product keeps the run's time bounded; the notes give the calls actually made.
"""

from __future__ import annotations

import contextlib
import dataclasses
from functools import partial
from pathlib import Path
from typing import Any

import numpy
import tango

from tango_groups.bliss1 import lookup
from tango_groups.devices.sequence_manager import SequenceManager

from .common import (
    BenchEnv,
    Row,
    new_sequence,
    percentile,
    perf,
    redis_commands,
    scan_parent,
    timed,
)
from .fill import fill_scans, fill_unrelated
from .tango_devices import CHANNEL, Events, Sequences, start_device

__all__ = ["scale_rows"]

SECTION = "10. production scale through the device (SequenceManager; anchor column per row)"
SESSION = "bench_scale"
SMALL_SCANS, LARGE_SCANS, UNRELATED = 300, 3000, 200_000
GROUP_SIZE = 100
RSS_SCANS, RSS_POINTS, BLOCK = 10_000, 1_000_000, 100_000

# by profile name: AddScan calls per kind, size and repeat; repeats; CreateGroup calls per size;
# EmitChannel calls at each channel length; seconds one measurement may take (then it stops)
CALLS: dict[str, dict[str, Any]] = {
    "quick": {"adds": 20, "repeats": 2, "groups": 3, "emits": 50, "budget": 10.0},
    "default": {"adds": 50, "repeats": 5, "groups": 7, "emits": 200, "budget": 40.0},
}


@dataclasses.dataclass
class _Size:
    """What one size measured: seconds per call, pooled, and Redis commands per call."""

    keys: int = 0
    add: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # by "name"/"number"
    state: list[float] = dataclasses.field(default_factory=list)
    floor: list[float] = dataclasses.field(default_factory=list)  # AddScan's Redis work alone
    group: list[float] = dataclasses.field(default_factory=list)
    commands: dict[str, str] = dataclasses.field(default_factory=dict)  # add kinds, "group"
    sequences: dict[str, int] = dataclasses.field(default_factory=dict)  # by add kind


@dataclasses.dataclass
class _Memory:
    adds: list[float] = dataclasses.field(default_factory=list)  # every AddScan, in order
    first: list[float] = dataclasses.field(default_factory=list)  # EmitChannel, empty channel
    full: list[float] = dataclasses.field(default_factory=list)  # EmitChannel at RSS_POINTS
    events: int = 0  # change events of the channel the client received
    growth: float = 0.0  # bytes of RSS
    raw: float = 0.0  # bytes the device must keep


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def scale_rows(env: BenchEnv) -> list[Row]:
    """Section 10: the device started, both sizes and the memory sequence measured, stopped."""
    env.fresh()
    calls = CALLS.get(env.profile.name, CALLS["default"])
    started = perf()
    with contextlib.ExitStack() as stack:
        proxy, pid = start_device(stack, SequenceManager, {
            "RedisURL": env.server.url, "Session": SESSION, "EndTimeout": 1.0,
            "HealthCheckPeriod": 2.0})
        proxy.set_timeout_millis(300_000)  # a CreateGroup that walks the whole db may be long
        sequences = Sequences(proxy)
        stack.callback(sequences.end)  # runs before the server stops (LIFO)
        parent = scan_parent(env, SESSION)
        scans = fill_scans(env, parent, SMALL_SCANS, ttl=True)
        small = _measure_size(env, proxy, sequences, scans, calls, parent)
        env.log(f"  {SMALL_SCANS} scans, {small.keys:,} keys done ({perf() - started:.1f} s)")
        t0 = perf()
        scans += fill_scans(env, parent, LARGE_SCANS - SMALL_SCANS, ttl=True)
        fill_unrelated(env, UNRELATED)
        env.log(f"  filled to {LARGE_SCANS} scans + {UNRELATED:,} keys in {perf() - t0:.1f} s")
        large = _measure_size(env, proxy, sequences, scans, calls, parent)
        env.log(f"  {LARGE_SCANS} scans, {large.keys:,} keys done ({perf() - started:.1f} s)")
        memory = _measure_memory(env, proxy, pid, sequences, calls)
        env.log(f"  memory sequence done ({perf() - started:.1f} s)")
        ping = timed(env.client.ping, 200)
    env.log(f"  device stopped ({perf() - started:.1f} s)")
    return _rows(small, large, memory, ping)


def _measure_size(env: BenchEnv, proxy: tango.DeviceProxy, sequences: Sequences,
                  scans: list[tuple[str, int]], calls: dict[str, Any], parent: str) -> _Size:
    """AddScan of the newest finished scans by db_name and by number, each call followed by
    State (a fresh sequence per repeat); the Redis work of those AddScans done from here (the
    floor under the device); CreateGroup of the newest GROUP_SIZE by number."""
    size = _Size(keys=env.client.dbsize())
    newest = scans[-calls["adds"]:]
    group = new_sequence(env, parent)
    for db_name, nb in newest:  # what AddScan by db_name asks Redis: two round trips
        t0 = perf()
        lookup.scan_facts(env.client, db_name)
        group.publish_scan(db_name, nb, ended=True)
        size.floor.append(perf() - t0)
    group.end({}, "DONE")
    for kind in ("name", "number"):
        references = [db_name if kind == "name" else str(nb) for db_name, nb in newest]
        size.add[kind] = []
        deadline = perf() + calls["budget"]
        for repeat in range(calls["repeats"]):
            sequences.start()
            size.sequences[kind] = repeat + 1
            with redis_commands(env.client) as commands:
                _add_each(proxy, references, size.add[kind], size.state, deadline)
            if repeat == 0:  # what the device asked Redis for, per AddScan
                size.commands[kind] = commands.per_call(len(size.add[kind]))
            if perf() > deadline:
                break
    sequences.end()
    group = partial(proxy.command_inout, "CreateGroup",
                    " ".join(str(nb) for _, nb in scans[-GROUP_SIZE:]))
    with redis_commands(env.client) as commands:
        size.group += timed(group, 1)
    size.commands["group"] = commands.per_call(1)
    size.group += timed(group, calls["groups"] - 1, budget=calls["budget"] - size.group[0],
                        at_least=0)
    return size


def _add_each(proxy: tango.DeviceProxy, references: list[str], adds: list[float],
              states: list[float], deadline: float) -> None:
    """AddScan of each reference, each followed by State; stops after the deadline once three
    AddScans are timed."""
    state = partial(proxy.command_inout, "State")
    for reference in references:
        adds += timed(partial(proxy.command_inout, "AddScan", reference), 1)
        states += timed(state, 1)
        if perf() > deadline and len(adds) >= 3:
            return


def _measure_memory(env: BenchEnv, proxy: tango.DeviceProxy, pid: int, sequences: Sequences,
                    calls: dict[str, Any]) -> _Memory:
    """One sequence of RSS_SCANS running scans and RSS_POINTS points; EmitChannel of one point
    into the empty and into the full channel; the server's RSS before and after."""
    memory = _Memory()
    scans = fill_scans(env, scan_parent(env, SESSION + "_memory"), RSS_SCANS, ended=False)
    one = partial(proxy.command_inout, "EmitChannel", (numpy.array([1.5]), [CHANNEL]))
    block = numpy.random.default_rng(0).random(BLOCK)
    sequences.start()
    events = Events(proxy, CHANNEL)  # a GUI watching the channel
    try:
        before = rss_bytes(pid)
        for db_name, _ in scans:
            memory.adds += timed(partial(proxy.command_inout, "AddScan", db_name), 1)
        memory.first = timed(one, calls["emits"], budget=calls["budget"])
        points = len(memory.first)
        while points < RSS_POINTS:
            points += proxy.command_inout("EmitChannel", (block, [CHANNEL]))
        memory.full = timed(one, calls["emits"], budget=calls["budget"])
        points += len(memory.full)
        memory.growth = rss_bytes(pid) - before
        memory.raw = 8 * points + sum(len(db_name.encode()) + 8 for db_name, _ in scans)
        memory.events = events.drain()
    finally:
        events.close()
    sequences.end()
    return memory


def _rows(small: _Size, large: _Size, memory: _Memory, ping: list[float]) -> list[Row]:
    s, ms, mb = SECTION, 1e3, 1e-6
    large_text = f"{LARGE_SCANS:,} scans + {UNRELATED // 1000} k keys ({large.keys:,} in all)"
    sizes = (("small", small, f"{SMALL_SCANS} scans ({small.keys:,} keys)"),
             ("large", large, large_text))
    rows = []
    for kind, label in (("name", "db_name"), ("number", "number")):
        what = f"AddScan of a finished scan by {label}"
        for size_id, size, text in sizes:
            rows.append(Row(
                f"{what}, {text}: p50 vs State", percentile([size.add[kind]], 50) * ms,
                percentile([size.state], 50) * ms, "ms", section=s,
                id=f"scale.add_{kind}.{size_id}",
                note=f"{len(size.add[kind])} calls in {size.sequences[kind]} sequences (the "
                     f"newest scans); anchor = State after each call; Redis commands per "
                     f"AddScan: {size.commands[kind] or '?'}"))
        if kind == "name":
            rows += [Row(
                f"floor: AddScan's Redis work from this process (facts; reference + TTL "
                f"refresh), {text}: p50 vs State", percentile([size.floor], 50) * ms,
                percentile([size.state], 50) * ms, "ms", section=s,
                note="two round trips, no Tango: what any AddScan of a finished scan costs "
                     "before a Python device command's own cost") for _, size, text in sizes]
        rows.append(Row(
            f"{what}: {LARGE_SCANS:,} scans + {UNRELATED // 1000} k keys vs {SMALL_SCANS}, p50",
            percentile([large.add[kind]], 50) * ms, percentile([small.add[kind]], 50) * ms,
            "ms", section=s, id=f"scale.add_{kind}.growth"))
    rows.append(Row(
        f"CreateGroup of {GROUP_SIZE} finished scans by number: {LARGE_SCANS:,} scans + "
        f"{UNRELATED // 1000} k keys vs {SMALL_SCANS}, p50",
        percentile([large.group], 50) * ms, percentile([small.group], 50) * ms, "ms", section=s,
        id="scale.group.growth",
        note=f"{len(small.group)} / {len(large.group)} calls (small / large); Redis commands per "
             f"CreateGroup, small: {small.commands['group'] or '?'}; large: "
             f"{large.commands['group'] or '?'}"))
    first, last = memory.adds[:100], memory.adds[-100:]
    rows += [
        Row(f"AddScan of a running scan: the last 100 vs the first 100 of {RSS_SCANS:,}, p50",
            percentile([last], 50) * ms, percentile([first], 50) * ms, "ms", section=s,
            note=f"one sequence of {len(memory.adds):,} AddScans by db_name"),
        Row(f"EmitChannel of 1 point into a channel holding {RSS_POINTS:.0e} points vs into an "
            f"empty one, p50".replace("e+0", "e"),
            percentile([memory.full], 50) * ms, percentile([memory.first], 50) * ms, "ms",
            section=s, id="scale.emit_full",
            note=f"{len(memory.first)} / {len(memory.full)} calls; a client subscribed to the "
                 f"channel's change events ({memory.events:,} received)"),
        Row(f"device RSS growth over that sequence ({RSS_SCANS:,} scans, "
            f"{RSS_POINTS:.0e} points) vs the raw data".replace("e+0", "e"),
            memory.growth * mb, memory.raw * mb, "MB", section=s, id="scale.rss",
            note="raw = 8 bytes per point + a db_name and an 8-byte number per scan; RSS of the "
                 "server process (/proc) just before the first AddScan and after the last emit"),
        Row("floor: one Redis round trip (PING from this process), p50",
            percentile([ping], 50) * ms, None, "ms", section=s),
    ]
    return rows
