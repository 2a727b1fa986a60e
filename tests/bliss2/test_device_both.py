"""The SequenceManager with ``DataFormat both``: one sequence in each data model, each referencing
the scans of its own generation, read by blissdata 0.3.1 (1.x) and blissdata 2.4.5 (Bliss 2),
each in its own environment; and a fuzz of requests that must be refused, writing nothing in
either model (``TANGO_GROUPS_FUZZ_EXAMPLES_BOTH`` runs, 40 by default). Redis faults in this
format: ``test_both_faults.py``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy
import pytest
import redis
import tango
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("blissdata.redis_engine.store", reason="blissdata 2.x (tango_groups[bliss2])")

import redis_checker
from bliss2_support import snapshot, write_scan
from bliss_envs import BLISS1_PYTHON
from redis_checker import KeySnapshot
from tango_checks import refused, wait_until

from tango_groups.bliss2 import custom_stream_name, find_scans
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session

INTEROP = Path(__file__).parents[1] / "interop"
FUZZ_EXAMPLES = int(os.environ.get("TANGO_GROUPS_FUZZ_EXAMPLES_BOTH", "40"))


def bliss1_snapshot(url: str, session: str) -> dict:
    """What blissdata 0.3.1 reads of the session (``tests/interop/bliss_reader.py``)."""
    port = url.rsplit(":", 1)[1]
    out = subprocess.run([BLISS1_PYTHON, str(INTEROP / "bliss_reader.py"), port, "snapshot",
                          session], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


@pytest.fixture
def bliss1_session(modules_redis, session_name):
    session = Session(session_name, redis_url=modules_redis.url)
    yield session
    session.close()


def both_scans(session: Session, store) -> tuple[str, str, int]:
    """A 1.x loopscan and a Bliss 2 scan of the same number: (db_name, key, number)."""
    scan = loopscan(3, 0.0, session.config.get("diode"), session=session)
    number = scan.scan_number
    return scan.db_name, write_scan(store, session.name, number, points=2), number


def test_one_sequence_in_both_models(store, session_name, modules_redis, bliss1_session,
                                     start_device):
    name1, key1, n1 = both_scans(bliss1_session, store)
    proxy = start_device(DataFormat="both").proxy
    db_name = proxy.Start(json.dumps({"title": "twice", "channels": ["sum"]}))
    key = proxy.ScanKey
    assert db_name.endswith("_twice") and key.startswith("esrf:scan:")
    assert proxy.AddScan(str(n1)) == name1  # the 1.x scan; the Bliss 2 one of that number too
    pending = n1 + 2  # the sequence itself took n1 + 1 in the 1.x container
    assert proxy.AddScan(str(pending)) == f"pending:{pending}"
    assert list(proxy.PendingScans) == [pending]
    name2, key2, n2 = both_scans(bliss1_session, store)
    assert n2 == pending
    wait_until(lambda: list(proxy.PendingScans) == [])
    assert list(proxy.ScanNames) == [name1, name2]
    assert proxy.EmitChannel(([1.5, 2.5], ["sum"])) == 2
    assert proxy.End() == "DONE"

    seen2 = snapshot(modules_redis.url, key)
    assert seen2["state"] == "CLOSED" and seen2["info"]["end_reason"] == "SUCCESS"
    assert seen2["references"] == [{"key": key1, "scan_number": n1},
                                   {"key": key2, "scan_number": n2}]
    assert seen2["data"][custom_stream_name("sum")] == [1.5, 2.5]
    seen1 = bliss1_snapshot(modules_redis.url, session_name)
    group = seen1["groups"][db_name]
    master = f"{db_name}:GroupingMaster"
    assert [ref["node"] for ref in group["channels"][f"{master}:scans"]["data"]] == [name1, name2]
    assert group["channels"][f"{master}:custom_channels:sum"]["data"] == [1.5, 2.5]
    assert group["events"][-1] == ["END_SCAN", db_name]


def test_each_reference_goes_to_its_own_model(store, session_name, bliss1_session,
                                              start_device):
    name1, key1, n1 = both_scans(bliss1_session, store)
    proxy = start_device(DataFormat="both").proxy
    proxy.Start("")
    key = proxy.ScanKey
    assert proxy.AddScan(name1) == name1  # 1.x only
    assert proxy.AddScan(key1) == key1  # Bliss 2 only
    refused("SequenceManager_DuplicateScan", lambda: proxy.AddScan(str(n1)))  # both hold it
    assert proxy.Abort() == "USER_ABORTED"
    assert store.load_scan(key).info["end_reason"] == "USER_ABORT"
    group = proxy.CreateGroup(json.dumps({"scans": [n1], "title": "pair"}))
    assert group.endswith("_pair")
    newest = store.load_scan(find_scans(store, session_name)[-1])  # the Bliss 2 group
    assert newest.info["title"] == "pair" and newest.state.name == "CLOSED"
    refused("SequenceManager_UnknownScan", lambda: proxy.CreateGroup(f"{n1} 99"))


def snapshots(url: str) -> list[KeySnapshot]:
    """Every key of the data db (both models) and of the device's bookkeeping db (db 1)."""
    snaps = []
    for db in (0, 1):
        with redis.Redis.from_url(url, db=db) as client:
            snaps.append(KeySnapshot.take(client))
    return snaps


