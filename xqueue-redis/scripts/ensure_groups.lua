-- Creates a consumer group on each stream (and the stream) unless it exists.
-- The group starts at id 0, so messages published before its first fetch are delivered.
--
-- A group created beside another one, or again after it was lost, may be handed entries that
-- another group (or the lost one) has already run: the stream's snapshot floor (see `begin`
-- in start.rs) is set so that no snapshot of those entries is trusted: `+` (none, ever) for a
-- stream with two groups or more, else the stream's last id when the group was re-created.
--
-- KEYS     the streams
-- ARGV[1]  the group, ARGV[2] the hash of snapshot floors by stream,
-- ARGV[3…] per stream, '1' when this consumer saw its group lost (NOGROUP)
-- Returns how many groups were created.
local created = 0
for i, stream in ipairs(KEYS) do
  local r = redis.pcall('XGROUP', 'CREATE', stream, ARGV[1], '0', 'MKSTREAM')
  if type(r) == 'table' and r['err'] then
    if not string.find(r['err'], 'BUSYGROUP', 1, true) then
      return redis.error_reply(r['err'])
    end
  else
    created = created + 1
    if #redis.call('XINFO', 'GROUPS', stream) > 1 then
      redis.call('HSET', ARGV[2], stream, '+')
    elseif ARGV[2 + i] == '1' then
      local info = redis.call('XINFO', 'STREAM', stream)
      for j = 1, #info, 2 do
        if info[j] == 'last-generated-id' then
          redis.call('HSET', ARGV[2], stream, info[j + 1])
        end
      end
    end
  end
end
return created
