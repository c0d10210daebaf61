"""The service's job functions, as importable references (``scheduler.jobs:crawl_source``).

The job store keeps a job as its reference and JSON arguments (source name, file paths,
numbers), so each function opens what it needs itself and closes it again. The store URL
is not among them: it may hold a password, and the job store is readable by anyone who
can read the store. A job opens the store its process runs against, ``PRESSWATCH_STORE``
(`presswatch run` sets it), unless a caller passes `store_url`.
"""

from __future__ import annotations

import importlib
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from crawler.config import ConfigError, find_source, load_sources
from crawler.run import CrawlFailed, crawl_in_subprocess
from crawler.telemetry import capture_failure, cron_checkin
from pipelines.store import open_store, store_url_from_env
from pipelines.store.base import StoreError
from scheduler import health
from scheduler.runs import run_record

if TYPE_CHECKING:
    from pipelines.store import Store

logger = logging.getLogger(__name__)

DEFAULT_CRAWL_TIMEOUT_S = 1800.0


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _without_password(text: str, store_url: str) -> str:
    password = urlsplit(store_url).password
    return text.replace(password, "***") if password else text


def _poll_interval(source: str, sources_file: str | None) -> timedelta | None:
    """The source's poll interval, for its Sentry Crons monitor; None if unreadable now."""
    try:
        return timedelta(seconds=find_source(load_sources(sources_file), source).poll_seconds)
    except ConfigError:
        return None


def crawl_state(source: str) -> str:
    """The store state that says whether `source`'s last crawl job ended."""
    return f"crawl/{source}"


def _mark_crawl(store_url: str, source: str, state: dict[str, Any]) -> None:
    """Say in the store that `source`'s crawl job started; a store that is down now does
    not stop the crawl, which keeps its items in its spool."""
    try:
        store = open_store(store_url)
        try:
            store.set_state(crawl_state(source), state)
        finally:
            store.close()
    except StoreError as exc:
        logger.warning("crawl of %s: could not mark it started in the store: %s", source, exc)


def interrupted_crawls(store: Store, sources: list[str]) -> list[str]:
    """The sources whose last crawl job started and never ended: its process was killed."""
    return [
        source
        for source in sources
        if (state := store.get_state(crawl_state(source))) and state.get("ended_at") is None
    ]


def crawl_source(
    source: str,
    sources_file: str | None = None,
    timeout: float = DEFAULT_CRAWL_TIMEOUT_S,
    settings: dict[str, Any] | None = None,
    *,
    store_url: str | None = None,
) -> dict[str, Any]:
    """Crawl `source` in a child process (killed after `timeout` s) and record the run.

    A crawl that fails, overruns or is stopped is recorded too, as ``failed`` with the
    reason in ``error``: health judges sources from these records. Items are stored as
    they are fetched, so a stopped crawl keeps what it got. A crawl job killed with its
    process is found at the next start (`interrupted_crawls`) and run again at once.
    Returns the run record.
    """
    store_url = store_url or store_url_from_env()
    started = _now()
    error = None
    schedule = _poll_interval(source, sources_file)
    _mark_crawl(store_url, source, {"started_at": started, "ended_at": None})
    try:
        # in_progress now, then ok, or error when the crawl fails: a missed run shows in Sentry
        with cron_checkin(f"crawl-{source}", schedule, max_runtime=timedelta(seconds=timeout)):
            stats = crawl_in_subprocess(
                [source],
                store_url,
                sources_file=Path(sources_file) if sources_file else None,
                settings=settings,
                timeout=timeout,
            )[source]
    except CrawlFailed as exc:
        error = _without_password(str(exc), store_url)
        capture_failure(exc, kind="crawl", source=source)
        # a crawl that ran but could not store its items has its stats: the record shows why
        stats = (exc.stats or {}).get(source) or {
            "start_time": started,
            "finish_time": _now(),
            "finish_reason": "failed",
        }
    run = run_record(source, stats)
    if error is not None:
        run["error"] = error
    store = open_store(store_url)
    try:
        store.add_run(run)
        store.set_state(crawl_state(source), {"started_at": started, "ended_at": _now()})
    finally:
        store.close()
    if error is None:
        logger.info(
            "crawled %s: %s, %s new items", source, run["status"], stats.get("store/new", 0)
        )
    else:
        logger.warning("crawl of %s failed: %s", source, error)
    return run


