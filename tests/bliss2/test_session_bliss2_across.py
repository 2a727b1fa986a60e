"""A bliss2 ``Session``'s sequences across processes, as in 1.x: scan numbers another process
writes (``add_number``: pending until PREPARED) and ``Sequence.reopen`` of a sequence another
process left running; what they wrote read back by blissdata 2.4.5's reader (``snapshot``, a
subprocess): every sub-scan and point exactly once. The other processes are this Python running
``tango_groups`` (``python -c``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("blissdata.redis_engine.store", reason="blissdata 2.x (tango_groups[bliss2])")

from bliss2_support import snapshot, write_scan

from tango_groups.bliss2 import custom_stream_name
from tango_groups.scanning.chain import AcquisitionChannel
from tango_groups.scanning.group import ScanSequenceError, Sequence, SequenceContext
from tango_groups.scanning.scan import ScanState
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session

DIODE = "simulation_diode_sampling_controller:diode"
PROCESS_TIMEOUT = 120  # seconds another process may take

SESSION = """
import json, sys
from tango_groups.scanning.chain import AcquisitionChannel
from tango_groups.scanning.group import Sequence, SequenceContext
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session
session = Session(sys.argv[2], redis_url=sys.argv[1], data_format="bliss2").setup()
diode = session.config.get("diode")
"""
LOOPSCAN = SESSION + "print(loopscan(3, .01, diode).key)\n"
# takes the sequence over, tells what it found, adds a scan and points, and leaves it running
REOPEN = SESSION + """
seq = Sequence.reopen(sys.argv[3], [AcquisitionChannel("sum", float, ())])
found = {"numbers": list(seq.scan_numbers), "names": list(seq.scan_names), "state": seq.state.name,
         "sum": seq.recovered["sum"].tolist(), "title": seq.title}
