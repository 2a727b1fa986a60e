"""The SequenceManager against hostile input and faults: every refusal has a SequenceManager_*
reason and writes nothing, no fault leaves the device needing a restart, and a sequence is never
left open (issue 6). Real server processes, real redis-server; Redis is paused with SIGSTOP."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator

import numpy
import pytest
import redis
import tango
from hostile import evil_pickle
from redis_checker import KeySnapshot
from tango_checks import refused, wait_until
from test_sequence_manager import npy, scan

from tango_groups.bliss1.node import get_node
from tango_groups.bliss1.writer import GroupWriter
from tango_groups.data import running
from tango_groups.runtime.redis_server import RedisServer
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def test_start_refuses_what_tango_or_redis_cannot_hold_and_writes_nothing(device) -> None:
    proxy, client = device.proxy, device.session.client
    before = KeySnapshot.take(client)
    for channel in ({"name": "x", "dtype": "float16"}, {"name": "x", "dtype": "longdouble"},
                    {"name": "x", "shape": [100_000_000_000]},
                    {"name": "x", "shape": [100_000, 100_000]}):
        desc = refused("SequenceManager_BadChannel",
                       lambda c=channel: proxy.Start(json.dumps({"channels": [c]})))
        assert "x" in desc
    for depth in (100_000, 40):
        nested = "[" * depth + "]" * depth
        refused("SequenceManager_BadRequest",
                lambda n=nested: proxy.Start(f'{{"title": "t", "scan_info": {{"a": {n}}}}}'))
    refused("SequenceManager_BadRequest", lambda: proxy.Start("t" * 1000))
    assert KeySnapshot.take(client).diff(before) == []
    assert proxy.State() == tango.DevState.ON and proxy.SequenceName == ""
    assert proxy.Start(json.dumps({"channels": [{"name": "img", "shape": [64, 64]}]}))
    assert proxy.End() == "DONE"


LONE_SURROGATE = "\udc80"  # what JSON's "\\udc80" escape gives: no UTF-8 encodes it


def test_text_redis_cannot_store_is_refused_before_any_write(device) -> None:
    """A lone surrogate anywhere in a scan_info (key or value), a unit or a reference: refused
    (BadRequest / BadChannel, naming what), nothing written, no scan number taken; NUL and text
    beyond Latin-1 are stored and read back as sent."""
    proxy, client = device.proxy, device.session.client
    scans = [scan(device)]
    before = KeySnapshot.take(client)
    for info in ({LONE_SURROGATE: 1}, {"a": ["x" + LONE_SURROGATE]}, {"a": {LONE_SURROGATE: 2}}):
        for command, request in (("Start", {"scan_info": info}),
                                 ("CreateGroup", {"scans": [1], "scan_info": info})):
            desc = refused("SequenceManager_BadRequest",
                           lambda c=command, r=request: proxy.command_inout(c, json.dumps(r)))
            assert "scan_info" in desc and "lone surrogate" in desc
    channel = {"name": "x", "unit": "m" + LONE_SURROGATE}
    assert "unit" in refused("SequenceManager_BadChannel",
                             lambda: proxy.Start(json.dumps({"channels": [channel]})))
    refused("SequenceManager_BadRequest",
            lambda: proxy.CreateGroup(json.dumps([scans[0].db_name + LONE_SURROGATE])))
    assert KeySnapshot.take(client).diff(before) == []
    stored = {"a\x00b": "\u4e2d\u6587", "\u00e9\U0001f600": ["\x00", {"\u4e2d": 1}]}
    db_name = proxy.Start(json.dumps({"scan_info": stored}))
    assert db_name.endswith(f":{scans[0].scan_number + 1}_sequence_of_scans")  # none skipped
    assert {key: json.loads(proxy.ScanInfo)[key] for key in stored} == stored
    assert {key: get_node(db_name, connection=client).info[key] for key in stored} == stored
    assert proxy.End() == "DONE"


def test_scan_references_that_are_not_scans_are_refused(device) -> None:
    proxy = device.proxy
    proxy.Start("")
    for text in ("9" * 30, "0", "²", "-1", "", "  ", "a:", ":b"):
        refused("SequenceManager_BadRequest", lambda t=text: proxy.AddScan(t))
    assert list(proxy.PendingScans) == []  # a refused number is not left pending
    assert proxy.AddScan("5") == "pending:5"
    assert list(proxy.PendingScans) == [5]
    refused("SequenceManager_BadRequest", lambda: proxy.CreateGroup("9" * 30))
    refused("SequenceManager_BadRequest", lambda: proxy.CreateGroup("[" * 50 + "]" * 50))
    assert proxy.Abort() == "USER_ABORTED"


def test_points_that_would_lose_information_are_refused(device) -> None:
    proxy = device.proxy
    db_name = proxy.Start(json.dumps({"channels": ["sum"]}))
    data = f"{db_name}:GroupingMaster:custom_channels:sum_data"
    refused("SequenceManager_BadData",
            lambda: proxy.EmitChannelEncoded(("sum", npy(numpy.array([1 + 2j])))))
    refused("SequenceManager_BadData", lambda: proxy.EmitChannelEncoded(("sum", b"")))
    assert device.session.client.xlen(data) == 0
    assert proxy.EmitChannelEncoded(("sum", npy(numpy.array([1.5, 2.5])))) == 2
    assert proxy.End() == "DONE"


def test_a_scan_whose_info_is_refused_is_refused_alone(device) -> None:
    """A planted pickle in a scan's info: AddScan and CreateGroup refuse that scan with the
    reason, nothing is written, a pending number keeps being followed, End still works."""
    proxy, client = device.proxy, device.session.client
    bad, good = scan(device), scan(device)
    client.hset(bad.db_name + "_info", "state", evil_pickle())
    db_name = proxy.Start("")
    for reference in (bad.db_name, str(bad.scan_number)):
        desc = refused("SequenceManager_NotAScan", lambda r=reference: proxy.AddScan(r))
        assert "state" in desc and "cannot be read safely" in desc
    before = KeySnapshot.take(client)
    refused("SequenceManager_NotAScan", lambda: proxy.CreateGroup(f"{good.db_name} {bad.db_name}"))
    assert KeySnapshot.take(client).diff(before) == []

    assert proxy.AddScan(good.db_name) == good.db_name
    hostile_next, clean_after = "pending:4", "pending:5"  # 1, 2: scans; 3: the sequence
    assert proxy.AddScan("4") == hostile_next and proxy.AddScan("5") == clean_after
    model = device.session.model
    planted = model.writer.create_scan(model.scan_saving_parent, "planted",
                                       {"scan_nb": evil_pickle()})
    client.hset(planted.db_name + "_info", "scan_nb", evil_pickle())
    planted.prepared({})
    clean = scan(device)
    wait_until(lambda: list(proxy.ScanNames) == [good.db_name, clean.db_name])
    assert list(proxy.PendingScans) == [4]
    refused("SequenceManager_ScansNotFinished", proxy.End)
    assert proxy.State() == tango.DevState.ON
    assert client.xlen(db_name + "_end") == 1


def test_a_number_allocated_but_not_registered_yet_is_pending(device) -> None:
    """Another writer took number 2 (HINCRBY) and has not registered its scan yet."""
    proxy, session = device.proxy, device.session
    proxy.Start("")  # 1
    counter = session.scan_saving_db_name
    session.client.hincrby(counter, "last_scan_number", 1)  # 2 is taken, its node not written
    assert proxy.AddScan("2") == "pending:2"
    session.client.hincrby(counter, "last_scan_number", -1)  # the writer now creates scan 2
    late = scan(device)
    assert late.scan_number == 2
    wait_until(lambda: list(proxy.ScanNames) == [late.db_name])
    assert proxy.End() == "DONE"


def test_end_while_redis_hangs_then_end_again(start_device, own_redis) -> None:
    device = start_device(RedisURL=own_redis.url, RedisTimeout=0.5)
    proxy = device.proxy
    db_name = proxy.Start(json.dumps({"channels": ["sum"]}))
    with own_redis.paused():
        refused("SequenceManager_RedisUnavailable", proxy.End)
        refused("SequenceManager_RedisUnavailable", proxy.Abort)
        assert proxy.State() in (tango.DevState.FAULT, tango.DevState.RUNNING)
    wait_until(lambda: proxy.State() == tango.DevState.RUNNING)
    assert proxy.End() == "DONE"
    client = redis.Redis.from_url(own_redis.url, db=1)
    assert client.xlen(db_name + "_end") == 1
    assert get_node(db_name, connection=client).info["state"] == "DONE"
    assert proxy.Start("next").endswith("2_next")  # not wedged
    assert proxy.End() == "DONE"


def test_a_write_that_timed_out_is_retried_exactly_once(start_device, own_redis) -> None:
    """The XADD reaches Redis while it is paused, the device gives up, Redis resumes and
    executes it: the device takes the landed points in, and the client's retry writes nothing."""
    device = start_device(RedisURL=own_redis.url, RedisTimeout=0.5)
    proxy = device.proxy
    db_name = proxy.Start(json.dumps({"channels": ["sum"]}))
    proxy.EmitChannel(([1.0], ["sum"]))
    with own_redis.paused():
        refused("SequenceManager_RedisUnavailable", lambda: proxy.EmitChannel(([2.0], ["sum"])))
    wait_until(lambda: proxy.State() == tango.DevState.RUNNING)
    assert proxy.EmitChannel(([2.0], ["sum"])) == 1  # the retry
    assert proxy.EmitChannel(([3.0], ["sum"])) == 1
    client = redis.Redis.from_url(own_redis.url, db=1)
    node = get_node(f"{db_name}:GroupingMaster:custom_channels:sum", connection=client)
    assert list(node.get(0, -1)) == [1.0, 2.0, 3.0]
    assert list(proxy.sum) == [1.0, 2.0, 3.0]
    assert proxy.End() == "DONE"


