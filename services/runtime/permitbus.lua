#!lua name=permitbus
-- permitbus's atomic steps. Each touches only keys of one hash slot (Redis Cluster ready).
-- Loaded with FUNCTION LOAD REPLACE at start-up; functions survive Redis restarts (AOF/RDB).
-- services/runtime/redis.py loads it as library permitbus_<version> with every function name
-- suffixed _<version> (a hash of this file), so workers of two versions can share one Redis.

-- Quarantine one ingress entry once. KEYS: quarantine stream, its marks, its counters (same slot).
-- ARGV: source_id, payload, reason, detail, now_ms, marks_retention_ms
-- Counters (for `permitbus status` and /metrics, counted with the effect): `quarantined` (every
-- record the normalizer ever quarantined) and `reason:<reason>` (entries in the stream now; a
-- re-drive takes one off, see unpark).
local function pb_quarantine(keys, args)
  if redis.call('ZSCORE', keys[2], args[1]) then return 0 end
  redis.call('ZADD', keys[2], args[5], args[1])
  redis.call('XADD', keys[1], '*', 'payload', args[2], 'source_id', args[1], 'reason', args[3], 'detail', args[4])
  redis.call('HINCRBY', keys[3], 'quarantined', 1)
  redis.call('HINCRBY', keys[3], 'reason:' .. args[3], 1)
  redis.call('ZREMRANGEBYSCORE', keys[2], '-inf', tonumber(args[5]) - tonumber(args[6]))
  return 1
end

