"""The bytes the writer puts into Redis, checked against the protocol spec (sections 2-10, 14)."""

from __future__ import annotations

import pickle

import numpy
import pytest

from tango_groups.bliss1 import encoding, keys
from tango_groups.bliss1.channel import ChannelNode
from tango_groups.bliss1.writer import DataWriter, Expiration, GroupWriter
from tango_groups.data.channel import ChannelDataError


@pytest.fixture
def writer(redis_client) -> DataWriter:
    return DataWriter(redis_client)


def struct(client, db_name: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(db_name).items()}


def info(client, db_name: str) -> dict:
    return {k.decode(): encoding.loads(v) for k, v in client.hgetall(db_name + "_info").items()}


def test_containers_are_created_once_with_version_and_registration(writer, redis_client):
    parent = writer.ensure_containers(["demo", "tmp", "scans"])
    assert parent == "demo:tmp:scans"
    assert struct(redis_client, "demo:tmp") == {
        "name": "tmp", "db_name": "demo:tmp", "node_type": "container", "version": "v1.1",
        "parent": "demo"}
    assert "parent" not in struct(redis_client, "demo")
    assert not redis_client.exists("demo:tmp_info")  # path containers have no info
    writer.ensure_containers(["demo", "tmp", "scans"])  # reused, not registered again
    entries = redis_client.xrange("demo:tmp_children_list")
    assert [e[1] for e in entries] == [{b"__EVENT__": b"NEW_NODE", b"db_name": b"demo:tmp:scans"}]
    # the empty stream of the leaf exists, as blissdata pre-creates it
    stream = redis_client.xinfo_stream("demo:tmp:scans_children_list")
    assert stream["length"] == 0 and stream["last-generated-id"] == b"0-1"


def test_scan_numbers_use_hincrby_on_the_parent_like_bliss(writer, redis_client):
    parent = writer.ensure_containers(["demo", "tmp", "scans"])
    redis_client.hincrby(parent, "last_scan_number", 41)  # a Bliss session already ran 41 scans
    scan = writer.create_scan(parent, "loopscan", {"title": "loopscan 3 0.1"})
    assert scan.db_name == "demo:tmp:scans:42_loopscan"
    assert redis_client.hget(parent, "last_scan_number") == b"42"
    shadow = writer.create_scan(parent, "ct", {}, shadow=True)
    assert shadow.db_name == "demo:tmp:scans:_1_ct" and shadow.scan_nb == 1


def test_scan_node_keys_and_encodings(writer, redis_client):
    parent = writer.ensure_containers(["demo", "tmp", "scans"])
    scan = writer.create_scan(parent, "loopscan", {"title": "t", "state": "PREPARING"}, channels=[
        ChannelNode(("timer",), "elapsed_time", float, unit="s"),
        ChannelNode(("timer", "mca1"), "spectrum_det0", numpy.uint32, (4,)),
    ])
    db = scan.db_name
    assert struct(redis_client, db)["node_type"] == "scan"
    assert redis_client.hget(db + "_info", "scan_nb") == b"\x80\x04K\x01."  # exact Bliss bytes
    assert info(redis_client, db)["node_name"] == db
    for suffix in ("_prepared", "_end"):
        assert redis_client.xinfo_stream(db + suffix)["length"] == 0
    assert [e[1][b"db_name"] for e in redis_client.xrange(db + "_children_list")] == [
        f"{db}:timer".encode()]
    assert struct(redis_client, db + ":timer")["node_type"] == "None"  # str(None), like Bliss
    channel = struct(redis_client, db + ":timer:mca1:spectrum_det0")
    assert channel["name"] == "mca1:spectrum_det0" and channel["node_type"] == "channel"
    assert info(redis_client, db + ":timer:mca1:spectrum_det0")["dtype"] is numpy.uint32
    assert info(redis_client, db + ":timer:elapsed_time")["shape"] == ()
    registered = [e[1][b"db_name"] for e in redis_client.xrange(db + ":timer_children_list")]
    assert registered == [f"{db}:timer:elapsed_time".encode(), f"{db}:timer:mca1".encode()]


