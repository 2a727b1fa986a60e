"""Reading Bliss 1.x data nodes (blissdata 0.3.x semantics): lookup, node classes, data, walks.

Where each encoding of ``tango_groups.data.keys`` is read:

* the struct ``{db_name}`` gives ``name`` (auto-coerced: ``"0001"`` reads as 1), ``node_type``
  (kept as the stored text, so Bliss device containers have type ``"None"``), ``version`` and
  ``parent``. A node is visible only with a ``v1.x`` version: ``get_node`` returns None otherwise
  and walks drop its registration;
* ``{db_name}_info`` is ``node.info``, a lazy mapping unpickling each value through the allow-list
  of ``encoding.loads``;
* ``{channel}_data`` gives ``len(channel)``, ``channel.get(from, to)`` and NEW_DATA events
  (``tango_groups.data.events`` merges the entries);
* ``{container}_children_list``, ``{scan}_prepared`` and ``{scan}_end`` drive the walks.

Node classes by ``node_type``: ``scan`` -> ``ScanNode``, ``scan_group`` -> ``GroupScanNode``,
``channel`` -> ``ChannelDataNode``, ``node_ref_channel`` -> ``NodeRefChannel``, anything else
(``container``, ``None``, unknown types) -> ``DataNodeContainer``.

Walks follow streams in rounds (``tango_groups.data.streams``) and yield what blissdata yields, in
the same order. They ask Redis only for what the filter can yield: with an ``include_filter`` made
of node types, streams of nodes that cannot pass it are not read (channel data, scan events), and
when those types are all found above scans (``keys.ABOVE_SCAN_TYPES``) the subtrees of scans are
not followed at all -- Bliss never puts scans below scans -- so a session walk for scans costs one
registration read per container instead of one per device and channel.

Every entry point takes ``connection=`` (a redis client or a ``redis://`` URL, logical db 1 when
the URL names none); without it the default set by ``set_default_connection`` is used (a
``Session`` sets it in ``setup()``). Nodes keep the client they were read with.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Generator, Iterator, Mapping
from typing import Any

import numpy
import redis

from . import encoding, keys
from .connection import connect
from .events import (
    Event,
    EventData,
    EventType,
    StreamEntry,
    channel_data,
    id_ms,
    new_node_names,
    npoints,
    scan_event,
    unreadable,
)
from .streams import StreamReader, WalkIterator

__all__ = [
    "ChannelDataNode",
    "DataNode",
    "DataNodeContainer",
    "Event",
    "EventData",
    "EventType",
    "GroupScanNode",
    "NodeInfo",
    "NodeRefChannel",
    "ScanNode",
    "WalkIterator",
    "get_node",
    "get_nodes",
    "get_session_node",
    "sessions_list",
    "set_default_connection",
]

Connection = redis.Redis | str
NodeFilter = None | str | Collection[Any] | Callable[["DataNode"], bool]

_STRUCT_FIELDS = ("name", "node_type", "version", "parent")
_PRIORITIES = {keys.CHILDREN: 0, keys.PREPARED: 1, keys.DATA: 2, keys.END: 3}  # blissdata's
_SCAN_KEY_COUNT = 10_000  # SCAN batch size when searching keys

_default: redis.Redis | None = None
_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


# -- connections ------------------------------------------------------------------------------
def set_default_connection(connection: Connection | None) -> None:
    """The data Redis used when an entry point gets no ``connection`` (None: no default)."""
    global _default
    _default = None if connection is None else _client(connection)


def _client(connection: Connection | None) -> redis.Redis:
    if connection is None:
        if _default is None:
            raise RuntimeError("no data Redis: pass connection=(client or URL) or call "
                               "set_default_connection() (Session.setup() does)")
        return _default
    if isinstance(connection, str):
        with _clients_lock:
            if connection not in _clients:
                _clients[connection] = connect(connection)
            return _clients[connection]
    return connection


# -- lookup -----------------------------------------------------------------------------------
def get_node(db_name: str, connection: Connection | None = None) -> DataNode | None:
    """The node ``db_name``, or None when it does not exist or has no ``v1.x`` version."""
    return get_nodes(db_name, connection=connection)[0]


def get_nodes(*db_names: str, connection: Connection | None = None) -> list[DataNode | None]:
    """Several nodes in one round trip (None for each one that is missing or unsupported)."""
    return _lookup(_client(connection), [str(name) for name in db_names])


def get_session_node(name: str, connection: Connection | None = None) -> DataNodeContainer:
    """The session's root container, whether or not it exists yet (walks wait for it)."""
    if ":" in name:
        raise ValueError(f"Session name can't contain ':' -> ({name})")
    return DataNodeContainer(_client(connection), name)


