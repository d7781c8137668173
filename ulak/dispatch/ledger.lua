-- The job ledger's rules (see ledger.py), applied atomically to one batch of events.
-- ARGV: the counters and bucket key templates (keys.ledger_templates), the message-id map's and early
-- receipts' key prefixes, receipt-stats key, message TTL, the batch (7), the webhook jobs set (8), the
-- webhook outbox stream (9), the receipt latency histogram (10), the early receipts held per SMSC
-- (11), the bind's inbox (12, '' for none: see ulak/dispatch/inbox.py), whose head loses one entry
-- per receipt applied here, so that a receipt is never both applied and still waiting there, and the
-- bind's fence, where it must be and where it goes (13 to 15, none without one). The batch is one
-- MessagePack array, 9 values per event: kind, job, row, part, parts, x1, x2, x3, x4 (row, part and
-- parts as decimal strings: Lua numbers are doubles, and turning one into a string goes through printf's
-- float formatting, which was a tenth of this script's time when they came as integers). For an ack
-- (A) and a receipt (R), x1 is the SMSC identity, x2 the message id (normalised: its field in the
-- map) and x4 the end of its map key after the period (keys.message_ids_suffix: the SMSC and the
-- bucket, built by the caller, a string.format here costs ~1 µs); x3 is the id as the report shows
-- it (A) or 'status|error' (R), whose status comes alone in the job's place. For a failure (F), x1 is the status. For a row stopped (X: its
-- recipient refused before it was sent), x1 is the reason and x2 the time (unix ms).
-- A job's rows are kept in bucket hashes of twenty rows (keys.job_bucket), where a row is named by
-- its place in its bucket (keys.row_field: '<r>' below). Besides the rules, they keep what the row-level
-- report shows: per part its state ('<r>:<part>'), the message id and ack time ('<r>:<part>:m' = 'id
-- as the SMSC wrote it|unix_ms'), the failure status ('<r>:<part>:e'), and the receipt
-- ('<r>:<part>:r' = 'status|error|unix_ms'); each row's state ('<r>') and, for a multi-part row, its
-- outcome once decided ('<r>:o'; a single-part row's outcome is its part's receipt); a stopped row's
-- reason ('<r>:x' = 'reason|unix_ms').
--
-- Cost: Redis runs this script alone, so every redis.call here delays every other client (the API's
-- reads too). Counter increments are therefore summed in Lua and written once per batch, the clock is
-- read once per batch, and a row's receipt fields are read with one HMGET: a single-part message costs
-- five calls from send to receipt when its ack and its send reach one write, six while an early
-- receipt is held (BENCHMARKS.md, "Second session of 2026-11-28"): each redis.call costs ~1-3 µs of
-- marshalling on top of the command itself, and the Lua around it costs more than the commands:
-- string.format and string.match cost ~1 µs each here, so message-id keys come built. (Reading and
-- writing the hashes a batch at a time, one HMGET and one HSET per hash, cut the calls to two a
-- message, but the Lua that tracked the fields cost as much again: BENCHMARKS.md, fourth session.)
local ctpl, btpl, mprefix, eprefix, stats = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ttl = ARGV[6]  -- a string: redis.call would format a number through printf's float path
local ttl_n = tonumber(ttl)
-- Jobs with a receipt webhook (a set), and the outbox stream their final row outcomes go to.
local hooks, outbox = ARGV[8], ARGV[9]
-- Receipt latency histogram (a hash of bucket counts, upper bounds in seconds).
local latency = ARGV[10]
local LATENCY_BUCKETS = {1, 5, 15, 60, 300, 1800, 3600, 21600, 86400}
-- Early receipts that may be held, per SMSC (a hash): an ack looks for one only while its SMSC has any.
local held_key = ARGV[11]
local inbox = ARGV[12] or ''
local received = 0
-- The bind's fence (ulak.dispatch.fence): written only if it is where the bind left it, and moved on
-- in the same call, so that the writes Redis lost are the ones the fence says, and no others.
local fence = ARGV[13] or ''
if fence ~= '' then
  local at = redis.call('GET', fence) or ''
  if at ~= ARGV[14] then return redis.error_reply('FENCE ' .. at) end
  redis.call('SET', fence, ARGV[15])
end

local OUTCOME = {DELIVRD = 'delivered', UNDELIV = 'undelivered', EXPIRED = 'expired',
                 REJECTD = 'rejected', DELETED = 'deleted', UNKNOWN = 'receipt_unknown',
                 ENROUTE = false, ACCEPTD = false}

local function outcome_of(status)
  local o = OUTCOME[status]
  if o == nil then return 'receipt_unknown' end
  return o
end

local now, now_s
do
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  now_s = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
end
-- The message-id map (keys.message_ids): a hash a period, SMSC and bucket. An ack writes to this
-- period's; a receipt looks in this period's and the one before; a period's hashes expire at the end
-- of the next, so an id stays matchable for a TTL at least. The ack's time is kept in milliseconds
-- since its period began (9 digits where unix ms take 13), formatted once per batch.
local ids_now, ids_before, ids_expire, base_now, base_before, acked_in_period
do
  local period = math.floor(tonumber(string.sub(now_s, 1, -4)) / ttl_n)
  ids_now, ids_before = mprefix .. period .. ':', mprefix .. (period - 1) .. ':'
  ids_expire = tostring((period + 2) * ttl_n)
  base_now = period * ttl_n * 1000
  base_before = base_now - ttl_n * 1000
  acked_in_period = string.format('%d', now - base_now)
end
-- The numbers the map names jobs by (keys.message_id_jobs: mprefix .. 'jobs'), each looked up or given
-- once a call.
local numbers_key = mprefix .. 'jobs'
local numbered, named = {}, {}
local function number_of(job)
  local n = numbered[job]
  if n then return n end
  n = redis.call('HGET', numbers_key, job)
  if not n then
    n = tostring(redis.call('HINCRBY', numbers_key, '#', 1))
    redis.call('HSET', numbers_key, job, n, '#' .. n, job)
  end
  redis.call('EXPIREAT', numbers_key, ids_expire)  -- as long as the newest ids that name it
  numbered[job], named[n] = n, job
  return n
end
local function job_numbered(n)
  local job = named[n]
  if job == nil then
    job = redis.call('HGET', numbers_key, '#' .. n) or false
    named[n] = job
  end
  return job
end
local BUCKET_NAMES = {}
for i, le in ipairs(LATENCY_BUCKETS) do BUCKET_NAMES[i] = tostring(le) end

-- Increments to hashes, summed over the batch and written at the end (nothing below reads them).
local increments, latency_sum = {}, 0
local function bump(key, field)
  local fields = increments[key]
  if not fields then fields = {}; increments[key] = fields end
  fields[field] = (fields[field] or 0) + 1
end

-- Each job's counters key and its bucket keys' stem, formatted once per batch (a batch is mostly
-- one job). A row's hash is its bucket's (keys.row_bucket: twenty rows a hash, stored compactly), its
-- fields' names start with its place there (keys.row_field): both by row_place (keys.ROW_PLACE_LUA,
-- put ahead of this script by ledger.py: ~0.4 µs a row more than cutting its decimal string, which
-- gave buckets of ten).
local job_keys = {}
local function keys_of(job, row)
  local k = job_keys[job]
  if not k then
    k = {string.format(ctpl, job), string.format(btpl, job)}
    job_keys[job] = k
  end
  local b, f = row_place(row)
  return k[1], k[2] .. b, f
