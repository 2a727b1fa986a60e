"""``tango-groups``: run a SequenceManager, follow scans and sequences, write simulated scans.

Subcommands (``tango-groups COMMAND --help`` for each one's options):

``serve``
    A ready-to-use ``SequenceManager``: uses the Redis at ``--redis-url`` (default
    ``$TANGO_GROUPS_REDIS_URL``) and the Tango database at ``--tango-host``, and starts a private
    one of each that is not given (``tango_groups.runtime``). ``$TANGO_HOST`` is *not* a default:
    on a beamline it names the shared database, which serve changes only when asked explicitly
    (``--tango-host $TANGO_HOST``). It registers the devices (the shipped fixture with
    ``RedisURL`` and ``Session`` set; nothing else in the database changes), starts
    ``SequenceManager <instance>`` and, once every device answers, prints lines a script can parse
    (``TANGO_HOST=``, ``REDIS_URL=``, ``DEVICE=``, each name once), then hints (commands as the
    user's shell runs them: ``formatting.runnable``), then ``READY``. A Redis password is never printed.
    Ctrl-C, SIGTERM or SIGHUP (the terminal closed) stops what it started, in reverse order, and
    nothing else; the exit code is then 0.
``register``, ``fixtures``
    Register devices in an existing database (``--tango-host`` required), keeping what registered
    devices have; print the shipped dsconfig JSON (``--path``: its installed file).
``demo``
    Plays the seed's sequence through a device: ``--device NAME``, else a private stack started
    as ``serve`` starts it without ``--tango-host`` (``$TANGO_HOST`` is not used for it either).
``listen``
    One line per event of a session's scans and groups (``--filter``, node types), or of the scans
    added to one sequence (``--sequence DB_NAME``, which ends with that sequence): what Redis holds
    in the order it happened, then live (``tango_groups.formatting``); stderr says when the replay
    is over and what it found (nothing yet: the sessions there). What cannot be read is noted on
    the event's line as ``(unreadable: ...)`` and listening goes on.
``loopscan``
    Writes one simulated loopscan into a session and prints its db_name and scan number.
``gui``
    The sequence panel of a device (``tango_groups.gui``: the ``gui`` extra).

Each subcommand is a ``_add_<name>(commands)`` function that declares its options and sets the
function that runs it (``run``, which returns the exit code); ``build_parser`` lists them. What the
commands do beyond parsing and dispatch lives where it belongs: processes, registration and
signals in ``tango_groups.runtime``, the lines ``listen`` prints in ``tango_groups.formatting``, the
demo in ``tango_groups.demo``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

import tango

from .data.connection import RedisError, ping, redact
from .data.node import GroupScanNode, get_node, get_session_node, sessions_list
from .demo import play
from .formatting import follow, runnable
from .gui.command import add_gui
from .runtime.device_server import DeviceServer
from .runtime.fixtures import (
    check_database,
    fixture_path,
    load_config,
    register_devices,
    sequence_manager_config,
)
from .runtime.process import Stopped, log_tail, stopped_by_signals
from .runtime.redis_server import RedisServer
from .runtime.tango_db import TangoDatabaseServer
from .scanning.simulation import loopscan
from .session import Session

__all__ = ["build_parser", "main"]

DEFAULT_SESSION = "tango_groups"  # the SequenceManager's default Session property
REDIS_URL_VARIABLE = "TANGO_GROUPS_REDIS_URL"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (RuntimeError, ValueError) as error:
        print(f"tango-groups {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of our output went away (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tango-groups",
        description="Groups and sequences of scans in Bliss 1.x Redis data nodes, served by the "
                    "SequenceManager Tango device.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_serve, _add_register, _add_fixtures, _add_demo, _add_listen,
                _add_loopscan, add_gui):
        add(commands)
    return parser


def _add_redis_options(parser: argparse.ArgumentParser, session_default: str | None) -> None:
    parser.add_argument(
        "--redis-url", default=os.environ.get(REDIS_URL_VARIABLE),
        help=f"the data Redis, redis://host:port[/db] (default: ${REDIS_URL_VARIABLE}; data "
             "nodes are in db 1 unless the URL names one)")
    parser.add_argument(
        "--session", default=session_default,
        help=f"the session name (default: {DEFAULT_SESSION}, the SequenceManager's default)")


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instance", default="1",
                        help="the server instance, SequenceManager/<instance> (default: 1)")
    parser.add_argument("--devices", type=int, default=1, metavar="N",
                        help="how many SequenceManager devices the server runs (default: 1)")


def _redis_url(args: argparse.Namespace) -> str:
    if not args.redis_url:
        raise RuntimeError(f"no Redis: give --redis-url redis://host:port or set "
                           f"{REDIS_URL_VARIABLE} (tango-groups serve prints REDIS_URL=...)")
    return args.redis_url


def _check_redis(url: str) -> None:
    try:
        ping(url)
    except RedisError as error:
        raise RuntimeError(f"the Redis at {redact(url)} does not answer ({error}): start it or "
                           "fix the URL") from None


# -- serve ----------------------------------------------------------------------------------------
def _add_serve(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="run a SequenceManager (with a private Tango DB and Redis when none is given)",
        description="Register and start SequenceManager devices (in a private Tango database "
                    "and Redis unless --tango-host / --redis-url name existing ones); print "
                    "TANGO_HOST=, REDIS_URL=, DEVICE= lines and READY when they answer; stop "
                    "everything started on Ctrl-C, SIGTERM or SIGHUP.")
    parser.add_argument(
        "--tango-host", default=None,
        help="an existing Tango database to register the devices in, host:port (default: start "
             "a private one; $TANGO_HOST is not used unless given here: --tango-host $TANGO_HOST)")
    _add_redis_options(parser, session_default=None)
    _add_server_options(parser)
    parser.set_defaults(run=serve)


def serve(args: argparse.Namespace) -> int:
    with stopped_by_signals():  # a signal raises Stopped: ``started`` stops what it holds
        try:
            with contextlib.ExitStack() as started:
                _serve(args, started)
        except Stopped:
            return 0


def _start(
    args: argparse.Namespace, started: contextlib.ExitStack
) -> tuple[str, str, DeviceServer]:
    """Start what is missing (Redis, Tango DB), register and start the devices; what was started
    is stopped by ``started``. Returns (TANGO_HOST, Redis URL, the running server)."""
    if args.redis_url:  # what is given is checked before anything is started
        _check_redis(args.redis_url)
    if args.tango_host:
        check_database(args.tango_host)
    redis_url = args.redis_url or started.enter_context(RedisServer()).url
    tango_host = args.tango_host or started.enter_context(TangoDatabaseServer()).tango_host
    server = DeviceServer(args.instance, tango_host)
    if server.already_running():  # checked first: its devices' properties stay as they are
        raise RuntimeError(f"{server.name} already runs in the Tango database at {tango_host}: "
                           "stop it, or serve another instance (--instance)")
    properties = {"RedisURL": redis_url}
    if args.session:
        properties["Session"] = args.session
    config = sequence_manager_config(args.instance, args.devices, properties)
    load_config(config, tango_host, update=True)
    started.enter_context(server)
    return tango_host, redis_url, server


def _serve(args: argparse.Namespace, started: contextlib.ExitStack) -> NoReturn:
    """Start what is missing, print the lines, serve until a signal (or the server's death)."""
    tango_host, redis_url, server = _start(args, started)
    session = args.session or DEFAULT_SESSION
    lines = [f"TANGO_HOST={tango_host}", f"REDIS_URL={redact(redis_url)}"]
    lines += [f"DEVICE={device}" for device in server.devices]
    for device in server.devices:
        lines.append(f"{device}: {server.proxy(device).State()} (server {server.name}, "
                     f"session {session})")
    environment = os.environ.get("TANGO_HOST")
    if environment and environment != tango_host:
        lines.append(f"(the environment's TANGO_HOST, {environment}, is not used; to register "
                     f"there instead: tango-groups serve --tango-host {environment})")
    device = f"tango://{tango_host}/{server.devices[0]}"  # no TANGO_HOST needed
    redis_options = f"--redis-url {redact(redis_url)} --session {session}"
    lines += [
        "Drive it from itango:",
        f"    {runnable('itango3')} -i -c \"d = Device('{device}')\"",
        "Write a simulated scan:",
        f"    {runnable('tango-groups')} loopscan {redis_options}",
        "Follow its scans and sequences:",
        f"    {runnable('tango-groups')} listen {redis_options}",
        "Stop everything with Ctrl-C.",
        "READY",
    ]
    print("\n".join(lines), flush=True)
    while server.poll() is None:
        time.sleep(0.2)
    raise RuntimeError(f"the device server {server.name} exited with code {server.poll()}; its "
                       f"log ends with:\n{log_tail(server.log_path)}")


# -- register, fixtures ---------------------------------------------------------------------------
def _add_register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "register", help="register SequenceManager devices in an existing Tango database",
        description="Register server SequenceManager/<instance> and its devices in the Tango "
                    "database at --tango-host (the shipped fixture, as json2tango would, with "
                    "the properties given here); devices already registered keep the "
                    "properties not given here, and nothing else in the database changes.")
    parser.add_argument("--tango-host", required=True,
                        help="the Tango database, host:port (the environment's: --tango-host "
                             "$TANGO_HOST)")
    _add_redis_options(parser, session_default=None)
    parser.add_argument("--base-path", help="the BasePath property (scan-saving base path)")
    _add_server_options(parser)
    parser.set_defaults(run=register)


