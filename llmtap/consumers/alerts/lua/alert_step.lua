-- alert_step(o) -> 1 when it enqueued a notification.
-- o: key, idx, states, fp, rule, active, now, for_s, repeat_s, resolve (send resolved
-- notifications), ttl, stream, maxlen, doc (the alert document; absent when inactive: the stored one is used),
-- stale_before (inactive only: skip when the alert was seen after this time), and the outbox
-- message's field names and values (see llmtap/notify.py): f_msg, f_kind, kind, f_ver, ver, f_fp.

local function alert_enqueue(o, doc, status, starts, seq)
  doc.status = status
  doc.startsAt = starts
  doc.endsAt = (status == 'resolved') and o.now or cjson.null
  doc.sequence = seq
  doc.idempotency_key = o.fp .. ':' .. seq
  doc.version = 1
  redis.call('XADD', o.stream, 'MAXLEN', '~', o.maxlen, '*',
             o.f_msg, cjson.encode(doc), o.f_kind, o.kind, o.f_ver, o.ver, o.f_fp, o.fp)
  return 1
end

-- Keep the state hash o.key for o.ttl more seconds, and the index of every state hash (o.states,
-- scored by when each expires on the server's clock) in step: expired members leave it here.
local function alert_keep(o)
  local now = tonumber(redis.call('TIME')[1])
  redis.call('EXPIRE', o.key, o.ttl)
  redis.call('ZADD', o.states, now + o.ttl, o.fp)
  redis.call('ZREMRANGEBYSCORE', o.states, '-inf', now)
end

local function alert_inactive(o, st)
  -- seen again since the caller decided it was stale: not resolved after all
  if o.stale_before and (tonumber(st[7]) or 0) > o.stale_before then return 0 end
  if st[1] == 'pending' then
    redis.call('DEL', o.key)
    redis.call('ZREM', o.idx, o.fp)
    redis.call('ZREM', o.states, o.fp)
    return 0
  end
  if st[1] ~= 'firing' then return 0 end
  local seq = tonumber(st[5]) or 0
  redis.call('HSET', o.key, 'status', 'resolved', 'ends_at', o.now)
  redis.call('ZREM', o.idx, o.fp)
  alert_keep(o)
  if not o.resolve or not st[6] then return 0 end
  redis.call('HSET', o.key, 'seq', seq + 1)
  return alert_enqueue(o, cjson.decode(st[6]), 'resolved', tonumber(st[3]), seq + 1)
end

local function alert_active(o, st)
  local status, since, starts = st[1], tonumber(st[2]), tonumber(st[3])
  local last, seq = tonumber(st[4]), tonumber(st[5]) or 0
  local due = false
  if status == 'firing' then
    due = o.now - last >= o.repeat_s
  elseif status == 'pending' then
    if o.now - since >= o.for_s then due = true; starts = since end
  else
    since = o.now
    status = 'pending'
    if o.for_s <= 0 then due = true; starts = o.now end
  end
  local doc = cjson.encode(o.doc)
  redis.call('HSET', o.key, 'status', due and 'firing' or status, 'since', since,
             'last_seen', o.now, 'rule', o.rule, 'doc', doc)
  redis.call('ZADD', o.idx, o.now, o.fp)
  alert_keep(o)
  if not due then return 0 end
  redis.call('HSET', o.key, 'starts_at', starts, 'last_sent', o.now, 'seq', seq + 1)
  return alert_enqueue(o, o.doc, 'firing', starts, seq + 1)
end

local function alert_step(o)
  local st = redis.call('HMGET', o.key, 'status', 'since', 'starts_at', 'last_sent', 'seq', 'doc',
                          'last_seen')
  if o.active then return alert_active(o, st) end
  return alert_inactive(o, st)
end