def sessions_list(connection: Connection | None = None) -> list[DataNode]:
    """Root nodes of the sessions that have data in Redis (sorted by name)."""
    client = _client(connection)
    roots = _search_containers(client, "*" + keys.CHILDREN)
    return [node for node in _lookup(client, [n for n in roots if ":" not in n]) if node]


def _lookup(client: redis.Redis, db_names: list[str], exists_only: bool = False
            ) -> list[DataNode | None]:
    """Nodes from their structs, one pipelined round trip; ``exists_only`` skips the version check.
    """
    if not db_names:
        return []
    with client.pipeline(transaction=False) as pipe:
        for db_name in db_names:
            pipe.hmget(db_name, _STRUCT_FIELDS)
            if exists_only:
                pipe.exists(db_name)
        replies = pipe.execute()
    step = 2 if exists_only else 1
    nodes: list[DataNode | None] = []
    for i, db_name in enumerate(db_names):
        name, node_type, version, parent = replies[i * step]
        visible = replies[i * step + 1] if exists_only else keys.is_supported_version(version)
        nodes.append(_make_node(client, db_name, name, node_type, parent) if visible else None)
    return nodes


def _make_node(client: redis.Redis, db_name: str, name: bytes | None, node_type: bytes | None,
               parent: bytes | None) -> DataNode:
    type_text = None if node_type is None else node_type.decode()
    cls = _NODE_CLASSES.get(type_text, DataNodeContainer)
    return cls(client, db_name, node_type=type_text, name=name,
               parent=None if parent is None else parent.decode())


def _search_containers(client: redis.Redis, pattern: str) -> list[str]:
    """db_names of the containers whose ``_children_list`` matches ``pattern``, shallowest first.
    """
    found = {key.decode()[: -len(keys.CHILDREN)]
             for key in client.scan_iter(match=pattern, count=_SCAN_KEY_COUNT)}
    return sorted(found, key=lambda db_name: (db_name.count(":"), db_name))


# -- info ---------------------------------------------------------------------------------------
class NodeInfo(Mapping[str, Any]):
    """The ``{db_name}_info`` hash: every value is read from Redis when asked, and unpickled.

    Unlike blissdata, a stored None reads as None (``info["unit"]``) rather than as a missing key,
    and a value that cannot be unpickled raises (``UnsafePickleError`` for a refused pickle,
    ``ValueError`` for bytes that are no pickle) in ``get`` too, not only in ``get_all``.
    """

    def __init__(self, client: redis.Redis, key: str) -> None:
        self._client = client
        self._key = key

    def _decode(self, field: str, raw: bytes) -> Any:
        try:
            return encoding.loads(raw)
        except encoding.UnsafePickleError as error:
            raise encoding.UnsafePickleError(f"{self._key} field {field!r}: {error}") from None
        except Exception as error:
            raise ValueError(f"{self._key}: invalid value {field!r} (cannot unpickle "
                             f"{raw[:60]!r}...)") from error

    def __getitem__(self, field: str) -> Any:
        raw = self._client.hget(self._key, field)
        if raw is None:
            raise KeyError(field)
        return self._decode(field, raw)

    def get(self, field: str, default: Any = None) -> Any:
        raw = self._client.hget(self._key, field)
        return default if raw is None else self._decode(field, raw)

    def get_all(self) -> dict[str, Any]:
        """Every field, in one round trip."""
        return {k.decode(): self._decode(k.decode(), v)
                for k, v in self._client.hgetall(self._key).items()}

    def keys(self) -> list[str]:  # type: ignore[override]
        return [k.decode() for k in self._client.hkeys(self._key)]

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return list(self.get_all().items())

    def values(self) -> list[Any]:  # type: ignore[override]
        return list(self.get_all().values())

    def __contains__(self, field: object) -> bool:
        return isinstance(field, str) and bool(self._client.hexists(self._key, field))

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return int(self._client.hlen(self._key))

    def __repr__(self) -> str:
        return f"NodeInfo({self._key!r})"


