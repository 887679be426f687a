-- Removes a consumer from its group on each stream, but only where it holds no pending
-- entries (XGROUP DELCONSUMER would discard them).
--
-- KEYS     the streams
-- ARGV[1]  the group, ARGV[2] the consumer
-- Returns per stream 1 when the consumer is no member there any more, 0 when it stays (it
-- still holds pending entries).
local group, consumer = ARGV[1], ARGV[2]
local out = {}
for k, stream in ipairs(KEYS) do
  out[k] = 1
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
        if info['name'] == consumer then
          if info['pending'] == 0 then
            redis.call('XGROUP', 'DELCONSUMER', stream, group, consumer)
          else
            out[k] = 0
          end
        end
      end
    end
  end
end
return out