def test_init_while_redis_hangs_keeps_the_device_usable(start_device, own_redis) -> None:
    device = start_device(RedisURL=own_redis.url, RedisTimeout=0.5)
    proxy = device.proxy
    db_name = proxy.Start("")
    with own_redis.paused():
        proxy.Init()  # cannot end the sequence now: its record stays in Redis
    wait_until(lambda: proxy.State() == tango.DevState.ON)
    client = redis.Redis.from_url(own_redis.url, db=1)
    # closed exactly once: by the END that landed late, or else by the recovery of the record
    wait_until(lambda: client.xlen(db_name + "_end") == 1)
    assert get_node(db_name, connection=client).info["state"] == "KILLED"
    wait_until(lambda: not client.keys("tango_groups:running:*"))
    assert proxy.Start("").endswith("2_sequence_of_scans") and proxy.End() == "DONE"
    assert client.xlen(db_name + "_end") == 1


@pytest.mark.parametrize("mode", ["close", "resume"])
def test_a_sequence_left_by_a_killed_server_is_closed_or_resumed(
        start_device, kill_device: Callable, redis_url: str, mode: str) -> None:
    device = start_device(RecoveryMode=mode)
    proxy, session = device.proxy, device.session
    done = scan(device)
    db_name = proxy.Start(json.dumps({"channels": ["sum"]}))
    proxy.AddScan(done.db_name)
    proxy.EmitChannel(([1.0, 2.0], ["sum"]))
    proxy.AddScan("9")  # pending
    kill_device(device)
    assert session.client.xlen(db_name + "_end") == 0  # nobody closed it
    listener = get_node(db_name, connection=session.client).walk_events(
        include_filter="scan_group", wait=True)

    proxy = start_device(RecoveryMode=mode, Session=session.name).proxy
    # it stands by until the killed server's lease expired (LeaseTime 1.5 s), then recovers
    wait_until(lambda: proxy.State() != tango.DevState.FAULT, what=proxy.Status)
    assert proxy.SequenceName == db_name and list(proxy.ScanNames) == [done.db_name]
    assert list(proxy.sum) == [1.0, 2.0]
    if mode == "close":
        assert proxy.State() == tango.DevState.ON and proxy.SequenceState == 6  # KILLED
        assert session.client.ttl(db_name) > 0
        wait_until(lambda: session.client.xlen(db_name + "_end") == 1)
        assert any(event.type.name == "END_SCAN" for event in listener)  # readers released
    else:
        listener.stop()
        assert proxy.State() == tango.DevState.RUNNING and list(proxy.PendingScans) == [9]
        assert proxy.EmitChannel(([3.0], ["sum"])) == 1
        assert proxy.Abort() == "USER_ABORTED"
        node = get_node(f"{db_name}:GroupingMaster:custom_channels:sum",
                        connection=session.client)
        assert list(node.get(0, -1)) == [1.0, 2.0, 3.0]
    assert session.client.xlen(db_name + "_end") == 1


