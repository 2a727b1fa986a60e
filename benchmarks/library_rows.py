"""Sections 1 to 5 of the table: our library against raw redis-py and blissdata 0.3.1.

Both sides do the same job on the wire: ours through ``tango_groups.data`` (``DataWriter``,
``ScanWriter``, ``GroupWriter``, ``ChannelWriter``) and the Python API (``tango_groups.scanning``),
theirs through raw redis-py (section 1) or blissdata's node API (``create_node``,
``ScanNode.prepared/end``, ``ChannelDataNode.store``: ``benchmarks/bliss_side.py``).

1. the Redis floor (XADD one at a time and pipelined), 2. creating a sequence, 3. appending scan
references to it, 4. one complete scan, 5. channel stores of big float64 blocks.
"""

from __future__ import annotations

from functools import partial

import numpy

from tango_groups.bliss1 import encoding, keys
from tango_groups.bliss1.channel import ChannelNode

from .common import (
    BenchEnv,
    Row,
    Samples,
    median,
    median_of_medians,
    new_sequence,
    percentile,
    perf,
    scan_info,
    scan_parent,
    timed,
    timed_repeats,
)

__all__ = ["rows_append", "rows_create_sequence", "rows_redis_floor", "rows_scan", "rows_store"]


# -- 1. Redis floor ---------------------------------------------------------------------------
def rows_redis_floor(env: BenchEnv) -> list[Row]:
    p, c = env.profile, env.client
    entry = {"__EVENT__": "CHANNELDATA", "__NPOINTS__": 1, "__DATA__": encoding.dumps(1.5)}
    one_raw: Samples = []
    one_ours: Samples = []
    batch_raw: Samples = []
    batch_ours: Samples = []
    parent = scan_parent(env, "floor")
    def raw_batch() -> None:
        with c.pipeline(transaction=False) as pipe:
            for _ in range(1000):
                pipe.xadd("floor:raw", entry)
            pipe.execute()

    for _ in range(p.repeats):
        c.delete("floor:raw")
        one_raw.append(timed(lambda: c.xadd("floor:raw", entry), p.floor_ops))
        scan = env.writer.create_scan(parent, "floor", scan_info("floor", "floor"),
                                      channels=[ChannelNode(("dev",), "c", float)])
        chan = scan.channel("dev:c")
        one_ours.append(timed(partial(chan.emit, 1.5), p.floor_ops))
        c.delete("floor:raw")
        batch_raw.append([1000 / t for t in timed(raw_batch, p.floor_batches)])

    # ours pipelined: one ScanWriter.emit of one point into each of 1000 channels (a scan with
    # 1000 counters): 1000 XADDs in one round trip, data checked and pickled by our writer.
    wide = env.writer.create_scan(parent, "wide", scan_info("floor", "wide"),
                                  channels=[ChannelNode(("dev",), f"c{i}", float)
                                            for i in range(1000)])
    points = {name: 1.5 for name in wide.channels}
    for _ in range(p.repeats):
        batch_ours.append([1000 / t for t in timed(lambda: wide.emit(points), p.floor_batches)])
    s = "1. Redis floor (anchor = raw redis-py; ours = our writer doing the same XADDs)"
    return [
        Row("XADD one at a time, per op", median_of_medians(one_ours) * 1e6,
            median_of_medians(one_raw) * 1e6, "µs", doc="120-145 µs", section=s,
            note="ours = ChannelWriter.emit of one float point (checked, pickled, one XADD)"),
        Row("XADD pipelined, batches of 1000", median_of_medians(batch_ours),
            median_of_medians(batch_raw), "ops/s", higher_is_better=True, doc="38-42 k ops/s",
            section=s, note="ours = one ScanWriter.emit of one point into each of 1000 channels"),
    ]


