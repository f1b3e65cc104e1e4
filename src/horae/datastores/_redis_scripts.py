"""The Redis store's key layout, shared Lua helpers, and the task and schedule scripts.

Every multi-key change runs as one Lua script, and Redis runs a script without
interleaving any other command, so each script is one atomic unit, like a transaction:
``acquire_schedules`` leases a whole batch, ``release_schedules`` inserts every job of a
batch and advances every schedule in the same step (fenced on ``acquired_by``). The job
scripts (:mod:`horae.datastores._redis_job_scripts`) build on the same ``PRELUDE``:
``acquire_jobs`` checks the running limits inside Redis, and ``release_job`` stores the
result and deletes the job together.

Key layout under the prefix ``P`` (ids are always the last component, so they may
contain any character; ``{P}`` as a prefix keeps every key in one Redis Cluster slot)::

    P:version                      string  schema version
    P:seq                          string  insertion counter (ties in job order)
    P:tasks                        set     task ids
    P:task:<id>                    hash    task record
    P:schedules                    set     schedule ids
    P:schedule:<id>                hash    schedule record (+ "lapsed" = "1")
    P:schedules:due                zset    id -> next_fire_time   unpaused, not under a live lease
    P:schedules:leased             zset    id -> acquired_until   unpaused, under a live lease
    P:schedules:paused             zset    id -> paused_until     paused until a time
    P:schedules:held:<scheduler>   set     ids under that scheduler's live lease
    P:schedules:watermarks         hash    id -> latest fire time that made a job
    P:jobs                         set     ids of pending and running jobs
    P:job:<id>                     hash    job record (+ group, seq, member, rexp_us)
    P:jobs:group:<group>           zset    member -> start_time   pending jobs of one group
    P:jobs:schedule:<id>           set     ids of the pending and running jobs of a schedule
    P:jobs:ready                   zset    member -> start_time   head of each unparked group
    P:jobs:ready_member            hash    group -> its member in P:jobs:ready
    P:jobs:parked_on               hash    group -> "task" | "schedule"
    P:jobs:parked:<kind>:<id>      set     groups parked behind that task or schedule
    P:jobs:deadlines               zset    id -> start_deadline   pending jobs
    P:jobs:leases                  zset    id -> acquired_until   running jobs
    P:running:task:<id>            zset    id -> acquired_until   running jobs of a task
    P:running:schedule:<id>        zset    id -> acquired_until   running jobs of a schedule
    P:result:<job id>              hash    job result record
    P:results:expiry               zset    job id -> expires_at
    P:replay:<token>               list    reply of a finished call, for its retries

Times are integer microseconds since the epoch (exact in a double up to year 2255, and
only ordered beyond); the scripts copy the decimal strings that Python sends and never
read the server's clock. A *member* of the job zsets is ``"<seq, 16 digits>:<job id>"``:
equal start times then sort by insertion, as in the memory store.

**Groups.** Pending jobs that share ``(task, schedule, schedule-level limit)`` are held
back by the same limits, so they form a group: only each group's earliest job sits in
``P:jobs:ready``. A group whose head is blocked is *parked* (taken out of ``ready``)
behind the task or schedule that blocks it, and comes back when that task's or
schedule's running count drops or the task's limit changes. So a task at its limit costs
nothing per ``acquire_jobs``, never stalls other tasks, and ``get_next_job_time`` never
reports a job that cannot start.

**Replays.** A call whose connection dies after Redis ran the script is retried with the
same token; scripts that change something store their reply under ``P:replay:<token>``
and a retry returns it instead of running again (a retried ``acquire_jobs`` gets the jobs
the lost reply held, instead of leaving them leased to nobody).
"""

from __future__ import annotations