# -- nodes --------------------------------------------------------------------------------------
class DataNode:
    """A node: db_name, struct fields, info, and the walks starting from it."""

    def __init__(self, client: redis.Redis, db_name: str, *, node_type: str | None = None,
                 name: bytes | None = None, parent: str | None = None) -> None:
        self._client = client
        self.db_name = db_name
        self._type = node_type
        self._name = name
        self._parent = parent
        self.info = NodeInfo(client, db_name + keys.INFO)

    @property
    def connection(self) -> redis.Redis:
        return self._client

    @property
    def name(self) -> bool | int | float | str | None:
        """The struct's ``name`` auto-coerced (a channel's is its fullname, ``timer:epoch``)."""
        if self._name is None:
            self._name = self._client.hget(self.db_name, "name")
        return None if self._name is None else encoding.coerce_struct_value(self._name)

    @property
    def type(self) -> str | None:
        """The stored ``node_type`` text (``"None"`` for Bliss device containers)."""
        if self._type is None:
            raw = self._client.hget(self.db_name, "node_type")
            self._type = None if raw is None else raw.decode()
        return self._type

    @property
    def parent(self) -> DataNode | None:
        """The parent node when it exists (whatever its version), else None."""
        if self._parent is None:
            raw = self._client.hget(self.db_name, "parent")
            if raw is None:
                return None
            self._parent = raw.decode()
        return _lookup(self._client, [self._parent], exists_only=True)[0]

    @property
    def iterator(self) -> DataNode:
        """The node itself (Bliss's deprecated ``node.iterator.walk(...)`` spelling)."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.db_name!r})"

    # -- walks ------------------------------------------------------------------------------
    def walk(self, include_filter: NodeFilter = None, exclude_children: NodeFilter = None,
             wait: bool = True, filter: NodeFilter = None) -> WalkIterator[DataNode]:
        """Descendant nodes (not this one) in registration order, then live ones if ``wait``.

        ``include_filter`` (alias ``filter``) selects what is yielded: None (all), a node type, a
        collection of types, or a callable(node) -> bool; it does not stop the traversal.
        ``exclude_children`` (same forms) stops the traversal below matching nodes, which are
        still yielded.
        """
        walk = _Walk(self, _include(include_filter, filter), exclude_children, events=False)
        walk.start(search=False)
        return WalkIterator(walk.reader, (item for _, item in walk.items(wait)))

    def walk_events(self, include_filter: NodeFilter = None, exclude_children: NodeFilter = None,
                    wait: bool = True, filter: NodeFilter = None) -> WalkIterator[Event]:
        """``Event``s of the descendants (NEW_NODE, NEW_DATA, PREPARED_SCAN, END_SCAN) and of this
        node (its own PREPARED/END/data), from the beginning of every stream, in blissdata's order.
        After a yielded END_SCAN nothing more of that scan is read."""
        walk = _Walk(self, _include(include_filter, filter), exclude_children, events=True)
        walk.start(search=False)
        return WalkIterator(walk.reader, (item for _, item in walk.items(wait)))

    def walk_on_new_events(self, include_filter: NodeFilter = None,
                           exclude_children: NodeFilter = None, wait: bool = True,
                           filter: NodeFilter = None) -> WalkIterator[Event]:
        """Like ``walk_events`` for what is registered from now on (Redis server time).

        Registrations older than the call are skipped in every existing container; nodes
        registered later are followed from the beginning of their data, PREPARED and END streams.
        """
        walk = _Walk(self, _include(include_filter, filter), exclude_children, events=True,
                     children_from=_now_id(self._client))
        walk.start(search=True)
        return WalkIterator(walk.reader, (item for _, item in walk.items(wait)))

    def walk_from_last(self, include_filter: NodeFilter = None,
                       exclude_children: NodeFilter = None, wait: bool = True,
                       filter: NodeFilter = None) -> WalkIterator[DataNode]:
        """The most recently registered matching descendant, then (like ``walk``) what comes next.

        As in blissdata, the candidates are the registrations made since this node's own most
        recent child registration, in every container below it.
        """
        walk = _Walk(self, _include(include_filter, filter), exclude_children, events=False,
                     children_from=self._before_last_registration())

        def items() -> Generator[DataNode, None, None]:
            walk.start(search=True)
            last: tuple[tuple[int, int], DataNode] | None = None
            for entry_id, node in walk.items(wait=False):
                if last is None or _id_key(entry_id) >= last[0]:
                    last = (_id_key(entry_id), node)
            if last is not None:
                yield last[1]
            yield from (node for _, node in walk.items(wait))

        return WalkIterator(walk.reader, items())

    def _before_last_registration(self) -> str:
        """The stream ID just before this node's last child registration (now when none)."""
        last = self._client.xrevrange(self.db_name + keys.CHILDREN, count=1)
        if not last:
            return _now_id(self._client)
        ms, seq = _id_key(last[0][0])
        return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-{2**64 - 1}"

    def _event_data(self, entries: list[StreamEntry]) -> EventData:
        raise NotImplementedError(f"{type(self).__name__} has no data stream")