# -- 2. create a sequence -----------------------------------------------------------------------
def rows_create_sequence(env: BenchEnv) -> list[Row]:
    p = env.profile
    parent = scan_parent(env, "ours_create")
    new_sequence(env, parent).end({}, "DONE")  # warm-up: script load, imports
    create, end = [], []
    for _ in range(p.repeats):
        c, e = [], []
        for _ in range(p.create_n):
            t0 = perf()
            group = new_sequence(env, parent)
            t1 = perf()
            group.end({}, "DONE")
            t2 = perf()
            c.append(t1 - t0)
            e.append(t2 - t1)
        create.append(c)
        end.append(e)
    api = _api_sequence_samples(env)
    theirs = env.bliss("create_sequence", session="bliss_create", n=p.create_n, repeats=p.repeats)
    s = "2. create a sequence (scan_group + GroupingMaster + scans + scan_numbers, PREPARED)"
    return [
        Row("create + prepared", median_of_medians(create) * 1e3,
            theirs and median_of_medians(theirs["create"]) * 1e3, "ms", doc="6.5 ms", section=s,
            id="create.prepared"),
        Row("end() of that sequence",
            median_of_medians(end) * 1e3, theirs and median_of_medians(theirs["end"]) * 1e3, "ms",
            doc="+1 ms", section=s, id="create.end",
            note="ours: END + TTLs in one transaction; blissdata: END only (its TTLs are set by "
                 "Bliss, not by ScanNode.end)"),
        Row("Python API: Sequence().start() (create + prepared)", median_of_medians(api) * 1e3,
            theirs and median_of_medians(theirs["create"]) * 1e3, "ms", section=s,
            note="tango_groups.scanning.Sequence on a Session: adds the scan-saving container "
                 "get-or-create (one more round trip) and the full Bliss scan_info"),
    ]


def _api_sequence_samples(env: BenchEnv) -> Samples:
    from tango_groups.scanning.group import Sequence as BlissSequence
    from tango_groups.session import Session

    session = Session("ours_api", client=env.client, expiration=env.writer.expiration)
    out = []
    for _ in range(env.profile.repeats):
        samples = []
        for _ in range(env.profile.create_n):
            sequence = BlissSequence(session=session)
            t0 = perf()
            sequence.start()
            samples.append(perf() - t0)
            sequence.end()
        out.append(samples)
    return out


# -- 3. append scan references ------------------------------------------------------------------
def rows_append(env: BenchEnv) -> list[Row]:
    p = env.profile
    parent = scan_parent(env, "ours_append")
    # the referenced scans exist and run (no TTL yet): a sequence publishing started scans
    targets = []
    for _ in range(p.appends):
        scan = env.writer.create_scan(parent, "loopscan", scan_info("ours_append", "loopscan"))
        targets.append((scan.db_name, scan.scan_nb))
    per_call, totals = [], []
    for _ in range(p.repeats):
        group = new_sequence(env, parent)
        samples = []
        start = perf()
        for db_name, nb in targets:
            t0 = perf()
            group.publish_scan(db_name, nb, ended=False)  # as Sequence publishes a started scan
            samples.append(perf() - t0)
        totals.append(perf() - start)
        per_call.append(samples)
        group.end({}, "DONE")
    theirs = env.bliss("append", session="bliss_append", n=p.appends, repeats=p.repeats)

    # ours only: references to scans that already ended (TTL set), whose TTLs are refreshed
    # (spec section 10; Bliss's GroupingMaster SCANs the whole keyspace for that)
    ended = []
    for db_name, nb in targets[:50]:
        env.client.expire(db_name, 86400)
    group = new_sequence(env, parent)
    nkeys = env.client.dbsize()
    for db_name, nb in targets[:50]:
        t0 = perf()
        group.publish_scan(db_name, nb, ended=True)
        ended.append(perf() - t0)
    group.end({}, "DONE")

    s = (f"3. append one scan reference to a sequence ({p.appends} per repeat; "
         "ours GroupWriter.publish_scan, theirs 2 stores)")
    return [
        Row("append p50", percentile(per_call, 50) * 1e3,
            theirs and percentile(theirs["per_call"], 50) * 1e3, "ms", doc="0.46 ms", section=s,
            id="append.p50"),
        Row("append p99", percentile(per_call, 99) * 1e3,
            theirs and percentile(theirs["per_call"], 99) * 1e3, "ms", doc="0.9 ms", section=s),
        Row(f"{p.appends} appends, total", median(totals),
            theirs and median(theirs["total"]), "s", doc="0.47-0.62 s (1000)", section=s),
        Row("append of an already ENDED scan, p50", median(ended) * 1e3, None, "ms", section=s,
            note=f"ours only: the scan's TTLs are refreshed ({nkeys:,} keys in Redis here; "
                 "Bliss's GroupingMaster SCANs them all for that, blissdata has no equivalent)"),
    ]


