-- Starts attempts: `pending` and `processing` tasks become `processing` with attempts + 1.
-- ARGV[2] worker, ARGV[3] now, ARGV[4…] task ids.
-- Returns per id {1, task fields} (run) or {0, status or ""} (skip).
--
-- Two commands per task (HGETALL, HSET); the index and schedule updates of the whole batch
-- are one variadic command each.
local worker, now = ARGV[2], ARGV[3]
local out = {}
local left_pending, entered, started = {}, {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = task_key(id)
  local fields = redis.call('HGETALL', key)
  local at = {}
  for j = 1, #fields, 2 do
    at[fields[j]] = j + 1
  end
  local status = at['status'] and fields[at['status']]
  if status == 'pending' or status == 'processing' then
    local attempts = (tonumber(at['attempts'] and fields[at['attempts']]) or 0) + 1
    redis.call('HSET', key, 'status', 'processing', 'attempts', attempts, 'started_at', now,
      'worker', worker)
    -- The answer is the record as it is now.
    for name, value in pairs({ status = 'processing', attempts = tostring(attempts),
        started_at = now, worker = worker }) do
      if at[name] then
        fields[at[name]] = value
      else
        fields[#fields + 1] = name
        fields[#fields + 1] = value
      end
    end
    if status == 'pending' then
      left_pending[#left_pending + 1] = id
    end
    entered[#entered + 1] = now
    entered[#entered + 1] = id
    started[#started + 1] = id
    out[#out + 1] = { 1, fields }
  else
    out[#out + 1] = { 0, status or '' }
  end
end
bulk('ZREM', index_key('pending'), left_pending)
bulk('ZADD', index_key('processing'), entered)
bulk('ZREM', SCHEDULE, started)
return out