def register(args: argparse.Namespace) -> int:
    check_database(args.tango_host)
    given = {"RedisURL": args.redis_url, "Session": args.session, "BasePath": args.base_path}
    written = register_devices(args.tango_host, args.instance, args.devices,
                               {key: value for key, value in given.items() if value})
    for name, properties in written.items():
        shown = {key: redact(value[0]) if key == "RedisURL" else " ".join(value)
                 for key, value in properties.items()}
        print(f"registered {name}: " + ", ".join(f"{k}={v}" for k, v in sorted(shown.items())))
    print(f"start it with: TANGO_HOST={args.tango_host} {runnable('SequenceManager')} "
          f"{args.instance}", flush=True)
    return 0


def _add_fixtures(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "fixtures", help="print the shipped dsconfig JSON that registers a SequenceManager",
        description="Print the dsconfig JSON shipped with the package (SequenceManager/1, "
                    "tango_groups/sequence_manager/1), to edit or load with json2tango -w.")
    parser.add_argument("--path", action="store_true", help="print the file's path instead")
    parser.set_defaults(run=fixtures)


def fixtures(args: argparse.Namespace) -> int:
    path = fixture_path()
    print(path if args.path else path.read_text().rstrip("\n"), flush=True)
    return 0


# -- demo -----------------------------------------------------------------------------------------
def _add_demo(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="play the seed's sequence through a SequenceManager, showing Redis and Tango "
                     "events side by side",
        description="A client runs the seed page's sequence (two simulated loopscans of a diode, "
                    "a custom sum channel) through a SequenceManager while the Redis events and "
                    "the device's change events are printed; exit code 0 when the result is "
                    "right. Without --device, starts its own device first, with a private "
                    "Redis and Tango database (as serve does without options; $TANGO_HOST is "
                    "not used for it).")
    parser.add_argument("--device", help="a running SequenceManager (TANGO_HOST from the "
                                          "environment, or a full tango:// name)")
    parser.add_argument("--tango-host", default=None, help=argparse.SUPPRESS)
    _add_redis_options(parser, session_default=None)
    parser.set_defaults(run=run_demo, instance="demo", devices=1)


