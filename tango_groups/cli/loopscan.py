"""The ``tango-groups loopscan`` subcommand: one simulated loopscan written into a session, where a
SequenceManager of that session finds it by number. ``--base-path`` is the device's BasePath: a
Bliss 1.x scan is numbered in its container (``scanning.simulation``); ``--data-format bliss2``
writes it in the Bliss 2 model instead (``bliss2.simulation``, imported only then), numbered in
the session. Prints the scan's db_name (Bliss 2: key) and number.
"""

from __future__ import annotations

import argparse

from ..formats import DataFormat
from ..scanning.simulation import loopscan
from ..session import Session
from .options import (
    DEFAULT_BASE_PATH,
    DEFAULT_SESSION,
    add_data_format_option,
    add_redis_options,
    bliss2_store,
    check_redis,
    required_redis_url,
)

__all__ = ["add_loopscan", "run_loopscan"]


def add_loopscan(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "loopscan", help="write one simulated loopscan and print its db_name (Bliss 2: key) and "
                         "scan number",
        description="Write one simulated loopscan into a session, where a SequenceManager of "
                    "that session finds it by number: give the device's Session and BasePath "
                    "(tango-groups serve prints the line).")
    add_redis_options(parser, session_default=DEFAULT_SESSION)
    parser.add_argument("--base-path", default=DEFAULT_BASE_PATH,
                        help="the scan-saving base path, the device's BasePath (default: "
                             f"{DEFAULT_BASE_PATH}): Bliss 1.x scans are numbered in its "
                             "container (/data/id00 -> <session>:data:id00)")
    add_data_format_option(parser, "the data to write",
                           choices=(DataFormat.BLISS1.value, DataFormat.BLISS2.value))
    parser.add_argument("--npoints", type=int, default=10, help="points (default: 10)")
    parser.add_argument("--count-time", type=float, default=0.1,
                        help="seconds per point (default: 0.1)")
    parser.add_argument("--counters", default="diode", type=lambda text: text.split(","),
                        help="simulated counters, comma-separated (default: diode)")
    parser.set_defaults(run=run_loopscan)


def run_loopscan(args: argparse.Namespace) -> int:
    url = required_redis_url(args)
    check_redis(url)
    session = Session(args.session, redis_url=url, base_path=args.base_path)
    try:
        try:
            counters = [session.config.get(name) for name in args.counters]
        except KeyError as error:
            raise ValueError(error.args[0]) from None
        if args.data_format == DataFormat.BLISS2:
            from ..bliss2.simulation import loopscan as bliss2_loopscan  # blissdata 2: only now

            print(*bliss2_loopscan(bliss2_store(url), args.session, args.npoints,
                                   args.count_time, counters), flush=True)
        else:
            scan = loopscan(args.npoints, args.count_time, *counters, session=session)
            print(scan.db_name, scan.scan_number, flush=True)
    finally:
        session.close()
    return 0
