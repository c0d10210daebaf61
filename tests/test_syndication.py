"""The syndication pipeline: built from settings, linking into the store's story index, and in
a real crawl of portals that copy one press release."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from crawler.items import item_id
from crawler.urls import canonical_url
from pipelines.store import open_store
from pipelines.stories import StoryLinker
from pipelines.storing import close_crawler_store
from pipelines.story_index import MemoryStoryIndex
from pipelines.syndication import SyndicationPipeline, count_update
from scheduler.demo import load_articles, load_portals, replay_article
from scheduler.replay import ReplayArticle, ReplayPortal, ReplayServer, generate_articles
from tests.stories_data import AQSU, BAIKONUR, CARAVAN, PRIME, STEPPE, demo_items, demo_sources
from tests.test_crawl import run_crawl, write_sources


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    """The demo portals as a sources.yaml (their kinds, domains and aliases)."""
    entries = [source.model_dump(mode="json") for source in demo_sources()]
    return write_sources(tmp_path / "sources.yaml", *entries)


@pytest.fixture
def crawler(store_url: str, sources_file: Path) -> Iterator[Crawler]:
    crawler = get_crawler(
        settings_dict={"PRESSWATCH_STORE": store_url, "PRESSWATCH_SOURCES": str(sources_file)}
    )
    yield crawler
    close_crawler_store(crawler)


def stats(crawler: Crawler) -> dict[str, Any]:
    assert crawler.stats is not None
    return {k: v for k, v in crawler.stats.get_stats().items() if k.startswith("syndication/")}


# --- the component ----------------------------------------------------------------------


def test_switched_off_by_its_setting() -> None:
    crawler = get_crawler(settings_dict={"SYNDICATION_ENABLED": False})
    with pytest.raises(NotConfigured, match="SYNDICATION_ENABLED"):
        SyndicationPipeline.from_crawler(crawler)


def test_links_copies_before_and_after_their_original(crawler: Crawler, store_url: str) -> None:
    items = {item["id"]: item for item in demo_items()}
    pipeline = SyndicationPipeline.from_crawler(crawler)

    async def link_all() -> None:
        # copies first, the official release third: it takes the place of the cited source
        for key in (CARAVAN, AQSU, PRIME, STEPPE, CARAVAN):
            item = items[key]
            before = dict(item)
            assert await pipeline.process_item(item) is item
            assert item == before, "the pipeline does not change the item"
        await pipeline.close_spider()

    asyncio.run(link_all())
    assert stats(crawler) == {
        "syndication/linked": 4,
        "syndication/copies": 2,  # AQSU and STEPPE joined as copies
        "syndication/originals_replaced": 1,  # PRIME replaced the external original
        "syndication/unattributed": 1,  # AQSU, once the release it copies had arrived
        "syndication/already_linked": 1,  # CARAVAN again
    }
    store = open_store(store_url)
    try:
        index = store.story_index()
        record = index.get_story(index.story_of(PRIME) or "")
        index.close()
    finally:
        store.close()
    assert record is not None
    assert record["id"] == min(BAIKONUR)
    assert record["original"]["item"] == PRIME
    by_item = {m["item"]: m for m in record["members"]}
    assert set(by_item) == set(BAIKONUR)
    assert by_item[AQSU]["unattributed"]
    assert by_item[CARAVAN]["cites"][0]["source"] == "primeminister"


def test_an_unrelated_item_is_linked_alone(crawler: Crawler) -> None:
    pipeline = SyndicationPipeline.from_crawler(crawler)
    items = demo_items()

    async def link_two() -> list[Any]:
        linked = [await pipeline.process_item(item) for item in items[:2]]
        await pipeline.close_spider()
        return linked

    assert asyncio.run(link_two()) == items[:2]
    assert stats(crawler)["syndication/linked"] == 2


def test_an_item_that_cannot_be_linked_goes_on_to_the_store(
    crawler: Crawler, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = SyndicationPipeline.from_crawler(crawler)
    nameless = {"title": "Без адреса", "text": "Текст."}  # no id and no url to link by

    async def link_it() -> Any:
        passed = await pipeline.process_item(nameless)
        await pipeline.close_spider()
        return passed

    assert asyncio.run(link_it()) is nameless
    assert stats(crawler) == {"syndication/failed": 1}
    assert "story linking failed" in caplog.text


def test_the_stats_of_one_link() -> None:
    items = {item["id"]: item for item in demo_items()}
    linker = StoryLinker(MemoryStoryIndex(), demo_sources())
    assert count_update(linker.link(items[CARAVAN])) == ["syndication/linked"]
    update = linker.link(items[PRIME])
    assert count_update(update) == ["syndication/linked", "syndication/originals_replaced"]
    assert count_update(linker.link(items[AQSU])) == ["syndication/linked", "syndication/copies"]
    assert count_update(linker.link(items[PRIME])) == ["syndication/already_linked"]


# --- a real crawl -----------------------------------------------------------------------

RELEASE_PORTALS = ("primeminister", "caravan", "steppe", "aqsu")


def release_portals() -> list[ReplayPortal]:
    """The PM's Baikonur release and its three copies (real articles of the demo corpus),
    each portal with a few unrelated generated articles beside it."""
    specs = {spec.name: spec for spec in load_portals()}
    articles = {a["id"]: a for a in load_articles()}
    portals = []
    for seed, name in enumerate(RELEASE_PORTALS):
        (key,) = [k for k in BAIKONUR if k.startswith(f"{name}/")]
        release = replay_article(articles[key], specs[name])
        others = generate_articles(3, seed=seed, section=release.section)
        portals.append(
            ReplayPortal(name=name, title=specs[name].title, articles=[release, *others])
        )
    return portals


VERBATIM = "verbatim"  # a portal that republishes the release word for word, an hour later


def verbatim_portal(release: ReplayArticle) -> ReplayPortal:
    later = (datetime.fromisoformat(release.published_at) + timedelta(hours=1)).isoformat()
    copy = dataclasses.replace(release, slug="copied-release", published_at=later)
    return ReplayPortal(name=VERBATIM, title="Verbatim", articles=[copy])


def release_sources(server: ReplayServer) -> list[dict[str, Any]]:
    specs = {spec.name: spec for spec in load_portals()}
    sources = [
        server.source_config(
            name,
            kind=specs[name].kind,
            domains=list(specs[name].domains),
            aliases=list(specs[name].aliases),
        )
        for name in RELEASE_PORTALS
        if name in server.portals
    ]
    if VERBATIM in server.portals:
        sources.append(server.source_config(VERBATIM, kind="media", domains=["verbatim.example"]))
    return sources


def test_a_crawl_of_three_copies_makes_one_story(store_url: str, tmp_path: Path) -> None:
    portals = release_portals()
    with ReplayServer(portals) as server:
        sources = write_sources(tmp_path / "sources.yaml", *release_sources(server))
        crawled = run_crawl(sources, store_url)
        ids = {  # the release and its copies are each portal's first article
            p.name: item_id(canonical_url(server.base_url(p.name) + p.articles[0].path))
            for p in portals
        }
    assert sum(s.get("store/new", 0) for s in crawled.values()) == 16
    assert sum(s.get("syndication/linked", 0) for s in crawled.values()) == 16
    # How each link counted (copy, original replaced, merge) depends on the order the four
    # crawlers' threads linked in; the story they end in does not, and is checked below.

    store = open_store(store_url)
    try:
        index = store.story_index()
        record = index.get_story(ids["primeminister"])
        everyone = index.story_ids()
        index.close()
    finally:
        store.close()
    assert record is not None
    assert record["original"]["item"] == ids["primeminister"]
    by_source = {m["source"]: m for m in record["members"]}
    assert set(by_source) == set(RELEASE_PORTALS)
    assert {m["item"] for m in record["members"]} == set(ids.values())
    for copy in ("caravan", "steppe", "aqsu"):
        assert by_source[copy]["role"] == "copy"
        assert by_source[copy]["lag_seconds"] > 0
    for credited in ("caravan", "steppe"):
        assert by_source[credited]["cites"][0]["source"] == "primeminister"
        assert not by_source[credited]["unattributed"]
    assert by_source["aqsu"]["unattributed"]
    # the generated articles are stories of their own
    assert len(everyone) == 16 - 3


def test_a_word_for_word_copy_on_another_site_joins_the_story(
    store_url: str, tmp_path: Path
) -> None:
    # The same text on another site is syndication, not a duplicate to drop (dedup only
    # drops the same text elsewhere on one site): it must show in the story, unattributed.
    original = release_portals()[0]
    portals = [original, verbatim_portal(original.articles[0])]
    with ReplayServer(portals) as server:
        sources = write_sources(tmp_path / "sources.yaml", *release_sources(server))
        crawled = run_crawl(sources, store_url)
        copy_id = item_id(canonical_url(server.base_url(VERBATIM) + portals[1].articles[0].path))
        release_id = item_id(
            canonical_url(server.base_url(original.name) + original.articles[0].path)
        )
    assert crawled[VERBATIM]["store/new"] == 1
    assert crawled[VERBATIM].get("dedup/text", 0) == 0
    store = open_store(store_url)
    try:
        index = store.story_index()
        record = index.get_story(copy_id)
        index.close()
    finally:
        store.close()
    assert record is not None
    assert record["original"]["item"] == release_id
    copy = next(m for m in record["members"] if m["item"] == copy_id)
    assert copy["role"] == "copy"
    assert copy["similarity"] == 1.0
    assert copy["unattributed"]
