-- Claims due tasks for one caller: tasks on the schedule due at or before now whose status is
-- `scheduled`, `retrying` or `pending` become `pending` and stay on the schedule, due again at
-- now + lease. Schedule entries of tasks in any other status (or gone), and of running tasks,
-- are dropped.
-- ARGV[2] now, ARGV[3] lease (ms), ARGV[4] limit.
-- Returns the claimed tasks' fields.
local now, lease, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local offset = 0
while #out < limit do
  local ids = redis.call('ZRANGEBYSCORE', SCHEDULE, '-inf', now, 'LIMIT', offset, limit - #out)
  if #ids == 0 then
    break
  end
  for _, id in ipairs(ids) do
    local key = task_key(id)
    local status = redis.call('HGET', key, 'status')
    -- A `pending` task with a mark has started: its schedule entry is dropped.
    local claimable = status == 'scheduled' or status == 'retrying'
      or (status == 'pending' and redis.call('HEXISTS', RUNNING, id) == 0)
    if claimable then
      set_status(id, key, status, 'pending', now)
      -- Due again later: it leaves the range being scanned.
      redis.call('ZADD', SCHEDULE, now + lease, id)
      out[#out + 1] = redis.call('HGETALL', key)
    else
      redis.call('ZREM', SCHEDULE, id)
    end
  end
  -- Every id seen left the due range (re-scheduled later or removed), unless lease is 0.
  if lease <= 0 then
    offset = offset + #ids
  end
end
return out
