"""``tango-groups``: run a SequenceManager, follow scans and sequences, write simulated scans.

Subcommands (``tango-groups COMMAND --help`` for each one's options):

``serve``
    A ready-to-use ``SequenceManager``: uses the Redis at ``--redis-url`` (default
    ``$TANGO_GROUPS_REDIS_URL``) and the Tango database at ``--tango-host``, and starts a private
    one of each that is not given (``tango_groups.runtime``). ``$TANGO_HOST`` is *not* a default:
    on a beamline it names the shared database, which serve changes only when asked explicitly
    (``--tango-host $TANGO_HOST``). It registers the devices as ``register`` does (a device
    already registered keeps the properties whose option is not given; ``RedisURL`` is the Redis
    served; nothing else in the database changes) and prints what it wrote, starts
    ``SequenceManager <instance>`` and, once every device answers, prints lines a script can parse
    (``TANGO_HOST=``, ``REDIS_URL=``, ``DEVICE=``, each name once), then hints (commands as the
    user's shell runs them: ``formatting.runnable``), then ``READY``. A Redis password is never
    printed.
    ``--data-format bliss1|bliss2|both`` is the devices' ``DataFormat`` property; with bliss2 or
    both the private Redis is Valkey with RedisJSON and RediSearch and the Redis is set up for
    blissdata 2 (db 0), so ``REDIS_URL=`` is what ``DataStore(url)`` takes as is (and the 1.x
    side finds its data nodes in db 1 with the same URL).
    Ctrl-C, SIGTERM or SIGHUP (the terminal closed) stops what it started, in reverse order, and
    nothing else, and says which sequences the stopping server ended; the exit code is then 0.
``register``, ``fixtures``
    Register devices in an existing database (``--tango-host`` required), keeping what registered
    devices have; print the shipped dsconfig JSON (``--path``: its installed file).
``demo``
    Plays the seed's sequence through a device: ``--device NAME``, else a private stack started
    as ``serve`` starts it without ``--tango-host`` (``$TANGO_HOST`` is not used for it either).
``listen``
    One line per event of a session's scans and groups (``--filter``, node types), or of the scans
    added to one sequence (``--sequence DB_NAME``, which ends with that sequence): what Redis holds
    in the order it happened, then live; stderr says when the replay is over and what it found.
    What cannot be read is noted on the event's line as ``(unreadable: ...)`` and listening goes
    on. ``--data-format bliss2`` follows the blissdata 2 model instead (``--sequence
    esrf:scan:...``). In ``listen``.
``loopscan``
    Writes one simulated loopscan into a session (``--base-path``: the device's container;
    ``--data-format bliss2``: the Bliss 2 model) and prints its db_name (key) and scan number.
    In ``loopscan``.
``gui``
    The sequence panel of a device (``tango_groups.gui``: the ``gui`` extra).

Each subcommand is a ``_add_<name>(commands)`` function that declares its options and sets the
function that runs it (``run``, which returns the exit code); ``build_parser`` lists them. What the
commands do beyond parsing and dispatch lives where it belongs: processes, registration and
signals in ``tango_groups.runtime``, the options several commands share in
``options``, each other subcommand in its module of this package (``listen``, ``loopscan``,
``gui``), the demo in ``demo``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Sequence
from typing import NamedTuple, NoReturn

import tango

from ..data.connection import redact
from ..formats import DataFormat
from ..runtime.device_server import DeviceServer
from ..runtime.fixtures import (
    check_database,
    device_names,
    fixture_path,
    register_devices,
    registered_property,
)
from ..runtime.process import Stopped, log_tail, stopped_by_signals
from ..runtime.redis_modules import ModulesUnavailable
from ..runtime.redis_server import RedisServer
from ..runtime.tango_db import TangoDatabaseServer
from ..session import Session
from .demo import play
from .formatting import runnable
from .gui import add_gui
from .listen import add_listen
from .loopscan import add_loopscan
from .options import (
    DEFAULT_BASE_PATH,
    DEFAULT_SESSION,
    add_data_format_option,
    add_redis_options,
    bliss2_store,
    check_redis,
)

__all__ = ["build_parser", "main"]


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
    for add in (_add_serve, _add_register, _add_fixtures, _add_demo, add_listen,
                add_loopscan, add_gui):
        add(commands)
    return parser


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instance", default="1",
                        help="the server instance, SequenceManager/<instance> (default: 1)")
    parser.add_argument("--devices", type=int, default=1, metavar="N",
                        help="how many SequenceManager devices the server runs (default: 1)")


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
    add_redis_options(parser, session_default=None)
    parser.add_argument("--base-path", help="the devices' BasePath property (scan-saving base "
                                            "path; default: kept, /tmp/scans for a new device)")
    add_data_format_option(parser, "the data the devices write (their DataFormat property; "
                                   "default: kept, bliss1 for a new device); bliss2 and both "
                                   "start a private Redis with RedisJSON and RediSearch, set up "
                                   "for blissdata 2", default=None)
    _add_server_options(parser)
    parser.set_defaults(run=serve)


def serve(args: argparse.Namespace) -> int:
    with stopped_by_signals():  # a signal raises Stopped: ``started`` stops what it holds
        try:
            with contextlib.ExitStack() as started:
                _serve(args, started)
        except Stopped:
            return 0


class Served(NamedTuple):
    """What ``_start`` started: where, and each device's properties as registered."""

    tango_host: str
    redis_url: str
    server: DeviceServer
    registered: dict[str, dict[str, list[str]]]

    def property(self, name: str, default: str) -> str:
        """The first device's property ``name`` as registered (``default``: not set)."""
        values = next(iter(self.registered.values())).get(name)
        return values[0] if values else default


