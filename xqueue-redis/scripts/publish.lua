-- Appends messages to a queue's stream unless it is full, after trimming what every group
-- has acked.
--
-- KEYS[1]  the stream
-- ARGV[1]  max_len: most entries any group may have undelivered + pending
-- ARGV[2]  k: field/value pairs per message
-- ARGV[3…] the messages, 2k values each
-- Returns {1, in_use} when added, {0, in_use} when refused (in_use counts before adding).
--
-- Trimming: an entry may go only once every group has had it delivered and acked, i.e. it is
-- older than each group's oldest pending entry and than its last delivered entry. Those are
-- removed with XTRIM MINID ~ (whole radix-tree nodes only: never more than allowed). MAXLEN is
-- never used, since it deletes pending entries (XAUTOCLAIM then drops them for good).
local stream = KEYS[1]
local max_len = tonumber(ARGV[1])
local per = 2 * tonumber(ARGV[2])
local n = (#ARGV - 2) / per

local in_use = 0
if redis.call('EXISTS', stream) == 1 then
  local len = redis.call('XLEN', stream)
  local groups = groups_of(stream)
  if #groups == 0 then
    -- Nobody has read anything yet: every entry is undelivered.
    in_use = len
  end
  local minid = nil
  for _, g in ipairs(groups) do
    local used
    if type(g['lag']) == 'number' then
      used = g['lag'] + g['pending']
    else
      -- Redis cannot tell the lag (entries were deleted): count every entry.
      used = len
    end
    if used > in_use then
      in_use = used
    end
    local needed = g['last-delivered-id']
    if g['pending'] > 0 then
      needed = redis.call('XPENDING', stream, g['name'])[2]
    end
    if minid == nil or cmp_id(needed, minid) < 0 then
      minid = needed
    end
  end
  if minid ~= nil and minid ~= '0-0' then
    redis.call('XTRIM', stream, 'MINID', '~', minid)
  end
end

if in_use + n > max_len then
  return {0, in_use}
end
for m = 0, n - 1 do
  local entry = {}
  for i = 1, per do
    entry[i] = ARGV[2 + m * per + i]
  end
  redis.call('XADD', stream, '*', unpack(entry))
end
return {1, in_use}
