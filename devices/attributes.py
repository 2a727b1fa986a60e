"""The SequenceManager's attributes as Tango declares them: ``pushed`` makes a read-only attribute
that shows the value the device kept from the service's last notification and is pushed with
change events (``push_change``); ``json_value`` is how the JSON attributes (``ScanInfo``) write
numpy values.

Empty numeric arrays are never sent as event data. cppTango's ZMQ event consumer (the client
side, 9.x to 10.3 at least: ``ZmqAttrValUnion::operator<<=`` returns as soon as it reads a length
of 0, before it sets the union) hands ``attr_to_device`` a union it never initialised, and the
subscribed client reads whatever that memory holds: SIGSEGV or SIGBUS in
``EventConsumer::attr_to_device`` depending on its heap (an empty ``ScanNumbers`` after ``Start``
killed clients that held a redis-py pool). So an empty numeric spectrum or image is pushed the
way Tango says "no value": quality ``ATTR_INVALID`` and no data, which the consumer decodes safely.
A read of the attribute still returns the empty array (reads go through CORBA, not that code);
``interface.event_value`` gives clients the empty array back from such an event.
"""

from __future__ import annotations

import time
from typing import Any

import numpy
from tango import AttrQuality, AttrWriteType
from tango.server import Device, attribute

__all__ = ["MAX_SCANS", "json_value", "push_change", "pushed"]

MAX_SCANS = 1_000_000  # max_dim_x of the scan spectra: far beyond any sequence


def json_value(value: Any) -> Any:
    """What ``json.dumps`` writes for a value it does not know: arrays as lists, else text."""
    if isinstance(value, (numpy.ndarray, numpy.generic)):
        return value.tolist()
    return str(value)


def pushed(name: str, **kwargs: Any) -> attribute:
    """A read-only attribute showing the value ``name`` the service notified last, pushed by the
    device with change events (detect off: every push is an event)."""
    return attribute(name=str(name), access=AttrWriteType.READ, change_event_implemented=True,
                     change_event_detect=False, fget=lambda device: device._values[name],
                     fisallowed=lambda device, request: device.service is not None, **kwargs)


def push_change(device: Device, name: str, value: Any) -> None:
    """Push a change event of ``name`` with ``value``; an empty numeric array goes out as an
    ``ATTR_INVALID`` event without data (see the module docstring)."""
    if isinstance(value, numpy.ndarray) and value.size == 0 and value.dtype.kind in "biuf":
        device.push_change_event(str(name), value, time.time(), AttrQuality.ATTR_INVALID)
    else:
        device.push_change_event(str(name), value)
