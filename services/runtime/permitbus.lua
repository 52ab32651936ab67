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

-- HSET many fields given as one msgpack array (field, value, field, value, ...): one argument
-- instead of two per field, and one HSET per 256 fields (a call from Lua costs more than a field).
local function hset_packed(key, packed)
  local fv = cmsgpack.unpack(packed)
  for j = 1, #fv, 512 do
    redis.call('HSET', key, unpack(fv, j, math.min(#fv, j + 511)))
  end
end

-- Apply one decided batch of a partition, guarded by the partition's applied position.
-- KEYS: dec, ppl, due, fig, evt, att, arc, outbox_1..outbox_n
-- ARGV: expected_pos, new_pos, msgpack [field, picture, ...], msgpack [field, archive, ...],
--       n_due, (member, score|'-')*, n_fig, (field, delta)*,
--       n_out, (target_index, n_fields, (field, value)*)*, n_att, id*
local function pb_commit(keys, args)
  local cur = redis.call('HGET', keys[1], 'pos') or '0-0'
  if cur ~= args[1] then return {0, cur} end
  hset_packed(keys[2], args[3])
  if args[4] ~= '' then hset_packed(keys[7], args[4]) end
  local i = 5
  local n = tonumber(args[i]); i = i + 1
  for _ = 1, n do
    if args[i + 1] == '-' then
      redis.call('ZREM', keys[3], args[i])
    else
      redis.call('ZADD', keys[3], args[i + 1], args[i])
    end
    i = i + 2
  end
  n = tonumber(args[i]); i = i + 1
  for _ = 1, n do
    redis.call('HINCRBY', keys[4], args[i], args[i + 1]); i = i + 2
  end
  n = tonumber(args[i]); i = i + 1
  for _ = 1, n do
    local target = keys[7 + tonumber(args[i])]
    local nf = tonumber(args[i + 1])
    local entry = {'XADD', target, '*'}
    for k = 0, nf * 2 - 1 do entry[#entry + 1] = args[i + 2 + k] end
    redis.call(unpack(entry))
    i = i + 2 + nf * 2
  end
  n = tonumber(args[i]); i = i + 1
  for _ = 1, n do
    redis.call('HDEL', keys[6], args[i]); i = i + 1
  end
  redis.call('HSET', keys[1], 'pos', args[2])
  redis.call('XTRIM', keys[5], 'MINID', '~', args[2])
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
-- KEYS: target, relaypos, marks, [roster_index, roster_1..11]
-- ARGV: partition, expected_pos, new_pos, retention_minid|'-', n, now_ms|'-',
--       (n_fields, (f, v)*, action, key, district_index)*
-- With now_ms (quarantine targets), an entry whose source_id is already in marks is not copied
-- again: a record redelivered upstream is quarantined once, as pb_quarantine does.
local function pb_relay(keys, args)
  local cur = redis.call('HGET', keys[2], args[1]) or '0-0'
  if cur ~= args[2] then return {0, cur} end
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
    local copy = true
    if dedupe and source then
      if redis.call('ZSCORE', keys[3], source) then copy = false
      else redis.call('ZADD', keys[3], args[6], source) end
    end
    if copy then redis.call(unpack(entry)) end
    local action, key, d = args[i], args[i + 1], args[i + 2]
    i = i + 3
    if action ~= '-' then
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

-- allow-oom: a worker out of memory under noeviction keeps its leases and acknowledges what it
-- has written (acknowledging frees memory), so that the work does not change hands meanwhile.
redis.register_function{function_name = 'pb_lease', callback = pb_lease, flags = {'allow-oom'}}
redis.register_function{function_name = 'pb_roster', callback = pb_roster, flags = {'no-writes'}}
redis.register_function('pb_quarantine', pb_quarantine)
redis.register_function('pb_commit', pb_commit)
redis.register_function('pb_attempt', pb_attempt)
redis.register_function{function_name = 'pb_ack', callback = pb_ack, flags = {'allow-oom'}}
redis.register_function('pb_relay', pb_relay)
redis.register_function('pb_reseal', pb_reseal)
