"""The node every kind starts from: struct fields, info, parent, the walks; and containers.

How a node's own keys are read (the layout is in ``tango_groups.bliss1.keys``):

* the struct ``{db_name}`` gives ``name`` (auto-coerced: ``"0001"`` reads as 1), ``node_type``
  (kept as the stored text, so Bliss device containers have type ``"None"``), ``version`` and
  ``parent``. Nodes made by the lookup (``tango_groups.bliss1.node_lookup``) come with the fields
  it read; the others are read when first asked for;
* ``{db_name}_info`` is ``node.info``, a lazy mapping unpickling each value through the allow-list
  of ``encoding.loads``;
* ``{container}_children_list`` registers the children: a ``DataNodeContainer`` has one, and the
  walks (``tango_groups.bliss1.node_walk``) follow it.

The other kinds (``node_scan``, ``node_channel``) add their own streams: each says which of them
a walk follows and how their entries become events (``node_walk.WalkedNode``). A node finds other
nodes (its parent, a walk's registrations, a reference channel's points) through the ``finder``
the lookup gave it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import redis

from . import encoding, keys, node_walk
from .events import Event, StreamEntry, UnreadableEntryError
from .node_walk import NodeFilter, NodeFinder, Start
from .streams import WalkIterator

__all__ = ["DataNode", "DataNodeContainer", "NodeInfo"]


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


class DataNode:
    """A node: db_name, struct fields, info, and the walks starting from it.

    ``finder`` is how it finds other nodes; a node made directly rather than by the lookup has
    none: it reads its own keys but has no ``parent`` and cannot walk.
    """

    has_children: ClassVar[bool] = False
    """It registers children in ``{db_name}_children_list`` (walks follow them)."""
    is_scan: ClassVar[bool] = False
    """Nothing of ``keys.ABOVE_SCAN_TYPES`` is ever below it (walks for those skip it)."""
    event_streams: ClassVar[tuple[str, ...]] = ()
    """Suffixes of its streams whose entries become events (``stream_events``)."""

    def __init__(self, client: redis.Redis, db_name: str, *, node_type: str | None = None,
                 name: bytes | None = None, parent: str | None = None,
                 finder: NodeFinder | None = None) -> None:
        self._client = client
        self.db_name = db_name
        self._type = node_type
        self._name = name
        self._parent = parent
        self._finder = finder
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
        return self._find([self._parent], exists_only=True)[0]

    @property
    def iterator(self) -> DataNode:
        """The node itself (Bliss's deprecated ``node.iterator.walk(...)`` spelling)."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.db_name!r})"

    @property
    def finder(self) -> NodeFinder:
        """How this node finds others: the lookup that made it."""
        if self._finder is None:
            raise RuntimeError(f"{self!r} was not made by a lookup (get_node...): it cannot "
                               "find other nodes")
        return self._finder

    def _find(self, db_names: list[str], exists_only: bool = False) -> list[DataNode | None]:
        return self.finder.nodes(self._client, db_names, exists_only)

    def stream_events(self, key: str, entries: list[StreamEntry]
                      ) -> Iterator[Event | UnreadableEntryError]:
        """The events of ``entries`` of ``key``, one of ``event_streams`` (none here)."""
        raise NotImplementedError(f"{type(self).__name__} has no event stream ({key})")

    # -- walks ------------------------------------------------------------------------------
    def walk(self, include_filter: NodeFilter = None, exclude_children: NodeFilter = None,
             wait: bool = True, filter: NodeFilter = None) -> WalkIterator[DataNode]:
        """Descendant nodes (not this one) in registration order, then live ones if ``wait``.

        ``include_filter`` (alias ``filter``) selects what is yielded: None (all), a node type, a
        collection of types, or a callable(node) -> bool; it does not stop the traversal.
        ``exclude_children`` (same forms) stops the traversal below matching nodes, which are
        still yielded.
        """
        return node_walk.run(self, include_filter, filter, exclude_children, wait, events=False)

    def walk_events(self, include_filter: NodeFilter = None, exclude_children: NodeFilter = None,
                    wait: bool = True, filter: NodeFilter = None) -> WalkIterator[Event]:
        """``Event``s of the descendants (NEW_NODE, NEW_DATA, PREPARED_SCAN, END_SCAN) and of this
        node (its own PREPARED/END/data), from the beginning of every stream, in blissdata's order.
        After a yielded END_SCAN nothing more of that scan is read."""
        return node_walk.run(self, include_filter, filter, exclude_children, wait, events=True)

    def walk_on_new_events(self, include_filter: NodeFilter = None,
                           exclude_children: NodeFilter = None, wait: bool = True,
                           filter: NodeFilter = None) -> WalkIterator[Event]:
        """Like ``walk_events`` for what is registered from now on (Redis server time).

        Registrations older than the call are skipped in every existing container; nodes
        registered later are followed from the beginning of their data, PREPARED and END streams.
        """
        return node_walk.run(self, include_filter, filter, exclude_children, wait, events=True,
                             since=Start.NOW)

    def walk_from_last(self, include_filter: NodeFilter = None,
                       exclude_children: NodeFilter = None, wait: bool = True,
                       filter: NodeFilter = None) -> WalkIterator[DataNode]:
        """The most recently registered matching descendant, then (like ``walk``) what comes next.

        As in blissdata, the candidates are the registrations made since this node's own most
        recent child registration, in every container below it.
        """
        return node_walk.run(self, include_filter, filter, exclude_children, wait, events=False,
                             since=Start.LAST)


class DataNodeContainer(DataNode):
    """A node with children: session and path containers, device containers, unknown types."""

    has_children = True
