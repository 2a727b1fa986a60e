"""The SequenceManager device in a real server process, against a real redis-server.

Every command, attribute and refusal; the seed's sequence driven through Tango and read back from
Redis with the reader; change events received by a subscriber in another process.
"""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy
import pytest
import redis
import tango
from tango_checks import refused, wait_until

from tango_groups.bliss1.node import get_node
from tango_groups.devices.interface import event_value
from tango_groups.runtime.redis_server import RedisServer, free_port
from tango_groups.scanning.simulation import loopscan

HERE = Path(__file__).parent


def scan(device, npoints: int = 3):
    return loopscan(npoints, 0.0, device.session.config.get("diode"), session=device.session)


def npy(array: numpy.ndarray) -> bytes:
    buffer = io.BytesIO()
    numpy.save(buffer, array)
    return buffer.getvalue()


def test_idle_device_describes_itself(device) -> None:
    proxy = device.proxy
    assert proxy.State() == tango.DevState.ON
    assert device.session.name in proxy.Status()
    assert proxy.SequenceName == "" and proxy.ScanCount == 0
    assert proxy.SequenceState == 0  # IDLE
    assert list(proxy.ScanNumbers) == [] and list(proxy.ChannelNames) == []
    assert "Bliss 1.x data nodes" in proxy.description()
    config = proxy.get_attribute_config("SequenceState")
    assert list(config.enum_labels)[:3] == ["IDLE", "PREPARING", "STARTING"]
    assert proxy.get_attribute_config("ScanNumbers").max_dim_x >= 100_000
    assert proxy.get_command_config("AddScan").out_type_desc.startswith("db_name")


def test_seed_sequence_through_tango(device) -> None:
    proxy, session = device.proxy, device.session
    db_name = proxy.Start(json.dumps({
        "title": "sequence_of_scans",
        "scan_info": {"comment": "from Tango"},
        "channels": [{"name": "sum", "dtype": "float64", "unit": "count"}],
    }))
    assert db_name == f"{session.name}:tmp:scans:1_sequence_of_scans"
    assert proxy.State() == tango.DevState.RUNNING and proxy.SequenceNumber == 1
    assert proxy.SequenceName == db_name and proxy.Title == "sequence_of_scans"
    assert proxy.SequenceState == 2  # STARTING
    assert list(proxy.ChannelNames) == ["sum"]
    s1, s2 = scan(device, 3), scan(device, 3)
    assert proxy.AddScan(str(s1.scan_number)) == s1.db_name
    assert proxy.AddScan(s2.db_name) == s2.db_name
    diode = session.config.get("diode")
    total = s1.get_data()[diode] + s2.get_data()[diode]
    assert proxy.EmitChannel((total, ["sum"])) == 3
    assert proxy.End() == "DONE"
    assert proxy.State() == tango.DevState.ON
    assert proxy.SequenceState == 4  # DONE
    assert list(proxy.ScanNumbers) == [2, 3]
    assert list(proxy.ScanNames) == [s1.db_name, s2.db_name] and proxy.ScanCount == 2
    numpy.testing.assert_array_equal(proxy.sum, total)
    assert proxy.get_attribute_config("sum").unit == "count"
    assert json.loads(proxy.ScanInfo)["comment"] == "from Tango"

    node = get_node(db_name, connection=session.client)
    assert node.info["state"] == "DONE" and node.info["title"] == "sequence_of_scans"
    master = f"{db_name}:GroupingMaster"
    refs = get_node(f"{master}:scans", connection=session.client).get(0, -1)
    assert [ref.db_name for ref in refs] == [s1.db_name, s2.db_name]
    assert list(get_node(f"{master}:scan_numbers", connection=session.client).get(0, -1)) == [2, 3]
    summed = get_node(f"{master}:custom_channels:sum", connection=session.client)
    numpy.testing.assert_array_equal(summed.get(0, -1), total)


