"""The monitoring service: one leader schedules crawls, the alert job and the health job.

`build_scheduler` constructs an APScheduler `BackgroundScheduler` over a JSON job store in
the Presswatch store (tests inspect it); `run_service` waits to lead, reconciles the jobs
with ``sources.yaml``, runs them and handles signals:

- SIGHUP: re-read the sources and reconcile again.
- SIGTERM / SIGINT: stop scheduling and start no new crawl (a run that was waiting for a
  free crawl slot is put back as due, so the next start runs it at once), give running
  crawls `stop_timeout` s to finish, then stop them (items are stored as they come, so
  nothing fetched is lost) and exit 0.
- the lease is lost: stop scheduling and running crawls at once and exit 3, so a
  supervisor restarts us as a standby.

Jobs have stable ids (``crawl:<source>``, ``alerts``, ``health``). Reconciling adds the
missing, updates the changed, removes the gone and keeps the stored next run time of the
unchanged, so a restart after downtime gives one catch-up run per source (``coalesce``,
no misfire limit, one instance at a time), not none and not a burst.

Jobs carry no store URL (it may hold a password): `run_service` puts the store in this
process's ``PRESSWATCH_STORE``, where the jobs and the crawl processes they start read it.
The command is ``presswatch run`` (`scheduler.cli_service`).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.base import run_job
from apscheduler.executors.pool import BasePoolExecutor, ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from crawler.config import ConfigError, Source, load_sources
from crawler.telemetry import capture_failure, flush, init_sentry
from pipelines.store import open_store
from scheduler.jobs import DEFAULT_CRAWL_TIMEOUT_S, alerts_available, interrupted_crawls
from scheduler.jobstore import JsonJobStore, RedisJobStore, SQLiteJobStore
from scheduler.leader import DEFAULT_LEASE_SECONDS, leadership_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from pipelines.store import Store

logger = logging.getLogger(__name__)

LIGHT_EXECUTOR = "light"  # health and alerts: never queued behind long crawls
JITTER_FRACTION = 0.05  # of a source's poll interval, so sources do not fire in step
JITTER_MAX_S = 60.0
KILL_WAIT_S = 5.0
# After the grace, stopping the crawls takes at most this long (SIGTERM, SIGKILL, repeated
# for a crawl whose job started it meanwhile); a supervisor's stop timeout must outlast
# stop_timeout plus this.
STOP_CRAWLS_BOUND_S = 3 * KILL_WAIT_S
EXIT_LOST_LEAD = 3
CRAWL_MODULE = "crawler.run"
CRAWL_JOB = "scheduler.jobs:crawl_source"


@dataclass(frozen=True)
class ServiceConfig:
    """What `presswatch run` was told; paths are kept absolute in the stored jobs."""

    store_url: str
    sources_file: Path | None = None
    rules_file: Path | None = None
    max_crawls: int = 2  # crawls at once, over all sources
    crawl_timeout: float = DEFAULT_CRAWL_TIMEOUT_S
    crawl_settings: dict[str, Any] = field(default_factory=dict)  # Scrapy settings
    health_interval: float = 300.0
    alerts_interval: float = 60.0
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    stop_timeout: float = 30.0  # SIGTERM: how long running crawls may finish


@dataclass(frozen=True)
class JobSpec:
    """One job as the configuration wants it."""

    id: str
    func: str
    seconds: float
    jitter: float | None
    args: list[Any]
    kwargs: dict[str, Any]
    executor: str = "default"
    run_at_once: bool = False  # first run now rather than one interval from now

    def trigger(self) -> IntervalTrigger:
        return IntervalTrigger(seconds=self.seconds, jitter=self.jitter, timezone=UTC)


@dataclass
class Reconciled:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def _path(path: Path | None) -> str | None:
    return str(path.resolve()) if path else None


def crawl_job_id(source: str) -> str:
    return f"crawl:{source}"


def planned_jobs(
    config: ServiceConfig, sources: list[Source], *, with_alerts: bool
) -> list[JobSpec]:
    """The jobs `config` and `sources` call for: a crawl per enabled source, health, alerts."""
    sources_file = _path(config.sources_file)
    rules_file = _path(config.rules_file)
    jobs = [
        JobSpec(
            id=crawl_job_id(source.name),
            func=CRAWL_JOB,
            seconds=float(source.poll_seconds),
            jitter=min(JITTER_MAX_S, source.poll_seconds * JITTER_FRACTION),
            args=[source.name, sources_file],
            kwargs={"timeout": config.crawl_timeout, "settings": config.crawl_settings},
            run_at_once=True,
        )
        for source in sources
        if source.enabled
    ]
    jobs.append(
        JobSpec(
            id="health",
            func="scheduler.jobs:check_health",
            seconds=config.health_interval,
            jitter=None,
            args=[sources_file, rules_file],
            kwargs={},
            executor=LIGHT_EXECUTOR,
        )
    )
    if with_alerts:
        jobs.append(
            JobSpec(
                id="alerts",
                func="scheduler.jobs:run_alerts",
                seconds=config.alerts_interval,
                jitter=None,
                args=[rules_file],
                kwargs={},
                executor=LIGHT_EXECUTOR,
            )
        )
    return jobs


def jobstore_for(store: Store) -> JsonJobStore:
    link = getattr(store, "link", None)
    if link is not None:
        return RedisJobStore(link)
    return SQLiteJobStore(store.path)  # type: ignore[attr-defined]


SKIPPED_STATE = "scheduler/skipped"


class SkippedRuns:
    """Counts runs skipped because the job was still running (P4), kept in the store's
    state ``scheduler/skipped`` for `presswatch status`; APScheduler logs each skip."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.counts: dict[str, int] = dict(store.get_state(SKIPPED_STATE) or {})

    def __call__(self, event: JobSubmissionEvent) -> None:
        self.counts[event.job_id] = self.counts.get(event.job_id, 0) + 1
        self.store.set_state(SKIPPED_STATE, self.counts)


