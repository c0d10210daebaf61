"""The JSON job stores: jobs survive a restart as data; pickles and foreign functions never run."""

from __future__ import annotations

import json
import os
import pickle
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.jobstore import (
    JobNotSerializable,
    JsonJobStore,
    RedisJobStore,
    SQLiteJobStore,
    job_state,
    trigger_from_json,
    trigger_to_json,
)

if TYPE_CHECKING:
    from pathlib import Path

    from pipelines.store import Store

CRAWL = "scheduler.jobs:crawl_source"
SOON = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def jobstore_of(store: Store) -> JsonJobStore:
    link = getattr(store, "link", None)
    return RedisJobStore(link) if link is not None else SQLiteJobStore(store.path)  # type: ignore[attr-defined]


def scheduler_on(jobstore: JsonJobStore) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(jobstores={"default": jobstore}, timezone=UTC)
    scheduler.start(paused=True)
    return scheduler


def stop(scheduler: BackgroundScheduler, jobstore: JsonJobStore) -> None:
    scheduler.shutdown(wait=False)
    jobstore.close()


def plant(store: Store, job_id: str, payload: bytes, next_run: float) -> None:
    """Write a raw record into the job store as an attacker with store access could."""
    link = getattr(store, "link", None)
    if link is not None:
        raw = jobstore_of(store)
        raw._redis.hset(link.keys.scheduler_jobs(), job_id, payload)
        raw._redis.zadd(link.keys.scheduler_run_times(), {job_id: next_run})
        raw.close()
        return
    jobstore = SQLiteJobStore(store.path)  # type: ignore[attr-defined]
    jobstore._db.execute(
        "INSERT INTO scheduler_jobs (id, next_run_time, data) VALUES (?, ?, ?)",
        (job_id, next_run, payload),
    )
    jobstore.close()


