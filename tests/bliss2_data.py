"""Bliss 2 data as the tests write and check it, through blissdata 2.x itself (imports it: use
after ``pytest.importorskip("blissdata.redis_engine.store")``).

Shared by ``tests/bliss2`` and the fault suite and fuzz (``tests/faults``) in ``DataFormat
bliss2``; the Bliss 2 counterpart of ``redis_checker``::

    written = write_scan(store, session, 4)            # a finished scan, as Bliss 2 writes one
    problems(store, session, running=key)               # [] when nothing is wrong, else sentences
    references(store, key)                              # (scan keys, scan numbers) of a sequence
    channel_points(store, key, "x")                     # points of custom channel x of a sequence

``problems`` reads the session's scans with blissdata's search and reports: a scan other than
``running`` that is not CLOSED; a CLOSED scan with a stream that is not sealed, or whose streams
a blissdata reader's cursors do not read to their end (``EndOfStream``) within a deadline; a
sequence that references a scan that does not exist, references one twice, or gives a number
that is not the referenced scan's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy
from blissdata.exceptions import EndOfStream, ScanNotFoundError
from blissdata.redis_engine.scan import Scan, ScanState
from blissdata.redis_engine.store import DataStore
from blissdata.streams import CursorGroup
from blissdata.streams.default import Stream

from tango_groups.bliss2 import SUBSCANS, custom_stream_name, find_scans

__all__ = ["WrittenScan", "channel_points", "cursors_end", "last_scan_number", "problems",
           "references", "write_scan"]

CURSOR_DEADLINE = 5.0  # seconds a reader may take to read a closed scan's streams to their end


class WrittenScan(NamedTuple):
    """A scan written by ``write_scan``: its key under the name the device gives it in
    ``ScanNames`` (``db_name``), and its number."""

    db_name: str
    scan_number: int


def write_scan(store: DataStore, session: str, number: int, points: int = 5, *,
               path: str | None = None, before_prepare: Callable[[], None] | None = None,
               **info: Any) -> str:
    """A finished loopscan written through blissdata 2.x itself, as Bliss 2 would: its key.
    ``path``: the file Bliss 2 saves it in (its identity's ``path``); ``before_prepare`` runs
    once it is created (the scan is closed if it raises)."""
    scan = store.create_scan({"name": "loopscan", "number": number, "data_policy": "no_policy",
                              "session": session, "path": path},
                             info={"title": f"loopscan {number}", **info})
    if before_prepare is not None:
        try:
            before_prepare()
        except BaseException:
            scan.close()
            raise
    elapsed = scan.create_stream(Stream.make_definition("timer:elapsed_time", "float64"))
    diode = scan.create_stream(Stream.make_definition("diode:diode", "int32"))
    scan.prepare()
    scan.start()
    elapsed.send(numpy.arange(points, dtype=float) * 0.1)
    diode.send(numpy.arange(points, dtype=numpy.int32) + number)
    scan.stop()
    scan.close()
    return scan.key


def last_scan_number(store: DataStore, session: str) -> int:
    """The number of the session's newest scan (0 when it has none): the device numbers a new
    sequence after it, ``SequenceServer.scan`` a new scan."""
    keys = find_scans(store, session)
    return int(store.load_scan(keys[-1]).number) if keys else 0


def references(store: DataStore, key: str) -> tuple[list[str], list[int]]:
    """(scan keys, scan numbers) of the ``GroupingMaster:SUBSCANS`` entries of sequence ``key``,
    as stored (the raw entries, not the scans the plugin would load)."""
    entries = store.load_scan(key).streams[SUBSCANS].event_stream[:]
    return [entry["key"] for entry in entries], [int(entry["scan_number"]) for entry in entries]


def channel_points(store: DataStore, key: str, channel: str) -> numpy.ndarray:
    """Every point of custom channel ``channel`` of sequence ``key`` (empty when it has none)."""
    streams = store.load_scan(key).streams
    name = custom_stream_name(channel)
    return numpy.asarray(streams[name][:]) if name in streams else numpy.empty(0)


def cursors_end(scan: Scan, deadline: float = CURSOR_DEADLINE) -> bool:
    """Whether a blissdata reader's cursors over every stream of ``scan`` reach EndOfStream (each
    stream sealed and read) within ``deadline`` seconds."""
    if not scan.streams:
        return True
    cursors = CursorGroup(scan.streams)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            cursors.read(timeout=0.2)
        except EndOfStream:
            return True
    return False


def problems(store: DataStore, session: str, running: str | None = None) -> list[str]:
    """What is wrong with the session's Bliss 2 scans (see the module docstring); [] if nothing."""
    found: list[str] = []
    keys = find_scans(store, session)
    for key, state in store.get_scans_state(keys).items():
        if key == running:
            continue
        if state is not ScanState.CLOSED:
            found.append(f"{key} is {state.name}, not CLOSED")
            continue
        scan = store.load_scan(key)
        open_streams = [name for name, stream in scan.streams.items() if not stream.is_sealed()]
        if open_streams:
            found.append(f"{key} is CLOSED with streams not sealed: {open_streams}")
        elif not cursors_end(scan):
            found.append(f"a reader's cursors over {key} do not end")
    for key in keys:
        scan = store.load_scan(key)
        if scan.info.get("is_scan_sequence") and SUBSCANS in scan.streams:
            found += _reference_problems(store, key)
    return found


def _reference_problems(store: DataStore, key: str) -> list[str]:
    names, numbers = references(store, key)
    found = [f"{key} references {name} twice" for name in set(names) if names.count(name) > 1]
    for name, number in zip(names, numbers):
        try:
            actual = int(store.load_scan(name).number)
        except ScanNotFoundError:
            found.append(f"{key} references {name}, which does not exist")
            continue
        if actual != number:
            found.append(f"{key} gives number {number} to {name}, which is scan {actual}")
    return found
