"""The SequenceManager as its clients see it: the names of its attributes, defined once, and the
value an event of them carries.

``Attribute`` names every attribute the device pushes besides State, Status and the channel
attributes: the device declares and pushes them by these names, the panel (``tango_groups.gui``)
and the tests subscribe by them. This module imports no part of the device server, so a client
imports it without the server's dependencies.

``event_value``: the device pushes an empty numeric spectrum or image (``ScanNumbers`` and
``PendingScans`` of a new sequence, a channel attribute without points) as an ``ATTR_INVALID``
event without data, because cppTango's event consumer misreads empty numeric arrays (see
``tango_groups.devices.attributes``). ``event_value`` turns such an event back into the empty
array a read of the attribute returns; any other value is returned as it came.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy
from tango import AttrDataFormat, AttrQuality, DeviceAttribute
from tango.utils import FROM_TANGO_TO_NUMPY_TYPE

__all__ = ["ATTRIBUTES", "RESERVED_NAMES", "Attribute", "event_value"]


class Attribute(enum.StrEnum):
    """The device's pushed attributes (each is its Tango name)."""

    SEQUENCE_NAME = "SequenceName"
    SEQUENCE_NUMBER = "SequenceNumber"
    TITLE = "Title"
    SEQUENCE_STATE = "SequenceState"
    SCAN_NUMBERS = "ScanNumbers"
    SCAN_NAMES = "ScanNames"
    SCAN_COUNT = "ScanCount"
    PENDING_SCANS = "PendingScans"
    CHANNEL_NAMES = "ChannelNames"
    SCAN_KEY = "ScanKey"
    SCAN_INFO = "ScanInfo"


ATTRIBUTES: tuple[str, ...] = tuple(attribute.value for attribute in Attribute)
# what a custom channel may not be called (its attribute would clash; Tango names ignore case)
RESERVED_NAMES = frozenset(name.lower() for name in (*ATTRIBUTES, "State", "Status"))


def event_value(value: DeviceAttribute) -> Any:
    """The value of an event's (or a read's) ``attr_value``: an empty array for an array
    attribute sent without data as ``ATTR_INVALID``."""
    if (value.value is None and value.quality == AttrQuality.ATTR_INVALID
            and value.data_format != AttrDataFormat.SCALAR):
        shape = (0, 0) if value.data_format == AttrDataFormat.IMAGE else (0,)
        return numpy.empty(shape, dtype=FROM_TANGO_TO_NUMPY_TYPE.get(value.type, numpy.float64))
    return value.value