#: Shared helpers; every script starts with them. ARGV[1] is always the prefix.
PRELUDE = r"""
local P = ARGV[1]
local K = {
  seq = P .. ':seq',
  tasks = P .. ':tasks',
  schedules = P .. ':schedules',
  due = P .. ':schedules:due',
  leased = P .. ':schedules:leased',
  paused = P .. ':schedules:paused',
  watermarks = P .. ':schedules:watermarks',
  jobs = P .. ':jobs',
  ready = P .. ':jobs:ready',
  ready_member = P .. ':jobs:ready_member',
  parked_on = P .. ':jobs:parked_on',
  deadlines = P .. ':jobs:deadlines',
  leases = P .. ':jobs:leases',
  expiry = P .. ':results:expiry',
}
local function task_key(id) return P .. ':task:' .. id end
local function schedule_key(id) return P .. ':schedule:' .. id end
local function held_key(scheduler) return P .. ':schedules:held:' .. scheduler end
local function job_key(id) return P .. ':job:' .. id end
local function group_key(g) return P .. ':jobs:group:' .. g end
local function parked_key(kind, id) return P .. ':jobs:parked:' .. kind .. ':' .. id end
local function running_key(kind, id) return P .. ':running:' .. kind .. ':' .. id end
local function schedule_jobs_key(id) return P .. ':jobs:schedule:' .. id end
local function result_key(id) return P .. ':result:' .. id end

local function push(t, v) t[#t + 1] = v end

local function replay_get(token)
  if token == '' then return nil end
  local r = redis.call('LRANGE', P .. ':replay:' .. token, 0, -1)
  if #r == 0 then return nil end
  return r
end

local function replay_put(token, reply)
  if token == '' or #reply == 0 then return end
  local rk = P .. ':replay:' .. token
  for i = 1, #reply, 1000 do
    redis.call('RPUSH', rk, unpack(reply, i, math.min(i + 999, #reply)))
  end
  -- Garbage collection only (no decision reads the server clock): the reply must
  -- outlive the client's retries of this one call, which give up after about a minute.
  redis.call('EXPIRE', rk, 300)
end

local function hset_pairs(key, argv, first, count)
  for i = first, first + 2 * count - 1, 200 do
    redis.call('HSET', key, unpack(argv, i, math.min(i + 199, first + 2 * count - 1)))
  end
end

-- Put a schedule into the one index it belongs in (mirrors the memory store's heaps).
local function place_schedule(id)
  local f = redis.call('HMGET', schedule_key(id), 'paused', 'paused_until', 'acquired_by',
                       'acquired_until', 'next_fire_time', 'lapsed')
  redis.call('ZREM', K.due, id)
  redis.call('ZREM', K.leased, id)
  redis.call('ZREM', K.paused, id)
  if f[1] == '1' then
    if f[2] then redis.call('ZADD', K.paused, f[2], id) end
  elseif f[3] and f[6] ~= '1' then
    redis.call('ZADD', K.leased, f[4], id)
  elseif f[5] then
    redis.call('ZADD', K.due, f[5], id)
  end
end

-- Drop the schedule from its holder's set of live leases (the lease fields stay).
local function forget_holder(id)
  local holder = redis.call('HGET', schedule_key(id), 'acquired_by')
  if holder then redis.call('SREM', held_key(holder), id) end
end

local function remove_schedule(id)
  local sk = schedule_key(id)
  local task_id = redis.call('HGET', sk, 'task_id')
  if not task_id then return nil end
  forget_holder(id)
  redis.call('DEL', sk)
  redis.call('ZREM', K.due, id)
  redis.call('ZREM', K.leased, id)
  redis.call('ZREM', K.paused, id)
  redis.call('SREM', K.schedules, id)
  -- the fire guard goes with its schedule (it survives a replace, not a removal)
  redis.call('HDEL', K.watermarks, id)
  return task_id
end

-- Re-announce a group's current head in P:jobs:ready (unless the group is parked).
local function refresh_group(g)
  local head = redis.call('ZRANGE', group_key(g), 0, 0, 'WITHSCORES')
  local current = redis.call('HGET', K.ready_member, g)
  if #head == 0 then
    if current then redis.call('ZREM', K.ready, current) end
    redis.call('HDEL', K.ready_member, g)
    redis.call('HDEL', K.parked_on, g)
    return
  end
  if redis.call('HEXISTS', K.parked_on, g) == 1 then return end
  if current ~= head[1] then
    if current then redis.call('ZREM', K.ready, current) end
    redis.call('ZADD', K.ready, head[2], head[1])
    redis.call('HSET', K.ready_member, g, head[1])
  end
end

local function park(g, kind, id)
  local current = redis.call('HGET', K.ready_member, g)
  if current then redis.call('ZREM', K.ready, current) end
  redis.call('HDEL', K.ready_member, g)
  redis.call('HSET', K.parked_on, g, kind)
  redis.call('SADD', parked_key(kind, id), g)
end

-- Capacity behind a task or schedule changed: its parked groups compete again.
local function unpark(kind, id)
  local pk = parked_key(kind, id)
  for _, g in ipairs(redis.call('SMEMBERS', pk)) do
    if redis.call('HGET', K.parked_on, g) == kind then
      redis.call('HDEL', K.parked_on, g)
      refresh_group(g)
    end
  end
  redis.call('DEL', pk)
end

-- Insert a pending job from ARGV[i..]: id, group, start, deadline, fire, nfields,
-- fields... (the fire time is only read by the guard of release_schedules).
-- Returns the id (or false if it is already stored) and the index after the job.
local function insert_job(i)
  local id, g, start, deadline = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local nfields = tonumber(ARGV[i + 5])
  local after = i + 6 + 2 * nfields
  local jk = job_key(id)
  if redis.call('EXISTS', jk) == 1 then return false, after end
  local seq = redis.call('INCR', K.seq)
  local member = string.format('%016d', seq) .. ':' .. id
  hset_pairs(jk, ARGV, i + 6, nfields)
  redis.call('HSET', jk, 'group', g, 'seq', seq, 'member', member)
  redis.call('SADD', K.jobs, id)
  local schedule_id = redis.call('HGET', jk, 'schedule_id')
  if schedule_id then redis.call('SADD', schedule_jobs_key(schedule_id), id) end
  redis.call('ZADD', group_key(g), start, member)
  if deadline ~= '' then redis.call('ZADD', K.deadlines, deadline, id) end
  refresh_group(g)
  return id, after
end

-- Delete a pending or running job and everything that indexes it; free its capacity.
local function remove_job(id)
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'task_id', 'schedule_id', 'group', 'member', 'acquired_by')
  redis.call('SREM', K.jobs, id)
  if f[2] then redis.call('SREM', schedule_jobs_key(f[2]), id) end
  redis.call('ZREM', K.deadlines, id)
  redis.call('ZREM', K.leases, id)
  if f[3] then
    if f[4] then redis.call('ZREM', group_key(f[3]), f[4]) end
    refresh_group(f[3])
  end
  redis.call('DEL', jk)
  if f[5] then
    redis.call('ZREM', running_key('task', f[1]), id)
    unpark('task', f[1])
    if f[2] then
      redis.call('ZREM', running_key('schedule', f[2]), id)
      unpark('schedule', f[2])
    end
  end
end

-- Store a result the store itself decided (abandoned, missed start deadline, cancelled)
-- from the job's own fields, if the job keeps results; expires_at = now + lifetime.
local function keep_own_result(id, outcome, now)
  local f = redis.call('HMGET', job_key(id), 'task_id', 'schedule_id',
                       'scheduled_fire_time', 'started_at', 'attempt', 'rexp_us')
  local rexp = tonumber(f[6] or '0') or 0
  if rexp > 0 then
    local expires = string.format('%.0f', tonumber(now) + rexp)
    local rk = result_key(id)
    redis.call('DEL', rk)
    redis.call('HSET', rk, 'job_id', id, 'task_id', f[1] or '', 'outcome', outcome,
               'finished_at', now, 'expires_at', expires, 'attempt', f[5] or '1')
    if f[2] then redis.call('HSET', rk, 'schedule_id', f[2]) end
    if f[3] then redis.call('HSET', rk, 'scheduled_fire_time', f[3]) end
    if f[4] then redis.call('HSET', rk, 'started_at', f[4]) end
    redis.call('ZADD', K.expiry, expires, id)
  end
  return f
end

-- The wait in microseconds before the attempt after *attempt* of a job whose lease
-- lapsed, from its stored retry policy (the json of RetryPolicy), or nil when the policy
-- gives it no further attempt (or there is none, or it cannot be read). Mirrors
-- RetryPolicy.retries(attempt, None) and RetryPolicy.delay(attempt); *fraction* in
-- [0, 1) draws the jitter.
local function retry_delay_us(policy_json, attempt, fraction)
  if not policy_json then return nil end
  local ok, policy = pcall(cjson.decode, policy_json)
  if not ok or type(policy) ~= 'table' or type(policy.max_attempts) ~= 'number'
      or type(policy.backoff) ~= 'number' or type(policy.max_backoff) ~= 'number' then
    return nil
  end
  if attempt >= policy.max_attempts then return nil end
  local backoff = math.floor(policy.backoff * 1000000 + 0.5)
  local cap = math.floor(policy.max_backoff * 1000000 + 0.5)
  local delay = math.min(backoff * 2 ^ math.min(attempt - 1, 62), cap)
  if policy.jitter == true and delay > 0 then
    delay = delay / 2 + fraction * (delay / 2)  -- uniform over [delay / 2, delay]
  end
  return math.floor(delay + 0.5)
end

-- Make a running job pending again as its next attempt, as Job.for_retry does: attempt
-- + 1, start_time = start_s, start_deadline moved by as much as start_time, no lease, no
-- cancellation request; a new insertion seq (it queues behind jobs already waiting at
-- the same time). Frees the capacity it held, like remove_job.
local function retry_job(id, start_s)
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'task_id', 'schedule_id', 'group', 'start_time',
                       'start_deadline', 'attempt', 'acquired_by')
  redis.call('ZREM', K.leases, id)
  redis.call('ZREM', K.deadlines, id)
  if f[7] then
    redis.call('ZREM', running_key('task', f[1]), id)
    if f[2] then redis.call('ZREM', running_key('schedule', f[2]), id) end
  end
  redis.call('HDEL', jk, 'acquired_by', 'acquired_until', 'started_at', 'member')
  local seq = redis.call('INCR', K.seq)
  local member = string.format('%016d', seq) .. ':' .. id
  redis.call('HSET', jk, 'attempt', string.format('%d', (tonumber(f[6] or '1') or 1) + 1),
             'start_time', start_s, 'cancel_requested', '0', 'seq', seq, 'member', member)
  if f[5] then
    local deadline = string.format('%.0f', tonumber(f[5]) + (tonumber(start_s) - tonumber(f[4])))
    redis.call('HSET', jk, 'start_deadline', deadline)
    redis.call('ZADD', K.deadlines, deadline, id)
  end
  redis.call('ZADD', group_key(f[3]), start_s, member)
  refresh_group(f[3])
  if f[7] then
    unpark('task', f[1])
    if f[2] then unpark('schedule', f[2]) end
  end
end
"""

