-- The relay of a shard's control outbox (see llmtap/consumers/runtime/relay.py): apply its
-- records to control state, each exactly once. KEYS[1] is the group's cursor for the shard,
-- a control key (a cluster client routes the script by it); every key a record names (the
-- notify outbox, alert state) is a control key too, so the script stays in the control slot.
-- ARGV holds pairs (record id, record JSON) in id order. A record at or below the cursor was
-- applied before (by this relay or a concurrent one) and is skipped; each newer one appends
-- its outbox messages, runs its steps, and moves the cursor to it. Returns {cursor, applied}.
--
-- The composer prepends every script part's source and STEPS = {{field, function}, ...}, as
-- for the commit script.
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function newer(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am > bm or (am == bm and as > bs)
end

local cursor = redis.call('GET', KEYS[1]) or '0-0'
local applied = 0
for i = 1, #ARGV, 2 do
  if newer(ARGV[i], cursor) then
    local rec = cjson.decode(ARGV[i + 1])
    -- outbox messages first, then the steps: the order the single-slot commit used
    for _, msg in ipairs(rec.notify or {}) do
      local flat = {}
      for f, v in pairs(msg) do
        flat[#flat + 1] = f
        flat[#flat + 1] = v
      end
      redis.call('XADD', rec.notify_stream, 'MAXLEN', '~', rec.notify_maxlen, '*', unpack(flat))
    end
    for _, part in ipairs(STEPS) do
      for _, o in ipairs(rec[part[1]] or {}) do part[2](o) end
    end
    cursor = ARGV[i]
    applied = applied + 1
  end
end
redis.call('SET', KEYS[1], cursor)
return {cursor, applied}
