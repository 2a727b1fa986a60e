"""Scan numbers: counters in Redis hashes, each number taken in one atomic step.

Bliss 1.x counts a session's scans with HINCRBY on the scan-saving container's struct
(``tango_groups.bliss1.keys``); the Bliss 2 writer keeps the same kind of counter in a hash of its
own (``tango_groups.bliss2.store``), moved past a floor (the session's newest scan) in the same
step when asked (``next_number(floor=...)``, a Lua script).

Bliss 2.4 counts in its *settings* Redis (Beacon's): the hash ``{session}:scan_counter`` with
fields ``name`` (the scan series: the data path of the current dataset, or ``no_data_policy``)
and ``count``. A scan takes ``HINCRBY count 1`` when ``name`` is its series, else the hash
becomes ``{name: series, count: 1}``; Bliss checks, then sets, under a lock of its own process.
``SharedCounter`` takes numbers from that hash by the same rule in one Lua script (nothing runs
between its check and its set), so that its numbers and Bliss's are never the same; with no series
given it continues whatever series the hash holds. Every call is atomic: numbers are unique across
threads and processes.
"""

from __future__ import annotations

from typing import Protocol

from redis import Redis
from redis.exceptions import RedisError

from .connection import redact

__all__ = ["NO_DATA_POLICY", "CounterUnavailable", "Numbers", "SharedCounter", "last_number",
           "next_number"]

NO_DATA_POLICY = "no_data_policy"  # Bliss's series when its session has no data policy

# KEYS[1]: the hash, ARGV[1]: its field, ARGV[2]: the floor -> max(field, floor) + 1
_PAST_FLOOR = """
local value = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local floor = tonumber(ARGV[2])
if value < floor then value = floor end
value = value + 1
redis.call('HSET', KEYS[1], ARGV[1], value)
return value
"""

# KEYS[1]: {session}:scan_counter, ARGV[1]: the series ('' = the hash's), ARGV[2]: the series of a
# hash that does not exist -> Bliss 2.4's match-or-reset (HINCRBY count, or {name, count: 1})
_SCAN_COUNTER = """
local current = redis.call('HGET', KEYS[1], 'name')
local series = ARGV[1]
if series == '' then
  if current then return redis.call('HINCRBY', KEYS[1], 'count', 1) end
  series = ARGV[2]
end
if current == series then return redis.call('HINCRBY', KEYS[1], 'count', 1) end
redis.call('HSET', KEYS[1], 'name', series, 'count', 1)
return 1
"""


def next_number(client: Redis, key: str, field: str, floor: int = 0) -> int:
    """The next number of the counter ``field`` of hash ``key``: one more than the last, and more
    than ``floor`` (the counter is moved past it in the same atomic step)."""
    if floor <= 0:
        return int(client.hincrby(key, field, 1))
    return int(client.register_script(_PAST_FLOOR)(keys=[key], args=[field, floor]))


def last_number(client: Redis, key: str, field: str) -> int:
    """The number the counter ``field`` of hash ``key`` gave last (0 before the first)."""
    return int(client.hget(key, field) or 0)


class Numbers(Protocol):
    """Where a service takes scan numbers from."""

    def next(self) -> int:
        """The next number."""

    def last(self) -> int:
        """The number given last (0: none yet)."""


class CounterUnavailable(Exception):
    """The Redis of a ``SharedCounter`` failed: no number was taken."""


class SharedCounter:
    """Numbers of session ``session`` from Bliss 2.4's ``{session}:scan_counter`` hash in the
    Redis of ``client`` (Beacon's settings Redis), in ``series`` (empty: the series the hash
    holds, ``no_data_policy`` when there is none). ``url`` names that Redis in errors (its
    password is redacted)."""

    def __init__(self, client: Redis, url: str, session: str, series: str = "") -> None:
        self.client, self.url, self.series = client, url, series
        self.key = f"{session}:scan_counter"
        self._script = client.register_script(_SCAN_COUNTER)

    def next(self) -> int:
        """The next number (``CounterUnavailable`` when the Redis fails)."""
        try:
            return int(self._script(keys=[self.key], args=[self.series, NO_DATA_POLICY]))
        except RedisError as error:
            raise self._unavailable(error) from None

    def last(self) -> int:
        """The number given last in the series (0: the next is 1)."""
        try:
            name, count = self.client.hmget(self.key, ["name", "count"])
        except RedisError as error:
            raise self._unavailable(error) from None
        if name is None or (self.series and _text(name) != self.series):
            return 0
        return int(count or 0)

    def _unavailable(self, error: RedisError) -> CounterUnavailable:
        return CounterUnavailable(f"the scan counter {self.key} in the Redis at "
                                  f"{redact(self.url)} failed ({type(error).__name__}: {error}): "
                                  "no number was taken")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
