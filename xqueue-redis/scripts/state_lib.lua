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
