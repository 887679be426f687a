-- Extends a holder's lease to `lease` from now, if it still holds permits.
-- ARGV[2] holder, ARGV[3] lease (ms).
local holder, lease = ARGV[2], tonumber(ARGV[3])
local now = now_ms()
expire(now)
if redis.call('EXISTS', holder_key(holder)) == 1 then
  redis.call('ZADD', HOLDERS, now + lease, holder)
end
return 1
