"""Channels: points in a ``{channel}_data`` stream, read by position and walked as NEW_DATA.

Each entry of ``{channel}_data`` holds one point or a block of points (see
``tango_groups.bliss1.events`` for the fields); its ID is ``{index of its first point + 1}-0``, so
``len(channel)`` is one read of the last entry and ``channel.get(from, to)`` one range read (plus
the entry holding point ``from``, which may start earlier). A walk for events follows the stream
and merges the entries of one round into one NEW_DATA event (``events.channel_data``).

A ``NodeRefChannel`` (a sequence's ``scans``) stores db_names and reads them back as nodes,
found through its ``finder`` in one round trip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy
import redis

from . import keys
from .events import (
    Event,
    EventData,
    EventType,
    StreamEntry,
    UnreadableEntryError,
    channel_data,
    id_ms,
    npoints,
    unreadable,
)
from .node_base import DataNode

__all__ = ["ChannelDataNode", "NodeRefChannel"]


def _info_field(field: str) -> property:
    """A read-only property: ``info[field]`` of the node, None when absent."""
    return property(lambda node: node.info.get(field), doc=f"``info[{field!r}]`` (None if absent)")


class ChannelDataNode(DataNode):
    """A channel: points in ``{db_name}_data``, indexed by position (entry ID = first index + 1).
    """

    event_streams = (keys.DATA,)

    @property
    def _data_key(self) -> str:
        return self.db_name + keys.DATA

    shape = _info_field("shape")
    dtype = _info_field("dtype")
    unit = _info_field("unit")
    fullname = _info_field("fullname")

    @property
    def short_name(self) -> str:
        return str(self.name).rpartition(":")[2]

    def __len__(self) -> int:
        last = self._client.xrevrange(self._data_key, count=1)
        if not last:
            return 0
        entry_id, fields = last[0]
        return id_ms(entry_id) - 1 + npoints(fields)

    def get(self, from_index: int | None, to_index: int | None = None) -> Any:
        """One point or a slice, with blissdata's semantics.

        ``to_index`` None: the point at ``from_index`` (the last one if negative), None when there
        is none. ``to_index >= 0``: points ``from_index..to_index`` inclusive; negative: up to the
        end. A slice of an empty channel from 0 to the end is ``[]``. ``IndexError`` when the start
        of a slice is no longer in Redis (trimmed), except for ``get(0, -1)``.
        """
        if from_index is None:
            from_index = 0
        if to_index is None:
            if from_index < 0:
                entries = self._client.xrevrange(self._data_key, count=1)
            else:
                entries = self._covering_range(from_index + 1, from_index + 1)
            points = self._points(entries, from_index, from_index, single=True)
            return self._values(points[-1:])[0] if len(points) else None
        from_index = max(from_index, 0)
        if from_index == 0 and to_index < 0:
            entries = self._client.xrange(self._data_key, min=1)
        else:
            entries = self._covering_range(from_index + 1, to_index + 1 if to_index >= 0 else None)
        return self._values(self._points(entries, from_index, to_index, single=False))

    def __getitem__(self, index: int | slice) -> Any:
        """``node[i]`` (IndexError when there is no point there: out of range, trimmed, or a
        reference to a missing node), ``node[a:b]`` (stride 1), ``node[...]``."""
        if isinstance(index, slice):
            if index.step not in (None, 1):
                raise IndexError("Stride not supported")
            size = len(self)
            start = 0 if index.start is None else index.start + (size if index.start < 0 else 0)
            stop = size if index.stop is None else index.stop + (size if index.stop < 0 else 0)
            if start > stop:
                raise IndexError("Reverse order not supported")
            if start == stop:
                return numpy.array([])  # as blissdata, also for reference channels
            return self.get(start, stop - 1)
        if index is Ellipsis:
            return self.get(0, -1)
        position = int(index)
        if position < 0:
            position += len(self)
            if position < 0:
                raise IndexError("index out of range")
        value = self.get(position)
        if value is None:  # out of range, trimmed away, or a reference to a missing node
            raise IndexError("index out of range")
        return value

    def _covering_range(self, first_id: int, last_id: int | None) -> list[StreamEntry]:
        """Entries from the one holding point ``first_id - 1`` to ID ``last_id`` (None: the end).

        One round trip: the entries of the range plus the last entry at or before its start (or
        before ``last_id`` when that is smaller), which is prepended when it starts earlier.
        """
        anchor = first_id if last_id is None else min(first_id, last_id)
        with self._client.pipeline(transaction=False) as pipe:
            pipe.xrevrange(self._data_key, max=anchor, min="-", count=1)
            pipe.xrange(self._data_key, min=first_id, max="+" if last_id is None else last_id)
            before, entries = pipe.execute()
        if before and (not entries or before[0][0] != entries[0][0]):
            return before + entries
        return entries

    def _points(self, entries: list[StreamEntry], from_index: int, to_index: int,
                single: bool) -> Any:
        """The requested points out of the merged entries (blissdata's bounds rules)."""
        merged = channel_data(entries)
        data, first = merged.data, merged.first_index
        allow_lower = (to_index < 0 and from_index == 0) or single
        if (from_index < first or first < 0) and not allow_lower:
            raise IndexError(f"Data is not anymore available first_index:{first} "
                             f"request_index:{from_index}")
        start = max(from_index - first, 0)
        stop = len(data) if to_index < 0 else min(start + to_index - from_index + 1, len(data))
        return data if stop - start == len(data) else data[start:stop]

    def _values(self, points: Any) -> Any:
        """What ``get`` returns for decoded points (the points themselves)."""
        return points

    def stream_events(self, key: str, entries: list[StreamEntry]
                      ) -> Iterator[Event | UnreadableEntryError]:
        """One NEW_DATA event for the entries (merged), or the error saying they cannot be
        decoded."""
        try:
            data = self._event_data(entries)
        except redis.RedisError:
            raise
        except Exception as error:  # noqa: BLE001 (bad data in Redis: an error for this event)
            yield unreadable(key, entries, error, EventType.NEW_DATA, self)
            return
        yield Event(EventType.NEW_DATA, self, data)

    def _event_data(self, entries: list[StreamEntry]) -> EventData:
        return channel_data(entries)


class NodeRefChannel(ChannelDataNode):
    """A channel of node references (a sequence's ``scans``): points are db_names, read back as
    nodes (None for a node that no longer exists or has no version)."""

    def _values(self, points: Any) -> list[DataNode | None]:
        return self._find([str(db_name) for db_name in points])

    def _event_data(self, entries: list[StreamEntry]) -> EventData:
        merged = channel_data(entries)
        return merged._replace(data=self._values(merged.data))