class DataNodeContainer(DataNode):
    """A node with children: session and path containers, device containers, unknown types."""


class ScanNode(DataNodeContainer):
    """A scan (``scan``): a container with PREPARED and END events."""


class GroupScanNode(ScanNode):
    """A sequence or group of scans (``scan_group``); its sub-scans are siblings, referenced by
    its ``GroupingMaster:scans`` channel."""


class ChannelDataNode(DataNode):
    """A channel: points in ``{db_name}_data``, indexed by position (entry ID = first index + 1).
    """

    @property
    def _data_key(self) -> str:
        return self.db_name + keys.DATA

    @property
    def shape(self) -> Any:
        return self.info.get("shape")

    @property
    def dtype(self) -> Any:
        return self.info.get("dtype")

    @property
    def unit(self) -> Any:
        return self.info.get("unit")

    @property
    def fullname(self) -> Any:
        return self.info.get("fullname")

    @property
    def short_name(self) -> str:
        return str(self.name).rpartition(":")[2]

    def __len__(self) -> int:
        last = self._client.xrevrange(self._data_key, count=1)
        if not last:
            return 0
        entry_id, fields = last[0]
        return id_ms(entry_id) - 1 + npoints(fields)

    def get(self, from_index: int | None, to_index: int | None = None) -> Any:
        """One point or a slice, with blissdata's semantics.

        ``to_index`` None: the point at ``from_index`` (the last one if negative), None when there
        is none. ``to_index >= 0``: points ``from_index..to_index`` inclusive; negative: up to the
        end. A slice of an empty channel from 0 to the end is ``[]``. ``IndexError`` when the start
        of a slice is no longer in Redis (trimmed), except for ``get(0, -1)``.
        """
        if from_index is None:
            from_index = 0
        if to_index is None:
            if from_index < 0:
                entries = self._client.xrevrange(self._data_key, count=1)
            else:
                entries = self._covering_range(from_index + 1, from_index + 1)
            points = self._points(entries, from_index, from_index, single=True)
            return self._values(points[-1:])[0] if len(points) else None
        from_index = max(from_index, 0)
        if from_index == 0 and to_index < 0:
            entries = self._client.xrange(self._data_key, min=1)
        else:
            entries = self._covering_range(from_index + 1, to_index + 1 if to_index >= 0 else None)
        return self._values(self._points(entries, from_index, to_index, single=False))

    def __getitem__(self, index: int | slice) -> Any:
        """``node[i]`` (IndexError when there is no point there: out of range, trimmed, or a
        reference to a missing node), ``node[a:b]`` (stride 1), ``node[...]``."""
        if isinstance(index, slice):
            if index.step not in (None, 1):
                raise IndexError("Stride not supported")
            size = len(self)
            start = 0 if index.start is None else index.start + (size if index.start < 0 else 0)
            stop = size if index.stop is None else index.stop + (size if index.stop < 0 else 0)
            if start > stop:
                raise IndexError("Reverse order not supported")
            if start == stop:
                return numpy.array([])  # as blissdata, also for reference channels
            return self.get(start, stop - 1)
        if index is Ellipsis:
            return self.get(0, -1)
        position = int(index)
        if position < 0:
            position += len(self)
            if position < 0:
                raise IndexError("index out of range")
        value = self.get(position)
        if value is None:  # out of range, trimmed away, or a reference to a missing node
            raise IndexError("index out of range")
        return value

    def _covering_range(self, first_id: int, last_id: int | None) -> list[StreamEntry]:
        """Entries from the one holding point ``first_id - 1`` to ID ``last_id`` (None: the end).

        One round trip: the entries of the range plus the last entry at or before its start (or
        before ``last_id`` when that is smaller), which is prepended when it starts earlier.
        """
        anchor = first_id if last_id is None else min(first_id, last_id)
        with self._client.pipeline(transaction=False) as pipe:
            pipe.xrevrange(self._data_key, max=anchor, min="-", count=1)
            pipe.xrange(self._data_key, min=first_id, max="+" if last_id is None else last_id)
            before, entries = pipe.execute()
        if before and (not entries or before[0][0] != entries[0][0]):
            return before + entries
        return entries

    def _points(self, entries: list[StreamEntry], from_index: int, to_index: int,
                single: bool) -> Any:
        """The requested points out of the merged entries (blissdata's bounds rules)."""
        merged = channel_data(entries)
        data, first = merged.data, merged.first_index
        allow_lower = (to_index < 0 and from_index == 0) or single
        if (from_index < first or first < 0) and not allow_lower:
            raise IndexError(f"Data is not anymore available first_index:{first} "
                             f"request_index:{from_index}")
        start = max(from_index - first, 0)
        stop = len(data) if to_index < 0 else min(start + to_index - from_index + 1, len(data))
        return data if stop - start == len(data) else data[start:stop]

    def _values(self, points: Any) -> Any:
        """What ``get`` returns for decoded points (the points themselves)."""
        return points

    def _event_data(self, entries: list[StreamEntry]) -> EventData:
        return channel_data(entries)


