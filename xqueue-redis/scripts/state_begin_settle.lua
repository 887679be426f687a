-- Settles what a `begin` found after it marked its tasks running (see `begin_attempts` in
-- start.rs): counts, on each redelivered task, the attempt that was running before; takes
-- the mark off each task it did not start, unless another attempt has marked that task since.
-- ARGV[2] the mark `begin` wrote, ARGV[3] n, ARGV[4…] n redelivered ids, then the ids not
-- started. Returns 1.
local mark, n = ARGV[2], tonumber(ARGV[3])
for i = 4, 3 + n do
  local key = task_key(ARGV[i])
  if redis.call('EXISTS', key) == 1 then
    redis.call('HINCRBY', key, 'attempts', 1)
  end
end
for i = 4 + n, #ARGV do
  if redis.call('HGET', RUNNING, ARGV[i]) == mark then
    redis.call('HDEL', RUNNING, ARGV[i])
  end
end
return 1
