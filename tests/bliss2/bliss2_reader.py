"""blissdata 2.4.5 as an independent reader of Bliss 2 sequences, run as a subprocess.

    python bliss2_reader.py URL follow SESSION   -> READY, then one JSON line per event of the
                                                    next sequence scan of SESSION, live
    python bliss2_reader.py URL snapshot KEY     -> one JSON document: the scan (a sequence or
                                                    not) as loaded after

Only blissdata's public reader API: ``DataStore``, ``get_last_scan_timetag``, ``get_next_scan``,
``load_scan``, ``Scan.update``, ``CursorGroup`` over every stream of the scan; sub-scans come from
the ``scan_sequence`` plugin (views of ``Scan`` objects, ``stream[:]``), never from our code.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy
from blissdata.exceptions import EndOfStream
from blissdata.redis_engine.scan import Scan, ScanState
from blissdata.redis_engine.store import DataStore
from blissdata.streams import CursorGroup

SUBSCANS = "GroupingMaster:SUBSCANS"
TIMEOUT = 60.0  # seconds any one wait may take before the reader gives up (the test then fails)


def plain(value: Any) -> Any:
    """JSON-able form of what blissdata returns."""
    if isinstance(value, numpy.ndarray):
        return value.tolist()
    if isinstance(value, numpy.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def describe(scan: Scan) -> dict:
    """A sub-scan as the plugin hands it over: identity, state, info and every stream's data."""
    while scan.state < ScanState.CLOSED:  # a live sub-scan: wait for its data to be complete
        scan.update(timeout=TIMEOUT)
    return {"key": scan.key, "number": scan.number, "session": scan.session,
            "state": scan.state.name, "group": scan.info.get("group"),
            "streams": {name: plain(stream[:]) for name, stream in sorted(scan.streams.items())}}


def emit(event: dict) -> None:
    print(json.dumps(event), flush=True)


def follow(store: DataStore, session: str) -> None:
    since = store.get_last_scan_timetag()
    emit({"event": "READY"})
    while True:
        since, key = store.get_next_scan(since=since, timeout=TIMEOUT)
        scan = store.load_scan(key)
        if scan.session == session and scan.info.get("is_scan_sequence"):
            break
    emit({"event": "sequence", "key": key, "state": scan.state.name})
    while scan.state < ScanState.PREPARED:
        scan.update(timeout=TIMEOUT)
    # blissdata 2.4.5's load_scan reads the document, then the state: a scan prepared between
    # the two reads comes back PREPARED (or later) with the CREATED document, without streams.
    # Loaded again once its state says PREPARED, the document is at least that recent.
    scan = store.load_scan(key)
    emit({"event": "state", "state": scan.state.name, "streams": sorted(scan.streams)})
    cursors = CursorGroup(scan.streams)
    while True:
        try:
            views = cursors.read(timeout=TIMEOUT)
        except EndOfStream:
            break
        for stream, view in views.items():
            if stream.name == SUBSCANS:
                for sub in view.get_data():
                    emit({"event": "subscan", **describe(sub)})
            else:
                emit({"event": "data", "stream": stream.name, "data": plain(view.get_data())})
    while scan.state < ScanState.CLOSED:
        scan.update(timeout=TIMEOUT)
    emit({"event": "closed", "state": scan.state.name, "info": scan.info})


def snapshot(store: DataStore, key: str) -> None:
    """A sequence (``subscans``, ``references``, ``plugin``) or a plain scan (those None)."""
    scan = store.load_scan(key)
    streams = scan.streams
    subscans = streams.get(SUBSCANS)
    emit({"key": scan.key, "number": scan.number, "name": scan.name, "session": scan.session,
          "state": scan.state.name, "info": scan.info,
          "subscans": None if subscans is None else [describe(sub) for sub in subscans[:]],
          "references": None if subscans is None else plain(subscans.event_stream[:]),
          "plugin": None if subscans is None else subscans.plugin,
          "data": {name: plain(stream[:]) for name, stream in sorted(streams.items())
                   if name != SUBSCANS}})


def main() -> None:
    url, command, argument = sys.argv[1:4]
    store = DataStore(url)
    {"follow": follow, "snapshot": snapshot}[command](store, argument)


if __name__ == "__main__":
    main()
