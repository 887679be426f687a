-- Helpers shared by the task-state scripts (prepended to each of them by scripts.rs).
-- ARGV[1] is always the key prefix. A task is a hash `{prefix}:task:{id}` whose empty fields
-- stand for "none"; `{prefix}:status:{status}` indexes tasks by status, scored by when they
-- entered it (for finished statuses: when they finished); `{prefix}:schedule` holds tasks by
-- due time; `{prefix}:running` maps each task an attempt is running to the attempt's mark,
-- `started_at|worker`. Tasks that succeeded are the exception: they are listed in
-- `{prefix}:succeeded`, in the order their outcomes were recorded (an append costs Redis a
-- twentieth of a sorted-set insert, and success is the outcome of almost every attempt); the
-- `success` sorted set holds only those recorded by versions before it, read until purged.
--
-- A task is `processing` while it has a mark: its record keeps the status it had (`pending`)
-- and stays in the `pending` index until the attempt ends, and `attempts` on the record counts
-- the attempts that ended (or were cut short: a redelivery counts the one before it). So
-- starting an attempt writes only the mark. Records that an older version left `processing`
-- (no mark, the running attempt counted) are still read and finished correctly.
local PREFIX = ARGV[1]
local SCHEDULE = PREFIX .. ':schedule'
local RUNNING = PREFIX .. ':running'
local SUCCEEDED = PREFIX .. ':succeeded'
local TASK_PREFIX = PREFIX .. ':task:'
local GUARD = PREFIX .. ':guard'

local function task_key(id)
  return TASK_PREFIX .. id
end

-- The created_at of a record's `spec` field (`{created_at}|{priority}|…`, see codec.rs).
local function spec_created_at(spec)
  return string.match(spec or '', '^[^|]*')
end

local function index_key(status)
  return PREFIX .. ':status:' .. status
end

-- Moves task `id` from status `old` (or none) to `new`, entered at time `at`.
local function set_status(id, key, old, new, at)
  redis.call('HSET', key, 'status', new)
  if old then
    redis.call('ZREM', index_key(old), id)
  end
  redis.call('ZADD', index_key(new), tonumber(at), id)
end

-- Runs a variadic command (`ZADD key score member …`, `ZREM key member …`) on `args`, in
-- chunks that stay within Lua's stack; an empty `args` runs nothing.
local function bulk(cmd, key, args)
  local chunk = 1000
  for first = 1, #args, chunk do
    local last = math.min(first + chunk - 1, #args)
    redis.call(cmd, key, unpack(args, first, last))
  end
end

-- Runs a variadic read (`HMGET key field …`) on `args` in chunks, as `bulk` does, and returns
-- the replies of all chunks in the order of `args`.
local function bulk_read(cmd, key, args)
  local chunk, out, n = 1000, {}, 0
  for first = 1, #args, chunk do
    local last = math.min(first + chunk - 1, #args)
    local part = redis.call(cmd, key, unpack(args, first, last))
    for j = 1, #part do
      out[n + j] = part[j]
    end
    n = n + #part
  end
  return out
end

-- Where the tasks of an insert are in ARGV, from index `at` on: each task is `before`
-- values, a count k, k field/value pairs of its record (see codec.rs: a new record holds
-- only the fields that have a value), then `after` values. Returns, per task, where it
-- starts and the first and last index of its record's pairs.
local function record_spans(at, before, after)
  local starts, firsts, lasts = {}, {}, {}
  while at <= #ARGV do
    local k = 2 * tonumber(ARGV[at + before])
    local n = #starts + 1
    starts[n], firsts[n], lasts[n] = at, at + before + 1, at + before + k
    at = at + before + 1 + k + after
  end
  return starts, firsts, lasts
end

-- The first id of the records in `firsts`/`lasts` (see `record_spans`) whose task exists.
local function existing_id(firsts, lasts)
  for n = 1, #firsts do
    for i = firsts[n], lasts[n], 2 do
      if ARGV[i] == 'id' and redis.call('EXISTS', task_key(ARGV[i + 1])) == 1 then
        return ARGV[i + 1]
      end
    end
  end
  return nil
end