-- Hold the payload of a record the decider may quarantine (QZ/BG/ZX: UNKNOWN_PERMIT), unless
-- the record was quarantined already (a redelivery): events carry no payloads.
-- KEYS: held hash, quarantine marks (the quarantine stream's slot)   ARGV: source_id, payload
local function pb_hold(keys, args)
  if redis.call('ZSCORE', keys[2], args[1]) then return 0 end
  redis.call('HSET', keys[1], args[1], args[2])
  return 1
end

-- HSET many fields already unpacked (field, value, field, value, ...): one HSET per 256 fields
-- (a call from Lua costs more than a field).
local function hset_many(key, fv)
  for j = 1, #fv, 512 do
    redis.call('HSET', key, unpack(fv, j, math.min(#fv, j + 511)))
  end
end

-- Index a normalizer batch's records for `permitbus trace` (record id -> where it went) with one
-- argument for the whole batch: redis-py packs an argument in about a microsecond, and a batch of
-- 2,500 records as HSET arguments cost the normalizer more than the rest of its work on them.
-- KEYS: trace index (trace{ingress:<feed>}:<day>)   ARGV: ttl_ms, msgpack [record id, where, ...]
local function pb_trace(keys, args)
  hset_many(keys[1], cmsgpack.unpack(args[2]))
  redis.call('PEXPIRE', keys[1], args[1])
  return 1
end

-- Many fields given as one msgpack array: a table of strings with an even count, or an error.
local function unpack_fields(packed, what)
  if packed == nil then return redis.error_reply('PBARG pb_commit: missing ' .. what) end
  local ok, fv = pcall(cmsgpack.unpack, packed)
  if not ok or type(fv) ~= 'table' or #fv % 2 ~= 0 then
    return redis.error_reply('PBARG pb_commit: ' .. what .. ' is not a msgpack array of field/value pairs')
  end
  for j = 1, #fv do
    if type(fv[j]) ~= 'string' then return redis.error_reply('PBARG pb_commit: ' .. what .. ' holds a non-string') end
  end
  return fv
end

local function count_arg(args, i, what)
  local n = tonumber(args[i])
  if n == nil or n < 0 or n ~= math.floor(n) then
    return nil, redis.error_reply('PBARG pb_commit: bad count of ' .. what .. ' at argument ' .. i)
  end
  return n
end

local function is_stream_id(s)
  return s ~= nil and string.match(s, '^%d+%-%d+$') ~= nil
end

-- The smallest stream id after `id` (ms-seq): trimming MINID there removes `id` too.
local function after_id(id)
  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
  return ms .. '-' .. string.format('%.0f', tonumber(seq) + 1)
end

-- Apply one decided batch (or a part of one) of a partition, guarded by its applied position.
-- KEYS: dec (`pos`, and `applied`: entries applied so far), ppl, due, fig, evt, att, arc, outbox_1..outbox_n
-- ARGV: expected_pos, new_pos, msgpack [field, picture, ...], msgpack [field, archive, ...]|'',
--       n_due, (member, score|'-')*, n_fig, (field, delta)*,
--       n_out, (target_index, n_fields, (field, value)*)*, n_att, id*
-- Every argument is checked before the first write: a refused call (an error reply starting
-- with PBARG, or any other error raised here) has changed nothing, so the decider can find the
-- record that caused it by committing the batch's events one at a time. A part of a batch
-- (new_pos = expected_pos) writes its people's pictures and decisions without moving the position.
local function pb_commit(keys, args)
  local cur = redis.call('HGET', keys[1], 'pos') or '0-0'
  if cur ~= args[1] then return {0, cur} end
  if not is_stream_id(args[2]) then return redis.error_reply('PBARG pb_commit: bad new position') end
  local states = unpack_fields(args[3], 'pictures')
  if states.err then return states end
  local archives = {}
  if args[4] ~= '' then
    archives = unpack_fields(args[4], 'archives')
    if archives.err then return archives end
  end
  local i = 5
  local n, err = count_arg(args, i, 'due dates'); if err then return err end
  local dues = {i + 1, n}
  i = i + 1
  for _ = 1, n do
    local score = args[i + 1]
    if args[i] == nil or score == nil or (score ~= '-' and not string.match(score, '^%d+$')) then
      return redis.error_reply('PBARG pb_commit: bad due date at argument ' .. (i + 1))
    end
    i = i + 2
  end
  n, err = count_arg(args, i, 'figures'); if err then return err end
  local figs = {i + 1, n}
  i = i + 1
  for _ = 1, n do
    if args[i] == nil or args[i + 1] == nil or not string.match(args[i + 1], '^%-?%d+$') or #args[i + 1] > 15 then
      return redis.error_reply('PBARG pb_commit: bad figure delta at argument ' .. (i + 1))
    end
    i = i + 2
  end
  n, err = count_arg(args, i, 'outbox entries'); if err then return err end
  local outs = {}
  i = i + 1
  for _ = 1, n do
    local index, nf = tonumber(args[i]), tonumber(args[i + 1])
    local target = index and index >= 1 and index == math.floor(index) and keys[7 + index]
    if not target or nf == nil or nf < 1 or nf ~= math.floor(nf) then
      return redis.error_reply('PBARG pb_commit: bad outbox entry at argument ' .. i)
    end
    local entry = {'XADD', target, '*'}
    for k = 0, nf * 2 - 1 do
      local v = args[i + 2 + k]
      if v == nil then return redis.error_reply('PBARG pb_commit: outbox entry cut short at argument ' .. i) end
      entry[#entry + 1] = v
    end
    outs[#outs + 1] = entry
    i = i + 2 + nf * 2
  end
  n, err = count_arg(args, i, 'attempts'); if err then return err end
  local att = {i + 1, n}
  if i + n ~= #args then return redis.error_reply('PBARG pb_commit: ' .. #args .. ' arguments, expected ' .. (i + n)) end
  -- checked: write
  hset_many(keys[2], states)
  if #archives > 0 then hset_many(keys[7], archives) end
  i = dues[1]
  for _ = 1, dues[2] do
    if args[i + 1] == '-' then
      redis.call('ZREM', keys[3], args[i])
    else
      redis.call('ZADD', keys[3], args[i + 1], args[i])
    end
    i = i + 2
  end
  i = figs[1]
  for _ = 1, figs[2] do
    redis.call('HINCRBY', keys[4], args[i], args[i + 1]); i = i + 2
  end
  for _, entry in ipairs(outs) do redis.call(unpack(entry)) end
  i = att[1]
  for _ = 1, att[2] do
    redis.call('HDEL', keys[6], args[i]); i = i + 1
  end
  if args[2] ~= args[1] then
    redis.call('HSET', keys[1], 'pos', args[2])
    -- exact, and past the position itself: the stream then holds exactly the entries waiting
    -- (its XLEN is the partition's backlog), and what the trim removes is what was applied
    local applied = redis.call('XTRIM', keys[5], 'MINID', after_id(args[2]))
    redis.call('HINCRBY', keys[1], 'applied', applied)
  end
  return {1, args[2]}
end

-- The normalizer reads its feed with XREADGROUP NOACK: the group's last-delivered-id moves when a
-- batch is read, no pending list is kept (keeping one costs Redis a propagated XCLAIM, ~230 AOF
-- bytes, per entry read). What is done is `committed` in the feed's counters: the last entry
-- whose effect is written, moved by pb_ack; `committed_n` is the group's entries-read there, so
-- that "read, not finished" is entries-read - committed_n (services/ops/backlog.py). A new
-- holder of the feed, or a worker whose read failed, rewinds the group to `committed`
-- (pb_rewind) and reads again what was read and not finished: an entry handled twice changes
-- nothing (events are ignored by record id, quarantine copies are made once).

-- Stream ids compared as numbers (ms, then sequence).
local function id_after(a, b)
  local am, as = string.match(a, '^(%d+)%-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)%-(%d+)$')
  am, bm = tonumber(am), tonumber(bm)
  return am > bm or (am == bm and tonumber(as) > tonumber(bs))
end

-- The index of the first of ``ids`` (in stream order, as read) after ``pos``: #ids + 1 if none.
-- A binary search: a few comparisons, not one a record (parsing an id costs Lua about a microsecond).
local function first_after(ids, pos)
  local lo, hi = 1, #ids + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if id_after(ids[mid], pos) then hi = mid else lo = mid + 1 end
  end
  return lo
end

local function xack_all(key, group, ids)
  local n = 0
  for j = 1, #ids, 1000 do
    n = n + redis.call('XACK', key, group, unpack(ids, j, math.min(#ids, j + 999)))
  end
  return n
end

-- A normalizer batch done (its ids in one argument: packing 2,500 XACK arguments costs the client
-- 2.8 ms). KEYS: ingress stream, its counters (same slot)   ARGV: group, the batch's ids in stream
-- order (msgpack), those of them quarantined or dead-lettered (msgpack, in order, or ''). Refused
-- (UNFINISHED, nothing written) when an entry between the committed position and the batch is
-- not finished.
-- Counters: `acked` (entries done), `accepted` (those that became events). An entry counts once,
-- when `committed` first passes it: a batch handled again (a worker killed before this call, a
-- rewind) counts then, not twice. Entries still pending from a release that read without NOACK
-- are acknowledged, and counted by XACK's count until `committed` is first set (pb_rewind).
local function pb_ack(keys, args)
  local ids = cmsgpack.unpack(args[2])
  local rejected_ids = (args[3] and args[3] ~= '') and cmsgpack.unpack(args[3]) or {}
  local pos = redis.call('HGET', keys[2], 'committed')
  local new = pos and first_after(ids, pos) or 1  -- ids[new..] are past the committed position
  if pos and new <= #ids then
    -- the batch must follow the committed position: an entry between them was read by another
    -- reader (a worker that lost the feed's lease and has not noticed yet) and maybe never
    -- finished; committing past it could lose it. Refused: the caller moves the group back.
    local between = redis.call('XRANGE', keys[1], '(' .. pos, ids[new], 'COUNT', 1)
    if between[1] and between[1][1] ~= ids[new] then
      return redis.error_reply('UNFINISHED entries after ' .. pos .. ' and before this batch are not finished')
    end
  end
  local rejected = #rejected_ids > 0 and xack_all(keys[1], args[1], rejected_ids) or 0
  local accepted = xack_all(keys[1], args[1], ids)
  if pos then
    rejected = #rejected_ids - first_after(rejected_ids, pos) + 1
    accepted = #ids - new + 1 - rejected
    if new <= #ids then
      redis.call('HSET', keys[2], 'committed', ids[#ids])
      if redis.call('HGET', keys[2], 'committed_n') then
        redis.call('HINCRBY', keys[2], 'committed_n', #ids - new + 1)
      end
    end
  end
  if accepted > 0 then redis.call('HINCRBY', keys[2], 'accepted', accepted) end
  if accepted + rejected > 0 then redis.call('HINCRBY', keys[2], 'acked', accepted + rejected) end
  return accepted + rejected
end

-- The group back to `committed`, for a new holder of the feed or after a failed read (whatever
-- was read after it is read again). The first time (nothing committed yet: a new deployment, or
-- the first start of this release, once the pending entries of the one before are handled),
-- what the group has delivered is what is done. KEYS: ingress stream, its counters   ARGV: group
-- Returns {committed, 1 if the group was moved back else 0}.
local function pb_rewind(keys, args)
  local delivered, entries_read
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', keys[1])) do
    local info = {}
    for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
    if info['name'] == args[1] then delivered, entries_read = info['last-delivered-id'], info['entries-read'] end
  end
  if not delivered then return redis.error_reply('NOGROUP no consumer group ' .. args[1] .. ' on ' .. keys[1]) end
  local pos = redis.call('HGET', keys[2], 'committed')
  if not pos then
    redis.call('HSET', keys[2], 'committed', delivered)
    -- (a group made at 0 that has read nothing reports no entries-read: none were)
    if entries_read then redis.call('HSET', keys[2], 'committed_n', entries_read)
    elseif delivered == '0-0' then redis.call('HSET', keys[2], 'committed_n', 0) end
    return {delivered, 0}
  end
  if not id_after(delivered, pos) then return {pos, 0} end
  local n = redis.call('HGET', keys[2], 'committed_n')
  if n then
    redis.call('XGROUP', 'SETID', keys[1], args[1], pos, 'ENTRIESREAD', n)
  else
    redis.call('XGROUP', 'SETID', keys[1], args[1], pos)
  end
  return {pos, 1}
end

-- Count a failed attempt at an event; returns the number of attempts so far.
-- KEYS: att   ARGV: evt id
local function pb_attempt(keys, args)
  return redis.call('HINCRBY', keys[1], args[1], 1)
end

-- Add or remove one application id in a subject's entry of the roster's subject index (a
-- msgpack list; the entry goes when the list is empty). No-op for pseudonym '' (roster-based).
local function index_subject(idx, pseudonym, app, add)
  if pseudonym == '' then return end
  local cur = redis.call('HGET', idx, pseudonym)
  local apps = {}
  for _, a in ipairs(cur and cmsgpack.unpack(cur) or {}) do
    if a ~= app then apps[#apps + 1] = a end
  end
  if add then apps[#apps + 1] = app end
  if #apps == 0 then redis.call('HDEL', idx, pseudonym)
  else redis.call('HSET', idx, pseudonym, cmsgpack.pack(apps)) end
end

-- Move one partition's outbox entries to their target stream, keeping the roster and, for an
-- outlet, its audit log, guarded by the relay position of (target, partition).
-- KEYS: target, relaypos, marks, [roster_index, roster_1..11, subject_index, audit stream,
--       audit head, audit index | held], relay dlq, relay attempts, the target's counters, trace
--       index (held: the permit quarantine's held payloads, pb_hold; trace index: hash record id ->
--       ids of the entries it led to, same slot). An outlet's call has 23 keys, the permit
--       quarantine's 8, dlq:decider's 7.
-- ARGV: partition, expected_pos, new_pos, retention_minid|'-', n, now_ms|'-', expected audit head|'-',
--       (n_fields, (f, v)*, action, key, district_index, subject_pseudonym|'', application_id|'',
--        audit_who|'', audit_decision|'', audit_hash|'')*,
--       trace_ttl_ms, trace lines (one line per entry, each ending in a newline: the record ids
--       that caused the entry, space-separated, or nothing)
-- action: 'set' (list the entry's payload in district_index), 'del' (unlist key), '-' (no roster).
-- An entry with no fields appends nothing: a closed application leaving its roster. Fields whose
-- name starts with '_' are notes to the relay (the decision latency's start, its status), not
-- appended.
-- Audit (outlets only; services/audit/chain.py): every entry appended to the outlet is appended,
-- in this same step, to the audit stream of (outlet, partition) under the outlet entry's own id,
-- with the fields prev (the hash of the audit entry before it: the expected head, then each
-- entry's audit_hash in turn), who (the subject's pseudonym) and dec (the decision sealed under
-- the data key); its id joins the subject's refs in the audit index (`<id>@<partition>`), and the
-- head (field <partition>: the last hash, <partition>:id: its entry id; `since`: the first outlet
-- id ever audited) moves to the last hash. The relay computes the hashes (SHA-256, which this Lua
-- lacks); this step checks that the stored head is the one they chain from (a relay with a stale
-- head is refused, with the stored head, and chains again), that every entry it appends carries
-- its audit and no other entry does, and that the audit stream holds nothing past the outlet's
-- last id (else its explicit ids could not be added: an entry inserted there stops this
-- partition's deliveries to the outlet, loudly, rather than deliver one unaudited).
-- With now_ms (quarantine targets), an entry whose source_id is already in marks is not copied
-- again: a record redelivered upstream is quarantined once, as pb_quarantine does.
-- The trace index gets, per record id of an entry appended to the target, the new entry's id
-- (appended to the ids already there, up to about 200 bytes; '!' and the dead letter's id for an
-- entry parked), and lives trace_ttl_ms: where a record's decisions are, without scanning the
-- target (`permitbus trace`).
-- An entry with action 'park' (its fields already those of a dead letter, key = its attempts
-- field) goes to the dead letters instead of the target, in the same step that moves the
-- position past it (and is not audited: nothing was delivered). The arguments are checked before
-- the first write: a refused call has changed nothing.
-- Returns {1, new_pos}, or {0, stored position[, stored audit head: an outlet's]} when the position
-- or the head is not the one expected, or {0, stored position, stored head, last audit id} when the audit
-- stream is ahead of the outlet.
local OUTLET_KEYS = 23
local function relay_args_error(keys, args)
  if not string.match(args[3] or '', '^%d+%-%d+$') then return 'bad new position' end
  if args[4] ~= '-' and not string.match(args[4] or '', '^%d+%-%d+$') then return 'bad retention id' end
  local audited = #keys == OUTLET_KEYS
  if audited ~= (args[7] ~= '-') or (audited and #args[7] ~= 32) then return 'bad expected audit head' end
  local i = 8
  for e = 1, (tonumber(args[5]) or -1) do
    local nf = tonumber(args[i])
    if nf == nil or nf < 0 or nf ~= math.floor(nf) or #args < i + nf * 2 + 8 then
      return 'entry ' .. e .. ' cut short'
    end
    local payload, shown = nil, false
    for k = i + 1, i + nf * 2, 2 do
      if args[k] == 'payload' then payload = args[k + 1] end
      if string.byte(args[k], 1) ~= 95 then shown = true end
    end
    i = i + 1 + nf * 2
    local action, d = args[i], tonumber(args[i + 2])
    if action == 'set' and (payload == nil or d == nil or d < 1 or d ~= math.floor(d) or d > 11) then
      return 'entry ' .. e .. ': no payload or no roster for district index ' .. tostring(args[i + 2])
    end
    if action ~= '-' and action ~= 'park' and not audited then return 'entry ' .. e .. ': no roster keys' end
    -- an outlet's entry is appended (and must be audited) when it has fields and is not parked
    local appended = audited and action ~= 'park' and shown
    local who, dec, h = args[i + 5], args[i + 6], args[i + 7]
    if appended and (who == '' or dec == '' or #h ~= 32) then return 'entry ' .. e .. ': delivered without its audit' end
    if not appended and (who ~= '' or dec ~= '' or h ~= '') then return 'entry ' .. e .. ': an audit for no delivery' end
    i = i + 8
  end
  if tonumber(args[5]) == nil or i + 1 ~= #args then return 'argument count' end
  if not tonumber(args[i]) then return 'bad trace ttl' end
  local lines = 0
  for _ in string.gmatch(args[i + 1], '\n') do lines = lines + 1 end
  if lines ~= tonumber(args[5]) then return 'trace lines' end
  return nil
end

-- One more id for a record id in a trace index (up to about 200 bytes of ids).
local function trace_add(trace, rid, id)
  local ids = redis.call('HGET', trace, rid)
  if not ids then redis.call('HSET', trace, rid, id)
  elseif #ids < 200 then redis.call('HSET', trace, rid, ids .. ' ' .. id) end
end

-- The decision latency's buckets (ms upper bounds; services/ops/metrics.py reads the same list).
local LATENCY_MS = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}
local function latency_bucket(ms)
  for _, le in ipairs(LATENCY_MS) do
    if ms <= le then return 'lat:' .. le end
  end
  return 'lat:inf'
end

-- The outlet's last entry id ('0-0' for none): a roster read includes everything up to it.
local function outlet_position(outlet)
  if redis.call('EXISTS', outlet) == 0 then return '0-0' end
  local info = redis.call('XINFO', 'STREAM', outlet)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return info[i + 1] end
  end
  return '0-0'
end

local function pb_relay(keys, args)
  local audited = #keys == OUTLET_KEYS
  local audit, head, index = keys[17], keys[18], keys[19]
  local stored = audited and redis.call('HGET', head, args[1]) or ''
  local cur = redis.call('HGET', keys[2], args[1]) or '0-0'
  if cur ~= args[2] then return audited and {0, cur, stored} or {0, cur} end
  local bad = relay_args_error(keys, args)
  if bad then return redis.error_reply('PBARG pb_relay: ' .. bad) end
  if audited then
    if stored ~= '' and stored ~= args[7] then return {0, cur, stored} end
    local last = redis.call('XREVRANGE', audit, '+', '-', 'COUNT', 1)[1]
    if last and id_after(last[1], outlet_position(keys[1])) then return {0, cur, stored, last[1]} end
  end
  local prev, first_audited, last_audited = args[7], nil, nil
  local dlq, attempts, counters, trace = keys[#keys - 3], keys[#keys - 2], keys[#keys - 1], keys[#keys]
  local held = #keys == 8 and keys[4] or nil
  local traces, traced = {}, false
  for line in string.gmatch(args[#args], '([^\n]*)\n') do traces[#traces + 1] = line end
  local function traced_as(e, id)
    for rid in string.gmatch(traces[e], '%S+') do
      trace_add(trace, rid, id)
      traced = true
    end
  end
  local dedupe = args[6] ~= '-'
  local counts = {}
  local function count(field, n) counts[field] = (counts[field] or 0) + n end
  local i = 8
  for e = 1, tonumber(args[5]) do
    local nf = tonumber(args[i])
    local entry = {'XADD', keys[1], '*'}
    local f = {}
    local born, status = nil, nil
    for k = i + 1, i + nf * 2, 2 do
      local name, v = args[k], args[k + 1]
      if string.byte(name, 1) == 95 then -- '_': a note to the relay, not appended
        if name == '_t' then born = tonumber(v) elseif name == '_s' then status = v end
      else
        entry[#entry + 1] = name
        entry[#entry + 1] = v
        f[name] = v
      end
    end
    local payload, source, reason = f['payload'], f['source_id'], f['reason']
    i = i + 1 + nf * 2
    count('moved', 1)
    if args[i] == 'park' then
      entry[2] = dlq
      redis.call('HDEL', attempts, args[i + 1])
      traced_as(e, '!' .. redis.call(unpack(entry)))
      count('parked', 1)
    elseif held and source then
      -- a QZ/BG/ZX record settled by the decider: its payload waited in held, sealed (events
      -- carry none); copied to the quarantine once per source id (action 'quarantine': the relay
      -- read and opened it, and passes it as the entry's payload), or dropped ('release': it took
      -- effect, or was a duplicate).
      if f['action'] ~= 'release' and not redis.call('ZSCORE', keys[3], source) then
        redis.call('ZADD', keys[3], args[6], source)
        traced_as(e, redis.call('XADD', keys[1], '*', 'payload', payload or '',
                                'source_id', source, 'reason', reason or '', 'detail', f['detail'] or ''))
        count('delivered', 1)
        if reason then count('reason:' .. reason, 1) end
      end
      redis.call('HDEL', held, source)
    else
      local copy = true
      if dedupe and source then
        if redis.call('ZSCORE', keys[3], source) then copy = false
        else redis.call('ZADD', keys[3], args[6], source) end
      end
      if copy and #entry > 3 then
        local id = redis.call(unpack(entry))
        traced_as(e, id)
        count('delivered', 1)
        if status then count('status:' .. status, 1) end
        if reason then count('reason:' .. reason, 1) end
        if born then
          local ms = math.max(0, tonumber(string.match(id, '^(%d+)')) - born)
          count(latency_bucket(ms), 1)
          count('lat_sum_ms', ms)
          count('lat_count', 1)
        end
        if audited then
          local who = args[i + 5]
          redis.call('XADD', audit, id, 'prev', prev, 'who', who, 'dec', args[i + 6])
          prev = args[i + 7]
          local ref = id .. '@' .. args[1]
          local refs = redis.call('HGET', index, who)
          redis.call('HSET', index, who, refs and (refs .. ' ' .. ref) or ref)
          first_audited = first_audited or id
          count('audited', 1)
          last_audited = id
        end
      end
    end
    local action, key, d, who, app = args[i], args[i + 1], args[i + 2], args[i + 3], args[i + 4]
    i = i + 8
    if action ~= '-' and action ~= 'park' then
      local old = redis.call('HGET', keys[4], key)
      if old and (action ~= 'set' or old ~= d) then
        redis.call('HDEL', keys[4 + tonumber(old)], key)
        redis.call('HDEL', keys[4], key)
        if action ~= 'set' then index_subject(keys[16], who, app, false) end
      end
      if action == 'set' then
        redis.call('HSET', keys[4 + tonumber(d)], key, payload)
        redis.call('HSET', keys[4], key, d)
        if not old then index_subject(keys[16], who, app, true) end
      end
    end
  end
  if last_audited then
    redis.call('HSET', head, args[1], prev, args[1] .. ':id', last_audited)
    redis.call('HSETNX', head, 'since', first_audited)
  end
  for field, n in pairs(counts) do redis.call('HINCRBY', counters, field, n) end
  if traced then redis.call('PEXPIRE', trace, args[#args - 1]) end
  redis.call('HSET', keys[2], args[1], args[3])
  if args[4] ~= '-' then redis.call('XTRIM', keys[1], 'MINID', '~', args[4]) end
  return {1, args[3]}
end

-- Trim an audit stream of (outlet, partition) to its retention (exact MINID), remembering where
-- the chain now starts: `<partition>:anchor` in the head is the prev of the first entry kept (or
-- the head itself when none is), so that `permitbus audit verify` can tell entries trimmed from
-- entries removed; `<partition>:trimmed` counts them, and `trim` is the highest bound used (the
-- outlet entries older than it may have lost their audit entries to the retention).
-- KEYS: audit stream, audit head (the outlet's slot)   ARGV: partition, minid   Returns: trimmed
local function pb_audit_trim(keys, args)
  local n = redis.call('XTRIM', keys[1], 'MINID', args[2])
  if n > 0 then
    local anchor = nil
    local first = redis.call('XRANGE', keys[1], '-', '+', 'COUNT', 1)[1]
    if first then
      for k = 1, #first[2], 2 do
        if first[2][k] == 'prev' then anchor = first[2][k + 1] end
      end
    end
    anchor = anchor or redis.call('HGET', keys[2], args[1]) or ''
    redis.call('HSET', keys[2], args[1] .. ':anchor', anchor)
    redis.call('HINCRBY', keys[2], args[1] .. ':trimmed', n)
    local bound = redis.call('HGET', keys[2], 'trim')
    if not bound or id_after(args[2], bound) then redis.call('HSET', keys[2], 'trim', args[2]) end
  end
  return n
end

-- Drop from an audit index the refs (`<id>@<partition>`) of entries older than the retention
-- (trimmed, or about to be); a subject left with none leaves the index.
-- KEYS: audit index   ARGV: minid_ms, subject pseudonym*   Returns: subjects changed
local function pb_audit_prune(keys, args)
  local bound, changed = tonumber(args[1]), 0
  for j = 2, #args do
    local refs = redis.call('HGET', keys[1], args[j])
    if refs then
      local kept = {}
      for ref in string.gmatch(refs, '%S+') do
        if tonumber(string.match(ref, '^(%d+)')) >= bound then kept[#kept + 1] = ref end
      end
      if #kept == 0 then redis.call('HDEL', keys[1], args[j]); changed = changed + 1
      else
        local joined = table.concat(kept, ' ')
        if joined ~= refs then redis.call('HSET', keys[1], args[j], joined); changed = changed + 1 end
      end
    end
  end
  return changed
end

-- Re-drive one parked entry (quarantine or dead letter) onto the stream it came from, once.
-- KEYS: target stream, its re-drive marks (hash: mark -> copy id), their times (sorted set: mark
--       -> ms), all in the target's slot; [parked stream: single Redis only, see below]
-- ARGV: mark (``<parked stream> <parked id>``), parked id, now_ms, marks_retention_ms,
--       (field, value)* of the copy
-- When the mark is there the copy was made before (an earlier run killed half-way): nothing is
-- appended again. Returns {1, copy id} for a new copy, {0, earlier copy id} otherwise. On a single
-- Redis KEYS[4] is the parked stream and the parked entry is deleted in the same step; on a
-- cluster (another slot) the caller deletes it afterwards (pb_unpark), and a re-run after a kill
-- in between finds the mark and only deletes. KEYS[5], with KEYS[4]: the parked stream's counters.
-- Delete a parked entry; when it was there and has a `reason`, one entry fewer of that reason in
-- the stream's counters (`reason:<reason>`, kept by pb_quarantine and pb_relay).
local function unpark(stream, counters, id)
  local rows = counters and redis.call('XRANGE', stream, id, id) or {}
  local deleted = redis.call('XDEL', stream, id)
  if deleted == 1 and rows[1] then
    local fields = rows[1][2]
    for k = 1, #fields, 2 do
      if fields[k] == 'reason' then redis.call('HINCRBY', counters, 'reason:' .. fields[k + 1], -1) end
    end
  end
  return deleted
end

-- The delete of a re-drive on a Redis Cluster. KEYS: parked stream, its counters   ARGV: parked id
local function pb_unpark(keys, args)
  return unpark(keys[1], keys[2], args[1])
end

local function pb_redrive(keys, args)
  local copy = redis.call('HGET', keys[2], args[1])
  local fresh = 0
  if not copy then
    local entry = {'XADD', keys[1], '*'}
    for k = 5, #args do entry[#entry + 1] = args[k] end
    copy = redis.call(unpack(entry))
    redis.call('HSET', keys[2], args[1], copy)
    redis.call('ZADD', keys[3], args[3], args[1])
    fresh = 1
    local old = redis.call('ZRANGEBYSCORE', keys[3], '-inf', tonumber(args[3]) - tonumber(args[4]),
                           'LIMIT', 0, 100)
    if #old > 0 then
      redis.call('HDEL', keys[2], unpack(old))
      redis.call('ZREM', keys[3], unpack(old))
    end
  end
  if keys[4] then unpark(keys[4], keys[5], args[2]) end
  return {fresh, copy}
end

-- Rebuild a roster's subject index for entries listed before it existed (a relay does it once,
-- at start). Adds each pair whose roster field is still listed; safe beside a running relay.
-- KEYS: roster_index, subject_index   ARGV: (pseudonym, application id, roster field)*, then 'built'
-- to mark the index complete
local function pb_index_subjects(keys, args)
  local n = #args
  if args[n] == 'built' then n = n - 1 end
  for j = 1, n, 3 do
    if redis.call('HEXISTS', keys[1], args[j + 2]) == 1 then index_subject(keys[2], args[j], args[j + 1], true) end
  end
  if n < #args then redis.call('HSET', keys[2], 'built', '1') end
  return n / 3
end

-- One subject's current roster entries of one entitlement: a fixed number of reads whatever the
-- roster's size (the subject index names its applications). KEYS: roster_index, roster_1..11,
-- subject_index   ARGV: subject ID, its pseudonym ('' for a roster-based entitlement)
local function pb_subject(keys, args)
  local fields = {}
  if args[2] == '' then
    fields[1] = args[1]
  else
    local cur = redis.call('HGET', keys[13], args[2])
    for _, a in ipairs(cur and cmsgpack.unpack(cur) or {}) do fields[#fields + 1] = args[1] .. '|' .. a end
  end
  local out = {}
  for _, f in ipairs(fields) do
    local d = redis.call('HGET', keys[1], f)
    if d then
      local blob = redis.call('HGET', keys[1 + tonumber(d)], f)
      if blob then out[#out + 1] = blob end
    end
  end
  return out
end

-- HMGET of many fields, in chunks (Lua's unpack has a limit).
local function hmget_all(key, fields, from, to)
  local out = {}
  for j = from, to, 1000 do
    local got = redis.call('HMGET', key, unpack(fields, j, math.min(to, j + 999)))
    for _, v in ipairs(got) do out[#out + 1] = v end
  end
  return out
end

-- The first page of a roster read: the roster in field order with the outlet position it
-- corresponds to. A roster longer than the page is snapshotted for the later pages, unchanged
-- whatever is decided meanwhile: a copy of the hash (COPY, done by Redis in C) and a list
-- [position, field, field, ...] in field order, both kept ttl_ms.
-- KEYS: outlet, roster hash, snapshot hash, snapshot order   ARGV: limit, ttl_ms, may_snapshot 1|0
-- Returns {position, total, entries of the first page, 1 if a snapshot was written else 0}, or
-- {position, total, {}, -1} when one was needed but may not be written (the caller's budget)
local function pb_roster_page(keys, args)
  local last = outlet_position(keys[1])
  local fields = redis.call('HKEYS', keys[2])
  table.sort(fields)
  local limit = tonumber(args[1])
  if #fields <= limit then
    return {last, #fields, #fields > 0 and hmget_all(keys[2], fields, 1, #fields) or {}, 0}
  end
  if args[3] ~= '1' then return {last, #fields, {}, -1} end
  redis.call('COPY', keys[2], keys[3])
  redis.call('RPUSH', keys[4], last)
  for j = 1, #fields, 1000 do
    redis.call('RPUSH', keys[4], unpack(fields, j, math.min(#fields, j + 999)))
  end
  redis.call('PEXPIRE', keys[3], args[2])
  redis.call('PEXPIRE', keys[4], args[2])
  return {last, #fields, hmget_all(keys[3], fields, 1, limit), 1}
end

-- A later page of a roster read, from its snapshot. KEYS: snapshot hash, snapshot order
-- ARGV: offset, limit   Returns {position, total, entries} ({} when the snapshot has expired)
local function pb_roster_next(keys, args)
  local last = redis.call('LINDEX', keys[2], 0)
  if not last then return {} end
  local fields = redis.call('LRANGE', keys[2], 1 + tonumber(args[1]), tonumber(args[1]) + tonumber(args[2]))
  return {last, redis.call('LLEN', keys[2]) - 1, #fields > 0 and hmget_all(keys[1], fields, 1, #fields) or {}}
end

-- Replace pictures as rewritten by ``permitbus rekey`` (sealed under the current data key), each
-- only if it is still the one the pass read: a picture the decider committed meanwhile is left
-- alone (the decider seals what it writes under the current key itself).
-- KEYS: ppl   ARGV: (field, picture as read, picture re-sealed)*
-- Returns the number of pictures replaced.
local function pb_reseal(keys, args)
  local n = 0
  for i = 1, #args, 3 do
    if redis.call('HGET', keys[1], args[i]) == args[i + 1] then
      redis.call('HSET', keys[1], args[i], args[i + 2])
      n = n + 1
    end
  end
  return n
end

-- How much waits in a stream the workers trim as they go (a partition stream, an outbox): its
-- length and the id of its first entry, without sending the entry (an envelope can be large).
-- KEYS: stream   Returns {length, first id or ''}
local function pb_stream_head(keys, args)
  local first = redis.call('XRANGE', keys[1], '-', '+', 'COUNT', 1)
  return {redis.call('XLEN', keys[1]), first[1] and first[1][1] or ''}
end

-- Leases: one owner at a time for a feed's normalizer or a partition's decider/relay.
-- KEYS: lease, [its changes counter (same slot)]   ARGV: owner, ttl_ms, 'take' | 'release'
-- take: acquire if free or renew if ours (returns 1), 0 if someone else holds it. A take that
-- acquires (the lease was free or lapsed: a worker started, or took over from a dead one) counts
-- one change in KEYS[2] (`changes`), for /metrics.
local function pb_lease(keys, args)
  local holder = redis.call('GET', keys[1])
  if args[3] == 'release' then
    if holder == args[1] then redis.call('DEL', keys[1]) return 1 end
    return 0
  end
  if holder and holder ~= args[1] then return 0 end
  if keys[2] and holder ~= args[1] then redis.call('HINCRBY', keys[2], 'changes', 1) end
  redis.call('SET', keys[1], args[1], 'PX', args[2])
  return 1
end

-- allow-oom: a worker out of memory under noeviction keeps its leases and acknowledges what it
-- has written (acknowledging frees memory), so that the work does not change hands meanwhile.
redis.register_function{function_name = 'pb_lease', callback = pb_lease, flags = {'allow-oom'}}
redis.register_function('pb_quarantine', pb_quarantine)
redis.register_function('pb_commit', pb_commit)
redis.register_function('pb_attempt', pb_attempt)
redis.register_function{function_name = 'pb_ack', callback = pb_ack, flags = {'allow-oom'}}
redis.register_function{function_name = 'pb_rewind', callback = pb_rewind, flags = {'allow-oom'}}
redis.register_function('pb_relay', pb_relay)
redis.register_function('pb_redrive', pb_redrive)
redis.register_function('pb_unpark', pb_unpark)
redis.register_function{function_name = 'pb_stream_head', callback = pb_stream_head, flags = {'no-writes'}}
redis.register_function{function_name = 'pb_subject', callback = pb_subject, flags = {'no-writes'}}
redis.register_function('pb_roster_page', pb_roster_page)
redis.register_function{function_name = 'pb_roster_next', callback = pb_roster_next, flags = {'no-writes'}}
redis.register_function('pb_index_subjects', pb_index_subjects)
redis.register_function('pb_hold', pb_hold)
redis.register_function('pb_trace', pb_trace)
redis.register_function('pb_reseal', pb_reseal)
redis.register_function('pb_audit_trim', pb_audit_trim)
redis.register_function('pb_audit_prune', pb_audit_prune)