end
-- A job's counters key, where only it is wanted (formatted by keys_of, called first for the job).
local function counters_of(job) return job_keys[job][1] end

local hooked = {}
local function has_hook(job)
  if not hooks then return false end
  local h = hooked[job]
  if h == nil then
    h = redis.call('SISMEMBER', hooks, job) == 1
    hooked[job] = h
  end
  return h
end

-- An acked row's outcome, once its receipts decide it: o, n, d are its ':o', ':n', ':d' fields (of
-- bk, where f names it).
local function settle(job, bk, f, row, parts, o, n, d)
  if o then return end
  local out = n
  if not out then
    if tonumber(d or '0') ~= parts then return end
    out = 'delivered'
  end
  -- A single-part row's outcome is its part's receipt (kept in the bucket hash; the report reads it
  -- from there): only a multi-part row needs its own field.
  if parts ~= 1 then redis.call('HSET', bk, f .. ':o', out) end
  bump(counters_of(job), out)
  if has_hook(job) then
    redis.call('XADD', outbox, 'MAXLEN', '~', 1000000, '*', 'job', job, 'row', row, 'outcome', out)
  end
end

local may_hold_cache = {}
local function may_hold(smsc)
  local h = may_hold_cache[smsc]
  if h == nil then
    h = tonumber(redis.call('HGET', held_key, smsc) or '0') > 0
    may_hold_cache[smsc] = h
  end
  return h
end

local function finish(job, bk, f, row, parts)
  local v = redis.call('HMGET', bk, f .. ':o', f .. ':n', f .. ':d')
  settle(job, bk, f, row, parts, v[1], v[2], v[3])
end

-- Marks the row sent; returns its state when that is known without a read ('s' if newly sent).
local function mark_sent(ck, bk, f)
  if redis.call('HSETNX', bk, f, 's') == 1 then
    bump(ck, 'submitted')
    return 's'
  end
  return nil
end

local function split_status(value)
  local bar = string.find(value, '|', 1, true)
  return string.sub(value, 1, bar - 1)
end

