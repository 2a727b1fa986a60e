"""The Redis key layout of Bliss 1.x data nodes (blissdata 0.3.x), explained once.

Everything lives in logical database 1 of the data Redis. A node is identified by its *db_name*:
the session name for the root, ``{parent_db_name}:{local_name}`` for every other node. Local names
never contain ``:``; only a channel's *fullname* (``timer:elapsed_time``) may.

Per node::

    {db_name}                  HASH   struct: name, db_name, node_type, version (v1.1),
                                      parent (text)
    {db_name}_info             HASH   info: one pickle per field (scans, groups, channels only)
    {db_name}_children_list    STREAM NEW_NODE registrations of children (containers, scans, groups)
    {db_name}_prepared         STREAM one PREPARED_SCAN entry (scans and groups)
    {db_name}_end              STREAM one END_SCAN entry (scans and groups)
    {db_name}_data             STREAM channel points, entry ID = "{index of first point + 1}-0"

A sequence (node_type ``scan_group``) ``G`` holds ``G:GroupingMaster`` (node_type ``None``, Bliss's
device container), under it ``scans`` (``node_ref_channel``, one sub-scan db_name per entry),
``scan_numbers`` (``channel``, one int per entry) and, with custom channels,
``custom_channels:{name}``. Sub-scans are *siblings* of the group in the scan-saving container,
linked only by the references and by their own ``_info["group"]``.

The scan-saving container (``{session}:tmp:scans`` for base path ``/tmp/scans``) holds the scan
counters ``last_scan_number`` and ``last_shadow_scan_number`` in its struct (HINCRBY, like Bliss).
"""

from __future__ import annotations

import os
import re

CHILDREN = "_children_list"
INFO = "_info"
PREPARED = "_prepared"
END = "_end"
DATA = "_data"

NODE_VERSION = "v1.1"
DEVICE_TYPE = "None"  # str(None): what Bliss stores for device containers
CONTAINER_TYPE = "container"
SCAN_TYPES = frozenset({"scan", "scan_group"})
CHANNEL_TYPES = frozenset({"channel", "node_ref_channel"})
# Node types Bliss only ever creates above scans: a filter made of these alone never needs a
# scan's subtree, which is what keeps a filtered walk flat in the number of scans.
ABOVE_SCAN_TYPES = frozenset(
    {"container", "proposal", "dataset_collection", "dataset", "scan", "scan_group"}
)

SCAN_COUNTER = "last_scan_number"
SHADOW_SCAN_COUNTER = "last_shadow_scan_number"

GROUPING_MASTER = "GroupingMaster"
SCANS_CHANNEL = "scans"
SCAN_NUMBERS_CHANNEL = "scan_numbers"
CUSTOM_CHANNELS = "custom_channels"

_VERSION_RE = re.compile(r"^v(\d+)(\.\d+)*$")


def child_db_name(parent: str, local_name: str) -> str:
    """db_name of a child node; refuses local names Bliss could not have written."""
    check_local_name(local_name)
    return f"{parent}:{local_name}"


def check_local_name(name: str) -> None:
    if not name or ":" in name:
        raise ValueError(f"invalid node name {name!r}: it must be non-empty and contain no ':'")


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis ``SCAN MATCH`` pattern (db_names may hold ``*?[]``)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def local_name(db_name: str) -> str:
    return db_name.rsplit(":", 1)[-1]


def ancestors(db_name: str) -> list[str]:
    """db_names of every ancestor, nearest first (``a:b:c`` -> ``["a:b", "a"]``)."""
    parts = db_name.split(":")
    return [":".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def is_supported_version(version: bytes | str | None) -> bool:
    """A node is visible to readers only with a ``v1.x`` version in its struct."""
    if version is None:
        return False
    text = version.decode() if isinstance(version, bytes) else version
    match = _VERSION_RE.match(text)
    return bool(match) and int(match.group(1)) == 1


def scan_saving_parts(session: str, base_path: str) -> list[str]:
    """Path container names for Bliss's basic ScanSaving (template ``{session}/``).

    ``/tmp/scans`` in session ``demo`` gives ``["demo", "tmp", "scans"]``: the session, then every
    part of the absolute root path except the session name itself.
    """
    root = os.path.abspath(os.path.join(base_path, session))
    return [session] + [p for p in root.split(os.sep) if p and p != session]
