"""What the reader yields while walking, and how raw stream entries become it.

Walks yield ``Event(type, node, data)`` tuples (blissdata 0.3's ``walk_events`` shape):

=================  ==================================  =========================================
``EventType``      raw entries it comes from           ``data``
=================  ==================================  =========================================
``NEW_NODE`` (1)   ``{parent}_children_list`` entries  ``None``
``NEW_DATA`` (2)   ``{channel}_data`` entries          ``EventData(first_index, points, desc, n)``
``END_SCAN`` (3)   ``{scan}_end`` entry                ``EventData(ms, "END_SCAN", exception)``
``PREPARED_SCAN``  ``{scan}_prepared`` entry           ``EventData(ms, "PREPARED_SCAN", None)``
=================  ==================================  =========================================

Entries arrive as ``(id, {field: value})`` with bytes everywhere (see ``tango_groups.bliss1.keys``
for the stream layout). Channel entries carry ``__DESC__`` (pickled description), ``__NPOINTS__``
(ASCII) and ``__DATA__`` (one pickled point, or a pickled block of ``__NPOINTS__`` points); the
entry ID is ``{index of its first point + 1}-0``. Every pickle goes through ``encoding.loads``.

An entry that cannot be decoded (a pickle the allow-list refuses, bytes that are no pickle, a
missing field) is not the end of a walk: the walk raises ``UnreadableEntryError`` from ``next()``
(``UnsafeEntryError``, also an ``UnsafePickleError``, for a refused pickle), whose ``event`` is
the event that entry would have given with ``data`` None, and the next ``next()`` goes on after
it. An unreadable END entry still ends its scan.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy

from . import encoding

__all__ = [
    "Event",
    "EventData",
    "EventType",
    "StreamEntry",
    "UnreadableEntryError",
    "UnsafeEntryError",
    "unreadable",
]

logger = logging.getLogger(__name__)

StreamEntry = tuple[bytes, dict[bytes, bytes]]

NEW_NODE = b"NEW_NODE"
PREPARED_SCAN = b"PREPARED_SCAN"
END_SCAN = b"END_SCAN"


class EventType(enum.Enum):
    NEW_NODE = 1
    NEW_DATA = 2
    END_SCAN = 3
    PREPARED_SCAN = 4


class EventData(NamedTuple):
    first_index: int = -1
    """Index of the first point of ``data`` (stream-ID milliseconds for PREPARED/END)."""
    data: Any = None
    """The points (array, or list of nodes for references), or the scan event's name."""
    description: Any = None
    """Channel description of the first entry, or the END exception text."""
    block_size: int = 0
    """Number of points in ``data``."""


class Event(NamedTuple):
    type: EventType
    node: Any
    data: EventData | None = None

    @property
    def name(self) -> str:
        """The event type's name (``"NEW_DATA"``...)."""
        return self.type.name


class UnreadableEntryError(ValueError):
    """Stream entries that cannot be decoded; ``event`` is what they would have given (its
    ``data`` None). Raised by a walk's ``next()``; the walk goes on after it."""

    def __init__(self, message: str, event: Event) -> None:
        super().__init__(message)
        self.event = event


class UnsafeEntryError(UnreadableEntryError, encoding.UnsafePickleError):
    """Stream entries holding a pickle the allow-list refuses (nothing was executed)."""


def unreadable(key: str, entries: Sequence[StreamEntry], error: Exception, event_type: EventType,
               node: Any) -> UnreadableEntryError:
    """The error for ``entries`` of stream ``key`` that raised ``error`` while being decoded."""
    first, last = entries[0][0].decode(), entries[-1][0].decode()
    where = f"{key} entry {first}" if first == last else f"{key} entries {first}..{last}"
    kind = (UnsafeEntryError if isinstance(error, encoding.UnsafePickleError)
            else UnreadableEntryError)
    described = str(error) or type(error).__name__
    return kind(f"{where}: {described}", Event(event_type, node, None))


def id_ms(entry_id: bytes) -> int:
    """The millisecond part of a stream ID (``b"17-0"`` -> 17)."""
    return int(entry_id.split(b"-", 1)[0])


def new_node_names(entries: Sequence[StreamEntry]) -> dict[str, bytes]:
    """db_names registered by ``_children_list`` entries -> the ID of their last registration.

    Duplicates within one batch collapse (first position kept), as blissdata does; an entry that is
    not a NEW_NODE registration is skipped with a warning (blissdata would stop the walk).
    """
    names: dict[str, bytes] = {}
    for entry_id, fields in entries:
        db_name = fields.get(b"db_name")
        if fields.get(b"__EVENT__") != NEW_NODE or db_name is None:
            logger.warning("ignoring a children_list entry that is not NEW_NODE: %r", fields)
            continue
        names[db_name.decode()] = entry_id
    return names


def scan_event(entry: StreamEntry) -> tuple[EventType, EventData] | None:
    """PREPARED_SCAN / END_SCAN entry -> its event; None (and a warning) for anything else."""
    entry_id, fields = entry
    kind = fields.get(b"__EVENT__")
    if kind == PREPARED_SCAN:
        return EventType.PREPARED_SCAN, EventData(id_ms(entry_id), "PREPARED_SCAN", None)
    if kind == END_SCAN:
        exception = fields.get(b"__EXCEPTION__")
        description = None if exception is None else encoding.loads(exception)
        return EventType.END_SCAN, EventData(id_ms(entry_id), "END_SCAN", description)
    logger.warning("ignoring an unknown scan event %r", kind)
    return None


def npoints(fields: dict[bytes, bytes]) -> int:
    return int(fields[b"__NPOINTS__"])


def channel_data(entries: Sequence[StreamEntry]) -> EventData:
    """Merge consecutive ``_data`` entries into one block, as blissdata does.

    The points are stacked with the dtype of the first entry's description (ragged 1-D points are
    NaN-padded into a 2-D array); the description is the first entry's, with ``shape`` replaced by
    the merged points' shape. No entries: ``EventData(-1, [], None, 0)``.
    """
    if not entries:
        return EventData(first_index=-1, data=[], description=None, block_size=0)
    description = encoding.loads(entries[0][1][b"__DESC__"])
    dtype = description.get("dtype")
    pieces = [(npoints(fields), encoding.loads(fields[b"__DATA__"])) for _, fields in entries]
    data = _stack(pieces, dtype)
    description["shape"] = data.shape[1:]
    return EventData(
        first_index=id_ms(entries[0][0]) - 1,
        data=data,
        description=description,
        block_size=0 if data.size == 0 else len(data),
    )


def _stack(pieces: list[tuple[int, Any]], dtype: Any) -> numpy.ndarray:
    """One array of points from (npoints, point-or-block) pieces."""
    if all(isinstance(p, (numpy.ndarray, numpy.generic)) for _, p in pieces):
        try:  # fast path: no per-point Python objects for large blocks
            blocks = [numpy.asarray(p)[numpy.newaxis] if n == 1 else p for n, p in pieces]
            return numpy.asarray(numpy.concatenate(blocks), dtype=dtype)
        except ValueError:
            pass  # ragged points: fall back to padding below
    points: list[Any] = []
    for n, piece in pieces:
        if n == 1:
            points.append(piece)
        else:
            points.extend(piece)
    try:
        return numpy.asarray(points, dtype=dtype)
    except ValueError:
        padded = numpy.full((len(points), max(len(p) for p in points)), numpy.nan, dtype=dtype)
        for source, row in zip(points, padded):
            row[: len(source)] = source
        return padded
