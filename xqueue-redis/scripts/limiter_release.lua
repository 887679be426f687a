-- Gives back permits (never below zero; an expired holder's permits are already gone).
-- ARGV[2] type, ARGV[3] holder, ARGV[4] count.
local task_type, holder, count = ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = permits_key(task_type)
if redis.call('HEXISTS', key, holder) == 1 then
  if redis.call('HINCRBY', key, holder, -count) <= 0 then
    redis.call('HDEL', key, holder)
    redis.call('SREM', holder_key(holder), task_type)
    if redis.call('SCARD', holder_key(holder)) == 0 then
      redis.call('ZREM', HOLDERS, holder)
    end
  end
end
return 1