def _alerts_part(name: str) -> Any:
    """`scheduler.alerts.<name>` once the alerts module provides it, else None.

    The alert outbox is built beside this module; until it lands the service runs without
    the alert job and the health job only returns its events. A module that exists but
    fails to import is an error, not an absence.
    """
    try:
        alerts = importlib.import_module("scheduler.alerts")
    except ModuleNotFoundError as exc:
        if exc.name != "scheduler.alerts":
            raise
        return None
    return getattr(alerts, name, None)


def alerts_available() -> bool:
    """Whether `scheduler.alerts.run_alert_job` exists, so the service can run `run_alerts`."""
    return _alerts_part("run_alert_job") is not None


def run_alerts(rules_file: str | None = None, *, store_url: str | None = None) -> Any:
    """Match new stories against the rules and deliver the outbox (`scheduler.alerts`)."""
    from scheduler.alerts import run_alert_job
    from scheduler.rules import load_rules

    rules = load_rules(rules_file)
    store = open_store(store_url)
    try:
        return run_alert_job(store, rules)
    finally:
        store.close()


def check_health(
    sources_file: str | None = None,
    rules_file: str | None = None,
    *,
    store_url: str | None = None,
) -> list[dict[str, Any]]:
    """Judge every enabled source from its runs; one notice per break and per recovery.

    Each source's state is kept as ``health/<name>`` (`health.HealthState`, plus the last
    verdict for `presswatch status`). Returns the events of this check.
    """
    sources = [source for source in load_sources(sources_file) if source.enabled]
    enqueue = _alerts_part("enqueue_notice")
    rules = None
    if enqueue is not None:
        from scheduler.rules import load_rules

        rules = load_rules(rules_file)
    now = datetime.now(UTC)
    events = []
    store = open_store(store_url)
    try:
        for source in sources:
            name = f"health/{source.name}"
            runs = store.runs(source.name, health.history_limit(source))
            verdict = health.assess(source, runs, now)
            kept = store.get_state(name)
            previous = health.HealthState.from_json(kept) if kept else None
            event = health.transition(previous, verdict)
            if event is not None:
                events.append(event)
                logger.warning("health: %s", health.message(event).splitlines()[0])
                # Sent before the new state is kept: a crash in between re-sends the same
                # notice id, which the outbox takes once.
                if enqueue is not None and rules is not None and rules.health_channels:
                    enqueue(
                        store,
                        notice_id=event.id,
                        channels=rules.health_channels,
                        subject=_subject(event),
                        body=health.message(event),
                    )
                elif enqueue is not None:
                    logger.warning(
                        "health notice for %s not sent: the rules file names no channel for"
                        " it; add `health: {channels: [...]}` to rules.yaml",
                        source.name,
                    )
            state = health.remember(previous, verdict).to_json()
            state["verdict"] = {
                "state": verdict.state,
                "reasons": verdict.reasons,
                "checked_at": verdict.checked_at,
            }
            store.set_state(name, state)
    finally:
        store.close()
    if events and enqueue is None:
        logger.warning(
            "%d health events not sent: scheduler.alerts.enqueue_notice is not available",
            len(events),
        )
    return [_event_json(event) for event in events]


def _subject(event: health.HealthEvent) -> str:
    if event.kind == "broken":
        return f"Presswatch: {event.source} is {event.state.replace('_', ' ')}"
    return f"Presswatch: {event.source} recovered"


def _event_json(event: health.HealthEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "kind": event.kind,
        "source": event.source,
        "state": event.state,
        "since": event.since,
        "at": event.at,
        "reasons": event.reasons,
    }