class CrawlExecutor(BasePoolExecutor):  # type: ignore[misc]
    """APScheduler's thread pool for crawl jobs, able to stop taking runs.

    APScheduler hands a due run to the pool at once; with every thread busy it waits in
    the pool's queue and would start a crawl whenever a thread frees up, even after the
    service was told to stop. `cancel_waiting` takes those runs back.
    """

    def __init__(self, max_workers: int) -> None:
        super().__init__(
            concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="crawl")
        )
        self._runs: dict[concurrent.futures.Future[Any], str] = {}  # not yet done -> job id
        self._runs_lock = threading.Lock()

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        def done(future: concurrent.futures.Future[Any]) -> None:
            with self._runs_lock:
                self._runs.pop(future, None)
            if future.cancelled():
                self._run_job_success(job.id, [])  # frees the job's instance, no event
            elif (exc := future.exception()) is not None:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        future = self._pool.submit(run_job, job, job._jobstore_alias, run_times, self._logger.name)
        with self._runs_lock:
            self._runs[future] = job.id
        future.add_done_callback(done)

    def cancel_waiting(self) -> list[str]:
        """Cancel the runs still waiting for a thread; the ids of their jobs."""
        with self._runs_lock:
            runs = list(self._runs.items())
        return [job_id for future, job_id in runs if future.cancel()]

    def busy(self) -> bool:
        """Whether a crawl job is running (its crawl process may not have started yet)."""
        with self._runs_lock:
            return any(future.running() for future in self._runs)


def build_scheduler(config: ServiceConfig, store: Store) -> BackgroundScheduler:
    """The scheduler, not started: JSON job store in `store`, `max_crawls` crawl threads."""
    scheduler = BackgroundScheduler(
        jobstores={"default": jobstore_for(store)},
        executors={
            "default": CrawlExecutor(config.max_crawls),
            LIGHT_EXECUTOR: ThreadPoolExecutor(2),
        },
        # One catch-up run after downtime however late (P3); never two of a job at once (P4).
        job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        timezone=UTC,
    )
    scheduler.add_listener(SkippedRuns(store), EVENT_JOB_MAX_INSTANCES)
    scheduler.add_listener(report_failed_job, EVENT_JOB_ERROR)
    return scheduler


def report_failed_job(event: JobExecutionEvent) -> None:
    """One Sentry event per failed run of a job (nothing without SENTRY_DSN)."""
    if event.exception is not None:
        capture_failure(event.exception, kind="job", job=event.job_id)


def scheduler_jobstore(scheduler: BackgroundScheduler) -> JsonJobStore:
    """The JSON job store `build_scheduler` gave `scheduler` (APScheduler has no public
    accessor)."""
    jobstore = scheduler._lookup_jobstore("default")
    assert isinstance(jobstore, JsonJobStore)
    return jobstore


