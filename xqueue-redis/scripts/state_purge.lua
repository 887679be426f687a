-- Deletes tasks of one finished status.
-- ARGV[2] status, ARGV[3] 'ids', 'all' or 'before', ARGV[4] most tasks to look at
-- ('all', 'before'), ARGV[5] finished at or before ('before'); ARGV[5…] ids ('ids').
-- 'ids' and 'all' are for failed tasks (purge_failed); succeeded tasks are purged 'before'.
-- Returns {deleted, looked at}.
local status, mode, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local index = index_key(status)
local ids = {}
if mode == 'all' then
  ids = redis.call('ZRANGE', index, 0, limit - 1)
elseif mode == 'before' then
  ids = redis.call('ZRANGEBYSCORE', index, '-inf', ARGV[5], 'LIMIT', 0, limit)
else
  for i = 5, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
end

local function delete(id, key)
  redis.call('DEL', key)
  redis.call('ZREM', SCHEDULE, id)
  -- A mark left by an attempt cut short between its start and `begin`'s settling.
  redis.call('HDEL', RUNNING, id)
end

local deleted = 0
for _, id in ipairs(ids) do
  local key = task_key(id)
  if redis.call('HGET', key, 'status') == status then
    delete(id, key)
    deleted = deleted + 1
  end
  -- Either deleted now, or a stale index entry (the task is gone or in another status).
  redis.call('ZREM', index, id)
end
local looked = #ids
-- A cancelled task's entry may still wait in its stream, and a fetch may have kept the
-- snapshot it carries: once the record is gone, no snapshot fetched before is trusted.
if status == 'cancelled' and deleted > 0 then
  renew_guard(GUARD)
end

-- Succeeded tasks are listed in `{prefix}:succeeded` in the order recorded, which is the
-- order they finished up to the clock differences of instances: take from its head while
-- they finished at or before the cutoff (one recorded late by a slow clock waits for the
-- next purge). A listed task that is gone, or not `success`, is only taken off the list.
if status == 'success' and mode == 'before' and looked < limit then
  local before = tonumber(ARGV[5])
  local taken = 0
  for _, id in ipairs(redis.call('LRANGE', SUCCEEDED, 0, limit - looked - 1)) do
    local key = task_key(id)
    -- `finished_at` leads the packed `run` (an earlier version's success holds it apart).
    local cur = redis.call('HMGET', key, 'status', 'run', 'finished_at')
    if cur[1] == 'success' then
      local finished = cur[2] and string.match(cur[2], '^[^|]*') or cur[3]
      if (tonumber(finished) or 0) > before then
        break
      end
      delete(id, key)
      deleted = deleted + 1
    end
    taken = taken + 1
  end
  if taken > 0 then
    redis.call('LTRIM', SUCCEEDED, taken, -1)
  end
  looked = looked + taken
end
return { deleted, looked }
