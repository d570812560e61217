"""Job records in Redis: ours, because Dramatiq keeps no job status.

One hash per job (``{prefix}:job:{id}``), readable with ``redis-cli HGETALL``. Every state
change is one Lua script, so a record, its history indexes, the per-queue active set and
the duplicate key always move together. The scripts build key names from the prefix
(fine for a single Redis server; we don't run Redis Cluster).

Keys, with ``p`` the prefix:
  p:job:{id}                 hash, the record (expires ``retention`` after it finishes)
  p:dedup:{sha256}           job id of the pending/running job with these exact params
  p:active:{queue}           set of pending/running job ids (the per-queue cap)
  p:h:all, p:h:s:{status}, p:h:o:{op}, p:h:os:{op}:{status}
                             history indexes, sorted sets scored by submission time (µs)
  p:workers:{queue}          sorted set of worker ids by last heartbeat (ms)
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import redis

from actors.catalog import CATALOG, Operation, canonical_params

PENDING, RUNNING, COMPLETED, FAILED, CANCELLED = "pending", "running", "completed", "failed", "cancelled"
STATUSES = (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED)
ACTIVE = (PENDING, RUNNING)
TERMINAL = (COMPLETED, FAILED, CANCELLED)

DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
#: A job whose worker died under it this many times fails with WORKER_LOST.
DEFAULT_LOST_RUNS_LIMIT = 2

# Shared by the scripts below: move a job between status indexes, and finish a job.
_LUA_PRELUDE = """
local p = ARGV[1]
local id = ARGV[2]
local key = p .. ':job:' .. id

local function move_status(op, old, new, score)
    redis.call('ZREM', p .. ':h:s:' .. old, id)
    redis.call('ZREM', p .. ':h:os:' .. op .. ':' .. old, id)
    redis.call('ZADD', p .. ':h:s:' .. new, score, id)
    redis.call('ZADD', p .. ':h:os:' .. op .. ':' .. new, score, id)
end

local function finish(old, new, now, retention, code, message, peak)
    local f = redis.call('HMGET', key, 'operation', 'queue', 'score', 'dedup')
    redis.call('HSET', key, 'status', new, 'completed_at', now)
    if code ~= '' then
        redis.call('HSET', key, 'error_code', code, 'error_message', message)
    end
    if peak and peak ~= '' then
        redis.call('HSET', key, 'peak_memory_mb', peak)
    end
    if ARGV[9] and ARGV[9] ~= '' then
        redis.call('HSET', key, 'progress_step', ARGV[9], 'progress_message', ARGV[10],
            'progress_current', ARGV[11], 'progress_total', ARGV[12])
    end
    move_status(f[1], old, new, f[3])
    redis.call('SREM', p .. ':active:' .. f[2], id)
    local dedup = p .. ':dedup:' .. f[4]
    if redis.call('GET', dedup) == id then
        redis.call('DEL', dedup)
    end
    redis.call('EXPIRE', key, retention)
end
"""

# ARGV: prefix, id, operation, queue, dedup hash, cap, score, submitted_at, params,
#       Dramatiq queue key, Dramatiq message hash key, Dramatiq message id, message data.
# The last two writes are what Dramatiq's own enqueue does (dispatch.lua, "enqueue"), so
# that recording a job and queueing its message are one atomic step: no record without
# its message (a job nobody runs), no message without its record.
_ADMIT = """
local dedup = p .. ':dedup:' .. ARGV[5]
local existing = redis.call('GET', dedup)
if existing then
    local status = redis.call('HGET', p .. ':job:' .. existing, 'status')
    if status == 'pending' or status == 'running' then
        return {'duplicate', existing}
    end
end
local active = p .. ':active:' .. ARGV[4]
local count = redis.call('SCARD', active)
if count >= tonumber(ARGV[6]) then
    return {'capacity', tostring(count)}
end
local op, score = ARGV[3], ARGV[7]
redis.call('HSET', key, 'job_id', id, 'operation', op, 'queue', ARGV[4], 'status', 'pending',
    'params', ARGV[9], 'submitted_at', ARGV[8], 'score', score, 'attempts', 0, 'dedup', ARGV[5])
