"""Finding nodes: the data Redis to read, nodes by db_name, sessions; the node kinds by type.

A node is visible only with a ``v1.x`` version in its struct (``keys.is_supported_version``):
``get_node`` returns None otherwise, and walks drop its registration. Nodes are read from their
structs (``name``, ``node_type``, ``version``, ``parent``), several in one pipelined round trip.

This is the one place that maps a ``node_type`` to a class: ``scan`` -> ``ScanNode``,
``scan_group`` -> ``GroupScanNode``, ``channel`` -> ``ChannelDataNode``, ``node_ref_channel``
-> ``NodeRefChannel``, anything else (``container``, ``None``, unknown types) ->
``DataNodeContainer``. Every node made here holds ``FINDER``, the lookup as the node kinds and the
walks see it (``node_walk.NodeFinder``): that is how a node reaches its parent, a walk its
registrations and a reference channel its scans, with no node module importing this one.

Every entry point takes ``connection=`` (a redis client or a ``redis://`` URL, logical db 1 when
the URL names none); without it the default set by ``set_default_connection`` is used (a
``Session`` sets it in ``setup()``). Nodes keep the client they were read with.
"""

from __future__ import annotations

import threading

import redis

from ..data.connection import connect
from . import keys
from .node_base import DataNode, DataNodeContainer
from .node_channel import ChannelDataNode, NodeRefChannel
from .node_scan import GroupScanNode, ScanNode

__all__ = [
    "FINDER",
    "Connection",
    "get_node",
    "get_nodes",
    "get_session_node",
    "make_node",
    "sessions_list",
    "set_default_connection",
]

Connection = redis.Redis | str

_NODE_CLASSES: dict[str | None, type[DataNode]] = {
    "scan": ScanNode,
    "scan_group": GroupScanNode,
    "channel": ChannelDataNode,
    "node_ref_channel": NodeRefChannel,
}
_STRUCT_FIELDS = ("name", "node_type", "version", "parent")
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


# -- entry points -----------------------------------------------------------------------------
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
    return DataNodeContainer(_client(connection), name, finder=FINDER)


def sessions_list(connection: Connection | None = None) -> list[DataNode]:
    """Root nodes of the sessions that have data in Redis (sorted by name)."""
    client = _client(connection)
    roots = _search_containers(client, "*" + keys.CHILDREN)
    return [node for node in _lookup(client, [n for n in roots if ":" not in n]) if node]


def make_node(client: redis.Redis, db_name: str, node_type: str | None, *,
              name: bytes | None = None, parent: str | None = None) -> DataNode:
    """The node of kind ``node_type`` (its stored text; None when unknown) for ``db_name``,
    without reading anything: fields not given are read when first asked for."""
    cls = _NODE_CLASSES.get(node_type, DataNodeContainer)
    return cls(client, db_name, node_type=node_type, name=name, parent=parent, finder=FINDER)


# -- the lookup -------------------------------------------------------------------------------
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
        nodes.append(make_node(client, db_name, None if node_type is None else node_type.decode(),
                               name=name, parent=None if parent is None else parent.decode())
                     if visible else None)
    return nodes


def _search_containers(client: redis.Redis, pattern: str) -> list[str]:
    """db_names of the containers whose ``_children_list`` matches ``pattern``, shallowest first.
    """
    found = {key.decode()[: -len(keys.CHILDREN)]
             for key in client.scan_iter(match=pattern, count=_SCAN_KEY_COUNT)}
    return sorted(found, key=lambda db_name: (db_name.count(":"), db_name))


class _Finder:
    """The lookup as the node kinds and the walks see it (``node_walk.NodeFinder``)."""

    def nodes(self, client: redis.Redis, db_names: list[str], exists_only: bool = False
              ) -> list[DataNode | None]:
        return _lookup(client, db_names, exists_only)

    def containers(self, client: redis.Redis, pattern: str) -> list[str]:
        return _search_containers(client, pattern)


FINDER = _Finder()
