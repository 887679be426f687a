-- Resets the idle time of deliveries the consumer still holds (XCLAIM … JUSTID to itself,
-- which leaves the delivery count alone). Deliveries it no longer holds are skipped.
--
-- KEYS     the streams
-- ARGV[1]  the group, ARGV[2] the consumer
-- ARGV[3…] per stream: the number of ids, then the ids
-- Returns how many deliveries were touched.
local group, consumer = ARGV[1], ARGV[2]
local pos = 3
local touched = 0
for _, stream in ipairs(KEYS) do
  local n = tonumber(ARGV[pos])
  pos = pos + 1
  for i = 1, n do
    local id = ARGV[pos + i - 1]
    if pending_count(stream, group, id, consumer) then
      redis.call('XCLAIM', stream, group, consumer, 0, id, 'JUSTID')
      touched = touched + 1
    end
  end
  pos = pos + n
end
return touched
