-- Stores new tasks, whole.
-- ARGV[2] k: fields per task; ARGV[3…] the tasks, k field/value pairs each (see codec.rs).
-- A task with status `scheduled` is also put on the schedule, due at its run_at.
local per = 2 * tonumber(ARGV[2])
for base = 3, #ARGV, per do
  local t = {}
  local pairs_ = {}
  for i = 0, per - 1, 2 do
    t[ARGV[base + i]] = ARGV[base + i + 1]
    pairs_[#pairs_ + 1] = ARGV[base + i]
    pairs_[#pairs_ + 1] = ARGV[base + i + 1]
  end
  local id = t['id']
  local key = task_key(id)
  local old = redis.call('HGET', key, 'status')
  if old then
    redis.call('ZREM', index_key(old), id)
    redis.call('ZREM', SCHEDULE, id)
    redis.call('DEL', key)
  end
  redis.call('HSET', key, unpack(pairs_))
  redis.call('ZADD', index_key(t['status']), index_score(key, t['status']), id)
  if t['status'] == 'scheduled' then
    redis.call('ZADD', SCHEDULE, tonumber(t['run_at']) or 0, id)
  end
end
return 1
