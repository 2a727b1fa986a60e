"""Scans and sequences (groups of scans): containers with a PREPARED and an END stream.

``{scan}_prepared`` holds one PREPARED_SCAN entry, ``{scan}_end`` one END_SCAN entry (with the
pickled exception text); a walk for events follows both and turns each entry into its event
(``tango_groups.bliss1.events.scan_event``). An entry that cannot be decoded gives the
``UnreadableEntryError`` of the event it would have been; an unreadable END still ends its scan.
"""

from __future__ import annotations

from collections.abc import Iterator

from . import keys
from .events import Event, EventType, StreamEntry, UnreadableEntryError, scan_event, unreadable
from .node_base import DataNodeContainer

__all__ = ["GroupScanNode", "ScanNode"]


class ScanNode(DataNodeContainer):
    """A scan (``scan``): a container with PREPARED and END events."""

    is_scan = True
    event_streams = (keys.PREPARED, keys.END)

    def stream_events(self, key: str, entries: list[StreamEntry]
                      ) -> Iterator[Event | UnreadableEntryError]:
        """PREPARED_SCAN / END_SCAN, one per entry (entries of another kind are skipped)."""
        for entry in entries:
            try:
                decoded = scan_event(entry)
            except Exception as error:  # noqa: BLE001 (bad data in Redis: an error for this event)
                kind = EventType.END_SCAN if key.endswith(keys.END) else EventType.PREPARED_SCAN
                yield unreadable(key, [entry], error, kind, self)
                continue
            if decoded is not None:
                yield Event(decoded[0], self, decoded[1])


class GroupScanNode(ScanNode):
    """A sequence or group of scans (``scan_group``); its sub-scans are siblings, referenced by
    its ``GroupingMaster:scans`` channel."""
