"""The crawler's safety defaults (RELIABILITY.md §4) are what Scrapy actually runs with."""

from __future__ import annotations

import pytest
from scrapy.settings import Settings, default_settings
from scrapy.utils.misc import load_object
from scrapy.utils.test import get_crawler

from crawler import settings as project_settings
from crawler.stats import MemoryStats


@pytest.fixture
def settings() -> Settings:
    loaded = Settings()
    loaded.setmodule(project_settings, priority="project")
    return loaded


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BOT_NAME", "presswatch"),
        ("SPIDER_MODULES", ["crawler.spiders"]),
        ("ROBOTSTXT_OBEY", True),
        ("DOWNLOAD_TIMEOUT", 30),
        ("DNS_TIMEOUT", 10),
        ("DOWNLOAD_MAXSIZE", 10 * 1024 * 1024),
        ("DOWNLOAD_WARNSIZE", 2 * 1024 * 1024),
        ("DOWNLOAD_FAIL_ON_DATALOSS", True),
        ("DOWNLOAD_VERIFY_CERTIFICATES", True),
        ("RETRY_ENABLED", True),
        ("RETRY_TIMES", 3),
        ("RETRY_GIVE_UP_LOG_LEVEL", "WARNING"),
        ("REDIRECT_MAX_TIMES", 5),
        ("TELNETCONSOLE_ENABLED", False),
        ("REMOTE_CONTROL_ENABLED", False),
        ("AUTOTHROTTLE_ENABLED", True),
        ("EGRESS_ENABLED", True),
        ("EGRESS_ALLOW_NETS", []),
        ("TWISTED_DNS_RESOLVER", "crawler.egress.EgressFilteringResolver"),
    ],
)
def test_safety_default(settings: Settings, name: str, expected: object) -> None:
    assert settings[name] == expected


def test_every_setting_we_change_exists_in_scrapy() -> None:
    # A misspelt Scrapy setting is silently ignored; ours carry our own prefixes.
    ours = ("EGRESS_", "ROBOTSTXT_MAX_BYTES", "RETRY_BACKOFF_", "RETRY_AFTER_MAX", "PRESSWATCH_")
    ours += ("CLEAN_", "DEDUP_", "SYNDICATION_", "STORE_", "INCREMENTAL_")
    ours += ("BROWSER_", "PLAYWRIGHT_")  # crawler/browser.py's, and scrapy-playwright's
    for name in dir(project_settings):
        if name.isupper() and not name.startswith(ours):
            assert hasattr(default_settings, name), f"{name} is not a Scrapy setting"


def test_limits_are_sane(settings: Settings) -> None:
    assert 0 < settings.getint("METAREFRESH_MAXDELAY") <= 10
    assert 1 <= settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN") <= 4
    # Scrapy 2.19 enforces the per-domain limit under asyncio only with a non-zero delay.
    assert settings.getfloat("DOWNLOAD_DELAY") > 0
    assert 0 < settings.getfloat("CLOSESPIDER_TIMEOUT") <= 4 * 3600
    assert 0 < settings.getint("MEMUSAGE_LIMIT_MB") <= 2048
    assert 0 < settings.getfloat("RETRY_AFTER_MAX") <= 300
    assert settings.getint("ROBOTSTXT_MAX_BYTES") >= 500 * 1024


def test_user_agent_names_a_contact(settings: Settings) -> None:
    assert settings["USER_AGENT"].startswith("Presswatch/")
    assert "(+https://" in settings["USER_AGENT"]


def test_no_local_or_legacy_schemes(settings: Settings) -> None:
    handlers = settings.getdict("DOWNLOAD_HANDLERS")
    for scheme in ("file", "data", "ftp", "s3"):
        assert handlers[scheme] is None


def test_our_middlewares_replace_the_stock_ones(settings: Settings) -> None:
    enabled = {
        path: order
        for path, order in settings.get_component_priority_dict_with_base(
            "DOWNLOADER_MIDDLEWARES"
        ).items()
        if order is not None
    }
    assert "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware" not in enabled
    assert "scrapy.downloadermiddlewares.retry.RetryMiddleware" not in enabled
    # Egress runs first, so a forbidden host is not even asked for its robots.txt.
    assert (
        enabled["crawler.egress.EgressMiddleware"]
        < enabled["crawler.robots.FailClosedRobotsTxtMiddleware"]
    )
    assert "crawler.retry.BackoffRetryMiddleware" in enabled
    for path in enabled:
        load_object(path)


def test_retry_exceptions_keep_scrapys_and_add_the_browsers(settings: Settings) -> None:
    ours = {load_object(path) for path in settings.getlist("RETRY_EXCEPTIONS")}
    stock = {
        load_object(path) if isinstance(path, str) else path
        for path in default_settings.RETRY_EXCEPTIONS
    }
    assert stock <= ours
    assert load_object("playwright.async_api.Error") in ours


def test_the_stats_collector_counts_as_scrapys_does_without_its_per_read_check() -> None:
    stats = get_crawler(settings_dict={"STATS_CLASS": project_settings.STATS_CLASS}).stats
    assert isinstance(stats, MemoryStats)
    stats.inc_value("pages")
    stats.inc_value("pages", 2)
    stats.max_value("largest", 5)
    stats.max_value("largest", 3)
    assert stats.get_stats() == {"pages": 3, "largest": 5}
    assert type(stats).__getattribute__ is object.__getattribute__
