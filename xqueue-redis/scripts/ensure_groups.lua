-- Creates a consumer group on each stream (and the stream) unless it exists.
-- The group starts at id 0, so messages published before its first fetch are delivered.
--
-- KEYS     the streams
-- ARGV[1]  the group
-- Returns how many groups were created.
local created = 0
for _, stream in ipairs(KEYS) do
  local r = redis.pcall('XGROUP', 'CREATE', stream, ARGV[1], '0', 'MKSTREAM')
  if type(r) == 'table' and r['err'] then
    if not string.find(r['err'], 'BUSYGROUP', 1, true) then
      return redis.error_reply(r['err'])
    end
  else
    created = created + 1
  end
end
return created
