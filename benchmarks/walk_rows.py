"""Sections 6 to 8 of the table: reading a populated session, ours against blissdata 0.3.1.

For each session size (``Profile.walk_sizes``, and ``walk_sizes_ours`` where blissdata runs only
with ``--full``), one session of ended scans and one sequence referencing all of them is written
once by our writer (``fill_scans`` plus the references), then both readers read the *same* data:

6. ``walk(include_filter='scan_group', wait=False)`` from the session node (with and without
   ``exclude_children``), and how our walk's time grows from the smallest to the largest session;
7. ``node_ref_channel.get(0, -1)``, resolving every scan the sequence references;
8. (ours only) appending a reference to a scan that already ended, whose TTLs are refreshed.
"""

from __future__ import annotations

from typing import Any

import numpy

from tango_groups.bliss1 import keys
from tango_groups.bliss1.node import get_node, get_session_node

from .common import BenchEnv, Row, median, new_sequence, perf, scan_parent
from .fill import fill_scans

__all__ = ["populate", "rows_walk_and_refs"]

S6 = "6. walk(include_filter='scan_group', wait=False) over a session (ours writes it once)"
S7 = "7. node_ref_channel.get(0, -1) resolving every referenced scan node"
S8 = ("8. append a reference to an already ENDED scan (ours only: its TTLs are refreshed; "
      "Bliss's GroupingMaster SCANs the whole db for that)")
DOCS_WALK = {1000: "3.1 s", 10_000: "34.9 s"}
DOCS_EXCLUDE = {1000: "1.0 s", 10_000: "13.1 s"}


def populate(env: BenchEnv, session: str, nscans: int, chunk: int = 1000
             ) -> tuple[str, str, float]:
    """A session of ``nscans`` ended scans (``fill_scans``) and one sequence referencing all of
    them. Returns (scan-saving parent, the sequence's ``scans`` channel db_name, seconds)."""
    start = perf()
    parent = scan_parent(env, session)
    scans = fill_scans(env, parent, nscans)
    group = new_sequence(env, parent)
    # one entry per reference, as Bliss publishes them: (scan_numbers, scans) pairs
    pipe = env.client.pipeline(transaction=False)
    for index, (db_name, nb) in enumerate(scans, 1):
        for chan, point in ((group.scan_numbers, numpy.int64(nb)), (group.scans, db_name)):
            chan.queue_points(pipe, [point])
            chan.length += 1
        if index % chunk == 0:
            pipe.execute()
    pipe.execute()
    group.end({}, "DONE")
    return parent, group.scans.db_name, perf() - start


def _ours_walk(env: BenchEnv, session: str, repeats: int, include_filter: str,
               exclude_children: list[str] | None = None) -> tuple[list[float], int]:
    times, count = [], 0
    for _ in range(repeats):
        t0 = perf()
        root = get_session_node(session, connection=env.client)
        kwargs = {"exclude_children": exclude_children} if exclude_children else {}
        found = list(root.walk(include_filter=include_filter, wait=False, **kwargs))
        times.append(perf() - t0)
        count = len(found)
    return times, count


def _type_reads(env: BenchEnv, container: str) -> float:
    """Seconds to read every registration of ``container`` and each registered node's type."""
    t0 = perf()
    entries = env.client.xrange(container + keys.CHILDREN)
    with env.client.pipeline(transaction=False) as pipe:
        for _, fields in entries:
            pipe.hget(fields[b"db_name"], "node_type")
        pipe.execute()
    return perf() - t0


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
    exclude = ["scan", "scan_group"]
    walk_times: dict[int, float] = {}  # ours, include_filter='scan_group' alone, by size
    floors: dict[int, float] = {}  # the Redis reads any type-filtered walk needs, by size
    sizes = [(n, True) for n in p.walk_sizes] + [(n, env.full) for n in p.walk_sizes_ours]
    for nscans, with_bliss in sizes:
        env.fresh()
        session = f"walk{nscans}"
        parent, scans_channel, seconds = populate(env, session, nscans)
        nkeys = env.client.dbsize()
        env.log(f"  populated {nscans} scans + 1 sequence in {seconds:.1f} s ({nkeys:,} keys; "
                f"{3 * nscans / seconds:,.0f} scan/device/channel nodes per s via queue_node)")
        reps = p.walk_repeats
        for label, excl, docs in (("", None, DOCS_WALK),
                                  (", exclude_children=('scan','scan_group')", exclude,
                                   DOCS_EXCLUDE)):
            times, count = _ours_walk(env, session, reps, "scan_group", excl)
            theirs, note = _versus_bliss(env, with_bliss, count, "walk", session=session,
                                         repeats=reps, include_filter="scan_group",
                                         exclude_children=excl)
            if excl is None:
                walk_times[nscans] = median(times)
                floors[nscans] = median([_type_reads(env, parent) for _ in range(reps)])
            rows.append(Row(f"{nscans:,} scans{label}, found {count}", median(times), theirs,
                            "s", doc=docs.get(nscans, ""), section=S6, note=note,
                            id="" if excl else f"walk.{nscans}"))

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
                        doc="0.14 s" if nscans == 1000 else "", section=S7, note=note))
        rows.append(_ended_append_row(env, parent, nkeys))
    if len(walk_times) > 1:
        small, large = min(walk_times), max(walk_times)
        rows.append(Row(f"{large:,} vs {small:,} scans: our walk's time", walk_times[large],
                        walk_times[small], "s", section=S6, id="walk.growth",
                        note=f"ours only, include_filter='scan_group' alone; anchor column = our "
                             f"time at {small:,} scans (linear growth would read "
                             f"{small / large:.2f}x)"))
        rows.append(Row(f"floor: every registration and its node type read, {large:,} vs "
                        f"{small:,} scans", floors[large], floors[small], "s", section=S6,
                        note="XRANGE of the container's registrations + one HMGET node_type per "
                             "registered node, one pipeline, from this process: what a walk "
                             "filtering on node types must read at least"))
    rows.sort(key=lambda r: r.section)  # walk rows, reference rows, then TTL-refresh rows
    return rows


def _ended_append_row(env: BenchEnv, parent: str, nkeys: int) -> Row:
    """Section 8 (ours only): 20 references to scans that ended (TTL set) into a new sequence."""
    ended = []
    targets = [(keys.child_db_name(parent, f"{nb}_loopscan"), nb) for nb in range(1, 21)]
    for db_name, _ in targets:
        env.client.expire(db_name, 86400)
    group = new_sequence(env, parent)
    for db_name, nb in targets:
        t0 = perf()
        group.publish_scan(db_name, nb, ended=True)
        ended.append(perf() - t0)
    group.end({}, "DONE")
    return Row(f"db of {nkeys:,} keys, p50", median(ended), None, "s", section=S8)
