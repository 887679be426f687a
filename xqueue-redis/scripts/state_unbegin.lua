-- Gives `processing` tasks back to `pending` without counting the attempt.
-- ARGV[2…] task ids. Returns how many changed.
local changed = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local key = task_key(id)
  if redis.call('HGET', key, 'status') == 'processing' then
    if redis.call('HINCRBY', key, 'attempts', -1) < 0 then
      redis.call('HSET', key, 'attempts', 0)
    end
    set_status(id, key, 'processing', 'pending')
    changed = changed + 1
  end
end
return changed
