"""APScheduler 3.x job stores that keep jobs as JSON in the Presswatch store (SQLite or Redis).

APScheduler's own RedisJobStore and SQLAlchemyJobStore pickle ``job.__getstate__()``, so
whoever can write to the shared store can run code in the scheduler (RELIABILITY S6/X8).
These stores write a job as plain data: its function as a ``"module:function"`` reference,
its trigger as numbers and cron fields, its arguments as JSON. A job that cannot be written
that way is refused when it is added, naming the job. A stored job that cannot be loaded
(not JSON, a function outside `allowed_modules`, a function that no longer imports) is set
aside: it stays in the store, is reported (log, `presswatch status`) and is not run, never
silently deleted (RELIABILITY P6).

Only the leading scheduler writes (see `scheduler.leader`), so a job's record and its run
time index need no cross-process transaction.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from abc import abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from inspect import isclass, ismethod
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis
from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import ref_to_obj

from pipelines.store.sqlite import connect

if TYPE_CHECKING:
    from collections.abc import Iterable

    from apscheduler.triggers.base import BaseTrigger

    from pipelines.store.redis import RedisLink

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
# The modules a stored job may name as its function: what the service schedules. A record
# naming anything else (os:system, builtins:exec) was not written by us and is not run.
DEFAULT_ALLOWED_MODULES = ("scheduler.jobs",)
CRON_FIELDS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")

JOBS_TABLE = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS scheduler_jobs (
    id TEXT PRIMARY KEY,
    next_run_time REAL,  -- epoch seconds; NULL: paused, or set aside as unloadable
    data TEXT NOT NULL   -- the job as JSON (checked when loaded, not trusted)
);
CREATE INDEX IF NOT EXISTS scheduler_jobs_by_time ON scheduler_jobs (next_run_time);
COMMIT;
"""


class JobNotSerializable(ValueError):
    """A job cannot be kept as JSON; the message names the job and what to change."""


class JobNotLoadable(ValueError):
    """A stored job record cannot be turned back into a job; the message says why."""


# --- pure conversions ---------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def zone_name(tz: Any, job_id: str) -> str:
    """The IANA name of a trigger's time zone, which is all a stored trigger keeps."""
    name = getattr(tz, "key", None) or str(tz)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        msg = (
            f"job {job_id!r}: its time zone {tz!r} has no IANA name, so it cannot be stored;"
            " give the trigger timezone='Asia/Almaty' (or another IANA name)"
        )
        raise JobNotSerializable(msg) from None
    return name


def trigger_to_json(trigger: BaseTrigger, job_id: str) -> dict[str, Any]:
    """An interval, cron or date trigger as plain data; any other trigger is refused."""
    if isinstance(trigger, IntervalTrigger):
        return {
            "type": "interval",
            "seconds": trigger.interval.total_seconds(),
            "start_date": _iso(trigger.start_date),
            "end_date": _iso(trigger.end_date),
            "timezone": zone_name(trigger.timezone, job_id),
            "jitter": trigger.jitter,
        }
    if isinstance(trigger, CronTrigger):
        return {
            "type": "cron",
            # Only the fields given: the rest take their defaults from them again on load.
            "fields": {field.name: str(field) for field in trigger.fields if not field.is_default},
            "start_date": _iso(trigger.start_date),
            "end_date": _iso(trigger.end_date),
            "timezone": zone_name(trigger.timezone, job_id),
            "jitter": trigger.jitter,
        }
    if isinstance(trigger, DateTrigger):
        return {"type": "date", "run_date": _iso(trigger.run_date)}
    msg = (
        f"job {job_id!r}: a {type(trigger).__name__} cannot be stored as JSON;"
        " use an interval, cron or date trigger"
    )
    raise JobNotSerializable(msg)


def trigger_from_json(data: dict[str, Any]) -> BaseTrigger:
    kind = data.get("type")
    if kind == "interval":
        return IntervalTrigger(
            seconds=float(data["seconds"]),
            start_date=_instant(data.get("start_date")),
            end_date=_instant(data.get("end_date")),
            timezone=data["timezone"],
            jitter=data.get("jitter"),
        )
    if kind == "cron":
        fields = {name: data["fields"].get(name) for name in CRON_FIELDS}
        return CronTrigger(
            **fields,
            start_date=_instant(data.get("start_date")),
            end_date=_instant(data.get("end_date")),
            timezone=data["timezone"],
            jitter=data.get("jitter"),
        )
    if kind == "date":
        return DateTrigger(run_date=_instant(data["run_date"]))
    msg = f"unknown trigger type {kind!r} (expected interval, cron or date)"
    raise JobNotLoadable(msg)


