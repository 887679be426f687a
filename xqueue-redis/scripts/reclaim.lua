-- Takes over deliveries idle for at least min_idle, from any member of the group.
--
-- KEYS     the streams
-- ARGV[1]  the group, ARGV[2] the new owner, ARGV[3] min_idle (ms), ARGV[4] most per stream,
-- ARGV[5]  the guard token, replaced by a new one when anything is taken: the snapshots a
--          consumer keeps of the tasks it fetched are then no longer trusted (see `begin` in
--          start.rs)
-- Returns per stream {entries, lost}: entries are {id, fields, delivery count} (the count
-- includes this delivery); lost are ids whose entries were deleted from the stream (XAUTOCLAIM
-- removes them from the pending list).
local group, consumer, min_idle, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local taken = 0
local out = {}
for _, stream in ipairs(KEYS) do
  local got, lost = {}, {}
  local cursor = '0-0'
  local rounds = 0
  repeat
    local r = redis.call('XAUTOCLAIM', stream, group, consumer, min_idle, cursor,
      'COUNT', count - #got)
    cursor = r[1]
    for _, e in ipairs(r[2]) do
      if e[2] then
        got[#got + 1] = e
      else
        lost[#lost + 1] = e[1] -- Redis 6.2 reports deleted entries this way
      end
    end
    if r[3] then
      for _, id in ipairs(r[3]) do
        lost[#lost + 1] = id
      end
    end
    rounds = rounds + 1
  until cursor == '0-0' or #got >= count or rounds >= 10
  taken = taken + #got
  local entries = {}
  for _, e in ipairs(got) do
    entries[#entries + 1] = {e[1], e[2], pending_count(stream, group, e[1], nil) or 1}
  end
  out[#out + 1] = {entries, lost}
end
if taken > 0 then
  renew_guard(ARGV[5])
end
return out
