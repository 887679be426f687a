-- Stores new tasks, whole, and puts each on the schedule: a `scheduled` task due at its run_at,
-- any other (a `pending` one) due at created_at + the publish guard, so that a task whose
-- message was never published (the submitter died) is published by a scheduler.
-- ARGV[2] publish guard (ms), ARGV[3…] the tasks, each a count k and then k field/value
-- pairs (see `record_spans`).
-- Returns {1} when stored, {0, id} (nothing stored) when a task with that id exists.
local guard = tonumber(ARGV[2])
local _, firsts, lasts = record_spans(3, 0, 0)
local exists = existing_id(firsts, lasts)
if exists then
  return { 0, exists }
end
for n = 1, #firsts do
  local t = {}
  local fields = {}
  for i = firsts[n], lasts[n], 2 do
    t[ARGV[i]] = ARGV[i + 1]
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
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
