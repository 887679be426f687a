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
-- The loop runs for every task recorded, so it reads the globals (`ARGV`, `redis.call`)
-- once into locals, builds keys inline and keeps the lists' lengths itself (Lua's `#` is a
-- search): 5 % less script time than global lookups, `task_key` and `#` (BENCHMARKS.md).
local argv, call = ARGV, redis.call
local changed, n_changed = {}, 0
local entered = { failed = {}, retrying = {} }
local succeeded, n_succeeded = {}, 0
local due, n_due = {}, 0
for i = 2, #argv, 8 do
  local id = argv[i]
  if call('HDEL', RUNNING, id) == 1 then
    local key = TASK_PREFIX .. id
    local outcome, at, data = argv[i + 1], argv[i + 2], argv[i + 3]
    local attempts, started, worker = argv[i + 5], argv[i + 6], argv[i + 7]
    if outcome == 'success' then
      call('HSET', key, 'status', 'success', 'result', data, 'finished_at', at,
        'attempts', attempts, 'started_at', started, 'worker', worker)
      n_succeeded = n_succeeded + 1
      succeeded[n_succeeded] = id
    else
      local new, run_at = 'failed', argv[i + 4]
      if outcome == 'failed' then
        call('HSET', key, 'status', new, 'last_error', data, 'finished_at', at,
          'attempts', attempts, 'started_at', started, 'worker', worker)
      else
        new = 'retrying'
        call('HSET', key, 'status', new, 'last_error', data, 'run_at', run_at,
          'attempts', attempts, 'started_at', started, 'worker', worker)
        due[n_due + 1] = run_at
        due[n_due + 2] = id
        n_due = n_due + 2
      end
      local list = entered[new]
      list[#list + 1] = at
      list[#list + 1] = id
    end
    n_changed = n_changed + 1
    changed[n_changed] = id
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
return n_changed
