-- Appends messages to a queue's stream unless it is full, after trimming what every group
-- has acked (see `trim_and_count` in stream_lib.lua).
--
-- KEYS[1]  the stream
-- ARGV[1]  max_len: most entries any group may have undelivered + pending
-- ARGV[2]  k: field/value pairs per message
-- ARGV[3…] the messages, 2k values each
-- Returns {1, in_use} when added, {0, in_use} when refused (in_use counts before adding).
local stream = KEYS[1]
local max_len = tonumber(ARGV[1])
local per = 2 * tonumber(ARGV[2])
local n = (#ARGV - 2) / per

local in_use = trim_and_count(stream)
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
