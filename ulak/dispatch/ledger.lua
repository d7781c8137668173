-- The job ledger's rules (see ledger.py), applied atomically to one batch of events.
-- ARGV: counters/rows/parts/message-id/early-receipt key templates, receipt-stats key, message TTL,
-- the batch (8), the webhook jobs set (9), the webhook outbox stream (10) and the receipt latency
-- histogram (11). The batch: events
-- separated by \30 (RS), each 8 fields separated by \31 (US):
-- kind, job, row, part, parts, x1, x2, x3.
-- Besides the rules, the parts hash keeps what the row-level report shows: per part the message id and
-- ack time ('<row>:<part>:m' = 'id as the SMSC wrote it|unix_ms'), the failure status ('<row>:<part>:e'), and the receipt
-- ('<row>:<part>:r' = 'status|error|unix_ms').
local ctpl, rtpl, ptpl, mtpl, etpl, stats = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local ttl = tonumber(ARGV[7])
-- Jobs with a receipt webhook (a set), and the outbox stream their final row outcomes go to.
local hooks, outbox = ARGV[9], ARGV[10]
-- Receipt latency histogram (a hash of bucket counts, upper bounds in seconds).
local latency = ARGV[11]
local LATENCY_BUCKETS = {1, 5, 15, 60, 300, 1800, 3600, 21600, 86400}

local OUTCOME = {DELIVRD = 'delivered', UNDELIV = 'undelivered', EXPIRED = 'expired',
                 REJECTD = 'rejected', DELETED = 'deleted', UNKNOWN = 'receipt_unknown',
                 ENROUTE = false, ACCEPTD = false}

local function outcome_of(status)
  local o = OUTCOME[status]
  if o == nil then return 'receipt_unknown' end
  return o
end

local function finish(job, row, parts)
  local rk = string.format(rtpl, job)
  if redis.call('HEXISTS', rk, row .. ':o') == 1 then return end
  local out = redis.call('HGET', rk, row .. ':n')
  if not out then
    local d = tonumber(redis.call('HGET', rk, row .. ':d') or '0')
    if d ~= parts then return end
    out = 'delivered'
  end
  redis.call('HSET', rk, row .. ':o', out)
  redis.call('HINCRBY', string.format(ctpl, job), out, 1)
  if hooks and redis.call('SISMEMBER', hooks, job) == 1 then
    redis.call('XADD', outbox, 'MAXLEN', '~', 1000000, '*', 'job', job, 'row', row, 'outcome', out)
  end
end

local function mark_sent(ck, rk, row)
  if redis.call('HSETNX', rk, row, 's') == 1 then
    redis.call('HINCRBY', ck, 'submitted', 1)
  end
end

local function split_status(value)
  local bar = string.find(value, '|', 1, true)
  return string.sub(value, 1, bar - 1)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- value is 'status|error'; the part's receipt field keeps 'status|error|unix_ms' for the report.
local function apply_receipt(job, row, part, parts, value)
  local status = split_status(value)
  local ck = string.format(ctpl, job)
  redis.call('HINCRBY', ck, 'receipts', 1)
  local out = outcome_of(status)
  if out == false then return end
  local now = now_ms()
  local stamped = value .. '|' .. now
  local pk = string.format(ptpl, job)
  if redis.call('HSETNX', pk, row .. ':' .. part .. ':r', stamped) == 0 then
    redis.call('HINCRBY', ck, 'receipts_duplicate', 1)
    return
  end
  -- Receipt latency (ack to final receipt), as histogram bucket counts for /metrics.
  local acked = redis.call('HGET', pk, row .. ':' .. part .. ':m')
  if acked and latency then
    local ms = tonumber(string.match(acked, '|(%d+)$'))
    if ms then
      local seconds = (now - ms) / 1000
      local bucket = '+Inf'
      for _, le in ipairs(LATENCY_BUCKETS) do
        if seconds <= le then bucket = tostring(le); break end
      end
      redis.call('HINCRBY', latency, bucket, 1)
      redis.call('HINCRBYFLOAT', latency, 'sum', seconds)
    end
  end
  local rk = string.format(rtpl, job)
  if out == 'delivered' then
    redis.call('HINCRBY', rk, row .. ':d', 1)
  else
    redis.call('HSETNX', rk, row .. ':n', out)
  end
  if redis.call('HGET', rk, row) == 'a' then finish(job, row, parts) end
end

local count = 0
for record in string.gmatch(ARGV[8], '[^\30]+') do
  local f = {}
  for value in string.gmatch(record .. '\31', '([^\31]*)\31') do f[#f + 1] = value end
  count = count + 1
  local kind, job, row, part = f[1], f[2], f[3], f[4]
  local parts = tonumber(f[5])
  if kind == 'R' then
    local smsc, id, value = f[6], f[7], f[8]
    local target = redis.call('GET', string.format(mtpl, smsc, id))
    local status = split_status(value)
    if target then
      local j, r, p, n = string.match(target, '^(.*)|(%d+)|(%d+)|(%d+)$')
      apply_receipt(j, r, p, tonumber(n), value)
    else
      local ek = string.format(etpl, smsc, id)
      local exists = redis.call('EXISTS', ek)
      if exists == 0 or outcome_of(status) ~= false then
        if exists == 0 then redis.call('HINCRBY', stats, 'held', 1) end
        redis.call('SET', ek, value, 'EX', ttl)
      end
    end
  else
    local ck, rk, pk = string.format(ctpl, job), string.format(rtpl, job), string.format(ptpl, job)
    local field = row .. ':' .. part
    local state = redis.call('HGET', pk, field)
    if kind == 'S' then
      if not state then
        redis.call('HSET', pk, field, 's')
        redis.call('HINCRBY', ck, 'parts_sent', 1)
      end
      mark_sent(ck, rk, row)
    else
      if (not state) or state == 's' then
        if not state then
          redis.call('HINCRBY', ck, 'parts_sent', 1)
          mark_sent(ck, rk, row)
        end
        if kind == 'A' then
          redis.call('HSET', pk, field, 'a')
          redis.call('HINCRBY', ck, 'parts_acked', 1)
          local acked = redis.call('HINCRBY', rk, row .. ':a', 1)
          if acked == parts and redis.call('HGET', rk, row) == 's' then
            redis.call('HSET', rk, row, 'a')
            redis.call('HINCRBY', ck, 'acked', 1)
            finish(job, row, parts)
          end
        else
          local terminal = (kind == 'F') and 'f' or 'u'
          redis.call('HSET', pk, field, terminal)
          if kind == 'F' then redis.call('HSET', pk, field .. ':e', f[6]) end
          redis.call('HINCRBY', ck, (kind == 'F') and 'parts_failed' or 'parts_unknown', 1)
          if redis.call('HGET', rk, row) == 's' then
            redis.call('HSET', rk, row, terminal)
            redis.call('HINCRBY', ck, (kind == 'F') and 'failed' or 'unknown', 1)
          end
        end
      end
      if kind == 'A' then
        local smsc, id = f[6], f[7]
        local shown = id
        if f[8] ~= '' then shown = f[8] end
        redis.call('HSET', pk, field .. ':m', shown .. '|' .. now_ms())
        redis.call('SET', string.format(mtpl, smsc, id), job .. '|' .. row .. '|' .. part .. '|' .. parts,
                   'EX', ttl)
        local ek = string.format(etpl, smsc, id)
        local held = redis.call('GET', ek)
        if held then
          redis.call('DEL', ek)
          redis.call('HINCRBY', stats, 'matched_late', 1)
          apply_receipt(job, row, part, parts, held)
        end
      end
    end
  end
end
return count
