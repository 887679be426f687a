-- Records how attempts ended: only a task marked running changes, and its mark is taken off
-- (a second completion of the same attempt, or one of an attempt given back, changes nothing).
-- ARGV[2…] per completion 8 values: id, outcome (success|retry|failed), at, data (the result
-- as JSON, "" for none; or the error), run_at (retry only), and the attempt as `begin`
-- returned it: attempts, started_at, worker.
-- Returns how many tasks changed.
--
-- Two commands per task (HDEL, HSET); the index and schedule updates of the whole batch are
-- one variadic command each (for successes, an append to `{prefix}:succeeded`). The record
-- leaves `pending` here, not at the start.
local changed = {}
local entered = { failed = {}, retrying = {} }
local succeeded = {}
local due = {}
for i = 2, #ARGV, 8 do
  local id, outcome, at, data, run_at = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if redis.call('HDEL', RUNNING, id) == 1 then
    local key = task_key(id)
    local attempts, started, worker = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
    local new
    if outcome == 'success' then
      new = 'success'
      redis.call('HSET', key, 'status', new, 'result', data, 'finished_at', at,
        'attempts', attempts, 'started_at', started, 'worker', worker)
    elseif outcome == 'failed' then
      new = 'failed'
      redis.call('HSET', key, 'status', new, 'last_error', data, 'finished_at', at,
        'attempts', attempts, 'started_at', started, 'worker', worker)
    else
      new = 'retrying'
      redis.call('HSET', key, 'status', new, 'last_error', data, 'run_at', run_at,
        'attempts', attempts, 'started_at', started, 'worker', worker)
      due[#due + 1] = run_at
      due[#due + 1] = id
    end
    if new == 'success' then
      succeeded[#succeeded + 1] = id
    else
      local list = entered[new]
      list[#list + 1] = at
      list[#list + 1] = id
    end
    changed[#changed + 1] = id
  end
end
bulk('ZREM', index_key('pending'), changed)
-- Tasks an older version started are in the `processing` index (usually empty: one lookup).
bulk('ZREM', index_key('processing'), changed)
for status, list in pairs(entered) do
  bulk('ZADD', index_key(status), list)
end
bulk('RPUSH', SUCCEEDED, succeeded)
bulk('ZADD', SCHEDULE, due)
return #changed
