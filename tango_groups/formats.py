"""The data models ``tango_groups`` writes, named once: ``DataFormat``.

``bliss1`` is Bliss 1.x data nodes (read by blissdata 0.3), ``bliss2`` blissdata 2.x scans,
``both`` one sequence in each (a device only: a ``Session`` writes one model,
``SESSION_FORMATS``).
"""

from __future__ import annotations

import enum

__all__ = ["SESSION_FORMATS", "DataFormat"]


class DataFormat(enum.StrEnum):
    BLISS1 = "bliss1"
    BLISS2 = "bliss2"
    BOTH = "both"


SESSION_FORMATS = (DataFormat.BLISS1, DataFormat.BLISS2)
