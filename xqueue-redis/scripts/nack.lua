-- Gives pending deliveries back: each is re-added at the end of its stream (with its delivery
-- count carried in the `deliveries` field) and the original is acked, atomically.
--
-- KEYS     the streams
-- ARGV[1]  the group, ARGV[2] the consumer that holds the deliveries
-- ARGV[3…] per stream: the number of ids, then the ids
-- Returns how many deliveries were given back (ids not pending for the consumer are skipped).
local group, consumer = ARGV[1], ARGV[2]
local pos = 3
local given = 0
for _, stream in ipairs(KEYS) do
  local n = tonumber(ARGV[pos])
  pos = pos + 1
  for i = 1, n do
    local id = ARGV[pos + i - 1]
    local count = pending_count(stream, group, id, consumer)
    if count then
      local entry = redis.call('XRANGE', stream, id, id)
      if #entry == 1 then
        local fields = entry[1][2]
        local copy = {}
        local before = 0
        for j = 1, #fields, 2 do
          if fields[j] == 'deliveries' then
            before = tonumber(fields[j + 1]) or 0
          else
            copy[#copy + 1] = fields[j]
            copy[#copy + 1] = fields[j + 1]
          end
        end
        copy[#copy + 1] = 'deliveries'
        copy[#copy + 1] = tostring(before + count)
        redis.call('XADD', stream, '*', unpack(copy))
      end
      redis.call('XACK', stream, group, id)
      given = given + 1
    end
  end
  pos = pos + n
end
return given