#: ARGV: prefix, scheduler_id, now, acquired_until, limit.
#: Reply: n_unpaused, (id, next_fire_time|"")*, n_acquired, (n, field, value...)*.
ACQUIRE_SCHEDULES = (
    PRELUDE
    + r"""
local scheduler, now_s, until_s = ARGV[2], ARGV[3], ARGV[4]
local now, limit = tonumber(now_s), tonumber(ARGV[5])
local reply = {}
-- Paused schedules whose paused_until has come unpause themselves.
local unpaused = redis.call('ZRANGEBYSCORE', K.paused, '-inf', now_s, 'LIMIT', 0, 1000)
push(reply, #unpaused)
for _, id in ipairs(unpaused) do
  local sk = schedule_key(id)
  redis.call('HSET', sk, 'paused', '0')
  redis.call('HDEL', sk, 'pause_reason', 'paused_until')
  place_schedule(id)
  push(reply, id)
  push(reply, redis.call('HGET', sk, 'next_fire_time') or '')
end
-- A lease is live while acquired_until >= now. A lapsed one keeps acquired_by (its
-- holder may still release if nobody takes over first) but its schedule becomes due.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.leased, '-inf', '(' .. now_s)) do
  forget_holder(id)
  redis.call('HSET', schedule_key(id), 'lapsed', '1')
  place_schedule(id)
end
-- Candidates: what nobody holds, plus what this scheduler holds already (it may take
-- its own schedules again, after a restart with the same identity, say).
local cands = {}
for _, id in ipairs(redis.call('SMEMBERS', held_key(scheduler))) do
  local f = redis.call('HMGET', schedule_key(id), 'paused', 'next_fire_time')
  if f[1] ~= '1' and f[2] and tonumber(f[2]) <= now then push(cands, {tonumber(f[2]), id}) end
end
if limit > 0 then
  local due = redis.call('ZRANGEBYSCORE', K.due, '-inf', now_s, 'WITHSCORES', 'LIMIT', 0, limit)
  for i = 1, #due, 2 do push(cands, {tonumber(due[i + 1]), due[i]}) end
end
table.sort(cands, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
local n = math.min(math.max(limit, 0), #cands)
push(reply, n)
for i = 1, n do
  local id = cands[i][2]
  local sk = schedule_key(id)
  forget_holder(id)
  redis.call('HSET', sk, 'acquired_by', scheduler, 'acquired_until', until_s)
  redis.call('HDEL', sk, 'lapsed')
  redis.call('SADD', held_key(scheduler), id)
  place_schedule(id)
  local h = redis.call('HGETALL', sk)
  push(reply, #h)
  for _, v in ipairs(h) do push(reply, v) end
end
return reply
"""
)