def test_a_sequence_lost_by_redis_is_reported_then_cleared(start_device, own_redis) -> None:
    """Redis loses its data (a restart without persistence, a FLUSHALL) under a sequence."""
    device = start_device(RedisURL=own_redis.url)
    proxy = device.proxy
    db_name = proxy.Start(json.dumps({"channels": ["sum"]}))
    redis.Redis.from_url(own_redis.url).flushall()
    wait_until(lambda: proxy.State() == tango.DevState.FAULT)
    assert db_name in proxy.Status() and "End or Abort" in proxy.Status()
    for call in (lambda: proxy.AddScan("3"), lambda: proxy.EmitChannel(([1.0], ["sum"])),
                 lambda: proxy.Start("")):
        refused("SequenceManager_SequenceLost", call)
    refused("SequenceManager_SequenceLost", proxy.End)  # says so, and clears it
    assert proxy.State() == tango.DevState.ON and proxy.SequenceState == 6  # KILLED
    assert proxy.Start("again").endswith("1_again")  # the counter went with the data
    assert proxy.End() == "DONE"


def test_a_crafted_end_elsewhere_does_not_stop_the_pending_follower(device) -> None:
    proxy, client = device.proxy, device.session.client
    proxy.Start("")  # 1
    assert proxy.AddScan("3") == "pending:3"
    session = device.session
    hostile = session.model.writer.create_scan(session.model.scan_saving_parent, "hostile",
                                               {})  # 2
    hostile.prepared({})
    client.xadd(hostile.db_name + "_end", {"__EVENT__": "END_SCAN",
                                           "__EXCEPTION__": evil_pickle()})
    awaited = scan(device)  # 3
    wait_until(lambda: list(proxy.ScanNames) == [awaited.db_name])
    assert proxy.End() == "DONE"


