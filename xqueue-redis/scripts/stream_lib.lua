-- Helpers shared by the stream scripts (prepended to each of them by scripts.rs).

-- Compares two stream ids ("ms-seq"): -1, 0 or 1.
local function cmp_id(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  if ams ~= bms then
    return ams < bms and -1 or 1
  end
  if aseq ~= bseq then
    return aseq < bseq and -1 or 1
  end
  return 0
end

-- XINFO GROUPS of a stream as a list of tables keyed by field name.
local function groups_of(stream)
  local out = {}
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local info = {}
    for i = 1, #g, 2 do
      info[g[i]] = g[i + 1]
    end
    out[#out + 1] = info
  end
  return out
end

-- Whether `consumer` of `group` holds entry `id` pending; returns its delivery count or nil.
local function pending_count(stream, group, id, consumer)
  local p
  if consumer then
    p = redis.call('XPENDING', stream, group, id, id, 1, consumer)
  else
    p = redis.call('XPENDING', stream, group, id, id, 1)
  end
  if #p == 1 then
    return p[1][4]
  end
  return nil
end
