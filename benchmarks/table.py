"""The plain-text table ``benchmarks.run`` prints, and the line naming the run's environment.

One line per ``Row``, grouped by section; a row with a note gets a ``[n]`` marker and its note is
printed below the table. With ``checks`` (``run --check``) two more columns say each row's target
(``benchmarks.targets``) and whether the ratio meets it.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess

import numpy
import redis
from redis.utils import HIREDIS_AVAILABLE

from .common import BLISS1_PYTHON, SECONDS, BenchEnv, Row


def fmt(value: float | None, unit: str) -> str:
    """A cell: times in the unit that reads best (0.0181 s -> 18.1 ms), 3 significant digits."""
    if value is None:
        return "-"
    if unit in ("ops/s", "MB/s"):
        return f"{value / 1000:.1f} k{unit}" if value >= 10_000 and unit == "ops/s" else \
            f"{value:,.0f} {unit}"
    if unit == "":
        return f"{value:,.0f}"
    if unit in SECONDS:
        seconds = value * SECONDS[unit]
        for best, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
            if seconds >= scale or best == "µs":
                value, unit = seconds / scale, best
                break
    text = f"{value:.3g}"
    if "e" in text:
        text = f"{value:.0f}"
    return f"{text} {unit}"


def format_table(rows: list[Row], header: str,
                 checks: dict[str, tuple[str, str]] | None = None) -> str:
    """The table, then the notes. ``checks``: row id -> (target, verdict) for two more
    columns."""
    columns = ["what", "tango_groups", "anchor (same run)", "ratio", "doc anchor"]
    if checks is not None:
        columns += ["target", "check"]
    cells, notes = [], []
    for row in rows:
        what = row.what
        if row.note:
            notes.append(row.note)
            what += f" [{len(notes)}]"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
        cell = [row.section, what, fmt(row.ours, row.unit), fmt(row.anchor, row.unit), ratio,
                row.doc]
        if checks is not None:
            cell += list(checks.get(row.id, ("", "")))
        cells.append(cell)
    widths = [max([len(columns[i])] + [len(c[i + 1]) for c in cells])
              for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return " | ".join(v.ljust(w) if i in (0, 4, 5, 6) else v.rjust(w)
                          for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    out = [header, "", line(columns), "-+-".join("-" * w for w in widths)]
    section = None
    for cell in cells:
        if cell[0] != section:
            section = cell[0]
            out.append(section)
        out.append(line(cell[1:]))
    out.append("")
    out.append("ratio = anchor/ours for times and sizes, ours/anchor for rates: > 1 means "
               "tango_groups is faster (smaller); '-' = not measured.")
    if checks is not None:
        out.append("target: '>= Nx' = the ratio must reach N; 'ours <= Nx' = ours may cost at "
                   "most N times the anchor column (ratio >= 1/N); ', ours <= 2 ms' = and the "
                   "tango_groups column may be at most that time.")
    out += [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(out)


def environment_line(env: BenchEnv) -> str:
    """Date, machine, load and versions: the table's header."""
    version = subprocess.run(  # blissdata runs in its own venv, in the subprocesses
        [BLISS1_PYTHON, "-c", "import importlib.metadata as m; print(m.version('blissdata'))"],
        capture_output=True, text=True, timeout=60, check=False).stdout.strip() or "missing"
    try:  # blissdata 2.x, the bliss2 rows' anchor, in this venv (the 'bliss2' extra)
        version2 = importlib.metadata.version("blissdata")
    except importlib.metadata.PackageNotFoundError:
        version2 = "missing"
    server = env.client.info("server")
    return (f"{datetime.datetime.now():%Y-%m-%d %H:%M} | {platform.machine()} x{os.cpu_count()} "
            f"load {os.getloadavg()[0]:.2f} | Python {platform.python_version()} | redis-server "
            f"{server['redis_version']} | redis-py {redis.__version__} "
            f"({'hiredis' if HIREDIS_AVAILABLE else 'no hiredis'}) | numpy "
            f"{numpy.__version__} | blissdata {version} (1.x) and {version2} (bliss2) | "
            f"profile {env.profile.name}{' +full' if env.full else ''}")
