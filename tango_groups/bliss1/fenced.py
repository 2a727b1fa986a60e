"""``FencedRedis``: the client that writes a device's 1.x data, fenced by its lease.

Every pipeline (and every command) that is not a pure read runs inside one Lua script that first
checks the device's lease (``tango_groups.data.lease.CHECK``), in the same round trip: when the
lease is another server's, nothing of the pipeline is written and ``LeaseLostError`` is raised.
The repository's own scripts (``scripts``) run inside it by name. Without a lease it is a plain
client.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis
from redis.client import Pipeline

from ..data.lease import CHECK, Lease, LeaseLostError, lost_error
from . import scripts

__all__ = ["FencedRedis"]

# commands a pipeline may hold without being fenced (they write nothing)
READS = frozenset({
    "GET", "MGET", "EXISTS", "TYPE", "TTL", "PTTL", "HGET", "HMGET", "HGETALL", "HEXISTS",
    "HKEYS", "HLEN", "XLEN", "XRANGE", "XREVRANGE", "XINFO STREAM", "PING", "SCAN", "KEYS",
    "SCRIPT EXISTS", "INFO", "DBSIZE", "SMEMBERS", "ZRANGE", "LRANGE", "STRLEN", "XREAD",
    "TIME", "HSCAN", "SSCAN",
})

# ARGV after the lease's (value, token, ms): per command its length and arguments. Every
# command runs (errors are returned in place, as EXEC does); EVAL runs the known scripts.
FENCED = CHECK + "local S = {}\n" + "".join(
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
            raise lost_error(error) from None
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
            raise lost_error(error) from None