#: ARGV: prefix, token, scheduler_id, n_updates, then per update: id, next_fire_time|"",
#: last_fire_time|"", n_jobs, then per job: id, group, start, deadline|"", fire|"",
#: n_fields, (field, value)*.
#: Reply: per accepted update: id, task_id, next_fire_time|"" (removed), n, job ids*.
RELEASE_SCHEDULES = (
    PRELUDE
    + r"""
local token, scheduler = ARGV[2], ARGV[3]
local replayed = replay_get(token)
if replayed then return replayed end
local reply = {}
local i = 5
for _ = 1, tonumber(ARGV[4]) do
  local id, nft, lft, njobs = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 4
  local jobs = {}
  for index = 1, njobs do
    local fire = ARGV[i + 4]
    push(jobs, {index = index, start = i, fire = fire ~= '' and tonumber(fire) or nil,
                fire_s = fire})
    i = i + 6 + 2 * tonumber(ARGV[i + 5])
  end
  local sk = schedule_key(id)
  -- Fencing: a node whose lease was taken over, or whose schedule was replaced or
  -- removed, is no longer acquired_by and changes nothing (its jobs are not made).
  if redis.call('HGET', sk, 'acquired_by') == scheduler then
    -- The exactly-once guard: the watermark is the latest fire time that ever made a
    -- job for this schedule. Fire times only move forward, so one at or before it was
    -- handled already (maybe by a node whose lease we took over, maybe by a job that
    -- has finished and been deleted since).
    local wm_s = redis.call('HGET', K.watermarks, id)
    local wm = wm_s and tonumber(wm_s)
    local accepted, timed = {}, {}
    for _, job in ipairs(jobs) do
      if job.fire then push(timed, job) else push(accepted, job) end
    end
    table.sort(timed, function(a, b)
      if a.fire ~= b.fire then return a.fire < b.fire end
      return a.index < b.index
    end)
    local new_wm = nil
    for _, job in ipairs(timed) do
      if not wm or job.fire > wm then
        wm = job.fire
        new_wm = job.fire_s
        push(accepted, job)
      end
    end
    if new_wm then redis.call('HSET', K.watermarks, id, new_wm) end
    local created = {}
    for _, job in ipairs(accepted) do
      local job_id = insert_job(job.start)
      if job_id then push(created, job_id) end
    end
    local task_id
    if nft == '' then
      task_id = remove_schedule(id)
    else
      task_id = redis.call('HGET', sk, 'task_id')
      redis.call('HSET', sk, 'next_fire_time', nft)
      if lft ~= '' then redis.call('HSET', sk, 'last_fire_time', lft) end
      forget_holder(id)
      redis.call('HDEL', sk, 'acquired_by', 'acquired_until', 'lapsed')
      place_schedule(id)
    end
    push(reply, id)
    push(reply, task_id or '')
    push(reply, nft)
    push(reply, tostring(#created))
    for _, job_id in ipairs(created) do push(reply, job_id) end
  end
end
replay_put(token, reply)
return reply
"""
)


