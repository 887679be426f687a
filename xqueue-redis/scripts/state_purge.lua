-- Deletes tasks of one finished status.
-- ARGV[2] status, ARGV[3] 'ids', 'all' or 'before', ARGV[4] most tasks to look at
-- ('all', 'before'), ARGV[5] finished at or before ('before'); ARGV[5…] ids ('ids').
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
local deleted = 0
for _, id in ipairs(ids) do
  local key = task_key(id)
  if redis.call('HGET', key, 'status') == status then
    redis.call('DEL', key)
    redis.call('ZREM', SCHEDULE, id)
    -- A mark left by an attempt cut short between its start and `begin`'s settling.
    redis.call('HDEL', RUNNING, id)
    deleted = deleted + 1
  end
  -- Either deleted now, or a stale index entry (the task is gone or in another status).
  redis.call('ZREM', index, id)
end
return { deleted, #ids }
