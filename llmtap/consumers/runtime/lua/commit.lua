-- The atomic commit of one unit (see llmtap/consumers/runtime/commit.py). ARGV[1] is the unit
-- as JSON, ARGV[2..] the raw bytes of its dead letters; KEYS[1] is the unit's stream (a cluster
-- client routes the script by it). The other key names travel inside ARGV, and all of them
-- carry the stream's shard tag, so on a cluster every key the script touches is in the
-- stream's slot. See docs/key-layout.md.
local u = cjson.decode(ARGV[1])
local function call_chunked(cmd, head, items)
  local n = #items
  local i = 1
  while i <= n do
    local j = math.min(i + 3999, n)
    local args = {}
    for _, h in ipairs(head) do args[#args + 1] = h end
    for k = i, j do args[#args + 1] = items[k] end
    redis.call(cmd, unpack(args))
    i = j + 1
  end
end

-- entry ids: each must be pending and owned by this consumer
local lost = {}
for _, id in ipairs(u.ids) do
  local pend = redis.call('XPENDING', u.stream, u.group, id, id, 1, u.consumer)
  if #pend == 0 then lost[#lost + 1] = id end
end

-- rollups: each mark must not have been counted before
local dups = {}
for key, marks in pairs(u.dedup) do
  for _, m in ipairs(marks) do
    if redis.call('SISMEMBER', key, m) == 1 then
      dups[#dups + 1] = key
      dups[#dups + 1] = m
    end
  end
end
if #lost > 0 or #dups > 0 then return {0, lost, dups} end

for key, marks in pairs(u.dedup) do
  call_chunked('SADD', {key}, marks)
  redis.call('EXPIRE', key, u.dedup_ttl)
end
for key, fields in pairs(u.ints) do
  for f, v in pairs(fields) do redis.call('HINCRBY', key, f, v) end
end
-- floats, minima, maxima: one HMGET and one HSET per key and 1000 fields (Lua doubles are
-- exact for these sums of weights and seconds; a number written back round-trips)
local function merge(table_, combine)
  for key, fields in pairs(table_) do
    local names, values = {}, {}
    for f, v in pairs(fields) do
      names[#names + 1] = f
      values[#values + 1] = v
    end
    for i = 1, #names, 1000 do
      local j = math.min(i + 999, #names)
      local cur = redis.call('HMGET', key, unpack(names, i, j))
      local kv = {}
      for k = i, j do
        local new = combine(tonumber(cur[k - i + 1]), values[k])
        if new then
          kv[#kv + 1] = names[k]
          kv[#kv + 1] = new
        end
      end
      if #kv > 0 then redis.call('HSET', key, unpack(kv)) end
    end
  end
end
merge(u.floats, function(cur, v) return (cur or 0) + v end)
merge(u.mins, function(cur, v) if not cur or v < cur then return v end end)
merge(u.maxs, function(cur, v) if not cur or v > cur then return v end end)

-- packed sketches (see llmtap.aggregates.encode_sketch): a hash field holding little-endian
-- doubles [lo, zero-bin weight, bin lo, bin lo + 1, ...]; u.sketches[key][field] is {index,
-- weight, ...} in index order, the zero bin first. The field is unpacked, the weights added
-- (the same double additions as a field per bin), and packed again with one struct call each.
local ZERO_BIN = -2147483648
local function add_bins(old, bins)
  local lo, hi = nil, nil
  for i = 1, #bins, 2 do
    if bins[i] ~= ZERO_BIN then
      if not lo then lo = bins[i] end
      hi = bins[i]
    end
  end
  local zero, n, values = 0, 0, nil
  if old then
    n = #old / 8 - 2
    values = {struct.unpack('<' .. string.rep('d', n + 2), old)}
    zero = values[2]
    if n > 0 then
      local old_lo = values[1]
      if not lo or old_lo < lo then lo = old_lo end
      if not hi or old_lo + n - 1 > hi then hi = old_lo + n - 1 end
    end
  end
  if not lo then  -- no log bin, old or new: the header alone
    for i = 2, #bins, 2 do zero = zero + bins[i] end
    return struct.pack('<dd', 0, zero)
  end
  -- out[3 + b - lo] is bin b: an array from lo to hi (not a table keyed by bin index)
  local out = {lo, zero}
  for k = 3, hi - lo + 3 do out[k] = 0 end
  if n > 0 then
    local at = values[1] - lo
    for k = 1, n do out[at + k + 2] = values[k + 2] end
  end
  for i = 1, #bins, 2 do
    local b = bins[i]
    if b == ZERO_BIN then
      out[2] = out[2] + bins[i + 1]
    else
      local k = b - lo + 3
      out[k] = out[k] + bins[i + 1]
    end
  end
  return struct.pack('<' .. string.rep('d', #out), unpack(out))
end
for key, fields in pairs(u.sketches) do
  for f, bins in pairs(fields) do
    redis.call('HSET', key, f, add_bins(redis.call('HGET', key, f), bins))
  end
end

for key, members in pairs(u.members) do call_chunked('SADD', {key}, members) end

-- top-N sorted sets: add, then keep the N highest scores
for key, top in pairs(u.top) do
  local flat = {}
  for member, score in pairs(top[2]) do
    flat[#flat + 1] = score
    flat[#flat + 1] = member
  end
  call_chunked('ZADD', {key}, flat)
  redis.call('ZREMRANGEBYRANK', key, 0, -(top[1] + 1))
end

-- latest values: replace a hash's fields when this sequence number is newer
for key, latest in pairs(u.latest) do
  local cur = redis.call('HGET', key, 'seq')
  if not cur or latest[1] > tonumber(cur) then
    local flat = {'seq', latest[1]}
    for f, v in pairs(latest[2]) do
      flat[#flat + 1] = f
      flat[#flat + 1] = v
    end
    call_chunked('HSET', {key}, flat)
  end
end

for key, ttl in pairs(u.ttl) do redis.call('EXPIRE', key, ttl) end

-- dead letters: their fields in the JSON, their raw bytes in ARGV[2], ARGV[3], ...
for i, rec in ipairs(u.dlq) do
  rec[#rec + 1] = 'raw'
  rec[#rec + 1] = ARGV[i + 1]
  redis.call('XADD', u.dlq_stream, 'MAXLEN', '~', u.dlq_maxlen, '*', unpack(rec))
end

for f, v in pairs(u.counters) do redis.call('HINCRBY', u.stats, f, v) end

-- control-side effects (alert steps, outbox messages) write control keys, in another slot on
-- a cluster: they are committed here, with the XACK, as one record of the shard's control
-- outbox (never trimmed here), which the relay applies to control state once (relay.lua)
if u.ctl_record then redis.call('XADD', u.ctl_stream, '*', 'u', u.ctl_record) end

call_chunked('XACK', {u.stream, u.group}, u.ids)
return {1, {}, {}}
