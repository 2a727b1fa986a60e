"""Finding scans to reference: by db_name or by number, read safely, in few round trips.

A service adds scans that other programs wrote into a shared Redis, so nothing about them is
trusted: ``scan_facts`` reads what a sequence needs of a node (type, number, state, whether it has
published PREPARED and END) in one round trip, and a node whose info the allow-list refuses, or
that lacks a usable ``scan_nb``, raises ``UnreadableScan`` naming the field and the reason.

Numbers are found the way Bliss finds them (only ``scan`` nodes of the scan-saving container,
shadow scans ``_N_name`` included) but from the newest registration backwards in the container's
``_children_list``, so the cost grows with the scans registered *after* the one asked for, never
with the size of the container or of Redis (``scripts.SEARCH_NUMBER``: one round trip, the facts
of the candidates included). ``search_number`` and ``allocated_number`` tell a
number that is not registered *yet* (allocated by HINCRBY, its node still being written, maybe
after later numbers: the caller waits for it) from one that expired or will never be.
"""

from __future__ import annotations

import dataclasses

import redis

from . import encoding, keys, scripts
from .node_base import DataNode
from .node_lookup import make_node

__all__ = [
    "NumberSearch",
    "ScanFacts",
    "UnreadableScan",
    "allocated_number",
    "find_scan",
    "scan_facts",
    "search_number",
]

_PAGE = 64  # registrations read per round trip, newest first
# registrations are in allocation order except for scans created concurrently, whose
# registrations may cross: once this many registrations in a row are older than the number asked
# for, it is not among the older ones; once this many higher numbers registered, a number not
# registered yet never will be (that many concurrent scan creations in one container do not
# happen)
_REORDER_WINDOW = 64


class UnreadableScan(Exception):
    """A scan node exists but cannot be referenced: its info is refused or incomplete."""


@dataclasses.dataclass(frozen=True)
class ScanFacts:
    """What a sequence needs to know about a node before referencing it."""

    db_name: str
    node_type: str
    number: int  # scan_nb (0 for nodes that are not scans)
    state: str | None  # the Bliss state name stored in its info, when there is one
    prepared: bool  # has published PREPARED_SCAN (Bliss references scans from then on)
    ended: bool  # has published END_SCAN

    @property
    def is_scan(self) -> bool:
        return self.node_type in keys.SCAN_TYPES

    def node(self, client: redis.Redis) -> DataNode:
        """The reader's node for these facts (no further round trip)."""
        return make_node(client, self.db_name, self.node_type)


def _decode(db_name: str, field: str, raw: bytes | None) -> object:
    if raw is None:
        return None
    try:
        return encoding.loads(raw)
    except Exception as error:  # a refused pickle, or bytes that are no pickle
        raise UnreadableScan(f"{db_name}: info field {field!r} cannot be read safely "
                             f"({type(error).__name__}: {error})") from error


def _queue_facts(pipe: redis.client.Pipeline, db_name: str) -> None:
    pipe.hmget(db_name, "node_type", "version")
    pipe.hmget(db_name + keys.INFO, "scan_nb", "state")
    pipe.xlen(db_name + keys.PREPARED)
    pipe.xlen(db_name + keys.END)


def _facts(db_name: str, replies: list) -> ScanFacts | None:
    (node_type, version), (raw_number, raw_state), prepared, ended = replies
    if node_type is None or not keys.is_supported_version(version):
        return None
    node_type = node_type.decode(errors="replace")
    if node_type not in keys.SCAN_TYPES:
        return ScanFacts(db_name, node_type, 0, None, False, False)
    number = _decode(db_name, "scan_nb", raw_number)
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise UnreadableScan(f"{db_name}: info field 'scan_nb' is {number!r}, not a scan number")
    state = _decode(db_name, "state", raw_state)
    if state is not None and not isinstance(state, str):
        raise UnreadableScan(f"{db_name}: info field 'state' is {state!r}, not a state name")
    return ScanFacts(db_name, node_type, number, state, bool(prepared), bool(ended))


def scan_facts(client: redis.Redis, db_name: str) -> ScanFacts | None:
    """The facts of node ``db_name`` (None when it does not exist or has no v1 struct)."""
    with client.pipeline(transaction=False) as pipe:
        _queue_facts(pipe, db_name)
        return _facts(db_name, pipe.execute())


@dataclasses.dataclass(frozen=True)
class NumberSearch:
    """What the registrations of a container say about a scan number."""

    facts: ScanFacts | None  # its ``scan`` node, when there is one
    registered: bool  # a node with that number was registered (it may have expired since)
    settled: bool  # so many higher numbers registered since that it can no longer register


def search_number(client: redis.Redis, container: str, number: int) -> NumberSearch:
    """Look for the ``scan`` node numbered ``number`` in ``container``, reading the
    registrations newer than it and a window of older ones (registrations of scans created
    concurrently may cross), and the facts of the candidates: one round trip (a script)."""
    with client.pipeline(transaction=False) as pipe:
        scripts.run(pipe, scripts.SEARCH_NUMBER, args=[container, number, _REORDER_WINDOW, _PAGE])
        higher, *found = pipe.execute()[0]
    settled = higher >= _REORDER_WINDOW
    for index in range(0, len(found), 5):
        db_name = found[index].decode(errors="replace")
        facts = _facts(db_name, found[index + 1: index + 5])
        if facts is not None and facts.node_type == "scan" and facts.number == number:
            return NumberSearch(facts, True, settled)
    return NumberSearch(None, bool(found), settled)


def find_scan(client: redis.Redis, container: str, number: int) -> ScanFacts | None:
    """The ``scan`` node numbered ``number`` in ``container`` (None when there is none: not
    registered yet, expired, or never)."""
    return search_number(client, container, number).facts


def allocated_number(client: redis.Redis, container: str) -> int:
    """The last scan number allocated in ``container`` (Bliss's HINCRBY counter; 0 when none)."""
    return int(client.hget(container, keys.SCAN_COUNTER) or 0)
