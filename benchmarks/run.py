"""tango_groups against its anchors, measured in the same run on the same private Redis.

From the checkout's root, with the project's venv (``./dev.sh`` creates it)::

    .venv/bin/python -m benchmarks.run            # default profile, about 5 to 10 minutes
    .venv/bin/python -m benchmarks.run --quick    # fewer repeats, under about 2 minutes
    .venv/bin/python -m benchmarks.run --full     # also blissdata's walk over 10 000 scans
    .venv/bin/python -m benchmarks.run --check    # and the targets: exit 1 when one is missed

Starts its own ``redis-server`` (nothing persisted), then measures each row group against its
anchor in the same run and prints one plain-text table::

    what | tango_groups | anchor (same run) | ratio | doc anchor [| target | check]

``ratio`` is anchor/ours for times and sizes, ours/anchor for rates: **> 1 means tango_groups is
better**. ``doc anchor`` is the number of the performance anchors (``spec/performance_anchors.md``
of the shared design notes) measured on 2026-11-23 on the reference machine, for orientation only
(absolute times move from machine to machine: compare the same-run columns). ``--check`` adds the
targets of issues 8 and 9 (``benchmarks.targets``) and exits 1 when a ratio misses its target; it
is not part of the test suite (shared machines are noisy).

Row groups, in order (``--only`` runs some of them):

* ``floor``, ``create``, ``append``, ``scan``, ``store`` (``benchmarks.library_rows``) and
  ``walk`` (``benchmarks.walk_rows``): our library against raw redis-py and blissdata 0.3.1
  (``benchmarks/bliss_side.py``, in a subprocess);
* ``tango`` (``benchmarks.tango_rows``): the SequenceManager device against a plain pytango device;
* ``scale`` (``benchmarks.scale_rows``): the device at production scale (thousands of finished
  scans, hundreds of thousands of keys, a channel of 1e6 points, its memory);
* ``bliss2`` (``benchmarks.bliss2_rows``): Bliss 2 sequences (``tango_groups.bliss2``) against
  blissdata 2.4.5 used directly (``benchmarks/bliss2_side.py``), on a private Valkey with
  RedisJSON and RediSearch; skipped, with the reason printed, where blissdata 2 or that server
  is missing (a skipped group's targets are not checked).

Statistics: per-call rows report the median over repeats of each repeat's median; p50/p99 rows
pool every call of every repeat; totals report the median over repeats.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from .bliss2_rows import bliss2_rows
from .common import DEFAULT, QUICK, BenchEnv, GroupSkipped, Row, open_env, perf
from .library_rows import (
    rows_append,
    rows_create_sequence,
    rows_redis_floor,
    rows_scan,
    rows_store,
)
from .scale_rows import scale_rows
from .table import environment_line, format_table
from .tango_rows import tango_rows
from .targets import check
from .walk_rows import rows_walk_and_refs

GROUPS: dict[str, Callable[[BenchEnv], list[Row]]] = {
    "floor": rows_redis_floor,
    "create": rows_create_sequence,
    "append": rows_append,
    "scan": rows_scan,
    "store": rows_store,
    "walk": rows_walk_and_refs,
    "tango": tango_rows,
    "scale": scale_rows,
    "bliss2": bliss2_rows,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under ~2 min)")
    parser.add_argument("--full", action="store_true",
                        help="also run blissdata's walk over 10 000 scans (~35 s per walk)")
    parser.add_argument("--only", nargs="+", choices=list(GROUPS), metavar="GROUP",
                        help=f"run only these row groups: {', '.join(GROUPS)}")
    parser.add_argument("--check", action="store_true",
                        help="add each row's target and verdict; exit 1 when one is missed")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    groups = [name for name in GROUPS if not args.only or name in args.only]

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = perf()
    rows: list[Row] = []
    failed: list[str] = []
    skipped: dict[str, str] = {}
    with open_env(QUICK if args.quick else DEFAULT, args.full, log) as env:
        header = environment_line(env)
        for name in groups:
            t0 = perf()
            log(f"[{name}] ...")
            env.fresh()
            try:
                rows.extend(GROUPS[name](env))
            except GroupSkipped as reason:
                log(f"[{name}] skipped: {reason}")
                skipped[name] = str(reason)
                continue
            except Exception:  # noqa: BLE001 (the other groups still run; --check fails)
                log(f"[{name}] FAILED:\n{traceback.format_exc()}")
                failed.append(name)
                continue
            log(f"[{name}] {perf() - t0:.1f} s")
    header += f" | {perf() - started:.0f} s total"
    checks, missed = check(rows, set(groups) - set(skipped)) if args.check else ({}, [])
    print()
    print(format_table(rows, header, checks if args.check else None), flush=True)
    if args.check:
        print(f"\ntargets: {len(checks) - len(missed)} of {len(checks)} met"
              + ("" if not missed else "; missed: " + ", ".join(
                  f"{row_id} ({checks[row_id][1].lower()})" for row_id in missed)))
    for name, reason in skipped.items():  # the whole reason is in the log above
        lines = reason.strip().splitlines() or [""]
        print(f"\nrow group {name} skipped: {lines[0]}"
              + (f" ... {lines[-1].strip()}" if len(lines) > 1 else ""))
    if failed:
        print(f"\nrow groups that failed (see the log above): {', '.join(failed)}")
    if args.json:
        Path(args.json).write_text(json.dumps([dataclasses.asdict(r) | {"ratio": r.ratio}
                                               for r in rows], indent=1))
    return 1 if missed or failed else 0


if __name__ == "__main__":
    sys.exit(main())
