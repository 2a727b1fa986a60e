"""Lua scripts the writer runs inside Redis, where a round trip per key would cost too much.

Each runs atomically on a standalone Redis (it touches keys it derives from its arguments, which
a Redis Cluster would refuse: Bliss's data Redis is never a cluster).
"""

__all__ = ["CREATE_EMPTY_STREAMS", "REFRESH_EXPIRATION"]

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
