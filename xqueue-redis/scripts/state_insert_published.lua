-- Stores new `pending` tasks and appends their messages to their queues' streams, in one
-- atomic step: all of it or nothing. The tasks need no publish guard (no schedule entry):
-- no one can see a stored task whose message is missing.
--
-- Then, when asked to take (ARGV[4] > 0), it delivers up to ARGV[5] entries of that stream to
-- the submitting instance's consumer, as XREADGROUP does (oldest undelivered first), and
-- begins those that carry a task of this batch (see `begin_inserted`): the instance runs
-- them without a fetch or a `begin` of its own.
-- KEYS     the streams
-- ARGV[2]  max_len of a stream, ARGV[3] m: fields per message,
-- ARGV[4]  the index in KEYS of the stream to take from (0: take nothing), ARGV[5] how many,
-- ARGV[6]  group, ARGV[7] consumer (also the worker of the attempts), ARGV[8] now,
-- ARGV[9…] per task: the index of its stream in KEYS, a count k, k field/value pairs of its
--          record (see `record_spans`), m field/value pairs of its message.
-- Returns {1, entries, attempts} when done: the entries taken (as XREADGROUP gives them) and
-- per entry the attempt begun (0: only delivered). {0, id} when a task with that id exists;
-- {2, stream, in_use} when a stream is full. Nothing is stored in the last two cases.

-- Starts the first attempt of task `id`, stored `pending` with no attempts earlier in the
-- same script, as `worker` at `now`: marks it running and returns the attempt's number. Its
-- record is not read again (one command fewer on an idle worker's path: every command costs
-- an idle Redis tens of µs). A mark left behind under the same id (its record purged while
-- it ran) is counted as an earlier attempt, as the native `begin` counts a redelivery.
local function begin_inserted(id, worker, now)
  if redis.call('HSET', RUNNING, id, now .. '|' .. worker) == 0 then
    return redis.call('HINCRBY', task_key(id), 'attempts', 1) + 1
  end
  return 1
end

local max_len = tonumber(ARGV[2])
local m = 2 * tonumber(ARGV[3])
local FIRST = 9

-- Per task: its stream's index in KEYS (the value before its record), and its record.
local starts, firsts, lasts = record_spans(FIRST, 1, m)
local exists = existing_id(firsts, lasts)
if exists then
  return { 0, exists }
end
local streams, adding = {}, {}
for n = 1, #starts do
  local s = tonumber(ARGV[starts[n]])
  streams[n] = s
  adding[s] = (adding[s] or 0) + 1
end
for s, n in pairs(adding) do
  local fits, in_use = room_for(KEYS[s], n, max_len)
  if not fits then
    return { 2, KEYS[s], in_use }
  end
end

local entered = {}
local inserted = {}
for n = 1, #firsts do
  local fields = {}
  local id, created
  for i = firsts[n], lasts[n], 2 do
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
    if ARGV[i] == 'id' then
      id = ARGV[i + 1]
    elseif ARGV[i] == 'spec' then
      created = spec_created_at(ARGV[i + 1])
    end
  end
  redis.call('HSET', task_key(id), unpack(fields))
  inserted[id] = true
  entered[#entered + 1] = created
  entered[#entered + 1] = id
  local entry = {}
  for i = lasts[n] + 1, lasts[n] + m do
    entry[#entry + 1] = ARGV[i]
  end
  redis.call('XADD', KEYS[streams[n]], '*', unpack(entry))
end
bulk('ZADD', index_key('pending'), entered)

local take_from, take_count = tonumber(ARGV[4]), tonumber(ARGV[5])
if take_from == 0 or take_count <= 0 then
  return { 1, {}, {} }
end
local read = redis.pcall('XREADGROUP', 'GROUP', ARGV[6], ARGV[7], 'COUNT', take_count,
  'STREAMS', KEYS[take_from], '>')
if type(read) ~= 'table' or read.err or not read[1] then
  -- No group yet (NOGROUP), or nothing undelivered: the fetchers take it as usual.
  return { 1, {}, {} }
end
local taken, attempts = read[1][2], {}
for _, e in ipairs(taken) do
  local fields, id = e[2], nil
  for i = 1, #fields, 2 do
    if fields[i] == 'msg' then
      -- `{task_id}|{priority}|{enqueued_at}|{task_type}` (codec.rs)
      id = string.match(fields[i + 1], '^[^|]*')
    end
  end
  local n = 0
  if id and inserted[id] then
    n = begin_inserted(id, ARGV[7], ARGV[8])
  end
  attempts[#attempts + 1] = n
end
return { 1, taken, attempts }
