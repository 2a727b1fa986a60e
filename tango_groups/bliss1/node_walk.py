"""The walks of the reader: which streams to follow for which node, and what their entries yield.

A walk follows streams in rounds (``tango_groups.bliss1.streams``) and yields what blissdata yields,
in the same order. The ``{container}_children_list`` streams drive it: every registration read
there is looked up and followed in turn. The node kinds say the rest (``WalkedNode``): whether a
node has children, whether it is a scan, which of its streams carry events (a scan's
``_prepared`` and ``_end``, a channel's ``_data``) and how their entries become events. After a
yielded END_SCAN nothing more of that scan is read.

A walk asks Redis only for what the filter can yield: with an ``include_filter`` made of node
types, streams of nodes that cannot pass it are not read (channel data, scan events), and when
those types are all found above scans (``keys.ABOVE_SCAN_TYPES``) the subtrees of scans are not
followed at all -- Bliss never puts scans below scans -- so a session walk for scans costs one
registration read per container instead of one per device and channel.

``run`` is the one way in (every walk method of ``DataNode`` calls it). It starts reading the
children of every container at the beginning (``FIRST``), or after the current millisecond of the
server's clock (``NOW``, ``walk_on_new_events``), or just before the start node's most recent
registration (``LAST``, ``walk_from_last``); the last two first find every existing container
below the start node with SCAN, as blissdata does for a walk that does not start at the
beginning of the streams. The walk turns db_names into nodes through the start node's
``finder`` (``tango_groups.bliss1.node_lookup`` makes every node with one), so this module needs
no node class.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Generator, Iterator
from typing import Any, Protocol

import redis

from . import keys
from .events import Event, EventType, StreamEntry, UnreadableEntryError, new_node_names
from .streams import StreamReader, WalkIterator

__all__ = ["NodeFilter", "NodeFinder", "Start", "WalkedNode", "run"]

NodeFilter = None | str | Collection[Any] | Callable[[Any], bool]
_PRIORITIES = {keys.CHILDREN: 0, keys.PREPARED: 1, keys.DATA: 2, keys.END: 3}  # blissdata's


class NodeFinder(Protocol):
    """How nodes and walks find other nodes (``node_lookup`` gives every node it makes one)."""

    def nodes(self, client: redis.Redis, db_names: list[str], exists_only: bool = False
              ) -> list[Any]:
        """The nodes (None for a missing or unversioned one), one round trip."""

    def containers(self, client: redis.Redis, pattern: str) -> list[str]:
        """db_names of the containers whose ``_children_list`` key matches ``pattern``."""


class WalkedNode(Protocol):
    """What a walk needs of a node: the node kinds answer (``node_base``, ``node_scan``,
    ``node_channel``)."""

    db_name: str
    has_children: bool  # registers children in ``{db_name}_children_list``
    is_scan: bool  # nothing of ``keys.ABOVE_SCAN_TYPES`` is ever below it
    event_streams: tuple[str, ...]  # suffixes of the streams whose entries become events

    @property
    def type(self) -> str | None: ...

    @property
    def connection(self) -> redis.Redis: ...

    @property
    def finder(self) -> NodeFinder: ...

    def stream_events(self, key: str, entries: list[StreamEntry]
                      ) -> Iterator[Event | UnreadableEntryError]:
        """The events of entries read from ``key`` (one of ``event_streams``); an entry that
        cannot be decoded gives the ``UnreadableEntryError`` saying so instead."""


class Start(enum.Enum):
    """Where a walk starts reading the children of the containers it follows."""

    FIRST = enum.auto()  # at the beginning
    NOW = enum.auto()  # after the current millisecond of the server's clock
    LAST = enum.auto()  # at the start node's most recent registration; that one comes first


def run(start: WalkedNode, include_filter: NodeFilter, filter: NodeFilter,
        exclude_children: NodeFilter, wait: bool, *, events: bool, since: Start = Start.FIRST
        ) -> WalkIterator[Any]:
    """A walk from ``start``: nodes, or ``Event``s with ``events`` (see ``DataNode.walk``).

    ``filter`` is the alias of ``include_filter``: give one of them, not both.
    """
    if filter is not None:
        if include_filter is not None:
            raise ValueError("give include_filter or its alias filter, not both")
        include_filter = filter
    if since is Start.LAST:
        walk = _Walk(start, include_filter, exclude_children, events,
                     _before_last_registration(start))
        return WalkIterator(walk.reader, walk.from_last(wait))
    children_from = "0" if since is Start.FIRST else _now_id(start.connection)
    walk = _Walk(start, include_filter, exclude_children, events, children_from)
    walk.start(search=since is Start.NOW)
    return WalkIterator(walk.reader, (item for _, item in walk.items(wait)))


def _matches(node: WalkedNode, node_filter: NodeFilter, default: bool) -> bool:
    """blissdata's filter rule: callable(node), type equality, type membership, else default."""
    if callable(node_filter):
        return bool(node_filter(node))
    if isinstance(node_filter, str):
        return node.type == node_filter
    if node_filter:
        return node.type in node_filter
    return default


