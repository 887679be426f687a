-- Starts attempts: `pending` and `processing` tasks become `processing` with attempts + 1.
-- ARGV[2] worker, ARGV[3] now, ARGV[4…] task ids.
-- Returns per id {1, attempts} (run) or {0, status or ""} (skip).
--
-- The caller reads the records with HGETALL in the same pipeline, right after this script:
-- a record read in Lua and handed back costs Redis several times a native HGETALL.
-- Two commands per task (HMGET, HSET); the index and schedule updates of the whole batch
-- are one variadic command each.
local worker, now = ARGV[2], ARGV[3]
local out = {}
local left_pending, entered, started = {}, {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = task_key(id)
  local cur = redis.call('HMGET', key, 'status', 'attempts')
  local status = cur[1]
  if status == 'pending' or status == 'processing' then
    local attempts = (tonumber(cur[2]) or 0) + 1
    redis.call('HSET', key, 'status', 'processing', 'attempts', attempts, 'started_at', now,
      'worker', worker)
    if status == 'pending' then
      left_pending[#left_pending + 1] = id
    end
    entered[#entered + 1] = now
    entered[#entered + 1] = id
    started[#started + 1] = id
    out[#out + 1] = { 1, attempts }
  else
    out[#out + 1] = { 0, status or '' }
  end
end
bulk('ZREM', index_key('pending'), left_pending)
bulk('ZADD', index_key('processing'), entered)
bulk('ZREM', SCHEDULE, started)
return out
