-- Gives attempts back before they started: takes their marks off without counting them; each
-- task goes on the schedule as a publish guard (due at now + guard) in case its message is
-- never published.
-- ARGV[2] now, ARGV[3] publish guard (ms), ARGV[4…] task ids. Returns how many changed.
local now, guard = tonumber(ARGV[2]), tonumber(ARGV[3])
local changed = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HDEL', RUNNING, id) == 1 then
    local key = task_key(id)
    local status = redis.call('HGET', key, 'status')
    if status == 'processing' then
      -- Started by an older version, which counted the attempt at its start.
      if redis.call('HINCRBY', key, 'attempts', -1) < 0 then
        redis.call('HSET', key, 'attempts', 0)
      end
      set_status(id, key, 'processing', 'pending', now)
      status = 'pending'
    end
    if status == 'pending' then
      redis.call('ZADD', SCHEDULE, now + guard, id)
      changed = changed + 1
    end
  end
end
return changed
