"""Sentry end to end against a local ingest server: events, Crons check-ins, secret scrubbing.

The crawl runs as a subprocess (`crawler.run.crawl_in_subprocess`); the other tests call
`init_sentry` in this process and reset the SDK afterwards.
"""

from __future__ import annotations

import logging
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import sentry_sdk
import yaml
from aiohttp import web
from scrapy import Spider
from scrapy.exceptions import NotConfigured
from scrapy.http import HtmlResponse
from scrapy.utils.test import get_crawler
from twisted.python.failure import Failure

from crawler.run import crawl_in_subprocess, crawl_settings
from crawler.telemetry import (
    FILTERED,
    SecretScrubber,
    SentryExtension,
    capture_failure,
    cron_checkin,
    flush,
    init_sentry,
    monitor_config,
    secret_values,
)
from scheduler.jobs import crawl_source
from scheduler.replay import ReplayServer
from tests.fixtures.faults import FaultServer
from tests.fixtures.portal import PORTAL
from tests.fixtures.redis_server import running_redis_server
from tests.fixtures.sentry_ingest import SentryIngest
from tests.test_crawl import TEST_SETTINGS, write_sources

# lxml finds no document in it, so the spider's parse_listing raises ParserError: the real
# callback exception the crawl test reports. Should discovery learn to skip such pages,
# give the test another page that breaks a callback.
BLANK_PAGE = "<!-- the CDN served an empty page -->"
CRAWL_SETTINGS: dict[str, Any] = {
    "EGRESS_ALLOW_NETS": ["127.0.0.0/8"],
    "AUTOTHROTTLE_ENABLED": False,
    "DOWNLOAD_DELAY": 0,
    "LOG_LEVEL": "INFO",
    "PRESSWATCH_PARSE_WORKERS": 1,
    "CLOSESPIDER_TIMEOUT": 60,
    "RETRY_TIMES": 2,
    "RETRY_BACKOFF_BASE": 0.01,
    "RETRY_BACKOFF_MAX": 0.05,
}


def tags(event: dict[str, Any]) -> dict[str, str]:
    return dict(event.get("tags", {}))


def exception_types(event: dict[str, Any]) -> list[str]:
    return [value["type"] for value in event.get("exception", {}).get("values", [])]


def leaked(received: bytes, secrets: list[str]) -> list[str]:
    """The secrets found in `received`, as they are or URL-quoted."""
    forms = {s: {s, quote(s, safe=""), quote_plus(s)} for s in secrets}
    return [s for s, variants in forms.items() if any(v.encode() in received for v in variants)]


@pytest.fixture
def sentry_on(
    sentry_ingest: SentryIngest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SentryIngest]:
    """``SENTRY_DSN`` pointed at the ingest server; the SDK reset after the test."""
    monkeypatch.setenv("SENTRY_DSN", sentry_ingest.dsn)
    monkeypatch.setenv("SENTRY_ENVIRONMENT", "test")
    with sentry_sdk.isolation_scope():
        yield sentry_ingest
    sentry_sdk.get_client().close(timeout=5)
    sentry_sdk.get_global_scope().clear()
    sentry_sdk.get_global_scope().set_client(None)


# --- without a DSN ----------------------------------------------------------------------


def test_without_a_dsn_nothing_starts_and_nothing_is_sent(
    sentry_ingest: SentryIngest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    assert init_sentry("cli") is False
    assert not sentry_sdk.is_initialized()
    assert capture_failure(RuntimeError("job failed"), kind="job") is None
    with cron_checkin("crawl-vestnik", timedelta(minutes=15)):
        pass
    flush()
    assert sentry_ingest.received() == b""
    settings = crawl_settings(f"sqlite:///{tmp_path}/pw.db")
    assert SentryExtension not in settings.getdict("EXTENSIONS")
    with pytest.raises(NotConfigured, match="SENTRY_DSN"):
        SentryExtension.from_crawler(get_crawler(Spider))


def test_sentry_enabled_false_turns_the_extension_off(
    sentry_on: SentryIngest, tmp_path: Path
) -> None:
    assert SentryExtension in crawl_settings(f"sqlite:///{tmp_path}/pw.db").getdict("EXTENSIONS")
    with pytest.raises(NotConfigured, match="SENTRY_ENABLED"):
        SentryExtension.from_crawler(get_crawler(Spider, {"SENTRY_ENABLED": False}))


# --- scrubbing, pure --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:hunter2hunter@10.0.0.5:6379/0", f"redis://{FILTERED}@10.0.0.5:6379/0"),
        ("mailto://bob:pa55word@mail.kz?to=a@b.kz", f"mailto://{FILTERED}@mail.kz?to=a@b.kz"),
        (
            "POST https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/send",
            f"POST https://api.telegram.org/bot{FILTERED}/send",
        ),
        ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001", f"tgram://{FILTERED}/-1001"),
        ("GET /feed?token=abc123&page=2", f"GET /feed?token={FILTERED}&page=2"),
        ("Redis(password=s3cr3t, db=0)", f"Redis(password={FILTERED}, db=0)"),
        ("no secret in Минфин news", "no secret in Минфин news"),
    ],
)
def test_patterns_are_scrubbed_without_knowing_the_value(text: str, expected: str) -> None:
    assert SecretScrubber([]).scrub_text(text) == expected


