"""Every Redis key name and Lua script of linkprobe, in one place, under one prefix.

Keys of one task share the hash tag `{<task id>}` so they live in one Cluster slot:

    lp:{T}:task          HASH   the task record and its counters (done, ok, broken, chunks_left);
                                `secrets` (header values, JSON) only while the task runs, and
                                `live`, the name of its owner's in-flight set
    lp:{T}:chunk:N       STRING chunk N's URLs, newline-separated
    lp:{T}:starts        HASH   chunk number -> input index of its first URL
    lp:{T}:done          SET    numbers of the chunks already completed (counted once each)
    lp:{T}:todo          LIST   numbers of the chunks not yet put on the queue (fair turns)
    lp:{T}:batches       HASH   batch id -> results packed (store.packed: zlib of lines
                                "<index>\t<count keys>\t<JSON>"): the results one COMPLETE_CHUNK
                                wrote; once their chunk is complete, one batch per class of its
                                results (the same indexed count keys, COMPACT_CHUNK)
    lp:{T}:order         ZSET   batch ids, score = the input index where their chunk starts (once
                                compacted, their segment: packed.SEGMENT indexes of the chunk):
                                results are read a score at a time in input order (its batches merged)
    lp:{T}:in:<key>      ZSET   ids of the batches holding a result of count key <key> but latency
                                (o:<outcome>, s:<code>, e:<kind>, as base.ResultFilter.indexed names
                                them), scored as in `order`: a filter reads only those chunks
    lp:{T}:written       STRING bitmap: bit i set once input index i has its result (exactly once)
    lp:{T}:counts        HASH   count key (base.count_keys: o:<outcome>, s:<code>, e:<kind>,
                                l:<bound>) -> results counted; tasks stored before o:<outcome>
                                have `ok`/`broken` in the task hash and idx:ok/idx:broken
                                instead, read as they are (redis.legacy_counts)
    lp:{T}:keys          SET    every key of the task, so that DELETE removes them all
    lp:{T}:sources       HASH   input index -> JSON {"total": n, "places": [...]} (documents, crawls)
    lp:{T}:seen          HASH   crawl: URL -> input index (the crawl's seen-set)
    lp:{T}:expanded      SET    crawl: input indexes of the pages whose links were added
    lp:{T}:kinds         HASH   crawl: chunk number -> "<kind> <depth>" (absent: links at depth 0)
    lp:{T}:byurl         ZSET   an ended task's URLs in URL order for comparing runs, all at score 0:
                                "<url>\0<what it saw, JSON>" (store.byurl); built on first use
                                (into lp:{T}:byurl:new:<token>, then renamed), kept BYURL_TTL_S

The task hash's `batches` field is the last batch id given; its presence marks a task stored in
batches. A task stored before (no `batches`: per-URL keys, ~870 bytes a URL) keeps its layout to
the end, written by LEGACY_COMPLETE_CHUNK and read as it is:

    lp:{T}:results       HASH   input index -> result JSON
    lp:{T}:idx:<key>     ZSET   input indexes (score = index): `all`, and per count key but latency

Global keys:

    lp:seq               STRING listing order counter
    lp:tasks             ZSET   task id, score = creation order (newest first listing)
    lp:idem:<key>        STRING "<task id> <body fingerprint>" for Idempotency-Key
    lp:queue             STREAM one entry per chunk {task, chunk}; consumer group `workers`
    lp:dead              STREAM chunks delivered too often (dead letters)
    lp:lanes             ZSET   round-robin lanes with chunks to feed, score = last turn
    lp:lane:<lane>       LIST   task ids of one lane with chunks to feed, oldest first
    lp:owner:<id>:tasks  ZSET   the owner's task ids, score = creation order (its task list)
    lp:owner:<id>:live   SET    the owner's pending or running task ids (the in-flight quota)
    lp:schedules         ZSET   schedule ids, score = creation order
    lp:schedule:<id>     HASH   a schedule: body (header values redacted), secrets, period, keep,
                                owner, name, paused, created_at, last_claimed (due epoch: the lease)
    lp:schedule:<id>:runs ZSET  its runs' task ids, score = due epoch
    lp:deliveries:<id>   HASH   a schedule's or task's webhook deliveries: id -> JSON (with its
                                `seq`), and `seq`, the last one given (the newest 100 are kept)
    lp:webhooks          HASH   task id -> {"spec", "secret"}: task webhooks not yet told
    lp:notice:<task id>  STRING set once: the replica that sends a run's webhook notice
    lp:cache:<owner>:<k> HASH   URL -> "<task id> <checked_at epoch> <result JSON>": the newest
                                probed result per owner ("" without one) and effective options
                                (base.cache_key), for options.max_age; expires with the retention

A task leaves its owner's `live` set and loses its `secrets` in the script that ends it
(COMPLETE_CHUNK: its last chunk, a dead-lettered one, or the cancel's completion of the chunks
left), on delete, or when retention expires it (found stale and removed by the quota count).

Retention (base.Retention: finished tasks only): the keys written before CREATE_TASK carry the
retention as a TTL (a create cut short leaves nothing for long); CREATE_TASK persists them, keys
written while the task runs carry none, and the transition that ends the task (`end_task` in
COMPLETE_CHUNK) sets every key of the task (its `keys` set) to expire `retention` seconds later.

Task statuses in the scripts are the Lua names PENDING, RUNNING, READY, CANCELLED, defined from
base.TaskStatus (`_STATUSES`), never string literals.

Fair turns: a task's first chunk goes on the queue at once; the others wait in its `todo` list
and are fed one at a time (FEED_CHUNK), taking lanes in turn. A lane is a task today ("task:<id>")
and becomes the task's owner once tasks have owners, so turns are then shared per owner.

Chunk completion is one Lua script (results, counters and XACK together). The script also builds
the task's dynamic key names from its prefix: fine on a single Redis, as deployed; on a Redis
Cluster the queue stream lives in another slot, so the XACK would have to move out of the script.
"""

