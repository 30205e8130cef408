"""Lua scripts for the atomic queue operations (registered with redis-py `register_script`).

Key names built inside the scripts (job hashes, fronts, result streams) assume one Redis, not a
Cluster; Sentinel-style HA is fine.
"""

from __future__ import annotations

# KEYS: job hash, target queue, every queue (for the depth check).
# ARGV: id, stored score, max depth, payload, bucket, front id.  Returns the new depth or -1 (full).
PUSH = """
local depth = 0
for i = 3, #KEYS do depth = depth + redis.call('ZCARD', KEYS[i]) end
if depth >= tonumber(ARGV[3]) then return -1 end
redis.call('HSET', KEYS[1], 'payload', ARGV[4], 'bucket', ARGV[5], 'score', ARGV[2], 'front', ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('PUBLISH', 'skipjoin:wake', '')
return depth + 1
"""

# Pop the lowest stored score across the given queues and lease it to the caller. A job whose
# front (the process holding its client) no longer heartbeats is dropped here, never run.
# KEYS: queues..., leases.  ARGV: owner, lease seconds.
# Returns {id, payload, attempts, dropped} or {'', '', '', dropped} when nothing is runnable.
POP = """
local leases = KEYS[#KEYS]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local dropped = 0
for n = 1, 1000 do
  local best, bestkey, bestscore = nil, nil, nil
  for i = 1, #KEYS - 1 do
    local head = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    if head[1] and (bestscore == nil or tonumber(head[2]) < bestscore) then
      best, bestkey, bestscore = head[1], KEYS[i], tonumber(head[2])
    end
  end
  if best == nil then break end
  redis.call('ZREM', bestkey, best)
  local jk = 'skipjoin:job:' .. best
  local h = redis.call('HMGET', jk, 'front', 'payload', 'attempts')
  if h[1] and redis.call('EXISTS', 'skipjoin:front:' .. h[1]) == 1 then
    redis.call('HSET', jk, 'owner', ARGV[1])
    redis.call('ZADD', leases, now + tonumber(ARGV[2]), best)
    return {best, h[2], h[3] or '0', dropped}
  end
  redis.call('DEL', jk)
  dropped = dropped + 1
end
return {'', '', '', dropped}
"""

# Expired leases: a job that never sent a token goes back to its queue with its original score
# (its aging credit is kept); one that had begun streaming gets an explicit error event, since
# replaying it would duplicate text. KEYS: leases.  ARGV: error body JSON, result TTL seconds.
# Returns {requeued, failed, cancelled}.
REAP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 200)
local requeued, failed, cancelled = 0, 0, 0
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local jk = 'skipjoin:job:' .. id
  local h = redis.call('HMGET', jk, 'bucket', 'score', 'started', 'cancelled', 'front')
  if h[1] then
    if h[4] then
      redis.call('DEL', jk)
      cancelled = cancelled + 1
    elseif h[3] then
      local rk = 'skipjoin:res:' .. id
      redis.call('XADD', rk, '*', 'k', 'e', 's', '503', 'd', ARGV[1])
      redis.call('EXPIRE', rk, ARGV[2])
      redis.call('PUBLISH', 'skipjoin:moved:' .. h[5], id)
      redis.call('DEL', jk)
      failed = failed + 1
    else
      redis.call('HDEL', jk, 'owner')
      redis.call('HINCRBY', jk, 'attempts', 1)
      redis.call('ZADD', 'skipjoin:q:' .. h[1], h[2], id)
      requeued = requeued + 1
    end
  end
end
if requeued > 0 then redis.call('PUBLISH', 'skipjoin:wake', '') end
return {requeued, failed, cancelled}
"""

# The client went away. KEYS: job hash.  ARGV: id.
# Returns 0 (unknown/finished), 1 (was queued: removed), 2 (leased: dispatchers told to cancel).
CANCEL = """
local bucket = redis.call('HGET', KEYS[1], 'bucket')
if not bucket then return 0 end
if redis.call('ZREM', 'skipjoin:q:' .. bucket, ARGV[1]) == 1 then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'cancelled', '1')
redis.call('PUBLISH', 'skipjoin:cancel', ARGV[1])
return 2
"""

# Renew the caller's leases; returns the ids it should abandon: lease lost (reaped: someone else
# may run it now), or job cancelled / front gone (nobody is left to read the answer: the job is
# deleted here). KEYS: leases.  ARGV: lease seconds, id, front, id, front, ...
RENEW = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
local abandon = {}
for i = 2, #ARGV, 2 do
  local id, front = ARGV[i], ARGV[i + 1]
  if not redis.call('ZSCORE', KEYS[1], id) then
    table.insert(abandon, id)
  elseif redis.call('EXISTS', 'skipjoin:front:' .. front) == 0
         or redis.call('HEXISTS', 'skipjoin:job:' .. id, 'cancelled') == 1 then
    redis.call('ZREM', KEYS[1], id)
    redis.call('DEL', 'skipjoin:job:' .. id)
    table.insert(abandon, id)
  else
    redis.call('ZADD', KEYS[1], until_, id)
  end
end
return abandon
"""
