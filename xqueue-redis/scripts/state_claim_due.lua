-- Claims due tasks for one caller: `scheduled`, `retrying` (and `pending` ones whose previous
-- claim lapsed) with due time <= now become `pending` and stay on the schedule, due again at
-- now + lease. Tasks in any other status are taken off the schedule.
-- ARGV[2] now, ARGV[3] lease (ms), ARGV[4] limit.
-- Returns the claimed tasks' fields.
local now, lease, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local ids = redis.call('ZRANGEBYSCORE', SCHEDULE, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local key = task_key(id)
  local status = redis.call('HGET', key, 'status')
  if status == 'scheduled' or status == 'retrying' or status == 'pending' then
    if status ~= 'pending' then
      set_status(id, key, status, 'pending')
    end
    redis.call('ZADD', SCHEDULE, now + lease, id)
    out[#out + 1] = redis.call('HGETALL', key)
  else
    redis.call('ZREM', SCHEDULE, id)
  end
end
return out
