"""What a Tango client of the SequenceManager needs beyond pytango: the value an event carries.

The device pushes an empty numeric spectrum or image (``ScanNumbers`` and ``PendingScans`` of a
new sequence, a channel attribute without points) as an ``ATTR_INVALID`` event without data,
because cppTango's event consumer misreads empty numeric arrays (see
``tango_groups.devices.attributes``). ``event_value`` turns such an event back into the empty
array a read of the attribute returns; any other value is returned as it came.
"""

from __future__ import annotations

from typing import Any

import numpy
from tango import AttrDataFormat, AttrQuality, DeviceAttribute
from tango.utils import FROM_TANGO_TO_NUMPY_TYPE

__all__ = ["event_value"]


def event_value(value: DeviceAttribute) -> Any:
    """The value of an event's (or a read's) ``attr_value``: an empty array for an array
    attribute sent without data as ``ATTR_INVALID``."""
    if (value.value is None and value.quality == AttrQuality.ATTR_INVALID
            and value.data_format != AttrDataFormat.SCALAR):
        shape = (0, 0) if value.data_format == AttrDataFormat.IMAGE else (0,)
        return numpy.empty(shape, dtype=FROM_TANGO_TO_NUMPY_TYPE.get(value.type, numpy.float64))
    return value.value
