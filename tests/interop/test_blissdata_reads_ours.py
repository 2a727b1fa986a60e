"""blissdata 0.3.1 (Bliss's own reader) reads what tango_groups writes: walks, events, data,
live."""

from __future__ import annotations

import json

import pytest

from tango_groups.scanning.chain import AcquisitionChannel
from tango_groups.scanning.group import Group, Sequence
from tango_groups.scanning.scan import ScanState
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session


@pytest.fixture
def session(redis_url, redis_client, session_name):
    session = Session(session_name, redis_url=redis_url).setup()
    yield session
    session.close()


def run_seed_sequence(session: Session, title: str = "sequence_of_scans"):
    diode = session.config.get("diode")
    seq = Sequence(title=title, scan_info={"comment": "interop"})
    seq.add_custom_channel(AcquisitionChannel("mychannel", float, ()))
    seq.add_custom_channel(AcquisitionChannel("sum", float, ()))
    with seq.sequence_context() as scan_seq:
        s1 = loopscan(3, 0.01, diode, run=False)
        s2 = loopscan(3, 0.01, diode, run=False)
        scan_seq.add_and_run(s1)
        scan_seq.add_and_run(s2)
        seq.custom_channels["mychannel"].emit([1.1, 2.2, 3.3])
        total = s1.get_data()[diode] + s2.get_data()[diode]
        seq.custom_channels["sum"].emit(total)
    return seq, s1, s2, total


def test_blissdata_reads_a_sequence(session, bliss_snapshot):
    seq, s1, s2, total = run_seed_sequence(session)
    seen = bliss_snapshot(session.name)
    parent = f"{session.name}:tmp:scans"
    assert [(s["db_name"], s["type"]) for s in seen["scans"]] == [
        (f"{parent}:1_sequence_of_scans", "scan_group"),
        (f"{parent}:2_loopscan", "scan"),
        (f"{parent}:3_loopscan", "scan")]
    group_info = seen["scans"][0]["info"]
    assert group_info["is-scan-sequence"] is True and group_info["state"] == "DONE"
    assert group_info["title"] == "sequence_of_scans" and group_info["comment"] == "interop"
    assert seen["scans"][1]["info"]["group"] == seq.db_name

    group = seen["groups"][seq.db_name]
    master = f"{seq.db_name}:GroupingMaster"
    assert group["nodes"] == [master, f"{master}:scans", f"{master}:scan_numbers",
                              f"{master}:custom_channels", f"{master}:custom_channels:mychannel",
                              f"{master}:custom_channels:sum"]
    channels = group["channels"]
    assert channels[f"{master}:scans"]["data"] == [
        {"node": s1.db_name, "type": "scan"}, {"node": s2.db_name, "type": "scan"}]
    assert channels[f"{master}:scan_numbers"]["data"] == [2, 3]
    assert channels[f"{master}:custom_channels:mychannel"]["data"] == [1.1, 2.2, 3.3]
    assert channels[f"{master}:custom_channels:sum"]["data"] == total.tolist()
    assert channels[f"{master}:custom_channels:sum"]["info"]["fullname"] == "sum"
    kinds = [kind for kind, _ in group["events"]]
    assert kinds[:6] == ["NEW_NODE"] * 6
    assert kinds[6] == "PREPARED_SCAN" and kinds[-1] == "END_SCAN"
    assert kinds.count("NEW_DATA") == 4


def test_blissdata_reads_a_group_of_finished_scans(session, bliss_snapshot):
    diode = session.config.get("diode")
    s1 = loopscan(2, 0.0, diode)
    s2 = loopscan(2, 0.0, diode)
    group = Group(s1, s2.scan_number, title="my group")
    assert group.state == ScanState.DONE
    seen = bliss_snapshot(session.name)
    master = f"{group.db_name}:GroupingMaster"
    channels = seen["groups"][group.db_name]["channels"]
    assert [ref["node"] for ref in channels[f"{master}:scans"]["data"]] == [s1.db_name, s2.db_name]
    assert channels[f"{master}:scan_numbers"]["data"] == [1, 2]
    group_info = next(s["info"] for s in seen["scans"] if s["db_name"] == group.db_name)
    assert group_info["scan_nb"] == 3 and group_info["title"] == "my group"
    assert "group" not in next(s["info"] for s in seen["scans"] if s["db_name"] == s1.db_name)


def test_live_blissdata_reader_follows_a_sequence_in_bliss_order(session, bliss_follower):
    follower = bliss_follower(session.name, "live_sequence")
    seq, s1, s2, _ = run_seed_sequence(session, title="live_sequence")
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    order = [(e["event"], e["db_name"]) for e in events]
    master = f"{seq.db_name}:GroupingMaster"

    def at(event: str, db_name: str) -> int:
        return order.index((event, db_name))

    assert order[-1] == ("END_SCAN", seq.db_name)
    # What holds whatever the timing of the reader's rounds (several updates may land in one round,
    # which blissdata then orders children < prepared < data < end, and the follower stops at the
    # sequence's END): every scan is registered, then prepared; a sub-scan is prepared before the
    # sequence references it; the sequence's END comes last.
    for scan in (seq, s1, s2):
        assert at("NEW_NODE", scan.db_name) < at("PREPARED_SCAN", scan.db_name)
    assert at("PREPARED_SCAN", s1.db_name) < at("NEW_DATA", f"{master}:scans")
    assert at("NEW_NODE", s1.db_name) < at("NEW_NODE", s2.db_name)
    refs = [e for e in events if e["event"] == "NEW_DATA" and e["db_name"] == f"{master}:scans"]
    assert [ref["node"] for e in refs for ref in e["data"]] == [s1.db_name, s2.db_name]
    numbers = [e for e in events
               if e["event"] == "NEW_DATA" and e["db_name"].endswith("scan_numbers")]
    assert [n for e in numbers for n in e["data"]] == [s1.scan_number, s2.scan_number]
    diode_points = [e for e in events
                    if e["event"] == "NEW_DATA" and e["db_name"].startswith(s1.db_name)
                    and e["db_name"].endswith(":diode")]
    assert sum(len(e["data"]) for e in diode_points) == 3
