"""Sequence and Group behaviour beyond the seed page: errors, state aggregation, TTLs, bad data."""

from __future__ import annotations

import pytest
from hostile import evil_pickle

from tango_groups.bliss1.channel import ChannelNode
from tango_groups.bliss1.node import get_node, get_session_node
from tango_groups.bliss1.writer import Expiration
from tango_groups.data.channel import ChannelDataError
from tango_groups.scanning.chain import AcquisitionChannel
from tango_groups.scanning.group import Group, ScanSequenceError, Sequence
from tango_groups.scanning.scan import Scan, ScanAbort, ScanState
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session


@pytest.fixture
def session(redis_url, redis_client, session_name):
    session = Session(session_name, redis_url=redis_url).setup()
    yield session
    session.close()


@pytest.fixture
def diode(session):
    return session.config.get("diode")


def failing_scan(error: BaseException) -> Scan:
    def acquisition(scan: Scan) -> None:
        scan.emit({"timer:t": 1.0})
        raise error

    return Scan("failing", [ChannelNode(("timer",), "t", float)], acquisition)


def ended(node) -> bool:
    return any(event.name == "END_SCAN" for event, n, _ in node.walk_events(wait=False)
               if n.db_name == node.db_name)


def test_scan_added_but_never_run_fails_the_context_but_the_sequence_is_ended(session, diode):
    seq = Sequence(title="unfinished")
    with pytest.raises(ScanSequenceError) as error, seq.sequence_context() as scan_seq:
        scan_seq.add(loopscan(2, 0.01, diode, run=False))
    assert str(error.value) == ('Some scans of the sequence "unfinished" have not finished before '
                                "exiting the sequence context")
    assert ended(seq.node) and seq.node.info["state"] == "DONE"
    assert len(get_node(seq.db_name + ":GroupingMaster:scans")) == 0


def test_add_and_run_refuses_a_scan_that_already_ran(session, diode):
    scan = loopscan(2, 0.01, diode)
    with pytest.raises(ScanSequenceError,
                       match='^Error in  add_and_run: scan "loopscan" has already been started '
                             'before!$'), Sequence().sequence_context() as scan_seq:
        scan_seq.add_and_run(scan)


def test_an_empty_sequence_is_fine(session):
    seq = Sequence()
    with seq.sequence_context():
        pass
    assert ended(seq.node) and seq.state == ScanState.DONE
    assert get_node(seq.db_name + ":GroupingMaster:scans").get(0, -1) == []


def test_group_argument_errors(session, diode):
    not_run = loopscan(2, 0.01, diode, run=False)
    with pytest.raises(ScanSequenceError,
                       match="^Only scans that have been run before can be added to group$"):
        Group(not_run)
    container = get_session_node(session.name)
    with pytest.raises(ScanSequenceError, match="^Invalid argument: no scan node corresponds to"):
        Group(container)
    with pytest.raises(ScanSequenceError,
                       match="^Invalid argument: no scan node corresponds to x$"):
        Group("x")
    with pytest.raises(ScanSequenceError, match="^Scan number '99' not found$"):
        Group(99)


def test_group_by_number_finds_scans_but_not_groups(session, diode):
    scan = loopscan(2, 0.01, diode)
    first = Group(scan)
    second = Group(scan.scan_number)
    assert [n.db_name for n in get_node(second.db_name + ":GroupingMaster:scans").get(0, -1)] \
        == [scan.db_name]
    with pytest.raises(ScanSequenceError, match=f"^Scan number '{first.scan_nb}' not found$"):
        Group(first.scan_nb)