def test_channel_ids_are_positions_and_single_points_are_unwrapped(writer, redis_client):
    parent = writer.ensure_containers(["demo", "tmp", "scans"])
    scan = writer.create_scan(parent, "s", {}, channels=[
        ChannelNode(("timer",), "t", float), ChannelNode(("mca",), "spec", numpy.uint32, (4,))])
    scan.emit({"timer:t": 0.0})
    scan.emit({"timer:t": [0.1, 0.2]})
    scan.emit({"mca:spec": numpy.arange(12).reshape(3, 4)})
    entries = redis_client.xrange(scan.db_name + ":timer:t_data")
    assert [e[0] for e in entries] == [b"1-0", b"2-0"]
    first, second = (e[1] for e in entries)
    assert first[b"__NPOINTS__"] == b"1" and first[b"__EVENT__"] == b"CHANNELDATA"
    assert encoding.loads(first[b"__DATA__"]) == numpy.float64(0.0)
    assert numpy.array_equal(encoding.loads(second[b"__DATA__"]), [0.1, 0.2])
    desc = encoding.loads(first[b"__DESC__"])
    assert desc == {"reference": False, "dtype": float, "shape": (), "unit": None}
    block = encoding.loads(redis_client.xrange(scan.db_name + ":mca:spec_data")[0][1][b"__DATA__"])
    assert block.dtype == numpy.uint32 and block.shape == (3, 4)


@pytest.mark.parametrize("dtype, shape, bad", [
    (int, (), 1.5),                     # a fraction in an integer channel
    (numpy.uint8, (), 300),             # out of range
    (numpy.float32, (), 1e300),         # overflows float32
    (float, (), "text"),                # not a number
    (float, (3,), [1.0, 2.0]),          # wrong spectrum length
    (float, (), [[1.0, 2.0]]),          # 2-D data for a scalar channel
])
def test_bad_points_raise_and_write_nothing(writer, redis_client, dtype, shape, bad):
    parent = writer.ensure_containers(["demo", "tmp", "scans"])
    scan = writer.create_scan(parent, "s", {}, channels=[
        ChannelNode(("d",), "good", float), ChannelNode(("d",), "c", dtype, shape)])
    with pytest.raises(ChannelDataError):
        scan.emit({"d:good": 1.0, "d:c": bad})  # the good channel is not written either
    assert redis_client.xlen(scan.db_name + ":d:good_data") == 0
    assert redis_client.xlen(scan.db_name + ":d:c_data") == 0
    scan.emit({"d:good": 2.0})
    assert redis_client.xrange(scan.db_name + ":d:good_data")[0][0] == b"1-0"


def test_empty_data_publishes_nothing(writer, redis_client):
    parent = writer.ensure_containers(["demo", "tmp", "scans"])
    scan = writer.create_scan(parent, "s", {}, channels=[ChannelNode(("d",), "c", float)])
    scan.emit({"d:c": []})
    scan.emit({"d:c": [1.0]})
    assert [e[0] for e in redis_client.xrange(scan.db_name + ":d:c_data")] == [b"1-0"]


def test_prepared_end_state_merge_and_ttls(redis_client):
    writer = DataWriter(redis_client, Expiration(data=50, parent=5000))
    parent = writer.ensure_containers(["demo", "tmp", "scans"])
    scan = writer.create_scan(parent, "s", {"title": "t", "extra": {"a": 1}, "gone": 1},
                              channels=[ChannelNode(("d",), "c", float)])
    assert redis_client.ttl(scan.db_name) == -1  # nothing expires while a scan runs
    scan.prepared({"extra": {"b": 2}, "gone": None})
    stored = info(redis_client, scan.db_name)
    assert stored["extra"] == {"a": 1, "b": 2} and "gone" not in stored
    assert stored["state"] == "STARTING"
    (_, prepared), = redis_client.xrange(scan.db_name + "_prepared")
    assert prepared[b"__EVENT__"] == b"PREPARED_SCAN"
    assert isinstance(encoding.loads(prepared[b"__TIMESTAMP__"]), float)
    scan.end({}, "DONE")
    (_, end), = redis_client.xrange(scan.db_name + "_end")
    assert end[b"__EVENT__"] == b"END_SCAN" and encoding.loads(end[b"__EXCEPTION__"]) == ""
    stored = info(redis_client, scan.db_name)
    assert (stored["state"] == "DONE"
            and {"end_time", "end_time_str", "end_timestamp"} <= set(stored))
    assert 0 < redis_client.ttl(scan.db_name + ":d:c_data") <= 50
    assert 0 < redis_client.ttl(scan.db_name + ":d") <= 50
    for key in (scan.db_name, scan.db_name + "_end", parent, "demo", "demo_children_list"):
        assert 50 < redis_client.ttl(key) <= 5000, key


