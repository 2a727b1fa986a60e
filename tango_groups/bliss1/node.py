"""Reading Bliss 1.x data nodes (blissdata 0.3.x semantics): the reader's public API.

``from tango_groups.bliss1.node import get_node, get_session_node, ScanNode, EventType, ...``:
everything a reader uses, gathered from the modules that implement it (none of them imports this
one). Where each key of the layout (``tango_groups.bliss1.keys``) is read:

* ``node_lookup``: the data Redis to use (``connection=``, ``set_default_connection``), nodes from
  their structs ``{db_name}`` (visible only with a ``v1.x`` version), sessions, and the one map
  from ``node_type`` to node class;
* ``node_base``: ``DataNode`` (struct fields, ``info`` from ``{db_name}_info``, ``parent``, the
  walk methods) and ``DataNodeContainer``, whose ``{db_name}_children_list`` walks follow;
* ``node_scan``: ``ScanNode`` / ``GroupScanNode`` and their ``_prepared`` / ``_end`` streams;
* ``node_channel``: ``ChannelDataNode`` / ``NodeRefChannel`` and their ``_data`` streams
  (``len``, ``get``, indexing, NEW_DATA events);
* ``node_walk``: the walks (order, filters, where they start, what they do not read);
* ``events`` / ``streams``: what walks yield, and the rounds of ``XREAD`` under them.
"""

from __future__ import annotations

from .events import Event, EventData, EventType
from .node_base import DataNode, DataNodeContainer, NodeInfo
from .node_channel import ChannelDataNode, NodeRefChannel
from .node_lookup import (
    get_node,
    get_nodes,
    get_session_node,
    sessions_list,
    set_default_connection,
)
from .node_scan import GroupScanNode, ScanNode
from .streams import WalkIterator

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