def _start(args: argparse.Namespace, started: contextlib.ExitStack) -> Served:
    """Start what is missing (Redis, Tango DB), register and start the devices; what was started
    is stopped by ``started``. Devices already registered keep the properties whose option is
    not given (``register_devices``); RedisURL is always the Redis served."""
    if args.redis_url:  # what is given is checked before anything is started
        check_redis(args.redis_url)
    if args.tango_host:
        check_database(args.tango_host)
    data_format = args.data_format or (args.tango_host and registered_property(
        args.tango_host, device_names(args.instance)[0], "DataFormat")) or DataFormat.BLISS1
    bliss2 = data_format != DataFormat.BLISS1
    redis_url = args.redis_url or _start_redis(bliss2, started)
    if bliss2:  # the db set up for blissdata 2 (db 0; the 1.x data nodes are in db 1)
        bliss2_store(redis_url, set_up=True)
    tango_host = args.tango_host or started.enter_context(TangoDatabaseServer()).tango_host
    server = DeviceServer(args.instance, tango_host)
    if server.already_running():  # checked first: its devices' properties stay as they are
        raise RuntimeError(f"{server.name} already runs in the Tango database at {tango_host}: "
                           "stop it, or serve another instance (--instance)")
    given = {"RedisURL": redis_url, "DataFormat": args.data_format, "Session": args.session,
             "BasePath": getattr(args, "base_path", None)}
    registered = register_devices(tango_host, args.instance, args.devices,
                                  {key: value for key, value in given.items() if value})
    server.start()  # stops what it started if it fails
    started.callback(_stop_and_say, server)
    return Served(tango_host, redis_url, server, registered)


def _stop_and_say(server: DeviceServer) -> None:
    """Stop the device server; print what was stopped and which running sequences it ended (a
    server that stops ends its running sequence as KILLED)."""
    running = {}
    for device in server.devices:
        with contextlib.suppress(tango.DevFailed):  # a device that does not answer runs nothing
            proxy = server.proxy(device)
            if proxy.State() == tango.DevState.RUNNING:
                running[device] = proxy.SequenceName
    server.stop()
    ended = "".join(f", {device}: sequence {name} ended KILLED"
                    for device, name in running.items())
    print(f"stopped {server.name}" + (f" ({ended[2:]})" if ended else ""), flush=True)


def _start_redis(modules: bool, started: contextlib.ExitStack) -> str:
    """A private Redis (with RedisJSON and RediSearch for Bliss 2 data): its URL."""
    try:
        return started.enter_context(RedisServer(modules=modules)).url
    except ModulesUnavailable as error:
        raise RuntimeError(f"Bliss 2 data needs a Redis with RedisJSON and RediSearch: {error} "
                           "(or give --redis-url of a Bliss 2 Redis)") from None


