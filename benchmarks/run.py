"""tango_groups against its anchors, measured in the same run on the same private Redis.

    python benchmarks/run.py            # default profile, a few minutes
    python benchmarks/run.py --quick    # fewer repeats and sizes, under about a minute
    python benchmarks/run.py --full     # also blissdata's walk over 10 000 scans (~35 s each)

Starts its own ``redis-server`` (``tango_groups.runtime.redis_server.RedisServer``, nothing
persisted), then for every row of the performance anchors (``spec/performance_anchors.md`` of
the shared design notes) measures our library in this process and the anchor in the same run:
raw redis-py for the Redis floor, and blissdata 0.3.1 (the Bliss 1.x data-node library) in a
subprocess (``benchmarks/bliss_side.py``; blissdata
needs gevent's monkey patching, which must not leak into the process measuring us). It prints one
plain-text table::

    what | tango_groups | anchor (same run) | ratio | doc anchor

``ratio`` is anchor/ours for times and ours/anchor for rates: **> 1 means tango_groups is faster**.
``doc anchor`` is the number measured on 2026-11-23 on the reference machine, for orientation only
(absolute times move from machine to machine: compare the same-run columns).

Statistics: per-call rows report the median over repeats of each repeat's median; p50/p99 rows
pool every call of every repeat; totals report the median over repeats.

Both sides do the same job on the wire: ours through ``tango_groups.data`` (``DataWriter``,
``ScanWriter``, ``GroupWriter``, ``ChannelWriter``, the reader ``tango_groups.data.node``), theirs
through blissdata's node API (``create_node``, ``ScanNode.prepared/end``,
``ChannelDataNode.store``, ``walk``, ``NodeRefChannel.get``). The walk and reference rows read the
*same* session, written once by our writer, so they compare readers only.

Tango rows (SequenceManager command round trip, change-event latency) belong in
``add_tango_rows`` below: the hook is called with the list of rows before the table is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout even if the package is not installed

import numpy
import redis
from redis.utils import HIREDIS_AVAILABLE

from tango_groups.data import encoding, keys
from tango_groups.data.connection import connect
from tango_groups.data.node import get_node, get_session_node
from tango_groups.data.writer import (
    STRTIME_FORMAT,
    ChannelSpec,
    DataWriter,
    Expiration,
    GroupWriter,
)
from tango_groups.runtime.redis_server import RedisServer

perf = time.perf_counter
BASE_PATH = "/tmp/scans"  # scans land in {session}:tmp:scans, as with Bliss's default ScanSaving


# -- profiles -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    repeats: int               # repeats of every measurement (medians over these)
    floor_ops: int             # XADDs per repeat, one at a time
    floor_batches: int         # pipelined batches of 1000 per repeat
    create_n: int              # sequences created per repeat
    appends: int               # references appended per repeat
    scans_n: int               # complete scans per repeat
    point_scans_n: int         # complete scans emitting point by point, per repeat (0: skip)
    store_calls: dict          # channel stores per repeat, by size
    walk_repeats: int
    walk_sizes: tuple          # sessions walked by both sides
    walk_sizes_ours: tuple     # sessions walked by us only (blissdata too with --full)


QUICK = Profile("quick", repeats=3, floor_ops=500, floor_batches=3, create_n=10, appends=1000,
                scans_n=10, point_scans_n=0, store_calls={1000: 50, 100_000: 10, 1_000_000: 3},
                walk_repeats=1, walk_sizes=(1000,), walk_sizes_ours=())
DEFAULT = Profile("default", repeats=7, floor_ops=3000, floor_batches=10, create_n=30,
                  appends=1000, scans_n=30, point_scans_n=10,
                  store_calls={1000: 300, 100_000: 40, 1_000_000: 10},
                  walk_repeats=5, walk_sizes=(1000,), walk_sizes_ours=(10_000,))


# -- rows and statistics ------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    """One line of the table. ``ours``/``anchor`` in ``unit``; None prints as a dash."""

    what: str
    ours: float | None
    anchor: float | None
    unit: str                     # "µs", "ms", "s", "ops/s", "MB/s", "" (a count)
    higher_is_better: bool = False
    doc: str = ""                 # the number in performance_anchors.md, as text
    section: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.ours or not self.anchor:
            return None
        return self.ours / self.anchor if self.higher_is_better else self.anchor / self.ours


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def median_of_medians(repeats: Sequence[Sequence[float]]) -> float:
    return median([median(samples) for samples in repeats])


def percentile(repeats: Sequence[Sequence[float]], q: float) -> float:
    pooled = [x for samples in repeats for x in samples]
    return float(numpy.percentile(pooled, q))


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("ops/s", "MB/s"):
        return f"{value / 1000:.1f} k{unit}" if value >= 10_000 and unit == "ops/s" else \
            f"{value:,.0f} {unit}"
    if unit == "":
        return f"{value:,.0f}"
    if unit in _TIME_UNITS:  # each cell in the unit that reads best: 0.0181 s -> 18.1 ms
        seconds = value * _TIME_UNITS[unit]
        for best, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
            if seconds >= scale or best == "µs":
                value, unit = seconds / scale, best
                break
    text = f"{value:.3g}"
    if "e" in text:
        text = f"{value:.0f}"
    return f"{text} {unit}"


_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "µs": 1e-6}


def print_table(rows: list[Row], header: str) -> str:
    """The table, then the notes (rows with a note get a ``[n]`` marker)."""
    columns = ("what", "tango_groups", "anchor (same run)", "ratio", "doc anchor")
    cells, notes = [], []
    for row in rows:
        what = row.what
        if row.note:
            notes.append(row.note)
            what += f" [{len(notes)}]"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
        cells.append((row.section, what, fmt(row.ours, row.unit), fmt(row.anchor, row.unit),
                      ratio, row.doc))
    widths = [max([len(columns[i])] + [len(c[i + 1]) for c in cells]) for i in range(5)]

    def line(values):
        return " | ".join(v.ljust(w) if i in (0, 4) else v.rjust(w)
                          for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    out = [header, "", line(columns), "-+-".join("-" * w for w in widths)]
    section = None
    for cell in cells:
        if cell[0] != section:
            section = cell[0]
            out.append(section)
        out.append(line(cell[1:]))
    out.append("")
    out.append("ratio = anchor/ours for times, ours/anchor for rates: > 1 means tango_groups is "
               "faster; '-' = not measured.")
    out += [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    text = "\n".join(out)
    print(text, flush=True)
    return text


# -- the environment both sides share ---------------------------------------------------------
@dataclasses.dataclass
class BenchEnv:
    """What every measurement needs: the private Redis, our client and writer, the profile."""

    server: RedisServer
    client: redis.Redis
    writer: DataWriter
    profile: Profile
    full: bool
    log: Callable[[str], None]

    def fresh(self) -> None:
        """Empty the data db between row groups, so each group starts from the same keyspace."""
        self.client.flushdb()

    def bliss(self, task: str, timeout: float = 600, **arguments: Any) -> dict | None:
        """Run one blissdata task in a subprocess; None (and the error logged) if it failed."""
        command = [sys.executable, str(HERE / "bliss_side.py"), str(self.server.port), task,
                   json.dumps(arguments)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            self.log(f"  blissdata {task}: timed out after {timeout} s")
            return None
        if done.returncode != 0:
            self.log(f"  blissdata {task} failed:\n{done.stderr[-3000:]}")
            return None
        return json.loads(done.stdout)


def scan_info(session: str, title: str, **extra: Any) -> dict:
    """The scan_info both sides write (blissdata side: ``bliss_side.scan_info``)."""
    return {"title": title, "session_name": session, "save": True, "type": title.split()[0],
            "state": "PREPARING", "npoints": 100, "start_timestamp": time.time(), **extra}


def scan_parent(env: BenchEnv, session: str) -> str:
    return env.writer.ensure_containers(keys.scan_saving_parts(session, BASE_PATH))


def new_sequence(env: BenchEnv, parent: str) -> GroupWriter:
    group = env.writer.create_scan(
        parent, "sequence_of_scans", scan_info(parent.split(":")[0], "sequence_of_scans",
                                               **{"is-scan-sequence": True}),
        node_type="scan_group", channels=GroupWriter.channel_specs(), writer_class=GroupWriter)
    group.prepared({}, state="STARTING")
    return group


# -- 1. Redis floor ---------------------------------------------------------------------------
def rows_redis_floor(env: BenchEnv) -> list[Row]:
    p, c = env.profile, env.client
    entry = {"__EVENT__": "CHANNELDATA", "__NPOINTS__": 1, "__DATA__": encoding.dumps(1.5)}
    one_raw, one_ours, batch_raw, batch_ours = [], [], [], []
    parent = scan_parent(env, "floor")
    for r in range(p.repeats):
        c.delete("floor:raw")
        samples = []
        for _ in range(p.floor_ops):
            t0 = perf()
            c.xadd("floor:raw", entry)
            samples.append(perf() - t0)
        one_raw.append(samples)

        scan = env.writer.create_scan(parent, "floor", scan_info("floor", "floor"),
                                      channels=[ChannelSpec(("dev",), "c", float)])
        chan = scan.channel("dev:c")
        samples = []
        for i in range(p.floor_ops):
            t0 = perf()
            chan.emit(1.5)
            samples.append(perf() - t0)
        one_ours.append(samples)

        c.delete("floor:raw")
        samples = []
        for _ in range(p.floor_batches):
            t0 = perf()
            with c.pipeline(transaction=False) as pipe:
                for _ in range(1000):
                    pipe.xadd("floor:raw", entry)
                pipe.execute()
            samples.append(1000 / (perf() - t0))
        batch_raw.append(samples)

    # ours pipelined: one ScanWriter.emit of one point into each of 1000 channels (a scan with
    # 1000 counters): 1000 XADDs in one round trip, data checked and pickled by our writer.
    scan = env.writer.create_scan(parent, "wide", scan_info("floor", "wide"),
                                  channels=[ChannelSpec(("dev",), f"c{i}", float)
                                            for i in range(1000)])
    names = list(scan.channels)
    for r in range(p.repeats):
        samples = []
        for _ in range(p.floor_batches):
            points = {name: 1.5 for name in names}
            t0 = perf()
            scan.emit(points)
            samples.append(1000 / (perf() - t0))
        batch_ours.append(samples)
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
            theirs and median_of_medians(theirs["create"]) * 1e3, "ms", doc="6.5 ms", section=s),
        Row("end() of that sequence",
            median_of_medians(end) * 1e3, theirs and median_of_medians(theirs["end"]) * 1e3, "ms",
            doc="+1 ms", section=s, note="ours: END + TTLs in one transaction; blissdata: END "
                                           "only (its TTLs are set by Bliss, not by ScanNode.end)"),
        Row("Python API: Sequence().start() (create + prepared)", median_of_medians(api) * 1e3,
            theirs and median_of_medians(theirs["create"]) * 1e3, "ms", section=s,
            note="tango_groups.scanning.Sequence on a Session: adds the scan-saving container "
                 "get-or-create (one more round trip) and the full Bliss scan_info"),
    ]


def _api_sequence_samples(env: BenchEnv) -> list[list[float]]:
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
            group.publish_scan(db_name, nb)
            samples.append(perf() - t0)
        totals.append(perf() - start)
        per_call.append(samples)
        group.end({}, "DONE")
    theirs = env.bliss("append", session="bliss_append", n=p.appends, repeats=p.repeats)

    # ours only: references to scans that already ended (TTL set), which Bliss and we must
    # refresh with a SCAN over the keyspace (spec section 10): cost grows with the keyspace.
    ended = []
    for db_name, nb in targets[:50]:
        env.client.expire(db_name, 86400)
    group = new_sequence(env, parent)
    nkeys = env.client.dbsize()
    for db_name, nb in targets[:50]:
        t0 = perf()
        group.publish_scan(db_name, nb)
        ended.append(perf() - t0)
    group.end({}, "DONE")

    s = (f"3. append one scan reference to a sequence ({p.appends} per repeat; "
         "ours GroupWriter.publish_scan, theirs 2 stores)")
    return [
        Row("append p50", percentile(per_call, 50) * 1e3,
            theirs and percentile(theirs["per_call"], 50) * 1e3, "ms", doc="0.46 ms", section=s),
        Row("append p99", percentile(per_call, 99) * 1e3,
            theirs and percentile(theirs["per_call"], 99) * 1e3, "ms", doc="0.9 ms", section=s),
        Row(f"{p.appends} appends, total", median(totals),
            theirs and median(theirs["total"]), "s", doc="0.47-0.62 s (1000)", section=s),
        Row("append of an already ENDED scan, p50", median(ended) * 1e3, None, "ms", section=s,
            note=f"ours only: the TTL refresh SCANs the whole db ({nkeys:,} keys here); Bliss's "
                 "GroupingMaster does the same SCAN, blissdata has no equivalent"),
    ]


# -- 4. one complete scan -----------------------------------------------------------------------
def _ours_scan(env: BenchEnv, parent: str, npoints: int, point_by_point: bool) -> None:
    scan = env.writer.create_scan(
        parent, "loopscan", scan_info(parent.split(":")[0], "loopscan"),
        channels=[ChannelSpec(("timer",), "elapsed_time", float, unit="s"),
                  ChannelSpec(("timer",), "epoch", float, unit="s")])
    scan.prepared({})
    t = numpy.arange(npoints, dtype=float) * 0.01
    if point_by_point:
        for i in range(npoints):
            scan.emit({"timer:elapsed_time": t[i], "timer:epoch": t[i] + 1.7e9})
    else:
        scan.emit({"timer:elapsed_time": t, "timer:epoch": t + 1.7e9})
    scan.end({}, "DONE")


def _timed(env: BenchEnv, n: int, action: Callable[[], object]) -> list[list[float]]:
    """Seconds of ``n`` calls of ``action`` per repeat, after one warm-up call."""
    action()
    out = []
    for _ in range(env.profile.repeats):
        samples = []
        for _ in range(n):
            t0 = perf()
            action()
            samples.append(perf() - t0)
        out.append(samples)
    return out


def _scan_samples(env: BenchEnv, parent: str, n: int, point_by_point: bool) -> list[list[float]]:
    return _timed(env, n, lambda: _ours_scan(env, parent, 100, point_by_point))


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


def _api_loopscan_samples(env: BenchEnv, n: int) -> list[list[float]]:
    from tango_groups.scanning.simulation import loopscan
    from tango_groups.session import Session

    session = Session("ours_api", client=env.client, expiration=env.writer.expiration)
    return _timed(env, n, lambda: loopscan(100, 0, session=session))


# -- 5. channel stores of big blocks ------------------------------------------------------------
def rows_store(env: BenchEnv) -> list[Row]:
    p = env.profile
    parent = scan_parent(env, "ours_store")
    sizes = sorted(p.store_calls)
    ours: dict[int, list[list[float]]] = {}
    for size in sizes:
        data = numpy.random.default_rng(0).random(size)
        ours[size] = []
        for _ in range(p.repeats):
            scan = env.writer.create_scan(parent, "store", scan_info("ours_store", "store"),
                                          channels=[ChannelSpec(("dev",), "c", "float64")])
            chan = scan.channel("dev:c")
            samples = []
            for _ in range(p.store_calls[size]):
                t0 = perf()
                chan.emit(data)
                samples.append(perf() - t0)
            ours[size].append(samples)
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
        rows.append(Row(f"float64[{size:.0e}]".replace("e+0", "e"), o * 1e3, t and t * 1e3, "ms",
                        doc=docs.get(size, ""), section=s,
                        note=f"ours {size * 8 / o / 1e6:,.0f} MB/s"
                             + (f", anchor {size * 8 / t / 1e6:,.0f} MB/s" if t else "")))
    return rows


# -- 6/7. walk and references over a populated session -------------------------------------------
def populate(env: BenchEnv, session: str, nscans: int, chunk: int = 250) -> tuple[str, str, float]:
    """A session of ``nscans`` ended scans (each: a timer device, one channel with 10 points)
    and one sequence referencing all of them, written through ``DataWriter.queue_node`` in big
    pipelines. Returns (scan-saving parent, the sequence's ``scans`` channel db_name, seconds)."""
    writer, client = env.writer, env.client
    start = perf()
    parent = writer.ensure_containers(keys.scan_saving_parts(session, BASE_PATH))
    stamp = time.time()
    strtime = datetime.datetime.fromtimestamp(stamp).strftime(STRTIME_FORMAT)
    desc = encoding.dumps({"reference": False, "dtype": float, "shape": (), "unit": "s"})
    data = encoding.dumps(numpy.arange(10, dtype=float))
    pickled_stamp = encoding.dumps(stamp)
    channel_info = {"shape": (), "dtype": float, "fullname": "timer:elapsed_time", "unit": "s"}
    pipe = client.pipeline(transaction=False)
    for nb in range(1, nscans + 1):
        db = keys.child_db_name(parent, f"{nb}_loopscan")
        info = {**scan_info(session, "loopscan 10 0.1"), "scan_nb": nb, "state": "DONE"}
        writer.queue_node(pipe, db, "scan", [keys.CHILDREN, keys.PREPARED, keys.END], info=info)
        pipe.xadd(db + keys.PREPARED, {"__EVENT__": "PREPARED_SCAN",
                                       "__TIMESTAMP__": pickled_stamp, "__STRTIME__": strtime})
        device = db + ":timer"
        writer.queue_node(pipe, device, keys.DEVICE_TYPE, [keys.CHILDREN])
        channel = device + ":elapsed_time"
        writer.queue_node(pipe, channel, "channel", [keys.DATA], name="timer:elapsed_time",
                          info=channel_info)
        pipe.xadd(channel + keys.DATA, {"__EVENT__": "CHANNELDATA", "__DESC__": desc,
                                        "__NPOINTS__": 10, "__DATA__": data}, id="1-0")
        pipe.xadd(db + keys.END, {"__EVENT__": "END_SCAN", "__TIMESTAMP__": pickled_stamp,
                                  "__STRTIME__": strtime, "__EXCEPTION__": encoding.dumps("")})
        if nb % chunk == 0:
            pipe.execute()
    pipe.execute()
    client.hset(parent, keys.SCAN_COUNTER, nscans)
    group = new_sequence(env, parent)
    # one entry per reference, as Bliss publishes them: (scan_numbers, scans) pairs
    pipe = client.pipeline(transaction=False)
    for nb in range(1, nscans + 1):
        for chan, point in ((group.scan_numbers, numpy.int64(nb)),
                            (group.scans, keys.child_db_name(parent, f"{nb}_loopscan"))):
            chan.queue_points(pipe, [point])
            chan.length += 1
        if nb % (chunk * 4) == 0:
            pipe.execute()
    pipe.execute()
    group.end({}, "DONE")
    return parent, group.scans.db_name, perf() - start


def _ours_walk(env: BenchEnv, session: str, repeats: int, include_filter,
               exclude_children=None) -> tuple[list[float], int]:
    times, count = [], 0
    for _ in range(repeats):
        t0 = perf()
        root = get_session_node(session, connection=env.client)
        kwargs = {"exclude_children": exclude_children} if exclude_children else {}
        found = list(root.walk(include_filter=include_filter, wait=False, **kwargs))
        times.append(perf() - t0)
        count = len(found)
    return times, count


def _versus_bliss(env: BenchEnv, run: bool, count: int, task: str, **kwargs: Any
                  ) -> tuple[float | None, str]:
    """blissdata's median time for the same read (None when not run), and a note: a count that
    differs from ours, or why it did not run."""
    if not run:
        return None, "" if env.full else "blissdata only with --full"
    res = env.bliss(task, **kwargs)
    if not res:
        return None, ""
    theirs = res["counts"][0]
    note = "" if theirs == count else f"COUNT MISMATCH ours {count} vs blissdata {theirs}"
    return median(res["times"]), note


def rows_walk_and_refs(env: BenchEnv) -> list[Row]:
    p = env.profile
    rows: list[Row] = []
    s6 = "6. walk(include_filter='scan_group', wait=False) over a session (ours writes it once)"
    s7 = "7. node_ref_channel.get(0, -1) resolving every referenced scan node"
    s8 = ("8. append a reference to an already ENDED scan (ours only: the TTL refresh SCANs "
          "the whole db, as Bliss's GroupingMaster does)")
    docs_walk = {1000: "3.1 s", 10_000: "34.9 s"}
    docs_excl = {1000: "1.0 s", 10_000: "13.1 s"}
    exclude = ["scan", "scan_group"]
    sizes = [(n, True) for n in p.walk_sizes] + [(n, env.full) for n in p.walk_sizes_ours]
    for nscans, with_bliss in sizes:
        env.fresh()
        session = f"walk{nscans}"
        parent, scans_channel, seconds = populate(env, session, nscans)
        nkeys = env.client.dbsize()
        env.log(f"  populated {nscans} scans + 1 sequence in {seconds:.1f} s ({nkeys:,} keys; "
                f"{3 * nscans / seconds:,.0f} scan/device/channel nodes per s via queue_node)")
        reps = p.walk_repeats
        for label, flt, excl, docs in (
                ("", "scan_group", None, docs_walk),
                (", exclude_children=('scan','scan_group')", "scan_group", exclude, docs_excl)):
            times, count = _ours_walk(env, session, reps, flt, excl)
            theirs, note = _versus_bliss(env, with_bliss, count, "walk", session=session,
                                         repeats=reps, include_filter=flt, exclude_children=excl)
            rows.append(Row(f"{nscans:,} scans{label}, found {count}", median(times), theirs,
                            "s", doc=docs.get(nscans, ""), section=s6, note=note))

        # 7. references (same session, same channel, both readers)
        times = []
        for _ in range(p.repeats):
            t0 = perf()
            nodes = get_node(scans_channel, connection=env.client).get(0, -1)
            times.append(perf() - t0)
            count = sum(1 for n in nodes if n is not None)
        theirs, note = _versus_bliss(env, with_bliss, count, "refs", db_name=scans_channel,
                                     repeats=p.repeats)
        rows.append(Row(f"{nscans:,} references, resolved {count}", median(times), theirs, "s",
                        doc="0.14 s" if nscans == 1000 else "", section=s7, note=note))
        # 8. (ours only) a reference to an ENDED scan re-applies its TTLs with a SCAN of the db
        ended = []
        targets = [(keys.child_db_name(parent, f"{nb}_loopscan"), nb) for nb in range(1, 21)]
        for db_name, _ in targets:
            env.client.expire(db_name, 86400)
        group = new_sequence(env, parent)
        for db_name, nb in targets:
            t0 = perf()
            group.publish_scan(db_name, nb)
            ended.append(perf() - t0)
        group.end({}, "DONE")
        rows.append(Row(f"db of {nkeys:,} keys, p50", median(ended), None, "s", section=s8))
    rows.sort(key=lambda r: r.section)  # walk rows, reference rows, then TTL-refresh rows
    return rows


# -- Tango rows: the hook ------------------------------------------------------------------------
def add_tango_rows(rows: list[Row], env: BenchEnv) -> None:
    """Append section 9 (``benchmarks/tango_rows.py``): the SequenceManager device against a
    plain pytango Gevent device, both started (and stopped) in this run."""
    # tango_rows imports Row & co from ``run``: make that this module, even when run as a script
    sys.modules.setdefault("run", sys.modules[__name__])
    from tango_rows import tango_rows

    t0 = perf()
    env.log("[tango] ...")
    rows.extend(tango_rows(env))
    env.log(f"[tango] {perf() - t0:.1f} s")


# -- main ---------------------------------------------------------------------------------------
GROUPS: dict[str, Callable[[BenchEnv], list[Row]]] = {
    "floor": rows_redis_floor,
    "create": rows_create_sequence,
    "append": rows_append,
    "scan": rows_scan,
    "store": rows_store,
    "walk": rows_walk_and_refs,
}


def environment_line(env: BenchEnv) -> str:
    import blissdata  # only for its version string; blissdata runs in the subprocess

    server = env.client.info("server")
    return (f"{datetime.datetime.now():%Y-%m-%d %H:%M} | {platform.machine()} x{os.cpu_count()} "
            f"load {os.getloadavg()[0]:.2f} | Python {platform.python_version()} | redis-server "
            f"{server['redis_version']} | redis-py {redis.__version__} "
            f"({'hiredis' if HIREDIS_AVAILABLE else 'no hiredis'}) | numpy "
            f"{numpy.__version__} | blissdata {getattr(blissdata, '__version__', '0.3.1')} | "
            f"profile {env.profile.name}{' +full' if env.full else ''}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes (~1 min)")
    parser.add_argument("--full", action="store_true",
                        help="also run blissdata's walk over 10 000 scans (~35 s per walk)")
    parser.add_argument("--only", nargs="+", choices=sorted([*GROUPS, "tango"]), metavar="GROUP",
                        help=f"run only these row groups: {', '.join(GROUPS)} (the Tango rows "
                             "always run; 'tango' alone runs only them)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else DEFAULT
    if args.full and args.quick:
        profile = dataclasses.replace(QUICK, walk_sizes_ours=(10_000,))

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = perf()
    with RedisServer() as server:
        client = connect(server.url)
        # Our writer's defaults (TTLs at END, like Bliss); Expiration() = 600 s / 1 day.
        env = BenchEnv(server, client, DataWriter(client, Expiration()), profile, args.full, log)
        header = environment_line(env)
        rows: list[Row] = []
        for name, group in GROUPS.items():
            if args.only and name not in args.only:
                continue
            t0 = perf()
            log(f"[{name}] ...")
            env.fresh()
            rows.extend(group(env))
            log(f"[{name}] {perf() - t0:.1f} s")
        add_tango_rows(rows, env)
        client.close()
    print()
    print_table(rows, header + f" | {perf() - started:.0f} s total")
    if args.json:
        Path(args.json).write_text(json.dumps([dataclasses.asdict(r) | {"ratio": r.ratio}
                                               for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
