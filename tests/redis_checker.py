"""What a SequenceManager left in Redis, read back the way a Bliss reader sees it.

Shared by the fault suite and the fuzz (``tests/faults``), usable by any test with a Redis client
of the data db::

    problems(client, session, running=db_name)   # [] when nothing is wrong, else sentences
    references(client, db_name)                   # (scan db_names, scan numbers) of a sequence
    channel_points(client, db_name, "x")          # points of custom channel x of a sequence
    before = KeySnapshot.take(client)             # every key of the db, summarised
    ... a refused call ...
    assert KeySnapshot.take(client).diff(before) == []

``problems`` walks the session with the reader (``get_session_node(...).walk(wait=False)``) and
reports: scan and scan_group nodes without END (other than ``running``); sequences whose ``scans``
and ``scan_numbers`` channels disagree (lengths, a number that is not the referenced scan's
``scan_nb``), reference a node that does not exist, or reference a scan twice; and *orphan* node
keys: a node struct, or a key with a node suffix (``_info``, ``_data``, ``_end``...), below the
session that the walk does not reach (half-written nodes, channels of a sequence that no longer
exists). Keys that are not node keys (a device's own bookkeeping) are not judged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

import numpy
import redis

from tango_groups.bliss1 import keys
from tango_groups.bliss1.node import (
    ChannelDataNode,
    DataNode,
    get_node,
    get_nodes,
    get_session_node,
)

__all__ = [
    "KeySnapshot",
    "channel_points",
    "has_end",
    "keys_without_ttl",
    "open_scans",
    "problems",
    "references",
    "scan_nodes",
]

NODE_SUFFIXES = (keys.CHILDREN, keys.INFO, keys.PREPARED, keys.END, keys.DATA)


def grouping_master(db_name: str) -> str:
    return f"{db_name}:{keys.GROUPING_MASTER}"


def has_end(client: redis.Redis, db_name: str) -> bool:
    return client.xlen(db_name + keys.END) > 0


def session_nodes(client: redis.Redis, session: str) -> list[DataNode]:
    """Every node registered below the session (not the session itself), in walk order."""
    return list(get_session_node(session, connection=client).walk(wait=False))


def scan_nodes(client: redis.Redis, session: str) -> list[DataNode]:
    """The scan and scan_group nodes of the session."""
    return [node for node in session_nodes(client, session) if node.type in keys.SCAN_TYPES]


def open_scans(client: redis.Redis, session: str, allowed: Collection[str] = ()) -> list[str]:
    """db_names of the scans and sequences of the session without END, except ``allowed``."""
    return [node.db_name for node in scan_nodes(client, session)
            if node.db_name not in allowed and not has_end(client, node.db_name)]


def references(client: redis.Redis, db_name: str) -> tuple[list[str], list[int]]:
    """(``scans``, ``scan_numbers``) of sequence ``db_name`` as stored: raw db_names, ints."""
    master = grouping_master(db_name)
    scans = ChannelDataNode(client, f"{master}:{keys.SCANS_CHANNEL}").get(0, -1)
    numbers = ChannelDataNode(client, f"{master}:{keys.SCAN_NUMBERS_CHANNEL}").get(0, -1)
    return [str(name) for name in scans], [int(number) for number in numbers]


def channel_points(client: redis.Redis, db_name: str, channel: str) -> numpy.ndarray:
    """Every point of custom channel ``channel`` of sequence ``db_name`` (empty when none)."""
    node = get_node(f"{grouping_master(db_name)}:{keys.CUSTOM_CHANNELS}:{channel}",
                    connection=client)
    if node is None:
        raise AssertionError(f"sequence {db_name} has no custom channel {channel!r} in Redis")
    return numpy.asarray(node.get(0, -1))


def keys_without_ttl(client: redis.Redis, db_name: str) -> list[str]:
    """Keys of node ``db_name`` and of everything below it that never expire (an ended scan's
    keys all get a TTL)."""
    pattern = keys.glob_escape(db_name)
    found = {key.decode() for key in client.scan_iter(match=pattern + "*", count=1000)}
    own = {key for key in found
           if key == db_name or key.startswith(db_name + ":")
           or any(key == db_name + suffix for suffix in NODE_SUFFIXES)}
    return sorted(key for key in own if client.ttl(key) == -1)


def _sequence_problems(client: redis.Redis, node: DataNode) -> list[str]:
    try:
        names, numbers = references(client, node.db_name)
    except Exception as error:  # noqa: BLE001 (reported)
        return [f"{node.db_name}: references unreadable ({type(error).__name__}: {error})"]
    found: list[str] = []
    if len(names) != len(numbers):
        found.append(f"{node.db_name}: {len(names)} scans but {len(numbers)} scan_numbers")
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        found.append(f"{node.db_name}: scans referenced more than once: {twice}")
    if node.db_name in names:
        found.append(f"{node.db_name}: references itself")
    for name, number, scan in zip(names, numbers, get_nodes(*names, connection=client)):
        if scan is None:
            found.append(f"{node.db_name}: references {name}, which does not exist")
            continue
        try:
            scan_nb = scan.info.get("scan_nb")
        except Exception as error:  # noqa: BLE001 (reported)
            found.append(f"{node.db_name}: references {name} whose info is unreadable ({error})")
            continue
        if scan_nb != number:
            found.append(f"{node.db_name}: references {name} (scan_nb {scan_nb!r}) as {number}")
    return found


def orphan_keys(client: redis.Redis, session: str, reached: Collection[str]) -> list[str]:
    """Node keys below ``session`` whose node is neither the session, nor reached by the walk."""
    reached = {session, *reached}
    pattern = keys.glob_escape(session) + "*"
    candidates = sorted(key.decode() for key in client.scan_iter(match=pattern, count=1000))
    bases: dict[str, str | None] = {
        key: next((key[: -len(suffix)] for suffix in NODE_SUFFIXES if key.endswith(suffix)), None)
        for key in candidates}
    unsuffixed = [key for key, base in bases.items() if base is None]
    with client.pipeline(transaction=False) as pipe:
        for key in unsuffixed:
            pipe.type(key)
        hashes = [key for key, key_type in zip(unsuffixed, pipe.execute()) if key_type == b"hash"]
    with client.pipeline(transaction=False) as pipe:
        for key in hashes:
            pipe.hexists(key, "node_type")
        for key, is_struct in zip(hashes, pipe.execute()):
            if is_struct:
                bases[key] = key  # a node struct; other keys are bookkeeping, not judged here
    return [key for key, base in bases.items()
            if base is not None and (base == session or base.startswith(session + ":"))
            and base not in reached]


def problems(client: redis.Redis, session: str, running: str | None = None) -> list[str]:
    """Everything wrong in the session's nodes, as sentences (see the module docstring).

    ``running``: the db_name of the one sequence allowed to have no END yet.
    """
    nodes = session_nodes(client, session)
    found = [f"{node.type} {node.db_name} has no END"
             for node in nodes if node.type in keys.SCAN_TYPES
             and node.db_name != running and not has_end(client, node.db_name)]
    for node in nodes:
        if node.type == "scan_group":
            found += _sequence_problems(client, node)
    found += [f"orphan key {key}" for key in
              orphan_keys(client, session, [node.db_name for node in nodes])]
    return found


# -- key snapshots --------------------------------------------------------------------------------
# One summary per key, computed inside Redis (one round trip, however many keys): the type; for
# streams the length and last entry ID; small hashes (node structs, counters) in full, other
# values as a SHA1 of their content; ":ttl" when the key expires.
_SUMMARIES = """
local out = {}
for _, key in ipairs(redis.call('KEYS', '*')) do
  local kind = redis.call('TYPE', key)['ok']
  local text
  if kind == 'stream' then
    local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
    text = 'stream of ' .. redis.call('XLEN', key) .. ', last ' .. (last[1] and last[1][1] or '-')
  elseif kind == 'hash' then
    local flat = redis.call('HGETALL', key)
    local fields = {}
    for i = 1, #flat, 2 do fields[#fields + 1] = flat[i] .. '=' .. flat[i + 1] end
    table.sort(fields)
    text = table.concat(fields, ', ')
    if #fields > 8 then text = #fields .. ' fields, sha1 ' .. redis.sha1hex(text) end
    text = 'hash ' .. text
  elseif kind == 'string' then
    text = 'string sha1 ' .. redis.sha1hex(redis.call('GET', key))
  elseif kind == 'list' then
    text = 'list sha1 ' .. redis.sha1hex(table.concat(redis.call('LRANGE', key, 0, -1), '\\1'))
  elseif kind == 'set' then
    local members = redis.call('SMEMBERS', key)
    table.sort(members)
    text = 'set sha1 ' .. redis.sha1hex(table.concat(members, '\\1'))
  elseif kind == 'zset' then
    local members = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    text = 'zset sha1 ' .. redis.sha1hex(table.concat(members, '\\1'))
  else
    text = kind
  end
  if redis.call('TTL', key) ~= -1 then text = text .. ' :ttl' end
  out[#out + 1] = key
  out[#out + 1] = text
end
return out
"""


@dataclasses.dataclass(frozen=True)
class KeySnapshot:
    """Every key of a Redis db with a summary of its content (see ``_SUMMARIES``), read in one
    script (atomic). Equal snapshots: nothing was written in between (as far as a test can
    tell); a key with a TTL that is gone since is taken as expired (keys of earlier tests
    sharing the server expire while a slow test runs)."""

    summaries: dict[bytes, bytes]

    @classmethod
    def take(cls, client: redis.Redis) -> KeySnapshot:
        flat = client.eval(_SUMMARIES, 0)
        return cls(dict(zip(flat[::2], flat[1::2])))

    def diff(self, before: KeySnapshot) -> list[str]:
        """What changed since ``before``, one sentence per key ([] when nothing did)."""
        changes = []
        for name in sorted(before.summaries.keys() | self.summaries.keys()):
            old, new = before.summaries.get(name), self.summaries.get(name)
            if old == new:
                continue
            key = name.decode(errors="replace")
            if old is None:
                changes.append(f"created {key} ({_short(new)})")
            elif new is None:
                if not old.endswith(b" :ttl"):  # one with a TTL may just have expired
                    changes.append(f"deleted {key}")
            else:
                changes.append(f"changed {key}: {_short(old)} -> {_short(new)}")
        return changes


def _short(summary: bytes, limit: int = 240) -> str:
    text = summary.decode(errors="replace")
    return text if len(text) <= limit else text[:limit] + "..."
