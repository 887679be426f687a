-- Records how attempts ended: only a task marked running changes, and its mark is taken off
-- (a second completion of the same attempt, or one of an attempt given back, changes nothing).
-- ARGV[2] p: how many plain successes (no result) come first, each 2 values: id, run; then
-- per other completion 5 values: id, outcome (success|retry|failed), data (the result as
-- JSON; or the error), run_at (retry only), run. `run` is the attempt as it ended,
-- `{finished_at}|{attempts}|{started_at}|{worker}` (the record's `run` field, see codec.rs).
-- Returns how many tasks changed.
--
-- One command per task, the record's HSET: a success writes two fields (`status` and the
-- packed `run`; a third, `result`, only for a result), a retry or failure the fields apart.
-- The marks of the whole batch are read with one variadic HMGET and taken off with one HDEL;
-- the index and schedule updates are one variadic command each (for successes, an append to
-- `{prefix}:succeeded`). The record leaves `pending` here, not at the start. A plain success,
-- almost every completion, costs 2 arguments instead of 5 (BENCHMARKS.md, fix 18).
-- The loop runs for every task recorded, so it reads the globals (`ARGV`, `redis.call`)
-- once into locals, builds keys inline and keeps the lists' lengths itself (Lua's `#` is a
-- search): 5 % less script time than global lookups, `task_key` and `#` (BENCHMARKS.md).
local argv, call = ARGV, redis.call
local plain_end = 2 + 2 * tonumber(argv[2])
local changed, n_changed = {}, 0
local entered = { failed = {}, retrying = {} }
local succeeded, n_succeeded = {}, 0
local due, n_due = {}, 0
local ids, at_arg, n = {}, {}, 0
for i = 3, plain_end, 2 do
  n = n + 1
  ids[n], at_arg[n] = argv[i], i
end
for i = plain_end + 1, #argv, 5 do
  n = n + 1
  ids[n], at_arg[n] = argv[i], i
end
local marks = bulk_read('HMGET', RUNNING, ids)
local seen = {}
for k = 1, n do
  local i, id = at_arg[k], ids[k]
  if marks[k] and not seen[id] then
    seen[id] = true
    local key = TASK_PREFIX .. id
    local outcome, data, run
    if i <= plain_end then
      outcome, data, run = 'success', '', argv[i + 1]
    else
      outcome, data, run = argv[i + 1], argv[i + 2], argv[i + 4]
    end
    if outcome == 'success' then
      if data == '' then
        call('HSET', key, 'status', 'success', 'run', run)
      else
        call('HSET', key, 'status', 'success', 'run', run, 'result', data)
      end
      n_succeeded = n_succeeded + 1
      succeeded[n_succeeded] = id
    else
      local at, attempts, started, worker = string.match(run, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
      local new, run_at = 'failed', argv[i + 3]
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
bulk('HDEL', RUNNING, changed)
bulk('ZREM', index_key('pending'), changed)
-- Tasks an older version started are in the `processing` index, which is usually gone: its
-- ids are converted for `ZREM` only when it exists.
if call('EXISTS', index_key('processing')) == 1 then
  bulk('ZREM', index_key('processing'), changed)
end
for status, list in pairs(entered) do
  bulk('ZADD', index_key(status), list)
end
bulk('RPUSH', SUCCEEDED, succeeded)
bulk('ZADD', SCHEDULE, due)
return n_changed