class NodeRefChannel(ChannelDataNode):
    """A channel of node references (a sequence's ``scans``): points are db_names, read back as
    nodes (None for a node that no longer exists or has no version)."""

    def _values(self, points: Any) -> list[DataNode | None]:
        return _lookup(self._client, [str(db_name) for db_name in points])

    def _event_data(self, entries: list[StreamEntry]) -> EventData:
        merged = channel_data(entries)
        return merged._replace(data=self._values(merged.data))


_NODE_CLASSES: dict[str | None, type[DataNode]] = {
    "scan": ScanNode,
    "scan_group": GroupScanNode,
    "channel": ChannelDataNode,
    "node_ref_channel": NodeRefChannel,
}


# -- walks --------------------------------------------------------------------------------------
def _include(include_filter: NodeFilter, filter: NodeFilter) -> NodeFilter:
    if filter is not None:
        if include_filter is not None:
            raise ValueError("give include_filter or its alias filter, not both")
        return filter
    return include_filter


def _matches(node: DataNode, node_filter: NodeFilter, default: bool) -> bool:
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


class _Walk:
    """One walk: which streams to follow for which node, and what their entries yield."""

    def __init__(self, start: DataNode, include_filter: NodeFilter,
                 exclude_children: NodeFilter, events: bool, children_from: str = "0") -> None:
        self.start_node = start
        self.client = start.connection
        self.reader = StreamReader(self.client)
        self.include = include_filter
        self.exclude = exclude_children
        self.events = events
        self.children_from = children_from
        self.types = _filter_types(include_filter)
        # Only types found above scans can be yielded: no need to look inside scans.
        self.above_scans_only = self.types is not None and self.types <= keys.ABOVE_SCAN_TYPES

    def _subscribe(self, node: DataNode, suffix: str, position: str) -> None:
        self.reader.subscribe(node.db_name + suffix, _PRIORITIES[suffix], position,
                              (node, suffix))

    def _follows_children(self, node: DataNode) -> bool:
        return (isinstance(node, DataNodeContainer)
                and not (self.above_scans_only and isinstance(node, ScanNode))
                and not _matches(node, self.exclude, False))

    def follow(self, node: DataNode) -> None:
        """Subscribe the streams of a node that can lead to something this walk yields."""
        if self._follows_children(node):
            self._subscribe(node, keys.CHILDREN, self.children_from)
        if not self.events or (self.types is not None and node.type not in self.types):
            return
        if isinstance(node, ScanNode):
            self._subscribe(node, keys.PREPARED, "0")
            self._subscribe(node, keys.END, "0")
        elif isinstance(node, ChannelDataNode):
            self._subscribe(node, keys.DATA, "0")

    def start(self, search: bool) -> None:
        """Follow the start node; with ``search``, every existing container below it too
        (``children_list`` only), found with SCAN -- what blissdata does for a walk that does not
        start at the beginning of the streams."""
        self.follow(self.start_node)
        if not search or not self._follows_children(self.start_node):
            return
        pattern = keys.glob_escape(self.start_node.db_name) + ":*" + keys.CHILDREN
        pruned: set[str] = set()
        for node in _lookup(self.client, _search_containers(self.client, pattern),
                            exists_only=True):
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
                node, suffix = subscription.context
                if suffix == keys.DATA:
                    if _matches(node, self.include, True) and not self.reader.stopped:
                        yield None, self._new_data(subscription.key, node, entries)
                else:
                    yield from self._scan_events(subscription.key, node, entries)

    @staticmethod
    def _new_data(key: str, node: DataNode, entries: list[StreamEntry]) -> Any:
        """The NEW_DATA event of ``entries``, or the error saying they cannot be decoded."""
        try:
            return Event(EventType.NEW_DATA, node, node._event_data(entries))
        except redis.RedisError:
            raise
        except Exception as error:  # noqa: BLE001 (bad data in Redis: an error for this event)
            return unreadable(key, entries, error, EventType.NEW_DATA, node)

    def _new_nodes(self, batch: list) -> Iterator[tuple[bytes | None, Any]]:
        registered = [new_node_names(entries) for _, entries in batch]
        names = list(dict.fromkeys(name for names in registered for name in names))
        nodes = dict(zip(names, _lookup(self.client, names)))
        for names in registered:
            for db_name, entry_id in names.items():
                node = nodes[db_name]
                if node is None:
                    continue  # not (yet) versioned: dropped for good, as blissdata does
                self.follow(node)
                if _matches(node, self.include, True) and not self.reader.stopped:
                    yield entry_id, (Event(EventType.NEW_NODE, node) if self.events else node)

    def _scan_events(self, key: str, node: DataNode, entries: list[StreamEntry]
                     ) -> Iterator[tuple[bytes | None, Any]]:
        for entry in entries:
            try:
                decoded = scan_event(entry)
            except Exception as error:  # noqa: BLE001 (bad data in Redis: an error for this event)
                kind = EventType.END_SCAN if key.endswith(keys.END) else EventType.PREPARED_SCAN
                decoded = kind, unreadable(key, [entry], error, kind, node)
            if decoded is None or not _matches(node, self.include, True) or self.reader.stopped:
                continue
            event_type, data = decoded
            yield None, data if isinstance(data, Exception) else Event(event_type, node, data)
            if event_type is EventType.END_SCAN:  # readable or not, the END ends the scan
                self.reader.unsubscribe_prefix(node.db_name)