scan_seq = SequenceContext(seq)
scan_seq.add_node(seq.scan_names[0])  # referenced already: not twice
scan = loopscan(2, .01, diode, run=False)
scan_seq.add_and_run(scan)
seq.custom_channels["sum"].emit([3.0, 4.0])
print(json.dumps({**found, "added": [scan.key, scan.scan_number]}))
"""


def run_python(code: str, *args: str) -> str:
    """``code`` run by this Python in another process (``sys.argv[1:]``: ``args``): its output."""
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         timeout=PROCESS_TIMEOUT, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_number_another_process_writes_is_pending_until_its_scan_is_prepared(session, url,
                                                                              session_name):
    seq = Sequence()
    with seq.sequence_context() as scan_seq:
        number = seq.scan_nb + 1  # the session's next scan: not written yet
        scan_seq.add_number(number)
        assert seq.pending_numbers == (number,) and seq.published == 0
        assert scan_seq.wait_all_subscans(timeout=0) is False
        key = run_python(LOOPSCAN, url, session_name).strip()
        assert scan_seq.wait_all_subscans(timeout=30) is True
        assert seq.pending_numbers == () and seq.published == 1
        assert (seq.scan_numbers, seq.scan_names, seq.scans) == ([number], [key], [key])
    assert seq.state is ScanState.DONE and seq.unfinished == []
    seen = snapshot(url, seq.key)
    assert seen["state"] == "CLOSED" and seen["info"]["end_reason"] == "SUCCESS"
    assert seen["references"] == [{"key": key, "scan_number": number}]
    assert [sub["key"] for sub in seen["subscans"]] == [key]
    assert len(seen["subscans"][0]["streams"][DIODE]) == 3


def test_a_prepared_number_is_referenced_at_once_a_created_one_when_prepared(session, store,
                                                                             url, session_name):
    seq = Sequence()
    while_created = []
    with seq.sequence_context() as scan_seq:
        done = write_scan(store, session_name, 50)
        scan_seq.add_number(50)
        assert seq.scan_numbers == [50] and seq.pending_numbers == ()  # no wait

        def add_while_created() -> None:  # scan 51 exists, CREATED: followed by its state
            scan_seq.add_number(51)
            while_created.append((seq.pending_numbers, seq.published))

        created = write_scan(store, session_name, 51, before_prepare=add_while_created)
        assert scan_seq.wait_all_subscans(timeout=30) is True
    assert while_created == [((51,), 1)]
    assert snapshot(url, seq.key)["references"] == [{"key": done, "scan_number": 50},
                                                    {"key": created, "scan_number": 51}]


def test_a_number_never_written_is_unfinished_and_the_sequence_closed(session, url):
    seq = Sequence(title="waits")
    with pytest.raises(ScanSequenceError, match='"waits" have not finished'), \
            seq.sequence_context() as scan_seq:
        scan_seq.add_number(99)
        with pytest.raises(ScanSequenceError, match="scan 99 is already pending"):
            scan_seq.add_number(99)
    assert seq.unfinished == [99] and seq.pending_numbers == ()
    seen = snapshot(url, seq.key)
    assert seen["state"] == "CLOSED" and seen["references"] == []


def test_a_sequence_reopened_in_another_process_goes_on_with_nothing_written_twice(
        session, url, session_name):
    diode = session.config.get("diode")
    seq = Sequence(title="across processes")
    seq.add_custom_channel(AcquisitionChannel("sum", float, ()))
    scan_seq = seq.start()  # never ended here: as if this process had crashed
    s1 = loopscan(3, .01, diode)
    scan_seq.add(s1)
    seq.custom_channels["sum"].emit([1.0, 2.0])

    found = json.loads(run_python(REOPEN, url, session_name, seq.key))
    s2_key, s2_number = found.pop("added")
    assert found == {"numbers": [s1.scan_number], "names": [s1.key], "state": "STARTING",
                     "sum": [1.0, 2.0], "title": "across processes"}

    again = Sequence.reopen(seq.key, [AcquisitionChannel("sum", float, ())])  # a third time
    assert (again.scan_names, again.scan_numbers) == ([s1.key, s2_key],
                                                      [s1.scan_number, s2_number])
    assert again.recovered["sum"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert again.references(s2_key) and again.scan_nb == seq.scan_nb
    context = SequenceContext(again)
    context.add(s1)  # referenced already: not twice
    context.add_number(s2_number)  # the same: referenced at once, and only once
    s3 = loopscan(2, .01, diode)
    context.add_node(s3.key)
    again.custom_channels["sum"].emit(5.0)
    assert again.end() is ScanState.DONE

    seen = snapshot(url, seq.key)
    assert seen["state"] == "CLOSED" and seen["info"]["end_reason"] == "SUCCESS"
    assert seen["references"] == [{"key": s1.key, "scan_number": s1.scan_number},
                                  {"key": s2_key, "scan_number": s2_number},
                                  {"key": s3.key, "scan_number": s3.scan_number}]
    assert [len(sub["streams"][DIODE]) for sub in seen["subscans"]] == [3, 2, 2]
    assert seen["data"][custom_stream_name("sum")] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_reopen_refuses_what_is_no_running_sequence_of_the_session(session, url, session_name):
    diode = session.config.get("diode")
    ended = Sequence()
    with ended.sequence_context():
        pass
    scan = loopscan(1, .01, diode)
    for key, message in ((ended.key, r"has ended \(state CLOSED\)"),
                         (scan.key, "is not a sequence in Redis .*only a sequence scan"),
                         ("esrf:scan:01ZZZZZZZZZZZZZZZZZZZZZZZZ", "is not a sequence in Redis"),
                         ("no key", "is not a sequence in Redis")):
        with pytest.raises(ScanSequenceError, match=message):
            Sequence.reopen(key)

    running = Sequence()
    running.add_custom_channel(AcquisitionChannel("sum", float, ()))
    running.start()
    with pytest.raises(ScanSequenceError, match="has no custom channel 'other'.*'sum'"):
        Sequence.reopen(running.key, [AcquisitionChannel("other", float, ())])
    other = Session(f"{session_name}_other", redis_url=url, data_format="bliss2")
    try:
        with pytest.raises(ScanSequenceError, match=f"of session '{session_name}'"):
            Sequence.reopen(running.key, session=other)
    finally:
        other.close()
    running.custom_channels["sum"].emit(1.0)  # the refusals wrote nothing: it goes on
    running.end()
    seen = snapshot(url, running.key)
    assert seen["state"] == "CLOSED" and seen["data"][custom_stream_name("sum")] == [1.0]
