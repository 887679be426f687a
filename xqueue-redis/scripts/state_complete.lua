-- Records how attempts ended; only `processing` tasks change.
-- ARGV[2…] per completion 5 values: id, outcome (success|retry|failed), at, data (the result
-- as JSON, "" for none; or the error), run_at (retry only).
-- Returns how many tasks changed.
--
-- Two commands per task (HGET, HSET); the index and schedule updates of the whole batch are
-- one variadic command each.
local changed = {}
local entered = { success = {}, failed = {}, retrying = {} }
local due = {}
for i = 2, #ARGV, 5 do
  local id, outcome, at, data, run_at = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local key = task_key(id)
  if redis.call('HGET', key, 'status') == 'processing' then
    local new
    if outcome == 'success' then
      new = 'success'
      redis.call('HSET', key, 'status', new, 'result', data, 'finished_at', at)
    elseif outcome == 'failed' then
      new = 'failed'
      redis.call('HSET', key, 'status', new, 'last_error', data, 'finished_at', at)
    else
      new = 'retrying'
      redis.call('HSET', key, 'status', new, 'last_error', data, 'run_at', run_at)
      due[#due + 1] = run_at
      due[#due + 1] = id
    end
    local list = entered[new]
    list[#list + 1] = at
    list[#list + 1] = id
    changed[#changed + 1] = id
  end
end
bulk('ZREM', index_key('processing'), changed)
for status, list in pairs(entered) do
  bulk('ZADD', index_key(status), list)
end
bulk('ZADD', SCHEDULE, due)
return #changed
