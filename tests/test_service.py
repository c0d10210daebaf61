"""The monitoring service against local portals: on schedule, one catch-up, a standby takes over,
SIGHUP keeps what did not change, and health raises one alert per break and one per recovery."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest
import yaml
from typer.testing import CliRunner

from crawler.config import load_sources
from pipelines.store import ItemQuery, open_store
from scheduler.cli import app
from scheduler.jobs import check_health, crawl_source, crawl_state
from scheduler.jobstore import trigger_to_json
from scheduler.replay import ReplayArticle, ReplayPortal, ReplayServer, generate_articles
from scheduler.replay import render_article as replay_article_html
from scheduler.runs import run_record
from scheduler.service import (
    LIGHT_EXECUTOR,
    STOP_CRAWLS_BOUND_S,
    ServiceConfig,
    build_scheduler,
    jobstore_for,
    planned_jobs,
    reconcile,
    scheduler_jobstore,
    stop_scheduler,
)
from tests.entry_point import PRESSWATCH, REPO, kill_group, start_presswatch
from tests.waiting import wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pipelines.store import Store
    from tests.fixtures.sinks import WebhookSink

ARTICLES = 12
CRAWL_SETTINGS: dict[str, Any] = {
    "EGRESS_ALLOW_NETS": ["127.0.0.0/8"],  # loopback is private: the egress policy is told
    "AUTOTHROTTLE_ENABLED": False,
    "DOWNLOAD_DELAY": 0,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
    "PRESSWATCH_PARSE_WORKERS": 1,
    "CLOSESPIDER_TIMEOUT": 60,
    "RETRY_TIMES": 2,
    "RETRY_BACKOFF_BASE": 0.05,
}
LEASE_S = 1.5


# --- helpers ------------------------------------------------------------------------------


def write_sources(path: Path, *configs: dict[str, Any]) -> Path:
    """Write atomically: a running crawl may be reading the file we replace."""
    draft = path.with_suffix(".draft")
    draft.write_text(yaml.safe_dump({"sources": list(configs)}, allow_unicode=True), "utf-8")
    draft.replace(path)
    return path


def start_service(
    store_url: str,
    sources: Path,
    log: Path,
    settings: dict[str, Any] | None = None,
    *options: str,
) -> subprocess.Popen[bytes]:
    """`presswatch run` in its own process group, so a kill takes its crawls; `options`
    are more of its command-line options."""
    args = [
        "run", "--store", store_url, "--sources", str(sources),
        "--lease-seconds", str(LEASE_S), "--health-interval", "3600", "--stop-timeout", "20",
        *options,
    ]  # fmt: skip
    for name, value in {**CRAWL_SETTINGS, **(settings or {})}.items():
        args.append(f"--set={name}={json.dumps(value)}")
    return start_presswatch(*args, log=log)


def stop_service(process: subprocess.Popen[bytes], log: Path) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=60)
    assert code == 0, log.read_text("utf-8")[-3000:]


def crawling(process: subprocess.Popen[bytes]) -> bool:
    try:
        return any(
            "crawler.run" in child.cmdline() for child in psutil.Process(process.pid).children()
        )
    except psutil.Error:
        return False


def job_records(store: Store) -> dict[str, Any]:
    jobstore = jobstore_for(store)
    try:
        return {record.id: record for record in jobstore.records()}
    finally:
        jobstore.close()


def shift_next_runs(store: Store, back: timedelta) -> None:
    """Move every crawl job's next run into the past: the service was down that long."""
    jobstore = jobstore_for(store)
    try:
        for job in jobstore.get_all_jobs():
            if job.id.startswith("crawl:"):
                job.next_run_time = datetime.now(UTC) - back
                jobstore.update_job(job)
    finally:
        jobstore.close()


def assert_no_overlap(runs: list[dict[str, Any]]) -> None:
    spans = sorted((run["started_at"], run["ended_at"]) for run in runs)
    for (_, ended), (started, _) in itertools.pairwise(spans):
        assert ended <= started, f"two runs of one source overlapped: {spans}"


@pytest.fixture
def portals() -> Iterator[ReplayServer]:
    """Two local portals of a dozen articles each."""
    specs = [
        ReplayPortal(name, name.title(), generate_articles(ARTICLES, seed=seed), page_size=5)
        for name, seed in (("vestnik", 7), ("kurier", 8))
    ]
    with ReplayServer(specs) as server:
        yield server