from __future__ import annotations

from linkprobe.store.base import TaskStatus

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


def batches(task_id: str) -> str:
    return f"{task_prefix(task_id)}batches"


def order(task_id: str) -> str:
    return f"{task_prefix(task_id)}order"


def batches_in(task_id: str, count_key: str) -> str:
    return f"{task_prefix(task_id)}in:{count_key}"


def written(task_id: str) -> str:
    return f"{task_prefix(task_id)}written"


BATCHES_FIELD = "batches"  # in the task hash: the last batch id given; absent on a legacy task


def results(task_id: str) -> str:
    """A legacy task's results (see the module's docstring)."""
    return f"{task_prefix(task_id)}results"


def index(task_id: str, name: str) -> str:
    """A legacy task's index of input indexes."""
    return f"{task_prefix(task_id)}idx:{name}"


def counts(task_id: str) -> str:
    return f"{task_prefix(task_id)}counts"


def keys(task_id: str) -> str:
    return f"{task_prefix(task_id)}keys"


def todo(task_id: str) -> str:
    return f"{task_prefix(task_id)}todo"


def sources(task_id: str) -> str:
    return f"{task_prefix(task_id)}sources"


def seen(task_id: str) -> str:
    return f"{task_prefix(task_id)}seen"


def expanded(task_id: str) -> str:
    return f"{task_prefix(task_id)}expanded"


def by_url(task_id: str) -> str:
    return f"{task_prefix(task_id)}byurl"


def by_url_building(task_id: str, token: str) -> str:
    """Where one builder writes the index before renaming it to by_url."""
    return f"{by_url(task_id)}:new:{token}"


BYURL_TTL_S = 3600  # an index in URL order is a cache: built again from the results when gone


def kinds(task_id: str) -> str:
    return f"{task_prefix(task_id)}kinds"


LANES = f"{PREFIX}lanes"


def lane(name: str) -> str:
    return f"{PREFIX}lane:{name}"


def owner_tasks(owner: str) -> str:
    return f"{PREFIX}owner:{owner}:tasks"


def owner_live(owner: str) -> str:
    return f"{PREFIX}owner:{owner}:live"


SCHEDULES = f"{PREFIX}schedules"


def schedule(schedule_id: str) -> str:
    return f"{PREFIX}schedule:{schedule_id}"


def schedule_runs(schedule_id: str) -> str:
    return f"{PREFIX}schedule:{schedule_id}:runs"


WEBHOOKS = f"{PREFIX}webhooks"


def deliveries(subject: str) -> str:
    return f"{PREFIX}deliveries:{subject}"


def notice(task_id: str) -> str:
    return f"{PREFIX}notice:{task_id}"


