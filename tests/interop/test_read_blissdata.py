"""blissdata 0.3.1 writes, tango_groups reads: the same view as blissdata's own reader.

``bliss_datanode_demo.py`` writes a Bliss-like session through blissdata in a subprocess (a
sequence with references to two loopscans, one of them longer than blissdata keeps, a reference to
a missing scan, an unversioned registration, a running shadow scan). Its reader-neutral
``dump(api, session)`` runs on blissdata's reader in a subprocess and on ours in-process; the two
JSON documents must be equal. Then a ``Group`` built by scan number over those blissdata scans is
read back by blissdata, and our live walk follows a blissdata writer.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from bliss_datanode_demo import LONG, MISSING, UNVERSIONED, dump  # tests/interop
from bliss_envs import BLISS1_PYTHON  # tests/

from tango_groups.bliss1 import node as reader
from tango_groups.bliss1.node import EventType, GroupScanNode, ScanNode
from tango_groups.data.connection import connect
from tango_groups.scanning.group import Group, ScanSequenceError
from tango_groups.scanning.scan import ScanState
from tango_groups.session import Session

DEMO = Path(__file__).with_name("bliss_datanode_demo.py")
TIMEOUT = 120  # seconds a blissdata subprocess may take before the test fails


def demo(port: int, command: str, session: str) -> subprocess.Popen:
    return subprocess.Popen([BLISS1_PYTHON, str(DEMO), str(port), command, session],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err
    return out


def canonical(value: Any) -> Any:
    """JSON data with NaN made comparable (NaN != NaN would hide equal padded spectra)."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def bliss_written(redis_server) -> dict[str, str]:
    """Two sessions written by blissdata (in parallel): one to dump, one to group."""
    names = {"dump": f"bliss_{os.getpid()}_dump", "group": f"bliss_{os.getpid()}_group"}
    connect(redis_server.url).flushdb()
    for process in [demo(redis_server.port, "write", name) for name in names.values()]:
        finish(process)
    return names


@pytest.fixture
def client(redis_server) -> Iterator[redis.Redis]:
    client = connect(redis_server.url)
    yield client
    client.close()


def our_api(client: redis.Redis) -> SimpleNamespace:
    return SimpleNamespace(**{name: functools.partial(getattr(reader, name), connection=client)
                              for name in ("get_session_node", "get_node", "get_nodes",
                                           "sessions_list")})


def test_our_reader_sees_what_blissdata_sees(bliss_written, redis_server, client):
    session = bliss_written["dump"]
    theirs = canonical(json.loads(finish(demo(redis_server.port, "dump", session))))
    ours = canonical(json.loads(json.dumps(dump(our_api(client), session))))
    assert ours.keys() == theirs.keys()
    for key in theirs:
        if key != "nodes":
            assert ours[key] == theirs[key], key
    assert ours["nodes"].keys() == theirs["nodes"].keys()
    for db_name, summary in theirs["nodes"].items():
        assert ours["nodes"][db_name] == summary, db_name

    # the comparison is about something: what blissdata shows is what the demo wrote
    parent = f"{session}:tmp:scans"
    group, s2, s3 = (f"{parent}:{name}" for name in ("1_sequence_of_scans", "2_loopscan",
                                                     "3_loopscan"))
    assert theirs["walk_groups"] == [[group, "scan_group", "GroupScanNode"]]
    assert [name for name, _, _ in theirs["walk_scans"]] == [group, s2, s3, f"{parent}:_1_ct"]
    assert theirs["walk_from_last"] == [[f"{parent}:_1_ct", "scan", "ScanNode"]]
    assert theirs["get_nodes"] == [s2, None, None, session]
    assert not any(UNVERSIONED in name for name, _, _ in theirs["walk"])
    nodes = theirs["nodes"]
    refs = nodes[f"{group}:GroupingMaster:scans"]
    assert refs["get"]["(0, -1)"] == [{"node": s2, "type": "scan", "class": "ScanNode"},
                                      {"node": s3, "type": "scan", "class": "ScanNode"}, None]
    assert refs["len"] == 3 and MISSING not in json.dumps(refs["get"]["(0, -1)"])
    assert nodes[f"{s2}:0001"]["name"] == 1 and nodes[f"{s2}:timer"]["type"] == "None"
    assert nodes[f"{s2}:timer:elapsed_time"]["get"]["(0, -1)"] == {
        "array": [0.0, 0.1, 0.2], "dtype": "float64"}
    long = nodes[f"{s3}:timer:elapsed_time"]
    assert long["len"] == LONG and long["get"]["(1, 2)"] == {"error": "IndexError"}  # trimmed
    assert long["get"]["(2299,)"] == {"scalar": 229.9, "dtype": "float64"}
    spectrum = nodes[f"{s2}:timer:mca1:spectrum_det0"]["get"]["(0, -1)"]
    assert spectrum["dtype"] == "uint32" and len(spectrum["array"]) == 3
    assert [line[:2] for line in theirs["events_refs"]] == [
        ["NEW_NODE", f"{group}:GroupingMaster:scans"],
        ["NEW_DATA", f"{group}:GroupingMaster:scans"]]
    assert theirs["events_scan"][-1][:2] == ["END_SCAN", s2]


