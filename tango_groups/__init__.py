"""tango_groups: groups and sequences of scans in the Bliss 1.x Redis data-node format.

``tango_groups.data`` writes and reads the wire format, ``tango_groups.scanning`` offers the
Bliss-shaped API (Sequence, Group, scans), ``tango_groups.session`` the session these write to, and
the ``SequenceManager`` Tango device (``tango_groups.devices``) serves it all to Tango clients.
"""

from .session import Session, current_session

__all__ = ["Session", "current_session"]
__version__ = "0.1.0"
