-- Records how attempts ended; only `processing` tasks change.
-- ARGV[2…] per completion 5 values: id, outcome (success|retry|failed), at, data (the result
-- as JSON, "" for none; or the error), run_at (retry only).
-- Returns how many tasks changed.
local changed = 0
for i = 2, #ARGV, 5 do
  local id, outcome, at, data, run_at = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local key = task_key(id)
  if redis.call('HGET', key, 'status') == 'processing' then
    if outcome == 'success' then
      redis.call('HSET', key, 'result', data, 'finished_at', at)
      set_status(id, key, 'processing', 'success', at)
    elseif outcome == 'failed' then
      redis.call('HSET', key, 'last_error', data, 'finished_at', at)
      set_status(id, key, 'processing', 'failed', at)
    else
      redis.call('HSET', key, 'last_error', data, 'run_at', run_at)
      set_status(id, key, 'processing', 'retrying', at)
      redis.call('ZADD', SCHEDULE, tonumber(run_at), id)
    end
    changed = changed + 1
  end
end
return changed