redis.call('SADD', active, id)
redis.call('SET', dedup, id)
redis.call('ZADD', p .. ':h:all', score, id)
redis.call('ZADD', p .. ':h:o:' .. op, score, id)
redis.call('ZADD', p .. ':h:s:pending', score, id)
redis.call('ZADD', p .. ':h:os:' .. op .. ':pending', score, id)
redis.call('HSET', ARGV[11], ARGV[12], ARGV[13])
redis.call('RPUSH', ARGV[10], ARGV[12])
return {'accepted', id}
"""

# ARGV: prefix, id, worker, started_at, lost limit, retention.  A record still 'running'
# when its message is delivered again lost its worker (killed, out of memory): that
# counts as a lost run, and after ``lost limit`` of them the job fails for good.
_START = """
local f = redis.call('HMGET', key, 'status', 'operation', 'score', 'worker')
local status = f[1]
if not status then
    return {'missing', '0'}
end
if status ~= 'pending' and status ~= 'running' then
    return {status, '0'}
end
if status == 'running' then
    local lost = redis.call('HINCRBY', key, 'lost_runs', 1)
    if lost >= tonumber(ARGV[5]) then
        finish('running', 'failed', ARGV[4], tonumber(ARGV[6]), 'WORKER_LOST',
            'the worker running this job died ' .. lost .. ' times (killed, or out of memory: last on '
            .. (f[4] or '?') .. '); not retried')
        return {'failed', redis.call('HGET', key, 'attempts')}
    end
end
redis.call('HSET', key, 'status', 'running', 'started_at', ARGV[4], 'worker', ARGV[3])
local attempts = redis.call('HINCRBY', key, 'attempts', 1)
if status == 'pending' then
    move_status(f[2], 'pending', 'running', f[3])
end
return {'running', tostring(attempts)}
"""

# ARGV: prefix, id, new status, completed_at, retention seconds, error code, error message,
# peak memory (MB, or ''), last progress (step, message, current, total; step '' for none)
_FINISH = """
local status = redis.call('HGET', key, 'status')
if not status then
    return 'missing'
end
if status ~= 'pending' and status ~= 'running' then
    return status
end
finish(status, ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8])
return 'ok'
"""

# ARGV: prefix, id, error code, error message.  Back to pending for a retry.
_REQUEUE = """
local f = redis.call('HMGET', key, 'status', 'operation', 'score')
if f[1] ~= 'running' then
    return f[1] or 'missing'
end
redis.call('HSET', key, 'status', 'pending', 'error_code', ARGV[3], 'error_message', ARGV[4])
move_status(f[2], 'running', 'pending', f[3])
return 'ok'
"""

# ARGV: prefix, id, now, retention.  A pending job is cancelled at once; a running one
# is flagged and asked to stop by the caller.
_CANCEL = """
local status = redis.call('HGET', key, 'status')
if not status then
    return 'missing'
end
if status == 'pending' then
    finish('pending', 'cancelled', ARGV[3], tonumber(ARGV[4]), 'CANCELLED', 'cancelled before it started')
    return 'cancelled'
end
if status == 'running' then
    redis.call('HSET', key, 'cancel_requested', '1')
    return 'running'
end
return 'finished'
"""

# ARGV: prefix, id, step, message, current, total.  Only a running job reports progress:
# a late report must not recreate an expired record.
_PROGRESS = """
if redis.call('HGET', key, 'status') ~= 'running' then
    return 0
end
redis.call('HSET', key, 'progress_step', ARGV[3], 'progress_message', ARGV[4],
    'progress_current', ARGV[5], 'progress_total', ARGV[6])
return 1
"""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def dedup_hash(operation: str, params: dict) -> str:
    return hashlib.sha256(f"{operation}\n{canonical_params(params)}".encode()).hexdigest()


@dataclass(frozen=True)
class QueuedMessage:
    """A Dramatiq message as its Redis broker stores it: id in the queue list, data in
    the queue's message hash."""

    queue_key: str
    messages_key: str
    redis_message_id: str
    data: bytes


@dataclass(frozen=True)
class Admission:
    outcome: str  # "accepted", "duplicate" or "capacity"
    job_id: str | None = None
    active: int = 0


