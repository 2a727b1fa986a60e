"""The seed page's examples in a ``Session(..., data_format="bliss2")``, read back by blissdata 2.

The examples of tests/seed_examples.py (the bliss1 tests run them too), in a bliss2 session; what
they wrote is read by blissdata 2.4.5's own reader (``bliss2_reader.py snapshot``, a subprocess):
the sequence scan CLOSED, its sub-scans loaded through the ``scan_sequence`` plugin with their data,
custom channels, Group's references; and Sequence's pending rules, kept in bliss2 (numbers
pending in another process and ``Sequence.reopen``: test_session_bliss2_across.py).
"""

from __future__ import annotations

import pytest

pytest.importorskip("blissdata.redis_engine.store", reason="blissdata 2.x (tango_groups[bliss2])")

import seed_examples as seed  # tests/
from bliss2_support import snapshot, write_scan

from tango_groups.bliss2 import custom_stream_name
from tango_groups.scanning.chain import AcquisitionChannel
from tango_groups.scanning.group import Group, ScanSequenceError, Sequence
from tango_groups.scanning.scan import ScanState
from tango_groups.scanning.simulation import loopscan

DIODE = "simulation_diode_sampling_controller:diode"


@pytest.fixture
def config(session):
    return session.config


def test_loopscan_is_a_bliss2_scan(config, url, session_name):
    diode = config.get("diode")
    s1 = loopscan(3, .01, diode)
    s2 = loopscan(2, .01, diode, name="ct")
    assert s1.key.startswith("esrf:scan:") and s1.db_name == s1.key and s1.node is None
    seen = snapshot(url, s1.key)
    assert (seen["name"], seen["number"], seen["session"]) == ("loopscan", 1, session_name)
    assert seen["state"] == "CLOSED" and seen["info"]["end_reason"] == "SUCCESS"
    assert seen["subscans"] is None
    assert sorted(seen["data"]) == sorted(["timer:elapsed_time", "timer:epoch", DIODE])
    assert seen["data"][DIODE] == s1.get_data()[diode].tolist()
    assert len(seen["data"]["timer:elapsed_time"]) == 3
    assert seen["info"]["title"] == "loopscan 3 0.01" and seen["info"]["scan_nb"] == 1
    assert snapshot(url, s2.key)["number"] == 2  # the session's counter
    assert s1.state is ScanState.DONE and s1.scan_number == 1


def test_sequence_with_add_add_and_run_and_a_finished_scan(config, url):
    diode = config.get("diode")
    seq, s1, s2, s3 = seed.sequence_with_add_and_add_and_run(diode)

    seen = snapshot(url, seq.key)
    assert seen["state"] == "CLOSED" and seen["info"]["is_scan_sequence"] is True
    assert seen["number"] == 1 and seen["info"]["end_reason"] == "SUCCESS"
    assert seen["plugin"] == "scan_sequence"
    assert seen["references"] == [{"key": s.key, "scan_number": n}
                                  for s, n in ((s1, 2), (s2, 3), (s3, 4))]
    subs = seen["subscans"]
    assert [sub["key"] for sub in subs] == [s1.key, s2.key, s3.key]
    assert [sub["state"] for sub in subs] == ["CLOSED"] * 3
    # scans added before they ran carry the group, as Bliss 2 sets it; s3 was added after
    assert [sub["group"] for sub in subs] == [seq.key, seq.key, None]
    for sub, scan in zip(subs, (s1, s2, s3)):
        assert sub["streams"][DIODE] == scan.get_data()[diode].tolist()
    assert seq.state is ScanState.DONE and seq.node is None


def test_sequence_with_custom_channels(config, url):
    seq, s1, s2, my_sum = seed.sequence_with_custom_channels(config.get("diode"))

    seen = snapshot(url, seq.key)
    assert seen["data"][custom_stream_name("mychannel")] == [1.1, 2.2, 3.3]
    assert seen["data"][custom_stream_name("sum")] == my_sum.tolist()
    assert len(my_sum) == 5
    assert [sub["key"] for sub in seen["subscans"]] == [s1.key, s2.key]
    with pytest.raises(RuntimeError, match="not publishing"):
        seq.custom_channels['sum'].emit(1.0)  # the sequence ended


