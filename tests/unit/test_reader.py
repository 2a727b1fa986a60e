"""The reader (``tango_groups.bliss1.node`` and the modules behind it) on data our writer wrote.

Lookup, node classes, struct and info decoding, channel data access, the walk family in
blissdata's order (finished data and live data, also from a writer in another process), stopping
walks, and how much a filtered walk asks of Redis. Synchronisation is done with handshakes and
conditions polled against deadlines, never with sleeps.
"""

from __future__ import annotations

import datetime
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

import numpy
import pytest
import redis
from hostile import evil_pickle

from tango_groups.bliss1 import keys
from tango_groups.bliss1.channel import ChannelNode
from tango_groups.bliss1.encoding import UnsafePickleError
from tango_groups.bliss1.events import UnreadableEntryError, UnsafeEntryError
from tango_groups.bliss1.node import (
    ChannelDataNode,
    DataNode,
    DataNodeContainer,
    Event,
    EventType,
    GroupScanNode,
    NodeRefChannel,
    ScanNode,
    get_node,
    get_nodes,
    get_session_node,
    sessions_list,
)
from tango_groups.bliss1.node_lookup import make_node
from tango_groups.bliss1.writer import DataWriter, GroupWriter, ScanWriter

DEADLINE = 30.0  # seconds: a live walk that sees nothing for this long has failed

SCAN_CHANNELS = [
    ChannelNode(("timer",), "elapsed_time", float, unit="s"),
    ChannelNode(("timer",), "epoch", float, unit="s"),
    ChannelNode(("timer", "mca1"), "spectrum_det0", numpy.uint32, (4,)),
    ChannelNode(("timer", "0001"), "empty", float),  # device name auto-coerces to 1
]


# -- helpers --------------------------------------------------------------------------------------
@pytest.fixture
def writer(redis_client: redis.Redis) -> DataWriter:
    return DataWriter(redis_client)


def parent_of(writer: DataWriter, session: str) -> str:
    return writer.ensure_containers(keys.scan_saving_parts(session, "/tmp/scans"))


def run_scan(writer: DataWriter, parent: str, name: str = "loopscan", *, end: bool = True,
             specs: Iterable[ChannelNode] = SCAN_CHANNELS, **info: Any) -> ScanWriter:
    """A finished scan with blocks and single points (``empty`` stays empty)."""
    scan = writer.create_scan(parent, name, {"title": name, "type": name, **info},
                              channels=list(specs))
    scan.prepared({})
    names = {spec.channel_fullname for spec in specs}
    first = {"timer:elapsed_time": 0.0, "mca1:spectrum_det0": numpy.arange(4)}
    scan.emit({k: v for k, v in first.items() if k in names})
    rest = {"timer:elapsed_time": [0.1, 0.2], "timer:epoch": [1e9, 1e9 + 0.1, 1e9 + 0.2],
            "mca1:spectrum_det0": numpy.arange(4, 12).reshape(2, 4)}
    scan.emit({k: v for k, v in rest.items() if k in names})
    if end:
        scan.end({}, "DONE")
    return scan


def run_group(writer: DataWriter, parent: str, *scans: str, name: str = "group_of_scans"
              ) -> GroupWriter:
    group = writer.create_scan(parent, name, {"title": name, "is-scan-sequence": True},
                               node_type="scan_group", channels=GroupWriter.channel_specs(),
                               writer_class=GroupWriter)
    group.prepared({})
    for number, db_name in enumerate(scans, start=1):
        group.publish_scan(db_name, number)
    group.end({}, "DONE")
    return group


@pytest.fixture
def finished(writer: DataWriter, session_name: str) -> dict[str, str]:
    """A session: scans 1 and 2, group 3 referencing them and a missing scan, shadow _1_ct."""
    parent = parent_of(writer, session_name)
    s1 = run_scan(writer, parent)
    s2 = run_scan(writer, parent)
    group = run_group(writer, parent, s1.db_name, s2.db_name, f"{parent}:99_missing")
    shadow = writer.create_scan(parent, "ct", {"title": "ct 0.1", "type": "ct", "save": False},
                                shadow=True)
    shadow.prepared({})
    return {"session": session_name, "parent": parent, "s1": s1.db_name, "s2": s2.db_name,
            "group": group.db_name, "shadow": shadow.db_name}


def db_names(nodes: Iterable[DataNode | None]) -> list[str | None]:
    return [None if node is None else node.db_name for node in nodes]


def lines(events: Iterable[Event]) -> list[tuple[str, str]]:
    return [(event.type.name, event.node.db_name) for event in events]


def until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll ``condition`` until it holds (no fixed sleep: the deadline only bounds a failure)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"


def server_ms(client: redis.Redis) -> int:
    seconds, microseconds = client.time()
    return seconds * 1000 + microseconds // 1000


class Watchdog:
    """Stops a live walk at the deadline, so that a failing test ends instead of hanging."""

    def __init__(self, walk: Any, timeout: float = DEADLINE) -> None:
        self.fired = False
        self._walk = walk
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        self._walk.stop()

    def __enter__(self) -> Self:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        self._walk.close()


