"""Scan numbers: a counter in a Redis hash field, incremented like Bliss increments its own.

Bliss 1.x counts a session's scans with HINCRBY on the scan-saving container's struct
(``tango_groups.bliss1.keys``); the Bliss 2 writer keeps the same kind of counter in a hash of its
own (``tango_groups.bliss2.store``). Every call is one atomic increment: numbers are unique across
threads and processes.
"""

from __future__ import annotations

from collections.abc import Callable

from redis import Redis

__all__ = ["last_number", "next_number"]


def next_number(client: Redis, key: str, field: str,
                after: Callable[[], int] | None = None) -> int:
    """The next number of the counter ``field`` of hash ``key`` (HINCRBY). ``after``: where a
    counter that does not exist yet starts (the number returned is the one after; asked only
    then)."""
    if after is not None and not client.hexists(key, field):
        client.hsetnx(key, field, after())
    return int(client.hincrby(key, field, 1))


def last_number(client: Redis, key: str, field: str) -> int:
    """The number the counter ``field`` of hash ``key`` gave last (0 before the first)."""
    return int(client.hget(key, field) or 0)