def test_a_refused_group_writes_nothing(session, diode):
    scan = loopscan(2, 0.01, diode)
    planted = loopscan(2, 0.01, diode)
    session.client.hset(planted.db_name + "_info", "state", evil_pickle())
    before = sorted(session.client.keys("*"))
    counter = session.client.hget(session.scan_saving_db_name, "last_scan_number")
    with pytest.raises(ScanSequenceError, match="Scan number '12345' not found"):
        Group(scan, 12345, title="partial")
    with pytest.raises(ScanSequenceError, match="cannot be added.*state"):
        Group(scan, planted.node, title="partial")
    with pytest.raises(ScanSequenceError, match="cannot be added.*state"):
        Group(scan, planted.scan_number, title="partial")
    assert sorted(session.client.keys("*")) == before
    assert session.client.hget(session.scan_saving_db_name, "last_scan_number") == counter


@pytest.mark.parametrize("error, state", [(RuntimeError("boom"), ScanState.KILLED),
                                          (ScanAbort(), ScanState.USER_ABORTED)])
def test_a_failed_scan_sets_the_state_of_its_sequence_and_group(session, diode, error, state):
    ok = loopscan(2, 0.01, diode)
    bad = failing_scan(error)
    with pytest.raises(type(error)):
        bad.run()
    assert bad.state == state and bad.node.info["state"] == state.name
    assert Group(ok, bad).state == state
    assert Group(ok.node, bad.node).node.info["state"] == state.name
    seq = Sequence()
    with seq.sequence_context() as scan_seq:
        scan_seq.add(ok)
        scan_seq.add(bad)
    assert seq.state == state


def test_grouped_scans_get_their_ttl_back(redis_url, redis_client, session_name):
    session = Session(session_name, redis_url=redis_url,
                      expiration=Expiration(data=60, parent=600)).setup()
    scan = loopscan(2, 0.01, session.config.get("diode"))
    redis_client.expire(scan.db_name, 5)  # as if it ended long ago
    Group(scan)
    assert redis_client.ttl(scan.db_name) > 5
    session.close()


def test_custom_channel_rules(session, redis_client):
    seq = Sequence()
    seq.add_custom_channel(AcquisitionChannel("counts", int, ()))
    seq.add_custom_channel(AcquisitionChannel("spectrum", float, (3,)))
    with pytest.raises(ScanSequenceError, match="already exists"):
        seq.add_custom_channel(AcquisitionChannel("counts", float, ()))
    with pytest.raises(RuntimeError, match="not publishing"):
        seq.custom_channels["counts"].emit(1)
    with seq.sequence_context():
        with pytest.raises(ScanSequenceError, match="before the sequence starts"):
            seq.add_custom_channel(AcquisitionChannel("late", float, ()))
        with pytest.raises(ChannelDataError):
            seq.custom_channels["counts"].emit([1, 2.5])
        with pytest.raises(ChannelDataError):
            seq.custom_channels["spectrum"].emit([1.0, 2.0])
        seq.custom_channels["counts"].emit([1, 2])
        seq.custom_channels["spectrum"].emit([[1.0, 2.0, 3.0]] * 2)
    custom = seq.db_name + ":GroupingMaster:custom_channels"
    assert list(get_node(custom + ":counts").get(0, -1)) == [1, 2]
    assert get_node(custom + ":spectrum").get(0, -1).shape == (2, 3)
    assert [e[0] for e in redis_client.xrange(custom + ":counts_data")] == [b"1-0"]
    with pytest.raises(RuntimeError, match="not publishing"):
        seq.custom_channels["counts"].emit(3)


def test_nothing_can_be_added_after_the_end(session, diode):
    seq = Sequence()
    with seq.sequence_context() as scan_seq:
        pass
    with pytest.raises(ScanSequenceError, match="is not running"):
        scan_seq.add(loopscan(1, 0.0, diode))


def test_wait_all_subscans_waits_for_scans_started_elsewhere(session, diode):
    import threading

    seq = Sequence()
    with seq.sequence_context() as scan_seq:
        scan = loopscan(2, 0.01, diode, run=False)
        scan_seq.add(scan)
        assert scan_seq.wait_all_subscans(timeout=0) is False
        runner = threading.Thread(target=scan.run)
        runner.start()
        assert scan_seq.wait_all_subscans(timeout=30) is True
        runner.join(30)
    assert seq.published == 1