# -- lookup and node classes ----------------------------------------------------------------------
def test_get_node_picks_the_class_from_the_node_type(finished, redis_client):
    s1, group = finished["s1"], finished["group"]
    master = f"{group}:GroupingMaster"
    expected = {
        finished["parent"]: (DataNodeContainer, "container"),
        s1: (ScanNode, "scan"),
        group: (GroupScanNode, "scan_group"),
        f"{s1}:timer": (DataNodeContainer, "None"),  # Bliss's device containers: the text None
        f"{s1}:timer:elapsed_time": (ChannelDataNode, "channel"),
        f"{master}:scans": (NodeRefChannel, "node_ref_channel"),
        f"{master}:scan_numbers": (ChannelDataNode, "channel"),
    }
    for db_name, (cls, node_type) in expected.items():
        node = get_node(db_name, connection=redis_client)
        assert type(node) is cls and node.type == node_type and node.db_name == db_name
    assert not isinstance(get_node(s1, connection=redis_client), GroupScanNode)
    assert isinstance(get_node(group, connection=redis_client), ScanNode)


def test_missing_and_unversioned_nodes_are_none(finished, redis_client):
    parent, s1 = finished["parent"], finished["s1"]
    redis_client.hset(f"{parent}:5_raw", mapping={"name": "5_raw", "node_type": "scan"})
    redis_client.hset(f"{parent}:6_old", mapping={"name": "6_old", "node_type": "scan",
                                                  "version": "v2.0"})
    assert get_node(f"{parent}:42_nothing", connection=redis_client) is None
    assert get_node(f"{parent}:5_raw", connection=redis_client) is None  # no version
    assert get_node(f"{parent}:6_old", connection=redis_client) is None  # major version 2
    nodes = get_nodes(s1, f"{parent}:5_raw", f"{parent}:42_nothing", finished["session"],
                      connection=redis_client)
    assert db_names(nodes) == [s1, None, None, finished["session"]]
    assert get_nodes(connection=redis_client) == []


def test_connection_may_be_a_url(finished, redis_url):
    node = get_node(finished["s1"], connection=redis_url)  # redis://host:port -> db 1
    assert isinstance(node, ScanNode) and node.info["type"] == "loopscan"


def test_session_node_and_sessions_list(finished, writer, redis_client):
    other = finished["session"] + "_b"
    parent_of(writer, other)
    root = get_session_node(finished["session"], connection=redis_client)
    assert type(root) is DataNodeContainer and root.type == "container"
    assert root.db_name == finished["session"] and root.parent is None
    assert db_names(sessions_list(connection=redis_client)) == [finished["session"], other]
    ghost = get_session_node("never_written", connection=redis_client)  # exists or not
    assert ghost.type is None and list(ghost.walk(wait=False)) == []
    with pytest.raises(ValueError, match="can't contain ':'"):
        get_session_node("a:b", connection=redis_client)


def test_names_are_auto_coerced_and_channels_are_named_by_fullname(finished, writer,
                                                                   redis_client):
    s1 = finished["s1"]
    assert get_node(f"{s1}:timer:0001", connection=redis_client).name == 1
    channel = get_node(f"{s1}:timer:elapsed_time", connection=redis_client)
    assert channel.name == "timer:elapsed_time" and channel.short_name == "elapsed_time"
    assert channel.fullname == "timer:elapsed_time" and channel.unit == "s"
    assert channel.shape == () and channel.dtype is float
    assert get_node(s1, connection=redis_client).name == "1_loopscan"
    scan = writer.create_scan(finished["parent"], "odd", {}, channels=[
        ChannelNode(("True",), "x", float), ChannelNode(("2.5",), "y", float)])
    assert get_node(f"{scan.db_name}:True", connection=redis_client).name is True
    assert get_node(f"{scan.db_name}:2.5", connection=redis_client).name == 2.5


def test_parent_and_iterator(finished, redis_client):
    s1 = finished["s1"]
    channel = get_node(f"{s1}:timer:mca1:spectrum_det0", connection=redis_client)
    chain = []
    node: DataNode | None = channel
    while node is not None:
        chain.append(node.db_name)
        node = node.parent
    assert chain == [f"{s1}:timer:mca1:spectrum_det0", f"{s1}:timer:mca1", f"{s1}:timer", s1,
                     finished["parent"], f"{finished['session']}:tmp", finished["session"]]
    assert type(get_node(s1, connection=redis_client).parent) is DataNodeContainer
    assert channel.iterator is channel


def test_nodes_find_others_through_the_lookup_that_made_them(finished, redis_client):
    """Nodes reach their parent, walks and references through the lookup (``node_lookup``): a
    node made with its class reads its own keys, and says why it cannot reach other nodes."""
    s1 = finished["s1"]
    made = make_node(redis_client, s1, "scan")  # what the lookup makes, nothing read yet
    assert type(made) is ScanNode and made.parent.db_name == finished["parent"]
    assert f"{s1}:timer" in db_names(made.walk(wait=False))
    channel = ChannelDataNode(redis_client, f"{s1}:timer:elapsed_time")
    assert channel.type == "channel" and channel.get(0, -1).tolist() == [0.0, 0.1, 0.2]
    scan = ScanNode(redis_client, s1)
    assert scan.info["type"] == "loopscan"
    for reach in (lambda: scan.parent, lambda: scan.walk(wait=False)):
        with pytest.raises(RuntimeError, match="not made by a lookup"):
            reach()


