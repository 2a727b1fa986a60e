"""The anchor side of ``benchmarks.run``: blissdata 0.3.1 doing the same jobs, timed.

Runs in its own process (blissdata needs gevent's monkey patching, which must stay out of the
process measuring tango_groups) and talks to the same private redis-server, without Beacon::

    python benchmarks/bliss_side.py PORT TASK '{"json": "arguments"}'

prints one JSON document on stdout: raw samples in seconds (``benchmarks.run`` computes the
statistics).
Tasks mirror the rows of the performance anchors (``spec/performance_anchors.md`` of the
shared design notes):

    create_sequence  scan_group + GroupingMaster + scans + scan_numbers, then prepared (and end)
    append           one scan reference = two channel stores (scan_numbers, then scans)
    scan             scan node, a device, 2 channels, prepared, one 100-point block each, end, TTLs
    scan_points      the same, but every point stored in its own round trip (one pipeline/point)
    store            one channel store of a float64 block of each size
    walk             session.walk(include_filter=..., wait=False) over an existing session
    refs             node_ref_channel.get(0, -1) of an existing sequence

The nodes are created with blissdata's public node API (``create_node``/``get_or_create_node``,
``ScanNode.prepared/end``, ``ChannelDataNode.store``), which is what Bliss calls underneath.
"""

from gevent import monkey

monkey.patch_all(thread=False)

import json
import sys
import time

import numpy
from blissdata import client
from blissdata.data.expiration import set_expiration_time
from blissdata.data.node import create_node, get_node, get_or_create_node, get_session_node
from blissdata.redis.manager import RedisAddress, RedisConnectionManager

perf = time.perf_counter


def configure(port: int) -> None:
    address = RedisAddress.factory(f"127.0.0.1:{port}")
    manager = RedisConnectionManager({0: address, 1: address})
    client.set_default_redis_connection_manager_callback(lambda: manager)


def proxy():
    return client.get_redis_proxy(db=1)


def scan_parent(session: str):
    """``{session}:tmp:scans``, get-or-create (Bliss's ScanSaving path containers)."""
    node = get_or_create_node(session, node_type="container")
    for part in ("tmp", "scans"):
        node = get_or_create_node(part, node_type="container", parent=node)
    return node


def scan_info(session: str, nb: int, title: str, **extra) -> dict:
    return {"scan_nb": nb, "title": title, "session_name": session, "save": True,
            "type": title.split()[0], "state": "PREPARING", "npoints": 100,
            "start_timestamp": time.time(), **extra}


def new_scan(parent, name: str, node_type: str = "scan", **extra):
    """Number from HINCRBY on the parent struct (Bliss 1.11), then the scan node."""
    nb = int(proxy().hincrby(parent.db_name, "last_scan_number", 1))
    info = scan_info(parent.db_name.split(":")[0], nb, name, **extra)
    node = create_node(f"{nb}_{name}", node_type, parent=parent, info=info)
    return node, info


def channel(name: str, node_type: str, parent, dtype, fullname: str):
    return create_node(name, node_type, parent=parent, shape=(), dtype=dtype, unit=None,
                       fullname=fullname, channel_name=fullname)


def new_sequence(parent):
    group, info = new_scan(parent, "sequence_of_scans", "scan_group",
                           **{"is-scan-sequence": True})
    master = create_node("GroupingMaster", None, parent=group)
    scans = channel("scans", "node_ref_channel", master, str, "scans")
    numbers = channel("scan_numbers", "channel", master, int, "scan_numbers")
    group.prepared({"state": "STARTING"})
    return group, info, scans, numbers


SCANS_DESC = {"reference": True, "dtype": str, "shape": (), "unit": None}
NUMBERS_DESC = {"reference": False, "dtype": int, "shape": (), "unit": None}


def expire_scan(node, data_nodes) -> None:
    """Bliss's TTLs after END: data keys 600 s, the scan and its ancestors 1 day."""
    data_keys = [k for n in data_nodes for k in n.get_db_names(include_parents=False)]
    set_expiration_time(data_keys, data=True)
    set_expiration_time(node.get_db_names(include_parents=True), data=False)


# -- tasks ------------------------------------------------------------------------------------
def task_create_sequence(session: str, n: int, repeats: int) -> dict:
    parent = scan_parent(session)
    create, end = [], []
    for _ in range(repeats):
        c, e = [], []
        for _ in range(n):
            t0 = perf()
            group, info, _, _ = new_sequence(parent)
            t1 = perf()
            group.end(info)
            t2 = perf()
            c.append(t1 - t0)
            e.append(t2 - t1)
        create.append(c)
        end.append(e)
    return {"create": create, "end": end}