def test_secret_values_come_from_secret_looking_environment_names() -> None:
    environ = {
        "TG_TOKEN": "tok-123456",
        "SMTP_PASSWORD": "smtp-pass",
        "ALERTS_WEBHOOK_URL": "json://hooks.example.kz/Ab12Cd34Ef56",
        "PRESSWATCH_STORE": "redis://:storepass@redis:6379/0",
        "SENTRY_DSN": "https://publickey1@o1.ingest.sentry.io/2",
        "TG_CHAT": "-1001234",
        "HOME": "/root",
        "PATH": "/usr/bin",
        "PWD": "/srv/presswatch",  # the shell's working directory, not a password
    }
    values = set(secret_values(environ, ["slack://TokenA1b2/TokenB3c4/TokenC5d6"]))
    for expected in (
        "tok-123456",
        "smtp-pass",
        "Ab12Cd34Ef56",  # a token-like path segment of a notifier URL
        "storepass",
        "publickey1",
        "TokenB3c4",
    ):
        assert expected in values
    assert not {"-1001234", "/root", "/usr/bin", "/srv/presswatch"} & values


def test_scrub_reaches_nested_values_and_keys() -> None:
    scrubber = SecretScrubber(["topsecret"])
    event = {"extra": {"topsecret-key": ["a", ("b topsecret", {"deep": "topsecret"})]}, "n": 3}
    assert scrubber.scrub(event) == {
        "extra": {f"{FILTERED}-key": ["a", [f"b {FILTERED}", {"deep": FILTERED}]]},
        "n": 3,
    }


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (timedelta(minutes=15), {"type": "interval", "value": 15, "unit": "minute"}),
        (timedelta(seconds=10), {"type": "interval", "value": 1, "unit": "minute"}),
        (timedelta(seconds=90), {"type": "interval", "value": 2, "unit": "minute"}),
        ("*/5 * * * *", {"type": "crontab", "value": "*/5 * * * *"}),
    ],
)
def test_monitor_config_from_a_schedule(
    schedule: timedelta | str, expected: dict[str, Any]
) -> None:
    config = monitor_config(schedule, max_runtime=timedelta(hours=1))
    assert config["schedule"] == expected
    assert config["checkin_margin"] >= 1
    assert config["max_runtime"] == 60


# --- in this process, against the ingest server -----------------------------------------


