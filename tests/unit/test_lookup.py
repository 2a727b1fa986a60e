"""Finding scans to reference (``tango_groups.bliss1.lookup``): by name and by number, read safely,
newest registrations first, and telling a number not registered *yet* from one that never will."""

from __future__ import annotations

import pytest
from hostile import evil_pickle

from tango_groups.bliss1 import lookup
from tango_groups.bliss1.writer import DataWriter, GroupWriter
from tango_groups.session import Session


@pytest.fixture
def session(redis_url, redis_client, session_name):
    session = Session(session_name, redis_url=redis_url)
    yield session
    session.close()


def write_scan(session: Session, name: str = "loopscan", shadow: bool = False,
               node_type: str = "scan", prepared: bool = True) -> str:
    model = session.model
    writer = model.writer.create_scan(model.scan_saving_parent, name, {"title": name},
                                      shadow=shadow, node_type=node_type,
                                      writer_class=GroupWriter if node_type != "scan" else None)
    if prepared:
        writer.prepared({})
    return writer.db_name


def test_scan_facts_are_read_safely(session) -> None:
    client = session.client
    done, waiting = write_scan(session), write_scan(session, prepared=False)
    facts = lookup.scan_facts(client, done)
    assert (facts.node_type, facts.number, facts.state, facts.prepared, facts.ended) == (
        "scan", 1, "STARTING", True, False)
    assert lookup.scan_facts(client, waiting).prepared is False
    assert lookup.scan_facts(client, done + "_nothing") is None
    assert not lookup.scan_facts(client, session.scan_saving_db_name).is_scan  # a container
    for field in ("scan_nb", "state"):
        original = client.hget(done + "_info", field)
        for planted in (evil_pickle(), b"not a pickle"):
            client.hset(done + "_info", field, planted)
            with pytest.raises(lookup.UnreadableScan, match=field):
                lookup.scan_facts(client, done)
        client.hset(done + "_info", field, original)
    client.hdel(done + "_info", "scan_nb")
    with pytest.raises(lookup.UnreadableScan, match="scan_nb"):
        lookup.scan_facts(client, done)


def test_numbers_are_found_as_bliss_finds_them(session) -> None:
    client, container = session.client, session.scan_saving_db_name
    names = [write_scan(session) for _ in range(150)]  # more than a page of registrations
    group = write_scan(session, "group", node_type="scan_group")  # 151: not found by number
    shadow = write_scan(session, "ct", shadow=True)  # _1_ct: shadow numbers count apart
    assert lookup.find_scan(client, container, 1).db_name in (names[0], shadow)
    assert lookup.find_scan(client, container, 150).db_name == names[149]
    assert lookup.find_scan(client, container, 151) is None and group.endswith("151_group")
    assert lookup.find_scan(client, container, 152) is None
    client.delete(names[10])  # expired
    assert lookup.find_scan(client, container, 11) is None
    assert lookup.allocated_number(client, container) == 151
    expired = lookup.search_number(client, container, 11)
    assert expired.registered and expired.facts is None
    assert lookup.search_number(client, container, 152) == lookup.NumberSearch(None, False, False)
    client.delete(f"{container}:50_loopscan")
    children = f"{container}_children_list"
    client.xdel(children, *[entry_id for entry_id, fields in client.xrange(children)
                            if fields[b"db_name"].endswith(b":50_loopscan")])  # no trace of 50
    # 100 higher numbers registered since: 50 will not register any more
    assert lookup.search_number(client, container, 50) == lookup.NumberSearch(None, False, True)
    assert not lookup.search_number(client, container, 140).settled  # 11 higher only


def test_registrations_that_cross_are_found(session) -> None:
    """Two writers allocate 1 and 2, and 2 registers first: both are found."""
    client, writer = session.client, DataWriter(session.client)
    parent = session.model.scan_saving_parent
    first, second = writer.next_scan_number(parent), writer.next_scan_number(parent)
    for number in (second, first):
        with client.pipeline() as pipe:
            writer.queue_node(pipe, f"{parent}:{number}_scan", "scan", [],
                              info={"scan_nb": number})
            pipe.execute()
    for _ in range(5):
        write_scan(session)
    assert lookup.find_scan(client, parent, first).db_name == f"{parent}:1_scan"
    assert lookup.find_scan(client, parent, second).db_name == f"{parent}:2_scan"


def test_unreadable_candidates_are_reported(session) -> None:
    client = session.client
    db_name = write_scan(session)
    client.hset(db_name + "_info", "scan_nb", evil_pickle())
    with pytest.raises(lookup.UnreadableScan, match="scan_nb"):
        lookup.find_scan(client, session.scan_saving_db_name, 1)
