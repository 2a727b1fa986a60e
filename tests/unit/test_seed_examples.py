"""Every example of the seed page (shared/seed/groups_and_sequences.md), run as written.

Only the import lines and the session set-up differ from the page (``bliss.*`` imports become
``tango_groups.*``; ``config``/``current_session`` come from a ``Session``). One more change is
forced by numpy itself: ``numpy.float`` was an alias of the builtin ``float`` and no longer exists
in any numpy that runs on Python 3.11 with numpy >= 1.24, so the custom-channel example says
``float``. The examples shared with the bliss2 tests are in tests/seed_examples.py.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import seed_examples as seed  # tests/

from tango_groups import current_session
from tango_groups.bliss1.node import ScanNode, get_node, get_session_node
from tango_groups.scanning.group import Group, Sequence
from tango_groups.scanning.scan import ScanState
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session


@pytest.fixture
def config(redis_url, redis_client, session_name):
    session = Session(session_name, redis_url=redis_url).setup()
    yield session.config
    session.close()


def scan_refs(seq) -> list[str]:
    refs = get_node(seq.node.db_name + ":GroupingMaster:scans").get(0, -1)
    return [node.db_name for node in refs]


def test_group_of_scans_after_they_ran(config):
    group, s1, s2 = seed.group_of_scans(config.get("diode"))

    parent = f"{current_session.name}:tmp:scans"
    assert (s1.db_name, s2.db_name) == (f"{parent}:1_loopscan", f"{parent}:2_loopscan")
    assert group.node.db_name == f"{parent}:3_group_of_scans"
    assert group.node.info["title"] == "group_of_scans"
    assert group.node.info["is-scan-sequence"] is True
    assert scan_refs(group) == [s1.db_name, s2.db_name]
    numbers = get_node(group.node.db_name + ":GroupingMaster:scan_numbers")
    assert len(numbers) == 2 and list(numbers.get(0, -1)) == [1, 2]
    assert group.state == ScanState.DONE


def test_group_takes_scan_objects_nodes_and_numbers(config):
    diode = config.get("diode")
    scans = [loopscan(2, 0.01, diode) for _ in range(3)]
    group = Group(scans[0], scans[1].node, scans[2].scan_number, title="mixed",
                  scan_info={"sample": "Au"})
    assert scan_refs(group) == [s.db_name for s in scans]
    assert group.node.info["sample"] == "Au" and group.node.info["title"] == "mixed"


def test_sequence_with_add_add_and_run_and_a_finished_scan(config):
    seq, s1, s2, s3 = seed.sequence_with_add_and_add_and_run(config.get("diode"))

    parent = f"{current_session.name}:tmp:scans"
    assert seq.node.db_name == f"{parent}:1_sequence_of_scans"
    assert [s.scan_number for s in (s1, s2, s3)] == [2, 3, 4]
    assert scan_refs(seq) == [s1.db_name, s2.db_name, s3.db_name]
    # scans added before they ran carry the group (Flint follows them); s3 was added after
    assert s1.node.info["group"] == seq.node.db_name == s2.node.info["group"]
    assert "group" not in s3.node.info
    assert seq.node.info["state"] == "DONE" and seq.state == ScanState.DONE


def test_sequence_with_custom_channels(config):
    diode = config.get("diode")
    seq, s1, s2, my_sum = seed.sequence_with_custom_channels(diode)

    custom = seq.node.db_name + ":GroupingMaster:custom_channels"
    walked = [node.db_name for node in seq.node.walk(wait=False)]
    assert custom in walked and custom + ":mychannel" in walked
    assert list(get_node(custom + ":mychannel").get(0, -1)) == [1.1, 2.2, 3.3]
    summed = get_node(custom + ":sum").get(0, -1)
    diode_data = [get_node(f"{s.db_name}:timer:simulation_diode_sampling_controller:diode")
                  .get(0, -1) for s in (s1, s2)]
    assert list(summed) == list(diode_data[0] + diode_data[1]) == list(my_sum)
    assert len(summed) == 5


def test_listening_to_groups_and_scans(config):
    diode = config.get("diode")
    s1, s2 = loopscan(2, 0.01, diode), loopscan(2, 0.01, diode)
    seq = Sequence()
    with seq.sequence_context() as scan_seq:
        scan_seq.add(s1)
        scan_seq.add(s2)
        for _ in range(2):
            scan_seq.add_and_run(loopscan(2, 0.01, diode, run=False))

    printed = [(node.db_name, node.info["scan_nb"]) for node in
               get_session_node(current_session.name).iterator.walk(
                   filter='scan_group', wait=False)]
    parent = f"{current_session.name}:tmp:scans"
    assert printed == [(f"{parent}:3_sequence_of_scans", 3)]

    printed = [(node.db_name, node.info["scan_nb"]) for node in get_session_node(
        current_session.name).iterator.walk(filter=['scan_group', 'scan'], wait=False)]
    assert printed == [(f"{parent}:1_loopscan", 1), (f"{parent}:2_loopscan", 2),
                       (f"{parent}:3_sequence_of_scans", 3), (f"{parent}:4_loopscan", 4),
                       (f"{parent}:5_loopscan", 5)]


def test_listening_to_scans_added_to_a_sequence(config):
    """The online-analysis example: walk_events(filter='node_ref_channel') while the sequence
    runs."""
    diode = config.get("diode")
    seq = Sequence()
    seen: list[tuple[str, str, list]] = []
    done = threading.Event()

    def listen(node) -> None:
        events = node.iterator.walk_events(filter='node_ref_channel')
        for (event, node, data) in events:  # noqa: PLR1704 (the seed page, verbatim)
            seen.append((event.name, node.db_name,
                         node.get(0, -1) if event.name == "NEW_DATA" else []))
            if event.name == "NEW_DATA" and len(node.get(0, -1)) == 2:
                break
        events.close()
        done.set()

    with seq.sequence_context() as scan_seq:
        listener = threading.Thread(target=listen, args=(seq.node,), daemon=True)
        listener.start()
        for _ in range(2):
            scan_seq.add_and_run(loopscan(3, .05, diode, run=False))
    assert done.wait(30), "the listener did not see both scans"
    refs = seq.node.db_name + ":GroupingMaster:scans"
    assert seen[0][:2] == ("NEW_NODE", refs)
    assert all(name == "NEW_DATA" and db == refs for name, db, _ in seen[1:])
    final = seen[-1][2]
    assert all(isinstance(node, ScanNode) for node in final)
    assert [node.info["scan_nb"] for node in final] == [seq.scan_nb + 1, seq.scan_nb + 2]


BLISS1_ONLY = """
import sys
from tango_groups.scanning.chain import AcquisitionChannel
from tango_groups.scanning.group import Group, Sequence
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session

session = Session(sys.argv[2], redis_url=sys.argv[1]).setup()
diode = session.config.get("diode")
seq = Sequence()
seq.add_custom_channel(AcquisitionChannel("sum", float, ()))
with seq.sequence_context() as scan_seq:
    scan_seq.add_and_run(loopscan(2, 0.01, diode, run=False))
    seq.custom_channels["sum"].emit([1.0, 2.0])
Group(loopscan(2, 0.01, diode))
print(sorted(name for name in sys.modules
             if name.split(".")[0] == "blissdata" or name.startswith("tango_groups.bliss2")))
"""


def test_a_bliss1_session_never_imports_blissdata_2(redis_url, redis_client, session_name):
    """blissdata 2.x is the optional [bliss2] extra: the examples of a bliss1 session (the
    default) run without loading it, or our package that wraps it."""
    out = subprocess.run([sys.executable, "-c", BLISS1_ONLY, redis_url, session_name],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    group = f"{session_name}:tmp:scans:4_group_of_scans"
    assert get_node(group, connection=redis_client) is not None  # the examples did run


def test_the_data_format_is_checked(redis_url):
    with pytest.raises(ValueError, match="bliss3"):
        Session("demo", redis_url=redis_url, data_format="bliss3")
