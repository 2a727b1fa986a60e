"""The SequenceManager with ``DataFormat bliss2``, in a real server process, read by blissdata
2.4.5's own reader: Start returns the sequence's key, AddScan takes keys and numbers (pending
until PREPARED), custom channels are streams of the sequence, End / Abort / a crash / a Redis
failure never leave it open, refusals write nothing.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
import tango
from tango.test_context import DeviceTestContext

pytest.importorskip("blissdata.redis_engine.store", reason="blissdata 2.x (tango_groups[bliss2])")

from bliss2_support import snapshot, write_scan
from blissdata.redis_engine.scan import ScanState
from tango_checks import refused, wait_until

from tango_groups.bliss2 import SUBSCANS, custom_stream_name, data_store
from tango_groups.devices.sequence_manager import SequenceManager
from tango_groups.runtime.redis_server import RedisServer


def test_a_sequence_driven_through_tango_is_read_by_blissdata(store, session_name, follower,
                                                              start_device):
    finished = write_scan(store, session_name, 2)
    proxy = start_device().proxy
    reader = follower(session_name)
    key = proxy.Start(json.dumps({"title": "through tango", "channels": ["sum", "spectrum"]}))
    assert key.startswith("esrf:scan:") and proxy.ScanKey == key == proxy.SequenceName
    assert proxy.SequenceNumber == 3  # after the session's newest scan
    events = reader.until("state")
    assert events[0]["key"] == key
    assert events[-1]["streams"] == sorted(
        [SUBSCANS, custom_stream_name("sum"), custom_stream_name("spectrum")])

    assert proxy.AddScan(finished) == finished  # by key
    assert reader.until("subscan")[-1]["key"] == finished
    assert proxy.AddScan("4") == "pending:4"  # not created yet
    assert list(proxy.PendingScans) == [4]
    later = write_scan(store, session_name, 4, points=2)
    wait_until(lambda: list(proxy.ScanNumbers) == [2, 4])
    assert list(proxy.ScanNames) == [finished, later] and list(proxy.PendingScans) == []
    assert proxy.EmitChannel(([1.0, 2.5], ["sum"])) == 2
    assert proxy.EmitChannel((list(range(8)), ["spectrum"])) == 2
    assert proxy.End() == "DONE"
    assert proxy.State() == tango.DevState.ON and proxy.SequenceState.name == "DONE"

    rest = reader.until("closed")
    assert [event["key"] for event in rest if event["event"] == "subscan"] == [later]
    assert rest[-1]["info"]["end_reason"] == "SUCCESS"
    seen = snapshot(store_url(store), key)
    assert seen["state"] == "CLOSED" and seen["info"]["is_scan_sequence"] is True
    assert seen["info"]["title"] == "through tango"
    assert seen["references"] == [{"key": finished, "scan_number": 2},
                                  {"key": later, "scan_number": 4}]
    assert [sub["streams"]["diode:diode"] for sub in seen["subscans"]] == [
        [2, 3, 4, 5, 6], [4, 5]]
    assert seen["data"][custom_stream_name("sum")] == [1.0, 2.5]
    assert seen["data"][custom_stream_name("spectrum")] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def store_url(store) -> str:
    return store._url.split("?")[0]


def test_refusals_write_nothing(store, session_name, start_device):
    scan = write_scan(store, session_name, 1)
    proxy = start_device().proxy
    key = proxy.Start(json.dumps({"title": "refusals", "channels": ["sum", "spectrum"]}))
    assert proxy.AddScan("1") == scan
    desc = refused("SequenceManager_UnknownScan",
                   lambda: proxy.AddScan("esrf:scan:01ZZZZZZZZZZZZZZZZZZZZZZZZ"))
    assert "never written" in desc
    assert "DataFormat bliss2" in refused("SequenceManager_UnknownScan",
                                          lambda: proxy.AddScan("demo:tmp:scans:1_loopscan"))
    refused("SequenceManager_DuplicateScan", lambda: proxy.AddScan(scan))
    refused("SequenceManager_DuplicateScan", lambda: proxy.AddScan("1"))
    refused("SequenceManager_NotAScan", lambda: proxy.AddScan(key))
    refused("SequenceManager_UnknownChannel", lambda: proxy.EmitChannel(([1.0], ["nope"])))
    refused("SequenceManager_BadData", lambda: proxy.EmitChannel(([1.0, 2.0, 3.0], ["spectrum"])))
    refused("SequenceManager_AlreadyRunning", lambda: proxy.Start(""))
    assert proxy.Abort() == "USER_ABORTED"
    seen = snapshot(store_url(store), key)
    assert seen["references"] == [{"key": scan, "scan_number": 1}]
    assert seen["data"] == {custom_stream_name("sum"): [], custom_stream_name("spectrum"): []}
    assert seen["info"]["end_reason"] == "USER_ABORT"
    refused("SequenceManager_NotRunning", lambda: proxy.AddScan("1"))


def test_the_file_comes_from_start_or_from_the_properties(store, session_name, start_device):
    proxy = start_device(DataFilename="").proxy  # saving off, unless Start gives a path
    assert store.load_scan(proxy.Start("")).path is None and proxy.End() == "DONE"
    for bad in ("seq.h5", "/data/seq.txt", 5):  # refused: no number taken, nothing written
        desc = refused("SequenceManager_BadRequest",
                       lambda b=bad: proxy.Start(json.dumps({"path": b})))
        assert "absolute HDF5 file" in desc or "must be a string" in desc
    key = proxy.Start(json.dumps({"path": "/data/id00/seq.h5"}))
    scan = store.load_scan(key)
    assert (scan.number, scan.path, list(scan.info["h5maps"])) == (2, "/data/id00/seq.h5",
                                                                  ["/data/id00/seq.h5"])
    assert proxy.End() == "DONE"
    faulty = start_device(SavingTemplate="{proposal}").proxy
    assert faulty.State() == tango.DevState.FAULT and "SavingTemplate" in faulty.Status()


def test_end_reports_a_scan_that_never_came_and_still_closes(store, session_name, start_device):
    proxy = start_device().proxy
    key = proxy.Start("")
    assert proxy.AddScan("7") == "pending:7"
    desc = refused("SequenceManager_ScansNotFinished", proxy.End)
    assert "[7]" in desc
    assert store.load_scan(key).state is ScanState.CLOSED
    assert list(proxy.PendingScans) == []
    assert proxy.Start("next") != key and proxy.End() == "DONE"


def test_create_group_of_numbers_and_keys(store, session_name, start_device):
    first, second = (write_scan(store, session_name, number) for number in (1, 2))
    proxy = start_device().proxy
    group = proxy.CreateGroup(json.dumps({"scans": [1, second], "title": "pair"}))
    seen = snapshot(store_url(store), group)
    assert seen["state"] == "CLOSED" and seen["info"]["title"] == "pair"
    assert seen["references"] == [{"key": first, "scan_number": 1},
                                  {"key": second, "scan_number": 2}]
    refused("SequenceManager_UnknownScan", lambda: proxy.CreateGroup("1 9"))


def test_a_killed_device_leaves_nothing_open(store, session_name, start_device, follower):
    device = start_device()
    proxy = device.proxy
    reader = follower(session_name)
    key = proxy.Start(json.dumps({"channels": ["sum"]}))
    proxy.EmitChannel(([1.0], ["sum"]))
    reader.until("data")
    os.kill(device.context.thread.pid, signal.SIGKILL)
    device.context.thread.join(10)
    device.context.server = None
    assert store.load_scan(key).state is ScanState.STARTED  # open, readers waiting
    start_device()  # the same device name: it finds its record and closes the sequence
    rest = reader.until("closed")
    assert rest[-1]["info"]["end_reason"] == "FAILURE"


def test_a_stopped_server_closes_its_sequence(store, session_name, modules_redis):
    properties = {"RedisURL": modules_redis.url, "Session": session_name, "DataFormat": "bliss2"}
    with DeviceTestContext(SequenceManager, properties=properties, process=True,
                           timeout=30) as proxy:
        key = proxy.Start("")
    assert store.load_scan(key).state is ScanState.CLOSED
    assert store.load_scan(key).info["end_reason"] == "FAILURE"


def _points(server: RedisServer, key: str) -> list[float]:
    return data_store(server.url).load_scan(key).streams[custom_stream_name("sum")][:].tolist()


def test_a_hung_redis_never_wedges_the_device_and_the_sequence_goes_on(session_name,
                                                                        start_device):
    """The write that timed out lands once Redis wakes up: the client's retry writes nothing
    twice, and the sequence ends as usual."""
    with RedisServer(modules=True) as server:
        proxy = start_device(RedisURL=server.url, RedisTimeout=0.5).proxy
        key = proxy.Start(json.dumps({"channels": ["sum"]}))
        proxy.EmitChannel(([1.0], ["sum"]))
        with server.paused():
            refused("SequenceManager_RedisUnavailable",
                    lambda: proxy.EmitChannel(([2.0], ["sum"])))
            assert proxy.State() == tango.DevState.FAULT
        wait_until(lambda: proxy.State() == tango.DevState.RUNNING, what=proxy.Status)
        assert proxy.EmitChannel(([2.0], ["sum"])) == 1  # the retry
        assert proxy.End() == "DONE"
        assert _points(server, key) == [1.0, 2.0]
        assert data_store(server.url).load_scan(key).info["end_reason"] == "SUCCESS"


def test_a_redis_restarted_empty_loses_the_sequence_and_is_set_up_again(session_name,
                                                                         start_device):
    with RedisServer(modules=True) as server:
        proxy = start_device(RedisURL=server.url, RedisTimeout=0.5).proxy
        proxy.Start("")
        server.restart(keep_data=False)
        wait_until(lambda: "no longer holds" in proxy.Status(), what=proxy.Status)  # LOST
        refused("SequenceManager_SequenceLost", proxy.End)
        key = proxy.Start("again")  # blissdata's index and protocol key are back
        assert proxy.End() == "DONE"
        assert data_store(server.url).load_scan(key).state is ScanState.CLOSED


def test_the_panel_reads_bliss2_scans(store, session_name, modules_redis):
    pytest.importorskip("PyQt5.QtWidgets", reason="the gui extra (PyQt5)")
    from tango_groups.gui.scans import FINAL_STATES, read_scan

    key = write_scan(store, session_name, 1, points=4)
    assert read_scan(modules_redis.url, key) == ("CLOSED", 4)
    assert "CLOSED" in FINAL_STATES
    assert read_scan(modules_redis.url, "esrf:scan:01ZZZZZZZZZZZZZZZZZZZZZZZZ") == ("?", 0)


def test_a_redis_restarted_with_its_data_keeps_the_running_sequence(session_name,
                                                                      start_device):
    with RedisServer(modules=True) as server:
        proxy = start_device(RedisURL=server.url, RedisTimeout=0.5).proxy
        key = proxy.Start(json.dumps({"channels": ["sum"]}))
        proxy.EmitChannel(([1.0], ["sum"]))
        server.restart(keep_data=True)
        wait_until(lambda: proxy.State() == tango.DevState.RUNNING and _emitted(proxy, 2.0),
                   what=proxy.Status)
        assert proxy.End() == "DONE"
        assert _points(server, key) == [1.0, 2.0]


def _emitted(proxy: tango.DeviceProxy, value: float) -> bool:
    """EmitChannel once Redis answers again (refused meanwhile)."""
    try:
        return proxy.EmitChannel(([value], ["sum"])) == 1
    except tango.DevFailed as error:
        assert error.args[0].reason == "SequenceManager_RedisUnavailable", error.args[0].desc
        return False