def test_a_sequence_left_before_it_was_prepared_is_closed(start_device, session_name,
                                                          redis_url) -> None:
    """A crash between the node's creation and its PREPARED: even resume closes it."""
    name = f"{session_name}_early"
    with contextlib.closing(Session(name, redis_url=redis_url)) as session:
        group = session.model.writer.create_scan(session.model.scan_saving_parent, "early",
                                                 {"state": "PREPARING"},
                                                 node_type="scan_group",
                                                 channels=GroupWriter.channel_specs(),
                                                 writer_class=GroupWriter)
        key = running.record_key(name, "test/nodb/sequencemanager")
        running.save(session.client, key, running.RunningRecord(group.db_name))
        proxy = start_device(Session=name, RecoveryMode="resume").proxy
        assert proxy.State() == tango.DevState.ON and proxy.SequenceName == group.db_name
        assert session.client.xlen(group.db_name + "_end") == 1
        assert get_node(group.db_name, connection=session.client).info["state"] == "KILLED"
        assert session.client.get(key) is None


def test_numbers_registered_out_of_order_are_pending(device) -> None:
    """Scans 2 and 3 are allocated by two writers; 3 registers first: 2 is still pending."""
    proxy, session = device.proxy, device.session
    proxy.Start("")  # 1
    container = session.scan_saving_db_name
    session.client.hincrby(container, "last_scan_number", 1)  # 2: allocated, not registered
    third = scan(device)
    assert third.scan_number == 3
    assert proxy.AddScan("2") == "pending:2"
    session.client.hincrby(container, "last_scan_number", -2)  # the first writer creates 2
    second = scan(device)
    assert second.scan_number == 2
    wait_until(lambda: list(proxy.ScanNames) == [second.db_name])
    assert proxy.End() == "DONE"


def test_an_image_channel_reads_empty_before_its_first_point(start_device) -> None:
    proxy = start_device(Channels=['{"name": "frame", "shape": [2, 2]}']).proxy
    assert proxy.frame is None or proxy.frame.size == 0
    proxy.Start('{"channels": ["frame"]}')
    assert proxy.frame is None or proxy.frame.size == 0
    assert proxy.EmitChannel(([1, 2, 3, 4], ["frame"])) == 1
    assert proxy.frame.tolist() == [[1, 2, 3, 4]]
    proxy.End()


def test_end_that_failed_with_a_pending_scan_then_end_again(start_device, own_redis) -> None:
    """End fails (Redis hangs) while a number is pending; its scan starts once Redis is back:
    the failed End took no more scans, and End again gives exactly one END."""
    device = start_device(RedisURL=own_redis.url, RedisTimeout=0.5, HealthCheckPeriod=3.0,
                          LeaseTime=0)  # its default: 2 x 3.0 + 0.5 s
    proxy = device.proxy
    session = Session(device.session.name, redis_url=own_redis.url)
    db_name = proxy.Start("")
    assert proxy.AddScan("2") == "pending:2"
    with own_redis.paused():
        refused("SequenceManager_RedisUnavailable", proxy.Abort)
    # runs before the device's next check of Redis, which finds it prepared
    late = loopscan(2, 0.0, session.config.get("diode"), session=session)
    assert late.scan_number == 2
    wait_until(lambda: proxy.State() == tango.DevState.RUNNING)
    assert proxy.Abort() == "USER_ABORTED"
    assert list(proxy.ScanNames) == [] and session.client.xlen(db_name + "_end") == 1
    session.close()