def test_planted_secrets_reach_no_byte_of_the_ingest_server(
    sentry_on: SentryIngest, fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary_tg = f"CANARY-TG-{uuid.uuid4()}"
    redis_password = f"CANARY-REDIS-{uuid.uuid4().hex}"
    smtp_password = f"CANARY-SMTP-{uuid.uuid4().hex}"
    # Telegram-shaped and known to nobody: only the pattern can catch it.
    bot_token = f"{uuid.uuid4().int % 10**9:09d}:CANARY{uuid.uuid4().hex}"
    store_url = f"redis://:{redis_password}@127.0.0.1:6379/0"
    channel_url = f"mailto://alerts:{smtp_password}@mail.example.kz?to=desk@example.kz"
    monkeypatch.setenv("TG_TOKEN", canary_tg)
    monkeypatch.setenv("PRESSWATCH_STORE", store_url)

    assert init_sentry("service", secrets=[channel_url], source="vestnik")
    logging.getLogger("scheduler.alerts").warning(
        "delivery via https://api.telegram.org/bot%s/sendMessage failed", bot_token
    )
    # an http.client breadcrumb whose URL holds the token (RELIABILITY X3)
    with urllib.request.urlopen(fault_server.url(f"/article/bot{bot_token}"), timeout=10):  # noqa: S310
        pass
    sentry_sdk.add_breadcrumb(category="notify", message=canary_tg, data={"store": store_url})
    sentry_sdk.set_extra("channel", channel_url)
    sentry_sdk.set_context("notifier", {"tg": canary_tg, "password": smtp_password})
    try:
        raise RuntimeError(f"cannot deliver via bot{bot_token} ({canary_tg}); store {store_url}")
    except RuntimeError as error:  # raised, so that the event has a stack trace
        exception_id = capture_failure(error, kind="delivery", channel="telegram")
    assert exception_id
    assert capture_failure(
        "delivery failed for good",
        kind="delivery",
        details={"attempts": 5, "last_error": f"{channel_url}: 535 bad login {smtp_password}"},
        channel="mail",
    )
    flush()

    sentry_on.wait_for(lambda: len(sentry_on.events()) == 2)
    secrets = [canary_tg, redis_password, smtp_password, bot_token, bot_token.split(":")[1]]
    assert leaked(sentry_on.received(), secrets) == []
    exception, message = sorted(sentry_on.events(), key=lambda e: "exception" not in e)
    assert exception_types(exception) == ["RuntimeError"]
    assert FILTERED in exception["exception"]["values"][0]["value"]
    for event, channel in ((exception, "telegram"), (message, "mail")):
        expected = {"component": "service", "source": "vestnik", "failure": "delivery"}
        assert tags(event).items() >= {**expected, "channel": channel}.items()
    assert exception["environment"] == "test"
    assert exception["release"].startswith("presswatch@")
    assert message["message"] == "delivery failed for good"
    assert message["contexts"]["failure"]["attempts"] == 5
    crumbs = exception["breadcrumbs"]["values"]
    assert any(c.get("category") == "httplib" for c in crumbs)  # scrubbed, not dropped
    assert any(c.get("category") == "scheduler.alerts" for c in crumbs)


def test_logged_errors_are_breadcrumbs_not_events(sentry_on: SentryIngest) -> None:
    init_sentry("crawl")
    logging.getLogger("scrapy.core.scraper").error("Gave up retrying <GET http://x/> (503)")
    capture_failure("a marker event", kind="job")
    flush()
    sentry_on.wait_for(lambda: len(sentry_on.events()) >= 1)
    (event,) = sentry_on.events()
    assert event["message"] == "a marker event"
    assert any("Gave up retrying" in c.get("message", "") for c in event["breadcrumbs"]["values"])


def test_cron_checkins_pair_in_progress_with_ok_or_error(sentry_on: SentryIngest) -> None:
    init_sentry("service")
    with cron_checkin("crawl-vestnik", timedelta(seconds=90), max_runtime=timedelta(hours=1)):
        pass
    with (
        pytest.raises(RuntimeError, match="crawl failed"),
        cron_checkin("crawl-Broken.Portal", timedelta(minutes=15)),
    ):
        raise RuntimeError("crawl failed")
    flush()

    sentry_on.wait_for(lambda: len(sentry_on.checkins()) == 4)
    by_slug: dict[str, list[dict[str, Any]]] = {}
    for checkin in sentry_on.checkins():
        by_slug.setdefault(checkin["monitor_slug"], []).append(checkin)
    assert set(by_slug) == {"crawl-vestnik", "crawl-broken-portal"}
    for slug, final in (("crawl-vestnik", "ok"), ("crawl-broken-portal", "error")):
        started, ended = by_slug[slug]
        assert (started["status"], ended["status"]) == ("in_progress", final)
        assert started["check_in_id"] == ended["check_in_id"]
        assert ended["duration"] >= 0
        assert ended["environment"] == "test"
    schedule = by_slug["crawl-vestnik"][0]["monitor_config"]["schedule"]
    assert schedule == {"type": "interval", "value": 2, "unit": "minute"}


def test_extension_reports_each_exception_type_once_per_source(sentry_on: SentryIngest) -> None:
    init_sentry("crawl")
    crawler = get_crawler(Spider)
    crawler.spider = Spider.from_crawler(crawler, name="portal")
    crawler.spider.source = SimpleNamespace(name="vestnik")  # type: ignore[attr-defined]
    extension = SentryExtension.from_crawler(crawler)
    response = HtmlResponse("http://127.0.0.1/news/", body=b"<html></html>")
    for error in (ValueError("layout 1"), ValueError("layout 2"), KeyError("title")):
        try:
            raise error
        except (ValueError, KeyError):
            extension.spider_error(Failure(), response)
    try:
        raise TypeError("the store refused the item")
    except TypeError:
        extension.item_error(Failure(), response)
    flush()

    sentry_on.wait_for(lambda: len(sentry_on.events()) == 3)
    assert crawler.stats is not None
    assert crawler.stats.get_value("sentry/spider_errors") == 3
    assert crawler.stats.get_value("sentry/item_errors") == 1
    assert crawler.stats.get_value("sentry/events") == 3
    assert crawler.stats.get_value("sentry/repeats") == 1
    reported = {(exception_types(e)[0], tags(e)["scrapy"]) for e in sentry_on.events()}
    assert reported == {
        ("ValueError", "spider_error"),
        ("KeyError", "spider_error"),
        ("TypeError", "item_error"),
    }
    assert {tags(e)["source"] for e in sentry_on.events()} == {"vestnik"}


# --- a real crawl in a subprocess -------------------------------------------------------


class BrokenPortal(FaultServer):
    """The fault server, where ``/article/blank-N`` is a page with nothing but a comment."""

    async def article(self, request: web.Request) -> web.StreamResponse:
        if request.match_info.get("n", "").startswith("blank"):
            return web.Response(text=BLANK_PAGE, content_type="text/html")
        return await super().article(request)


@pytest.fixture
def broken_portal() -> Iterator[BrokenPortal]:
    server = BrokenPortal().start()
    yield server
    server.stop()


@pytest.mark.redis
def test_a_crawl_reports_one_spider_error_event_and_no_retry_give_up(
    sentry_ingest: SentryIngest,
    broken_portal: BrokenPortal,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Two listings crash the spider's callback (one event), a feed answers 503 and a sitemap
    drops the connection (retried, given up: no event); the Redis password of the store,
    on the crawl's command line, is in no byte sent."""
    monkeypatch.setenv("SENTRY_DSN", sentry_ingest.dsn)
    monkeypatch.setenv("SENTRY_ENVIRONMENT", "test")
    listing = {"link_pattern": r"/article/\d+$"}
    source = {
        "name": "broken",
        "kind": "media",
        "domains": ["127.0.0.1"],
        "discovery": {
            "feeds": [broken_portal.url("/status/503")],
            "sitemaps": [broken_portal.url("/drop")],
            "listings": [
                {"url": broken_portal.url("/article/blank-1"), **listing},
                {"url": broken_portal.url("/article/blank-2"), **listing},
            ],
        },
    }
    sources = tmp_path / "sources.yaml"
    sources.write_text(yaml.safe_dump({"sources": [source]}), "utf-8")
    password = f"CANARY-REDIS-{uuid.uuid4().hex}"
    with running_redis_server(tmp_path / "redis", password=password) as redis:
        store_url = f"redis://:{password}@127.0.0.1:{redis.port}/0"
        stats = crawl_in_subprocess(
            ["broken"], store_url, sources_file=sources, settings=CRAWL_SETTINGS, timeout=90
        )["broken"]

    assert stats["finish_reason"] == "finished"
    assert stats["sentry/spider_errors"] == 2
    assert stats["sentry/events"] == 1
    assert stats["sentry/repeats"] == 1
    assert stats["retry/max_reached"] == 2  # the 503 feed and the dropped sitemap
    sentry_ingest.wait_for(lambda: len(sentry_ingest.events()) >= 1)
    (event,) = sentry_ingest.events()
    expected = {"source": "broken", "component": "crawl", "scrapy": "spider_error"}
    assert tags(event).items() >= expected.items()
    assert event["environment"] == "test"
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    assert any(frame["function"] == "parse_listing" for frame in frames)
    assert leaked(sentry_ingest.received(), [password]) == []
    assert event["extra"]["sys.argv"][0].endswith("crawler/run.py")  # scrubbed, not mangled


def test_a_scheduled_crawl_checks_in_and_a_failed_one_is_one_event(
    sentry_on: SentryIngest, portal: ReplayServer, tmp_path: Path
) -> None:
    # The service's crawl job (scheduler.jobs.crawl_source), as `presswatch run` calls it.
    init_sentry("service")
    sources = write_sources(tmp_path / "sources.yaml", portal.source_config(PORTAL))
    store_url = f"sqlite:///{tmp_path}/pw.db"
    ran = crawl_source(PORTAL, str(sources), settings=TEST_SETTINGS, store_url=store_url)
    failed = crawl_source("nowhere", str(sources), settings=TEST_SETTINGS, store_url=store_url)
    flush()
    assert ran["status"] == "ok"
    assert failed["status"] == "failed"

    sentry_on.wait_for(lambda: len(sentry_on.checkins()) == 4 and bool(sentry_on.events()))
    statuses: dict[str, list[str]] = {}
    for checkin in sentry_on.checkins():
        statuses.setdefault(checkin["monitor_slug"], []).append(checkin["status"])
    assert statuses == {
        f"crawl-{PORTAL}": ["in_progress", "ok"],
        "crawl-nowhere": ["in_progress", "error"],
    }
    (event,) = sentry_on.events()
    assert event["tags"]["source"] == "nowhere"
    assert event["tags"]["component"] == "service"