def test_scan_added_before_it_runs_is_referenced_when_it_starts(device) -> None:
    proxy = device.proxy
    proxy.Start("live")
    assert proxy.AddScan("2") == "pending:2"  # the sequence is scan 1; 2 is not allocated yet
    assert proxy.AddScan("3") == "pending:3"
    assert list(proxy.PendingScans) == [2, 3]
    refused("SequenceManager_DuplicateScan", lambda: proxy.AddScan("2"))
    s2 = scan(device)
    wait_until(lambda: proxy.ScanCount == 1)
    assert list(proxy.ScanNames) == [s2.db_name] and list(proxy.PendingScans) == [3]
    s3 = scan(device)
    wait_until(lambda: proxy.ScanCount == 2)
    assert list(proxy.ScanNames) == [s2.db_name, s3.db_name] and list(proxy.PendingScans) == []
    assert proxy.End() == "DONE"


def test_end_with_a_scan_that_never_started_fails_but_ends(device) -> None:
    proxy = device.proxy
    db_name = proxy.Start("")
    assert proxy.AddScan("7") == "pending:7"
    desc = refused("SequenceManager_ScansNotFinished", proxy.End)
    assert desc.startswith(f"sequence {db_name} ended DONE without scans [7]")
    assert proxy.State() == tango.DevState.ON and proxy.SequenceState == 4
    node = get_node(db_name, connection=device.session.client)
    assert node.info["state"] == "DONE"
    assert device.session.client.xlen(f"{db_name}_end") == 1


def test_abort_ends_as_user_aborted(device) -> None:
    proxy = device.proxy
    db_name = proxy.Start("to abort")
    proxy.AddScan("9")
    assert proxy.Abort() == "USER_ABORTED"
    assert proxy.SequenceState == 5 and list(proxy.PendingScans) == []
    assert get_node(db_name, connection=device.session.client).info["state"] == "USER_ABORTED"


def test_refusals_have_stable_reasons_and_write_nothing(device,
                                                        redis_client: redis.Redis) -> None:
    proxy = device.proxy
    for call in (lambda: proxy.AddScan("1"), proxy.End, proxy.Abort,
                 lambda: proxy.EmitChannel(([1.0], ["sum"]))):
        refused("SequenceManager_NotRunning", call)
    before = set(redis_client.keys())
    refused("SequenceManager_BadRequest", lambda: proxy.Start("{not json"))
    refused("SequenceManager_BadRequest", lambda: proxy.Start('{"titel": "typo"}'))
    refused("SequenceManager_BadChannel",
            lambda: proxy.Start('{"channels": [{"name": "x", "dtype": "complex128"}]}'))
    refused("SequenceManager_BadChannel", lambda: proxy.Start('{"channels": ["a:b"]}'))
    refused("SequenceManager_BadChannel", lambda: proxy.Start('{"channels": ["ScanCount"]}'))
    refused("SequenceManager_BadChannel", lambda: proxy.Start('{"channels": ["a", "A"]}'))
    assert set(redis_client.keys()) == before

    done = scan(device)
    db_name = proxy.Start(json.dumps({"channels": [
        {"name": "counts", "dtype": "int32"}, {"name": "spectrum", "shape": [4]}]}))
    refused("SequenceManager_AlreadyRunning", lambda: proxy.Start("again"))
    refused("SequenceManager_UnknownScan", lambda: proxy.AddScan(f"{db_name}_nothing"))
    refused("SequenceManager_NotAScan", lambda: proxy.AddScan(f"{db_name}:GroupingMaster"))
    proxy.AddScan(done.db_name)
    refused("SequenceManager_DuplicateScan", lambda: proxy.AddScan(str(done.scan_number)))
    refused("SequenceManager_DuplicateScan", lambda: proxy.AddScan(done.db_name))

    counts = f"{db_name}:GroupingMaster:custom_channels:counts"
    refused("SequenceManager_UnknownChannel", lambda: proxy.EmitChannel(([1.0], ["nope"])))
    refused("SequenceManager_BadData", lambda: proxy.EmitChannel(([1.5], ["counts"])))
    refused("SequenceManager_BadData", lambda: proxy.EmitChannel(([2.0**40], ["counts"])))
    refused("SequenceManager_BadData", lambda: proxy.EmitChannel(([1.0] * 5, ["spectrum"])))
    refused("SequenceManager_BadRequest", lambda: proxy.EmitChannel(([1.0], ["a", "b"])))
    refused("SequenceManager_BadData",
            lambda: proxy.EmitChannelEncoded(("counts", b"not npy")))
    refused("SequenceManager_BadData",
            lambda: proxy.EmitChannelEncoded(("spectrum", npy(numpy.zeros((2, 3))))))
    assert redis_client.xlen(counts + "_data") == 0
    assert list(proxy.counts) == []
    assert proxy.EmitChannel(([1.0, 2.0], ["counts"])) == 2
    assert proxy.End() == "DONE"


