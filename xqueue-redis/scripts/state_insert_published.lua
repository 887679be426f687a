-- Stores new `pending` tasks and appends their messages to their queues' streams, in one
-- atomic step: all of it or nothing. The tasks need no publish guard (no schedule entry):
-- no one can see a stored task whose message is missing.
-- KEYS     the streams
-- ARGV[2]  max_len of a stream, ARGV[3] k: fields per task, ARGV[4] m: fields per message,
-- ARGV[5…] per task: the index of its stream in KEYS, k field/value pairs (see codec.rs),
--          m field/value pairs of its message.
-- Returns {1} when done; {0, id} when a task with that id exists; {2, stream, in_use} when
-- a stream is full. Nothing is stored in the last two cases.
local max_len = tonumber(ARGV[2])
local k, m = 2 * tonumber(ARGV[3]), 2 * tonumber(ARGV[4])
local per = 1 + k + m

local adding = {}
for base = 5, #ARGV, per do
  local s = tonumber(ARGV[base])
  adding[s] = (adding[s] or 0) + 1
  for i = base + 1, base + k, 2 do
    if ARGV[i] == 'id' and redis.call('EXISTS', task_key(ARGV[i + 1])) == 1 then
      return { 0, ARGV[i + 1] }
    end
  end
end
for s, n in pairs(adding) do
  local fits, in_use = room_for(KEYS[s], n, max_len)
  if not fits then
    return { 2, KEYS[s], in_use }
  end
end

local entered = {}
for base = 5, #ARGV, per do
  local fields = {}
  local id, created
  for i = base + 1, base + k, 2 do
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
    if ARGV[i] == 'id' then
      id = ARGV[i + 1]
    elseif ARGV[i] == 'created_at' then
      created = ARGV[i + 1]
    end
  end
  redis.call('HSET', task_key(id), unpack(fields))
  entered[#entered + 1] = created
  entered[#entered + 1] = id
  local entry = {}
  for i = base + 1 + k, base + k + m do
    entry[#entry + 1] = ARGV[i]
  end
  redis.call('XADD', KEYS[tonumber(ARGV[base])], '*', unpack(entry))
end
bulk('ZADD', index_key('pending'), entered)
return { 1 }
