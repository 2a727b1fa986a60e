"""Load: 8 client processes and 2 subscribers against one SequenceManager for a bounded time.

The clients (``stress_support.load_client``) add scans of their own by number and by db_name,
race each other for a set of shared scans (exactly one wins each, the others are refused with
``SequenceManager_DuplicateScan``), add numbers that are allocated but whose scan is not
registered yet (the device must treat them as pending), emit points on a channel of their own
and on a shared one, and read channel attributes back. Then the sequence is ended and everything
is compared:

* every refusal is ``SequenceManager_DuplicateScan`` of a shared scan; no read fails;
* every accepted AddScan is referenced exactly once in Redis (the sequence's ``scans`` and
  ``scan_numbers`` channels, read with ``tango_groups.bliss1.node``), the numbers aligned with the
  references, and each client's scans in the order its calls returned (pending ones excepted:
  they are referenced when they start);
* every accepted EmitChannel's points are in Redis exactly once, in the client's order;
* the subscribers' events agree: every ScanNumbers / ScanNames / channel event is a prefix of
  the final list (they only grow, in order), and the last one equals Redis.

The server must still run at the end (a crash fails the test with its log). Default: 8 s of
load; ``--soak SECONDS`` for longer.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import numpy
import pytest
import tango
from stress_support import (
    Device,
    Workers,
    load_client,
    record_events,
    sequence_manager,
    summarised,
    wait_ready,
)

from tango_groups.bliss1.node import get_node
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session

DURATION = 8.0  # seconds of load by default (--soak for more)
CLIENTS = 8
SUBSCRIBERS = 2
SHARED_SCANS = 12
CHANNELS = [f"c{k}" for k in range(CLIENTS)] + ["shared"]
EVENTS = ["ScanNumbers", "ScanNames", "ScanCount", "SequenceState", *CHANNELS]


@pytest.mark.slow
def test_concurrent_clients_every_accepted_call_once_in_redis_and_events(
        redis_url: str, session_name: str, soak: float) -> None:
    duration = soak or DURATION
    session = Session(session_name, redis_url=redis_url)
    diode = session.config.get("diode")
    shared = [loopscan(1, 0.0, diode, session=session) for _ in range(SHARED_SCANS)]
    with (sequence_manager(redis_url, session_name, instance="load", EndTimeout=3.0,
                           HealthCheckPeriod=0.2, Channels=CHANNELS) as device,
          Workers() as workers):
        db_name = device.proxy.Start(json.dumps({"title": "load", "channels": CHANNELS}))
        for k in range(SUBSCRIBERS):
            workers.start(f"sub{k}", record_events, device.trl, EVENTS, [("SequenceState", 4)],
                          False)
        wait_ready(workers, [f"sub{k}" for k in range(SUBSCRIBERS)])
        shared_refs = [[scan.scan_number, scan.db_name] for scan in shared]
        for k in range(CLIENTS):
            workers.start(f"client{k}", load_client, k, device.trl, redis_url, session_name,
                          shared_refs)
        clients = [f"client{k}" for k in range(CLIENTS)]
        run_for(duration, device, workers)
        workers.stop.set()
        results = workers.wait_for(clients, timeout=60)
        died = device.death()
        assert died is None, died
        problems = summarised([f"{key}: {problem}" for key in clients
                               for problem in results[key]["problems"]])
        problems += refusal_problems(results, clients)
        try:
            final = device.proxy.End()
        except tango.DevFailed as error:
            final = f"{error.args[0].reason}: {error.args[0].desc.strip()}"
        if final != "DONE":
            problems.append(f"End answered {final!r}, not DONE")
        shown = {"ScanNames": list(device.proxy.ScanNames),
                 "ScanNumbers": list(device.proxy.ScanNumbers),
                 **{name: list(device.proxy.read_attribute(name).value) for name in CHANNELS}}
        events = workers.wait_for([f"sub{k}" for k in range(SUBSCRIBERS)], timeout=30)
        died = device.death()
        assert died is None, died

    redis_state = read_redis(session, db_name)
    problems += reference_problems(results, clients, redis_state)
    problems += point_problems(results, clients, redis_state)
    for name, value in shown.items():
        if value != redis_state[name]:
            problems.append(f"attribute {name} after End differs from Redis")
    for key, recorded in events.items():
        problems += event_problems(key, recorded, redis_state)
    session.close()
    calls = Counter(call["command"] for key in clients for call in results[key]["calls"])
    print(f"{dict(calls)} calls, {len(redis_state['ScanNames'])} scans referenced, "
          f"{sum(len(v) for k, v in redis_state.items() if k in CHANNELS)} points;",
          {key: len(recorded["events"]) for key, recorded in events.items()}, "events")
    assert not problems, (f"{len(problems)} problems ({dict(calls)} calls in {duration:g} s):\n"
                          + "\n".join(problems[:30]))
    assert calls["AddScan"] >= CLIENTS and len(redis_state["ScanNames"]) >= CLIENTS


def accepted(results: dict[str, Any], clients: list[str], kind: str | None = None
             ) -> list[tuple[str, dict[str, Any]]]:
    """The accepted calls (``(client, call)``), of ``kind`` if given, in each client's order."""
    return [(key, call) for key in clients for call in results[key]["calls"]
            if "result" in call and (kind is None or call["kind"] == kind)]


