"""The browser path: script-rendered portals crawled through the real Chromium, and the
limits that stop bad pages (a hang, 50 MB, a reach for another host) without stalling.

Crawls run in a subprocess (a Twisted reactor runs once per process) that is watched with
psutil, so that every Chromium it started is seen, and seen gone after it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit
from urllib.request import urlopen

import psutil
import pytest
from scrapy.crawler import Crawler
from scrapy.http import Request
from scrapy.settings import Settings
from scrapy.statscollectors import MemoryStatsCollector

from crawler.browser import (
    BrowserRequestMiddleware,
    EgressProxy,
    chromium_executable,
    forwarded_head,
    is_browser_service,
    proxy_target,
    request_refusal,
)
from crawler.config import ConfigError, Source, load_sources
from crawler.discovery import parse_json_api
from crawler.egress import EgressPolicy
from crawler.spiders.portal import KIND, PortalSpider
from pipelines.store import ItemQuery, open_store
from scheduler.replay import BROWSER_READY, ReplayServer
from tests.fixtures.browser_portal import (
    JS_ARTICLES,
    JS_PAGE_SIZE,
    JS_PORTAL,
    STATIC_TWIN,
    TrapServer,
)
from tests.test_crawl import TEST_SETTINGS, write_sources

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
CRAWL_LIMIT_S = 90
BROWSER_PROCESSES = ("chrom", "node")  # Chromium's processes, Playwright's driver
BROWSER_SETTINGS: dict[str, Any] = {
    **TEST_SETTINGS,
    "RETRY_TIMES": 1,
    "RETRY_BACKOFF_BASE": 0.1,
}


@dataclass
class WatchedCrawl:
    stats: dict[str, dict[str, Any]]
    log: str
    descendants: dict[int, tuple[str, float]]  # pid -> (name, create time) seen during it

    def chromium(self) -> list[int]:
        return [pid for pid, (name, _) in self.descendants.items() if "chrom" in name]

    def browsers_left(self) -> list[str]:
        """Chromium and Playwright driver (node) processes of the crawl still running."""
        alive = []
        for pid, (name, created) in self.descendants.items():
            if not name.startswith(BROWSER_PROCESSES):
                continue  # extraction workers end on their own schedule
            try:
                process = psutil.Process(pid)
                if process.create_time() == created and process.status() != "zombie":
                    alive.append(f"{pid} {name}")
            except psutil.NoSuchProcess:
                continue
        return alive


def watched_crawl(
    tmp_path: Path,
    configs: list[dict[str, Any]],
    settings: dict[str, Any] | None = None,
    on_poll: Callable[[psutil.Process], None] | None = None,
) -> WatchedCrawl:
    """Crawl `configs` into a fresh SQLite store in a subprocess, noting its descendants
    (and handing the process to `on_poll` ten times a second)."""
    sources = write_sources(tmp_path / "sources.yaml", *configs)
    command = [sys.executable, "-m", "crawler.run", "--sources", str(sources)]
    command += ["--store", f"sqlite:///{tmp_path}/pw.db"]
    for key, value in {**BROWSER_SETTINGS, **(settings or {})}.items():
        command.append(f"--set={key}={json.dumps(value)}")
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    descendants: dict[int, tuple[str, float]] = {}
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(command, cwd=REPO, stdout=stdout, stderr=stderr, text=True)
        watched = psutil.Process(process.pid)
        for _ in range(int(CRAWL_LIMIT_S / 0.1)):
            try:
                for child in watched.children(recursive=True):
                    descendants.setdefault(child.pid, (child.name(), child.create_time()))
                if on_poll is not None:
                    on_poll(watched)
            except psutil.NoSuchProcess:
                pass  # a child ended between listing and asking
            try:
                process.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            process.kill()
            process.wait()
            pytest.fail(f"the crawl did not end within {CRAWL_LIMIT_S} s")
    log = err.read_text()
    assert process.returncode == 0, log[-4000:]
    return WatchedCrawl(json.loads(out.read_text()), log, descendants)


def stored_items(tmp_path: Path, source: str) -> dict[str, dict[str, Any]]:
    store = open_store(f"sqlite:///{tmp_path}/pw.db")
    try:
        items = store.items(ItemQuery(source=source, limit=1000))
    finally:
        store.close()
    return {urlsplit(item["url"]).path: item for item in items}


# --- the browser path yields what the HTTP path gets from static pages ------------------------


def test_rendered_portal_gives_the_items_of_its_static_twin(
    js_portals: ReplayServer, tmp_path: Path
) -> None:
    # Without scripts the pages are empty shells: no link, no article text.
    base = js_portals.base_url(JS_PORTAL)
    article = js_portals.portals[JS_PORTAL].articles[0]
    with urlopen(base + article.path, timeout=10) as reply:  # noqa: S310
        assert article.paragraphs[0] not in reply.read().decode()
    with urlopen(base + "/news/", timeout=10) as reply:  # noqa: S310
        assert ".html" not in reply.read().decode()

    rendered = js_portals.source_config(JS_PORTAL)
    static = js_portals.source_config(STATIC_TWIN)
    # Same texts from two sources are duplicates to the pipeline; here both are kept.
    crawl = watched_crawl(tmp_path, [rendered, static], {"DEDUP_ENABLED": False})

    js, plain = crawl.stats[JS_PORTAL], crawl.stats[STATIC_TWIN]
    assert js["finish_reason"] == plain["finish_reason"] == "finished"
    assert js["store/new"] == plain["store/new"] == JS_ARTICLES
    assert js["discovery/listing_links"] == JS_ARTICLES  # all behind two "load more" clicks
    assert js["browser/load_more_rounds"] == 2
    assert js["playwright/page_count/closed"] == js["playwright/page_count"] == JS_ARTICLES + 1
    assert "browser/not_ready" not in js
    # the HTTP source of the same crawl never touched the browser
    assert not [key for key in plain if key.startswith(("browser/", "playwright/"))]

    got, expected = stored_items(tmp_path, JS_PORTAL), stored_items(tmp_path, STATIC_TWIN)
    assert sorted(got) == sorted(expected)
    for path, item in got.items():
        twin = expected[path]
        for field in ("title", "text", "lead", "published_at", "authors", "lang"):
            assert item[field] == twin[field], (path, field)

    assert crawl.chromium(), "no Chromium process was seen during the crawl"
    assert crawl.browsers_left() == []


# --- limits ---------------------------------------------------------------------------------


def test_bad_pages_are_stopped_counted_and_do_not_stall_the_crawl(
    trap_server: TrapServer, tmp_path: Path
) -> None:
    pages = [
        "/ok/1.html",
        "/hang.html",
        "/heavy.html",
        "/huge.html",
        "/escape.html",
        "/redirect-out.html",
        "/ok/2.html",
    ]
    listing = trap_server.url("/links?" + urlencode([("href", page) for page in pages]))
    config = {
        "name": "traps",
        "kind": "media",
        "domains": ["127.0.0.1"],
        "render": "browser",
        "discovery": {"listings": [{"url": listing, "link_pattern": r"\.html$"}]},
    }
    settings = {
        "RETRY_TIMES": 0,  # a timed-out page is retried like any other; once is enough here
        "BROWSER_PAGE_TIMEOUT": 6,  # generous: the machine is shared; only the hang may hit it
        # longer than the page limit, so that the watchdog is what stops the hang
        "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": 20_000,
        "BROWSER_MAX_PAGE_BYTES": 5 * MIB,
    }
    crawl = watched_crawl(tmp_path, [config], settings)
    stats = crawl.stats["traps"]

    assert stats["finish_reason"] == "finished"
    assert sorted(stored_items(tmp_path, "traps")) == ["/escape.html", "/ok/1.html", "/ok/2.html"]
    assert stats["browser/timeout"] == 1
    assert stats["browser/too_large"] == 2  # a 50 MB script, a 50 MB page
    # both cut off long before their ends: by the page's count, or on the wire by the proxy
    assert trap_server.streamed["/huge.html"] < 25 * MIB
    assert trap_server.streamed["/big"] < 25 * MIB
    assert stats["browser/blocked_requests"] >= 5  # img, css, script, iframe, fetch, ...

    assert stats["browser/skipped_resources"] == 1  # the image on the source
    # Playwright's routing does not see the 302's hop to the canary; the proxy refuses it
    assert stats["browser/blocked_connections"] >= 1
    assert stats["browser/blocked_navigation"] == 1  # and the page that ended there is dropped
    canary = trap_server.canary_server
    assert canary is not None
    assert canary.log == []
    assert stats["playwright/page_count/closed"] == stats["playwright/page_count"]
    assert crawl.chromium()
    assert crawl.browsers_left() == []


def test_a_killed_browser_is_restarted_and_no_page_is_lost(
    js_portals: ReplayServer, tmp_path: Path
) -> None:
    killed: list[str] = []

    def kill_the_browser_once_pages_render(crawl: psutil.Process) -> None:
        if killed:
            return
        chromium = [p for p in crawl.children(recursive=True) if p.name().startswith("chrom")]
        if any("--type=renderer" in p.cmdline() for p in chromium):
            main = next(
                p for p in chromium if not any(a.startswith("--type=") for a in p.cmdline())
            )
            main.kill()
            killed.append(f"{main.pid}")

    config = js_portals.source_config(JS_PORTAL, max_items=4)
    crawl = watched_crawl(tmp_path, [config], on_poll=kill_the_browser_once_pages_render)
    stats = crawl.stats[JS_PORTAL]
    assert killed
    assert stats["finish_reason"] == "finished"
    assert stats["browser/disconnected"] == 1
    assert stats["playwright/browser_count"] == 2  # launched again after the kill
    assert stats["store/new"] == 4  # the pages in flight were retried
    assert crawl.browsers_left() == []


@pytest.mark.parametrize(
    ("chromium", "why"),
    [
        ("/nonexistent/chromium", "not an executable file"),
        ("/bin/false", "Chromium could not be started"),
    ],
)
def test_a_missing_browser_ends_only_its_source(
    js_portals: ReplayServer, tmp_path: Path, chromium: str, why: str
) -> None:
    static = js_portals.source_config(STATIC_TWIN, max_items=3)
    # The JSON API behind the rendered listing, polled over plain HTTP, needs no browser.
    api = js_portals.base_url(JS_PORTAL) + "/api/listing?section=news&page={page}"
    json_api = {"url": api, "items_path": "items", "date_field": "published_at", "pages": 3}
    polled = js_portals.source_config(
        STATIC_TWIN, name="api", discovery={"json_api": [json_api]}, max_items=3
    )
    configs = [js_portals.source_config(JS_PORTAL), static, polled]
    crawl = watched_crawl(tmp_path, configs, {"BROWSER_EXECUTABLE": chromium})
    assert crawl.stats[JS_PORTAL]["finish_reason"] == "browser_unavailable"
    assert crawl.stats[JS_PORTAL]["browser/unavailable"] >= 1
    assert crawl.stats[JS_PORTAL].get("store/new", 0) == 0
    assert crawl.stats[STATIC_TWIN]["store/new"] == 3
    assert crawl.stats["api"]["discovery/json_api_links"] == JS_ARTICLES
    assert crawl.stats["api"]["portal/articles_requested"] == 3  # the newest, by their dates
    assert why in crawl.log
    assert "apt-get install chromium" in crawl.log  # the fix is named
    assert crawl.browsers_left() == []


# --- the filtering proxy, without a browser -------------------------------------------------


async def through(proxy: str, *lines: str) -> bytes:
    """Send a request head to the proxy (and on through a tunnel); all that comes back."""
    host, port = urlsplit(proxy).hostname, urlsplit(proxy).port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write("".join(line + "\r\n" for line in lines).encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


def test_the_proxy_checks_every_connection_and_cuts_long_answers(trap_server: TrapServer) -> None:
    canary = trap_server.canary_server
    assert canary is not None
    site, intranet = trap_server.base, canary.base
    site_host = urlsplit(site).netloc
    counted: Counter[str] = Counter()

    async def scenario() -> dict[str, bytes]:
        def on_site(url: str) -> bool:
            return urlsplit(url).hostname in {"127.0.0.1", "127.0.0.3", "localhost"}

        # 127.0.0.1 is "public" here; 127.0.0.3 and localhost's loopback stay forbidden
        policy = EgressPolicy.from_cidrs(["127.0.0.1/32"])
        proxy = EgressProxy(on_site, policy, MIB, lambda stat: counted.update([stat]))
        url = await proxy.start()
        get = "GET {} HTTP/1.1"
        answers = {
            "get": await through(url, get.format(f"{site}/ok/1.html"), f"Host: {site_host}", ""),
            "tunnel": await through(
                url,
                f"CONNECT {site_host} HTTP/1.1",
                "",
                "GET /ok/2.html HTTP/1.1",
                f"Host: {site_host}",
                "Connection: close",
                "",
            ),
            "private": await through(url, get.format(f"{intranet}/x"), "", ""),
            "big": await through(url, get.format(f"{site}/big?mb=20"), f"Host: {site_host}", ""),
        }
        proxy.policy = EgressPolicy()  # now no exception: localhost's address is forbidden
        answers["by_name"] = await through(url, f"CONNECT localhost:{canary.port} HTTP/1.1", "")
        proxy.allowed = lambda _url: False
        answers["offsite"] = await through(url, get.format(f"{site}/ok/3.html"), "", "")
        await proxy.close()
        return answers

    answers = asyncio.run(scenario())
    assert answers["get"].startswith(b"HTTP/1.1 200")
    assert b"1." in answers["get"]
    assert b"HTTP/1.1 200 Connection established" in answers["tunnel"]
    assert b"\r\n\r\nHTTP/1.1 200 OK" in answers["tunnel"]
    for refused in ("private", "by_name", "offsite"):
        assert answers[refused].startswith(b"HTTP/1.1 403"), refused
    assert b"localhost resolves to a loopback address" in answers["by_name"]
    assert canary.log == []
    assert len(answers["big"]) < 2 * MIB  # cut off past 1 MiB of 20
    assert counted == {"browser/blocked_connections": 3, "browser/cut_responses": 1}


# --- decisions, without a browser -----------------------------------------------------------


def on_source(url: str) -> bool:
    return urlsplit(url).hostname in {"gov.kz", "www.gov.kz"}


@pytest.mark.parametrize(
    ("url", "resource_type", "stat"),
    [
        ("https://www.gov.kz/api/news?page=2", "fetch", None),
        ("https://www.gov.kz/news/1", "document", None),
        ("https://www.gov.kz/app.js", "script", None),
        ("https://www.gov.kz/logo.png", "image", "skipped_resources"),
        ("https://www.gov.kz/font.woff2", "font", "skipped_resources"),
        ("https://cdn.tracker.example/t.js", "script", "blocked_requests"),
        ("http://169.254.169.254/latest/meta-data/", "fetch", "blocked_requests"),
        ("file:///etc/passwd", "document", "blocked_requests"),
        ("ws://www.gov.kz/socket", "websocket", "blocked_requests"),
    ],
)
def test_what_a_page_may_fetch(url: str, resource_type: str, stat: str | None) -> None:
    skip = frozenset({"image", "media", "font"})
    refusal = request_refusal(url, resource_type, on_source, skip)
    assert (refusal[0] if refusal else None) == stat


def test_only_listings_and_articles_of_a_browser_source_go_to_chromium() -> None:
    source = Source.model_validate(
        {
            "name": "gov-minfin",
            "kind": "official",
            "domains": ["gov.kz"],
            "render": "browser",
            "article_wait_for": "article p",
            "discovery": {
                "feeds": ["https://www.gov.kz/rss"],
                "listings": [
                    {
                        "url": "https://www.gov.kz/news",
                        "link_pattern": "/details/",
                        "wait_for": ".news a",
                        "load_more": {"click": "button.more"},
                    }
                ],
            },
        }
    )
    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    crawler = Crawler(PortalSpider, settings)
    crawler.spider = PortalSpider.from_crawler(crawler, source=source)
    crawler.stats = MemoryStatsCollector(crawler)
    handlers = crawler.settings.getdict("DOWNLOAD_HANDLERS")
    assert handlers["http"] == handlers["https"] == "crawler.browser.BrowserDownloadHandler"
    assert crawler.settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS")["args"][0] == "--no-sandbox"
    middleware = BrowserRequestMiddleware.from_crawler(crawler)

    validators = {"If-None-Match": '"abc"', "If-Modified-Since": "Mon, 18 Nov 2019 12:00:00 GMT"}
    meta = {KIND: "listing", "presswatch_listing": 0}
    listing = Request("https://www.gov.kz/news", meta=meta, headers=validators)
    article = Request("https://www.gov.kz/details/1", meta={KIND: "article"})
    feed = Request("https://www.gov.kz/rss", meta={KIND: "feed"})
    for request in (listing, article, feed):
        middleware.process_request(request)
    assert listing.meta["playwright"] is True
    assert listing.meta["playwright_context"] == "gov-minfin"
    steps = [(m.method.__name__, m.args[0]) for m in listing.meta["playwright_page_methods"]]
    load_more = source.discovery.listings[0].load_more
    assert steps == [("wait_ready", ".news a"), ("load_more", load_more)]
    # a rendered listing's shell may not change while its content does: never a 304
    assert not set(validators) & {k.decode() for k in listing.headers}
    assert [m.args for m in article.meta["playwright_page_methods"]] == [("article p",)]
    assert "playwright" not in feed.meta  # feeds and sitemaps stay on plain HTTP
    assert crawler.stats.get_value("browser/pages") == 2


@pytest.mark.parametrize(
    ("method", "target", "expected"),
    [
        ("GET", "http://gov.kz/news?id=1", ("http", "gov.kz", 80, "/news?id=1")),
        ("GET", "http://127.0.0.1:8080", ("http", "127.0.0.1", 8080, "/")),
        ("CONNECT", "www.gov.kz:443", ("https", "www.gov.kz", 443, "")),
        ("CONNECT", "[::1]:443", ("https", "::1", 443, "")),
        ("GET", "/news", None),  # origin-form: not a proxy request
        ("GET", "ftp://gov.kz/x", None),
        ("CONNECT", "gov.kz", None),
    ],
)
def test_proxy_targets(method: str, target: str, expected: object) -> None:
    assert proxy_target(method, target) == expected


def test_forwarded_head_is_origin_form_and_closes() -> None:
    lines = ["Host: gov.kz", "Proxy-Connection: keep-alive", "Connection: keep-alive", "A: b"]
    head = forwarded_head("GET", "/news", "HTTP/1.1", lines)
    assert head == b"GET /news HTTP/1.1\r\nHost: gov.kz\r\nA: b\r\nConnection: close\r\n\r\n"
    assert is_browser_service("update.googleapis.com")
    assert not is_browser_service("gov.kz")


def test_chromium_is_found_or_named(tmp_path: Path) -> None:
    fake = tmp_path / "chrome"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert chromium_executable(str(fake)) == str(fake)
    assert chromium_executable("", system=str(fake)) == str(fake)
    assert chromium_executable("", system=str(tmp_path / "none")) is None  # Playwright's own
    with pytest.raises(RuntimeError, match="PRESSWATCH_CHROMIUM"):
        chromium_executable(str(tmp_path / "none"))


@pytest.mark.parametrize(
    ("listing", "source", "message"),
    [
        ({"load_more": {"click": "button.more"}}, {}, "need render: browser"),
        ({}, {"wait_for": ".news a"}, "need render: browser"),
        ({"load_more": {"until_links": 50}}, {"render": "browser"}, "give click"),
        ({"load_more": {"scroll": True, "max_rounds": 0}}, {"render": "browser"}, "max_rounds"),
    ],
)
def test_browser_options_are_validated(
    tmp_path: Path, listing: dict[str, Any], source: dict[str, Any], message: str
) -> None:
    config = {
        "name": "gov-minfin",
        "kind": "official",
        "domains": ["gov.kz"],
        "discovery": {
            "listings": [{"url": "https://www.gov.kz/news", "link_pattern": "/details/", **listing}]
        },
        **source,
    }
    path = write_sources(tmp_path / "sources.yaml", config)
    with pytest.raises(ConfigError, match=message) as refused:
        load_sources(path)
    assert str(refused.value).startswith(f"{path}:")


def test_json_api_pages_need_a_placeholder(tmp_path: Path) -> None:
    api = {"url": "https://www.gov.kz/api/news?page=1", "pages": 3}
    config = {"name": "gov", "kind": "official", "domains": ["gov.kz"]}
    path = write_sources(tmp_path / "s.yaml", {**config, "discovery": {"json_api": [api]}})
    with pytest.raises(ConfigError, match=r"needs \{page\} in url"):
        load_sources(path)


def test_json_api_answers_are_read_as_links(js_portals: ReplayServer) -> None:
    api = js_portals.base_url(JS_PORTAL) + "/api/listing?section=news&page=1"
    with urlopen(api, timeout=10) as reply:  # noqa: S310
        body = reply.read()
    found = parse_json_api(body, api, "items", "url", "published_at")
    articles = js_portals.portals[JS_PORTAL].articles[:JS_PAGE_SIZE]
    assert [f.url for f in found] == [js_portals.base_url(JS_PORTAL) + a.path for a in articles]
    assert [f.published_at for f in found] == [a.published_at for a in articles]


@pytest.mark.parametrize(
    ("body", "items_path", "url_field", "date_field", "expected"),
    [
        (b'{"data": {"news": [{"link": {"href": "/n/1"}, "ts": 1574078400}]}}',
         "data.news", "link.href", "ts", [("https://gov.kz/n/1", "2019-11-18T12:00:00+00:00")]),
        (b'[{"url": "https://gov.kz/n/2", "date": "2019-11-18T18:00:00+06:00"}]',
         "", "url", "date", [("https://gov.kz/n/2", "2019-11-18T18:00:00+06:00")]),
        (b'{"items": [{"url": ""}, {"id": 3}, "junk", {"url": "/n/4"}]}',
         "items", "url", None, [("https://gov.kz/n/4", None)]),
        (b'{"items": {"not": "a list"}}', "items", "url", None, []),
        (b"<html>rate limited</html>", "items", "url", None, []),
    ],
)  # fmt: skip
def test_json_api_parsing(
    body: bytes,
    items_path: str,
    url_field: str,
    date_field: str | None,
    expected: list[tuple[str, str | None]],
) -> None:
    found = parse_json_api(body, "https://gov.kz/api/news", items_path, url_field, date_field)
    assert [(f.url, f.published_at) for f in found] == expected


def test_replay_source_config_of_a_rendered_portal(js_portals: ReplayServer) -> None:
    config = js_portals.source_config(JS_PORTAL)
    assert config["render"] == "browser"
    assert config["article_wait_for"] == BROWSER_READY["article"]
    listing = config["discovery"]["listings"][0]
    assert listing["load_more"]["click"] == BROWSER_READY["load_more"]
    assert "next_pattern" not in listing