def unchanged_since(url: str, before: list[KeySnapshot]) -> list[str]:
    return [change for now, then in zip(snapshots(url), before) for change in now.diff(then)]


def test_add_scan_refused_by_one_model_writes_nothing_in_either(
        store, session_name, modules_redis, bliss1_session, start_device):
    """The 1.x side could reference scan 1, the Bliss 2 side refuses it (its own sequence took
    number 1): the refusal writes nothing, in either model."""
    scan = loopscan(3, 0.0, bliss1_session.config.get("diode"), session=bliss1_session)
    assert scan.scan_number == 1  # no Bliss 2 scan in the session: its sequence is number 1
    proxy = start_device(DataFormat="both").proxy
    proxy.Start("")
    assert int(store.load_scan(proxy.ScanKey).number) == 1 and proxy.SequenceNumber == 2
    before = snapshots(modules_redis.url)
    desc = refused("SequenceManager_NotAScan", lambda: proxy.AddScan("1"))
    assert "the running sequence itself" in desc
    assert unchanged_since(modules_redis.url, before) == []
    assert list(proxy.ScanNames) == [] and list(proxy.PendingScans) == []
    refused("SequenceManager_NotAScan", lambda: proxy.AddScan("2"))  # the 1.x side's number
    assert unchanged_since(modules_redis.url, before) == []
    assert proxy.End() == "DONE"
    assert snapshot(modules_redis.url, proxy.ScanKey)["references"] == []


def test_a_number_one_model_holds_goes_to_the_other(store, session_name, modules_redis,
                                                    bliss1_session, start_device):
    """AddScan of a number the 1.x side holds already (added by db_name, or a repeated command)
    references it in the Bliss 2 side only, and the other way round; held by both: refused."""
    name1, key1, n1 = both_scans(bliss1_session, store)
    name2, key2, n2 = both_scans(bliss1_session, store)
    proxy = start_device(DataFormat="both").proxy
    proxy.Start("")
    key = proxy.ScanKey
    assert proxy.AddScan(name1) == name1  # 1.x only
    assert proxy.AddScan(str(n1)) == key1  # the Bliss 2 side takes it, the 1.x side had it
    assert proxy.AddScan(key2) == key2  # Bliss 2 only
    assert proxy.AddScan(str(n2)) == name2  # the 1.x side takes it, the Bliss 2 side had it
    before = snapshots(modules_redis.url)
    for number in (n1, n2):
        refused("SequenceManager_DuplicateScan", lambda n=number: proxy.AddScan(str(n)))
    assert unchanged_since(modules_redis.url, before) == []
    assert list(proxy.ScanNames) == [name1, name2]
    assert proxy.End() == "DONE"
    assert snapshot(modules_redis.url, key)["references"] == [
        {"key": key1, "scan_number": n1}, {"key": key2, "scan_number": n2}]


def end_events(url: str, db_name: str) -> list[bytes]:
    """The events of a 1.x node's END stream (the 1.x data of DataFormat both is in db 1)."""
    with redis.Redis.from_url(url, db=1) as client:
        return [entry[b"__EVENT__"] for _, entry in client.xrange(db_name + "_end")]


def test_end_after_redis_dropped_the_bliss2_side(store, session_name, modules_redis,
                                                 start_device):
    """Redis no longer holds the Bliss 2 sequence: End ends the 1.x one DONE and says that
    nothing of the Bliss 2 one was left to close."""
    proxy = start_device(DataFormat="both").proxy
    db_name = proxy.Start("")
    with redis.Redis.from_url(modules_redis.url) as client:
        assert client.delete(proxy.ScanKey) == 1
    wait_until(lambda: proxy.State() == tango.DevState.FAULT, what=proxy.Status)
    desc = refused("SequenceManager_SequenceLost", proxy.End)
    assert desc.startswith(f"1.x: sequence {db_name} ended DONE. Bliss 2: Redis no longer holds")
    assert desc.endswith("Redis holds nothing of it to close.")
    assert end_events(modules_redis.url, db_name) == [b"END_SCAN"]


LONE_SURROGATE = "\udc80"  # what JSON's "\\udc80" escape gives: no UTF-8 encodes it