def refusal_problems(results: dict[str, Any], clients: list[str]) -> list[str]:
    """Only a shared scan may be refused, only as a duplicate; each attempted shared scan is
    accepted exactly once. Wrong refusals are counted by kind of call and reason."""
    problems = []
    wins: Counter = Counter()
    attempted = set()
    wrong: Counter = Counter()
    example: dict[tuple[str, str], str] = {}
    for key in clients:
        for call in results[key]["calls"]:
            if call["kind"] == "shared":
                attempted.add(call["scan"])
            if "result" in call:
                if call["kind"] == "shared":
                    wins[call["scan"]] += 1
            elif not (call["kind"] == "shared"
                      and call["reason"] == "SequenceManager_DuplicateScan"):
                what = (f"{call['command']} ({call['kind']})", call["reason"])
                wrong[what] += 1
                example.setdefault(what, f"{key}: {call['command']}"
                                         f"({call.get('arg', call.get('values'))}): {call['desc']}")
    for (command, reason), count in wrong.items():
        problems.append(f"{count} x {command} refused with {reason}, e.g. "
                        f"{example[command, reason]}")
    for scan in sorted(attempted):
        if wins[scan] != 1:
            problems.append(f"shared scan {scan} accepted {wins[scan]} times, not once")
    return problems


def read_redis(session: Session, db_name: str) -> dict[str, list]:
    """What Redis holds for the sequence: references, numbers, the scans' own numbers, points."""
    master = f"{db_name}:GroupingMaster"
    refs = get_node(f"{master}:scans", connection=session.client).get(0, -1)
    numbers = get_node(f"{master}:scan_numbers", connection=session.client).get(0, -1)
    state = {"ScanNames": [ref.db_name for ref in refs],
             "ScanNumbers": [int(n) for n in numbers],
             "scan_nb": [int(ref.info["scan_nb"]) for ref in refs]}
    for name in CHANNELS:
        channel = get_node(f"{master}:custom_channels:{name}", connection=session.client)
        state[name] = numpy.asarray(channel.get(0, -1)).tolist()
    return state


def reference_problems(results: dict[str, Any], clients: list[str],
                       redis_state: dict[str, list]) -> list[str]:
    problems = []
    names = redis_state["ScanNames"]
    duplicated = [name for name, n in Counter(names).items() if n > 1]
    if duplicated:
        problems.append(f"scans referenced more than once: {duplicated}")
    if redis_state["scan_nb"] != redis_state["ScanNumbers"]:
        problems.append("scan_numbers is not aligned with the scans' own numbers")
    wanted = {call["scan"] for _, call in accepted(results, clients)
              if call["command"] == "AddScan"}
    if missing := wanted - set(names):
        problems.append(f"{len(missing)} accepted scans not referenced: {sorted(missing)[:5]}")
    if extra := set(names) - wanted:
        problems.append(f"{len(extra)} referenced scans no call added: {sorted(extra)[:5]}")
    position = {name: k for k, name in enumerate(names)}
    for key in clients:
        direct = [call["scan"] for call in results[key]["calls"]
                  if "result" in call and call["kind"] in ("own", "shared")]
        indices = [position[name] for name in direct if name in position]
        if indices != sorted(indices):
            problems.append(f"{key}: its scans are not referenced in the order it added them")
    return problems


def point_problems(results: dict[str, Any], clients: list[str],
                   redis_state: dict[str, list]) -> list[str]:
    problems = []
    everyone = []
    for index, key in enumerate(clients):
        emitted = {"own": [], "shared": []}
        for call in results[key]["calls"]:
            if call["kind"] == "emit" and "result" in call:
                emitted["shared" if call["channel"] == "shared" else "own"] += call["values"]
        everyone += emitted["shared"]
        if redis_state[f"c{index}"] != emitted["own"]:
            problems.append(f"channel c{index} in Redis: {len(redis_state[f'c{index}'])} points, "
                            f"not the {len(emitted['own'])} accepted, in order")
        mine = [v for v in redis_state["shared"] if int(v) // 1_000_000 == index]
        if mine != emitted["shared"]:
            problems.append(f"{key}'s points in channel shared differ from its accepted emits")
    if sorted(redis_state["shared"]) != sorted(everyone):
        problems.append(f"channel shared in Redis: {len(redis_state['shared'])} points, not the "
                        f"{len(everyone)} accepted")
    return problems


def event_problems(key: str, recorded: dict[str, Any], redis_state: dict[str, list]
                   ) -> list[str]:
    """Every event of a growing list is a prefix of the final one; the last equals Redis."""
    problems = [f"{key}: error events {recorded['errors'][:5]}"] if recorded["errors"] else []
    if not recorded["until_seen"]:
        problems.append(f"{key}: no SequenceState DONE event")
    by_attr: dict[str, list[list]] = {}
    for name, value in recorded["events"]:
        by_attr.setdefault(str(name), []).append(value)
    for name in ("ScanNumbers", "ScanNames", *CHANNELS):
        values = by_attr.get(name.lower(), [])
        final = redis_state[name]
        if not values:
            problems.append(f"{key}: no {name} event")
            continue
        values = [list(v or []) for v in values]  # an empty spectrum may come as None
        not_prefix = [v for v in values if v != final[:len(v)]]
        if not_prefix:
            problems.append(f"{key}: {len(not_prefix)} {name} events are not a prefix of the "
                            f"final list (first: {not_prefix[0][:8]}...)")
        if values[-1] != final:
            problems.append(f"{key}: last {name} event has {len(values[-1])} items, Redis "
                            f"{len(final)}")
    counts = by_attr.get("scancount", [])
    if counts != sorted(counts) or not counts or counts[-1] != len(redis_state["ScanNames"]):
        problems.append(f"{key}: ScanCount events {counts[-5:]} do not grow to "
                        f"{len(redis_state['ScanNames'])}")
    return problems


def run_for(duration: float, device: Device, workers: Workers) -> None:
    """Let the clients run for ``duration`` seconds; stop early if the server or a client died."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        died = device.death()
        assert died is None, died
        if any(process.exitcode is not None for process in workers.processes.values()):
            return  # wait_for reports how it ended
        time.sleep(0.2)
