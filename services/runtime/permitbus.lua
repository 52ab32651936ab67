#!lua name=permitbus
-- permitbus's atomic steps. Each touches only keys of one hash slot (Redis Cluster ready).
-- Loaded with FUNCTION LOAD REPLACE at start-up; functions survive Redis restarts (AOF/RDB).
-- services/runtime/redis.py loads it as library permitbus_<version> with every function name
-- suffixed _<version> (a hash of this file), so workers of two versions can share one Redis.

-- Quarantine one ingress entry once. KEYS: quarantine stream, its marks (same slot).
-- ARGV: source_id, payload, reason, detail, now_ms, marks_retention_ms
local function pb_quarantine(keys, args)
  if redis.call('ZSCORE', keys[2], args[1]) then return 0 end
  redis.call('ZADD', keys[2], args[5], args[1])
  redis.call('XADD', keys[1], '*', 'payload', args[2], 'source_id', args[1], 'reason', args[3], 'detail', args[4])
  redis.call('ZREMRANGEBYSCORE', keys[2], '-inf', tonumber(args[5]) - tonumber(args[6]))
  return 1
end

-- HSET many fields already unpacked (field, value, field, value, ...): one HSET per 256 fields
-- (a call from Lua costs more than a field).
local function hset_many(key, fv)
  for j = 1, #fv, 512 do
    redis.call('HSET', key, unpack(fv, j, math.min(#fv, j + 511)))
  end
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

-- Apply one decided batch (or a part of one) of a partition, guarded by its applied position.
-- KEYS: dec, ppl, due, fig, evt, att, arc, outbox_1..outbox_n
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
    redis.call('XTRIM', keys[5], 'MINID', '~', args[2])
  end
  return {1, args[2]}
end

-- Acknowledge a normalizer batch (its ids in one argument: packing 2,500 XACK arguments costs
-- the client 2.8 ms). KEYS: ingress stream   ARGV: group, msgpack [id, ...]
local function pb_ack(keys, args)
  local ids = cmsgpack.unpack(args[2])
  local n = 0
  for j = 1, #ids, 1000 do
    n = n + redis.call('XACK', keys[1], args[1], unpack(ids, j, math.min(#ids, j + 999)))
  end
  return n
end

-- Count a failed attempt at an event; returns the number of attempts so far.
-- KEYS: att   ARGV: evt id
local function pb_attempt(keys, args)
  return redis.call('HINCRBY', keys[1], args[1], 1)
end

-- Move one partition's outbox entries to their target stream, keeping the roster, guarded by
-- the relay position of (target, partition).
-- KEYS: target, relaypos, marks, [roster_index, roster_1..11], relay dlq, relay attempts
-- ARGV: partition, expected_pos, new_pos, retention_minid|'-', n, now_ms|'-',
--       (n_fields, (f, v)*, action, key, district_index)*
-- With now_ms (quarantine targets), an entry whose source_id is already in marks is not copied
-- again: a record redelivered upstream is quarantined once, as pb_quarantine does.
-- Last two KEYS: the target's relay dead letters and relay attempts (same slot). An entry with
-- action 'park' (its fields already those of a dead letter, key = its attempts field) goes to
-- the dead letters instead of the target, in the same step that moves the position past it.
-- The arguments are checked before the first write: a refused call has changed nothing.
local function relay_args_error(keys, args)
  if not string.match(args[3] or '', '^%d+%-%d+$') then return 'bad new position' end
  if args[4] ~= '-' and not string.match(args[4] or '', '^%d+%-%d+$') then return 'bad retention id' end
  local i = 7
  for e = 1, (tonumber(args[5]) or -1) do
    local nf = tonumber(args[i])
    if nf == nil or nf < 1 or nf ~= math.floor(nf) or #args < i + nf * 2 + 3 then
      return 'entry ' .. e .. ' cut short'
    end
    local payload = nil
    for k = i + 1, i + nf * 2, 2 do
      if args[k] == 'payload' then payload = args[k + 1] end
    end
    i = i + 1 + nf * 2
    local action, d = args[i], tonumber(args[i + 2])
    if action == 'set' and (payload == nil or d == nil or d < 1 or d ~= math.floor(d) or 4 + d > #keys - 2) then
      return 'entry ' .. e .. ': no payload or no roster for district index ' .. tostring(args[i + 2])
    end
    if action ~= '-' and action ~= 'park' and #keys < 7 then return 'entry ' .. e .. ': no roster keys' end
    i = i + 3
  end
  if tonumber(args[5]) == nil or i - 1 ~= #args then return 'argument count' end
  return nil
end

local function pb_relay(keys, args)
  local cur = redis.call('HGET', keys[2], args[1]) or '0-0'
  if cur ~= args[2] then return {0, cur} end
  local bad = relay_args_error(keys, args)
  if bad then return redis.error_reply('PBARG pb_relay: ' .. bad) end
  local dlq, attempts = keys[#keys - 1], keys[#keys]
  local dedupe = args[6] ~= '-'
  local i = 7
  for _ = 1, tonumber(args[5]) do
    local nf = tonumber(args[i])
    local entry = {'XADD', keys[1], '*'}
    local payload, source = nil, nil
    for k = 0, nf * 2 - 1 do
      entry[#entry + 1] = args[i + 1 + k]
      if k % 2 == 0 then
        if args[i + 1 + k] == 'payload' then payload = args[i + 2 + k] end
        if args[i + 1 + k] == 'source_id' then source = args[i + 2 + k] end
      end
    end
    i = i + 1 + nf * 2
    if args[i] == 'park' then
      entry[2] = dlq
      redis.call('HDEL', attempts, args[i + 1])
      redis.call(unpack(entry))
    else
      local copy = true
      if dedupe and source then
        if redis.call('ZSCORE', keys[3], source) then copy = false
        else redis.call('ZADD', keys[3], args[6], source) end
      end
      if copy then redis.call(unpack(entry)) end
    end
    local action, key, d = args[i], args[i + 1], args[i + 2]
    i = i + 3
    if action ~= '-' and action ~= 'park' then
      local old = redis.call('HGET', keys[4], key)
      if old and (action ~= 'set' or old ~= d) then
        redis.call('HDEL', keys[4 + tonumber(old)], key)
        redis.call('HDEL', keys[4], key)
      end
      if action == 'set' then
        redis.call('HSET', keys[4 + tonumber(d)], key, payload)
        redis.call('HSET', keys[4], key, d)
      end
    end
  end
  redis.call('HSET', keys[2], args[1], args[3])
  if args[4] ~= '-' then redis.call('XTRIM', keys[1], 'MINID', '~', args[4]) end
  return {1, args[3]}
end

-- A department's roster of one district with the outlet position it corresponds to (one step).
-- KEYS: outlet, roster hash
local function pb_roster(keys, args)
  local last = '0-0'
  if redis.call('EXISTS', keys[1]) == 1 then
    local info = redis.call('XINFO', 'STREAM', keys[1])
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then last = info[i + 1] end
    end
  end
  return {last, redis.call('HGETALL', keys[2])}
end

-- Leases: one owner at a time for a feed's normalizer or a partition's decider/relay.
-- KEYS: lease   ARGV: owner, ttl_ms, 'take' | 'release'
-- take: acquire if free or renew if ours (returns 1), 0 if someone else holds it.
local function pb_lease(keys, args)
  local holder = redis.call('GET', keys[1])
  if args[3] == 'release' then
    if holder == args[1] then redis.call('DEL', keys[1]) return 1 end
    return 0
  end
  if holder and holder ~= args[1] then return 0 end
  redis.call('SET', keys[1], args[1], 'PX', args[2])
  return 1
end

redis.register_function('pb_lease', pb_lease)
redis.register_function{function_name = 'pb_roster', callback = pb_roster, flags = {'no-writes'}}
redis.register_function('pb_quarantine', pb_quarantine)
redis.register_function('pb_commit', pb_commit)
redis.register_function('pb_attempt', pb_attempt)
redis.register_function('pb_ack', pb_ack)
redis.register_function('pb_relay', pb_relay)