def stop_scheduler(scheduler: BackgroundScheduler, *, wait: bool) -> None:
    """Shut `scheduler` down without losing a due run, then close its job store.

    APScheduler 3.11's scheduler thread runs one more `_process_jobs` after `shutdown()`:
    it finds the due jobs, fails to submit them to the stopped executors and still moves
    their next run time on, so a run due at shutdown would never happen, not even as the
    catch-up after a restart. Taking the job store away first leaves that pass nothing.
    """
    jobstore = scheduler_jobstore(scheduler)
    scheduler.remove_jobstore("default")
    scheduler.shutdown(wait=wait)
    jobstore.close()


def _trigger_differs(trigger: Any, spec: JobSpec) -> bool:
    return (
        not isinstance(trigger, IntervalTrigger)
        or trigger.interval.total_seconds() != spec.seconds
        or trigger.jitter != spec.jitter
    )


def _json_equal(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def reconcile(scheduler: BackgroundScheduler, planned: list[JobSpec]) -> Reconciled:
    """Make the stored jobs match `planned`, keeping the next run time of unchanged jobs.

    The scheduler must be started (paused is best, so nothing fires half-way).
    """
    jobstore = scheduler_jobstore(scheduler)
    stored = {job.id: job for job in scheduler.get_jobs()}
    unloadable = jobstore.unloadable_jobs()
    done = Reconciled()
    for spec in planned:
        job = stored.pop(spec.id, None)
        if job is None:
            if spec.id in unloadable:
                logger.warning(
                    "job %s in the store cannot be loaded (%s); replacing it with the"
                    " configured one",
                    spec.id,
                    unloadable[spec.id],
                )
                scheduler.remove_job(spec.id)
            options: dict[str, Any] = (
                {"next_run_time": datetime.now(UTC)} if spec.run_at_once else {}
            )
            scheduler.add_job(
                spec.func, spec.trigger(), args=spec.args, kwargs=spec.kwargs, id=spec.id,
                name=spec.id, executor=spec.executor, **options,
            )  # fmt: skip
            done.added.append(spec.id)
            continue
        changed = False
        if (
            job.func_ref != spec.func
            or not _json_equal(list(job.args), spec.args)
            or not _json_equal(job.kwargs, spec.kwargs)
            or job.executor != spec.executor
        ):
            job.modify(func=spec.func, args=spec.args, kwargs=spec.kwargs, executor=spec.executor)
            changed = True
        if _trigger_differs(job.trigger, spec):
            job.reschedule(spec.trigger())
            changed = True
        (done.updated if changed else done.kept).append(spec.id)
    for job_id in stored:
        scheduler.remove_job(job_id)
        done.removed.append(job_id)
    logger.info(
        "jobs reconciled: added %s, updated %s, removed %s, kept %s",
        done.added or "none",
        done.updated or "none",
        done.removed or "none",
        done.kept or "none",
    )
    return done


def running_crawls() -> list[psutil.Process]:
    """The crawl processes this process started (`crawler.run` children)."""
    crawls = []
    for child in psutil.Process().children():
        try:
            if CRAWL_MODULE in child.cmdline():
                crawls.append(child)
        except psutil.Error:
            continue
    return crawls


def stop_crawls(grace: float, jobs_running: Callable[[], bool] = lambda: False) -> None:
    """Let running crawls finish for `grace` s, then stop them (SIGTERM, then SIGKILL).

    `jobs_running` tells whether a crawl job is still at work: one may be between its
    start and its crawl process's, so the loops go on until no job is left.
    """
    deadline = time.monotonic() + grace
    if grace > 0 and (running_crawls() or jobs_running()):
        logger.info("waiting up to %.0f s for running crawls", grace)
    while (running_crawls() or jobs_running()) and time.monotonic() < deadline:
        psutil.wait_procs(running_crawls(), timeout=0.2)
        time.sleep(0.05)  # a job between its start and its crawl's
    give_up = time.monotonic() + STOP_CRAWLS_BOUND_S
    while (running_crawls() or jobs_running()) and time.monotonic() < give_up:
        crawls = running_crawls()
        if crawls:
            logger.warning("stopping %d crawls still running", len(crawls))
        for crawl in crawls:
            crawl.terminate()
        _, alive = psutil.wait_procs(crawls, timeout=KILL_WAIT_S)
        for crawl in alive:
            crawl.kill()
        psutil.wait_procs(alive, timeout=KILL_WAIT_S)
        time.sleep(0.05)


class Service:
    """The running service: a leader's scheduler and what to do on each signal."""

    def __init__(self, config: ServiceConfig, store: Store, events: queue.Queue[str]) -> None:
        self.config = config
        self.store = store
        self.events = events  # "reload", "stop", "lost": from signal handlers and the lease
        self.scheduler = build_scheduler(config, store)
        crawls = self.scheduler._lookup_executor("default")  # no public accessor
        assert isinstance(crawls, CrawlExecutor)
        self.crawls = crawls

    def plan(self) -> list[JobSpec]:
        sources = load_sources(self.config.sources_file)
        return planned_jobs(self.config, sources, with_alerts=alerts_available())

    def start(self, plan: list[JobSpec]) -> None:
        self.scheduler.start(paused=True)
        reconcile(self.scheduler, plan)
        self.rerun_interrupted(plan)
        self.scheduler.resume()

    def rerun_interrupted(self, plan: list[JobSpec]) -> None:
        """Crawls killed with the last leader run again now, not a poll interval later."""
        sources = [spec.args[0] for spec in plan if spec.func == CRAWL_JOB]
        for source in interrupted_crawls(self.store, sources):
            logger.info("the last crawl of %s was interrupted; crawling it again now", source)
            self.scheduler.modify_job(crawl_job_id(source), next_run_time=datetime.now(UTC))

    def reload(self) -> None:
        try:
            plan = self.plan()
        except ConfigError as exc:
            logger.error("reload refused, the jobs stay as they were: %s", exc)
            return
        self.scheduler.pause()
        try:
            reconcile(self.scheduler, plan)
        finally:
            self.scheduler.resume()

    def serve(self) -> int:
        """Handle signals until told to stop; the exit code."""
        while True:
            try:
                what = self.events.get(timeout=1.0)
            except queue.Empty:
                continue
            if what == "reload":
                logger.info("SIGHUP: reloading %s", self.config.sources_file or "the sources")
                self.reload()
            elif what == "lost":
                self.scheduler.pause()
                self.crawls.cancel_waiting()  # the store is the next leader's to schedule
                stop_scheduler(self.scheduler, wait=False)
                stop_crawls(grace=0, jobs_running=self.crawls.busy)
                return EXIT_LOST_LEAD
            elif what == "stop":
                logger.info("stopping: no new runs")
                self.scheduler.pause()
                self.put_back(self.crawls.cancel_waiting())
                stop_crawls(self.config.stop_timeout, jobs_running=self.crawls.busy)
                stop_scheduler(self.scheduler, wait=True)
                return 0

    def put_back(self, job_ids: list[str]) -> None:
        """Make runs that never started due now, so the next start runs them at once."""
        now = datetime.now(UTC)
        for job_id in job_ids:
            logger.info("%s did not start before the stop; it runs at the next start", job_id)
            self.scheduler.modify_job(job_id, next_run_time=now)


def run_service(config: ServiceConfig) -> int:
    """Wait to lead the store's scheduler, then run it until SIGTERM; the exit code.

    A bad sources or rules file is refused (`ConfigError`) before anything starts.
    """
    plan_sources = load_sources(config.sources_file)
    secrets = [config.store_url]
    if alerts_available():
        from scheduler.rules import load_rules

        rules = load_rules(config.rules_file)
        secrets += [url.get_secret_value() for url in rules.channels.values()]
    # after the rules: their channel URLs are secrets Sentry events must never carry
    init_sentry("service", secrets=secrets)
    store = open_store(config.store_url)
    os.environ["PRESSWATCH_STORE"] = config.store_url  # where the jobs find the store
    events: queue.Queue[str] = queue.Queue()
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            events.put("reload")
        else:
            stopping.set()
            events.put("stop")

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    leadership = leadership_for(
        store, lease_seconds=config.lease_seconds, on_lost=lambda _why: events.put("lost")
    )
    try:
        if not leadership.wait_to_lead(stopping):
            return 0
        service = Service(config, store, events)
        service.start(planned_jobs(config, plan_sources, with_alerts=alerts_available()))
        logger.info(
            "scheduling %d sources (%d crawls at once)",
            sum(1 for source in plan_sources if source.enabled),
            config.max_crawls,
        )
        return service.serve()
    finally:
        leadership.release()
        store.close()
        flush()
