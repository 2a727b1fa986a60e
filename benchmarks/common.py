"""What every row group of the benchmarks shares: profiles, rows, statistics, timing, the Redis.

* ``Profile``: how many repeats and calls each row group makes (``QUICK``, ``DEFAULT``);
* ``Row``: one line of the table (``id`` names it for ``benchmarks.targets``); ``GroupSkipped``:
  what a row group raises when it cannot run here (``run`` prints the reason and goes on);
* statistics: ``median``, ``median_of_medians``, ``percentile`` (see ``run`` for which row uses
  which), and the timing loops ``timed`` / ``timed_repeats``;
* ``BenchEnv`` / ``open_env``: the private ``redis-server`` every row group runs against (nothing
  persisted), our client and ``DataWriter`` on it, and blissdata's side as a subprocess
  (``benchmarks/bliss_side.py``: blissdata needs gevent's monkey patching, which must stay out of
  the process measuring us);
* the scan-saving helpers both our rows and the Tango rows write through (``scan_info``,
  ``scan_parent``, ``new_sequence``), and ``redis_commands`` (Redis ``INFO commandstats``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy
import redis

from tango_groups.bliss1 import keys
from tango_groups.bliss1.writer import DataWriter, Expiration, GroupWriter
from tango_groups.data.connection import connect
from tango_groups.runtime.redis_server import RedisServer

perf = time.perf_counter
HERE = Path(__file__).resolve().parent
# blissdata 0.3.1 lives in its own venv (tests/bliss_envs.py says why; ./dev.sh test builds it)
BLISS1_PYTHON = os.environ.get("TANGO_GROUPS_BLISS1_PYTHON") or str(
    HERE.parent / ".venv-bliss1" / "bin" / "python")
BASE_PATH = "/tmp/scans"  # scans land in {session}:tmp:scans, as with Bliss's default ScanSaving
Samples = list[list[float]]  # seconds, one list per repeat
SECONDS = {"s": 1.0, "ms": 1e-3, "µs": 1e-6}  # seconds per time unit of a row


# -- profiles -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Profile:
    """Repeats and sizes of the library rows (the Tango and scale rows scale theirs by name)."""

    name: str
    repeats: int               # repeats of every measurement (medians over these)
    floor_ops: int             # XADDs per repeat, one at a time
    floor_batches: int         # pipelined batches of 1000 per repeat
    create_n: int              # sequences created per repeat
    appends: int               # references appended per repeat
    scans_n: int               # complete scans per repeat
    point_scans_n: int         # complete scans emitting point by point, per repeat (0: skip)
    store_calls: dict[int, int]  # channel stores per repeat, by size
    walk_repeats: int
    walk_sizes: tuple[int, ...]       # sessions walked by both sides
    walk_sizes_ours: tuple[int, ...]  # sessions walked by us only (blissdata too with --full)


QUICK = Profile("quick", repeats=3, floor_ops=500, floor_batches=3, create_n=10, appends=1000,
                scans_n=10, point_scans_n=0, store_calls={1000: 50, 100_000: 10, 1_000_000: 3},
                walk_repeats=1, walk_sizes=(1000,), walk_sizes_ours=(10_000,))
DEFAULT = Profile("default", repeats=7, floor_ops=3000, floor_batches=10, create_n=30,
                  appends=1000, scans_n=30, point_scans_n=10,
                  store_calls={1000: 300, 100_000: 40, 1_000_000: 10},
                  walk_repeats=5, walk_sizes=(1000,), walk_sizes_ours=(10_000,))


# -- rows and statistics ------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    """One line of the table. ``ours``/``anchor`` in ``unit``; None prints as a dash.

    ``ratio`` is anchor/ours (ours/anchor for ``higher_is_better``): > 1 means ours is better.
    ``id`` is the name ``benchmarks.targets`` knows the row by ("" for rows without a target).
    """

    what: str
    ours: float | None
    anchor: float | None
    unit: str                     # "µs", "ms", "s", "ops/s", "MB/s", "MB", "" (a count)
    higher_is_better: bool = False
    doc: str = ""                 # the number in performance_anchors.md, as text
    section: str = ""
    note: str = ""
    id: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.ours or not self.anchor:
            return None
        return self.ours / self.anchor if self.higher_is_better else self.anchor / self.ours


class GroupSkipped(Exception):
    """A row group that cannot run on this machine (an optional extra or server missing): the
    text is the reason ``run`` prints; the group's targets are not checked."""


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def median_of_medians(repeats: Sequence[Sequence[float]]) -> float:
    return median([median(samples) for samples in repeats])