def _serve(args: argparse.Namespace, started: contextlib.ExitStack) -> NoReturn:
    """Start what is missing, print the lines, serve until a signal (or the server's death)."""
    served = _start(args, started)
    tango_host, redis_url, server = served.tango_host, served.redis_url, served.server
    session = served.property("Session", DEFAULT_SESSION)
    data_format = served.property("DataFormat", DataFormat.BLISS1)
    lines = registration_lines(served.registered)
    lines += [f"TANGO_HOST={tango_host}", f"REDIS_URL={redact(redis_url)}"]
    lines += [f"DEVICE={device}" for device in server.devices]
    for device in server.devices:
        proxy = server.proxy(device)
        state = proxy.State()
        why = f": {' '.join(proxy.Status().split())}" if state == tango.DevState.FAULT else ""
        lines.append(f"{device}: {state} (server {server.name}, session {session}, data format "
                     f"{data_format}){why}")
    environment = os.environ.get("TANGO_HOST")
    if environment and environment != tango_host:
        lines.append(f"(the environment's TANGO_HOST, {environment}, is not used; to register "
                     f"there instead: tango-groups serve --tango-host {environment})")
    device = f"tango://{tango_host}/{server.devices[0]}"  # no TANGO_HOST needed
    redis_options = f"--redis-url {redact(redis_url)} --session {session}"
    base_path = served.property("BasePath", DEFAULT_BASE_PATH)
    command = runnable("tango-groups")
    lines += ["Drive it from itango:",
              f"    {runnable('itango3')} -i -c \"d = Device('{device}')\""]
    if data_format != DataFormat.BLISS2:
        lines += ["Write a simulated scan (numbered where the device counts, for AddScan):",
                  f"    {command} loopscan {redis_options} --base-path {shlex.quote(base_path)}",
                  "Follow its scans and sequences:", f"    {command} listen {redis_options}"]
    if data_format != DataFormat.BLISS1:
        lines += ["Write a simulated Bliss 2 scan:",
                  f"    {command} loopscan --data-format bliss2 {redis_options}",
                  "Follow its Bliss 2 scans and sequences:",
                  f"    {command} listen --data-format bliss2 {redis_options}"]
    lines += ["Stop everything with Ctrl-C.", "READY"]
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
    add_redis_options(parser, session_default=None)
    parser.add_argument("--base-path", help="the BasePath property (scan-saving base path)")
    parser.add_argument("--data-format", choices=[each.value for each in DataFormat],
                        help="the DataFormat property: bliss1, bliss2 or both")
    _add_server_options(parser)
    parser.set_defaults(run=register)


def register(args: argparse.Namespace) -> int:
    check_database(args.tango_host)
    given = {"RedisURL": args.redis_url, "Session": args.session, "BasePath": args.base_path,
             "DataFormat": args.data_format}
    written = register_devices(args.tango_host, args.instance, args.devices,
                               {key: value for key, value in given.items() if value})
    print("\n".join(registration_lines(written)))
    print(f"start it with: TANGO_HOST={args.tango_host} {runnable('SequenceManager')} "
          f"{args.instance}", flush=True)
    return 0


def registration_lines(written: dict[str, dict[str, list[str]]]) -> list[str]:
    """What ``register`` and ``serve`` wrote, one line per device (the Redis password hidden)."""
    lines = []
    for name, properties in written.items():
        shown = {key: redact(value[0]) if key == "RedisURL" else " ".join(value)
                 for key, value in properties.items()}
        lines.append(f"registered {name}: "
                     + ", ".join(f"{k}={v}" for k, v in sorted(shown.items())))
    return lines


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
    add_redis_options(parser, session_default=None)
    parser.set_defaults(run=run_demo, instance="demo", devices=1,
                        data_format=DataFormat.BLISS1.value)


def run_demo(args: argparse.Namespace) -> int:
    with stopped_by_signals():
        try:
            with contextlib.ExitStack() as started:
                if args.device:
                    proxy = tango.DeviceProxy(args.device)
                else:
                    served = _start(args, started)
                    args.redis_url, server = served.redis_url, served.server
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