class JobStore:
    def __init__(self, client: redis.Redis, *, prefix: str = "jobs", retention_seconds: int = DEFAULT_RETENTION_SECONDS,
                 lost_runs_limit: int = DEFAULT_LOST_RUNS_LIMIT):
        self.client = client
        self.prefix = prefix
        self.retention_seconds = retention_seconds
        self.lost_runs_limit = lost_runs_limit
        register = client.register_script
        self._admit = register(_LUA_PRELUDE + _ADMIT)
        self._start = register(_LUA_PRELUDE + _START)
        self._finish = register(_LUA_PRELUDE + _FINISH)
        self._requeue = register(_LUA_PRELUDE + _REQUEUE)
        self._cancel = register(_LUA_PRELUDE + _CANCEL)
        self._progress = register(_LUA_PRELUDE + _PROGRESS)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # -- writes -------------------------------------------------------------------------

    def admit(self, job_id: str, operation: Operation, params: dict, *, cap: int, message: QueuedMessage) -> Admission:
        """Create a pending record and queue its message, unless an identical job is
        active or the queue is full.

        Duplicate check, capacity check, creation and enqueue are one atomic script: two
        gateways submitting the same job at once get one job and one 409, and a Redis
        failure leaves either both the record and its message or neither."""
        score = time.time_ns() // 1000
        args = [
            self.prefix, job_id, operation.name, operation.queue, dedup_hash(operation.name, params),
            cap, score, utc_now(), canonical_params(params),
            message.queue_key, message.messages_key, message.redis_message_id, message.data,
        ]
        outcome, value = self._admit(args=args)
        outcome, value = _text(outcome), _text(value)
        if outcome == "accepted":
            return Admission("accepted", job_id)
        if outcome == "duplicate":
            return Admission("duplicate", value)
        return Admission("capacity", active=int(value))

    def start(self, job_id: str, worker: str) -> tuple[str, int]:
        """Mark a job running; returns (status, attempts). A status other than
        'running' means the message must be skipped (cancelled, finished, missing, or
        failed just now because its workers kept dying under it)."""
        status, attempts = self._start(args=[
            self.prefix, job_id, worker, utc_now(), self.lost_runs_limit, self.retention_seconds,
        ])
        return _text(status), int(attempts or 0)

    def finish(self, job_id: str, status: str, *, error_code: str = "", error_message: str = "",
               peak_memory_mb: float | None = None, progress: tuple | None = None) -> str:
        """``progress`` is the job's last (step, message, current, total), written with
        the final state so a late report can never be lost or land after it."""
        assert status in TERMINAL
        step, message, current, total = progress or ("", "", 0, 0)
        return _text(self._finish(args=[
            self.prefix, job_id, status, utc_now(), self.retention_seconds, error_code, error_message[:2000],
            "" if peak_memory_mb is None else peak_memory_mb, step, message[:500], current, total,
        ]))

    def requeue(self, job_id: str, *, error_code: str, error_message: str) -> str:
        return _text(self._requeue(args=[self.prefix, job_id, error_code, error_message[:2000]]))

    def cancel(self, job_id: str) -> str:
        """Returns 'cancelled' (was pending, now cancelled), 'running' (flagged; the
        caller asks the worker to stop), 'finished' (nothing to do) or 'missing'."""
        return _text(self._cancel(args=[self.prefix, job_id, utc_now(), self.retention_seconds]))

    def progress(self, job_id: str, *, step: str, message: str = "", current: int = 0, total: int = 0) -> bool:
        return bool(self._progress(args=[self.prefix, job_id, step, message[:500], current, total]))

    def progress_many(self, reports: dict[str, tuple]) -> None:
        """Several jobs' latest (step, message, current, total), in one round trip."""
        with self.client.pipeline(transaction=False) as pipe:
            for job_id, (step, message, current, total) in reports.items():
                self._progress(args=[self.prefix, job_id, step, message[:500], current, total], client=pipe)
            pipe.execute()

    def note_follow_up(self, job_id: str, follow_up_job_id: str) -> None:
        self.client.hset(self._key("job", job_id), "follow_up_job_id", follow_up_job_id)

    # -- reads --------------------------------------------------------------------------

    def get(self, job_id: str) -> dict | None:
        raw = self.client.hgetall(self._key("job", job_id))
        return record_from_hash(raw) if raw else None

    def history(self, *, limit: int, status: str | None = None, operation: str | None = None,
                cursor: int | None = None) -> tuple[list[dict], int | None]:
        """Newest first. ``cursor`` is the score of the last item of the previous page."""
        if status and operation:
            index = self._key("h", "os", operation, status)
        elif status:
            index = self._key("h", "s", status)
        elif operation:
            index = self._key("h", "o", operation)
        else:
            index = self._key("h", "all")
        high = f"({cursor}" if cursor is not None else "+inf"
        items: list[dict] = []
        while True:
            want = limit - len(items)
            # One more than wanted: whether a next page exists, without another query.
            page = self.client.zrevrangebyscore(index, high, "-inf", start=0, num=want + 1, withscores=True)
            more = len(page) > want
            page = page[:want]
            if not page:
                return items, None
            with self.client.pipeline(transaction=False) as pipe:
                for job_id, _ in page:
                    pipe.hgetall(self._key("job", _text(job_id)))
                records = pipe.execute()
            expired = []
            for (job_id, _score), raw in zip(page, records):
                if raw:
                    items.append(record_from_hash(raw))
                else:
                    expired.append(_text(job_id))
            high = f"({int(page[-1][1])}"
            if expired:
                self._forget(expired)
            if not more:
                return items, None
            if len(items) == limit:
                return items, int(page[-1][1])

    def _forget(self, job_ids: list[str]) -> None:
        """Drop history entries whose record has expired."""
        indexes = [self._key("h", "all")] + [self._key("h", "s", s) for s in STATUSES]
        for op in CATALOG:
            indexes.append(self._key("h", "o", op))
            indexes.extend(self._key("h", "os", op, s) for s in STATUSES)
        with self.client.pipeline(transaction=False) as pipe:
            for index in indexes:
                pipe.zrem(index, *job_ids)
            pipe.execute()

    def cleanup(self, batch: int = 500) -> int:
        """Drop history entries whose record has expired; returns how many.

        Only entries submitted more than ``retention`` ago can have expired, so the
        scan stops there. Run hourly by the scheduler."""
        horizon = (time.time() - self.retention_seconds) * 1_000_000
        removed, high = 0, f"({int(horizon)}"
        while True:
            page = self.client.zrevrangebyscore(self._key("h", "all"), high, "-inf", start=0, num=batch, withscores=True)
            if not page:
                return removed
            with self.client.pipeline(transaction=False) as pipe:
                for job_id, _ in page:
                    pipe.exists(self._key("job", _text(job_id)))
                exists = pipe.execute()
            gone = [_text(job_id) for (job_id, _), alive in zip(page, exists) if not alive]
            if gone:
                self._forget(gone)
                removed += len(gone)
            high = f"({int(page[-1][1])}"

    def active_count(self, queue: str) -> int:
        return self.client.scard(self._key("active", queue))

    # -- worker heartbeats --------------------------------------------------------------

    def heartbeat(self, queue: str, worker: str) -> None:
        now_ms = int(time.time() * 1000)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(self._key("workers", queue), {worker: now_ms})
            # Workers silent for a day are gone for good: keep the set small.
            pipe.zremrangebyscore(self._key("workers", queue), "-inf", now_ms - 86_400_000)
            pipe.execute()

    def leave(self, queue: str, worker: str) -> None:
        self.client.zrem(self._key("workers", queue), worker)

    def queue_health(self, queue_keys: dict[str, str], *, within_seconds: float) -> dict[str, dict]:
        """Per queue, in one round trip: messages waiting in the broker's list
        (``queue_keys[queue]``), active jobs, live workers."""
        since = int((time.time() - within_seconds) * 1000)
        with self.client.pipeline(transaction=False) as pipe:
            for queue, key in queue_keys.items():
                pipe.llen(key)
                pipe.scard(self._key("active", queue))
                pipe.zcount(self._key("workers", queue), since, "+inf")
            counts = pipe.execute()
        return {
            queue: dict(zip(("depth", "active_jobs", "workers"), counts[3 * i:3 * i + 3]))
            for i, queue in enumerate(queue_keys)
        }


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def record_from_hash(raw: dict) -> dict:
    """A job record as plain data, from its Redis hash."""
    raw = {_text(k): _text(v) for k, v in raw.items()}
    error = None
    if raw.get("error_code"):
        error = {"code": raw["error_code"], "message": raw.get("error_message", "")}
    return {
        "job_id": raw["job_id"],
        "operation": raw["operation"],
        "queue": raw["queue"],
        "status": raw["status"],
        "params": json.loads(raw.get("params") or "{}"),
        "submitted_at": raw.get("submitted_at"),
        "started_at": raw.get("started_at"),
        "completed_at": raw.get("completed_at"),
        "attempts": int(raw.get("attempts", 0)),
        "worker": raw.get("worker"),
        "progress": {
            "step": raw.get("progress_step"),
            "message": raw.get("progress_message"),
            "current": int(raw["progress_current"]) if raw.get("progress_current") else None,
            "total": int(raw["progress_total"]) if raw.get("progress_total") else None,
        },
        "error": error,
        "cancel_requested": raw.get("cancel_requested") == "1",
        "follow_up_job_id": raw.get("follow_up_job_id"),
        "peak_memory_mb": float(raw["peak_memory_mb"]) if raw.get("peak_memory_mb") else None,
        "lost_runs": int(raw.get("lost_runs", 0)),
        "score": int(raw["score"]),
    }