def test_group_by_number_over_blissdata_scans_is_read_back_by_blissdata(
        bliss_written, redis_server, client, bliss_snapshot):
    name = bliss_written["group"]
    parent = f"{name}:tmp:scans"
    session = Session(name, redis_url=redis_server.url).setup()
    try:
        group = Group(2, 3, title="regroup")
        assert group.state == ScanState.DONE
        assert group.db_name == f"{parent}:4_regroup"  # blissdata's counter said 3
        refs = reader.get_node(f"{group.db_name}:GroupingMaster:scans", connection=client)
        assert [n.db_name for n in refs.get(0, -1)] == [f"{parent}:2_loopscan",
                                                        f"{parent}:3_loopscan"]
        node = reader.get_node(f"{parent}:2_loopscan", connection=client)
        assert isinstance(node, ScanNode)
        by_node = Group(node, title="by node")  # a node read from blissdata's writing
        seen = bliss_snapshot(name)
        shadow = Group(1, title="shadow")  # Bliss's rule: the shadow scan _1_ct numbered 1
        with pytest.raises(ScanSequenceError, match="Scan number '99' not found"):
            Group(99)  # nor the missing reference's number: only existing scan nodes count
    finally:
        session.close()

    master = f"{group.db_name}:GroupingMaster"
    channels = seen["groups"][group.db_name]["channels"]
    assert channels[f"{master}:scans"]["data"] == [
        {"node": f"{parent}:2_loopscan", "type": "scan"},
        {"node": f"{parent}:3_loopscan", "type": "scan"}]
    assert channels[f"{master}:scan_numbers"]["data"] == [2, 3]
    info = next(s["info"] for s in seen["scans"] if s["db_name"] == group.db_name)
    assert info["title"] == "regroup" and info["scan_nb"] == 4 and info["state"] == "DONE"
    assert info["is-scan-sequence"] is True
    by_node_channels = seen["groups"][by_node.db_name]["channels"]
    assert by_node_channels[f"{by_node.db_name}:GroupingMaster:scans"]["data"] == [
        {"node": f"{parent}:2_loopscan", "type": "scan"}]
    # blissdata's own sequence is still there, and still read the same way
    assert f"{parent}:1_sequence_of_scans" in seen["groups"]
    events = seen["groups"][group.db_name]["events"]
    assert events[-1] == ["END_SCAN", group.db_name]
    assert events[0] == ["NEW_NODE", master]

    shadow_refs = reader.get_node(f"{shadow.db_name}:GroupingMaster:scans", connection=client)
    assert [n.db_name for n in shadow_refs.get(0, -1)] == [f"{parent}:_1_ct"]


def test_our_live_walk_follows_a_blissdata_writer(redis_server, client):
    session = f"bliss_{os.getpid()}_live"
    parent = f"{session}:tmp:scans"
    group = f"{parent}:1_sequence_of_scans"
    events = reader.get_session_node(session, connection=client).walk_events(wait=True)
    watchdog = threading.Timer(TIMEOUT, events.stop)
    watchdog.start()
    writer = demo(redis_server.port, "write", session)  # after the walk subscribed
    seen = []
    # ENDs available in the same round come in subscription order: the group's may come first
    awaited = {group, f"{parent}:2_loopscan", f"{parent}:3_loopscan"}
    try:
        for event in events:
            seen.append(event)
            if event.type is EventType.END_SCAN:
                awaited.discard(event.node.db_name)
                if not awaited:
                    break
    finally:
        watchdog.cancel()
        events.close()
        finish(writer)
    assert not awaited, "the walk was stopped at the deadline"
    order = [(e.type.name, e.node.db_name) for e in seen]
    assert order.index(("NEW_NODE", group)) < order.index(("PREPARED_SCAN", group))
    assert isinstance(seen[order.index(("END_SCAN", group))].node, GroupScanNode)
    assert not [line for line in order[order.index(("END_SCAN", group)) + 1:]
                if line[1].startswith(group)]
    for scan in (f"{parent}:2_loopscan", f"{parent}:3_loopscan"):
        end = order.index(("END_SCAN", scan))
        assert order.index(("NEW_NODE", scan)) < order.index(("PREPARED_SCAN", scan)) < end
        assert not [line for line in order[end + 1:] if line[1].startswith(scan)]
    assert not any(UNVERSIONED in db_name for _, db_name in order)
    elapsed = [e.data for e in seen if e.type is EventType.NEW_DATA
               and e.node.db_name == f"{parent}:2_loopscan:timer:elapsed_time"]
    assert [v for data in elapsed for v in data.data.tolist()] == [0.0, 0.1, 0.2]
    refs = [n for e in seen if e.type is EventType.NEW_DATA
            and e.node.db_name == f"{group}:GroupingMaster:scans" for n in e.data.data]
    assert [None if n is None else n.db_name for n in refs] == [
        f"{parent}:2_loopscan", f"{parent}:3_loopscan", None]
