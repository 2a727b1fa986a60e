"""One line of text per data-node event: what ``tango-groups listen`` and ``demo`` print.

``describe(event)`` is the line of one event (``NEW_NODE demo:tmp:scans:3_loopscan 3``);
``print_events(events)`` prints the lines of a walk (``walk_events(..., wait=True)``) as they come,
notes what cannot be read and goes on, and stops at the end of a sequence when given one. Both read
the nodes the events name (a scan's number in its info) through ``tango_groups.data``; nothing here
writes.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

from .data.events import Event, EventType
from .data.node import ChannelDataNode, NodeRefChannel, ScanNode, WalkIterator

__all__ = ["describe", "print_events"]


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


def print_events(events: WalkIterator[Event], until_end_of: str | None = None,
                 write: Callable[[str], None] = print) -> None:
    """``write`` the line of each event of ``events``, bad data in Redis included (its line says
    what is unreadable), until the END_SCAN of the node ``until_end_of`` (a db_name) when given,
    else until the walk ends."""
    for event, problem in events.with_errors():
        write(describe(event, problem))
        if (until_end_of is not None and event.type is EventType.END_SCAN
                and event.node.db_name == until_end_of):
            return
