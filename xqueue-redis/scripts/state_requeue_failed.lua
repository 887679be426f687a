-- Moves dead-lettered tasks back to `scheduled`, due now, attempts reset.
-- ARGV[2] now, ARGV[3] 'ids' or 'all', ARGV[4] most tasks to look at ('all'),
-- ARGV[5…] ids ('ids').
-- Returns {requeued, looked at}.
local now, mode, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local ids = {}
if mode == 'all' then
  ids = redis.call('ZRANGE', index_key('failed'), 0, limit - 1)
else
  for i = 5, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
end
local requeued = 0
for _, id in ipairs(ids) do
  local key = task_key(id)
  local status = redis.call('HGET', key, 'status')
  if status == 'failed' then
    redis.call('HSET', key, 'attempts', 0, 'run_at', now, 'finished_at', '')
    set_status(id, key, 'failed', 'scheduled', now)
    redis.call('ZADD', SCHEDULE, tonumber(now), id)
    requeued = requeued + 1
  elseif mode == 'all' then
    redis.call('ZREM', index_key('failed'), id) -- a stale index entry
  end
end
return { requeued, #ids }