#: ARGV: prefix, token, schedule_id, policy, n_fields, (field, value)*.
#: Reply: "conflict" | "kept" | "added" | "replaced".
ADD_SCHEDULE = (
    PRELUDE
    + r"""
local token, id, policy = ARGV[2], ARGV[3], ARGV[4]
local replayed = replay_get(token)
if replayed then return replayed[1] end
local sk = schedule_key(id)
local exists = redis.call('EXISTS', sk) == 1
if exists and policy == 'exception' then return 'conflict' end
if exists and policy == 'do_nothing' then return 'kept' end
if exists then
  -- A stored schedule starts unheld: replacing a held one fences its holder, whose
  -- release then finds another acquired_by (none) and changes nothing.
  forget_holder(id)
  redis.call('DEL', sk)
end
hset_pairs(sk, ARGV, 6, tonumber(ARGV[5]))
redis.call('SADD', K.schedules, id)
place_schedule(id)
local outcome = exists and 'replaced' or 'added'
replay_put(token, {outcome})
return outcome
"""
)


#: ARGV: prefix, token, ids...  Reply: (id, task_id)* of the schedules removed.
REMOVE_SCHEDULES = (
    PRELUDE
    + r"""
local token = ARGV[2]
local replayed = replay_get(token)
if replayed then return replayed end
local reply = {}
for i = 3, #ARGV do
  local task_id = remove_schedule(ARGV[i])
  if task_id then
    push(reply, ARGV[i])
    push(reply, task_id)
  end
end
replay_put(token, reply)
return reply
"""
)