def test_group_references_scan_numbers_then_scans_and_never_trims(writer, redis_client):
    parent = writer.ensure_containers(["demo", "tmp", "scans"])
    group = writer.create_scan(parent, "sequence_of_scans", {"is-scan-sequence": True},
                               node_type="scan_group", channels=GroupWriter.channel_specs(),
                               writer_class=GroupWriter)
    master = group.db_name + ":GroupingMaster"
    assert struct(redis_client, master + ":scans")["node_type"] == "node_ref_channel"
    assert info(redis_client, master + ":scans")["dtype"] is str
    assert info(redis_client, master + ":scan_numbers")["dtype"] is int
    count = 2500  # more than Bliss's MAXLEN ~2048
    for number in range(count):
        group.publish_scan(f"{parent}:{number}_loopscan", number)
    assert redis_client.xlen(master + ":scans_data") == count
    assert redis_client.xlen(master + ":scan_numbers_data") == count
    last = redis_client.xrevrange(master + ":scans_data", count=1)[0]
    assert last[0] == f"{count}-0".encode()
    assert encoding.loads(last[1][b"__DATA__"]) == f"{parent}:{count - 1}_loopscan"
    number = encoding.loads(
        redis_client.xrange(master + ":scan_numbers_data", count=1)[0][1][b"__DATA__"])
    assert type(number) is numpy.int64
    desc = encoding.loads(redis_client.xrange(master + ":scans_data", count=1)[0][1][b"__DESC__"])
    assert desc["reference"] is True and desc["dtype"] is str


def test_grouping_an_ended_scan_refreshes_its_ttl(redis_client):
    writer = DataWriter(redis_client, Expiration(data=100, parent=1000))
    parent = writer.ensure_containers(["demo", "tmp", "scans"])
    scan = writer.create_scan(parent, "s", {}, channels=[ChannelNode(("d",), "c", float)])
    scan.end({}, "DONE")
    redis_client.expire(scan.db_name, 3)
    redis_client.expire(scan.db_name + ":d:c_data", 3)
    group = writer.create_scan(parent, "g", {}, node_type="scan_group",
                               channels=GroupWriter.channel_specs(), writer_class=GroupWriter)
    group.publish_scan(scan.db_name, scan.scan_nb)
    assert 3 < redis_client.ttl(scan.db_name) <= 1000
    assert 3 < redis_client.ttl(scan.db_name + ":d:c_data") <= 100


def test_written_pickles_use_numpy1_module_paths(writer, redis_client):
    parent = writer.ensure_containers(["demo", "tmp", "scans"])
    scan = writer.create_scan(parent, "s", {"array": numpy.arange(3)},
                              channels=[ChannelNode(("d",), "c", numpy.float32, (2,))])
    scan.emit({"d:c": [[1, 2], [3, 4]]})
    raw = [redis_client.hget(scan.db_name + "_info", "array"),
           redis_client.xrange(scan.db_name + ":d:c_data")[0][1][b"__DATA__"]]
    for data in raw:
        assert b"numpy._core" not in data and b"numpy.core.multiarray" in data
        assert pickle.loads(data) is not None  # and they still load here


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with pytest.raises(encoding.UnsafePickleError, match="refusing to unpickle"):
        encoding.loads(pickle.dumps(Exploit()))
    assert not marker.exists()


def test_invalid_names_are_refused(writer):
    with pytest.raises(ValueError, match="contain no ':'"):
        writer.ensure_containers(["demo", "a:b"])
    assert keys.scan_saving_parts("demo", "/tmp/scans") == ["demo", "tmp", "scans"]
    assert keys.scan_saving_parts("demo", "/data/demo/visitor") == ["demo", "data", "visitor"]


@pytest.mark.parametrize("value", [
    numpy.float64(1.5), numpy.int64(-7), numpy.bool_(True), numpy.float32(2.5), numpy.str_("ab"),
    numpy.arange(5), numpy.arange(6.0).reshape(2, 3), numpy.array([1, 65535], dtype=numpy.uint16),
    numpy.array(["ab", "c"]), numpy.arange(6)[::2], numpy.zeros((0, 3)),
])
def test_point_pickles_are_the_same_bytes_as_the_general_path(value):
    fast = encoding.dumps(value)
    assert fast == encoding._slow_dumps(value)
    back = pickle.loads(fast)
    assert type(back) is type(value) and numpy.array_equal(back, value)
    assert b"numpy._core" not in fast
