"""``Bliss1Model``: the Bliss 1.x data model of a session (``tango_groups.scanning.model``).

Scans are ``scan`` nodes and sequences ``scan_group`` nodes (``writer``) in the session's
scan-saving container, created on demand; a scan is referenced by its node or by its number in
that container (``lookup``), read back as a reader's node (``node``), and a number not prepared
yet is followed until it is (``pending``). A sequence another process left running can be
reopened here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..data.channel import ChannelSpec
from ..data.connection import Redis, RedisError
from ..scanning.model import ScanSequenceError
from . import encoding, keys, lookup
from .channel import ChannelNode
from .node import DataNode, ScanNode, get_node, get_nodes
from .pending import NumberWatch
from .writer import DataWriter, Expiration, GroupWriter, ScanWriter

__all__ = ["Bliss1Model", "scan_facts"]

RUNNING_STATES = ("PREPARING", "STARTING")  # a sequence without END in these can be reopened


def scan_facts(client: Redis, container: str, scan: int | ScanNode) -> lookup.ScanFacts:
    """The facts of a scan given by number (in ``container``) or node; ``ScanSequenceError`` when
    it is not a readable scan."""
    try:
        if isinstance(scan, ScanNode):
            facts = lookup.scan_facts(scan.connection, scan.db_name)
        else:
            facts = lookup.find_scan(client, container, scan)
            if facts is None:
                raise ScanSequenceError(f"Scan number '{scan}' not found")
    except lookup.UnreadableScan as error:
        raise ScanSequenceError(f"Scan {scan} cannot be added: {error}") from None
    if facts is None or not facts.is_scan:
        raise ScanSequenceError("Only scans can be added to group")
    return facts


class Bliss1Model:
    """Session ``name``'s scans under ``base_path`` in the data Redis of ``client``."""

    def __init__(self, client: Redis, name: str, base_path: str,
                 expiration: Expiration | None = None) -> None:
        self.client = client
        self.writer = DataWriter(client, expiration or Expiration())
        self.parts = keys.scan_saving_parts(name, base_path)

    @property
    def scan_saving_db_name(self) -> str:
        """db_name of the container scans are written to (no Redis access: for reading)."""
        return ":".join(self.parts)

    @property
    def scan_saving_parent(self) -> str:
        """``scan_saving_db_name``, its containers created when missing (one round trip)."""
        return self.writer.ensure_containers(self.parts)

    def create_scan(self, name: str, info: Mapping[str, Any], channels: Sequence[ChannelNode],
                    *, save: bool = True, node_type: str = "scan") -> ScanWriter:
        """A ``scan`` node (a shadow ``_N_ct`` one when not ``save``d)."""
        return self.writer.create_scan(self.scan_saving_parent, name, info, shadow=not save,
                                       channels=channels, node_type=node_type)

    def sequence_channels(self, custom: Sequence[ChannelNode]) -> list[ChannelNode]:
        """GroupingMaster's ``scans`` and ``scan_numbers``, then the custom channels below it."""
        return GroupWriter.channel_specs([channel.spec for channel in custom])

    def create_sequence(self, name: str, info: Mapping[str, Any],
                        channels: Sequence[ChannelSpec]) -> GroupWriter:
        """A ``scan_group`` node with GroupingMaster's channels and ``channels``."""
        writer = self.writer.create_scan(self.scan_saving_parent, name, info,
                                         node_type="scan_group",
                                         channels=GroupWriter.channel_specs(channels),
                                         writer_class=GroupWriter)
        assert isinstance(writer, GroupWriter)
        return writer

    def member(self, scan: Any) -> tuple[DataNode, int]:
        """A scan node, or a number of the scan-saving container: (its node, its number)."""
        if not isinstance(scan, ScanNode) and (isinstance(scan, bool)
                                               or not isinstance(scan, int)):
            raise ScanSequenceError(f"Invalid argument: no scan node corresponds to {scan}")
        facts = scan_facts(self.client, self.scan_saving_db_name, scan)
        return facts.node(scan.connection if isinstance(scan, ScanNode) else self.client
                          ), facts.number

    def reference(self, scan: Any, scan_nb: int | None) -> tuple[str, int]:
        """A scan node: (its db_name, its number)."""
        if not isinstance(scan, ScanNode) or scan.type not in keys.SCAN_TYPES:
            raise ScanSequenceError("Only scans can be added to group")
        return scan.db_name, int(scan.info["scan_nb"]) if scan_nb is None else scan_nb

    def node(self, db_name: str) -> DataNode | None:
        return get_node(db_name, connection=self.client)

    def nodes(self, names: Sequence[str]) -> list[Any]:
        return [node for node in get_nodes(*names, connection=self.client) if node]

    def follow_numbers(self, watch_client: Redis, on_prepared: Callable[[lookup.ScanFacts], None],
                       on_error: Callable[[RedisError], None]) -> NumberWatch:
        """A ``NumberWatch`` of the scan-saving container."""
        return NumberWatch(self.client, watch_client, lambda: self.scan_saving_parent,
                           on_prepared, on_error)

    def running_sequence(self, db_name: str) -> dict[str, Any]:
        node = get_node(db_name, connection=self.client)
        if node is None or node.type != "scan_group":
            raise ScanSequenceError(f"{db_name} is not a sequence in Redis")
        try:
            info = node.info.get_all()
        except (encoding.UnsafePickleError, ValueError) as error:
            raise ScanSequenceError(f"{db_name}: {error}") from None
        state = info.get("state")
        facts = lookup.scan_facts(self.client, db_name) if state in RUNNING_STATES else None
        if facts is None or facts.ended:  # None: its node vanished meanwhile
            raise ScanSequenceError(f"{db_name} has ended (state {state})")
        return info

    def attach_sequence(self, db_name: str, info: Mapping[str, Any],
                        channels: Sequence[ChannelSpec]) -> GroupWriter:
        group = GroupWriter(self.writer, db_name, info)
        group.attach_channels(GroupWriter.channel_specs(channels))
        return group