# -- info -----------------------------------------------------------------------------------------
def test_info_is_a_mapping_of_unpickled_values(finished, redis_client):
    scan = get_node(finished["s1"], connection=redis_client)
    info = scan.info
    assert info["scan_nb"] == 1 and info["title"] == "loopscan" and info["state"] == "DONE"
    assert info.get("type") == "loopscan"
    assert info.get("nothing") is None and info.get("nothing", "default") == "default"
    with pytest.raises(KeyError):
        info["nothing"]
    assert "scan_nb" in info and "nothing" not in info and 1 not in info
    everything = info.get_all()
    assert everything["node_name"] == finished["s1"] and everything["type"] == "loopscan"
    assert set(info.keys()) == set(everything) and len(info) == len(everything)
    assert sorted(info) == sorted(everything) and dict(info.items()) == everything
    assert isinstance(everything["end_time"], datetime.datetime)
    assert isinstance(everything["end_timestamp"], float)
    unit = get_node(f"{finished['s1']}:timer:0001:empty", connection=redis_client).info
    assert unit["unit"] is None and "unit" in unit  # a stored None is a value
    container = get_node(finished["parent"], connection=redis_client)
    assert container.info.get_all() == {} and len(container.info) == 0
    assert "scan_nb" not in container.info


def test_a_refused_pickle_raises_and_runs_nothing(finished, redis_client, tmp_path):
    control, marker = tmp_path / "control", tmp_path / "marker"
    pickle.loads(evil_pickle(f"touch {control}"))  # proves the payload runs
    assert control.exists()
    payload = evil_pickle(f"touch {marker}")
    s1 = finished["s1"]
    redis_client.hset(s1 + "_info", "evil", payload)
    info = get_node(s1, connection=redis_client).info
    for read in (lambda: info["evil"], lambda: info.get("evil"), info.get_all, info.values):
        with pytest.raises(UnsafePickleError, match="evil"):
            read()
    assert "evil" in info and info["title"] == "loopscan"  # the rest stays readable
    redis_client.hset(s1 + "_info", "text", b"not a pickle")
    with pytest.raises(ValueError, match="text"):
        info["text"]
    channel = f"{s1}:timer:0001:empty"
    redis_client.xadd(channel + "_data", {"__EVENT__": "CHANNELDATA",
                                          "__DESC__": pickle.dumps({"dtype": float}),
                                          "__NPOINTS__": "1", "__DATA__": payload}, id="1-0")
    node = get_node(channel, connection=redis_client)
    assert len(node) == 1
    with pytest.raises(UnsafePickleError):
        node.get(0, -1)
    with pytest.raises(UnsafePickleError):
        list(node.walk_events(wait=False))
    assert not marker.exists()


def next_or_error(walk: Iterator[Event]) -> Event | Exception | None:
    """The walk's next event, the error it raised instead, or None when it ended."""
    try:
        return next(walk)
    except StopIteration:
        return None
    except Exception as error:  # noqa: BLE001 (the test looks at what was raised)
        return error