def _filter_types(node_filter: NodeFilter) -> frozenset[Any] | None:
    """The node types a filter accepts, when it is made of types (None: any node may match)."""
    if callable(node_filter) or not node_filter:
        return None
    if isinstance(node_filter, str):
        return frozenset({node_filter})
    return frozenset(node_filter)


def _id_key(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def _now_id(client: redis.Redis) -> str:
    """The position just before the current millisecond of the server's clock.

    A registration made later in this millisecond gets an ID ``{ms}-N``: reading from ``{ms}-0``
    (exclusive) would lose the one numbered ``{ms}-0`` for good.
    """
    seconds, microseconds = client.time()
    return f"{seconds * 1000 + microseconds // 1000 - 1}-{2**64 - 1}"


def _before_last_registration(node: WalkedNode) -> str:
    """The stream ID just before the node's last child registration (now when none)."""
    last = node.connection.xrevrange(node.db_name + keys.CHILDREN, count=1)
    if not last:
        return _now_id(node.connection)
    ms, seq = _id_key(last[0][0])
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-{2**64 - 1}"


def _event_type(item: Event | UnreadableEntryError) -> EventType:
    return item.event.type if isinstance(item, UnreadableEntryError) else item.type


class _Walk:
    """One walk: which streams to follow for which node, and what their entries yield."""

    def __init__(self, start: WalkedNode, include_filter: NodeFilter,
                 exclude_children: NodeFilter, events: bool, children_from: str) -> None:
        self.start_node = start
        self.finder = start.finder
        self.client = start.connection
        self.reader = StreamReader(self.client)
        self.include = include_filter
        self.exclude = exclude_children
        self.events = events
        self.children_from = children_from
        self.types = _filter_types(include_filter)
        # Only types found above scans can be yielded: no need to look inside scans.
        self.above_scans_only = self.types is not None and self.types <= keys.ABOVE_SCAN_TYPES

    def _subscribe(self, node: WalkedNode, suffix: str, position: str) -> None:
        self.reader.subscribe(node.db_name + suffix, _PRIORITIES[suffix], position,
                              (node, suffix))

    def _follows_children(self, node: WalkedNode) -> bool:
        return (node.has_children
                and not (self.above_scans_only and node.is_scan)
                and not _matches(node, self.exclude, False))

    def follow(self, node: WalkedNode) -> None:
        """Subscribe the streams of a node that can lead to something this walk yields."""
        if self._follows_children(node):
            self._subscribe(node, keys.CHILDREN, self.children_from)
        if not self.events or (self.types is not None and node.type not in self.types):
            return
        for suffix in node.event_streams:
            self._subscribe(node, suffix, "0")

    def start(self, search: bool) -> None:
        """Follow the start node; with ``search``, every existing container below it too
        (``children_list`` only), found with SCAN."""
        self.follow(self.start_node)
        if not search or not self._follows_children(self.start_node):
            return
        pattern = keys.glob_escape(self.start_node.db_name) + ":*" + keys.CHILDREN
        pruned: set[str] = set()
        found = self.finder.containers(self.client, pattern)
        for node in self.finder.nodes(self.client, found, exists_only=True):
            if node is None or any(a in pruned for a in keys.ancestors(node.db_name)):
                continue
            if self._follows_children(node):
                self._subscribe(node, keys.CHILDREN, self.children_from)
            else:
                pruned.add(node.db_name)

    def items(self, wait: bool) -> Iterator[tuple[bytes | None, Any]]:
        """(registration ID or None, node or Event) for everything the walk yields."""
        for batch in self.reader.rounds(wait):
            if batch[0][0].context[1] == keys.CHILDREN:
                yield from self._new_nodes(batch)
                continue
            for subscription, entries in batch:
                if not self.reader.is_subscribed(subscription):
                    continue  # an END_SCAN of this round ended it
                node = subscription.context[0]
                if self.reader.stopped or not _matches(node, self.include, True):
                    continue
                for item in node.stream_events(subscription.key, entries):
                    if self.reader.stopped:
                        break
                    yield None, item
                    if _event_type(item) is EventType.END_SCAN:  # readable or not, it ends
                        self.reader.unsubscribe_prefix(node.db_name)

    def from_last(self, wait: bool) -> Generator[Any, None, None]:
        """The most recent registration that passes the filter, then what comes next."""
        self.start(search=True)
        last: tuple[tuple[int, int], Any] | None = None
        for entry_id, node in self.items(wait=False):
            if last is None or _id_key(entry_id) >= last[0]:
                last = (_id_key(entry_id), node)
        if last is not None:
            yield last[1]
        yield from (node for _, node in self.items(wait))

    def _new_nodes(self, batch: list) -> Iterator[tuple[bytes | None, Any]]:
        registered = [new_node_names(entries) for _, entries in batch]
        names = list(dict.fromkeys(name for names in registered for name in names))
        nodes = dict(zip(names, self.finder.nodes(self.client, names)))
        for names in registered:
            for db_name, entry_id in names.items():
                node = nodes[db_name]
                if node is None:
                    continue  # not (yet) versioned: dropped for good, as blissdata does
                self.follow(node)
                if _matches(node, self.include, True) and not self.reader.stopped:
                    yield entry_id, (Event(EventType.NEW_NODE, node) if self.events else node)
