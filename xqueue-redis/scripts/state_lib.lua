-- Helpers shared by the task-state scripts (prepended to each of them by scripts.rs).
-- ARGV[1] is always the key prefix. A task is a hash `{prefix}:task:{id}` whose empty fields
-- stand for "none"; `{prefix}:status:{status}` indexes tasks by status (score: created_at, or
-- finished_at for finished statuses); `{prefix}:schedule` holds tasks by due time.
local PREFIX = ARGV[1]
local SCHEDULE = PREFIX .. ':schedule'
local FINISHED = { success = true, failed = true, cancelled = true }

local function task_key(id)
  return PREFIX .. ':task:' .. id
end

local function index_key(status)
  return PREFIX .. ':status:' .. status
end

local function index_score(key, status)
  local field = FINISHED[status] and 'finished_at' or 'created_at'
  return tonumber(redis.call('HGET', key, field)) or 0
end

-- Moves task `id` from status `old` (or none) to `new`. Set the other fields first: the
-- index score is read from them.
local function set_status(id, key, old, new)
  redis.call('HSET', key, 'status', new)
  if old then
    redis.call('ZREM', index_key(old), id)
  end
  redis.call('ZADD', index_key(new), index_score(key, new), id)
end
