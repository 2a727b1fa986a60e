"""A Bliss-like session written by blissdata 0.3.1, and a reader-neutral dump of what a reader sees.

    python bliss_datanode_demo.py PORT write SESSION   write the session through blissdata
    python bliss_datanode_demo.py PORT dump SESSION    print dump(blissdata's reader) as JSON

``dump(api, session)`` only uses the API blissdata and ``tango_groups.bliss1.node`` share
(``get_session_node``, ``get_node``, ``get_nodes``, ``sessions_list``, walks, ``info``, ``get``),
so the interop test runs it on both readers and compares the JSON. Importing this module does not
import blissdata or gevent (they are imported in ``main``, in the subprocess only).
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

MISSING = "99_missing"  # a reference to a scan that does not exist
UNVERSIONED = "98_unversioned"  # registered, but its struct has no version
LONG = 2300  # points of the long channel: more than blissdata's MAXLEN ~2048 keeps


# -- reader-neutral dump ---------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """A JSON form that keeps types apart (arrays, numpy scalars, tuples, type objects, nodes)."""
    if hasattr(value, "db_name"):
        return {"node": value.db_name, "type": value.type, "class": type(value).__name__}
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        kind = "array" if hasattr(value, "shape") and value.shape else "scalar"
        return {kind: value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, type):
        return {"type_object": f"{value.__module__}.{value.__name__}"}
    if isinstance(value, tuple):
        return {"tuple": [plain(v) for v in value]}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, datetime.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return {"repr": repr(value)}


def attempt(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return plain(function(*args))
    except Exception as error:  # noqa: BLE001 -- the error type is part of the contract
        return {"error": type(error).__name__}


def event_line(event: Any) -> list:
    kind, node, data = event
    line = [kind.name, node.db_name]
    if data is not None:
        line.append(plain(tuple(data)))
    return line


CHANNEL_GETS = [(0, -1), (1,), (-1,), (0,), (1, 2), (0, 0), (2, -1), (3,), (3, 4), (2, 1), (5, 9),
                (100,), (100, 200), (None,), (-5, 1), (10, 20)]
# Far into the long channel only: blissdata walks back one entry per XREVRANGE to find the block
# holding a point, which costs ~1 s per short channel for these.
LONG_CHANNEL_GETS = [(2100, 2101), (2299,), (2299, -1), (1000, 1001)]
CHANNEL_SLICES = [(0, 2), (1, None), (-2, None), (None, None), (2, 2)]
CHANNEL_ITEMS = [1, -1, 100]  # node[i] where both readers agree (blissdata refuses falsy points)


def channel_summary(node: Any) -> dict:
    size = len(node)
    gets = CHANNEL_GETS + (LONG_CHANNEL_GETS if size > LONG // 2 else [])
    return {
        "len": size,
        "shape": plain(node.shape), "dtype": plain(node.dtype), "unit": node.unit,
        "fullname": node.fullname, "short_name": node.short_name,
        "get": {repr(args): attempt(node.get, *args) for args in gets},
        "slices": {repr(bounds): attempt(node.__getitem__, slice(*bounds))
                   for bounds in CHANNEL_SLICES},
        "items": {repr(index): attempt(node.__getitem__, index) for index in CHANNEL_ITEMS},
    }


def node_summary(node: Any) -> dict:
    parent = node.parent
    summary = {"class": type(node).__name__, "type": node.type, "name": plain(node.name),
               "parent": None if parent is None else parent.db_name,
               "info": attempt(node.info.get_all)}
    if node.type in ("channel", "node_ref_channel"):
        summary.update(channel_summary(node))
    return summary


def dump(api: Any, session: str) -> dict:
    root = api.get_session_node(session)
    parent = api.get_node(f"{session}:tmp:scans")
    group = api.get_node(f"{session}:tmp:scans:1_sequence_of_scans")
    scan = api.get_node(f"{session}:tmp:scans:2_loopscan")

    def names(nodes: Iterable[Any]) -> list:
        return [[n.db_name, n.type, type(n).__name__] for n in nodes]

    def events(iterator: Iterable[Any]) -> list:
        return [event_line(e) for e in iterator]

    walked = list(root.walk(wait=False))
    return {
        "sessions": sorted(n.db_name for n in api.sessions_list()),
        "root_type": root.type,
        "walk": names(walked),
        "walk_groups": names(root.iterator.walk(filter="scan_group", wait=False)),
        "walk_scans": names(root.walk(include_filter=["scan_group", "scan"], wait=False)),
        "find_scan": names(parent.walk(include_filter="scan",
                                       exclude_children=("scan", "scan_group"), wait=False)),
        "walk_no_devices": names(root.walk(exclude_children=lambda n: n.type == "None",
                                           wait=False)),
        "walk_callable": names(root.walk(
            include_filter=lambda n: n.type == "channel" and "elapsed" in n.db_name, wait=False)),
        "walk_group": names(group.walk(wait=False)),
        "walk_from_last": names(root.walk_from_last(include_filter="scan", wait=False)),
        "events": events(root.walk_events(wait=False)),
        "events_scans": events(root.walk_events(include_filter=["scan", "scan_group"],
                                                wait=False)),
        "events_refs": events(group.walk_events(filter="node_ref_channel", wait=False)),
        "events_scan": events(scan.walk_events(wait=False)),
        "events_channels": events(root.walk_events(include_filter="channel", wait=False)),
        "nodes": {node.db_name: node_summary(node) for node in walked},
        "get_nodes": [None if n is None else n.db_name for n in api.get_nodes(
            f"{session}:tmp:scans:2_loopscan", f"{session}:tmp:scans:{MISSING}",
            f"{session}:tmp:scans:{UNVERSIONED}", session)],
    }


# -- writing through blissdata ---------------------------------------------------------------------
def write(session: str) -> None:
    import numpy
    from blissdata.data.node import create_node, get_or_create_node

    def now_info(**extra: Any) -> dict:
        now = datetime.datetime.now()
        return {"session_name": session, "user_name": "demo", "save": True, "start_time": now,
                "start_time_str": now.strftime("%a %b %d %H:%M:%S %Y"),
                "start_timestamp": now.timestamp(), "state": "PREPARING", "npoints": 3,
                "writer_options": {"chunk_options": {}}, **extra}

    def channel(parent: Any, name: str, dtype: Any, shape: tuple = (), fullname: str | None = None,
                unit: str | None = None, node_type: str = "channel") -> Any:
        fullname = fullname or f"{parent.db_name.rsplit(':', 1)[-1]}:{name}"
        node = create_node(name, node_type, parent=parent, shape=shape, dtype=dtype, unit=unit,
                           fullname=fullname, channel_name=fullname)
        node.description = {"reference": node_type == "node_ref_channel", "dtype": dtype,
                            "shape": shape, "unit": unit}
        return node

    def emit(node: Any, data: Any) -> None:
        node.store({"data": data, "description": dict(node.description)})

    root = get_or_create_node(session, node_type="container")
    tmp = get_or_create_node("tmp", node_type="container", parent=root)
    scans = get_or_create_node("scans", node_type="container", parent=tmp)

    connection = scans.db_connection

    def next_number(shadow: bool = False) -> int:  # Bliss 1.11: HINCRBY on the parent's struct
        field = "last_shadow_scan_number" if shadow else "last_scan_number"
        return int(connection.hincrby(scans.db_name, field, 1))

    assert next_number() == 1
    group = create_node("1_sequence_of_scans", "scan_group", parent=scans, info=now_info(
        scan_nb=1, title="sequence_of_scans", **{"is-scan-sequence": True}))
    master = create_node("GroupingMaster", parent=group)
    refs = channel(master, "scans", str, fullname="scans", node_type="node_ref_channel")
    numbers = channel(master, "scan_numbers", int, fullname="scan_numbers")
    custom = create_node("custom_channels", parent=master)
    mysum = channel(custom, "mysum", float, fullname="mysum")
    group.prepared({"state": "STARTING"})

    for nb, npoints in ((2, 3), (3, LONG)):
        assert next_number() == nb
        scan = create_node(f"{nb}_loopscan", "scan", parent=scans, info=now_info(
            scan_nb=nb, title=f"loopscan {npoints} 0.1", type="loopscan", group=group.db_name))
        timer = create_node("timer", parent=scan)
        elapsed = channel(timer, "elapsed_time", float, unit="s")
        epoch = channel(timer, "epoch", numpy.float64, unit="s")
        controller = create_node("simulation_diode_sampling_controller", parent=timer)
        diode = channel(controller, "diode", float)
        mca = create_node("mca1", parent=timer)
        spectrum = channel(mca, "spectrum_det0", numpy.uint32, shape=(4,))
        odd = create_node("0001", parent=scan)  # a struct name that auto-coerces to 1
        ragged = channel(odd, "ragged", float, shape=(-1,))
        scan.prepared({"state": "STARTING"})
        emit(elapsed, numpy.float64(0.0))
        emit(elapsed, numpy.array([0.1, 0.2]))
        emit(epoch, numpy.array([1e9, 1e9 + 0.1, 1e9 + 0.2]))
        emit(diode, numpy.array([1.5, 2.5, 3.5]))
        emit(spectrum, numpy.arange(4, dtype=numpy.uint32))
        emit(spectrum, numpy.arange(4, 12, dtype=numpy.uint32).reshape(2, 4))
        emit(ragged, numpy.array([1.0, 2.0]))
        emit(ragged, numpy.array([3.0]))
        if npoints > 3:  # single points, each its own entry: trimmed by MAXLEN ~2048
            for value in range(3, npoints):
                emit(elapsed, numpy.float64(value / 10))
        emit(numbers, numpy.int64(nb))
        emit(refs, scan.db_name)
        scan.end({"state": "STOPPING"}, exception="")
        scan.info["state"] = "DONE"

    ghost = f"{scans.db_name}:{UNVERSIONED}"
    connection.hset(ghost, mapping={"name": UNVERSIONED, "db_name": ghost, "node_type": "scan"})
    connection.xadd(scans.db_name + "_children_list", {"__EVENT__": "NEW_NODE", "db_name": ghost})
    emit(numbers, numpy.int64(99))
    emit(refs, f"{scans.db_name}:{MISSING}")
    emit(mysum, numpy.array([0.5, 1.5]))
    group.end({"state": "STOPPING"}, exception="")
    group.info["state"] = "DONE"
    assert next_number(shadow=True) == 1
    shadow = create_node("_1_ct", "scan", parent=scans, info=now_info(scan_nb=1, title="ct 0.1",
                                                                      type="ct", save=False))
    shadow.prepared({"state": "STARTING"})


def main() -> None:
    from gevent import monkey

    monkey.patch_all(thread=False)
    from blissdata import client
    from blissdata.data import node as bliss_node
    from blissdata.redis.manager import RedisAddress, RedisConnectionManager

    port, command, session = sys.argv[1], sys.argv[2], sys.argv[3]
    address = RedisAddress.factory(f"127.0.0.1:{port}")
    manager = RedisConnectionManager({0: address, 1: address})
    client.set_default_redis_connection_manager_callback(lambda: manager)
    if command == "write":
        write(session)
    elif command == "dump":
        api = SimpleNamespace(get_session_node=bliss_node.get_session_node,
                              get_node=bliss_node.get_node, get_nodes=bliss_node.get_nodes,
                              sessions_list=bliss_node.sessions_list)
        print(json.dumps(dump(api, session)))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