def run_demo(args: argparse.Namespace) -> int:
    with stopped_by_signals():
        try:
            with contextlib.ExitStack() as started:
                if args.device:
                    proxy = tango.DeviceProxy(args.device)
                else:
                    _, args.redis_url, server = _start(args, started)
                    proxy = server.proxy(server.devices[0])
                properties = proxy.get_property(["RedisURL", "Session", "BasePath"])
                redis_url = args.redis_url or properties["RedisURL"][0]
                session = Session(args.session or properties["Session"][0], redis_url=redis_url,
                                  base_path=properties["BasePath"][0])
                started.callback(session.close)
                problems = play(proxy, session)
        except Stopped as stopped:  # what it started is stopped: the usual code of a signal
            return 128 + stopped.signum
    for problem in problems:
        print(f"WRONG: {problem}", file=sys.stderr)
    print("demo: the sequence is right" if not problems else "demo: FAILED", flush=True)
    return 1 if problems else 0


# -- listen ---------------------------------------------------------------------------------------
def _add_listen(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "listen", help="print the events of a session's scans and groups, or of one sequence",
        description="Print one line per event, from the first one on, then live (Ctrl-C stops).")
    _add_redis_options(parser, session_default=DEFAULT_SESSION)
    follow = parser.add_mutually_exclusive_group()
    follow.add_argument("--filter", default="scan_group,scan", type=lambda text: text.split(","),
                        help="node types to report, comma-separated (default: scan_group,scan)")
    follow.add_argument("--sequence", metavar="DB_NAME",
                        help="report the scans added to this sequence (or group) instead, and "
                             "stop when it ends")
    parser.set_defaults(run=listen)


