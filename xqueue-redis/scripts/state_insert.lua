-- Stores new tasks, whole, and puts each on the schedule: a `scheduled` task due at its run_at,
-- any other (a `pending` one) due at created_at + the publish guard, so that a task whose
-- message was never published (the submitter died) is published by a scheduler.
-- ARGV[2] publish guard (ms), ARGV[3] k: fields per task,
-- ARGV[4…] the tasks, k field/value pairs each (see codec.rs).
-- Returns {1} when stored, {0, id} (nothing stored) when a task with that id exists.
local guard = tonumber(ARGV[2])
local per = 2 * tonumber(ARGV[3])
for base = 4, #ARGV, per do
  local id_at = nil
  for i = 0, per - 1, 2 do
    if ARGV[base + i] == 'id' then
      id_at = base + i + 1
    end
  end
  if redis.call('EXISTS', task_key(ARGV[id_at])) == 1 then
    return { 0, ARGV[id_at] }
  end
end
for base = 4, #ARGV, per do
  local t = {}
  local fields = {}
  for i = 0, per - 1, 2 do
    t[ARGV[base + i]] = ARGV[base + i + 1]
    fields[#fields + 1] = ARGV[base + i]
    fields[#fields + 1] = ARGV[base + i + 1]
  end
  local id = t['id']
  local key = task_key(id)
  local created = tonumber(spec_created_at(t['spec'])) or 0
  redis.call('HSET', key, unpack(fields))
  set_status(id, key, nil, t['status'], created)
  local due = created + guard
  if t['status'] == 'scheduled' then
    due = tonumber(t['run_at']) or created
  end
  redis.call('ZADD', SCHEDULE, due, id)
end
return { 1 }
