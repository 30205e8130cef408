"""Lua scripts for the atomic queue operations (registered with redis-py `register_script`).

Key names built inside the scripts (job hashes, fronts, result streams) assume one Redis, not a
Cluster; Sentinel-style HA is fine.
"""

from __future__ import annotations

# Queue a job unless the queues already hold `maxq`. Returns the new depth or -1 (full).
_PUSH_FN = """
local function push(jobkey, target, depthkeys, id, score, maxq, payload, bucket, front)
  local depth = 0
  for _, q in ipairs(depthkeys) do depth = depth + redis.call('ZCARD', q) end
  if depth >= tonumber(maxq) then return -1 end
  redis.call('HSET', jobkey, 'payload', payload, 'bucket', bucket, 'score', score, 'front', front)
  redis.call('ZADD', target, score, id)
  return depth + 1
end
"""

# Pop up to `want` jobs, lowest stored score first across `queues`, and lease them to `owner`.
# With `drop` = '1', a job whose front (the process holding its client) no longer heartbeats is
# dropped here, never run; just after a Redis outage heartbeats may have lapsed while their fronts
# live, so the caller passes '0' then. Returns {dropped, id1, payload1, attempts1, id2, ...}.
_POP_FN = """
local function pop(queues, leases, owner, lease_s, want, drop)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local out = {0}
  for n = 1, want + 1000 do
    if #out >= 1 + 3 * want then break end
    local best, bestkey, bestscore = nil, nil, nil
    for _, q in ipairs(queues) do
      local head = redis.call('ZRANGE', q, 0, 0, 'WITHSCORES')
      if head[1] and (bestscore == nil or tonumber(head[2]) < bestscore) then
        best, bestkey, bestscore = head[1], q, tonumber(head[2])
      end
    end
    if best == nil then break end
    redis.call('ZREM', bestkey, best)
    local jk = 'skipjoin:job:' .. best
    local h = redis.call('HMGET', jk, 'front', 'payload', 'attempts')
    if h[1] and (drop ~= '1' or redis.call('EXISTS', 'skipjoin:front:' .. h[1]) == 1) then
      redis.call('HSET', jk, 'owner', owner)
      redis.call('ZADD', leases, now + tonumber(lease_s), best)
      table.insert(out, best)
      table.insert(out, h[2])
      table.insert(out, h[3] or '0')
    else
      redis.call('DEL', jk)
      out[1] = out[1] + 1
    end
  end
  return out
end
"""

# KEYS: job hash, target queue, every queue.  ARGV: id, score, max depth, payload, bucket, front,
# publish (1: wake the other gateways' dispatchers).  Returns the new depth or -1 (full).
PUSH = (
    _PUSH_FN
    + """
local depthkeys = {}
for i = 3, #KEYS do table.insert(depthkeys, KEYS[i]) end
local depth = push(KEYS[1], KEYS[2], depthkeys, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
if depth > 0 and ARGV[7] == '1' then redis.call('PUBLISH', 'skipjoin:wake', '') end
return depth
"""
)

# KEYS: queues..., leases.  ARGV: owner, lease seconds, max count, drop orphans ('1'/'0').
POP = (
    _POP_FN
    + """
local queues = {}
for i = 1, #KEYS - 1 do table.insert(queues, KEYS[i]) end
return pop(queues, KEYS[#KEYS], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4])
"""
)

# The hot path of a gateway whose own dispatcher has room: queue the job and pop the lowest jobs
# (often this one) in one round trip; the global order is unchanged.
# KEYS: job hash, target queue, leases, every queue (ARGV[7] of them), queues to pop from...
# ARGV: id, score, max depth, payload, bucket, front, n every-queues, owner, lease seconds, count,
# drop orphans.
# Returns {depth, dropped, id1, payload1, attempts1, ...}; depth -1: full, nothing popped.
PUSH_POP = (
    _PUSH_FN
    + _POP_FN
    + """
local n_all = tonumber(ARGV[7])
local depthkeys, popkeys = {}, {}
for i = 4, 3 + n_all do table.insert(depthkeys, KEYS[i]) end
for i = 4 + n_all, #KEYS do table.insert(popkeys, KEYS[i]) end
local depth = push(KEYS[1], KEYS[2], depthkeys, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
if depth < 0 then return {-1, 0} end
local out = pop(popkeys, KEYS[3], ARGV[8], ARGV[9], tonumber(ARGV[10]), ARGV[11])
table.insert(out, 1, depth)
return out
"""
)

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

# Renew the caller's leases; returns the ids it should abandon: lease lost (reaped, or leased to
# another dispatcher since: only the owner written at pop may extend it, and Redis is left alone),
# or job cancelled / front gone (nobody is left to read the answer: the job is deleted here; with
# check_fronts '0', as just after an outage, a lapsed heartbeat is not taken as gone).
# KEYS: leases.  ARGV: lease seconds, owner, check_fronts, id, front, id, front, ...
RENEW = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
local owner, check_fronts = ARGV[2], ARGV[3] == '1'
local abandon = {}
for i = 4, #ARGV, 2 do
  local id, front = ARGV[i], ARGV[i + 1]
  local jk = 'skipjoin:job:' .. id
  if not redis.call('ZSCORE', KEYS[1], id) or redis.call('HGET', jk, 'owner') ~= owner then
    table.insert(abandon, id)
  elseif (check_fronts and redis.call('EXISTS', 'skipjoin:front:' .. front) == 0)
         or redis.call('HEXISTS', jk, 'cancelled') == 1 then
    redis.call('ZREM', KEYS[1], id)
    redis.call('DEL', jk)
    table.insert(abandon, id)
  else
    redis.call('ZADD', KEYS[1], until_, id)
  end
end
return abandon
"""