@pytest.mark.parametrize("data_format", ["bliss2", "both"])
def test_text_redis_cannot_store_takes_no_scan_number(store, session_name, modules_redis,
                                                      start_device, data_format):
    """A lone surrogate in scan_info: BadRequest, nothing written in either model (no scan
    number taken); NUL and text beyond Latin-1 are stored and read back as sent."""
    proxy = start_device(DataFormat=data_format).proxy
    before = snapshots(modules_redis.url)
    for info in ({LONE_SURROGATE: 1}, {"a": [{"b": LONE_SURROGATE}]}):
        for command, request in (("Start", {"scan_info": info}),
                                 ("CreateGroup", {"scans": [1], "scan_info": info})):
            desc = refused("SequenceManager_BadRequest",
                           lambda c=command, r=request: proxy.command_inout(c, json.dumps(r)))
            assert "scan_info" in desc and "lone surrogate" in desc
    assert unchanged_since(modules_redis.url, before) == []
    stored = {"a\x00b": "\u4e2d\u6587", "\u00e9\U0001f600": ["\x00", {"\u4e2d": 1}]}
    proxy.Start(json.dumps({"scan_info": stored}))
    info = store.load_scan(proxy.ScanKey).info
    assert int(store.load_scan(proxy.ScanKey).number) == 1  # no number was skipped
    assert {key: info[key] for key in stored} == stored
    assert {key: json.loads(proxy.ScanInfo)[key] for key in stored} == stored
    assert proxy.End() == "DONE"


def npy(array: numpy.ndarray) -> bytes:
    buffer = io.BytesIO()
    numpy.save(buffer, array)
    return buffer.getvalue()


NO_DIGITS = st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=40).filter(
    lambda text: not any(c.isdigit() for c in text))  # what a Tango string carries
OWN = ("<db_name>", "<key>", "<number>", "<key number>", "<scan>", "<scan key>", "<scan number>")
BAD_REQUESTS = st.one_of(
    st.tuples(st.just("AddScan"), NO_DIGITS | st.sampled_from(
        ["-1", "9" * 30, "\u00b2", "1.5", "1e3", "0x1", "esrf:scan:" + "Z" * 26, *OWN])),
    st.tuples(st.just("EmitChannel"), st.one_of(
        st.tuples(st.lists(st.floats(), max_size=3), NO_DIGITS.filter(
            lambda name: name not in ("sum", "spectrum")).map(lambda name: [name])),
        st.tuples(st.lists(st.floats(), min_size=1, max_size=7).filter(
            lambda values: len(values) % 4), st.just(["spectrum"])),
        st.tuples(st.lists(st.floats(), max_size=3), st.sampled_from([[], ["sum", "sum"]])))),
    st.tuples(st.just("EmitChannelEncoded"), st.tuples(st.sampled_from(["sum", "spectrum"]), (
        st.binary(max_size=200) | st.sampled_from([npy(numpy.array([1j])),
                                                   npy(numpy.zeros((2, 3))),
                                                   npy(numpy.array(["text"]))])))),
    st.tuples(st.just("CreateGroup"), NO_DIGITS | st.sampled_from(
        ['{"scans": [123456]}', '{"scans": ["nope"]}', '{"scans": []}', "[" * 5000])),
    st.tuples(st.just("Start"), NO_DIGITS))


def test_fuzz_refusals_write_nothing_in_either_model(store, session_name, modules_redis,
                                                     bliss1_session, start_device):
    """Runs of requests drawn from what must be refused (names of nothing, numbers out of range,
    the sequence itself in either model: a number the other side could take, a scan both sides
    hold, points of the wrong shape or dtype, bytes that are no .npy, groups of nothing, a
    second Start): each is refused with a ``SequenceManager_`` reason and neither model
    changes; the sequence then ends DONE with what it took before, once in each."""
    name, key, number = both_scans(bliss1_session, store)
    loopscan(1, 0.0, bliss1_session.config.get("diode"), session=bliss1_session)  # 1.x only
    proxy = start_device(DataFormat="both").proxy
    db_name = proxy.Start(json.dumps({"channels": ["sum", "spectrum"]}))
    # each side's own number is a scan the other side could take: refused by one side only
    assert (proxy.SequenceNumber, int(store.load_scan(proxy.ScanKey).number)) == (
        number + 2, number + 1)
    assert proxy.AddScan(str(number)) == name and proxy.EmitChannel(([1.5], ["sum"])) == 1
    own = dict(zip(OWN, (db_name, proxy.ScanKey, str(proxy.SequenceNumber),
                         str(int(store.load_scan(proxy.ScanKey).number)), name, key,
                         str(number))))

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(requests=st.lists(BAD_REQUESTS, min_size=1, max_size=5))
    def refused_writing_nothing(requests: list[tuple[str, Any]]) -> None:
        for command, argument in requests:
            argument = own.get(argument, argument) if isinstance(argument, str) else argument
            before = snapshots(modules_redis.url)
            with pytest.raises(tango.DevFailed) as failure:
                proxy.command_inout(command, argument)
            error = failure.value.args[0]
            assert error.reason.startswith("SequenceManager_"), (command, argument, error)
            assert unchanged_since(modules_redis.url, before) == [], (command, argument)

    refused_writing_nothing()
    assert proxy.State() == tango.DevState.RUNNING and proxy.End() == "DONE"
    assert snapshot(modules_redis.url, own["<key>"])["references"] == [
        {"key": key, "scan_number": number}]
    assert end_events(modules_redis.url, db_name) == [b"END_SCAN"]
    with redis.Redis.from_url(modules_redis.url, db=1) as client:
        assert redis_checker.references(client, db_name) == ([name], [number])
