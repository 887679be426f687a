-- Helpers shared by the task-state scripts (prepended to each of them by scripts.rs).
-- ARGV[1] is always the key prefix. A task is a hash `{prefix}:task:{id}` whose empty fields
-- stand for "none"; `{prefix}:status:{status}` indexes tasks by status, scored by when they
-- entered it (for finished statuses: when they finished); `{prefix}:schedule` holds tasks by
-- due time.
local PREFIX = ARGV[1]
local SCHEDULE = PREFIX .. ':schedule'

local function task_key(id)
  return PREFIX .. ':task:' .. id
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

-- Attempts begun by one script: `begin_one` per task, then `finish_begins` once, which updates
-- the indexes and the schedule of the whole batch with one variadic command each.
local function new_begins()
  return { left_pending = {}, entered = {}, started = {} }
end

-- Starts an attempt of task `id` as `worker` if it is `pending` or `processing` (the
-- compare-and-set of `begin`): returns its attempts; otherwise nil and its status ("" if the
-- task does not exist). Two commands (HMGET, HSET).
local function begin_one(begins, id, worker, now)
  local key = task_key(id)
  local cur = redis.call('HMGET', key, 'status', 'attempts')
  local status = cur[1]
  if status ~= 'pending' and status ~= 'processing' then
    return nil, status or ''
  end
  local attempts = (tonumber(cur[2]) or 0) + 1
  redis.call('HSET', key, 'status', 'processing', 'attempts', attempts, 'started_at', now,
    'worker', worker)
  if status == 'pending' then
    begins.left_pending[#begins.left_pending + 1] = id
  end
  begins.entered[#begins.entered + 1] = now
  begins.entered[#begins.entered + 1] = id
  begins.started[#begins.started + 1] = id
  return attempts
end

local function finish_begins(begins)
  bulk('ZREM', index_key('pending'), begins.left_pending)
  bulk('ZADD', index_key('processing'), begins.entered)
  bulk('ZREM', SCHEDULE, begins.started)
end
