"""The Lua scripts of the Redis store that insert, lease, renew and end jobs.

The key layout, the shared helpers (``PRELUDE``) and the ideas behind groups, parking
and replays are described in :mod:`horae.datastores._redis_scripts`.
"""

from __future__ import annotations

from horae.datastores._redis_scripts import PRELUDE

#: ARGV: prefix, token, n_jobs, then per job as in ``_redis_scripts.RELEASE_SCHEDULES``.
#: Reply: ids of the jobs inserted.
ADD_JOBS = (
    PRELUDE
    + r"""
local token = ARGV[2]
local replayed = replay_get(token)
if replayed then return replayed end
local reply = {}
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  local job_id
  job_id, i = insert_job(i)
  if job_id then push(reply, job_id) end
end
replay_put(token, reply)
return reply
"""
)


#: ARGV: prefix, token, scheduler_id, now, acquired_until, limit, jitter seed.
#: Reply: n_ended, (id, outcome, holder|"", task_id, schedule_id|"", fire|"",
#: started_at|"", attempt, retry_at|"")*, n_acquired, (n, field, value...)*.
ACQUIRE_JOBS = (
    PRELUDE
    + r"""
local token, scheduler, now_s, until_s = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now, limit = tonumber(now_s), tonumber(ARGV[6])
local ENDED_FIELDS = 9

-- The reply is stored for retries with ids only; the acquired jobs' fields are read
-- afterwards (also on a replay: they are still this scheduler's).
local function finish(record)
  local reply, i = {}, 1
  local nended = tonumber(record[i])
  for j = i, i + ENDED_FIELDS * nended do push(reply, record[j]) end
  i = i + 1 + ENDED_FIELDS * nended
  local acquired = {}
  for j = i + 1, i + tonumber(record[i]) do
    if redis.call('HGET', job_key(record[j]), 'acquired_by') == scheduler then
      push(acquired, redis.call('HGETALL', job_key(record[j])))
    end
  end
  push(reply, tostring(#acquired))
  for _, h in ipairs(acquired) do
    push(reply, tostring(#h))
    for _, v in ipairs(h) do push(reply, v) end
  end
  return reply
end

local replayed = replay_get(token)
if replayed then return finish(replayed) end

local ended = {}
local function push_ended(id, outcome, holder, f, retry_at)
  push(ended, id)
  push(ended, outcome)
  push(ended, holder or '')
  push(ended, f[1] or '')
  push(ended, f[2] or '')
  push(ended, f[3] or '')
  push(ended, f[4] or '')
  push(ended, f[5] or '1')
  push(ended, retry_at or '')
end
local function end_job(id, outcome, holder)
  push_ended(id, outcome, holder, keep_own_result(id, outcome, now_s), nil)
  remove_job(id)
end
-- First end the running jobs whose lease lapsed (acquired_until < now): their worker is
-- dead or hopelessly late. Doing it here, in the step that frees their capacity, ends
-- each one as abandoned exactly once however many nodes call this at the same time.
-- One whose cancellation was requested ends as cancelled; one whose retry policy gives
-- it another attempt becomes pending again instead (no result), from now + the delay.
math.randomseed(tonumber(ARGV[7]) or 0)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.leases, '-inf', '(' .. now_s)) do
  local jk = job_key(id)
  local g = redis.call('HMGET', jk, 'acquired_by', 'cancel_requested', 'retry', 'attempt')
  local delay = nil
  if g[2] ~= '1' then
    delay = retry_delay_us(g[3], tonumber(g[4] or '1') or 1, math.random())
  end
  if g[2] == '1' then
    end_job(id, 'cancelled', g[1])
  elseif delay then
    local retry_at = string.format('%.0f', now + delay)
    local f = redis.call('HMGET', jk, 'task_id', 'schedule_id', 'scheduled_fire_time',
                         'started_at', 'attempt')
    push_ended(id, 'abandoned', g[1], f, retry_at)
    retry_job(id, retry_at)
  else
    end_job(id, 'abandoned', g[1])
  end
end
-- A job may still start at its deadline; it missed it once the deadline is past.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.deadlines, '-inf', '(' .. now_s)) do
  end_job(id, 'missed_start_deadline', nil)
end

-- What would block this job: its task at max_running_jobs, or its schedule at the
-- job's own limit. Counts come from live leases (every lapsed one was ended above).
local function blocker(jk)
  local f = redis.call('HMGET', jk, 'task_id', 'schedule_id', 'max_running_jobs')
  local task_limit = redis.call('HGET', task_key(f[1]), 'max_running_jobs')
  if task_limit and redis.call('ZCOUNT', running_key('task', f[1]), now_s, '+inf')
      >= tonumber(task_limit) then
    return 'task', f[1]
  end
  if f[2] and f[3] and redis.call('ZCOUNT', running_key('schedule', f[2]), now_s, '+inf')
      >= tonumber(f[3]) then
    return 'schedule', f[2]
  end
  return nil
end

local acquired = {}
-- Each step either starts a job or parks a whole group, so the loop is bounded by the
-- limit plus the number of groups that became blocked.
local steps = 0
while #acquired < limit and steps < limit + 10000 do
  steps = steps + 1
  local top = redis.call('ZRANGE', K.ready, 0, 0, 'WITHSCORES')
  if #top == 0 or tonumber(top[2]) > now then break end
  local member = top[1]
  local id = string.sub(member, 18)
  local jk = job_key(id)
  local g = redis.call('HGET', jk, 'group')
  if not g then
    redis.call('ZREM', K.ready, member)  -- defensive: never leave a dangling head
  else
    local kind, blocked_by = blocker(jk)
    if kind then
      park(g, kind, blocked_by)
    else
      redis.call('ZREM', group_key(g), member)
      redis.call('ZREM', K.deadlines, id)
      redis.call('HSET', jk, 'acquired_by', scheduler, 'acquired_until', until_s,
                 'started_at', now_s)
      redis.call('HDEL', jk, 'member')
      redis.call('ZADD', K.leases, until_s, id)
      local f = redis.call('HMGET', jk, 'task_id', 'schedule_id')
      redis.call('ZADD', running_key('task', f[1]), until_s, id)
      if f[2] then redis.call('ZADD', running_key('schedule', f[2]), until_s, id) end
      refresh_group(g)
      push(acquired, id)
    end
  end
end

local record = {tostring(#ended / ENDED_FIELDS)}
for _, v in ipairs(ended) do push(record, v) end
push(record, tostring(#acquired))
for _, id in ipairs(acquired) do push(record, id) end
if #ended > 0 or #acquired > 0 then replay_put(token, record) end
return finish(record)
"""
)


