-- Takes tasks that are still `pending` (or gone) off the schedule; a task that moved on keeps
-- its schedule entry. ARGV[2…] task ids.
for i = 2, #ARGV do
  local id = ARGV[i]
  local status = redis.call('HGET', task_key(id), 'status')
  if not status or status == 'pending' then
    redis.call('ZREM', SCHEDULE, id)
  end
end
return 1
