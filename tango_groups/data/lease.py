"""One writer per device: a lease in the data Redis, shared by both data models.

A server that stops answering (a frozen host, SIGSTOP, a network partition) is not refused by
Tango: a second server of the same device starts, takes over its sequence, and when the first
wakes up both would write into it. So the device holds a lease, kept next to its running record::

    tango_groups:lease:{session}:{owner}         STRING "{token}:{holder}"  PX: the lease time
    tango_groups:lease_token:{session}:{owner}   STRING  the fencing token (INCR per acquisition)

``holder`` names one server process (``host:pid:random``). A server acquires the lease only when
no one holds it (a held lease expires when its holder stops renewing it), and every acquisition
increments the token. The holder renews it with its health check. A lease that expired while no
one else took it (the token did not move, or Redis lost both keys) is taken back by its holder.
``CHECK`` is the check a write runs first (``tango_groups.bliss1.fenced`` runs every 1.x write
after it, in the same round trip; the Bliss 2 side checks the lease before its writes).
"""

from __future__ import annotations

import dataclasses
import math
import os
import secrets
import socket
import time
from typing import Any

import redis

__all__ = ["CHECK", "Holder", "Lease", "LeaseLostError", "holder_name", "lost_error"]

_PREFIX = "tango_groups:lease"

# KEYS: lease, token; ARGV: value, token, ms. The lease is this holder's, or expired with no one
# taking it since (the token did not move, or Redis lost both keys: restarted empty): then it is
# taken back. Else the script fails with LEASELOST (``lost_error``).
CHECK = """
local lease = redis.call('GET', KEYS[1])
if lease ~= ARGV[1] then
  local token = redis.call('GET', KEYS[2])
  if lease or (token and token ~= ARGV[2]) then
    return redis.error_reply('LEASELOST ' .. (lease or ''))
  end
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
end
"""
RENEW = CHECK + "return redis.call('PEXPIRE', KEYS[1], ARGV[3])"

# KEYS: lease, token; ARGV: holder, ms. Returns {1, token} once acquired, else {0, value, PTTL}.
ACQUIRE = """
local lease = redis.call('GET', KEYS[1])
if lease then return {0, lease, redis.call('PTTL', KEYS[1])} end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'PX', ARGV[2])
return {1, token}
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaseLostError(redis.RedisError):
    """The device's lease is another server's (or was never acquired): nothing was written.
    ``holder``: the lease's value when it is held ("{token}:{host:pid:random}"), else ""."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"the lease is held by {holder}" if holder else "the lease is not held")
        self.holder = holder


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a lease another server wants: its value and when it expires (epoch s)."""

    token: str
    name: str
    until: float


def holder_name() -> str:
    """This process, as a lease holder: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """The lease of device ``owner`` in ``session``, for ``holder``; ``seconds``: how long it
    lasts without renewal."""

    def __init__(self, session: str, owner: str, seconds: float,
                 holder: str | None = None) -> None:
        self.keys = (f"{_PREFIX}:{session}:{owner}", f"{_PREFIX}_token:{session}:{owner}")
        self.holder = holder or holder_name()
        self.ms = max(1, round(seconds * 1000))
        self.token: int | None = None
        self._renewed = -math.inf  # time.monotonic() when the last renewal was sent

    def fresh(self) -> bool:
        """Whether more than half of the lease surely remains (since the last renewal was sent:
        no one else can hold it before it expired), without asking Redis."""
        return time.monotonic() - self._renewed < self.ms / 2000

    @property
    def value(self) -> str:
        return f"{self.token}:{self.holder}"

    def fence_args(self) -> list[Any]:
        """The keys and first arguments of a script that checks the lease (``CHECK``)."""
        return [2, *self.keys, self.value, str(self.token), self.ms]

    def acquire(self, client: redis.Redis) -> Holder | None:
        """Take the lease when no one holds it (the token grows); None once held, else who
        holds it. Holding it already, renew it."""
        if self.token is not None:
            self.renew(client)
            return None
        sent = time.monotonic()
        reply = redis.Redis.execute_command(client, "EVAL", ACQUIRE, 2, *self.keys,
                                            self.holder, self.ms)
        if int(reply[0]):
            self.token, self._renewed = int(reply[1]), sent
            return None
        token, _, name = reply[1].decode().partition(":")
        return Holder(token, name, time.time() + max(int(reply[2]), 0) / 1000)

    def renew(self, client: redis.Redis) -> None:
        """Extend the lease; ``LeaseLostError`` when it is not this holder's any more."""
        if self.token is None:
            raise LeaseLostError("")
        sent = time.monotonic()
        try:
            redis.Redis.execute_command(client, "EVAL", RENEW, *self.fence_args())
        except redis.ResponseError as error:
            raise lost_error(error) from None
        self._renewed = sent

    def release(self, client: redis.Redis) -> None:
        """Give the lease up (a clean shutdown: a standby takes over at once)."""
        if self.token is not None:
            redis.Redis.execute_command(client, "EVAL", RELEASE, 1, self.keys[0], self.value)
            self.token = None


def lost_error(error: redis.ResponseError) -> Exception:
    """A script's LEASELOST error as ``LeaseLostError``; any other error as it is."""
    text = str(error)
    if "LEASELOST" not in text:
        return error
    return LeaseLostError(text.split("LEASELOST", 1)[1].strip())
