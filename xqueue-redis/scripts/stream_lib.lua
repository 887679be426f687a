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

-- Replaces the guard token at `key` with a new one (never one used before): the snapshots
-- of task records that consumers fetched before are no longer trusted (see `begin` in
-- start.rs). Called when deliveries are taken over (`reclaim.lua`) and when cancelled tasks,
-- whose entries may still wait in their streams, are purged (`state_purge.lua`).
local function renew_guard(key)
  local time = redis.call('TIME')
  local old = redis.call('GET', key) or ''
  redis.call('SET', key, redis.sha1hex(old .. ':' .. time[1] .. '.' .. time[2]))
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

-- Trims what every group of `stream` has acked and returns how many entries are in use
-- (undelivered + pending, for the group that has most).
--
-- Trimming: an entry may go only once every group has had it delivered and acked, i.e. it is
-- older than each group's oldest pending entry and than its last delivered entry. Those are
-- removed with XTRIM MINID ~ (whole radix-tree nodes only: never more than allowed). MAXLEN is
-- never used, since it deletes pending entries (XAUTOCLAIM then drops them for good).
local function trim_and_count(stream)
  if redis.call('EXISTS', stream) == 0 then
    return 0
  end
  local in_use = 0
  local len = redis.call('XLEN', stream)
  local groups = groups_of(stream)
  if #groups == 0 then
    -- Nobody has read anything yet: every entry is undelivered.
    in_use = len
  end
  local minid = nil
  for _, g in ipairs(groups) do
    local used
    if type(g['lag']) == 'number' then
      used = g['lag'] + g['pending']
    else
      -- Redis cannot tell the lag (entries were deleted): count every entry.
      used = len
    end
    if used > in_use then
      in_use = used
    end
    local needed = g['last-delivered-id']
    if g['pending'] > 0 then
      needed = redis.call('XPENDING', stream, g['name'])[2]
    end
    if minid == nil or cmp_id(needed, minid) < 0 then
      minid = needed
    end
  end
  if minid ~= nil and minid ~= '0-0' then
    redis.call('XTRIM', stream, 'MINID', '~', minid)
  end
  return in_use
end

-- Trimming runs once a stream holds TRIM_AT entries, and from then on once per TRIM_AT
-- entries added (when its length reaches a multiple of TRIM_AT), not on every publish: a
-- backlog of undelivered entries, which no trim can shorten, would otherwise make every
-- submit pay for `XINFO GROUPS` and `XPENDING` decoded in Lua. Acked entries therefore
-- never pile up past about TRIM_AT (plus one batch and a radix-tree node) above what is in
-- use.
local TRIM_AT = 1000

-- Whether adding `n` entries takes the length of a stream of `len` entries to or past a
-- multiple of TRIM_AT, from at least TRIM_AT.
local function trim_due(len, n)
  return len + n > TRIM_AT and math.floor((len + n - 1) / TRIM_AT) > math.floor((len - 1) / TRIM_AT)
end

-- Whether `n` more entries fit in `stream`, where at most `max_len` may be in use (see
-- `trim_and_count`); returns that, and the entries in use: exact when it trimmed, else the
-- stream's length, which is at least that. Below `max_len`, `XLEN` alone proves there is
-- room (entries in use are at most the length); only a batch that could overflow, or a due
-- trim, runs the exact count.
local function room_for(stream, n, max_len)
  local len = redis.call('XLEN', stream)
  if len + n <= max_len and not trim_due(len, n) then
    return true, len
  end
  local in_use = trim_and_count(stream)
  return in_use + n <= max_len, in_use
end