#: ARGV: prefix, scheduler_id, acquired_until, job ids...  Reply: the ids still held.
EXTEND_JOB_LEASES = (
    PRELUDE
    + r"""
local scheduler, until_s = ARGV[2], ARGV[3]
local held = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'acquired_by', 'task_id', 'schedule_id')
  -- Held while the job exists with this acquired_by: a lapsed lease that no
  -- acquire_jobs has ended yet is renewed (nothing else happened to the job).
  if f[1] == scheduler then
    redis.call('HSET', jk, 'acquired_until', until_s)
    redis.call('ZADD', K.leases, until_s, id)
    redis.call('ZADD', running_key('task', f[2]), until_s, id)
    if f[3] then redis.call('ZADD', running_key('schedule', f[3]), until_s, id) end
    push(held, id)
  end
end
return held
"""
)


#: ARGV: prefix, token, scheduler_id, job_id, finished_at, retry_at|"", n_fields,
#: (field, value)*.
#: Reply: "0" (not held), or "1", task_id, schedule_id|"", fire|"", started_at|"",
#: retry_at|"" (the job was made pending again instead of ended).
RELEASE_JOB = (
    PRELUDE
    + r"""
local token, scheduler, id, finished_s, retry_s = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local replayed = replay_get(token)
if replayed then return replayed end
local jk = job_key(id)
local f = redis.call('HMGET', jk, 'acquired_by', 'task_id', 'schedule_id',
                     'scheduled_fire_time', 'started_at', 'rexp_us', 'cancel_requested')
if f[1] ~= scheduler then return {'0'} end
-- A job whose cancellation was requested is never retried: it ends with this result.
if f[7] == '1' then retry_s = '' end
if retry_s ~= '' then
  -- Another attempt: pending again, no result stored.
  retry_job(id, retry_s)
else
  -- Kept only with a positive lifetime; the store sets expires_at (finished_at plus the
  -- job's result_expiration_time) so that every path that ends a job agrees.
  local rexp = tonumber(f[6] or '0') or 0
  if rexp > 0 then
    local rk = result_key(id)
    local expires = string.format('%.0f', tonumber(finished_s) + rexp)
    redis.call('DEL', rk)
    hset_pairs(rk, ARGV, 8, tonumber(ARGV[7]))
    redis.call('HSET', rk, 'expires_at', expires)
    if f[5] and redis.call('HEXISTS', rk, 'started_at') == 0 then
      redis.call('HSET', rk, 'started_at', f[5])
    end
    redis.call('ZADD', K.expiry, expires, id)
  end
  remove_job(id)
end
local reply = {'1', f[2] or '', f[3] or '', f[4] or '', f[5] or '', retry_s}
replay_put(token, reply)
return reply
"""
)


#: ARGV: prefix, token, job_id, now.
#: Reply: "none" (no such job); or "ended", holder|"", task_id, schedule_id|"",
#: fire|"", started_at|"", attempt, then the job's fields before the call; or
#: "requested", holder, task_id, schedule_id|"", then the job's fields before the call.
CANCEL_JOB = (
    PRELUDE
    + r"""
local token, id, now_s = ARGV[2], ARGV[3], ARGV[4]
local replayed = replay_get(token)
if replayed then return replayed end
local jk = job_key(id)
local before = redis.call('HGETALL', jk)
if #before == 0 then return {'none'} end
local f = redis.call('HMGET', jk, 'acquired_by', 'acquired_until', 'task_id', 'schedule_id')
local reply
if f[1] and tonumber(f[2]) >= tonumber(now_s) then
  -- Running under a live lease: only its holder can stop it. Asking again repeats the
  -- request (the reply makes the store publish it again).
  redis.call('HSET', jk, 'cancel_requested', '1')
  reply = {'requested', f[1], f[3] or '', f[4] or ''}
else
  -- Pending, or running under a lapsed lease (its holder is gone): it ends now.
  local r = keep_own_result(id, 'cancelled', now_s)
  remove_job(id)
  reply = {'ended', f[1] or '', r[1] or '', r[2] or '', r[3] or '', r[4] or '', r[5] or '1'}
end
for _, v in ipairs(before) do push(reply, v) end
replay_put(token, reply)
return reply
"""
)


#: ARGV: prefix, now, batch size.  Reply: how many results it removed.
CLEANUP = (
    PRELUDE
    + r"""
local expired = redis.call('ZRANGEBYSCORE', K.expiry, '-inf', ARGV[2], 'LIMIT', 0,
                           tonumber(ARGV[3]))
for _, id in ipairs(expired) do
  redis.call('DEL', result_key(id))
  redis.call('ZREM', K.expiry, id)
end
return #expired
"""
)
