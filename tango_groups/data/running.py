"""What a service is running, kept in Redis next to the data so that it survives the service.

A SequenceManager that dies (SIGKILL, a crash, a power cut) leaves its sequence without END: every
Bliss reader waiting for that END would wait forever. So while a sequence runs, its owner keeps a
small record in the data Redis::

    tango_groups:running:{session}:{owner}   STRING   JSON {"db_name", "channels", "pending"}

(``owner`` names the service instance, e.g. its Tango device name). The record is written right
after the sequence's PREPARED, updated when the scans it waits for change, and deleted once the
sequence has its END. A restarted owner reads it back and closes the sequence (END, state KILLED,
TTLs) or resumes it. The key is not a data node (no struct, never registered): readers never see
it, and it carries no TTL, as it must outlive any downtime.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import redis

__all__ = ["RunningRecord", "clear", "load", "record_key", "save"]

_PREFIX = "tango_groups:running"


@dataclasses.dataclass(frozen=True)
class RunningRecord:
    """The sequence an owner runs: its db_name, its custom channels as declared (JSON objects
    with name, dtype, shape, unit) and the scan numbers it still waits for."""

    db_name: str
    channels: tuple[dict[str, Any], ...] = ()
    pending: tuple[int, ...] = ()


def record_key(session: str, owner: str) -> str:
    return f"{_PREFIX}:{session}:{owner}"


def save(client: redis.Redis, key: str, record: RunningRecord) -> None:
    client.set(key, json.dumps(dataclasses.asdict(record)))


def load(client: redis.Redis, key: str) -> RunningRecord | None:
    """The record, or None when there is none (or it cannot be read: it is then deleted, as
    there is nothing it could still close)."""
    raw = client.get(key)
    if raw is None:
        return None
    try:
        fields = json.loads(raw)
        return RunningRecord(str(fields["db_name"]), tuple(fields.get("channels", ())),
                             tuple(int(n) for n in fields.get("pending", ())))
    except (ValueError, TypeError, KeyError):
        clear(client, key)
        return None


def clear(client: redis.Redis, key: str) -> None:
    client.delete(key)
