"""The SequenceManager with ``DataFormat both``: one sequence in each data model, each referencing
the scans of its own generation, read by blissdata 0.3.1 (1.x) and blissdata 2.4.5 (Bliss 2),
each in its own environment.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("blissdata.redis_engine.store", reason="blissdata 2.x (tango_groups[bliss2])")

from bliss2_support import snapshot, write_scan
from bliss_envs import BLISS1_PYTHON
from tango_checks import refused, wait_until

from tango_groups.bliss2 import custom_stream_name, find_scans
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session

INTEROP = Path(__file__).parents[1] / "interop"


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