# -- 4. one complete scan -----------------------------------------------------------------------
def _ours_scan(env: BenchEnv, parent: str, npoints: int, point_by_point: bool) -> None:
    scan = env.writer.create_scan(
        parent, "loopscan", scan_info(parent.split(":")[0], "loopscan"),
        channels=[ChannelNode(("timer",), "elapsed_time", float, unit="s"),
                  ChannelNode(("timer",), "epoch", float, unit="s")])
    scan.prepared({})
    t = numpy.arange(npoints, dtype=float) * 0.01
    if point_by_point:
        for i in range(npoints):
            scan.emit({"timer:elapsed_time": t[i], "timer:epoch": t[i] + 1.7e9})
    else:
        scan.emit({"timer:elapsed_time": t, "timer:epoch": t + 1.7e9})
    scan.end({}, "DONE")


def _scan_samples(env: BenchEnv, parent: str, n: int, point_by_point: bool) -> Samples:
    return timed_repeats(lambda: _ours_scan(env, parent, 100, point_by_point), n,
                         env.profile.repeats)


def rows_scan(env: BenchEnv) -> list[Row]:
    p = env.profile
    parent = scan_parent(env, "ours_scan")
    ours = _scan_samples(env, parent, p.scans_n, False)
    theirs = env.bliss("scan", session="bliss_scan", n=p.scans_n, repeats=p.repeats)
    s = "4. one complete scan (scan, device, 2 channels, prepared, 100 points, end, TTLs)"
    rows = [Row("100 points as one block per channel", median_of_medians(ours) * 1e3,
                theirs and median_of_medians(theirs["per_scan"]) * 1e3, "ms", doc="6.4 ms",
                section=s)]
    if p.point_scans_n:
        ours = _scan_samples(env, parent, p.point_scans_n, True)
        theirs = env.bliss("scan", session="bliss_scan", n=p.point_scans_n, repeats=p.repeats,
                           point_by_point=True)
        rows.append(Row("100 points emitted one by one (1 round trip per point)",
                        median_of_medians(ours) * 1e3,
                        theirs and median_of_medians(theirs["per_scan"]) * 1e3, "ms", section=s))
        api = _api_loopscan_samples(env, p.point_scans_n)
        rows.append(Row("Python API: loopscan(100, 0) (points one by one)",
                        median_of_medians(api) * 1e3,
                        theirs and median_of_medians(theirs["per_scan"]) * 1e3, "ms", section=s,
                        note="tango_groups.scanning.simulation.loopscan, no counter: the same 2 "
                             "timer channels, one Scan.emit per point, full scan_info"))
    return rows


def _api_loopscan_samples(env: BenchEnv, n: int) -> Samples:
    from tango_groups.scanning.simulation import loopscan
    from tango_groups.session import Session

    session = Session("ours_api", client=env.client, expiration=env.writer.expiration)
    return timed_repeats(lambda: loopscan(100, 0, session=session), n,
                         env.profile.repeats)


# -- 5. channel stores of big blocks ------------------------------------------------------------
def rows_store(env: BenchEnv) -> list[Row]:
    p = env.profile
    parent = scan_parent(env, "ours_store")
    sizes = sorted(p.store_calls)
    ours: dict[int, Samples] = {}
    for size in sizes:
        data = numpy.random.default_rng(0).random(size)
        ours[size] = []
        for _ in range(p.repeats):
            scan = env.writer.create_scan(parent, "store", scan_info("ours_store", "store"),
                                          channels=[ChannelNode(("dev",), "c", "float64")])
            chan = scan.channel("dev:c")
            ours[size].append(timed(partial(chan.emit, data), p.store_calls[size]))
            env.client.delete(chan.db_name + keys.DATA)
    theirs = env.bliss("store", session="bliss_store", sizes=sizes,
                       calls={str(k): v for k, v in p.store_calls.items()}, repeats=p.repeats)
    docs = {1000: "0.32 ms (25 MB/s)", 100_000: "1.4-1.7 ms (470-560 MB/s)",
            1_000_000: "24 ms (314-337 MB/s)"}
    s = "5. channel store of a float64 block, per call (ours: ChannelWriter.emit)"
    rows = []
    for size in sizes:
        o = median_of_medians(ours[size])
        t = theirs and median_of_medians(theirs[str(size)])
        label = f"{size:.0e}".replace("e+0", "e")
        rows.append(Row(f"float64[{label}]", o * 1e3, t and t * 1e3, "ms",
                        doc=docs.get(size, ""), section=s, id=f"store.{label}",
                        note=f"ours {size * 8 / o / 1e6:,.0f} MB/s"
                             + (f", anchor {size * 8 / t / 1e6:,.0f} MB/s" if t else "")))
    return rows