def test_unknown_scan_number(device) -> None:
    proxy = device.proxy
    scan(device)  # scan 1
    device.session.client.delete(f"{device.session.name}:tmp:scans:1_loopscan")  # "expired"
    proxy.Start("")  # scan 2
    desc = refused("SequenceManager_UnknownScan", lambda: proxy.AddScan("1"))
    assert "no scan number 1" in desc
    desc = refused("SequenceManager_NotAScan", lambda: proxy.AddScan("2"))  # 2: the sequence
    assert "the running sequence itself" in desc
    refused("SequenceManager_NotAScan", lambda: proxy.AddScan(proxy.SequenceName))
    proxy.Abort()


def test_channels_of_any_dtype_and_shape(device) -> None:
    proxy = device.proxy
    db_name = proxy.Start(json.dumps({"channels": [
        {"name": "roi", "dtype": "uint16", "shape": [3]},
        {"name": "flag", "dtype": "bool"}]}))
    block = numpy.array([[1, 2, 3], [4, 5, 65535]], dtype=numpy.uint16)
    assert proxy.EmitChannelEncoded(("roi", npy(block))) == 2
    assert proxy.EmitChannel(([7.0, 8.0, 9.0], ["roi"])) == 1
    assert proxy.EmitChannelEncoded(("flag", npy(numpy.array(True)))) == 1
    expected = numpy.vstack([block, [[7, 8, 9]]])
    numpy.testing.assert_array_equal(proxy.roi, expected)
    assert list(proxy.flag) == [True]
    channel = get_node(f"{db_name}:GroupingMaster:custom_channels:roi",
                       connection=device.session.client)
    stored = channel.get(0, -1)
    assert stored.dtype == numpy.uint16 and stored.tolist() == expected.tolist()
    proxy.End()
    # declared channels keep their attributes for the server's life; others live in Redis only
    refused("SequenceManager_BadChannel",
            lambda: proxy.Start('{"channels": [{"name": "roi", "dtype": "int8"}]}'))
    other = proxy.Start('{"channels": ["other", "roi"]}')
    attributes = proxy.get_attribute_list()
    assert "other" not in attributes and "roi" in attributes
    assert list(proxy.ChannelNames) == ["other", "roi"]
    assert proxy.roi.size == 0  # nothing emitted on roi in this sequence yet
    assert proxy.EmitChannel(([5.0], ["other"])) == 1
    assert get_node(f"{other}:GroupingMaster:custom_channels:other",
                    connection=device.session.client).get(0, -1).tolist() == [5.0]
    proxy.End()


def test_channels_property(start_device) -> None:
    device = start_device(Channels=["sum", '{"name": "sum"}'])
    assert device.proxy.State() == tango.DevState.FAULT
    assert "Channels" in device.proxy.Status() and "taken" in device.proxy.Status()
    proxy = start_device(Channels=["a", '{"name": "b", "dtype": "int16", "shape": [2]}']).proxy
    assert {"a", "b"} <= set(proxy.get_attribute_list())
    assert proxy.get_attribute_config("b").data_format == tango.AttrDataFormat.IMAGE
    assert proxy.Start('{"channels": ["b"]}') and proxy.EmitChannel(([1, 2], ["b"])) == 1
    assert proxy.b.tolist() == [[1, 2]]
    proxy.End()


