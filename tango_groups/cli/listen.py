"""The ``tango-groups listen`` subcommand: one line per event of a session's scans and groups, or of
one sequence, from what Redis holds (in the order it happened) to what comes next, live.

``--data-format bliss1`` (the default) follows Bliss 1.x data nodes (``formatting``:
``--filter`` node types, ``--sequence DB_NAME``); ``bliss2`` the blissdata 2 model
(``tango_groups.bliss2.listen``, imported only then: ``--sequence esrf:scan:...``). There is no
``both``: one listen follows one model (their lines would interleave two orders); run two. stderr
says when the replay is over and what it found (of a 1.x sequence whose references are gone,
that they expired); Ctrl-C stops (exit code 0), and so does the end (the CLOSED, or END_SCAN) of
a sequence given with ``--sequence``.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from ..bliss1 import keys
from ..bliss1.node import GroupScanNode, get_node, get_session_node, sessions_list
from ..data.connection import redact
from ..formats import DataFormat
from . import options
from .formatting import follow

__all__ = ["add_listen", "listen"]

Write = Callable[[str], None]  # where a line goes
Replayed = Callable[[int], None]  # called once the replay is written, with what it counted

DEFAULT_FILTER = "scan_group,scan"


def add_listen(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "listen", help="print the events of a session's scans and groups, or of one sequence",
        description="Print one line per event, from the first one on, then live (Ctrl-C stops).")
    options.add_redis_options(parser, session_default=options.DEFAULT_SESSION)
    options.add_data_format_option(parser, "the data to follow (one model at a time: for a device "
                                           "in DataFormat both, run one listen of each)",
                                   choices=(DataFormat.BLISS1.value, DataFormat.BLISS2.value))
    follow_one = parser.add_mutually_exclusive_group()
    follow_one.add_argument(
        "--filter", default=None, type=lambda text: text.split(","),
        help=f"bliss1: node types to report, comma-separated (default: {DEFAULT_FILTER})")
    follow_one.add_argument(
        "--sequence", metavar="DB_NAME|KEY",
        help="report the scans added to this sequence (or group) instead, and stop when it ends: "
             "a db_name, or with --data-format bliss2 a sequence's scan key (esrf:scan:...)")
    parser.set_defaults(run=listen)


def listen(args: argparse.Namespace) -> int:
    """Print events until interrupted (Ctrl-C is the normal way to stop: exit code 0)."""
    if args.data_format == DataFormat.BLISS2 and args.filter:
        raise RuntimeError("--filter chooses Bliss 1.x node types: bliss2 shows every scan's "
                           "states, and a sequence's sub-scans and points")
    url = options.required_redis_url(args)
    options.check_redis(url)
    write = functools.partial(print, flush=True)
    waiting = functools.partial(_say_waiting, args, url)
    try:
        if args.data_format == DataFormat.BLISS1:
            _listen_bliss1(args, url, write, waiting)
        else:
            _listen_bliss2(args, url, write, waiting)
    except KeyboardInterrupt:
        pass
    return 0


def _listen_bliss1(args: argparse.Namespace, url: str, write: Write,
                   waiting: Replayed) -> None:
    if args.sequence:
        sequence = get_node(args.sequence, connection=url)
        if not isinstance(sequence, GroupScanNode):
            raise RuntimeError(
                f"{args.sequence!r} is not a sequence or group in the Redis at {redact(url)}"
                f" ({'no such node' if sequence is None else 'a ' + str(sequence.type)}): "
                "give a sequence's db_name, as listen prints them")
        # the group's own type too, for the END_SCAN that ends the listening
        types = ["node_ref_channel", sequence.type]
        _say_if_expired(sequence)
        walk = functools.partial(sequence.walk_events, filter=types)
    else:
        session = get_session_node(args.session, connection=url)
        walk = functools.partial(session.walk_events,
                                 filter=args.filter or DEFAULT_FILTER.split(","))
    follow(lambda wait: walk(wait=wait), until_end_of=args.sequence, write=write,
           replayed=waiting)


def _listen_bliss2(args: argparse.Namespace, url: str, write: Write,
                   waiting: Replayed) -> None:
    store = options.bliss2_store(url)
    from ..bliss2.listen import follow_sequence, follow_session  # blissdata 2: only now

    if args.sequence:
        follow_sequence(store, args.sequence, write, waiting)
    else:
        follow_session(store, args.session, write, waiting)


def _say_waiting(args: argparse.Namespace, url: str, replayed: int) -> None:
    """After the replay, on stderr: what was found and that listen now waits."""
    what = "scans" if args.data_format == DataFormat.BLISS2 and not args.sequence else "events"
    found = f"{replayed} {what} of {args.sequence or 'session ' + repr(args.session)} so far"
    if not replayed and not args.sequence:
        found = f"nothing in session {args.session!r} of the Redis at {redact(url)} yet"
        if args.data_format == DataFormat.BLISS1:
            others = ", ".join(node.db_name for node in sessions_list(connection=url))
            found += f" (sessions there: {others or 'none'})"
    print(f"tango-groups listen: {found}; waiting for new events (Ctrl-C stops)",
          file=sys.stderr, flush=True)


def _say_if_expired(sequence: GroupScanNode) -> None:
    """On stderr, when the ended sequence's references to its scans are no longer in Redis: its
    channel data expired (the device's DataExpiration after the end), or it had no scans."""
    references = f"{sequence.db_name}:GroupingMaster:scans{keys.DATA}"
    client = sequence.connection
    if client.exists(sequence.db_name + keys.END) and not client.exists(references):
        print(f"tango-groups listen: sequence {sequence.db_name} has ended and Redis holds no "
              "references to its scans: none were added, or they expired (channel data lives "
              "the device's DataExpiration seconds after the end, 600 by default); its scans "
              "are still in Redis, siblings of the sequence in its container",
              file=sys.stderr, flush=True)