def test_custom_channel_points_are_checked_before_they_are_sent(config, url):
    seq = Sequence()
    seq.add_custom_channel(AcquisitionChannel('counts', "int32", ()))
    with seq.sequence_context():
        with pytest.raises(ValueError, match="counts"):
            seq.custom_channels['counts'].emit([1, 2.5])
        assert seq.custom_channels['counts'].emit([3, 4]) == 2
    assert snapshot(url, seq.key)["data"][custom_stream_name("counts")] == [3, 4]


def test_group_of_scans_after_they_ran(config, url, store, session_name):
    diode = config.get("diode")
    group, s1, s2 = seed.group_of_scans(diode)
    seen = snapshot(url, group.key)
    assert seen["state"] == "CLOSED" and seen["number"] == 3
    assert seen["info"]["title"] == "group_of_scans" and seen["name"] == "group_of_scans"
    assert seen["references"] == [{"key": s1.key, "scan_number": 1},
                                  {"key": s2.key, "scan_number": 2}]
    assert [sub["streams"][DIODE] for sub in seen["subscans"]] == [
        s.get_data()[diode].tolist() for s in (s1, s2)]
    assert group.state is ScanState.DONE

    # by key and by number too; a scan Bliss 2 wrote itself among them
    other = write_scan(store, session_name, 40)
    mixed = Group(s2, s1.key, 40, title="mixed", scan_info={"sample": "Au"})
    seen = snapshot(url, mixed.key)
    assert [ref["key"] for ref in seen["references"]] == [s2.key, s1.key, other]
    assert [ref["scan_number"] for ref in seen["references"]] == [2, 1, 40]
    assert seen["info"]["sample"] == "Au" and seen["info"]["title"] == "mixed"


def test_a_refused_group_writes_nothing(config, store, session_name):
    s1 = loopscan(2, .01, config.get("diode"))
    for bad in (99, "esrf:scan:01ZZZZZZZZZZZZZZZZZZZZZZZZ", 1.5):
        with pytest.raises(ScanSequenceError):
            Group(s1, bad)
    not_run = loopscan(2, .01, config.get("diode"), run=False)
    with pytest.raises(ScanSequenceError, match="have been run"):
        Group(not_run)
    _, keys = store.search_existing_scans(session=session_name)
    assert keys == [s1.key]


def test_a_scan_added_before_it_starts_is_referenced_when_it_is_prepared(config, store,
                                                                           follower,
                                                                           session_name):
    diode = config.get("diode")
    reader = follower(session_name)
    seq = Sequence()
    seen_at_start = []
    with seq.sequence_context() as scan_seq:
        assert reader.until("state")[0]["key"] == seq.key
        s1 = loopscan(3, .01, diode, run=False)
        scan_seq.add(s1)
        assert seq.published == 0  # pending: nothing referenced before it starts

        def started(scan, state) -> None:  # after the sequence's own listener
            if state is ScanState.STARTING:
                seen_at_start.append((seq.references(scan.key),
                                      store.load_scan(scan.key).state.name))

        s1.add_state_listener(started)
        s1.run()
        sub = reader.until("subscan")[-1]  # the live reader sees it while the sequence runs
        assert (sub["key"], sub["group"], sub["number"]) == (s1.key, seq.key, 2)
        assert seq.state is ScanState.STARTING
    assert seen_at_start == [(True, "STARTED")]
    closed = reader.until("closed")[-1]
    assert closed["state"] == "CLOSED" and closed["info"]["end_reason"] == "SUCCESS"


def test_end_raises_for_a_scan_that_never_ran_and_the_sequence_is_closed(config, url):
    diode = config.get("diode")
    seq = Sequence()
    never = loopscan(2, .01, diode, run=False)
    ran = loopscan(2, .01, diode)
    with pytest.raises(ScanSequenceError, match="have not finished"), \
            seq.sequence_context() as scan_seq:
        scan_seq.add(ran)
        scan_seq.add(never)
    assert seq.unfinished == [never] and never.state is ScanState.IDLE
    seen = snapshot(url, seq.key)
    assert seen["state"] == "CLOSED" and [sub["key"] for sub in seen["subscans"]] == [ran.key]


def test_an_error_in_the_block_closes_the_sequence_as_a_failure(config, url):
    seq = Sequence()
    with pytest.raises(ZeroDivisionError), seq.sequence_context():
        1 / 0  # noqa: B018
    assert seq.state is ScanState.KILLED
    seen = snapshot(url, seq.key)
    assert seen["state"] == "CLOSED" and seen["info"]["end_reason"] == "FAILURE"