def test_an_unreadable_entry_raises_and_the_walk_goes_on(writer, redis_client, session_name,
                                                         tmp_path):
    marker = tmp_path / "marker"
    evil = evil_pickle(f"touch {marker}")
    parent = parent_of(writer, session_name)
    bad_end, bad_data = run_scan(writer, parent), run_scan(writer, parent)
    redis_client.delete(bad_end.db_name + keys.END)  # an END whose exception is a refused pickle
    redis_client.xadd(bad_end.db_name + keys.END, {"__EVENT__": "END_SCAN", "__EXCEPTION__": evil})
    channel = f"{bad_data.db_name}:timer:0001:empty"  # points that are no pickle at all
    redis_client.xadd(channel + keys.DATA, {"__EVENT__": "CHANNELDATA", "__NPOINTS__": "1",
                                            "__DESC__": pickle.dumps({"dtype": float}),
                                            "__DATA__": b"garbage"}, id="1-0")
    good = run_scan(writer, parent)

    walk = get_session_node(session_name, connection=redis_client).walk_events(
        filter=["scan", "channel"], wait=False)
    seen = []
    while (item := next_or_error(walk)) is not None:
        seen.append(item)
    errors = [item for item in seen if isinstance(item, Exception)]
    assert sorted(type(error).__name__ for error in errors) == [
        "UnreadableEntryError", "UnsafeEntryError"]  # in blissdata's order: data before END
    refused, garbage = sorted(errors, key=lambda error: not isinstance(error, UnsafeEntryError))
    assert all(isinstance(error, UnreadableEntryError) for error in errors)
    assert isinstance(refused, UnsafePickleError) and isinstance(garbage, ValueError)
    assert f"{bad_end.db_name}{keys.END}" in str(refused) and "posix.system" in str(refused)
    assert f"{channel}{keys.DATA}" in str(garbage)
    # each error says which event could not be read, without its data
    assert refused.event == Event(EventType.END_SCAN, refused.event.node, None)
    assert refused.event.node.db_name == bad_end.db_name
    assert garbage.event == Event(EventType.NEW_DATA, garbage.event.node, None)
    assert garbage.event.node.db_name == channel
    # the unreadable END still ends its scan, and the walk goes on to the next scans
    events = lines(item for item in seen if isinstance(item, Event))
    assert [line for line in events if line[1] == bad_end.db_name] == [
        ("NEW_NODE", bad_end.db_name), ("PREPARED_SCAN", bad_end.db_name)]
    assert ("END_SCAN", bad_data.db_name) in events
    assert [line for line in events if line[1] == good.db_name] == [
        ("NEW_NODE", good.db_name), ("PREPARED_SCAN", good.db_name), ("END_SCAN", good.db_name)]
    # with_errors() pairs them up, in the same order, and is not ended by them
    again = get_session_node(session_name, connection=redis_client).walk_events(
        filter=["scan", "channel"], wait=False)
    def key(event: Event, error: Exception | None) -> tuple:
        return event.type, event.node.db_name, event.data is None, str(error)

    assert [key(*paired) for paired in again.with_errors()] == [
        key(item.event, item) if isinstance(item, Exception) else key(item, None)
        for item in seen]
    assert not marker.exists()


# -- channel data ---------------------------------------------------------------------------------
def test_scalar_channel_points_blocks_and_slices(finished, redis_client):
    node = get_node(f"{finished['s1']}:timer:elapsed_time", connection=redis_client)
    assert len(node) == 3  # one single point, then a block of two
    assert node.get(0) == 0.0 and node.get(1) == 0.1 and node.get(2) == 0.2
    assert node.get(-1) == 0.2 and node.get(None) == 0.0
    assert node.get(3) is None and node.get(100) is None
    whole = node.get(0, -1)
    assert isinstance(whole, numpy.ndarray) and whole.dtype == numpy.float64
    assert whole.tolist() == [0.0, 0.1, 0.2]
    assert node.get(1, 2).tolist() == [0.1, 0.2]  # inside one block
    assert node.get(0, 1).tolist() == [0.0, 0.1]  # across blocks
    assert node.get(2, 2).tolist() == [0.2] and node.get(1, -1).tolist() == [0.1, 0.2]
    assert node.get(-5, 0).tolist() == [0.0]  # a negative start is 0 in a slice
    assert node.get(2, 10).tolist() == [0.2] and node.get(5, 9).tolist() == []
    assert node[0] == 0.0 and node[-1] == 0.2 and node[-3] == 0.0
    for index in (3, -4):
        with pytest.raises(IndexError):
            node[index]
    assert node[0:2].tolist() == [0.0, 0.1] and node[1:].tolist() == [0.1, 0.2]
    assert node[-2:].tolist() == [0.1, 0.2] and node[:].tolist() == [0.0, 0.1, 0.2]
    assert node[...].tolist() == [0.0, 0.1, 0.2]
    assert node[2:2].tolist() == []
    with pytest.raises(IndexError):
        node[::2]
    with pytest.raises(IndexError):
        node[2:1]


def test_spectrum_channel_points(finished, redis_client):
    node = get_node(f"{finished['s1']}:timer:mca1:spectrum_det0", connection=redis_client)
    assert len(node) == 3 and node.shape == (4,) and node.dtype is numpy.uint32
    whole = node.get(0, -1)
    assert whole.shape == (3, 4) and whole.dtype == numpy.uint32
    assert whole.tolist() == numpy.arange(12).reshape(3, 4).tolist()
    assert node.get(0).tolist() == [0, 1, 2, 3]  # the single point
    assert node.get(2).tolist() == [8, 9, 10, 11] and node.get(-1).tolist() == [8, 9, 10, 11]
    assert node.get(1, 2).tolist() == [[4, 5, 6, 7], [8, 9, 10, 11]]
    assert node[0:1].shape == (1, 4)


def test_empty_channel(finished, redis_client):
    node = get_node(f"{finished['s1']}:timer:0001:empty", connection=redis_client)
    assert len(node) == 0
    assert node.get(0, -1) == [] and isinstance(node.get(0, -1), list)
    assert node.get(0) is None and node.get(-1) is None
    assert len(node[0:0]) == 0
    with pytest.raises(IndexError):
        node[0]
    assert list(node.walk_events(wait=False)) == []


