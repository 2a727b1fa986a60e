"""The ``tango-groups gui`` subcommand: its options here, Qt imported only when it runs (the
rest of ``tango-groups`` works without the ``gui`` extra)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["DEFAULT_DEVICE", "add_gui"]

DEFAULT_DEVICE = "tango_groups/sequence_manager/1"  # the shipped fixture's device


def add_gui(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "gui", help="open the sequence panel of a SequenceManager (the gui extra)",
        description="A window that follows a SequenceManager through its change events (state, "
                    "current sequence, its scans, live channel plots) and drives it (Start, "
                    "AddScan, End, Abort). Needs the gui extra: pip install tango_groups[gui].")
    parser.add_argument(
        "device", nargs="?", default=DEFAULT_DEVICE,
        help=f"the device, with TANGO_HOST from the environment or a full tango://host:port/ "
             f"name as serve prints it (default: {DEFAULT_DEVICE})")
    parser.add_argument(
        "--redis-url", default=None,
        help="the data Redis the scan table reads states and points from (default: the "
             "device's RedisURL property; without one those columns are hidden)")
    parser.set_defaults(run=run_gui)


def run_gui(args: argparse.Namespace) -> int:
    try:
        from tango_groups.gui.app import run
    except ImportError as error:
        print(f"tango-groups gui: the gui extra is missing ({error}): "
              "pip install 'tango_groups[gui]'", file=sys.stderr)
        return 1
    return run(args.device, args.redis_url)
