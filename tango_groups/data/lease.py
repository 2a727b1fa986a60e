"""One writer per device: a lease in the data Redis, and a client whose writes are fenced by it.

A server that stops answering (a frozen host, SIGSTOP, a network partition) is not refused by
Tango: a second server of the same device starts, takes over its sequence, and when the first
wakes up both would write into it. So the device holds a lease, kept next to its running record::

    tango_groups:lease:{session}:{owner}         STRING "{token}:{holder}"  PX: the lease time
    tango_groups:lease_token:{session}:{owner}   STRING  the fencing token (INCR per acquisition)

``holder`` names one server process (``host:pid:random``). A server acquires the lease only when
no one holds it (a held lease expires when its holder stops renewing it), and every acquisition
increments the token. The holder renews it with its health check. ``FencedRedis`` is the client
that writes the device's data: every pipeline (and every command) that is not a pure read runs
inside one Lua script that first checks the lease, in the same round trip: when the lease is
another's, nothing of the pipeline is written and ``LeaseLostError`` is raised. A lease that
expired while no one else took it (the token did not move, or Redis lost both keys) is taken back
by its holder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import secrets
import socket
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.client import Pipeline

from ..bliss1 import scripts

__all__ = ["FencedRedis", "Holder", "Lease", "LeaseLostError", "holder_name"]

_PREFIX = "tango_groups:lease"

# commands a pipeline may hold without being fenced (they write nothing)
READS = frozenset({
    "GET", "MGET", "EXISTS", "TYPE", "TTL", "PTTL", "HGET", "HMGET", "HGETALL", "HEXISTS",
    "HKEYS", "HLEN", "XLEN", "XRANGE", "XREVRANGE", "XINFO STREAM", "PING", "SCAN", "KEYS",
    "SCRIPT EXISTS", "INFO", "DBSIZE", "SMEMBERS", "ZRANGE", "LRANGE", "STRLEN", "XREAD",
    "TIME", "HSCAN", "SSCAN",
})

# KEYS: lease, token; ARGV: value, token, ms, then per command its length and arguments.
# The lease is this holder's, or expired with no one taking it since (the token did not move, or
# Redis lost both keys: restarted empty): then it is taken back. Every command runs (errors are
# returned in place, as EXEC does); EVAL runs the known scripts.
_CHECK = """
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
FENCED = _CHECK + "local S = {}\n" + "".join(
    f"S['{name}'] = function(KEYS, ARGV)\n{body}\nend\n"
    for name, body in scripts.BY_NAME.items()) + """
local results, i = {}, 4
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local command = {unpack(ARGV, i + 1, i + n)}
  i = i + n + 1
  local script = S[command[1]]
  if script then
    local count = tonumber(command[2])
    local ok, reply = pcall(script, {unpack(command, 3, 2 + count)},
                            {unpack(command, 3 + count)})
    table.insert(results, ok and reply or redis.error_reply(tostring(reply)))
  else
    table.insert(results, redis.pcall(unpack(command)))
  end
end
return results
"""
_FENCED_SHA = hashlib.sha1(FENCED.encode()).hexdigest()

RENEW = _CHECK + "return redis.call('PEXPIRE', KEYS[1], ARGV[3])"

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
        """The keys and first arguments of a script that checks the lease (``_CHECK``)."""
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
            raise _lost(error) from None
        self._renewed = sent

    def release(self, client: redis.Redis) -> None:
        """Give the lease up (a clean shutdown: a standby takes over at once)."""
        if self.token is not None:
            redis.Redis.execute_command(client, "EVAL", RELEASE, 1, self.keys[0], self.value)
            self.token = None


def _lost(error: redis.ResponseError) -> Exception:
    text = str(error)
    if "LEASELOST" not in text:
        return error
    return LeaseLostError(text.split("LEASELOST", 1)[1].strip())


class FencedRedis(redis.Redis):
    """A client whose writes check ``lease`` in the same round trip (see the module docstring);
    without a lease it is a plain client."""

    lease: Lease | None = None

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        if self.lease is None:
            return super().pipeline(transaction, shard_hint)
        return _FencedPipeline(self.lease, self.connection_pool, self.response_callbacks,
                               transaction, shard_hint)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.lease is None or _reads([(args, options)]):
            return super().execute_command(*args, **options)
        with self.pipeline(transaction=False) as pipe:
            pipe.execute_command(*args, **options)
            return pipe.execute()[0]


def _reads(commands: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]) -> bool:
    return all(str(args[0]).upper() in READS for args, _ in commands)


class _FencedPipeline(Pipeline):
    """A pipeline that runs what it queued in the fencing script, unless it only reads."""

    def __init__(self, lease: Lease, *args: Any) -> None:
        super().__init__(*args)
        self._lease = lease

    def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        if _reads(commands):
            return super()._execute_transaction(connection, commands, raise_on_error)
        return self._execute_fenced(connection, commands, raise_on_error)

    def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        if _reads(commands):
            return super()._execute_pipeline(connection, commands, raise_on_error)
        return self._execute_fenced(connection, commands, raise_on_error)

    def _execute_fenced(self, connection: Any, commands: Any, raise_on_error: bool) -> list:
        if self._lease.token is None:
            raise LeaseLostError("")
        flat: list[Any] = []
        for args, _ in commands:
            if args[0] == "EVAL":
                args = (scripts.name_of(args[1]), *args[2:])
            flat += [len(args), *args]
        fence = self._lease.fence_args()
        try:
            response = self._send(connection, "EVALSHA", _FENCED_SHA, fence, flat)
        except redis.exceptions.NoScriptError:
            response = self._send(connection, "EVAL", FENCED, fence, flat)
        except redis.ResponseError as error:
            raise _lost(error) from None
        if raise_on_error:
            self.raise_first_error(commands, response)
        data = []
        for reply, (args, options) in zip(response, commands):
            options.pop("keys", None)
            if not isinstance(reply, Exception) and args[0] in self.response_callbacks:
                reply = self.response_callbacks[args[0]](reply, **options)
            data.append(reply)
        return data

    def _send(self, connection: Any, command: str, script: str, fence: list[Any],
              flat: list[Any]) -> list:
        try:
            connection.send_command(command, script, *fence, *flat)
            return redis.Redis.parse_response(self, connection, command)
        except redis.exceptions.NoScriptError:
            raise
        except redis.ResponseError as error:
            raise _lost(error) from None
