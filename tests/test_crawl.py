"""End to end: crawl the replay portal into SQLite, then crawl it again and fetch no article.

Crawls run in a subprocess (`python -m crawler.run`, `scrapy crawl`): a Twisted reactor
cannot be restarted inside the test process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psutil
import pytest
import yaml
from scrapy.utils.test import get_crawler

from crawler.config import Source
from crawler.discovery import Found
from crawler.items import item_id
from crawler.pool import ExtractionPool, ParseOptions
from crawler.spiders.portal import PortalSpider, declared_charset
from crawler.urls import canonical_url
from pipelines.store import ItemQuery, open_store
from scheduler.replay import ReplayPortal, ReplayServer, generate_articles, render_article
from tests.fixtures.faults import FaultServer
from tests.fixtures.portal import PORTAL, PORTAL_ARTICLES
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[1]
# Loopback is private, so the egress policy has to be told; no throttling on a local site.
TEST_SETTINGS: dict[str, Any] = {
    "EGRESS_ALLOW_NETS": ["127.0.0.0/8"],
    "AUTOTHROTTLE_ENABLED": False,
    "DOWNLOAD_DELAY": 0,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
    "LOG_LEVEL": "INFO",
    "PRESSWATCH_PARSE_WORKERS": 1,
    "CLOSESPIDER_TIMEOUT": 60,
}
FURNITURE = ("Читайте также", "Оставить комментарий", "Поделиться", "Все права защищены")


def write_sources(path: Path, *configs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"sources": list(configs)}, allow_unicode=True), "utf-8")
    return path


def run_crawl(sources: Path, store_url: str, *names: str, **overrides: Any) -> dict[str, Any]:
    chosen = {**TEST_SETTINGS, **overrides}
    settings = [f"--set={key}={json.dumps(value)}" for key, value in chosen.items()]
    command = [sys.executable, "-m", "crawler.run", "--sources", str(sources)]
    command += ["--store", store_url, *settings, *names]
    done = subprocess.run(
        command, check=False, cwd=REPO, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


def kinds(log: list[dict[str, Any]]) -> Counter[tuple[str, int]]:
    return Counter((entry["kind"], entry["status"]) for entry in log)


def test_crawl_then_recrawl_fetches_no_article_again(portal: ReplayServer, tmp_path: Path) -> None:
    sources = write_sources(tmp_path / "sources.yaml", portal.source_config(PORTAL))
    store_url = f"sqlite:///{tmp_path}/pw.db"

    stats = run_crawl(sources, store_url)[PORTAL]
    assert stats["finish_reason"] == "finished"
    assert stats["store/new"] == PORTAL_ARTICLES
    first = kinds(portal.requests(PORTAL))
    assert first[("article", 200)] == PORTAL_ARTICLES  # each once, though found three ways
    assert first[("feed", 200)] == 1
    assert first[("sitemap", 200)] == 3  # index, gzipped sitemap, news sitemap
    assert first[("listing", 200)] == 3  # pages 1-3 of five articles each

    store = open_store(store_url)
    try:
        items = store.items(ItemQuery(source=PORTAL, limit=100))
    finally:
        store.close()
    assert len(items) == PORTAL_ARTICLES
    spec = portal.portals[PORTAL]
    expected = {item_id(canonical_url(portal.base_url(PORTAL) + a.path)): a for a in spec.articles}
    for item in items:
        article = expected[item["id"]]
        assert item["title"] == article.title
        assert item["text"].split("\n")[0] == article.paragraphs[0]
        assert len(item["text"].split("\n")) == len(article.paragraphs)
        assert not any(word in item["text"] for word in FURNITURE)
        published = datetime.fromisoformat(item["published_at"])
        assert published.utcoffset() is not None
        assert published == datetime.fromisoformat(article.published_at)
        assert item["lang"] == "ru"
        assert item["fetched_at"]
        assert item["content_hash"]

    seen = len(portal.requests(PORTAL))
    again = run_crawl(sources, store_url)[PORTAL]
    second = kinds(portal.requests(PORTAL)[seen:])
    assert sum(n for (kind, _), n in second.items() if kind == "article") == 0
    assert second[("feed", 304)] == 1
    assert second[("sitemap", 304)] == 1  # the index did not change: its children are not asked
    assert second[("listing", 304)] == 1
    assert again.get("store/new", 0) == 0
    assert again["incremental/not_modified"] == 3


def test_known_articles_are_skipped_with_one_store_lookup(
    portal: ReplayServer, tmp_path: Path
) -> None:
    """With no validators the feed is fetched in full, and its stored articles are skipped
    after one store round trip for the whole feed."""
    feed = portal.base_url(PORTAL) + "/rss.xml"
    config = portal.source_config(PORTAL, discovery={"feeds": [feed]})
    sources = write_sources(tmp_path / "sources.yaml", config)
    store_url = f"sqlite:///{tmp_path}/pw.db"
    run_crawl(sources, store_url)
    store = open_store(store_url)
    try:
        newest = store.items(ItemQuery(limit=1))[0]
        # the store forgets the feed's validators and the newest item: as if it were new
        store.set_validators(feed, {})
        assert store.known_ids([newest["id"]]) == {newest["id"]}
    finally:
        store.close()
    seen = len(portal.requests(PORTAL))
    stats = run_crawl(sources, store_url)[PORTAL]
    second = kinds(portal.requests(PORTAL)[seen:])
    assert second[("feed", 200)] == 1
    assert sum(n for (kind, _), n in second.items() if kind == "article") == 0
    assert stats["incremental/skipped"] == PORTAL_ARTICLES
    assert stats["incremental/lookups"] == 1  # the whole feed in one round trip


def test_a_learned_template_gives_the_items_trafilatura_gives(tmp_path: Path) -> None:
    """Most pages are read through the learned template, and every item comes out as a
    crawl that runs trafilatura on each page stores it."""
    spec = ReplayPortal(name="vestnik", title="Вестник", articles=generate_articles(40, seed=5))
    texts = {}
    with ReplayServer([spec]) as server:
        sources = write_sources(tmp_path / "sources.yaml", server.source_config("vestnik"))
        for learn in (True, False):
            store_url = f"sqlite:///{tmp_path}/learn-{learn}.db"
            # One page at a time, 50 ms apart: learning needs three parsed pages before
            # the rest are fetched, which a crawl at full speed on loopback does not
            # promise (the workers may still be parsing when the last page arrives).
            stats = run_crawl(
                sources,
                store_url,
                PRESSWATCH_LEARN_TEMPLATES=learn,
                CONCURRENT_REQUESTS_PER_DOMAIN=1,
                DOWNLOAD_DELAY=0.05,
            )["vestnik"]
            assert stats["store/new"] == 40
            if learn:
                assert stats["template/learned"] == 1
                # the pages parsed before the template was learned went to trafilatura
                assert stats["template/pages"] >= 1  # 35 of 40 in a run on a loaded machine
                assert "template/dropped" not in stats
            else:
                assert not any(key.startswith("template/") for key in stats)
            store = open_store(store_url)
            try:
                items = store.items(ItemQuery(limit=100))
            finally:
                store.close()
            texts[learn] = {
                item["id"]: (item["title"], item["text"], item["lead"]) for item in items
            }
    assert texts[True] == texts[False]


def test_max_items_caps_the_articles_fetched(portal: ReplayServer, tmp_path: Path) -> None:
    sources = write_sources(tmp_path / "s.yaml", portal.source_config(PORTAL, max_items=4))
    stats = run_crawl(sources, f"sqlite:///{tmp_path}/pw.db")[PORTAL]
    assert kinds(portal.requests(PORTAL))[("article", 200)] == 4
    assert stats["store/new"] == 4


@pytest.mark.timeout(60)
def test_a_catastrophic_link_pattern_does_not_stall_the_crawl(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """Under Python's re, `(a+)+$` backtracks for days on a long `https://x.kz/aaa…!` link,
    holding the GIL so that neither CLOSESPIDER_TIMEOUT nor SIGTERM gets a turn. On RE2 the
    listing is read at once: the crawl finishes by itself, not by its time limit."""
    trap = [f"https://x.kz/{'a' * length}!" for length in (40, 100, 1000)]
    wanted = fault_server.url("/article/aaaa")
    listing = fault_server.url("/links?" + urlencode([("href", h) for h in [*trap, wanted]]))
    source = {
        "name": "trap",
        "kind": "media",
        "domains": ["127.0.0.1"],
        "discovery": {"listings": [{"url": listing, "link_pattern": "(a+)+$"}]},
    }
    sources = write_sources(tmp_path / "sources.yaml", source)
    stats = run_crawl(sources, f"sqlite:///{tmp_path}/pw.db")["trap"]
    assert stats["finish_reason"] == "finished"
    assert stats["discovery/listing_links"] == 1  # the one link that ends in a's
    assert len(fault_server.hits("/article/aaaa")) == 1


def test_scrapy_crawl_portal_from_the_repo_root(portal: ReplayServer, tmp_path: Path) -> None:
    sources = write_sources(tmp_path / "sources.yaml", portal.source_config(PORTAL))
    command = ["scrapy", "crawl", "portal", "-a", f"source={PORTAL}"]
    for key, value in {
        **TEST_SETTINGS,
        "PRESSWATCH_SOURCES": str(sources),
        "PRESSWATCH_STORE": f"sqlite:///{tmp_path}/pw.db",
    }.items():
        # -s values are strings; Scrapy splits a list setting on commas
        text = ",".join(value) if isinstance(value, list) else str(value)
        command += ["-s", f"{key}={text}"]
    scrapy = Path(sys.executable).with_name("scrapy")
    command[0] = str(scrapy)
    done = subprocess.run(
        command, check=False, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "'store/new': 12" in done.stderr
    assert kinds(portal.requests(PORTAL))[("article", 200)] == PORTAL_ARTICLES


# --- the spider's own decisions, without a reactor ------------------------------------------


def portal_spider(**overrides: Any) -> PortalSpider:
    config = {
        "name": "vestnik",
        "kind": "media",
        "domains": ["vestnik.kz"],
        "discovery": {"feeds": ["https://feeds.vestnik.kz/rss.xml"]},
        "max_items": 3,
    }
    source = Source.model_validate(config | overrides)
    return PortalSpider.from_crawler(get_crawler(PortalSpider), source=source)


def test_article_requests_stay_on_the_source_and_under_max_items() -> None:
    spider = portal_spider()
    found = [
        Found("https://vestnik.kz/news/1.html", "2019-11-18T10:00:00+06:00"),
        Found("https://www.vestnik.kz/news/1.html?utm_source=rss"),  # the same article
        Found("https://evil.test/news/2.html"),  # another host
        Found("https://m.vestnik.kz/news/3.html", "2019-11-18T12:00:00+06:00"),
        Found("https://feeds.vestnik.kz/news/4.html"),  # a discovery host is allowed
        Found("https://vestnik.kz/news/5.html"),
        Found("file:///etc/passwd"),
    ]
    requests = list(spider.article_requests(found))
    assert [r.url for r in requests] == [
        "https://m.vestnik.kz/news/3.html",  # newest dated first
        "https://vestnik.kz/news/1.html",
        "https://feeds.vestnik.kz/news/4.html",
    ]
    batch = requests[0].meta["presswatch_batch"]
    assert all(r.meta["presswatch_batch"] is batch for r in requests)
    assert {r.meta["presswatch_kind"] for r in requests} == {"article"}
    assert requests[0].meta["presswatch_found_date"] == "2019-11-18T12:00:00+06:00"
    assert list(spider.article_requests(found)) == []  # nothing twice in one run
    assert spider.crawler.stats is not None
    assert spider.crawler.stats.get_value("portal/offsite") == 4  # two per pass
    assert spider.crawler.stats.get_value("portal/over_limit") >= 1


def test_start_asks_every_discovery_url_with_its_kind() -> None:
    spider = portal_spider(
        discovery={
            "feeds": ["https://vestnik.kz/rss.xml"],
            "sitemaps": ["https://vestnik.kz/sitemap.xml"],
            "listings": [{"url": "https://vestnik.kz/news/", "link_pattern": r"\.html$"}],
        }
    )

    async def collect() -> list[Any]:
        return [request async for request in spider.start()]

    requests = asyncio.run(collect())
    assert [(r.url, r.meta["presswatch_kind"]) for r in requests] == [
        ("https://vestnik.kz/rss.xml", "feed"),
        ("https://vestnik.kz/sitemap.xml", "sitemap"),
        ("https://vestnik.kz/news/", "listing"),
    ]


@pytest.mark.parametrize(
    ("header", "charset"),
    [
        (b"text/html; charset=windows-1251", "windows-1251"),
        (b'text/html; Charset="UTF-8"', "UTF-8"),
        (b"text/html", None),
        (None, None),
    ],
)
def test_declared_charset(header: bytes | None, charset: str | None) -> None:
    assert declared_charset(header) == charset


def test_the_pool_parses_in_a_worker_and_replaces_a_dead_one() -> None:
    articles = generate_articles(2, seed=5)
    spec = ReplayPortal("p", "Портал", articles)
    body = render_article(spec, articles[0], articles[1:]).encode()
    url = "http://portal.test" + articles[0].path
    pool = ExtractionPool(workers=1)

    async def scenario() -> None:
        page = await pool.parse(body, "utf-8", url, ParseOptions())
        assert page.title == articles[0].title
        assert page.encoding == "utf-8"
        # a worker that dies holding a page fails that page, and only that page
        worker = pool._live[0].process
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGSTOP)  # it cannot answer now
        held = asyncio.ensure_future(pool.parse(body, "utf-8", url, ParseOptions()))
        await asyncio.sleep(0.2)
        worker.kill()
        with pytest.raises(BrokenProcessPool):
            await held
        # the next page starts a fresh worker; so does a page sent to a worker that died idle
        assert (await pool.parse(body, "utf-8", url, ParseOptions())).title == page.title
        pool._live[0].process.kill()
        pool._live[0].process.join()
        assert (await pool.parse(body, "utf-8", url, ParseOptions())).title == page.title

    try:
        asyncio.run(scenario())
    finally:
        pool.shutdown()


PARENT_SCRIPT = """
import json, sys
from pathlib import Path
from crawler.run import crawl_in_subprocess
settings = json.loads(sys.argv[3])
crawl_in_subprocess(["slow"], sys.argv[2], sources_file=Path(sys.argv[1]), settings=settings)
"""


def test_a_crawl_stops_when_the_process_that_started_it_is_killed(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    # A scheduler killed with SIGKILL must not leave its crawl running beside the crawl of
    # the scheduler that takes over; nor may the store URL (a Redis password) sit on the
    # crawl's command line for `ps` to show.
    sources = write_sources(
        tmp_path / "sources.yaml",
        {"name": "slow", "kind": "media", "domains": ["127.0.0.1"],
         "discovery": {"feeds": [fault_server.url("/delay?n=100&b=1")]}},
    )  # fmt: skip
    store_url = f"sqlite:///{tmp_path}/CANARY-parent.db"
    settings = json.dumps({**TEST_SETTINGS, "DOWNLOAD_TIMEOUT": 100})
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT_SCRIPT, str(sources), store_url, settings], cwd=REPO
    )
    try:
        crawl = wait_for(lambda: crawl_child(parent.pid), "the crawl to start")
        assert not any("CANARY-parent" in arg for arg in crawl.cmdline())
        wait_for(lambda: fault_server.hits("/delay"), "the crawl to fetch the slow feed")
        helpers = crawl.children(recursive=True)  # the extraction pool, if it started
        parent.kill()
        parent.wait(timeout=10)
        _, alive = psutil.wait_procs([crawl, *helpers], timeout=30)
        assert not alive, (
            f"outlived the process that started the crawl: {[(p, p.cmdline()) for p in alive]}"
        )
    finally:
        parent.kill()


def crawl_child(pid: int) -> psutil.Process | None:
    children = psutil.Process(pid).children()
    return next((c for c in children if "crawler.run" in " ".join(c.cmdline())), None)