def job_to_json(job: Job) -> dict[str, Any]:
    """`job` as plain data; refuses, naming the job, a function or argument JSON cannot hold."""
    func = job.func
    if not job.func_ref or "<" in job.func_ref or (ismethod(func) and not isclass(func.__self__)):
        msg = (
            f"job {job.id!r}: its function {func!r} has no importable 'module:function'"
            " reference (a lambda, a nested function or a bound method); schedule a"
            " module-level function such as 'scheduler.jobs:crawl_source'"
        )
        raise JobNotSerializable(msg)
    data = {
        "version": FORMAT_VERSION,
        "id": job.id,
        "func": job.func_ref,
        "trigger": trigger_to_json(job.trigger, job.id),
        "executor": job.executor,
        "args": list(job.args),
        "kwargs": dict(job.kwargs),
        "name": job.name,
        "misfire_grace_time": job.misfire_grace_time,
        "coalesce": job.coalesce,
        "max_instances": job.max_instances,
        "next_run_time": _iso(job.next_run_time),
    }
    try:
        json.dumps(data, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        msg = (
            f"job {job.id!r}: its arguments are not plain JSON ({exc}); pass names, paths"
            " and numbers as str, int or float"
        )
        raise JobNotSerializable(msg) from None
    return data


def job_state(raw: bytes | str, job_id: str, allowed_modules: Iterable[str]) -> dict[str, Any]:
    """The state `Job.__setstate__` takes, from a stored record; raises `JobNotLoadable`.

    The function is imported only when its module is allowed, so a planted record cannot
    even trigger an import.
    """
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        msg = "the record is not JSON (a pickle or other foreign payload?): refused, not run"
        raise JobNotLoadable(msg) from None
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        msg = f"the record is not a version {FORMAT_VERSION} job of this store"
        raise JobNotLoadable(msg)
    func_ref = data.get("func")
    module = func_ref.split(":", 1)[0] if isinstance(func_ref, str) else None
    if module not in set(allowed_modules):
        msg = f"its function {func_ref!r} is outside the allowed modules: refused, not run"
        raise JobNotLoadable(msg)
    if data.get("id") != job_id:
        msg = f"the record names another job id ({data.get('id')!r})"
        raise JobNotLoadable(msg)
    try:
        ref_to_obj(func_ref)
        trigger = trigger_from_json(data["trigger"])
        return {
            "version": 1,
            "id": job_id,
            "func": func_ref,
            "trigger": trigger,
            "executor": data["executor"],
            "args": tuple(data["args"]),
            "kwargs": dict(data["kwargs"]),
            "name": data["name"],
            "misfire_grace_time": data["misfire_grace_time"],
            "coalesce": bool(data["coalesce"]),
            "max_instances": int(data["max_instances"]),
            "next_run_time": _instant(data["next_run_time"]),
        }
    except LookupError as exc:
        msg = f"{exc} (was the function renamed? the service re-adds its configured jobs)"
        raise JobNotLoadable(msg) from None
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"the record is malformed: {type(exc).__name__}: {exc}"
        raise JobNotLoadable(msg) from None


def _timestamp(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


@dataclass(frozen=True)
class JobRecord:
    """A stored job as `presswatch status` shows it, read without running or changing it."""

    id: str
    func: str | None
    trigger: dict[str, Any] | None
    next_run_time: str | None
    problem: str | None  # why it cannot be loaded, or None


# --- the stores ---------------------------------------------------------------------------


class JsonJobStore(BaseJobStore):
    """The APScheduler job store contract over JSON records; subclasses move the bytes."""

    def __init__(self, allowed_modules: Iterable[str] = DEFAULT_ALLOWED_MODULES) -> None:
        super().__init__()
        self.allowed_modules = tuple(allowed_modules)

    # -- storage primitives -----------------------------------------------------------
    @abstractmethod
    def _read(self, job_id: str) -> bytes | str | None: ...

    @abstractmethod
    def _read_all(self) -> list[tuple[str, bytes | str]]: ...

    @abstractmethod
    def _read_due(self, timestamp: float) -> list[tuple[str, bytes | str]]:
        """Records whose next run time is at or before `timestamp`, soonest first."""

    @abstractmethod
    def _next_timestamp(self) -> float | None: ...

    @abstractmethod
    def _insert(self, job_id: str, data: str, timestamp: float | None) -> bool:
        """False when a record with this id exists already."""

    @abstractmethod
    def _replace(self, job_id: str, data: str, timestamp: float | None) -> bool:
        """False when no record with this id exists."""

    @abstractmethod
    def _delete(self, job_id: str) -> bool: ...

    @abstractmethod
    def _delete_all(self) -> None: ...

    @abstractmethod
    def _set_aside(self, job_id: str) -> None:
        """Keep the record but take it out of the run time index (never due again)."""

    # -- the contract ----------------------------------------------------------------------
    def _load(self, job_id: str, raw: bytes | str) -> Job:
        state = job_state(raw, job_id, self.allowed_modules)
        job = Job.__new__(Job)
        job.__setstate__(state)
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def _reconstitute(self, rows: list[tuple[str, bytes | str]]) -> list[Job]:
        jobs = []
        for job_id, raw in rows:
            try:
                jobs.append(self._load(job_id, raw))
            except JobNotLoadable as exc:
                logger.error(
                    "scheduler job %r cannot be loaded: %s. It is kept in the store and"
                    " not run; `presswatch status` lists it",
                    job_id,
                    exc,
                )
                self._set_aside(job_id)
        return jobs

    def lookup_job(self, job_id: str) -> Job | None:
        raw = self._read(job_id)
        if raw is None:
            return None
        jobs = self._reconstitute([(job_id, raw)])
        return jobs[0] if jobs else None

    def get_due_jobs(self, now: datetime) -> list[Job]:
        return self._reconstitute(self._read_due(now.timestamp()))

    def get_next_run_time(self) -> datetime | None:
        timestamp = self._next_timestamp()
        return datetime.fromtimestamp(timestamp, UTC) if timestamp is not None else None

    def get_all_jobs(self) -> list[Job]:
        jobs = self._reconstitute(self._read_all())
        paused_last = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
        return sorted(jobs, key=lambda job: job.next_run_time or paused_last)

    def add_job(self, job: Job) -> None:
        data = json.dumps(job_to_json(job), ensure_ascii=False)
        if not self._insert(job.id, data, _timestamp(job.next_run_time)):
            raise ConflictingIdError(job.id)

    def update_job(self, job: Job) -> None:
        data = json.dumps(job_to_json(job), ensure_ascii=False)
        if not self._replace(job.id, data, _timestamp(job.next_run_time)):
            raise JobLookupError(job.id)

    def remove_job(self, job_id: str) -> None:
        if not self._delete(job_id):
            raise JobLookupError(job_id)

    def remove_all_jobs(self) -> None:
        self._delete_all()

    def shutdown(self) -> None:
        """Nothing: the scheduler's thread may still be reading as the scheduler shuts
        down; the owner calls `close` once `scheduler.shutdown()` has returned."""

    @abstractmethod
    def close(self) -> None: ...

    # -- for the service and `presswatch status` ---------------------------------------
    def unloadable_jobs(self) -> dict[str, str]:
        """Stored jobs that cannot be loaded: id → why. Reads only; sets nothing aside."""
        return {record.id: record.problem for record in self.records() if record.problem}

    def records(self) -> list[JobRecord]:
        """Every stored job as data, loadable or not, soonest first."""
        records = []
        for job_id, raw in self._read_all():
            problem = None
            try:
                self._load(job_id, raw)
            except JobNotLoadable as exc:
                problem = str(exc)
            try:
                data = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                data = {}
            if not isinstance(data, dict):
                data = {}
            records.append(
                JobRecord(
                    id=job_id,
                    func=data.get("func") if isinstance(data.get("func"), str) else None,
                    trigger=data.get("trigger") if isinstance(data.get("trigger"), dict) else None,
                    next_run_time=data.get("next_run_time") if not problem else None,
                    problem=problem,
                )
            )
        # ISO times in UTC, as the records keep them, sort in time order.
        return sorted(records, key=lambda r: (r.next_run_time is None, r.next_run_time or "", r.id))


class SQLiteJobStore(JsonJobStore):
    """Jobs in table ``scheduler_jobs`` of the SQLite store file, on a connection of its own."""

    def __init__(self, path: str, allowed_modules: Iterable[str] = DEFAULT_ALLOWED_MODULES) -> None:
        super().__init__(allowed_modules)
        self.path = path
        self._db = connect(path)
        try:
            # IMMEDIATE: two processes creating the table wait for each other. The store's
            # `PRAGMA user_version` is the store's own schema and is left alone.
            self._db.executescript(JOBS_TABLE)
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._db.close()
            raise

    def _read(self, job_id: str) -> str | None:
        row = self._db.execute("SELECT data FROM scheduler_jobs WHERE id = ?", (job_id,)).fetchone()
        return row[0] if row else None

    def _read_all(self) -> list[tuple[str, bytes | str]]:
        return list(self._db.execute("SELECT id, data FROM scheduler_jobs ORDER BY id"))

    def _read_due(self, timestamp: float) -> list[tuple[str, bytes | str]]:
        return list(
            self._db.execute(
                "SELECT id, data FROM scheduler_jobs WHERE next_run_time <= ?"
                " ORDER BY next_run_time, id",
                (timestamp,),
            )
        )

    def _next_timestamp(self) -> float | None:
        return self._db.execute("SELECT min(next_run_time) FROM scheduler_jobs").fetchone()[0]

    def _insert(self, job_id: str, data: str, timestamp: float | None) -> bool:
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO scheduler_jobs (id, next_run_time, data) VALUES (?, ?, ?)",
            (job_id, timestamp, data),
        )
        return cursor.rowcount == 1

    def _replace(self, job_id: str, data: str, timestamp: float | None) -> bool:
        cursor = self._db.execute(
            "UPDATE scheduler_jobs SET next_run_time = ?, data = ? WHERE id = ?",
            (timestamp, data, job_id),
        )
        return cursor.rowcount == 1

    def _delete(self, job_id: str) -> bool:
        cursor = self._db.execute("DELETE FROM scheduler_jobs WHERE id = ?", (job_id,))
        return cursor.rowcount == 1

    def _delete_all(self) -> None:
        self._db.execute("DELETE FROM scheduler_jobs")

    def _set_aside(self, job_id: str) -> None:
        self._db.execute("UPDATE scheduler_jobs SET next_run_time = NULL WHERE id = ?", (job_id,))

    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"<SQLiteJobStore {self.path}>"


class RedisJobStore(JsonJobStore):
    """Jobs in Redis: hash `Keys.scheduler_jobs` (id → JSON) and sorted set
    `Keys.scheduler_run_times` (id → next run, epoch seconds).

    Values are read as bytes, so a planted non-UTF-8 payload is one refused record rather
    than a decoding error that hides every job.
    """

    def __init__(
        self, link: RedisLink, allowed_modules: Iterable[str] = DEFAULT_ALLOWED_MODULES
    ) -> None:
        super().__init__(allowed_modules)
        self.link = link
        pool = link.client.connection_pool
        options = {**pool.connection_kwargs, "decode_responses": False}
        self._redis = redis.Redis(
            connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **options)
        )
        self._jobs = link.keys.scheduler_jobs()
        self._run_times = link.keys.scheduler_run_times()

    def _read(self, job_id: str) -> bytes | None:
        with self.link.errors():
            return self._redis.hget(self._jobs, job_id)

    def _read_all(self) -> list[tuple[str, bytes | str]]:
        with self.link.errors():
            records = self._redis.hgetall(self._jobs)
        return sorted((key.decode("utf-8", "replace"), raw) for key, raw in records.items())

    def _read_due(self, timestamp: float) -> list[tuple[str, bytes | str]]:
        with self.link.errors():
            ids = self._redis.zrangebyscore(self._run_times, "-inf", timestamp)
            if not ids:
                return []
            values = self._redis.hmget(self._jobs, ids)
        return [
            (job_id.decode("utf-8", "replace"), raw)
            for job_id, raw in zip(ids, values, strict=True)
            if raw is not None
        ]

    def _next_timestamp(self) -> float | None:
        with self.link.errors():
            first = self._redis.zrange(self._run_times, 0, 0, withscores=True)
        return first[0][1] if first else None

    def _index(self, pipe: Any, job_id: str, timestamp: float | None) -> None:
        if timestamp is None:
            pipe.zrem(self._run_times, job_id)
        else:
            pipe.zadd(self._run_times, {job_id: timestamp})

    def _insert(self, job_id: str, data: str, timestamp: float | None) -> bool:
        with self.link.errors():
            if not self._redis.hsetnx(self._jobs, job_id, data):
                return False
            pipe = self._redis.pipeline(transaction=True)
            self._index(pipe, job_id, timestamp)
            pipe.execute()
        return True

    def _replace(self, job_id: str, data: str, timestamp: float | None) -> bool:
        with self.link.errors():
            if not self._redis.hexists(self._jobs, job_id):
                return False
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(self._jobs, job_id, data)
            self._index(pipe, job_id, timestamp)
            pipe.execute()
        return True

    def _delete(self, job_id: str) -> bool:
        with self.link.errors():
            pipe = self._redis.pipeline(transaction=True)
            pipe.hdel(self._jobs, job_id)
            pipe.zrem(self._run_times, job_id)
            deleted, _ = pipe.execute()
        return deleted == 1

    def _delete_all(self) -> None:
        with self.link.errors():
            self._redis.delete(self._jobs, self._run_times)

    def _set_aside(self, job_id: str) -> None:
        with self.link.errors():
            self._redis.zrem(self._run_times, job_id)

    def close(self) -> None:
        self._redis.close()

    def __repr__(self) -> str:
        return f"<RedisJobStore {self.link.url}>"
