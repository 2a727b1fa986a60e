"""``DataModel``: what ``tango_groups.scanning`` asks of a session's data model, and nothing more.

Scans, sequences and groups keep one implementation of Bliss's rules; where the two data models
differ, they ask ``session.model``, which the session picked from its ``data_format``:

* ``tango_groups.bliss1.model.Bliss1Model``: Bliss 1.x data nodes (``bliss1.writer``), scans
  referenced by node or by number of the scan-saving container, read back by ``bliss1.node``;
* ``tango_groups.bliss2.writer.Bliss2Writer``: blissdata 2.x scans, referenced by
  ``esrf:scan:...`` key or by number of the session's scans.

A model hands out writers answering ``ScanOut`` (a scan) and ``SequenceOut`` (a sequence); what
it cannot do raises ``ScanSequenceError`` with the message the user sees. This module imports no
model (the type names below are for type checking only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy

    from ..bliss1.channel import ChannelNode
    from ..bliss1.lookup import ScanFacts
    from ..bliss1.node import DataNode
    from ..data.channel import ChannelSpec
    from ..data.connection import Redis, RedisError

__all__ = ["ChannelOut", "DataModel", "PendingNumbers", "ScanOut",
           "ScanSequenceError", "SequenceOut",
           "WriterOut"]


class ScanSequenceError(RuntimeError):
    """A sequence or group could not be built as asked (Bliss's messages)."""


class ChannelOut(Protocol):
    """A channel being written: ``AcquisitionChannel.emit`` sends its points there."""

    def emit(self, data: Any) -> numpy.ndarray: ...


class WriterOut(Protocol):
    """What scans and sequences read of their writer, and the PREPARED step."""

    @property
    def db_name(self) -> str: ...
    @property
    def scan_nb(self) -> int: ...
    @property
    def info(self) -> Mapping[str, Any]: ...
    def prepared(self, scan_info: Mapping[str, Any]) -> None: ...


class ScanOut(WriterOut, Protocol):
    """What ``Scan.run`` calls on the writer of its scan."""

    def emit(self, points: Mapping[str, Any]) -> Mapping[str, numpy.ndarray]: ...
    def end(self, scan_info: Mapping[str, Any], state: str, exception: str = "") -> str: ...


class SequenceOut(WriterOut, Protocol):
    """What ``Sequence`` calls on the writer of its sequence; ``channels``: the custom channels
    (and, in 1.x, the reference channels) by fullname."""

    @property
    def channels(self) -> Mapping[str, Any]: ...
    @property
    def ended(self) -> bool: ...
    def publish_scan(self, db_name: str, scan_nb: int, ended: bool | None = None) -> None: ...
    def resync(self) -> dict[str, Any]:
        """Read again what Redis holds (a write whose answer was lost may have landed): the
        points beyond what this writer knew, by channel fullname, the references under
        ``scans`` (names, keys) and ``scan_numbers``; a writer of a sequence just reopened
        knew nothing."""
        ...
    def end(self, scan_info: Mapping[str, Any], state: str, exception: str = "",
            once: bool = False) -> str: ...


class PendingNumbers(Protocol):
    """Scan numbers followed until their scans are prepared (``bliss1.pending.NumberWatch``,
    ``bliss2.pending.NumberFollowers``)."""

    def follow(self, number: int, facts: ScanFacts | None = None) -> None: ...
    def restart(self, numbers: Iterable[int]) -> None: ...
    def stop(self) -> None: ...


class DataModel(Protocol):
    """A session's data model, as scans, sequences and groups use it (see the module docstring)."""

    def create_scan(self, name: str, info: Mapping[str, Any], channels: Sequence[ChannelNode],
                    *, save: bool = True, node_type: str = "scan") -> ScanOut:
        """A new scan (number allocated, channels declared)."""
        ...

    def sequence_channels(self, custom: Sequence[ChannelNode]) -> list[ChannelNode]:
        """The channels a sequence's ``scan_info`` describes, its custom channels given as
        top-level nodes (1.x adds GroupingMaster's)."""
        ...

    def create_sequence(self, name: str, info: Mapping[str, Any],
                        channels: Sequence[ChannelSpec]) -> SequenceOut:
        """A new sequence with custom channels ``channels``."""
        ...

    def member(self, scan: Any) -> tuple[Any, int]:
        """A scan that already ran, as ``Group`` takes it (not a ``Scan`` object), checked: what
        the sequence keeps of it (a node, a key) and its number."""
        ...

    def reference(self, scan: Any, scan_nb: int | None) -> tuple[str, int]:
        """The name and number a sequence references ``scan`` (``SequenceContext.add_node``) by;
        ``scan_nb`` when the caller read it already."""
        ...

    def node(self, db_name: str) -> DataNode | None:
        """The reader's node of scan ``db_name`` (None in a model without data nodes)."""
        ...

    def follow_numbers(self, watch_client: Redis, on_prepared: Callable[[ScanFacts], None],
                       on_error: Callable[[RedisError], None]) -> PendingNumbers:
        """What follows the numbers ``add_number`` adds; ``on_prepared`` gets the facts of each
        scan found PREPARED (``db_name``, ``number``, ``ended``, ``node(client)``)."""
        ...

    def running_sequence(self, db_name: str) -> dict[str, Any]:
        """The info of the sequence ``db_name`` another process left without END, checked
        (``ScanSequenceError`` when it is no such sequence, saying why)."""
        ...

    def attach_sequence(self, db_name: str, info: Mapping[str, Any],
                        channels: Sequence[ChannelSpec]) -> SequenceOut:
        """A writer of that sequence (``info``: what ``running_sequence`` read), with custom
        channels ``channels`` already in Redis."""
        ...

    def nodes(self, names: Sequence[str]) -> list[Any]:
        """What a sequence keeps of scans it found referenced in Redis (``Sequence.resync``)."""
        ...
