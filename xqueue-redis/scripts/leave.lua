-- Removes a consumer from its group on each stream, but only where it holds no pending
-- entries (XGROUP DELCONSUMER would discard them).
--
-- KEYS     the streams
-- ARGV[1]  the group, ARGV[2] the consumer
-- Returns how many memberships were removed.
local group, consumer = ARGV[1], ARGV[2]
local removed = 0
for _, stream in ipairs(KEYS) do
  if redis.call('EXISTS', stream) == 1 then
    local has_group = false
    for _, g in ipairs(groups_of(stream)) do
      if g['name'] == group then
        has_group = true
      end
    end
    if has_group then
      for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', stream, group)) do
        local info = {}
        for i = 1, #c, 2 do
          info[c[i]] = c[i + 1]
        end
        if info['name'] == consumer and info['pending'] == 0 then
          redis.call('XGROUP', 'DELCONSUMER', stream, group, consumer)
          removed = removed + 1
        end
      end
    end
  end
end
return removed