def task_append(session: str, n: int, repeats: int) -> dict:
    parent = scan_parent(session)
    # the referenced scans exist (running, no TTL), as when a sequence publishes a started scan
    targets = []
    for _ in range(n):
        node, info = new_scan(parent, "loopscan")
        targets.append((node.db_name, info["scan_nb"]))
    per_call, totals = [], []
    for _ in range(repeats):
        group, info, scans, numbers = new_sequence(parent)
        samples = []
        start = perf()
        for db_name, nb in targets:
            t0 = perf()
            numbers.store({"data": numpy.array([nb]), "description": NUMBERS_DESC})
            scans.store({"data": db_name, "description": SCANS_DESC})
            samples.append(perf() - t0)
        totals.append(perf() - start)
        per_call.append(samples)
        group.end(info)
    return {"per_call": per_call, "total": totals}


def _one_scan(parent, npoints: int, point_by_point: bool) -> None:
    node, info = new_scan(parent, "loopscan")
    timer = create_node("timer", None, parent=node)
    elapsed = channel("elapsed_time", "channel", timer, float, "timer:elapsed_time")
    epoch = channel("epoch", "channel", timer, float, "timer:epoch")
    node.prepared({"state": "STARTING"})
    desc = {"reference": False, "dtype": float, "shape": (), "unit": "s"}
    t = numpy.arange(npoints, dtype=float) * 0.01
    if point_by_point:
        cnx = proxy()
        for i in range(npoints):
            pipe = cnx.pipeline()
            elapsed.store({"data": t[i], "description": desc}, cnx=pipe)
            epoch.store({"data": t[i] + 1.7e9, "description": desc}, cnx=pipe)
            pipe.execute()
    else:
        elapsed.store({"data": t, "description": desc})
        epoch.store({"data": t + 1.7e9, "description": desc})
    node.end(info)
    expire_scan(node, [timer, elapsed, epoch])


def task_scan(session: str, n: int, repeats: int, npoints: int = 100,
              point_by_point: bool = False) -> dict:
    parent = scan_parent(session)
    _one_scan(parent, npoints, point_by_point)  # warm-up (imports, scripts)
    out = []
    for _ in range(repeats):
        samples = []
        for _ in range(n):
            t0 = perf()
            _one_scan(parent, npoints, point_by_point)
            samples.append(perf() - t0)
        out.append(samples)
    return {"per_scan": out}


def task_store(session: str, sizes: list, calls: dict, repeats: int) -> dict:
    parent = scan_parent(session)
    cnx = proxy()
    out = {}
    desc = {"reference": False, "dtype": "float64", "shape": (), "unit": None}
    for size in sizes:
        data = numpy.random.default_rng(0).random(size)
        out[str(size)] = []
        for _ in range(repeats):
            node, _ = new_scan(parent, "store")
            dev = create_node("dev", None, parent=node)
            chan = channel("c", "channel", dev, "float64", "dev:c")
            samples = []
            for _ in range(calls[str(size)]):
                t0 = perf()
                chan.store({"data": data, "description": desc})
                samples.append(perf() - t0)
            out[str(size)].append(samples)
            cnx.delete(chan.db_name + "_data")  # keep Redis small between repeats
    return out


def task_walk(session: str, repeats: int, include_filter, exclude_children=None) -> dict:
    root = get_session_node(session)
    times, counts = [], []
    for _ in range(repeats):
        t0 = perf()
        found = list(root.walk(include_filter=include_filter,
                               exclude_children=exclude_children and tuple(exclude_children),
                               wait=False))
        times.append(perf() - t0)
        counts.append(len(found))
    return {"times": times, "counts": counts}


def task_refs(db_name: str, repeats: int) -> dict:
    times, counts = [], []
    for _ in range(repeats):
        t0 = perf()
        node = get_node(db_name)
        nodes = node.get(0, -1)
        times.append(perf() - t0)
        counts.append(sum(1 for n in nodes if n is not None))
    return {"times": times, "counts": counts}


TASKS = {
    "create_sequence": task_create_sequence,
    "append": task_append,
    "scan": task_scan,
    "store": task_store,
    "walk": task_walk,
    "refs": task_refs,
}


def main() -> None:
    port, task, arguments = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    configure(port)
    result = TASKS[task](**arguments)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
