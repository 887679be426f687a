-- Appends messages to a queue's stream unless it is full, trimming what every group has
-- acked once the stream is long enough (see `room_for` in stream_lib.lua).
--
-- KEYS[1]  the stream
-- ARGV[1]  max_len: most entries any group may have undelivered + pending
-- ARGV[2]  k: field/value pairs per message
-- ARGV[3…] the messages, 2k values each
-- Returns {1, in_use} when added (in_use: at most the stream's length before adding), {0,
-- in_use} when refused (in_use: exact, before adding).
local stream = KEYS[1]
local max_len = tonumber(ARGV[1])
local per = 2 * tonumber(ARGV[2])
local n = (#ARGV - 2) / per

local fits, in_use = room_for(stream, n, max_len)
if not fits then
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
