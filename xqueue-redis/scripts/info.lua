-- Describes streams as one group sees them.
--
-- KEYS     the streams
-- ARGV[1]  the group
-- Returns per stream {length, waiting, pending, groups, consumers}; consumers are
-- {name, pending, idle ms}.
local group = ARGV[1]
local out = {}
for _, stream in ipairs(KEYS) do
  if redis.call('EXISTS', stream) == 0 then
    out[#out + 1] = {0, 0, 0, 0, {}}
  else
    local len = redis.call('XLEN', stream)
    local groups = groups_of(stream)
    local mine = nil
    for _, g in ipairs(groups) do
      if g['name'] == group then
        mine = g
      end
    end
    if mine == nil then
      -- The group starts at id 0 when created: every entry is waiting for it.
      out[#out + 1] = {len, len, 0, #groups, {}}
    else
      local waiting = mine['lag']
      if type(waiting) ~= 'number' then
        -- Unknown lag (entries were deleted): count the entries after the last delivered one.
        waiting = 0
        local from = '(' .. mine['last-delivered-id']
        for _ = 1, 1000 do
          local batch = redis.call('XRANGE', stream, from, '+', 'COUNT', 1000)
          waiting = waiting + #batch
          if #batch < 1000 then
            break
          end
          from = '(' .. batch[#batch][1]
        end
      end
      local consumers = {}
      for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', stream, group)) do
        local info = {}
        for i = 1, #c, 2 do
          info[c[i]] = c[i + 1]
        end
        consumers[#consumers + 1] = {info['name'], info['pending'], info['idle']}
      end
      out[#out + 1] = {len, waiting, mine['pending'], #groups, consumers}
    end
  end
end
return out
