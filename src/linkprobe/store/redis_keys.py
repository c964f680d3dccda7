"""Every Redis key name and Lua script of linkprobe, in one place, under one prefix.

Keys of one task share the hash tag `{<task id>}` so they live in one Cluster slot:

    lp:{T}:task          HASH   the task record and its counters (done, ok, broken, chunks_left)
    lp:{T}:chunk:N       STRING chunk N's URLs, newline-separated
    lp:{T}:starts        HASH   chunk number -> input index of its first URL
    lp:{T}:done          SET    numbers of the chunks already completed (redelivery guard)
    lp:{T}:results       HASH   input index -> result JSON
    lp:{T}:idx:<filter>  ZSET   input indexes (score = index) for all, ok, broken, s:<code>, e:<kind>
    lp:{T}:counts        HASH   s:<code> / e:<kind> -> count
    lp:{T}:keys          SET    every key of the task, so that DELETE removes them all

Global keys:

    lp:seq               STRING listing order counter
    lp:tasks             ZSET   task id, score = creation order (newest first listing)
    lp:idem:<key>        STRING "<task id> <body fingerprint>" for Idempotency-Key
    lp:queue             STREAM one entry per chunk {task, chunk}; consumer group `workers`
    lp:dead              STREAM chunks delivered too often (dead letters)

Chunk completion is one Lua script (results, counters and XACK together). The script also builds
the task's dynamic key names from its prefix: fine on a single Redis, as deployed; on a Redis
Cluster the queue stream lives in another slot, so the XACK would have to move out of the script.
"""

from __future__ import annotations

PREFIX = "lp:"
GROUP = "workers"
SEQ = f"{PREFIX}seq"
TASKS = f"{PREFIX}tasks"
QUEUE = f"{PREFIX}queue"
DEAD = f"{PREFIX}dead"


def task_prefix(task_id: str) -> str:
    return f"{PREFIX}{{{task_id}}}:"


def task(task_id: str) -> str:
    return f"{task_prefix(task_id)}task"


def chunk(task_id: str, number: int) -> str:
    return f"{task_prefix(task_id)}chunk:{number}"


def starts(task_id: str) -> str:
    return f"{task_prefix(task_id)}starts"


def done(task_id: str) -> str:
    return f"{task_prefix(task_id)}done"


def results(task_id: str) -> str:
    return f"{task_prefix(task_id)}results"


def index(task_id: str, name: str) -> str:
    return f"{task_prefix(task_id)}idx:{name}"


def counts(task_id: str) -> str:
    return f"{task_prefix(task_id)}counts"


def keys(task_id: str) -> str:
    return f"{task_prefix(task_id)}keys"


def idempotency(key: str) -> str:
    return f"{PREFIX}idem:{key}"


# KEYS[1] task hash, KEYS[2] queue stream
# ARGV[1] task key prefix, ARGV[2] group, ARGV[3] entry id ("" when there is none), ARGV[4] chunk
# number, ARGV[5] retention seconds, ARGV[6] now (ISO 8601), then per result: index, "ok"|"broken",
# class ("s:<code>" | "e:<kind>"), JSON.
# Returns the number of results written (0 for a redelivered chunk or a deleted/cancelled task).
COMPLETE_CHUNK = """
local function ack()
  if ARGV[3] ~= '' then
    redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
    redis.call('XDEL', KEYS[2], ARGV[3])
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then ack() return 0 end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'cancelled' then ack() return 0 end
local p = ARGV[1]
local ttl = tonumber(ARGV[5])
if redis.call('SADD', p .. 'done', ARGV[4]) == 0 then ack() return 0 end
local written, ok = 0, 0
local touched = {[p .. 'done'] = true, [p .. 'results'] = true, [p .. 'counts'] = true,
                 [p .. 'idx:all'] = true}
for i = 7, #ARGV, 4 do
  local idx, flag, class, json = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('HSETNX', p .. 'results', idx, json) == 1 then
    written = written + 1
    if flag == 'ok' then ok = ok + 1 end
    redis.call('ZADD', p .. 'idx:all', idx, idx)
    redis.call('ZADD', p .. 'idx:' .. flag, idx, idx)
    redis.call('ZADD', p .. 'idx:' .. class, idx, idx)
    redis.call('HINCRBY', p .. 'counts', class, 1)
    touched[p .. 'idx:' .. flag] = true
    touched[p .. 'idx:' .. class] = true
  end
end
redis.call('HINCRBY', KEYS[1], 'done', written)
redis.call('HINCRBY', KEYS[1], 'ok', ok)
redis.call('HINCRBY', KEYS[1], 'broken', written - ok)
local left = redis.call('HINCRBY', KEYS[1], 'chunks_left', -1)
if left <= 0 and (status == 'running' or status == 'pending') then
  redis.call('HSET', KEYS[1], 'status', 'ready', 'finished_at', ARGV[6])
end
for key, _ in pairs(touched) do
  redis.call('SADD', p .. 'keys', key)
  redis.call('EXPIRE', key, ttl)
end
redis.call('EXPIRE', p .. 'keys', ttl)
ack()
return written
"""

# KEYS[1] task hash; ARGV[1] now. Marks a pending task running when its first chunk is claimed.
# Returns the task's status and options, or nil when the task is gone.
START_CHUNK = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return nil end
if status == 'pending' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1])
  status = 'running'
end
return {status, redis.call('HGET', KEYS[1], 'options')}
"""