def test_create_group(device) -> None:
    proxy = device.proxy
    s1, s2 = scan(device), scan(device)
    db_name = proxy.CreateGroup(f"{s1.scan_number} {s2.db_name}")
    assert db_name == f"{device.session.name}:tmp:scans:3_group_of_scans"
    refs = get_node(f"{db_name}:GroupingMaster:scans", connection=device.session.client)
    assert [ref.db_name for ref in refs.get(0, -1)] == [s1.db_name, s2.db_name]
    named = proxy.CreateGroup(json.dumps({"scans": [s2.scan_number], "title": "mine",
                                          "scan_info": {"sample": "Si"}}))
    group = get_node(named, connection=device.session.client)
    assert group.info["title"] == "mine" and group.info["sample"] == "Si"
    refused("SequenceManager_BadRequest", lambda: proxy.CreateGroup(""))
    refused("SequenceManager_UnknownScan", lambda: proxy.CreateGroup("99"))
    refused("SequenceManager_DuplicateScan", lambda: proxy.CreateGroup(f"1 {s1.db_name}"))


def test_fault_while_redis_is_unreachable_then_recovery(start_device) -> None:
    port = free_port()
    device = start_device(RedisURL=f"redis://:secret@127.0.0.1:{port}")
    proxy = device.proxy
    assert proxy.State() == tango.DevState.FAULT
    status = proxy.Status()
    assert "unreachable" in status and "secret" not in status and "***" in status
    desc = refused("SequenceManager_RedisUnavailable", lambda: proxy.Start(""))
    assert "secret" not in desc
    with RedisServer(port=port, password="secret"):
        wait_until(lambda: proxy.State() == tango.DevState.ON)
        assert proxy.Start("").endswith("1_sequence_of_scans")
        proxy.End()


