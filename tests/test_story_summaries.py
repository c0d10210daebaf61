"""One copy of an item's text: the story index keeps an item's summary until the store holds
the item, then reads it there (`StoryIndex.item_stored`); and Redis times the candidate keys
from before the window by itself, at most once an hour."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

import pytest

from pipelines.store import open_store
from pipelines.store.keys import Keys
from pipelines.store.redis import RedisStore
from pipelines.store.sqlite import path_from_url
from pipelines.stories import StoryLinker
from pipelines.story_index import DAY_S, ItemSummary, KeyWindow, MemoryStoryIndex
from scheduler.replay import ReplayServer
from tests.stories_data import BAIKONUR, demo_items, demo_sources
from tests.test_crawl import run_crawl, write_sources
from tests.test_syndication import release_portals, release_sources

if TYPE_CHECKING:
    from pathlib import Path

    from pipelines.store import Store
    from tests.fixtures.redis_server import RedisServer


def own_summaries(store_url: str) -> int:
    """How many summaries the story index keeps of its own (not read from stored items)."""
    if store_url.startswith("sqlite"):
        with sqlite3.connect(path_from_url(store_url)) as db:
            return db.execute("SELECT count(*) FROM story_items").fetchone()[0]
    store = RedisStore(store_url)
    try:
        return sum(1 for _ in store.link.client.scan_iter(match=store.keys.story_item("*")))
    finally:
        store.close()


def an_item(**fields: Any) -> dict[str, Any]:
    return {**demo_items()[0], **fields}


def test_a_stored_item_is_read_from_the_store(store: Store, store_url: str) -> None:
    item = an_item()
    index = store.story_index()
    index.put_item(ItemSummary.from_dict(item))
    assert not index.item_stored(item), "not stored yet: the summary is the only copy"
    assert store.add_item(item)
    assert index.item_stored(item)
    assert own_summaries(store_url) == 0
    assert index.get_items([item["id"], "unknown"]) == {item["id"]: ItemSummary.from_dict(item)}
    assert not index.item_stored(item), "dropped once"
    index.close()


def test_a_summary_other_than_the_stored_item_stays(store: Store, store_url: str) -> None:
    # Another process linked the same URL with another text, or a store from before this
    # change (its summaries hold text, beside the stored items): each reads its own summary.
    item = an_item()
    linked = ItemSummary.from_dict({**item, "text": "Другая версия текста."})
    index = store.story_index()
    index.put_item(linked)
    assert store.add_item(item)
    assert not index.item_stored(item)
    assert not index.item_stored({"id": item["id"], "title": "no source, no text"})
    assert own_summaries(store_url) == 1
    assert index.get_items([item["id"]]) == {item["id"]: linked}
    index.close()


def test_the_memory_index_keeps_every_summary() -> None:
    index = MemoryStoryIndex()
    item = an_item()
    index.put_item(ItemSummary.from_dict(item))
    assert not index.item_stored(item)
    assert index.get_items([item["id"]]) == {item["id"]: ItemSummary.from_dict(item)}


def test_stories_are_the_same_when_every_text_is_read_from_the_store(store: Store) -> None:
    """The demo corpus linked as a crawl does (link, then store), against the reference."""
    items = demo_items()
    index = store.story_index()
    linker = StoryLinker(index, demo_sources())
    reference = StoryLinker(MemoryStoryIndex(), demo_sources())
    for item in items:
        linker.link(item)
        assert store.add_item(item)
        assert index.item_stored(item)
        reference.link(item)
    for item in items:
        ours = index.get_story(index.story_of(item["id"]) or "")
        theirs = reference.index.get_story(reference.index.story_of(item["id"]) or "")
        assert ours == theirs
    assert index.members(min(BAIKONUR)) == set(BAIKONUR)
    index.close()


def test_a_crawl_keeps_one_copy_of_each_text(store_url: str, tmp_path: Path) -> None:
    portals = release_portals()
    with ReplayServer(portals) as server:
        sources = write_sources(tmp_path / "sources.yaml", *release_sources(server))
        crawled = run_crawl(sources, store_url)
    assert sum(s.get("store/new", 0) for s in crawled.values()) == 16
    assert own_summaries(store_url) == 0
    store = open_store(store_url)
    try:
        index = store.story_index()
        stored = store.items()
        summaries = index.get_items(item["id"] for item in stored)
        assert summaries == {item["id"]: ItemSummary.from_dict(item) for item in stored}
        index.close()
    finally:
        store.close()


# --- Redis: candidate keys from before the window --------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.hours_on = 0.0

    def __call__(self) -> float:
        return time.time() + self.hours_on * 3600


@pytest.mark.redis
def test_redis_times_old_keys_by_itself_at_most_hourly(
    redis_url: str, redis_server: RedisServer
) -> None:
    clock = Clock()
    store = RedisStore(f"{redis_url}?prefix=pw-sweep:")
    index = store.story_index(KeyWindow(days=30, clock=clock))
    keys = Keys("pw-sweep:")
    with redis_server.client() as client:
        client.sadd(keys.story_key("old-1"), "a")
        index.add_keys("b", ["new"])  # the first write sweeps
        assert client.type(keys.story_key("old-1")) == "zset"
        assert 29 * DAY_S < client.ttl(keys.story_key("old-1")) <= 30 * DAY_S
        assert not client.exists(keys.story_keys_timed()), "it found one: sweep again"
        client.sadd(keys.story_key("old-2"), "a")  # e.g. written by an older crawler
        clock.hours_on = 0.9
        index.add_keys("c", ["new"])
        assert client.type(keys.story_key("old-2")) == "set", "not within the hour"
        clock.hours_on = 1.0
        index.add_keys("d", ["new"])
        assert client.type(keys.story_key("old-2")) == "zset"
        clock.hours_on = 2.0
        index.add_keys("e", ["new"])  # finds none left: marks the store, sweeps no more
        assert client.exists(keys.story_keys_timed())
        client.sadd(keys.story_key("old-3"), "a")
        clock.hours_on = 3.0
        index.add_keys("f", ["new"])
        assert client.type(keys.story_key("old-3")) == "set"
        assert index.candidates(["old-3", "new"]) == {"a", "b", "c", "d", "e", "f"}
    index.close()
    store.close()
