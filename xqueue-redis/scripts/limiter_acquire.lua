-- Takes up to `want` permits: grants min(want, limit - held) atomically (every request when
-- the type has no limit). A new holder gets the default lease; an existing one keeps the
-- longer of its lease and that.
-- ARGV[2] type, ARGV[3] holder, ARGV[4] want, ARGV[5] default lease (ms).
-- Returns how many permits were granted.
local task_type, holder, want, lease = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
expire(now)
local grant = want
local limit = tonumber(redis.call('HGET', LIMITS, task_type))
if limit then
  grant = math.max(0, math.min(want, limit - held(task_type)))
end
if grant > 0 then
  redis.call('HINCRBY', permits_key(task_type), holder, grant)
  redis.call('SADD', holder_key(holder), task_type)
  redis.call('ZADD', HOLDERS, 'GT', now + lease, holder)
end
return grant