class Exploit:
    """A pickle that creates a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize(
    "trigger",
    [
        IntervalTrigger(seconds=90, jitter=3, start_date=SOON, timezone="Asia/Almaty"),
        CronTrigger(day_of_week="mon-fri", hour="8-18", minute="*/15", timezone="Europe/Berlin"),
        CronTrigger.from_crontab("30 2 * * *", timezone="Europe/Berlin"),
        DateTrigger(run_date=SOON),
    ],
    ids=["interval", "cron", "crontab-dst", "date"],
)
def test_a_trigger_round_trips_through_json(trigger: Any) -> None:
    data = json.loads(json.dumps(trigger_to_json(trigger, "job")))
    again = trigger_from_json(data)
    assert trigger_to_json(again, "job") == data
    assert str(again) == str(trigger)
    if trigger_to_json(trigger, "job").get("jitter"):
        return  # jittered fire times are random by design
    moment = datetime(2031, 3, 28, 0, 0, tzinfo=UTC)  # spans the spring DST change in Berlin
    for _ in range(5):
        expected = trigger.get_next_fire_time(None, moment)
        assert again.get_next_fire_time(None, moment) == expected
        if expected is None:
            break
        moment = expected + timedelta(seconds=1)


def test_jobs_keep_their_next_run_time_across_a_restart(store: Store) -> None:
    jobstore = jobstore_of(store)
    scheduler = scheduler_on(jobstore)
    scheduler.add_job(
        CRAWL, IntervalTrigger(seconds=600, timezone=UTC), args=["vestnik", None],
        kwargs={"timeout": 60.0, "settings": {"DOWNLOAD_DELAY": 0}}, id="crawl:vestnik",
        next_run_time=SOON, coalesce=True, misfire_grace_time=None, max_instances=1,
    )  # fmt: skip
    stop(scheduler, jobstore)

    jobstore = jobstore_of(store)
    scheduler = scheduler_on(jobstore)
    try:
        job = scheduler.get_job("crawl:vestnik")
        assert job is not None
        assert job.next_run_time == SOON
        assert job.args == ("vestnik", None)
        assert job.kwargs == {"timeout": 60.0, "settings": {"DOWNLOAD_DELAY": 0}}
        assert (job.coalesce, job.misfire_grace_time, job.max_instances) == (True, None, 1)
        assert jobstore.get_next_run_time() == SOON
        assert [j.id for j in jobstore.get_due_jobs(SOON)] == ["crawl:vestnik"]
        assert jobstore.get_due_jobs(SOON - timedelta(seconds=1)) == []
    finally:
        stop(scheduler, jobstore)


def _not_a_module_function() -> None:
    """Stands in for a function the job store must refuse: it is not in scheduler.jobs."""


class Holder:
    def method(self) -> None:
        """A bound method has no importable reference."""


@pytest.mark.parametrize(
    ("func", "args", "expected"),
    [
        (lambda: None, [], "lambda, a nested function or a bound method"),
        (Holder().method, [], "lambda, a nested function or a bound method"),
        (CRAWL, ["vestnik", object()], "arguments are not plain JSON"),
        (CRAWL, ["vestnik", float("nan")], "arguments are not plain JSON"),
    ],
    ids=["lambda", "bound-method", "object-arg", "nan-arg"],
)
def test_what_json_cannot_hold_is_refused_naming_the_job(
    tmp_path: Path, func: Any, args: list[Any], expected: str
) -> None:
    jobstore = SQLiteJobStore(str(tmp_path / "pw.db"))
    scheduler = scheduler_on(jobstore)
    try:
        with pytest.raises(JobNotSerializable, match=expected) as refused:
            scheduler.add_job(func, "interval", seconds=60, args=args, id="crawl:bad")
        assert "'crawl:bad'" in str(refused.value)
        assert jobstore.records() == []
    finally:
        stop(scheduler, jobstore)


def test_a_planted_pickle_is_refused_and_never_run(store: Store, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    plant(store, "crawl:evil", pickle.dumps(Exploit(marker)), 0.0)
    foreign = {"version": 1, "id": "crawl:shell", "func": "os:system", "args": [f"touch {marker}"]}
    plant(store, "crawl:shell", json.dumps(foreign).encode(), 0.0)
    jobstore = jobstore_of(store)
    scheduler = scheduler_on(jobstore)
    try:
        scheduler.add_job(CRAWL, "interval", seconds=60, args=["vestnik", None], id="crawl:vestnik")
        problems = jobstore.unloadable_jobs()
        assert set(problems) == {"crawl:evil", "crawl:shell"}
        assert "not JSON" in problems["crawl:evil"]
        assert "outside the allowed modules" in problems["crawl:shell"]

        due = jobstore.get_due_jobs(datetime.now(UTC) + timedelta(days=1))
        assert [job.id for job in due] == ["crawl:vestnik"]
        # Set aside, not deleted: still listed, no longer due, and the scheduler's next
        # wake-up is the good job's, not a busy loop on the bad ones.
        assert {record.id for record in jobstore.records()} == {
            "crawl:evil",
            "crawl:shell",
            "crawl:vestnik",
        }
        assert jobstore.get_next_run_time() == scheduler.get_job("crawl:vestnik").next_run_time
    finally:
        stop(scheduler, jobstore)
    assert not marker.exists()


def test_a_renamed_function_is_reported_not_deleted(store: Store) -> None:
    jobstore = jobstore_of(store)
    scheduler = scheduler_on(jobstore)
    scheduler.add_job(CRAWL, "interval", seconds=60, args=["vestnik"], id="crawl:vestnik")
    scheduler.add_job(CRAWL, "interval", seconds=60, args=["other"], id="crawl:other")
    stop(scheduler, jobstore)
    # A later release renames crawl_source: the stored reference no longer resolves.
    record = next(r for r in jobstore_of(store)._read_all() if r[0] == "crawl:vestnik")
    data = json.loads(record[1])
    data["func"] = "scheduler.jobs:crawl_source_renamed"
    plant_over(store, "crawl:vestnik", json.dumps(data))

    jobstore = jobstore_of(store)
    scheduler = scheduler_on(jobstore)
    try:
        assert [job.id for job in scheduler.get_jobs()] == ["crawl:other"]
        problem = jobstore.unloadable_jobs()["crawl:vestnik"]
        assert "crawl_source_renamed" in problem
        assert "renamed" in problem
        assert len(jobstore.records()) == 2
    finally:
        stop(scheduler, jobstore)


def plant_over(store: Store, job_id: str, text: str) -> None:
    jobstore = jobstore_of(store)
    try:
        assert jobstore._replace(job_id, text, 0.0)
    finally:
        jobstore.close()


def test_job_state_checks_the_module_before_importing_anything() -> None:
    record = json.dumps({"version": 1, "id": "x", "func": "antigravity:fly"})
    with pytest.raises(ValueError, match="outside the allowed modules"):
        job_state(record, "x", ["scheduler.jobs"])
    assert "antigravity" not in __import__("sys").modules