-- value is 'status|error' (status: its first half); the part's receipt field keeps 'status|error|unix_ms' for the report.
-- acked_ms: when the part was acked (for the receipt latency histogram), if known. row_acked: a
-- single-part row known to be acked (its state and outcome need no read: the part's first final
-- receipt is the row's first, and an acked row stays acked).
local function apply_receipt(job, row, part, parts, status, value, acked_ms, row_acked)
  local ck, bk, f = keys_of(job, row)
  bump(ck, 'receipts')
  local out = outcome_of(status)
  if out == false then return end
  if redis.call('HSETNX', bk, f .. ':' .. part .. ':r', value .. '|' .. now_s) == 0 then
    bump(ck, 'receipts_duplicate')
    return
  end
  -- Receipt latency (ack to final receipt), as histogram bucket counts for /metrics.
  if latency and acked_ms then
    local seconds = (now - acked_ms) / 1000
    local bucket = '+Inf'
    for i, le in ipairs(LATENCY_BUCKETS) do
      if seconds <= le then bucket = BUCKET_NAMES[i]; break end
    end
    bump(latency, bucket)
    latency_sum = latency_sum + seconds
  end
  if parts == 1 then
    -- A single part's receipt decides its row: the row was acked (or failed, or lost) before its
    -- message id could match, so there is nothing to keep for later.
    if row_acked then
      settle(job, bk, f, row, parts, nil, out ~= 'delivered' and out or nil, 1)
      return
    end
    local v = redis.call('HMGET', bk, f, f .. ':o')
    if v[1] == 'a' then settle(job, bk, f, row, parts, v[2], out ~= 'delivered' and out or nil, 1) end
    return
  end
  if out == 'delivered' then
    redis.call('HINCRBY', bk, f .. ':d', '1')
  else
    redis.call('HSETNX', bk, f .. ':n', out)
  end
  local v = redis.call('HMGET', bk, f, f .. ':o', f .. ':n', f .. ':d')
  if v[1] == 'a' then settle(job, bk, f, row, parts, v[2], v[3], v[4]) end
end

local function early_key(smsc, id) return eprefix .. smsc .. ':' .. id end  -- keys.early_receipt
local batch = cmsgpack.unpack(ARGV[7])
local fresh_acks = {}  -- job -> single-part rows acked with nothing written before
local FRESH_ACK_COUNTERS = {'parts_sent', 'submitted', 'parts_acked', 'acked'}
local count = 0
for i = 1, #batch, 9 do
  count = count + 1
  local kind, job, row, part, parts_s = batch[i], batch[i + 1], batch[i + 2], batch[i + 3], batch[i + 4]
  local parts = tonumber(parts_s)
  local x1, x2, x3 = batch[i + 5], batch[i + 6], batch[i + 7]
  if kind == 'R' then
    received = received + 1
    local smsc, id, value, status = x1, x2, x3, job
    local suffix = batch[i + 8]
    local base = base_now
    local target = redis.call('HGET', ids_now .. suffix, id)
    if not target then
      base = base_before
      target = redis.call('HGET', ids_before .. suffix, id)
    end
    if target then
      -- 'job|row|ms', 'job|row|ms|a' or 'job|row|ms|part|parts', the job by its number (keys.message_ids)
      local j, r, ms, rest = string.match(target, '^(%d+)|(%d+)|(%d*)(.*)$')
      local p, n = '1', 1
      if rest ~= '' and rest ~= '|a' then
        local ps, ns = string.match(rest, '^|(%d+)|(%d+)$')
        p, n = ps, tonumber(ns)
      end
      ms = tonumber(ms)
      local job_id = job_numbered(j)
      if job_id then
        apply_receipt(job_id, r, p, n, status, value, ms and base + ms, rest == '|a')
      else  -- the number's name deleted by hand (both are written in one call): nothing to settle
        bump(stats, 'unowned')
      end
    else
      local ek = early_key(smsc, id)
      local exists = redis.call('EXISTS', ek)
      if exists == 0 or outcome_of(status) ~= false then
        if exists == 0 then
          bump(stats, 'held')
          redis.call('HINCRBY', held_key, smsc, '1')
          may_hold_cache[smsc] = true
        end
        redis.call('SET', ek, value, 'EX', ttl)
        redis.call('EXPIRE', held_key, ttl)  -- outlives every receipt held
      end
    end
  elseif kind == 'X' then
    -- Stopped before any part was sent (its recipient refused: ulak/refusals.py): final.
    local ck, bk, f = keys_of(job, row)
    if redis.call('HSETNX', bk, f, 'x') == 1 then
      redis.call('HSET', bk, f .. ':x', x1 .. '|' .. x2)
      for p = 1, parts do redis.call('HSET', bk, f .. ':' .. p, 'x') end
      bump(ck, 'stopped_' .. x1)
      increments[ck]['parts_stopped'] = (increments[ck]['parts_stopped'] or 0) + parts
    end
  else
    local ck, bk, f = keys_of(job, row)
    local field = f .. ':' .. part
    local state, row_acked
    -- A single-part row has a row field exactly when its part has a part field (every event sets
    -- both), so the common case, its ack in the write that also had its send, tries the row first.
    local fresh = kind == 'A' and parts == 1 and redis.call('HSETNX', bk, f, 'a') == 1
    if not fresh then state = redis.call('HGET', bk, field) end
    if kind == 'S' then
      if not state then
        redis.call('HSET', bk, field, 's')
        bump(ck, 'parts_sent')
      end
      mark_sent(ck, bk, f)
    elseif kind == 'T' then
      -- Returned (throttled): not at the SMSC, so its send is forgotten, and its row's when no other
      -- part of it was sent. Rare (a throttled bind), so the siblings are read one by one.
      if state == 's' then
        redis.call('HDEL', bk, field)
        increments[ck] = increments[ck] or {}
        increments[ck]['parts_sent'] = (increments[ck]['parts_sent'] or 0) - 1
        local alone = true
        for p = 1, parts do
          if p ~= tonumber(part) and redis.call('HEXISTS', bk, f .. ':' .. p) == 1 then
            alone = false
            break
          end
        end
        if alone and redis.call('HGET', bk, f) == 's' then
          redis.call('HDEL', bk, f)
          increments[ck]['submitted'] = (increments[ck]['submitted'] or 0) - 1
        end
      end
    else
      local shown
      if kind == 'A' then
        shown = x3 .. '|' .. now_s
      end
      if fresh then
        -- The row goes straight to acked (what mark_sent then the branch below would do, in one call).
        row_acked = true
        redis.call('HSET', bk, field, 'a', field .. ':m', shown)
        fresh_acks[job] = (fresh_acks[job] or 0) + 1
      elseif (not state) or state == 's' then
        local row_state
        if not state then
          bump(ck, 'parts_sent')
          row_state = mark_sent(ck, bk, f)
        end
        if kind == 'A' then
          redis.call('HSET', bk, field, 'a', field .. ':m', shown)
          bump(ck, 'parts_acked')
          local acked = 1
          if parts ~= 1 then acked = redis.call('HINCRBY', bk, f .. ':a', '1') end
          if acked == parts then
            row_state = row_state or redis.call('HGET', bk, f)
            if row_state == 's' then
              redis.call('HSET', bk, f, 'a')
              row_acked = parts == 1
              bump(ck, 'acked')
              -- A single-part row can have no receipt yet: its id is recorded only below.
              if parts ~= 1 then finish(job, bk, f, row, parts) end
            end
          end
        else
          local terminal = (kind == 'F') and 'f' or 'u'
          if kind == 'F' then
            redis.call('HSET', bk, field, terminal, field .. ':e', x1)
          else
            redis.call('HSET', bk, field, terminal)
          end
          bump(ck, (kind == 'F') and 'parts_failed' or 'parts_unknown')
          row_state = row_state or redis.call('HGET', bk, f)
          if row_state == 's' then
            redis.call('HSET', bk, f, terminal)
            bump(ck, (kind == 'F') and 'failed' or 'unknown')
          end
        end
      elseif kind == 'A' then
        redis.call('HSET', bk, field .. ':m', shown)
      end
      if kind == 'A' then
        local smsc, id = x1, x2
        local ids = ids_now .. batch[i + 8]
        local owner = number_of(job) .. '|' .. row .. '|' .. acked_in_period
        if parts ~= 1 then
          owner = owner .. '|' .. part .. '|' .. parts_s
        elseif row_acked then
          owner = owner .. '|a'
        end
        redis.call('HSET', ids, id, owner)
        redis.call('EXPIREAT', ids, ids_expire)
        if may_hold(smsc) then
          local ek = early_key(smsc, id)
          local held = redis.call('GET', ek)
          if held then
            redis.call('DEL', ek)
            redis.call('HINCRBY', held_key, smsc, '-1')
            bump(stats, 'matched_late')
            apply_receipt(job, row, part, parts, split_status(held), held, now, row_acked)
          end
        end
      end
    end
  end
end

for job, n in pairs(fresh_acks) do  -- each was parts_sent, submitted, parts_acked and acked
  local ck = counters_of(job)
  local fields = increments[ck]
  if not fields then fields = {}; increments[ck] = fields end
  for _, name in ipairs(FRESH_ACK_COUNTERS) do fields[name] = (fields[name] or 0) + n end
end
for key, fields in pairs(increments) do
  for field, n in pairs(fields) do redis.call('HINCRBY', key, field, n) end
end
if latency_sum > 0 then redis.call('HINCRBYFLOAT', latency, 'sum', latency_sum) end
if inbox ~= '' and received > 0 then redis.call('LTRIM', inbox, received, -1) end
return count