def test_node_ref_channel_gives_scan_nodes(finished, redis_client):
    master = f"{finished['group']}:GroupingMaster"
    refs = get_node(f"{master}:scans", connection=redis_client)
    assert len(refs) == 3  # the missing one counts
    nodes = refs.get(0, -1)
    assert isinstance(nodes, list) and db_names(nodes) == [finished["s1"], finished["s2"], None]
    assert all(type(node) is ScanNode for node in nodes[:2])
    assert [node.info["scan_nb"] for node in nodes[:2]] == [1, 2]
    assert refs.get(1).db_name == finished["s2"] and refs.get(2) is None
    assert db_names(refs.get(1, 2)) == [finished["s2"], None]
    assert refs[0].db_name == finished["s1"]
    with pytest.raises(IndexError):
        refs[2]  # a reference to a missing node, as blissdata
    assert len(refs[1:1]) == 0
    numbers = get_node(f"{master}:scan_numbers", connection=redis_client)
    assert numbers.get(0, -1).tolist() == [1, 2, 3] and numbers.dtype is int


# -- walks on finished data -----------------------------------------------------------------------
def test_walk_yields_descendants_breadth_first_by_registration(finished, redis_client):
    root = get_session_node(finished["session"], connection=redis_client)
    walked = db_names(root.walk(wait=False))
    parent, s1 = finished["parent"], finished["s1"]
    assert walked[:2] == [f"{finished['session']}:tmp", parent]
    assert walked[2:6] == [s1, finished["s2"], finished["group"], finished["shadow"]]
    assert finished["session"] not in walked and len(walked) == len(set(walked))
    for suffix in (":timer", ":timer:elapsed_time", ":timer:mca1:spectrum_det0",
                   ":timer:0001:empty"):
        assert s1 + suffix in walked
    assert walked.index(s1 + ":timer") < walked.index(s1 + ":timer:mca1")
    assert walked.index(s1 + ":timer:mca1") < walked.index(s1 + ":timer:mca1:spectrum_det0")
    group = get_node(finished["group"], connection=redis_client)
    master = f"{finished['group']}:GroupingMaster"
    assert db_names(group.walk(wait=False)) == [master, f"{master}:scans",
                                               f"{master}:scan_numbers"]  # no sub-scans


def test_walk_filters(finished, redis_client):
    root = get_session_node(finished["session"], connection=redis_client)
    scans = [finished["s1"], finished["s2"], finished["group"], finished["shadow"]]
    assert db_names(root.walk("scan_group", wait=False)) == [finished["group"]]
    assert db_names(root.walk(filter="scan_group", wait=False)) == [finished["group"]]
    assert db_names(root.walk(include_filter=["scan", "scan_group"], wait=False)) == scans
    assert db_names(root.walk(include_filter=("scan",), wait=False)) == [
        finished["s1"], finished["s2"], finished["shadow"]]
    with_units = root.walk(include_filter=lambda n: n.type == "channel" and n.unit == "s",
                           wait=False)
    assert sorted(db_names(with_units)) == sorted(
        f"{s}:timer:{c}" for s in scans[:2] for c in ("elapsed_time", "epoch"))
    assert all(n.type == "None" for n in root.walk(include_filter="None", wait=False))
    with pytest.raises(ValueError):
        root.walk(include_filter="scan", filter="scan", wait=False)


def test_exclude_children_still_yields_the_excluded_node(finished, redis_client):
    parent = get_node(finished["parent"], connection=redis_client)
    found = parent.walk(include_filter="scan", exclude_children=("scan", "scan_group"),
                        wait=False)
    assert db_names(found) == [finished["s1"], finished["s2"], finished["shadow"]]
    walked = db_names(parent.walk(exclude_children="scan", wait=False))
    assert finished["s1"] in walked and f"{finished['s1']}:timer" not in walked
    assert f"{finished['group']}:GroupingMaster" in walked  # a scan_group is not a scan
    no_devices = db_names(parent.walk(exclude_children=lambda n: n.type == "None", wait=False))
    assert f"{finished['s1']}:timer" in no_devices
    assert not any(name.startswith(f"{finished['s1']}:timer:") for name in no_devices)


def test_walk_events_order_on_finished_data(finished, redis_client):
    s1 = finished["s1"]
    events = list(get_node(s1, connection=redis_client).walk_events(wait=False))
    timer = f"{s1}:timer"
    assert lines(events) == [
        ("NEW_NODE", timer),
        ("NEW_NODE", f"{timer}:elapsed_time"), ("NEW_NODE", f"{timer}:epoch"),
        ("NEW_NODE", f"{timer}:mca1"), ("NEW_NODE", f"{timer}:0001"),
        ("NEW_NODE", f"{timer}:mca1:spectrum_det0"), ("NEW_NODE", f"{timer}:0001:empty"),
        ("PREPARED_SCAN", s1),
        ("NEW_DATA", f"{timer}:elapsed_time"), ("NEW_DATA", f"{timer}:epoch"),
        ("NEW_DATA", f"{timer}:mca1:spectrum_det0"),
        ("END_SCAN", s1),
    ]
    assert all(e.data is None for e in events[:7])
    prepared, end = events[7].data, events[-1].data
    assert prepared.data == "PREPARED_SCAN" and prepared.description is None
    assert end.data == "END_SCAN" and end.description == ""
    assert prepared.first_index <= end.first_index  # stream-ID milliseconds
    elapsed = events[8].data  # two entries merged into one block
    assert (elapsed.first_index, elapsed.block_size) == (0, 3)
    assert elapsed.data.tolist() == [0.0, 0.1, 0.2]
    assert elapsed.description == {"reference": False, "dtype": float, "shape": (), "unit": "s"}
    spectrum = events[10].data
    assert spectrum.data.shape == (3, 4) and spectrum.description["shape"] == (4,)
    assert events[0].name == "NEW_NODE" and events[0].type is EventType.NEW_NODE


