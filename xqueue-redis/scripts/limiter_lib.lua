-- Helpers shared by the limiter scripts (prepended to each of them by scripts.rs).
-- ARGV[1] is always the key prefix. `{prefix}:limits` maps a type to its limit;
-- `{prefix}:permits:{type}` maps a holder to the permits of that type it holds;
-- `{prefix}:holder:{holder}` lists the types a holder holds; `{prefix}:holders` scores each
-- holder by its lease expiry. Times are the server's (TIME), so instances' clocks don't matter.
local PREFIX = ARGV[1]
local LIMITS = PREFIX .. ':limits'
local HOLDERS = PREFIX .. ':holders'

local function permits_key(task_type)
  return PREFIX .. ':permits:' .. task_type
end

local function holder_key(holder)
  return PREFIX .. ':holder:' .. holder
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Drops every permit of holders whose lease has passed.
local function expire(now)
  for _, h in ipairs(redis.call('ZRANGEBYSCORE', HOLDERS, '-inf', now)) do
    for _, t in ipairs(redis.call('SMEMBERS', holder_key(h))) do
      redis.call('HDEL', permits_key(t), h)
    end
    redis.call('DEL', holder_key(h))
    redis.call('ZREM', HOLDERS, h)
  end
end

-- Permits of a type held now, by every holder.
local function held(task_type)
  local sum = 0
  for _, v in ipairs(redis.call('HVALS', permits_key(task_type))) do
    sum = sum + tonumber(v)
  end
  return sum
end