# KEYS[1] schedule hash; ARGV[1] the due time (epoch seconds). The run lease (schedules.claim) as
# one compare-and-set: 1 when this call moved the last claimed due time forward, else 0 (another
# replica did, the schedule is paused, or gone).
CLAIM_RUN = """
if redis.call('HGET', KEYS[1], 'paused') ~= '0' then return 0 end
local last = redis.call('HGET', KEYS[1], 'last_claimed')
if last and last ~= '' and tonumber(last) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'last_claimed', ARGV[1])
return 1
"""

# KEYS[1] schedule hash, KEYS[2] its runs; ARGV[1] due epoch, ARGV[2] task id. Only while the
# schedule exists (a run started as it was deleted leaves no runs key behind).
ADD_RUN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return 1
"""


def cache(owner: str, key: str) -> str:
    return f"{PREFIX}cache:{owner}:{key}"


def idempotency(key: str) -> str:
    return f"{PREFIX}idem:{key}"


# Every script that reads or writes a task's status starts with its names, from TaskStatus.
_STATUSES = "".join(f"local {status.name} = '{status.value}'\n" for status in TaskStatus)

# Ends a live task (KEYS[1], prefix p): its status and finish time, its secrets dropped, out of its
# owner's in-flight set, nothing more to feed (a cancel keeps `todo` until here, so that a cancel
# cut short leaves its chunks to the workers), and every key of it set to expire with the retention.
_END_TASK = """
local function end_task(p, status, now, retention)
  redis.call('HSET', KEYS[1], 'status', status, 'finished_at', now)
  redis.call('DEL', p .. 'todo')
  local f = redis.call('HMGET', KEYS[1], 'id', 'live')
  redis.call('HDEL', KEYS[1], 'secrets', 'cancelling')
  if f[2] then redis.call('SREM', f[2], f[1]) end
  for _, key in ipairs(redis.call('SMEMBERS', p .. 'keys')) do redis.call('EXPIRE', key, retention) end
  redis.call('EXPIRE', KEYS[1], retention)
  redis.call('EXPIRE', p .. 'keys', retention)
end
"""

# Acknowledges a chunk's entry (ARGV[3], group ARGV[2]) after its last results (`final`).
_ACK = """
local final = ARGV[7] == '1'
local function ack()
  if final and ARGV[3] ~= '' then
    redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
    redis.call('XDEL', KEYS[2], ARGV[3])
  end
end
"""

# A legacy task's (see the module's docstring): the script as it was before batches.
# KEYS[1] task hash, KEYS[2] queue stream
# ARGV[1] task key prefix, ARGV[2] group, ARGV[3] entry id ("" when there is none), ARGV[4] chunk
# number, ARGV[5] retention seconds, ARGV[6] now (ISO 8601), ARGV[7] "1" for a chunk's last results
# (mark the chunk done, acknowledge it) or "0" for a batch on the way, then per result (base.Stored):
# index, its count keys separated by spaces (base.count_keys: o:<outcome>, s:<code> | e:<kind>, and
# l:<bound> when timed), JSON. Python decides how a result is counted; the script applies it: one
# count per key, one index per key but latency.
# Results are kept per index (HSETNX): the first result of an index wins, so a redelivered chunk or
# a batch after a cancel never counts a URL twice. The chunk that ends the task ends it (end_task):
# `ready`, or `cancelled` when a cancel marked it, in the same step, so no reader ever sees a
# cancelled task `ready`. Returns the number of results written.
LEGACY_COMPLETE_CHUNK = (
    _STATUSES
    + _END_TASK
    + _ACK
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= RUNNING and status ~= PENDING then ack() return 0 end
local p = ARGV[1]
local written = 0
local counts = {}
for i = 8, #ARGV, 3 do
  local idx, json = ARGV[i], ARGV[i + 2]
  if redis.call('HSETNX', p .. 'results', idx, json) == 1 then
    written = written + 1
    redis.call('ZADD', p .. 'idx:all', idx, idx)
    for key in string.gmatch(ARGV[i + 1], '%S+') do
      counts[key] = (counts[key] or 0) + 1
      if string.sub(key, 1, 2) ~= 'l:' then redis.call('ZADD', p .. 'idx:' .. key, idx, idx) end
    end
  end
end
local keys = {p .. 'done', p .. 'results', p .. 'counts', p .. 'idx:all'}
for key, n in pairs(counts) do
  redis.call('HINCRBY', p .. 'counts', key, n)
  if string.sub(key, 1, 2) ~= 'l:' then keys[#keys + 1] = p .. 'idx:' .. key end
end
redis.call('SADD', p .. 'keys', unpack(keys))
redis.call('HINCRBY', KEYS[1], 'done', written)
if final and redis.call('SADD', p .. 'done', ARGV[4]) == 1 then
  if redis.call('HINCRBY', KEYS[1], 'chunks_left', -1) <= 0 then
    local cancelled = redis.call('HEXISTS', KEYS[1], 'cancelling') == 1
    end_task(p, cancelled and CANCELLED or READY, ARGV[6], tonumber(ARGV[5]))
  end
end
ack()
return written
"""
)

