-- Cancels a task that has not started.
-- ARGV[2] id, ARGV[3] now.
-- Returns {'ok', fields}, {'missing'} or {'conflict', status}.
local id, now = ARGV[2], ARGV[3]
local key = task_key(id)
local status = redis.call('HGET', key, 'status')
if not status then
  return { 'missing' }
end
if redis.call('HEXISTS', RUNNING, id) == 1 then
  return { 'conflict', 'processing' }
end
if status ~= 'pending' and status ~= 'scheduled' and status ~= 'retrying' then
  return { 'conflict', status }
end
redis.call('HSET', key, 'finished_at', now)
set_status(id, key, status, 'cancelled', now)
redis.call('ZREM', SCHEDULE, id)
return { 'ok', redis.call('HGETALL', key) }