def test_session_walk_events_yield_nothing_of_a_scan_after_its_end(finished, redis_client):
    root = get_session_node(finished["session"], connection=redis_client)
    order = lines(root.walk_events(wait=False))
    ends = {db_name: i for i, (kind, db_name) in enumerate(order) if kind == "END_SCAN"}
    assert set(ends) == {finished["s1"], finished["s2"], finished["group"]}  # not the shadow
    for scan, end in ends.items():
        assert not [line for line in order[end + 1:]
                    if line[1] == scan or line[1].startswith(scan + ":")]
    master = f"{finished['group']}:GroupingMaster"
    refs = [e for e in root.walk_events(include_filter="node_ref_channel", wait=False)]
    assert lines(refs) == [("NEW_NODE", f"{master}:scans"), ("NEW_DATA", f"{master}:scans")]
    assert db_names(refs[1].data.data) == [finished["s1"], finished["s2"], None]
    only_scans = lines(root.walk_events(include_filter=["scan", "scan_group"], wait=False))
    assert {kind for kind, _ in only_scans} == {"NEW_NODE", "PREPARED_SCAN", "END_SCAN"}
    assert ("PREPARED_SCAN", finished["shadow"]) in only_scans


def test_live_walk_events_stop_following_a_scan_at_its_end(writer, session_name, redis_client):
    parent = parent_of(writer, session_name)
    first = run_scan(writer, parent)
    root = get_session_node(session_name, connection=redis_client)
    events = root.walk_events(wait=True)
    seen: list[tuple[str, str]] = []
    with Watchdog(events) as watchdog:
        for kind, db_name in ((e.type.name, e.node.db_name) for e in events):
            seen.append((kind, db_name))
            if (kind, db_name) == ("END_SCAN", first.db_name):
                break
        mark = len(seen)
        first.emit({"timer:elapsed_time": 0.3})  # after END: not followed any more
        second = run_scan(writer, parent)
        for kind, db_name in ((e.type.name, e.node.db_name) for e in events):
            seen.append((kind, db_name))
            if (kind, db_name) == ("END_SCAN", second.db_name):
                break
    assert not watchdog.fired
    after = seen[mark:]
    assert ("NEW_NODE", second.db_name) in after and ("PREPARED_SCAN", second.db_name) in after
    assert not [line for line in after if line[1].startswith(first.db_name)]
    assert len(get_node(f"{first.db_name}:timer:elapsed_time", connection=redis_client)) == 4


def test_walk_from_last_starts_at_the_most_recent_scan(finished, writer, redis_client):
    root = get_session_node(finished["session"], connection=redis_client)
    assert db_names(root.walk_from_last(include_filter="scan", wait=False)) == [
        finished["shadow"]]
    assert db_names(root.walk_from_last(include_filter="scan_group", wait=False)) == [
        finished["group"]]
    walk = root.walk_from_last(include_filter="scan", wait=True)
    with Watchdog(walk) as watchdog:
        assert next(walk).db_name == finished["shadow"]
        later = run_scan(writer, finished["parent"])
        assert next(walk).db_name == later.db_name
    assert not watchdog.fired


def test_walk_on_new_events_skips_old_registrations(finished, writer, redis_client):
    old = finished["s1"]
    last = redis_client.xrevrange(finished["parent"] + keys.CHILDREN, count=1)[0][0]
    last_ms = int(last.split(b"-")[0])
    until(lambda: server_ms(redis_client) > last_ms, "the server clock to pass the last write")
    root = get_session_node(finished["session"], connection=redis_client)
    events = root.walk_on_new_events(wait=True)
    seen: list[tuple[str, str]] = []
    with Watchdog(events) as watchdog:
        writer.client.xadd(f"{old}:timer:elapsed_time_data", {  # old channel: not followed
            "__EVENT__": "CHANNELDATA", "__DESC__": pickle.dumps({"dtype": float}),
            "__NPOINTS__": "1", "__DATA__": pickle.dumps(0.3)}, id="4-0")
        new = run_scan(writer, finished["parent"])
        for event in events:
            seen.append((event.type.name, event.node.db_name))
            if seen[-1] == ("END_SCAN", new.db_name):
                break
    assert not watchdog.fired
    assert seen[0] == ("NEW_NODE", new.db_name)
    assert ("PREPARED_SCAN", new.db_name) in seen
    assert ("NEW_DATA", f"{new.db_name}:timer:elapsed_time") in seen  # new data, from 0
    assert all(db_name.startswith(new.db_name) for _, db_name in seen)