# KEYS[1] task hash, KEYS[2] queue stream
# ARGV[1] task key prefix, ARGV[2] group, ARGV[3] entry id ("" when there is none), ARGV[4] chunk
# number, ARGV[5] retention seconds, ARGV[6] now (ISO 8601), ARGV[7] "1" for a chunk's last results
# (mark the chunk done, acknowledge it) or "0" for a batch on the way, ARGV[8] the input index where
# the chunk starts, ARGV[9] the batch (store.packed; "" when it has no result), ARGV[10] c,
# ARGV[11] d, then c pairs (count key, results it counts: base.tally), the d count keys the batch
# is indexed by (packed.indexed_keys), and the input index of each result.
# Python decides what a batch holds and how it is counted; the script applies it whole or not at
# all: exactly once per input index (the `written` bitmap), so when any index of the batch has its
# result already it writes nothing and returns those indexes (a table), and the caller sends the
# batch again without them. A redelivered chunk, or a batch after a cancel, never counts a URL
# twice. Else it keeps the batch (next id), joins it to `order` and to the indexes, adds the
# counts, and returns the number of results written. The chunk that ends the task ends it
# (end_task): `ready`, or `cancelled` when a cancel marked it, in the same step, so no reader ever
# sees a cancelled task `ready`.
COMPLETE_CHUNK = (
    _STATUSES
    + _END_TASK
    + _ACK
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= RUNNING and status ~= PENDING then ack() return 0 end
local p, start = ARGV[1], ARGV[8]
local c, d = tonumber(ARGV[10]), tonumber(ARGV[11])
local first = 12 + 2 * c + d
local written = p .. 'written'
local refused = {}
for i = first, #ARGV do
  if redis.call('GETBIT', written, ARGV[i]) == 1 then refused[#refused + 1] = tonumber(ARGV[i]) end
end
if #refused > 0 then return refused end
local n = #ARGV - first + 1
local keys = {p .. 'done', p .. 'written', p .. 'batches', p .. 'order', p .. 'counts'}
if n > 0 then
  for i = first, #ARGV do redis.call('SETBIT', written, ARGV[i], 1) end
  local id = redis.call('HINCRBY', KEYS[1], 'batches', 1)
  redis.call('HSET', p .. 'batches', id, ARGV[9])
  redis.call('ZADD', p .. 'order', start, id)
  for i = 12, 11 + 2 * c, 2 do redis.call('HINCRBY', p .. 'counts', ARGV[i], ARGV[i + 1]) end
  for i = 12 + 2 * c, first - 1 do
    keys[#keys + 1] = p .. 'in:' .. ARGV[i]
    redis.call('ZADD', keys[#keys], start, id)
  end
  redis.call('HINCRBY', KEYS[1], 'done', n)
end
redis.call('SADD', p .. 'keys', unpack(keys))
if final and redis.call('SADD', p .. 'done', ARGV[4]) == 1 then
  if redis.call('HINCRBY', KEYS[1], 'chunks_left', -1) <= 0 then
    local cancelled = redis.call('HEXISTS', KEYS[1], 'cancelling') == 1
    end_task(p, cancelled and CANCELLED or READY, ARGV[6], tonumber(ARGV[5]))
  end
end
ack()
return n
"""
)

# KEYS[1] the batch index read (`order`, or `in:<count key>` for a filter), KEYS[2] `order`, KEYS[3]
# `batches`; ARGV[1] the lowest chunk start ("-inf", or "(<start>" for past it), ARGV[2] an input
# index ("" for none): start at its chunk instead, ARGV[3] chunks at most.
# The batches of the next chunks in KEYS[1], read in one step (a chunk's batches are never seen
# half compacted): per chunk its start, the number m of its batches, their m ids and m values.
READ_BATCHES = """
local low = ARGV[1]
if ARGV[2] ~= '' then
  local at = redis.call('ZREVRANGEBYSCORE', KEYS[2], ARGV[2], '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #at > 0 then low = at[2] end
end
local out = {}
for _ = 1, tonumber(ARGV[3]) do
  local next = redis.call('ZRANGEBYSCORE', KEYS[1], low, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #next == 0 then break end
  local start = next[2]
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], start, start)
  out[#out + 1] = start
  out[#out + 1] = #ids
  for _, id in ipairs(ids) do out[#out + 1] = id end
  for first = 1, #ids, 1000 do  -- a chunk written one result at a time has many (unpack's limit)
    local values = redis.call('HMGET', KEYS[3], unpack(ids, first, math.min(first + 999, #ids)))
    for _, value in ipairs(values) do out[#out + 1] = value end
  end
  low = '(' .. start
end
return out
"""

# KEYS[1] task hash; ARGV[1] task key prefix, ARGV[2] the input index where the chunk starts,
# ARGV[3] m, then the m batch ids the chunk's results were read from (READ_BATCHES), then the
# batches that replace them: per batch its score (the first input index of its segment), its
# value, d, and the d count keys it is indexed by.
# A complete chunk's batches replaced, only while they are still the ones read (a task deleted, or
# another writer, leaves them be). The new batches join their indexes before the old ones leave
# theirs, so no key is ever emptied (a key's TTL, once the task ended, stays as it is).
# Returns 1 when replaced.
COMPACT_CHUNK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local p, start, m = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = redis.call('ZRANGEBYSCORE', p .. 'order', start, start)
if #now ~= m then return 0 end
for i = 1, m do
  if now[i] ~= ARGV[3 + i] then return 0 end
end
local indexes, at = {}, 4 + m
while at <= #ARGV do
  local id = redis.call('HINCRBY', KEYS[1], 'batches', 1)
  local score = ARGV[at]
  redis.call('HSET', p .. 'batches', id, ARGV[at + 1])
  redis.call('ZADD', p .. 'order', score, id)
  local d = tonumber(ARGV[at + 2])
  for i = at + 3, at + 2 + d do
    redis.call('ZADD', p .. 'in:' .. ARGV[i], score, id)
    indexes[ARGV[i]] = true
  end
  at = at + 3 + d
end
for i = 4, 3 + m do
  redis.call('HDEL', p .. 'batches', ARGV[i])
  redis.call('ZREM', p .. 'order', ARGV[i])
  for key in pairs(indexes) do redis.call('ZREM', p .. 'in:' .. key, ARGV[i]) end
end
return 1
"""

# KEYS[1] task hash, KEYS[2] chunk kinds hash; ARGV[1] now, ARGV[2] chunk number. Marks a pending
# task running when its first chunk is claimed. Returns the task's status, options, crawl spec ("" for
# none), the chunk's "<kind> <depth>" ("" for links at depth 0), the task's secrets ("" for none) and
# 1 when a cancel marked it (its chunk's URLs are then given cancelled results, not probed), or nil
# when the task is gone.
START_CHUNK = (
    _STATUSES
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return nil end
if status == PENDING then
  redis.call('HSET', KEYS[1], 'status', RUNNING, 'started_at', ARGV[1])
  status = RUNNING
end
local crawl = redis.call('HGET', KEYS[1], 'crawl')
local secrets = redis.call('HGET', KEYS[1], 'secrets') or ''
local cancelling = redis.call('HEXISTS', KEYS[1], 'cancelling')
if not crawl then return {status, redis.call('HGET', KEYS[1], 'options'), '', '', secrets, cancelling} end
return {status, redis.call('HGET', KEYS[1], 'options'), crawl, redis.call('HGET', KEYS[2], ARGV[2]) or '',
        secrets, cancelling}
"""
)

# KEYS[1] task hash; ARGV field, value pairs. Sets them only on a task that still exists (a cancel
# racing a delete must not leave a hash without the task's fields). Returns 1 when set.
UPDATE_TASK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# KEYS[1] task hash, KEYS[2] queue stream, KEYS[3] lanes zset, KEYS[4] (when the crawl's owner is
# limited) the owner's usage counter of the day (`usage`, as TAKE_USAGE counts it).
# ARGV[1] task key prefix, ARGV[2] the page's input index, ARGV[3] depth of the new chunks, ARGV[4]
# key prefix, ARGV[5] task id, ARGV[6] group, ARGV[7] entry id, ARGV[8] consumer, ARGV[9] the
# task's `pages` and ARGV[10] the usage counter ('' when not limited) the plan was made from,
# ARGV[11] the usage counter's ttl, ARGV[12] pages scheduled after the plan, ARGV[13] n new URLs,
# ARGV[14] c chunks, ARGV[15] s sources; then the n new URLs (at input indexes total, total + 1,
# ...), c times kind, start, stop, s times input index, sources JSON.
# Applies a plan frontier.plan_discovery made (RedisStore.discover) and decides nothing itself:
# it checks that the task still wants it and that the state the plan was read from is current
# (`pages` counts the pages expanded, the only writes to the seen-set, total and sources), marks
# the page expanded once, and writes the new URLs, chunks (fed like a new task's: the first at
# once when the task had nothing left to feed), sources and the usage charge.
# Returns the number of new URLs, 0 for a page expanded before, -1 when the task is over, gone or
# being cancelled, -2 when the state moved since it was read (plan again).
DISCOVER = (
    _STATUSES
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if (status ~= RUNNING and status ~= PENDING) or not redis.call('HGET', KEYS[1], 'crawl')
   or redis.call('HEXISTS', KEYS[1], 'cancelling') == 1 then return -1 end
if ARGV[7] ~= '' then redis.call('XCLAIM', KEYS[2], ARGV[6], ARGV[8], 0, ARGV[7], 'JUSTID') end
if redis.call('HGET', KEYS[1], 'pages') ~= ARGV[9]
   or (KEYS[4] and (redis.call('GET', KEYS[4]) or '0') ~= ARGV[10]) then return -2 end
local p, depth = ARGV[1], ARGV[3]
if redis.call('SADD', p .. 'expanded', ARGV[2]) == 0 then return 0 end
local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
local n, c, s = tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15])
local urls, at = 15, 15 + n
for i = 1, n do redis.call('HSET', p .. 'seen', ARGV[urls + i], total + i - 1) end
local number = tonumber(redis.call('HGET', KEYS[1], 'chunks'))
local numbers = {}
for i = 0, c - 1 do
  local kind, start = ARGV[at + 3 * i + 1], tonumber(ARGV[at + 3 * i + 2])
  local stop = tonumber(ARGV[at + 3 * i + 3])
  local key = p .. 'chunk:' .. number
  redis.call('SET', key, table.concat(ARGV, '\\n', urls + 1 + start - total, urls + stop - total))
  redis.call('HSET', p .. 'starts', number, start)
  redis.call('HSET', p .. 'kinds', number, kind .. ' ' .. depth)
  redis.call('SADD', p .. 'keys', key)
  numbers[#numbers + 1] = number
  number = number + 1
end
at = at + 3 * c
for i = 0, s - 1 do redis.call('HSET', p .. 'sources', ARGV[at + 2 * i + 1], ARGV[at + 2 * i + 2]) end
redis.call('HSET', KEYS[1], 'total', total + n, 'scheduled', ARGV[12], 'chunks', number)
if KEYS[4] and n > 0 and redis.call('INCRBY', KEYS[4], n) == n then
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[11]))
end
redis.call('HINCRBY', KEYS[1], 'pages', 1)
redis.call('HINCRBY', KEYS[1], 'chunks_left', #numbers)
if #numbers > 0 then
  local todo = p .. 'todo'
  local idle = redis.call('LLEN', todo) == 0
  local first = 1
  if idle then
    redis.call('XADD', KEYS[2], '*', 'task', ARGV[5], 'chunk', numbers[1])
    first = 2
  end
  for i = first, #numbers do redis.call('RPUSH', todo, numbers[i]) end
  if idle and #numbers > 1 then  -- the lane feeds this task again
    local lane = redis.call('HGET', KEYS[1], 'lane')
    redis.call('RPUSH', ARGV[4] .. 'lane:' .. lane, ARGV[5])
    if not redis.call('ZSCORE', KEYS[3], lane) then  -- an idle lane takes the next turn, as on SQLite
      local head = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
      redis.call('ZADD', KEYS[3], head[2] or 1, lane)
    end
  end
end
return n
"""
)

# KEYS[1] task hash, KEYS[2] queue stream; ARGV[1] group, ARGV[2] entry id. Gives up a delivered
# chunk only if its task is deleted or cancelled at this moment (acknowledged unprocessed).
# Returns the reason, or false when the task still wants the chunk.
DROP_CHUNK = (
    _STATUSES
    + """
local status = redis.call('HGET', KEYS[1], 'status')
local reason = false
if not status then reason = 'deleted' elseif status == CANCELLED then reason = CANCELLED end
if reason and ARGV[2] ~= '' then
  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[2], ARGV[2])
end
return reason
"""
)

# KEYS[1] task hash, KEYS[2] its todo list, KEYS[3] its key set, KEYS[4] its lane's list, KEYS[5]
# lanes zset, KEYS[6] queue stream; ARGV[1] task id, ARGV[2] chunks, ARGV[3] lane, ARGV[4] the lane's
# score when new. A new task's chunks after CREATE_TASK: the first on the queue at once, the others
# in `todo`, fed a lane at a time. Only while the task is live: a cancel that ended it first leaves
# nothing behind. Returns 1 when queued.
ENQUEUE = (
    _STATUSES
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= PENDING and status ~= RUNNING then return 0 end
local chunks = tonumber(ARGV[2])
redis.call('SADD', KEYS[3], KEYS[2])
for first = 1, chunks - 1, 1000 do
  local numbers = {}
  for n = first, math.min(first + 999, chunks - 1) do numbers[#numbers + 1] = n end
  redis.call('RPUSH', KEYS[2], unpack(numbers))
end
if chunks > 1 then
  redis.call('RPUSH', KEYS[4], ARGV[1])
  redis.call('ZADD', KEYS[5], 'NX', ARGV[4], ARGV[3])
end
if chunks > 0 then redis.call('XADD', KEYS[6], '*', 'task', ARGV[1], 'chunk', '0') end
return 1
"""
)

# KEYS[1] lanes zset, KEYS[2] queue stream; ARGV[1] key prefix. Puts the next chunk of the lane
# whose turn it is on the queue and moves the lane to the back. Returns 1 when a chunk was fed,
# 0 when no lane has one.
FEED_CHUNK = """
for _ = 1, 100 do
  local top = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #top == 0 then return 0 end
  local lane = ARGV[1] .. 'lane:' .. top[1]
  local task = redis.call('LINDEX', lane, 0)
  local number = task and redis.call('LPOP', ARGV[1] .. '{' .. task .. '}:todo')
  if number then
    redis.call('XADD', KEYS[2], '*', 'task', task, 'chunk', number)
    if redis.call('LLEN', ARGV[1] .. '{' .. task .. '}:todo') == 0 then redis.call('LPOP', lane) end
  elseif task then
    redis.call('LPOP', lane)  -- cancelled, deleted or fed out: next task of the lane
  end
  if redis.call('LLEN', lane) == 0 then
    redis.call('ZREM', KEYS[1], top[1])
  else
    local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
    redis.call('ZADD', KEYS[1], tonumber(last[2]) + 1, top[1])
  end
  if number then return 1 end
end
return 0
"""

# -- API keys and per-key usage (linkprobe.store.accounts) -------------------------------------------
#
#    lp:apikeys           HASH   key id -> JSON {name, digest, created_at, revoked_at}
#    lp:apikey:<digest>   STRING key id of an active key (SHA-256 hex of the key)
#    lp:use:<id>:<window> STRING usage counter of one key in one time window (expires with it)

API_KEYS = f"{PREFIX}apikeys"


def api_key_digest(digest: str) -> str:
    return f"{PREFIX}apikey:{digest}"


def usage(key_id: str, window: str) -> str:
    return f"{PREFIX}use:{key_id}:{window}"


# A usage counter of one window: its count, and the count with `amount` added (it expires with
# its window, `ttl` seconds). Shared by TAKE_USAGE and CREATE_TASK.
_USAGE = """
local function used(key) return tonumber(redis.call('GET', key) or '0') end
local function count(key, amount, ttl)
  local new = redis.call('INCRBY', key, amount)
  if new == amount then redis.call('EXPIRE', key, ttl) end
  return new
end
"""

# KEYS[1] counter; ARGV[1] amount, ARGV[2] limit, ARGV[3] ttl seconds.
# Adds the amount unless that passes the limit; answers the count (the old one when refused, negated).
TAKE_USAGE = (
    _USAGE
    + """
local now = used(KEYS[1])
local amount, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if now + amount > limit then return -now - 1 end
return count(KEYS[1], amount, tonumber(ARGV[3]))
"""
)

# KEYS[1] task hash, KEYS[2] lp:seq, KEYS[3] lp:tasks, KEYS[4] the idempotency key, KEYS[5] the
# owner's task list, KEYS[6] the owner's in-flight set, KEYS[7] and KEYS[8] the owner's usage
# counters of the minute and of the day (unused keys are named all the same: Cluster wants them)
# ARGV[1] retention seconds, ARGV[2] "1" when there is an idempotency key, ARGV[3] the body's
# fingerprint, ARGV[4] task id, ARGV[5] owner ("" without), ARGV[6] "1" when the task has chunks
# (it is in flight), ARGV[7] "1" when the owner is limited, ARGV[8] tasks in flight at most,
# ARGV[9] submissions per minute, ARGV[10] the minute counter's ttl, ARGV[11] URLs per day,
# ARGV[12] the day counter's ttl, ARGV[13] the task's URLs, ARGV[14] key prefix, then the task
# hash's fields and values.
# The task's chunks, sources and crawl keys are written before (invisible without the hash); this
# makes it exist, in one step with its admission: a known idempotency key answers
# {"known", "<task id> <fingerprint>"} (nothing charged); a passed limit {"in_flight" | "minute" |
# "day", count}; else the quota is charged, the task hashed and indexed: {"created", seq}. The
# in-flight count drops the owner's tasks that ended or expired, as RedisStore.tasks_in_flight.
CREATE_TASK = (
    _STATUSES
    + _USAGE
    + """
local retention = tonumber(ARGV[1])
if ARGV[2] == '1' then
  local known = redis.call('GET', KEYS[4])
  if known then return {'known', known} end
end
if ARGV[7] == '1' then
  local live = 0
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[6])) do
    local status = redis.call('HGET', ARGV[14] .. '{' .. id .. '}:task', 'status')
    if status == PENDING or status == RUNNING then
      live = live + 1
    else
      redis.call('SREM', KEYS[6], id)
    end
  end
  if live >= tonumber(ARGV[8]) then return {'in_flight', live} end
  if used(KEYS[7]) + 1 > tonumber(ARGV[9]) then return {'minute', used(KEYS[7])} end
  if used(KEYS[8]) + tonumber(ARGV[13]) > tonumber(ARGV[11]) then return {'day', used(KEYS[8])} end
  count(KEYS[7], 1, tonumber(ARGV[10]))
  count(KEYS[8], tonumber(ARGV[13]), tonumber(ARGV[12]))
end
local seq = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'seq', seq, unpack(ARGV, 15))
redis.call('ZADD', KEYS[3], seq, ARGV[4])
local p = ARGV[14] .. '{' .. ARGV[4] .. '}:'
if ARGV[2] == '1' then  -- kept with the task, deleted with it
  redis.call('SET', KEYS[4], ARGV[4] .. ' ' .. ARGV[3])
  redis.call('SADD', p .. 'keys', KEYS[4])
end
if ARGV[5] ~= '' then  -- the owner's indexes: entries of expired tasks are dropped as they are read
  redis.call('ZADD', KEYS[5], seq, ARGV[4])
  if ARGV[6] == '1' then
    redis.call('HSET', KEYS[1], 'live', KEYS[6])
    redis.call('SADD', KEYS[6], ARGV[4])
  end
end
local ttl = ARGV[6] == '1' and -1 or retention  -- a task with nothing to do ended as it was made
for _, key in ipairs(redis.call('SMEMBERS', p .. 'keys')) do
  if ttl < 0 then redis.call('PERSIST', key) else redis.call('EXPIRE', key, ttl) end
end
if ttl < 0 then redis.call('PERSIST', p .. 'keys') else redis.call('EXPIRE', p .. 'keys', ttl) end
return {'created', seq}
"""
)
