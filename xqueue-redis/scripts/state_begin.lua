-- Starts attempts: `pending` and `processing` tasks become `processing` with attempts + 1.
-- ARGV[2] worker, ARGV[3] now, ARGV[4…] task ids.
-- Returns per id {1, task fields} (run) or {0, status or ""} (skip).
local worker, now = ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = task_key(id)
  local status = redis.call('HGET', key, 'status')
  if status == 'pending' or status == 'processing' then
    redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'started_at', now, 'worker', worker)
    set_status(id, key, status, 'processing', now)
    redis.call('ZREM', SCHEDULE, id)
    out[#out + 1] = { 1, redis.call('HGETALL', key) }
  else
    out[#out + 1] = { 0, status or '' }
  end
end
return out