def test_walk_on_new_events_sees_a_registration_in_the_same_millisecond(
        finished, writer, redis_client, monkeypatch):
    """A node registered in the millisecond the walk started is new, not old."""
    parent = finished["parent"]
    now = server_ms(redis_client) + 10_000  # a millisecond no real write has used
    old, new = f"{parent}:50_old", f"{parent}:51_new"
    for db_name in (old, new):
        with redis_client.pipeline() as pipe:
            writer.queue_node(pipe, db_name, "scan", [keys.CHILDREN, keys.PREPARED, keys.END],
                              info={"scan_nb": 50}, register=False)
            pipe.execute()
    children = parent + keys.CHILDREN
    redis_client.xadd(children, {"__EVENT__": "NEW_NODE", "db_name": old}, id=f"{now - 1}-5")
    monkeypatch.setattr(redis_client, "time", lambda: (now // 1000, now % 1000 * 1000 + 400))
    root = get_session_node(finished["session"], connection=redis_client)
    events = root.walk_on_new_events(wait=False)
    redis_client.xadd(children, {"__EVENT__": "NEW_NODE", "db_name": new}, id=f"{now}-0")
    assert lines(events) == [("NEW_NODE", new)]


# -- live, across processes -----------------------------------------------------------------------
LIVE_WRITER = """
import sys
from tango_groups.scanning.group import Sequence
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session

session = Session(sys.argv[2], redis_url=sys.argv[1]).setup()
diode = session.config.get("diode")
print("READY", flush=True)
assert sys.stdin.readline().strip() == "go"
seq = Sequence(title="live")
with seq.sequence_context() as context:
    for _ in range(2):
        scan = loopscan(3, 0.0, diode, run=False)
        context.add_and_run(scan)
        print("SCAN", scan.db_name, flush=True)
        assert sys.stdin.readline().strip() == "next"
print("DONE", seq.db_name, flush=True)
"""


@pytest.fixture
def live_writer(redis_url: str, session_name: str) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, redis_url, session_name],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def tell(process: subprocess.Popen, line: str) -> None:
    process.stdin.write(line + "\n")
    process.stdin.flush()


def test_live_walk_events_follow_a_writer_in_another_process(live_writer, session_name,
                                                              redis_client):
    assert live_writer.stdout.readline().strip() == "READY", live_writer.stderr.read()
    events = get_session_node(session_name, connection=redis_client).walk_events(wait=True)
    tell(live_writer, "go")
    seen: list[Event] = []
    with Watchdog(events) as watchdog:
        for event in events:
            seen.append(event)
            if event.type is EventType.END_SCAN and event.node.type == "scan":
                tell(live_writer, "next")  # the next scan is written while we wait for it
            if event.type is EventType.END_SCAN and event.node.type == "scan_group":
                break
    assert not watchdog.fired
    out, err = live_writer.communicate(timeout=DEADLINE)
    assert live_writer.returncode == 0, err
    written = [line.split()[1] for line in out.splitlines()]
    s1, s2, group = written
    order = lines(seen)
    master = f"{group}:GroupingMaster"

    def at(kind: str, db_name: str) -> int:
        return order.index((kind, db_name))

    assert order[-1] == ("END_SCAN", group)
    for scan in (s1, s2):
        assert at("NEW_NODE", scan) < at("PREPARED_SCAN", scan) < at("END_SCAN", scan)
        data = [i for i, (kind, name) in enumerate(order)
                if kind == "NEW_DATA" and name.startswith(scan + ":")]
        assert data and at("PREPARED_SCAN", scan) < min(data) and max(data) < at("END_SCAN", scan)
        assert not [line for line in order[at("END_SCAN", scan) + 1:]
                    if line[1].startswith(scan)]
        points = [e.data for e in seen if e.type is EventType.NEW_DATA
                  and e.node.db_name == f"{scan}:timer:elapsed_time"]
        assert sum(p.block_size for p in points) == 3
        assert [p.first_index for p in points] == numpy.cumsum(
            [0] + [p.block_size for p in points[:-1]]).tolist()
    assert at("NEW_NODE", group) < at("PREPARED_SCAN", group) < at("NEW_NODE", s1)
    assert at("END_SCAN", s1) < at("NEW_NODE", s2)
    assert at("PREPARED_SCAN", s1) < at("NEW_DATA", f"{master}:scans")
    refs = [node for e in seen if e.type is EventType.NEW_DATA
            and e.node.db_name == f"{master}:scans" for node in e.data.data]
    assert db_names(refs) == [s1, s2] and all(type(n) is ScanNode for n in refs)
    numbers = [n for e in seen if e.type is EventType.NEW_DATA
               and e.node.db_name == f"{master}:scan_numbers" for n in e.data.data]
    assert numbers == [2, 3]


# -- stopping -------------------------------------------------------------------------------------
def blocked_readers(client: redis.Redis) -> int:
    return sum(1 for c in client.client_list() if c["cmd"] == "xread" and "b" in c["flags"])


@pytest.mark.parametrize("how", ["stop", "close"])
def test_stop_and_close_end_a_waiting_walk_promptly(finished, redis_client, how):
    walk = get_session_node(finished["session"], connection=redis_client).walk(wait=True)
    got: list[str] = []
    consumer = threading.Thread(target=lambda: got.extend(db_names(walk)), daemon=True)
    consumer.start()
    until(lambda: blocked_readers(redis_client) == 1, "the walk to block in XREAD")
    assert consumer.is_alive()  # everything was yielded, it waits for more
    getattr(walk, how)()
    consumer.join(timeout=5)  # BLOCK_MS (0.5 s) bounds it; the deadline only bounds a failure
    assert not consumer.is_alive()
    assert finished["shadow"] in got
    until(lambda: blocked_readers(redis_client) == 0, "the XREAD to end")


def test_close_in_the_consumer_ends_the_iteration(finished, redis_client):
    events = get_session_node(finished["session"], connection=redis_client).walk_events()
    first = next(events)
    assert first.type is EventType.NEW_NODE
    events.close()
    assert list(events) == []
    with get_session_node(finished["session"], connection=redis_client).walk() as walk:
        assert next(walk).db_name == f"{finished['session']}:tmp"
    with pytest.raises(StopIteration):
        next(walk)


def test_a_walk_on_a_scan_ends_after_its_end_even_when_waiting(finished, redis_client):
    """Everything of the scan is unsubscribed at its END_SCAN: nothing is left to wait for."""
    events = get_node(finished["s1"], connection=redis_client).walk_events(wait=True)
    with Watchdog(events) as watchdog:
        kinds = [event.type.name for event in events]
    assert not watchdog.fired and kinds[-1] == "END_SCAN" and len(kinds) == 12


# -- cost of a filtered walk ----------------------------------------------------------------------
def write_many_scans(writer: DataWriter, session: str, scans: int, channels: int) -> None:
    parent = parent_of(writer, session)
    specs = [ChannelNode(("timer", f"ctrl{i % 2}"), f"c{i}", float) for i in range(channels)]
    for _ in range(scans):
        scan = writer.create_scan(parent, "loopscan", {"title": "s"}, channels=specs)
        scan.prepared({})
        scan.emit({spec.channel_fullname: [1.0, 2.0] for spec in specs})
        scan.end({}, "DONE")
    run_group(writer, parent, f"{parent}:1_loopscan")


def commands_of_group_walk(client: redis.Redis, session: str) -> tuple[list, dict[str, int]]:
    """The groups found by a session walk for scan_group, and the commands it sent (per name)."""
    client.config_resetstat()
    found = db_names(get_session_node(session, connection=client).walk(filter="scan_group",
                                                                       wait=False))
    return found, commands_counted(client)


def commands_counted(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the last ``CONFIG RESETSTAT``, without the measurement's own
    commands (``CONFIG ...``, ``INFO``). Redis 6 counts ``config``, Redis >= 7 counts
    subcommands apart (``config|resetstat``): both are left out, whatever the version."""
    stats = client.info("commandstats")
    counted = {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}
    return {name: calls for name, calls in counted.items()
            if name.split("|")[0] not in ("config", "info")}


def test_a_walk_for_groups_reads_no_scan_subtree(writer, redis_client, session_name):
    scans = 300
    small, large = session_name + "_small", session_name + "_large"
    with ThreadPoolExecutor(2) as pool:  # the writer is thread-safe; errors propagate
        for done in [pool.submit(write_many_scans, writer, session, scans, channels)
                     for session, channels in ((small, 1), (large, 8))]:
            done.result()

    found_small, cost_small = commands_of_group_walk(redis_client, small)
    found_large, cost_large = commands_of_group_walk(redis_client, large)
    assert found_small == [f"{small}:tmp:scans:{scans + 1}_group_of_scans"]
    assert found_large == [f"{large}:tmp:scans:{scans + 1}_group_of_scans"]
    assert cost_small == cost_large  # the same commands, whatever is inside the scans
    # one struct read per registration above the scans, a few rounds of XREAD, nothing else
    assert cost_large["hmget"] == scans + 3
    assert cost_large["xread"] <= 5
    assert set(cost_large) <= {"hmget", "xread"}

    # and the streams read are only the containers' registrations (MONITOR names every key)
    monitor_client = redis.Redis(connection_pool=redis_client.connection_pool)
    with monitor_client.monitor() as monitor:
        list(get_session_node(large, connection=redis_client).walk(filter="scan_group",
                                                                   wait=False))
        redis_client.echo("end-of-walk")
        commands = []
        while "end-of-walk" not in (command := monitor.next_command()["command"]):
            commands.append(command)
    streams = {word for command in commands if command.startswith("XREAD")
               for word in command.split() if word.endswith(keys.CHILDREN)}
    assert streams == {f"{large}{keys.CHILDREN}", f"{large}:tmp{keys.CHILDREN}",
                       f"{large}:tmp:scans{keys.CHILDREN}"}
    assert not [c for c in commands if any(s in c for s in ("_data", "_prepared", "_end"))]