def percentile(repeats: Sequence[Sequence[float]], q: float) -> float:
    """The ``q`` percentile of every sample of every repeat, pooled."""
    pooled = [x for samples in repeats for x in samples]
    return float(numpy.percentile(pooled, q))


def timed(call: Callable[[], object], n: int, budget: float | None = None,
          at_least: int = 3) -> list[float]:
    """Seconds of each of ``n`` calls; with a ``budget`` (seconds), no further call once it is
    spent and ``at_least`` calls were made (rows of a slow product keep the run's time)."""
    samples: list[float] = []
    started = perf()
    for _ in range(n):
        if budget is not None and len(samples) >= at_least and perf() - started >= budget:
            break
        t0 = perf()
        call()
        samples.append(perf() - t0)
    return samples


def timed_repeats(call: Callable[[], object], n: int, repeats: int, warmup: int = 1) -> Samples:
    """``timed`` ``repeats`` times, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        call()
    return [timed(call, n) for _ in range(repeats)]


# -- the environment every row group shares -----------------------------------------------------
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
        command = [BLISS1_PYTHON, str(HERE / "bliss_side.py"), str(self.server.port), task,
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


@contextlib.contextmanager
def open_env(profile: Profile, full: bool, log: Callable[[str], None]) -> Iterator[BenchEnv]:
    """A private ``redis-server`` (stopped on exit, nothing persisted) and our writer on it, with
    the writer's defaults (TTLs at END, like Bliss; ``Expiration()`` = 600 s / 1 day)."""
    with RedisServer() as server:
        client = connect(server.url)
        try:
            yield BenchEnv(server, client, DataWriter(client, Expiration()), profile, full, log)
        finally:
            client.close()


class RedisCommands:
    """Which Redis commands the server received while a ``redis_commands`` block ran."""

    def __init__(self) -> None:
        self.stats: dict[str, dict[str, Any]] = {}

    def per_call(self, calls: int) -> str:
        """``"hmget 2, xadd 2, ..."``: commands per call, most frequent first (the
        measurement's own ping/config/info left out; Redis >= 7 names subcommands
        ``config|resetstat``)."""
        return ", ".join(
            f"{name.removeprefix('cmdstat_')} {value['calls'] / max(calls, 1):.3g}"
            for name, value in sorted(self.stats.items(), key=lambda kv: -kv[1]["calls"])
            if name.removeprefix("cmdstat_").split("|")[0] not in ("ping", "config", "info"))


@contextlib.contextmanager
def redis_commands(client: redis.Redis) -> Iterator[RedisCommands]:
    """Count the commands Redis receives inside the block (``INFO commandstats``, reset first);
    the counts are there once the block ends."""
    counted = RedisCommands()
    client.config_resetstat()
    yield counted
    counted.stats = client.info("commandstats")


# -- what both sides write ----------------------------------------------------------------------
def scan_info(session: str, title: str, **extra: Any) -> dict:
    """The scan_info both sides write (blissdata side: ``bliss_side.scan_info``)."""
    return {"title": title, "session_name": session, "save": True, "type": title.split()[0],
            "state": "PREPARING", "npoints": 100, "start_timestamp": time.time(), **extra}


def scan_parent(env: BenchEnv, session: str) -> str:
    """``{session}:tmp:scans``, get-or-create."""
    return env.writer.ensure_containers(keys.scan_saving_parts(session, BASE_PATH))


def new_sequence(env: BenchEnv, parent: str) -> GroupWriter:
    """A sequence (``scan_group`` with its GroupingMaster channels), PREPARED, through our
    writer."""
    group = env.writer.create_scan(
        parent, "sequence_of_scans", scan_info(parent.split(":")[0], "sequence_of_scans",
                                               **{"is-scan-sequence": True}),
        node_type="scan_group", channels=GroupWriter.channel_specs(), writer_class=GroupWriter)
    group.prepared({}, state="STARTING")
    return group
