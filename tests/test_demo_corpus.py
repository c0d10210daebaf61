"""The bundled demo corpus: it loads, its stories hold together, and its replay serves it."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from urllib.request import urlopen

import pytest
from rich.console import Console

from crawler.discovery import parse_feed, parse_listing, parse_sitemap
from crawler.run import crawl_command
from scheduler.demo import (
    ARTICLES_FILE,
    DEMO_CRAWL_SETTINGS,
    DemoResult,
    demo_sources,
    load_articles,
    load_corpus,
    load_portals,
    load_stories,
    serving,
    showcase_table,
    summary_table,
    write_sources_file,
)

if TYPE_CHECKING:
    from crawler.config import Source

REQUIRED_PORTALS = {
    "primeminister", "caravan", "zakon", "zakon-kaz", "nur", "tengrinews",
    "interfax", "interfax-russia", "interfax-ua", "ria",
}  # fmt: skip


@pytest.fixture(scope="module")
def articles() -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in load_articles()}


@pytest.fixture(scope="module")
def stories() -> dict[str, dict[str, Any]]:
    return load_stories()


@pytest.fixture(scope="module")
def served():
    with serving(load_corpus()) as running:
        yield running


def fetch(url: str) -> tuple[int, bytes]:
    with urlopen(url, timeout=10) as reply:  # noqa: S310 (loopback replay server)
        return reply.status, reply.read()


# --- the corpus as data -------------------------------------------------------------------


def test_corpus_is_small_and_loads(articles):
    assert ARTICLES_FILE.stat().st_size < 1_000_000
    portals = load_corpus()
    assert sum(len(p.articles) for p in portals) == len(articles) >= 40
    assert {p.name for p in portals} >= REQUIRED_PORTALS
    assert all(p.articles for p in portals)


def test_every_article_is_complete(articles):
    for article_id, article in articles.items():
        assert article_id == f"{article['portal']}/{article['slug']}"
        assert re.fullmatch(r"[\w-]+", article["slug"]), article_id
        assert article["title"], article_id
        assert article["paragraphs"], article_id
        assert datetime.fromisoformat(article["published_at"]).utcoffset() is not None
        assert article["lang"] in ("ru", "kk")
        assert article["origin"], "every document says where it came from"


def test_readme_says_where_every_article_came_from(articles):
    readme = (ARTICLES_FILE.parent / "README.md").read_text(encoding="utf-8")
    for article_id, article in articles.items():
        assert f"`{article_id}`" in readme
        assert article["origin"] in readme


def test_constructed_articles_live_on_invented_portals(articles):
    invented = {p.name for p in load_portals() if p.constructed}
    assert invented == {a["portal"] for a in articles.values() if a["constructed"]}
    for portal in load_portals():
        assert all(d.endswith(".example") for d in portal.domains) == portal.constructed


def test_stories_refer_to_existing_articles(articles, stories):
    seen: set[str] = set()
    for name, story in stories.items():
        members = story["members"]
        assert len(members) >= 2, name
        assert story["note"], name
        assert set(members) <= set(articles), name
        assert not seen & set(members), f"{name}: an article in two stories"
        seen |= set(members)
        if "original" in story:
            assert story["original"] in members


def test_kazakh_twins_are_grouped_with_russian_texts(articles, stories):
    bilingual = [
        s for s in stories.values() if {articles[m]["lang"] for m in s["members"]} == {"ru", "kk"}
    ]
    assert len(bilingual) >= 5


def test_official_release_and_its_copies(articles, stories):
    story = stories["baikonur-baiterek-release"]
    original = articles[story["original"]]
    assert original["portal"] == "primeminister"
    official = {p.name for p in load_portals() if p.kind == "official"}
    assert original["portal"] in official
    text = " ".join(original["paragraphs"])
    assert "Байконур" in text
    assert "Байтерек" in text
    assert "Caravan" not in text, "the release carries no copy's attribution"

    by_portal = {articles[m]["portal"]: articles[m] for m in story["members"]}
    copies = {portal: " ".join(a["paragraphs"]) for portal, a in by_portal.items()}
    assert "со ссылкой на пресс-службу" in copies["caravan"]
    assert "со ссылкой на пресс-службу" in copies["steppe"]
    assert "ссылкой" not in copies["aqsu"], "one copy cites no one"
    released = datetime.fromisoformat(original["published_at"])
    for portal in ("caravan", "steppe", "aqsu"):
        assert datetime.fromisoformat(by_portal[portal]["published_at"]) > released


# --- sources and serving ------------------------------------------------------------------


def test_demo_sources_are_valid_and_use_every_discovery_path(served, tmp_path):
    server, sources, _ = served
    assert {s.name for s in sources} == {p.name for p in load_portals()}
    again = write_sources_file(demo_sources(server), tmp_path / "sources.yaml")
    assert [s.name for s in again] == [s.name for s in sources]
    by_name = {s.name: s for s in sources}
    primeminister = by_name["primeminister"]
    assert primeminister.kind == "official"
    assert "primeminister.kz" in primeminister.domains
    assert "пресс-служба Премьер-министра РК" in primeminister.aliases
    assert {"official", "agency", "media"} == {s.kind for s in sources}
    ways = [
        tuple(k for k in ("feeds", "sitemaps", "listings") if getattr(s.discovery, k))
        for s in sources
    ]
    assert all(len(way) == 1 for way in ways), "each demo source has one way in"
    assert {w[0] for w in ways} == {"feeds", "sitemaps", "listings"}


def discovered_urls(source: Source) -> set[str]:
    """Every article URL the source's discovery reaches, read with the crawler's parsers."""
    found: set[str] = set()
    for feed in source.discovery.feeds:
        found |= {f.url for f in parse_feed(fetch(feed)[1], feed)}
    pending = list(source.discovery.sitemaps)
    while pending:
        url = pending.pop()
        links = parse_sitemap(fetch(url)[1], url)
        pending += links.sitemaps
        found |= {f.url for f in links.articles}
    for listing in source.discovery.listings:
        url: str | None = listing.url
        for _ in range(listing.pages):
            if url is None:
                break
            links = parse_listing(fetch(url)[1], url, listing.link_pattern, listing.next_pattern)
            found |= {f.url for f in links.articles}
            url = links.next_page
    return found


def article_markup(base: str, path: str, render: str) -> str:
    """What a reader sees of an article: the page, or for a browser-rendered portal the
    JSON its script fills the page shell with."""
    if render == "browser":
        reply = json.loads(fetch(f"{base}/api/article?path={quote(path)}")[1])
        return reply["title"] + reply["main"]
    return fetch(base + path)[1].decode("utf-8")


def test_every_article_is_served_and_discoverable(served):
    server, sources, _ = served
    for portal, source in zip(load_corpus(), sources, strict=True):
        base = server.base_url(portal.name)
        expected = {base + a.path for a in portal.articles}
        if portal.render == "http":  # a script-filled listing is the browser tests' part
            assert discovered_urls(source) == expected, portal.name
        for article in portal.articles:
            page = article_markup(base, article.path, portal.render)
            assert html.escape(article.paragraphs[0][:40]) in page


def test_the_prime_ministers_release_is_a_browser_rendered_page(served):
    server, sources, _ = served
    source = next(s for s in sources if s.name == "primeminister")
    assert source.render == "browser"
    base = server.base_url("primeminister")
    listing = json.loads(fetch(base + "/api/listing?section=news&page=1")[1])
    paths = [entry["url"] for entry in listing["items"]]
    assert paths, "the listing's script gets its links from the API"
    shell = fetch(base + paths[0])[1].decode("utf-8")
    assert "Байконур" not in shell, "the page is a shell until its script runs"
    assert "Байконур" in article_markup(base, paths[0], "browser")


def test_the_demo_crawl_allows_loopback_and_keeps_robots(tmp_path):
    command = crawl_command(
        ["zakon"], "sqlite:///x.db", sources_file=tmp_path / "s.yaml", settings=DEMO_CRAWL_SETTINGS
    )
    settings = dict(a.split("=", 1) for a in command if "=" in a)
    assert json.loads(settings["EGRESS_ALLOW_NETS"]) == ["127.0.0.0/8"]
    assert json.loads(settings["AUTOTHROTTLE_ENABLED"]) is False
    assert "ROBOTSTXT_OBEY" not in settings, "the demo crawl obeys robots.txt like any other"
    assert command[-1] == "zakon"


def test_summary_tables_name_every_source_and_the_showcase(served):
    _, sources, _ = served
    stats = {s.name: {"store/new": 1} for s in sources}
    showcase = [
        {"published_at": "2019-07-09T16:40:00+06:00", "source": "aqsu", "title": "Байконур"}
    ]
    result = DemoResult("sqlite:///x.db", stats, {s.name: 1 for s in sources}, 1.0, showcase)
    newest = {"primeminister": [{"title": "Первый вице-премьер РК провел переговоры"}]}
    console = Console(record=True, width=80)
    console.print(summary_table(sources, result, newest))
    console.print(showcase_table(showcase))
    text = console.export_text()
    assert all(s.name in text for s in sources)
    assert "Первый вице-премьер" in text
    assert "2019-07-09 16:40" in text
