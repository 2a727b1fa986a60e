"""tango_groups: groups and sequences of scans in the Bliss 1.x Redis data-node format.

``tango_groups.bliss1`` and ``tango_groups.bliss2`` write and read the wire formats (what both
share is in ``tango_groups.data``), ``tango_groups.scanning`` offers the Bliss-shaped API
(Sequence, Group, scans), ``tango_groups.session`` the session these write to, and the
``SequenceManager`` Tango device (``tango_groups.devices``) serves it all to Tango clients.

``Session`` and ``current_session`` are imported on first use, so that importing the package costs
nothing.
"""

from typing import Any

__all__ = ["Session", "current_session"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import session

        return getattr(session, name)
    raise AttributeError(f"module 'tango_groups' has no attribute {name!r}")