# --- construction and reconciling, in process -------------------------------------------


def test_the_scheduler_is_built_with_one_run_at_a_time_and_no_misfire_limit(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    config = ServiceConfig(store_url=store.url, max_crawls=3)
    scheduler = build_scheduler(config, store)
    try:
        assert scheduler._job_defaults == {
            "coalesce": True,
            "misfire_grace_time": None,
            "max_instances": 1,
        }
        assert scheduler._executors["default"]._pool._max_workers == 3
        assert LIGHT_EXECUTOR in scheduler._executors
    finally:
        scheduler_jobstore(scheduler).close()
        store.close()


def test_planned_jobs_follow_the_sources(portals: ReplayServer, tmp_path: Path) -> None:
    sources = write_sources(
        tmp_path / "sources.yaml",
        portals.source_config("vestnik", poll="10m"),
        portals.source_config("kurier", enabled=False),
    )
    config = ServiceConfig(store_url="redis://:CANARY-REDIS@127.0.0.1:1/0", sources_file=sources)
    plan = planned_jobs(config, load_sources(sources), with_alerts=False)
    assert [job.id for job in plan] == ["crawl:vestnik", "health"]
    crawl = plan[0]
    assert (crawl.func, crawl.seconds, crawl.jitter) == ("scheduler.jobs:crawl_source", 600, 30)
    assert crawl.args == ["vestnik", str(sources.resolve())]
    with_alerts = planned_jobs(config, load_sources(sources), with_alerts=True)
    assert [job.id for job in with_alerts][-1] == "alerts"
    # JSON only, and no store URL: whoever reads the job store must not learn its password.
    stored = json.dumps([[job.args, job.kwargs] for job in with_alerts])
    assert "CANARY-REDIS" not in stored


def test_reconcile_keeps_the_next_run_of_unchanged_jobs(
    store: Store, portals: ReplayServer, tmp_path: Path
) -> None:
    base = {"poll": "1h"}
    first = [
        portals.source_config("vestnik", **base),
        portals.source_config("kurier", **base),
        portals.source_config("vestnik", name="gone", **base),
    ]
    config = ServiceConfig(store_url=store.url)

    def reconciled_with(*sources: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        path = write_sources(tmp_path / "sources.yaml", *sources)
        scheduler = build_scheduler(config, store)
        scheduler.start(paused=True)
        try:
            done = reconcile(scheduler, planned_jobs(config, load_sources(path), with_alerts=False))
            jobs = {
                job.id: (job.next_run_time, trigger_to_json(job.trigger, job.id))
                for job in scheduler.get_jobs()
            }
        finally:
            stop_scheduler(scheduler, wait=False)
        return done, jobs

    done, before = reconciled_with(*first)
    assert sorted(done.added) == ["crawl:gone", "crawl:kurier", "crawl:vestnik", "health"]

    # A restart with the same file changes nothing, and keeps every next run time.
    done, again = reconciled_with(*first)
    assert sorted(done.kept) == sorted(before)
    assert again == before

    done, after = reconciled_with(
        portals.source_config("vestnik", **base),
        portals.source_config("kurier", poll="2h"),
        portals.source_config("kurier", name="new", **base),
    )
    assert (done.added, done.updated, done.removed) == (
        ["crawl:new"],
        ["crawl:kurier"],
        ["crawl:gone"],
    )
    assert after["crawl:vestnik"] == before["crawl:vestnik"]
    assert after["health"] == before["health"]
    assert after["crawl:kurier"][1]["seconds"] == 7200


def test_reconcile_replaces_a_stored_job_that_no_longer_loads(
    store: Store, portals: ReplayServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sources = write_sources(tmp_path / "sources.yaml", portals.source_config("vestnik"))
    config = ServiceConfig(store_url=store.url)
    plan = planned_jobs(config, load_sources(sources), with_alerts=False)
    scheduler = build_scheduler(config, store)
    scheduler.start(paused=True)
    try:
        reconcile(scheduler, plan)
        jobstore = scheduler_jobstore(scheduler)
        raw = dict(jobstore._read_all())["crawl:vestnik"]
        renamed = json.loads(raw)
        renamed["func"] = "scheduler.jobs:crawl_source_v0"  # as an older release named it
        jobstore._replace("crawl:vestnik", json.dumps(renamed), 0.0)

        done = reconcile(scheduler, plan)
        assert done.added == ["crawl:vestnik"]
        assert "crawl_source_v0" in caplog.text
        assert jobstore.unloadable_jobs() == {}
        assert scheduler.get_job("crawl:vestnik").func_ref == "scheduler.jobs:crawl_source"
    finally:
        stop_scheduler(scheduler, wait=False)


# --- the service as a process -------------------------------------------------------------


def test_on_schedule_sighup_keeps_unchanged_jobs_and_one_catch_up_after_downtime(
    store_url: str, store: Store, portals: ReplayServer, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    sources = write_sources(
        tmp_path / "sources.yaml",
        portals.source_config("vestnik", poll="2s"),
        portals.source_config("kurier", poll="1h"),
    )
    service = start_service(store_url, sources, log)
    try:
        # On schedule: vestnik every 2 s (each new source is crawled at once, then on its
        # interval), kurier once.
        wait_for(lambda: len(store.runs("vestnik")) >= 2, "two scheduled runs of vestnik")
        # SIGHUP: vestnik's poll changes; kurier's does not and keeps its next run.
        write_sources(
            sources,
            portals.source_config("vestnik", poll="1h"),
            portals.source_config("kurier", poll="1h"),
        )
        wait_for(lambda: len(store.runs("kurier")) == 1, "the first run of kurier")
        kurier_next = job_records(store)["crawl:kurier"].next_run_time
        service.send_signal(signal.SIGHUP)
        wait_for(
            lambda: job_records(store)["crawl:vestnik"].trigger["seconds"] == 3600,
            "the reload to reschedule vestnik",
        )
        assert job_records(store)["crawl:kurier"].next_run_time == kurier_next
        wait_for(lambda: not crawling(service), "the running crawl to end")
        stop_service(service, log)
    finally:
        kill_group(service)
    assert all(run["status"] == "ok" for run in store.runs())
    assert store.count_items("vestnik") == store.count_items("kurier") == ARTICLES
    assert_no_overlap(store.runs("vestnik"))

    # Down across three due runs of each source; the restart runs each exactly once.
    shift_next_runs(store, timedelta(hours=3, minutes=5))
    before = {name: len(store.runs(name)) for name in ("vestnik", "kurier")}
    restarted = datetime.now(UTC).isoformat()
    service = start_service(store_url, sources, log)
    try:
        for name, count in before.items():
            wait_for(lambda name=name, count=count: len(store.runs(name)) > count, name)

        def caught_up() -> bool:
            jobs = job_records(store)
            now = datetime.now(UTC).isoformat()
            return not crawling(service) and all(
                jobs[f"crawl:{name}"].next_run_time > now for name in before
            )

        wait_for(caught_up, "no run left due")
        for name in before:
            late = [run for run in store.runs(name) if run["started_at"] > restarted]
            assert len(late) == 1, f"{name}: {len(late)} catch-up runs"
        stop_service(service, log)
    finally:
        kill_group(service)


def test_a_standby_takes_over_a_killed_leader_losing_and_doubling_nothing(
    store_url: str, store: Store, portals: ReplayServer, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    sources = write_sources(tmp_path / "sources.yaml", portals.source_config("vestnik", poll="2s"))
    # Slow enough that the kill lands mid-crawl.
    slow = {"DOWNLOAD_DELAY": 0.2, "CONCURRENT_REQUESTS_PER_DOMAIN": 1}
    leader = start_service(store_url, sources, log, slow)
    standby = None
    try:
        wait_for(lambda: (store.get_state("scheduler/leader") or {}).get("pid") == leader.pid,
                 "the first service to lead")  # fmt: skip
        standby = start_service(store_url, sources, log, slow)
        wait_for(lambda: 0 < store.count_items("vestnik") < ARTICLES, "a crawl half done")
        kill_group(leader)  # the service and its crawl, mid-crawl
        kept = store.count_items("vestnik")
        assert kept < ARTICLES

        wait_for(
            lambda: (store.get_state("scheduler/leader") or {}).get("pid") == standby.pid,
            "the standby to take over",
        )
        wait_for(lambda: store.count_items("vestnik") == ARTICLES, "the rest of the items")
        wait_for(lambda: any(r["status"] == "ok" for r in store.runs("vestnik")), "a full run")
        stop_service(standby, log)
    finally:
        kill_group(leader)
        if standby is not None:
            kill_group(standby)
    items = store.items(ItemQuery(source="vestnik", limit=100))
    assert len(items) == ARTICLES
    assert len({item["url"] for item in items}) == ARTICLES
    assert len({item["content_hash"] for item in items}) == ARTICLES
    assert_no_overlap([run for run in store.runs("vestnik") if run["ended_at"]])


def test_sigterm_starts_no_new_crawl_and_stops_within_its_bound(
    store: Store, store_url: str, portals: ReplayServer, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    sources = write_sources(
        tmp_path / "sources.yaml",
        portals.source_config("vestnik", poll="1h"),
        portals.source_config("kurier", poll="1h"),
    )
    slow = {"DOWNLOAD_DELAY": 0.5, "CONCURRENT_REQUESTS_PER_DOMAIN": 1}
    stop_timeout = 1.0
    # One crawl at a time: the second source's run waits for a free slot.
    service = start_service(
        store_url, sources, log, slow, "--max-crawls", "1", "--stop-timeout", str(stop_timeout)
    )
    try:
        wait_for(lambda: crawling(service), "the first crawl")
        stopped_at = datetime.now(UTC).isoformat()
        service.send_signal(signal.SIGTERM)
        # the bound: the grace, then stopping what still runs, and slack for a loaded machine
        assert service.wait(timeout=stop_timeout + STOP_CRAWLS_BOUND_S + 10) == 0
    finally:
        kill_group(service)
    text = log.read_text("utf-8")
    assert "stopping: no new runs" in text
    runs = store.runs()
    assert len(runs) == 1, text[-3000:]  # the crawl that was running, stopped and recorded
    # its job began before the signal (Scrapy's own start time may come later)
    assert store.get_state(crawl_state(runs[0]["source"]))["started_at"] < stopped_at
    # The run that never started is due at once at the next start, not an hour later.
    waiting = next(n for n in ("vestnik", "kurier") if n != runs[0]["source"])
    assert job_records(store)[f"crawl:{waiting}"].next_run_time <= datetime.now(UTC).isoformat()
    assert f"crawl:{waiting} did not start before the stop" in text


def test_a_killed_service_restarts_losing_and_doubling_no_item_and_no_alert(
    store: Store,
    store_url: str,
    portals: ReplayServer,
    webhook_sink: WebhookSink,
    tmp_path: Path,
) -> None:
    log = tmp_path / "service.log"
    sources = write_sources(tmp_path / "sources.yaml", portals.source_config("vestnik", poll="1h"))
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "channels": {"hook": f"json://127.0.0.1:{webhook_sink.port}/alerts"},
                "rules": [{"name": "shymkent", "terms": ["Шымкент"], "channels": ["hook"]}],
            },
            allow_unicode=True,
        ),
        "utf-8",
    )
    slow = {"DOWNLOAD_DELAY": 0.3, "CONCURRENT_REQUESTS_PER_DOMAIN": 1}
    options = ("--rules", str(rules), "--alerts-interval", "1")
    service = start_service(store_url, sources, log, slow, *options)
    try:
        wait_for(lambda: 0 < store.count_items("vestnik") < ARTICLES, "a crawl half done")
        kill_group(service)  # SIGKILL, the service and its crawl
        assert store.count_items("vestnik") < ARTICLES
        service = start_service(store_url, sources, log, slow, *options)
        wait_for(lambda: store.count_items("vestnik") == ARTICLES, "every item, after the restart")

        def delivered() -> bool:
            alerts = store.outbox().alerts()
            deliveries = [d for alert in alerts for d in alert["deliveries"]]
            return bool(alerts) and all(d["status"] == "sent" for d in deliveries)

        wait_for(delivered, "every alert delivered")
        stop_service(service, log)
    finally:
        kill_group(service)
    items = store.items(ItemQuery(source="vestnik", limit=100))
    assert len({item["url"] for item in items}) == len(items) == ARTICLES
    alerts = store.outbox().alerts()
    stories = [alert["story"] for alert in alerts]
    assert len(set(stories)) == len(stories), "a story alerted twice"
    # Exactly one effective delivery per message: a retry after the kill carries the same
    # Idempotency-Key, which the receiver takes once.
    accepted = webhook_sink.accepted()
    assert {r.headers["X-Alert-Id"] for r in accepted} == {alert["id"] for alert in alerts}
    keys = {d["id"] for alert in alerts for d in alert["deliveries"]}
    assert {r.headers["Idempotency-Key"] for r in accepted} == keys


def test_a_crawl_over_its_time_limit_is_stopped_and_recorded_failed(
    portals: ReplayServer, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'pw.db'}"
    sources = write_sources(tmp_path / "sources.yaml", portals.source_config("vestnik"))
    run = crawl_source("vestnik", str(sources), timeout=0.2, store_url=store_url)
    assert run["status"] == "failed"
    assert "did not end within 0.2 s" in run["error"]
    store = open_store(store_url)
    try:
        assert [r["id"] for r in store.runs("vestnik")] == [run["id"]]
    finally:
        store.close()


# --- health, through the job --------------------------------------------------------------


class ChangingPortal:
    """A portal whose feed lists three new articles per edition; `mode` breaks it:
    ``503`` (every page but robots.txt), ``no_title`` (pages lose title and headline)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.edition = 0
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, ctype, status = portal.page(self.path)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def articles(self, edition: int) -> list[ReplayArticle]:
        articles = generate_articles(3, seed=edition)
        for index, article in enumerate(articles):
            article.slug = f"e{edition}-{index}"
        return articles

    def page(self, path: str) -> tuple[bytes, str, int]:
        if path == "/robots.txt":
            return b"User-agent: *\nAllow: /\n", "text/plain", 200
        if self.mode == "503":
            return b"unavailable", "text/plain", 503
        spec = ReplayPortal("changing", "Changing", self.articles(self.edition))
        if path == "/rss.xml":
            links = "".join(
                f"<item><title>{a.title}</title><link>{self.base}{a.path}</link></item>"
                for a in spec.articles
            )
            rss = f'<?xml version="1.0"?><rss version="2.0"><channel>{links}</channel></rss>'
            return rss.encode(), "application/rss+xml", 200
        article = next((a for a in spec.articles if a.path == path), None)
        if article is None:
            return b"not found", "text/plain", 404
        html = replay_article_html(spec, article, [])
        if self.mode == "no_title":
            html = re.sub(r"<title>.*?</title>|<h1.*?</h1>|<meta property=\"og:title\"[^>]*>",
                          "", html, flags=re.S)  # fmt: skip
        return html.encode(), "text/html; charset=utf-8", 200

    def source_config(self) -> dict[str, Any]:
        return {
            "name": "changing",
            "kind": "media",
            "domains": ["127.0.0.1"],
            "discovery": {"feeds": [f"{self.base}/rss.xml"]},
            "poll": "1h",
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def changing() -> Iterator[ChangingPortal]:
    portal = ChangingPortal()
    yield portal
    portal.close()


def add_history(store: Store, source: str, days: int = 9, *, until: datetime | None = None) -> None:
    """A healthy past: every 20 hours a run with four new, complete items."""
    end = until or datetime.now(UTC) - timedelta(hours=1)
    moment = end - timedelta(days=days)
    while moment <= end:
        stats = {
            "start_time": moment.isoformat(),
            "finish_time": (moment + timedelta(seconds=30)).isoformat(),
            "finish_reason": "finished",
            "downloader/request_count": 6,
            "robotstxt/request_count": 1,
            "downloader/response_count": 6,
            "downloader/response_status_count/200": 6,
            "store/new": 4,
            "portal/items": 4,
        }
        store.add_run(run_record(source, stats))
        moment += timedelta(hours=20)


def crawl_and_check(portal: ChangingPortal, store_url: str, sources: Path) -> list[dict[str, Any]]:
    portal.edition += 1
    crawl_source("changing", str(sources), timeout=60, settings=CRAWL_SETTINGS, store_url=store_url)
    return check_health(str(sources), store_url=store_url)


@pytest.mark.parametrize(("mode", "state"), [("503", "failing"), ("no_title", "layout_changed")])
def test_a_break_gives_one_health_event_and_healing_one_recovery(
    changing: ChangingPortal, tmp_path: Path, mode: str, state: str
) -> None:
    store_url = f"sqlite:///{tmp_path / 'pw.db'}"
    sources = write_sources(tmp_path / "sources.yaml", changing.source_config())
    store = open_store(store_url)
    try:
        add_history(store, "changing")
    finally:
        store.close()
    changing.mode = mode
    events = [crawl_and_check(changing, store_url, sources) for _ in range(2)]
    assert [[(e["kind"], e["state"]) for e in batch] for batch in events] == [
        [],  # one bad run is not yet a break
        [("broken", state)],
    ]
    assert check_health(str(sources), store_url=store_url) == []  # still broken: no second alert

    changing.mode = "ok"
    healed = crawl_and_check(changing, store_url, sources)
    assert [(e["kind"], e["state"]) for e in healed] == [("recovered", state)]
    assert check_health(str(sources), store_url=store_url) == []
    assert notices(store_url) == [f"Presswatch: changing is {state.replace('_', ' ')}",
                                  "Presswatch: changing recovered"]  # fmt: skip


def notices(store_url: str) -> list[str]:
    """The subjects of the health notices in the alert outbox, sorted."""
    store = open_store(store_url)
    outbox = store.outbox()
    try:
        alerts = outbox.alerts(limit=100)
        return sorted(alert["message"]["subject"] for alert in alerts if alert["rule"] is None)
    finally:
        outbox.close()
        store.close()


def test_silence_gives_one_event_and_news_one_recovery(
    changing: ChangingPortal, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'pw.db'}"
    sources = write_sources(tmp_path / "sources.yaml", changing.source_config())
    store = open_store(store_url)
    try:
        # Productive for nine days, then three days of hourly runs that find nothing.
        quiet_since = datetime.now(UTC) - timedelta(days=3)
        add_history(store, "changing", until=quiet_since)
        for hour in range(1, 72):
            moment = quiet_since + timedelta(hours=hour)
            stats = {
                "start_time": moment.isoformat(),
                "finish_time": moment.isoformat(),
                "finish_reason": "finished",
                "downloader/request_count": 2,
                "downloader/response_count": 2,
                "downloader/response_status_count/200": 2,
            }
            store.add_run(run_record("changing", stats))
        events = check_health(str(sources), store_url=store_url)
        assert [(e["kind"], e["state"]) for e in events] == [("broken", "silent")]
        assert check_health(str(sources), store_url=store_url) == []
        assert store.get_state("health/changing")["state"] == "silent"

        news = {"start_time": datetime.now(UTC).isoformat(), "finish_reason": "finished",
                "store/new": 2, "portal/items": 2}  # fmt: skip
        store.add_run(run_record("changing", news))
        events = check_health(str(sources), store_url=store_url)
        assert [(e["kind"], e["state"]) for e in events] == [("recovered", "silent")]
    finally:
        store.close()
    assert notices(store_url) == [
        "Presswatch: changing is silent",
        "Presswatch: changing recovered",
    ]


def test_crawl_now_runs_the_service_job_and_status_shows_it(
    portals: ReplayServer, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'pw.db'}"
    sources = write_sources(tmp_path / "sources.yaml", portals.source_config("vestnik"))
    env = {**os.environ, "PRESSWATCH_STORE": store_url}
    done = subprocess.run(
        [PRESSWATCH, "crawl", "vestnik", "--now", "--sources", str(sources),
         "--allow-net", "127.0.0.0/8"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = open_store(store_url)
    try:
        runs = store.runs("vestnik")
        assert len(runs) == 1
        assert runs[0]["stats"]["finish_reason"] == "finished"
        assert store.count_items("vestnik") == ARTICLES
        # A service that ran once left its jobs and its leader record behind.
        config = ServiceConfig(store_url=store_url, sources_file=sources)
        scheduler = build_scheduler(config, store)
        scheduler.start(paused=True)
        reconcile(scheduler, planned_jobs(config, load_sources(sources), with_alerts=False))
        stop_scheduler(scheduler, wait=False)
    finally:
        store.close()

    args = ["status", "--store", store_url, "--sources", str(sources)]
    shown = CliRunner().invoke(app, [*args, "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    assert report["leader"] is None
    assert [job["id"] for job in report["jobs"]] == ["crawl:vestnik", "health"]
    (row,) = report["sources"]
    assert row["source"] == "vestnik"
    assert row["last_run"]["status"] == runs[0]["status"]
    assert row["next_run_time"] == report["jobs"][0]["next_run_time"]
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "crawl:vestnik" in table.output
