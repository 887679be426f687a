-- Starts attempts: `pending` and `processing` tasks become `processing` with attempts + 1.
-- ARGV[2] worker, ARGV[3] now, ARGV[4…] task ids.
-- Returns per id {1, attempts} (run) or {0, status or ""} (skip).
--
-- The caller reads the records with HGETALL in the same pipeline, right after this script:
-- a record read in Lua and handed back costs Redis several times a native HGETALL.
local worker, now = ARGV[2], ARGV[3]
local out = {}
local begins = new_begins()
for i = 4, #ARGV do
  local attempts, status = begin_one(begins, ARGV[i], worker, now)
  if attempts then
    out[#out + 1] = { 1, attempts }
  else
    out[#out + 1] = { 0, status }
  end
end
finish_begins(begins)
return out
