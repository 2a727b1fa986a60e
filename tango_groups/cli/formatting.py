"""One line of text per data-node event: what ``tango-groups listen`` and ``demo`` print.
Also ``runnable(script)``: a command of this venv as the user's shell runs it (serve's hints).

``describe(event)`` is the line of one event (``NEW_NODE demo:tmp:scans:3_loopscan 3``);
``follow(walk)`` prints the lines of a session or a sequence: first what Redis already holds, in
the order it happened (``replay``), then what comes next, live. It notes what cannot be read and
goes on, and stops at the end of a sequence when given one. Both read the nodes the events name
(a scan's number in its info) through ``tango_groups.bliss1``; nothing here writes.

Why a replay: a walk over what Redis holds yields events the way blissdata's does, by stream
priority (every registration, then every PREPARED_SCAN, then the data, then every END_SCAN), which
reads as if all scans had run at once. ``replay`` puts them back in time order: PREPARED_SCAN and
END_SCAN carry their time (stream-ID milliseconds); a registration or a point, which carry none,
is placed with the closest node above it that has one (a channel with its scan: its registration
before the PREPARED_SCAN, its points after), a registration with neither at the time of the first
event below it (a container before its first scan), else last. Events of one millisecond keep
the order of their nodes' registrations, and within one node registration, PREPARED, points, END;
the END_SCAN of a group or sequence comes after the other events of its millisecond (it ends
after the scans it holds).
"""

from __future__ import annotations

import math
import pickle
import shlex
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from ..bliss1.events import Event, EventType
from ..bliss1.node import ChannelDataNode, GroupScanNode, NodeRefChannel, ScanNode, WalkIterator

__all__ = ["describe", "follow", "replay", "runnable"]


def describe(event: Event, problem: Exception | None = None) -> str:
    """One line for an event: its name, the node's db_name, then what it carries.

    Scans and groups show their scan number (``NEW_NODE demo:tmp:scans:3_loopscan 3``), an
    END_SCAN its exception text when there is one, a NEW_DATA of node references the db_names
    of the new references, any other NEW_DATA the indexes of its points. What cannot be read
    (``problem``, the walk's error for the event's data; a refused value in the scan's info)
    ends the line as ``(unreadable: ...)``.
    """
    node = event.node
    words = [event.name, node.db_name]
    problems = [] if problem is None else [problem]
    if isinstance(node, ScanNode):
        try:
            words.append(str(node.info.get("scan_nb", "")))
        except (pickle.UnpicklingError, ValueError) as error:  # what NodeInfo raises
            problems.append(error)
        if event.type is EventType.END_SCAN and event.data and event.data.description:
            words.append(str(event.data.description))
    elif event.type is EventType.NEW_DATA and event.data and isinstance(node, NodeRefChannel):
        words += [ref.db_name if ref is not None else "(expired)" for ref in event.data.data]
    elif event.type is EventType.NEW_DATA and event.data and isinstance(node, ChannelDataNode):
        first = event.data.first_index
        words.append(f"points {first}..{first + event.data.block_size - 1}")
    words += [f"(unreadable: {error})" for error in problems]
    return " ".join(words)


Described = tuple[Event, Exception | None]
_RANK = {EventType.NEW_NODE: 0, EventType.PREPARED_SCAN: 1, EventType.NEW_DATA: 2,
         EventType.END_SCAN: 3}


def _identity(event: Event) -> tuple[EventType, str, int]:
    """What tells an event from every other one of a walk (points: by their first index)."""
    first = event.data.first_index if event.type is EventType.NEW_DATA and event.data else -1
    return event.type, event.node.db_name, first


def _above(db_name: str) -> Iterable[str]:
    """``db_name`` then the db_names of the nodes above it, closest first."""
    while db_name:
        yield db_name
        db_name = db_name.rpartition(":")[0]


def replay(events: Iterable[Described]) -> list[Described]:
    """``events`` (a walk's, with its errors) in the order they happened (see the module)."""
    events = list(events)
    order: dict[str, int] = {}  # db_name -> rank of its first appearance (registration order)
    own: dict[str, int] = {}  # db_name -> ms of its first PREPARED_SCAN / END_SCAN
    below: dict[str, int] = {}  # db_name -> ms of the first timed event at or below it
    for event, _ in events:
        name = event.node.db_name
        order.setdefault(name, len(order))
        if event.type in (EventType.PREPARED_SCAN, EventType.END_SCAN) and event.data:
            ms = event.data.first_index
            own[name] = min(own.get(name, ms), ms)
            for above in _above(name):
                below[above] = min(below.get(above, ms), ms)

    def key(indexed: tuple[int, Described]) -> tuple[float, bool, int, int, int]:
        index, (event, _) = indexed
        name = event.node.db_name
        timed = next((above for above in _above(name) if above in own), None)
        if timed is not None:
            ms: float = own[timed]
            if event.type in (EventType.PREPARED_SCAN, EventType.END_SCAN) and event.data:
                ms = event.data.first_index
            last = event.type is EventType.END_SCAN and isinstance(event.node, GroupScanNode)
            return ms, last, order.get(timed, 0), _RANK[event.type], index
        return below.get(name, math.inf), False, order[name], _RANK[event.type], index

    return [described for _, described in sorted(enumerate(events), key=key)]


def follow(walk: Callable[[bool], WalkIterator[Event]], until_end_of: str | None = None,
           write: Callable[[str], None] = print,
           replayed: Callable[[int], None] | None = None) -> None:
    """``write`` the line of each event, bad data in Redis included (its line says what is
    unreadable): first what ``walk(False)`` finds in Redis, in time order (``replay``), then,
    live, what ``walk(True)`` yields that was not written yet. ``walk(wait)`` walks the events
    from the first one on. ``replayed(n)`` is called between the two with the number of events
    replayed. Stops after the END_SCAN of the node ``until_end_of`` (a db_name) when given, else
    when the live walk ends."""
    with walk(False) as existing:
        past = replay(existing.with_errors())
    done: set[tuple[EventType, str, int]] = set()
    for event, problem in past:
        write(describe(event, problem))
        done.add(_identity(event))
        if _ends(event, until_end_of):
            return
    if replayed is not None:
        replayed(len(past))
    with walk(True) as live:
        for event, problem in live.with_errors():
            if _identity(event) in done:
                continue
            write(describe(event, problem))
            if _ends(event, until_end_of):
                return


def _ends(event: Event, until_end_of: str | None) -> bool:
    return (until_end_of is not None and event.type is EventType.END_SCAN
            and event.node.db_name == until_end_of)


def runnable(script: str) -> str:
    """How the user's shell runs ``script``, a command installed next to this Python (a venv's
    ``bin``): its name when ``PATH`` finds that very file (an activated venv), else its full
    path."""
    installed = Path(sys.executable).absolute().with_name(script)
    found = shutil.which(script)
    if not installed.is_file() or (found and Path(found).resolve() == installed.resolve()):
        return script
    return shlex.quote(str(installed))