#: ARGV: prefix, schedule_id, paused ("1"/"0"), n_fields, (field, value)*, n_deleted,
#: deleted fields*.  Sets the pause fields (and next_fire_time on unpause) as given.
#: Reply: the schedule's fields afterwards (empty if there is no such schedule).
SET_PAUSED = (
    PRELUDE
    + r"""
local id = ARGV[2]
local sk = schedule_key(id)
if redis.call('EXISTS', sk) == 0 then return {} end
local nfields = tonumber(ARGV[4])
redis.call('HSET', sk, 'paused', ARGV[3])
hset_pairs(sk, ARGV, 5, nfields)
local d = 5 + 2 * nfields
for i = d + 1, d + tonumber(ARGV[d]) do redis.call('HDEL', sk, ARGV[i]) end
place_schedule(id)
return redis.call('HGETALL', sk)
"""
)


#: ARGV: prefix, task_id, max_running_jobs|"", n_fields, (field, value)*.
#: Reply: 1 if the task existed before, else 0.
ADD_TASK = (
    PRELUDE
    + r"""
local id, limit = ARGV[2], ARGV[3]
local tk = task_key(id)
local existed = redis.call('EXISTS', tk) == 1
local old_limit = redis.call('HGET', tk, 'max_running_jobs') or ''
redis.call('DEL', tk)
hset_pairs(tk, ARGV, 5, tonumber(ARGV[4]))
redis.call('SADD', K.tasks, id)
-- jobs parked behind the old limit compete again under the new one
if existed and old_limit ~= limit then unpark('task', id) end
if existed then return 1 end
return 0
"""
)


#: ARGV: prefix, task_id.  Reply: 1 if it was removed, 0 if there was no such task.
REMOVE_TASK = (
    PRELUDE
    + r"""
local id = ARGV[2]
if redis.call('DEL', task_key(id)) == 0 then return 0 end
redis.call('SREM', K.tasks, id)
unpark('task', id)
return 1
"""
)