def listen(args: argparse.Namespace) -> int:
    """Print events until interrupted (Ctrl-C is the normal way to stop: exit code 0)."""
    url = _redis_url(args)
    _check_redis(url)
    try:
        if args.sequence:
            sequence = get_node(args.sequence, connection=url)
            if not isinstance(sequence, GroupScanNode):
                raise RuntimeError(
                    f"{args.sequence!r} is not a sequence or group in the Redis at {redact(url)}"
                    f" ({'no such node' if sequence is None else 'a ' + str(sequence.type)}): "
                    "give a sequence's db_name, as listen prints them")
            # the group's own type too, for the END_SCAN that ends the listening
            types = ["node_ref_channel", sequence.type]
            walk = functools.partial(sequence.walk_events, filter=types)
        else:
            session = get_session_node(args.session, connection=url)
            walk = functools.partial(session.walk_events, filter=args.filter)
        follow(lambda wait: walk(wait=wait), until_end_of=args.sequence,
               write=functools.partial(print, flush=True),
               replayed=functools.partial(_say_waiting, args, url))
    except KeyboardInterrupt:
        pass
    return 0


def _say_waiting(args: argparse.Namespace, url: str, replayed: int) -> None:
    """After the replay, on stderr: what was found and that listen now waits."""
    found = f"{replayed} events of {args.sequence or 'session ' + repr(args.session)} so far"
    if not replayed and not args.sequence:
        others = ", ".join(node.db_name for node in sessions_list(connection=url)) or "none"
        found = (f"nothing in session {args.session!r} of the Redis at {redact(url)} yet "
                 f"(sessions there: {others})")
    print(f"tango-groups listen: {found}; waiting for new events (Ctrl-C stops)",
          file=sys.stderr, flush=True)


# -- loopscan -------------------------------------------------------------------------------------
def _add_loopscan(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "loopscan", help="write one simulated loopscan and print its db_name and scan number")
    _add_redis_options(parser, session_default=DEFAULT_SESSION)
    parser.add_argument("--npoints", type=int, default=10, help="points (default: 10)")
    parser.add_argument("--count-time", type=float, default=0.1,
                        help="seconds per point (default: 0.1)")
    parser.add_argument("--counters", default="diode", type=lambda text: text.split(","),
                        help="simulated counters, comma-separated (default: diode)")
    parser.set_defaults(run=run_loopscan)


def run_loopscan(args: argparse.Namespace) -> int:
    url = _redis_url(args)
    _check_redis(url)
    session = Session(args.session, redis_url=url)
    try:
        try:
            counters = [session.config.get(name) for name in args.counters]
        except KeyError as error:
            raise ValueError(error.args[0]) from None
        scan = loopscan(args.npoints, args.count_time, *counters, session=session)
        print(scan.db_name, scan.scan_number, flush=True)
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
