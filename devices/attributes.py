"""The SequenceManager's attributes as Tango declares them: ``pushed`` makes a read-only attribute
that shows the value the device kept from the manager's last notification and is pushed with
change events; ``json_value`` is how the JSON attributes (``ScanInfo``) write numpy values.
"""

from __future__ import annotations

from typing import Any

import numpy
from tango import AttrWriteType
from tango.server import attribute

__all__ = ["MAX_SCANS", "json_value", "pushed"]

MAX_SCANS = 1_000_000  # max_dim_x of the scan spectra: far beyond any sequence


def json_value(value: Any) -> Any:
    """What ``json.dumps`` writes for a value it does not know: arrays as lists, else text."""
    if isinstance(value, (numpy.ndarray, numpy.generic)):
        return value.tolist()
    return str(value)


def pushed(name: str, **kwargs: Any) -> attribute:
    """A read-only attribute showing the value ``name`` the manager notified last, pushed by the
    device with change events (detect off: every push is an event)."""
    return attribute(name=name, access=AttrWriteType.READ, change_event_implemented=True,
                     change_event_detect=False, fget=lambda device: device._values[name],
                     fisallowed=lambda device, request: device.manager is not None, **kwargs)