def test_change_events_reach_a_subscriber_in_another_process(device) -> None:
    proxy = device.proxy
    attributes = ["State", "SequenceName", "SequenceState", "ScanNumbers", "ScanCount",
                  "PendingScans"]
    subscriber = subprocess.Popen(
        [sys.executable, str(HERE / "subscriber.py"), device.trl, "SequenceState=4",
         *attributes],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while (line := subscriber.stdout.readline().strip()) != "READY":
            assert line, subscriber.stderr.read()
            lines.append(json.loads(line))
        assert {line["attr"].lower() for line in lines} == {a.lower() for a in attributes}
        db_name = proxy.Start("evented")
        s2 = scan(device)
        proxy.AddScan(str(s2.scan_number))
        assert proxy.AddScan("3") == "pending:3"
        s3 = scan(device)
        wait_until(lambda: proxy.ScanCount == 2)
        proxy.End()
    finally:
        out, err = subscriber.communicate(timeout=90)
    assert subscriber.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    by_attr: dict[str, list] = {}
    for event in events:
        assert "error" not in event, event
        by_attr.setdefault(event["attr"].lower(), []).append(event["value"])
    assert by_attr["scancount"] == [0, 1, 2]  # Start, AddScan, pending scan started
    assert by_attr["scannumbers"] == [[], [2], [2, 3]]
    assert by_attr["pendingscans"] == [[], [3], [], []]  # Start, AddScan, started, End
    assert by_attr["sequencename"] == [db_name]
    assert by_attr["sequencestate"] == [2, 4]  # STARTING, DONE
    assert by_attr["state"][0] == "RUNNING" and by_attr["state"][-1] == "ON"
    assert s3.db_name in proxy.ScanNames


def test_channel_attributes_push_change_and_data_ready_events(device) -> None:
    proxy = device.proxy
    proxy.Start('{"channels": ["sum"]}')
    received: queue.Queue = queue.Queue()

    def callback(event: tango.EventData) -> None:
        assert not event.err, event.errors
        if event.event == "data_ready":
            received.put(("ready", event.ctr))
        else:
            received.put(("change", event_value(event.attr_value).tolist()))

    change = proxy.subscribe_event("sum", tango.EventType.CHANGE_EVENT, callback)
    ready = proxy.subscribe_event("sum", tango.EventType.DATA_READY_EVENT, callback)
    try:
        assert received.get(timeout=5) == ("change", [])  # the subscription's initial value
        proxy.EmitChannel(([1.0], ["sum"]))
        proxy.EmitChannel(([2.0, 3.0], ["sum"]))
        events = [received.get(timeout=5) for _ in range(4)]
    finally:
        proxy.unsubscribe_event(change)
        proxy.unsubscribe_event(ready)
    assert [e for e in events if e[0] == "change"] == [("change", [1.0]),
                                                       ("change", [1.0, 2.0, 3.0])]
    assert [e for e in events if e[0] == "ready"] == [("ready", 1), ("ready", 2)]
    proxy.End()


def test_fault_while_redis_hangs_then_recovery(start_device) -> None:
    with RedisServer() as server:
        device = start_device(RedisURL=server.url, RedisTimeout=1.0)
        proxy = device.proxy
        assert proxy.State() == tango.DevState.ON
        os.kill(server.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: proxy.State() == tango.DevState.FAULT, timeout=20)
            assert "Timeout" in proxy.Status()
        finally:
            os.kill(server.pid, signal.SIGCONT)
        wait_until(lambda: proxy.State() == tango.DevState.ON, timeout=20)


def test_init_ends_a_running_sequence_as_killed(device) -> None:
    proxy = device.proxy
    db_name = proxy.Start("interrupted")
    proxy.Init()
    assert proxy.State() == tango.DevState.ON and proxy.SequenceName == ""
    node = get_node(db_name, connection=device.session.client)
    assert node.info["state"] == "KILLED"
    assert device.session.client.xlen(f"{db_name}_end") == 1
    assert proxy.Start("next").endswith("2_next")
    proxy.End()


def test_concurrent_clients_are_serialised(device) -> None:
    proxy = device.proxy
    db_name = proxy.Start("busy")
    scans = [scan(device, 1) for _ in range(24)]
    trl = device.trl
    errors: list[BaseException] = []

    def add(part: list) -> None:
        client = tango.DeviceProxy(trl)
        try:
            for s in part:
                client.AddScan(s.db_name)
        except BaseException as error:  # noqa: BLE001 (reported by the assertion below)
            errors.append(error)

    threads = [threading.Thread(target=add, args=(scans[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert proxy.End() == "DONE" and proxy.ScanCount == 24
    master = f"{db_name}:GroupingMaster"
    refs = get_node(f"{master}:scans", connection=device.session.client).get(0, -1)
    numbers = get_node(f"{master}:scan_numbers", connection=device.session.client).get(0, -1)
    assert sorted(ref.db_name for ref in refs) == sorted(s.db_name for s in scans)
    assert [int(ref.info["scan_nb"]) for ref in refs] == list(numbers)  # pairs stay aligned
    assert list(proxy.ScanNames) == [ref.db_name for ref in refs]


def test_invalid_properties_put_the_device_in_fault(start_device) -> None:
    proxy = start_device(Session="bad:name").proxy
    assert proxy.State() == tango.DevState.FAULT
    assert "Invalid property" in proxy.Status() and "Init" in proxy.Status()
    refused("SequenceManager_NotConfigured", lambda: proxy.Start(""))
    with pytest.raises(tango.DevFailed):
        proxy.read_attribute("ScanCount")


def test_redis_password_from_a_file(start_device, tmp_path) -> None:
    secret = tmp_path / "redis_password"
    secret.write_text("s3cret\n")
    with RedisServer(password="s3cret") as server:
        url = f"redis://127.0.0.1:{server.port}"  # no password in the Tango database
        proxy = start_device(RedisURL=url, RedisPasswordFile=str(secret)).proxy
        assert proxy.State() == tango.DevState.ON
        assert proxy.Start("").endswith("1_sequence_of_scans")
        proxy.End()
        missing = start_device(RedisURL=url, RedisPasswordFile=str(tmp_path / "nope")).proxy
        assert missing.State() == tango.DevState.FAULT
        assert "RedisPasswordFile" in missing.Status()
