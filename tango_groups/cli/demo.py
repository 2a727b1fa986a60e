"""``tango-groups demo``: the seed page's sequence, played through a SequenceManager by a client.

What a client does (``play``): start a sequence with a custom ``sum`` channel, add the next scan
number before that scan runs (``pending:N``), run two simulated loopscans of a diode, emit their
sum, end the sequence. Meanwhile two listeners print what the outside world sees, side by side in
time order: ``redis |`` lines are the events a Bliss data consumer reads (``walk_events`` on the
session), ``tango |`` lines the device's change events. The result is then checked against Redis
and the device's attributes; ``play`` returns the list of what is wrong (empty: all right).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import numpy
import tango

from ..bliss1.lookup import allocated_number
from ..bliss1.node import get_node, get_session_node
from ..devices.interface import event_value
from ..scanning.simulation import loopscan
from ..session import Session
from .formatting import describe

__all__ = ["play"]

WATCHED = ("State", "SequenceState", "ScanNumbers", "PendingScans", "sum")
EVENT_TIMEOUT = 10.0  # s a change event may take to reach the client (a loaded machine)


class _Printer:
    """Serialised, prefixed output for the three actors."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._lock = threading.Lock()

    def __call__(self, source: str, text: str) -> None:
        with self._lock:
            self._write(f"{source:6}| {text}")


def _plain(value: Any) -> Any:
    if isinstance(value, numpy.ndarray):
        return value.tolist()
    return str(value) if isinstance(value, tango.DevState) else value


def _enum_labels(proxy: tango.DeviceProxy) -> dict[str, list[str]]:
    """The labels of the watched enum attributes (``SequenceState``: IDLE ... KILLED)."""
    configs = proxy.get_attribute_config_ex(list(WATCHED))
    return {name: list(config.enum_labels) for name, config in zip(WATCHED, configs, strict=True)
            if config.data_type == tango.CmdArgType.DevEnum}


def play(proxy: tango.DeviceProxy, session: Session, write: Callable[[str], None] = print,
         npoints: int = 5, count_time: float = 0.05) -> list[str]:
    """Run the seed's sequence through ``proxy``; ``session`` is the device's (same Redis, name
    and base path). Returns what is wrong with the result (nothing: an empty list)."""
    show = _Printer(write)
    diode = session.config.get("diode")
    follower = get_session_node(session.name, connection=session.client).walk_events(
        filter=("scan", "scan_group", "node_ref_channel", "channel"), wait=True)

    def follow_redis() -> None:
        for event in follower:
            show("redis", describe(event))

    labels = _enum_labels(proxy)
    ended = threading.Event()  # the device's event of the sequence's final state came

    def on_change(event: tango.EventData) -> None:
        name = event.attr_name.rsplit("/", 1)[-1].partition("#")[0]
        name = next((watched for watched in WATCHED if watched.lower() == name.lower()), name)
        if event.err:
            show("tango", f"{name}: error {event.errors[0].reason}")
        elif name in labels:  # an enum's events carry its index: print the label
            label = labels[name][int(event.attr_value.value)]
            show("tango", f"{name} = {label}")
            if name == "SequenceState" and label == "DONE":
                ended.set()
        else:
            show("tango", f"{name} = {_plain(event_value(event.attr_value))}")

    reader = threading.Thread(target=follow_redis, name="redis follower", daemon=True)
    reader.start()
    subscriptions: list[int] = []
    try:
        db_name = proxy.Start(json.dumps({
            "title": "sequence_of_scans",
            "channels": ["sum"]}))
        show("client", f"Start -> {db_name}")
        subscriptions = [proxy.subscribe_event(name, tango.EventType.CHANGE_EVENT, on_change)
                         for name in WATCHED]
        upcoming = allocated_number(session.client, session.scan_saving_db_name) + 1
        show("client", f"AddScan({upcoming}) -> {proxy.AddScan(str(upcoming))}")
        s1 = loopscan(npoints, count_time, diode, session=session)
        show("client", f"loopscan -> {s1.db_name}")
        s2 = loopscan(npoints, count_time, diode, session=session)
        show("client", f"loopscan -> {s2.db_name}; AddScan -> {proxy.AddScan(s2.db_name)}")
        total = s1.get_data()[diode] + s2.get_data()[diode]
        show("client", f"EmitChannel(sum) -> {proxy.EmitChannel((total, ['sum']))} points")
        show("client", f"End -> {proxy.End()}")
        # events reach clients after the command that caused them returned: wait for the last
        ended.wait(EVENT_TIMEOUT)
    finally:
        for subscription in subscriptions:
            proxy.unsubscribe_event(subscription)
        follower.stop()
        reader.join(5)
    problems = _check(proxy, session, db_name, [s1, s2], total)
    if not ended.is_set():
        problems.append(f"no SequenceState DONE event within {EVENT_TIMEOUT} s of End")
    return problems


def _check(proxy: tango.DeviceProxy, session: Session, db_name: str, scans: list[Any],
           total: numpy.ndarray) -> list[str]:
    problems = []
    master = f"{db_name}:GroupingMaster"
    refs = get_node(f"{master}:scans", connection=session.client).get(0, -1)
    if [ref.db_name for ref in refs] != [scan.db_name for scan in scans]:
        problems.append(f"Redis references {[ref.db_name for ref in refs]}")
    stored = get_node(f"{master}:custom_channels:sum", connection=session.client).get(0, -1)
    if not numpy.array_equal(stored, total):
        problems.append(f"Redis sum {stored} != {total}")
    if list(proxy.ScanNumbers) != [scan.scan_number for scan in scans]:
        problems.append(f"ScanNumbers {list(proxy.ScanNumbers)}")
    if not numpy.array_equal(proxy.sum, total) or proxy.SequenceState != 4:  # DONE
        problems.append(f"sum attribute {proxy.sum}, SequenceState {proxy.SequenceState}")
    return problems
