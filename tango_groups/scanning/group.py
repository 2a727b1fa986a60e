"""Groups of scans (Bliss's ``bliss.scanning.group``): bundles of scans that already ran.

``Group(*scans)`` bundles scans that already ran (Scan objects, scan nodes or scan numbers of
the session's scan-saving container) into a ``scan_group`` node written at once, then ended (in a
bliss2 session: Scan objects, ``esrf:scan:...`` keys or numbers of the session's scans, in a
sequence scan closed at once)::

    Group(s1, s2.node, 57, title="calibration")

The live counterpart, ``Sequence``, lives in ``tango_groups.scanning.sequence`` and is importable
from here too, as from Bliss's module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..bliss1.model import scan_facts
from ..bliss1.node import ScanNode
from ..session import Session
from .scan import Scan, ScanState
from .sequence import ScanSequenceError, Sequence, SequenceContext, scans_not_finished

__all__ = [
    "Group",
    "ScanSequenceError",
    "Sequence",
    "SequenceContext",
    "find_scan_node",
    "scans_not_finished",
]


def find_scan_node(session: Session, scan_number: int) -> ScanNode:
    """The scan node numbered ``scan_number`` in the session's scan-saving container.

    As in Bliss: only nodes of type ``scan`` are candidates (not groups); expired scans are not
    found; a shadow scan (``_N_ct``) with that number matches too. Raises ``ScanSequenceError``
    when there is none, or when its info cannot be read safely.
    """
    return scan_facts(session.client, session.scan_saving_db_name, scan_number
                      ).node(session.client)


class Group(Sequence):
    """Bundle scans that already ran: ``Group(s1, s2)``, ``Group(node)``, ``Group(55, 56)``.

    Every argument is checked before anything is written: a refused group leaves nothing in
    Redis (and a group that fails half-way because Redis went away is ended as KILLED)."""

    default_title = "group_of_scans"

    def __init__(self, *scans: Any, title: str | None = None,
                 scan_info: Mapping[str, Any] | None = None, session: Session | None = None
                 ) -> None:
        super().__init__(scan_info=scan_info, title=title, session=session)
        members = [self._member(scan) for scan in scans]
        with self.sequence_context() as context:
            for scan, number in members:
                if isinstance(scan, Scan):
                    context.add(scan)
                else:
                    context.add_node(scan, number)

    def _member(self, scan: Any) -> tuple[Any, int | None]:
        """A scan to group, checked: (Scan object, None) or, for a scan the session's model
        references (a node or a number in bliss1, a key or a number in bliss2), (what the
        sequence keeps of it, its number)."""
        if isinstance(scan, Scan):
            if scan.state < ScanState.STARTING:
                raise ScanSequenceError(
                    "Only scans that have been run before can be added to group")
            return scan, None
        return self.session.model.member(scan)
