"""Lua scripts the writer runs inside Redis, where a round trip per key would cost too much.

Each runs atomically on a standalone Redis (it touches keys it derives from its arguments, which
a Redis Cluster would refuse: Bliss's data Redis is never a cluster). They are sent with EVAL,
inside the pipeline of the update they belong to: Redis caches the compiled script by its text,
and a pipeline holding redis-py ``Script`` objects would first ask ``SCRIPT EXISTS`` (one more
round trip per update).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

__all__ = ["BY_NAME", "CREATE_EMPTY_STREAMS", "REFRESH_EXPIRATION", "SEARCH_NUMBER", "name_of",
           "run"]


def run(pipe: redis.client.Pipeline, script: str, keys: Sequence[str] = (),
        args: Sequence[Any] = ()) -> None:
    """Queue ``script`` in ``pipe`` (EVAL: no extra round trip, nothing to load first)."""
    pipe.eval(script, len(keys), *keys, *args)

# Creates the empty streams of a node the way blissdata does (XADD 0-1 then XDEL: length 0,
# last-generated-id 0-1), leaving existing streams alone.
CREATE_EMPTY_STREAMS = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then
    redis.call('XADD', key, '0-1', 'init', '')
    redis.call('XDEL', key, '0-1')
  end
end
return #KEYS
"""

# Re-applies the TTLs of a finished scan (TTL >= 0: a running scan has none yet) from the scan
# down, following the registrations of its children (its own subtree, never the database);
# ARGV: scan db_name, data TTL, parent TTL (0: none), then the keys that get the parent TTL.
REFRESH_EXPIRATION = """
local scan, data_ttl, parent_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('TTL', scan) < 0 then return 0 end
local nodes, count = {scan}, 0
while #nodes > 0 do
  local node = table.remove(nodes)
  for _, entry in ipairs(redis.call('XRANGE', node .. '_children_list', '-', '+')) do
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'db_name' then
        local child = fields[i + 1]
        table.insert(nodes, child)
        count = count + 1
        if data_ttl > 0 then
          for _, suffix in ipairs({'', '_info', '_children_list', '_data'}) do
            redis.call('EXPIRE', child .. suffix, data_ttl)
          end
        end
      end
    end
  end
end
if parent_ttl > 0 then
  for i = 4, #ARGV do redis.call('EXPIRE', ARGV[i], parent_ttl) end
end
return count
"""

# Finds the nodes numbered ARGV[2] among the registrations of container ARGV[1], newest first
# (pages of ARGV[4]), until ARGV[3] registrations in a row are older (registrations of scans
# created concurrently may cross); numbers are compared as digit strings (they go beyond Lua's
# exact integers). Returns {how many higher numbers registered, then per candidate: db_name,
# {node_type, version}, {scan_nb, state} of its info, XLEN of _prepared, XLEN of _end}: what
# ``lookup`` decodes, in one round trip.
SEARCH_NUMBER = """
local function digits(text) return (string.gsub(text, '^0+', '')) end
local function compare(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
local stream, number = ARGV[1] .. '_children_list', digits(ARGV[2])
local window, page = tonumber(ARGV[3]), tonumber(ARGV[4])
local last, older, higher, found = '+', 0, 0, {}
while true do
  local entries = redis.call('XREVRANGE', stream, last, '-', 'COUNT', page)
  for _, entry in ipairs(entries) do
    local fields, db_name = entry[2], nil
    for i = 1, #fields, 2 do
      if fields[i] == 'db_name' then db_name = fields[i + 1] end
    end
    local numbered = db_name and string.match(string.match(db_name, '[^:]*$'), '^_?(%d+)_')
    if numbered then
      local order = compare(digits(numbered), number)
      if order == 0 then table.insert(found, db_name) end
      if order > 0 then higher = higher + 1 end
      older = order < 0 and older + 1 or 0
      if older >= window then break end
    end
  end
  if older >= window or #entries < page then break end
  last = '(' .. entries[#entries][1]
end
local reply = {higher}
for _, db_name in ipairs(found) do
  table.insert(reply, db_name)
  table.insert(reply, redis.call('HMGET', db_name, 'node_type', 'version'))
  table.insert(reply, redis.call('HMGET', db_name .. '_info', 'scan_nb', 'state'))
  table.insert(reply, redis.call('XLEN', db_name .. '_prepared'))
  table.insert(reply, redis.call('XLEN', db_name .. '_end'))
end
return reply
"""

# every script above by name: the fencing script of ``lease`` runs them by name, inside it
BY_NAME = {"CREATE_EMPTY_STREAMS": CREATE_EMPTY_STREAMS, "REFRESH_EXPIRATION": REFRESH_EXPIRATION,
           "SEARCH_NUMBER": SEARCH_NUMBER}
_NAMES = {body: name for name, body in BY_NAME.items()}


def name_of(script: str | bytes) -> str:
    """The name of one of the scripts above (ValueError for another one)."""
    text = script.decode() if isinstance(script, bytes) else script
    try:
        return _NAMES[text]
    except KeyError:
        raise ValueError("only the scripts of tango_groups.bliss1.scripts run in a fenced "
                         "pipeline") from None
