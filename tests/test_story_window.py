"""The story index's time window: candidate entries count for a number of days after they
are written, then go; items and stories stay. On the in-memory index, SQLite and Redis."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

import pytest
from scrapy.utils.test import get_crawler

from pipelines.store import open_store
from pipelines.store.keys import Keys
from pipelines.store.redis import RedisStore
from pipelines.store.sqlite_stories import SQLiteStoryIndex
from pipelines.stories import StoryLinker
from pipelines.story_index import DAY_S, ItemSummary, KeyWindow, MemoryStoryIndex, StoryIndex
from pipelines.syndication import SyndicationPipeline
from tests.stories_data import demo_items, demo_sources

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.fixtures.redis_server import RedisServer

KEY = "07:9f86d081884c7d65"


class Clock:
    """The window's clock: real time shifted by `days_ago` (Redis expires keys by its own
    clock, so the shift is from now, and nobody waits)."""

    def __init__(self) -> None:
        self.days_ago = 0.0

    def __call__(self) -> float:
        return time.time() - self.days_ago * DAY_S


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def index(request: pytest.FixtureRequest, clock: Clock, tmp_path: Path) -> Iterator[StoryIndex]:
    """An index with a 30-day window on `clock`, in memory and in each store."""
    window = KeyWindow(days=30, clock=clock)
    if request.param == "memory":
        yield MemoryStoryIndex(window)
        return
    if request.param == "sqlite":
        (tmp_path / "store").mkdir()
        store = open_store(f"sqlite:///{tmp_path}/store/pw.db")
    else:
        store = open_store(request.getfixturevalue("redis_url"))
    opened = store.story_index(window)
    yield opened
    opened.close()
    store.close()


def add(index: StoryIndex, clock: Clock, item_id: str, days_ago: float) -> None:
    """Link-like writes of one item as first seen `days_ago`: summary, story, its key."""
    clock.days_ago = days_ago
    index.put_item(ItemSummary(id=item_id, source="caravan", title=item_id, text="Текст."))
    index.join(item_id, item_id)
    record: dict[str, Any] = {"id": item_id, "members": [{"item": item_id}]}
    assert index.put_story(item_id, record)
    index.add_keys(item_id, [KEY])
    clock.days_ago = 0


def test_an_entry_older_than_the_window_is_no_candidate_and_its_item_stays(
    index: StoryIndex, clock: Clock
) -> None:
    add(index, clock, "old", days_ago=31)
    add(index, clock, "new", days_ago=0)
    assert index.candidates([KEY]) == {"new"}
    # the item, its story and its record are kept for good
    assert set(index.get_items(["old", "new"])) == {"old", "new"}
    assert index.story_of("old") == "old"
    assert index.get_story("old") == {"id": "old", "members": [{"item": "old"}]}
    assert index.story_ids() == ["new", "old"]


def test_an_entry_inside_the_window_is_a_candidate(index: StoryIndex, clock: Clock) -> None:
    add(index, clock, "recent", days_ago=29)
    add(index, clock, "new", days_ago=0)
    assert index.candidates([KEY]) == {"recent", "new"}


def test_a_newer_entry_does_not_keep_an_old_one_a_candidate(
    index: StoryIndex, clock: Clock
) -> None:
    # the key is alive thanks to "new"; "old" written after it, but dated before the window
    add(index, clock, "new", days_ago=0)
    add(index, clock, "old", days_ago=31)
    assert index.candidates([KEY]) == {"new"}
    assert index.candidates([KEY, "n:other"], at_least=2) == set()


def test_indexing_an_item_again_renews_its_entries(index: StoryIndex, clock: Clock) -> None:
    add(index, clock, "a", days_ago=40)
    assert index.candidates([KEY]) == set()
    index.add_keys("a", [KEY])  # linked again now (a resumed link)
    assert index.candidates([KEY]) == {"a"}


def test_expire_keys_keeps_the_candidates_as_they_are(index: StoryIndex, clock: Clock) -> None:
    add(index, clock, "old", days_ago=31)
    add(index, clock, "new", days_ago=0)
    assert index.expire_keys() in (0, 1)  # Redis had dropped it already
    assert index.expire_keys() == 0
    assert index.candidates([KEY]) == {"new"}
    assert set(index.get_items(["old"])) == {"old"}


def test_a_backfill_of_old_news_links_among_itself(
    index: StoryIndex, first_family: set[str]
) -> None:
    """Entries date from when they are written, not from publication: two copies of a 2017
    release crawled today are one story."""
    linker = StoryLinker(index, demo_sources())
    family = [i for i in demo_items() if i["id"] in first_family]
    assert len(family) >= 2
    for item in family:
        linker.link({**item, "published_at": "2017-03-01T10:00:00+06:00"})
    assert len({index.story_of(item["id"]) for item in family}) == 1


@pytest.fixture(scope="module")
def first_family() -> set[str]:
    """The members of the first story of two or more in the demo corpus."""
    reference = MemoryStoryIndex()
    linker = StoryLinker(reference, demo_sources())
    for item in demo_items():
        linker.link(item)
    return next(
        members for story in reference.story_ids() if len(members := reference.members(story)) >= 2
    )


@pytest.mark.parametrize(
    ("value", "days"), [(None, 30.0), ("", 30.0), (7, 7.0), ("0.5", 0.5), ("30", 30.0)]
)
def test_the_window_setting(value: object, days: float) -> None:
    assert KeyWindow.from_setting(value).days == days


@pytest.mark.parametrize("value", [0, "-3", "soon", "inf", [30]])
def test_a_bad_window_setting_names_it(value: object) -> None:
    with pytest.raises(ValueError, match=r"SYNDICATION_WINDOW_DAYS must be a positive number"):
        KeyWindow.from_setting(value)


# --- what each store adds ---------------------------------------------------------------------
def test_sqlite_deletes_old_entries_at_most_hourly(tmp_path: Path, clock: Clock) -> None:
    path = str(tmp_path / "window.db")
    index = SQLiteStoryIndex(path, KeyWindow(days=30, clock=clock))
    add(index, clock, "new", days_ago=0)  # the first write deletes (nothing yet)
    add(index, clock, "old", days_ago=31)  # earlier than the next delete is due
    rows = sqlite3.connect(path).execute("SELECT item FROM story_keys ORDER BY item").fetchall()
    assert rows == [("new",), ("old",)]
    clock.days_ago = -1 / 24  # an hour on
    index.add_keys("later", ["n:other"])
    clock.days_ago = 0
    rows = sqlite3.connect(path).execute("SELECT item FROM story_keys ORDER BY item").fetchall()
    assert rows == [("later",), ("new",)]
    plan = (
        sqlite3.connect(path)
        .execute("EXPLAIN QUERY PLAN DELETE FROM story_keys WHERE seen < 0")
        .fetchall()
    )
    assert "story_keys_by_seen" in str(plan)
    index.close()


def test_sqlite_entries_from_before_the_window_count_from_the_upgrade(
    tmp_path: Path, clock: Clock
) -> None:
    path = str(tmp_path / "old.db")
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE story_keys (key TEXT NOT NULL, item TEXT NOT NULL,"
        " PRIMARY KEY (key, item)) WITHOUT ROWID"
    )
    old.execute("INSERT INTO story_keys VALUES (?, 'a')", (KEY,))
    old.commit()
    old.close()
    clock.days_ago = 29  # the upgrade, 29 days ago
    index = SQLiteStoryIndex(path, KeyWindow(days=30, clock=clock))
    clock.days_ago = 0
    assert index.candidates([KEY]) == {"a"}
    clock.days_ago = -2
    assert index.candidates([KEY]) == set()
    index.close()


@pytest.mark.redis
def test_redis_keys_expire_a_window_after_their_newest_entry(
    redis_url: str, redis_server: RedisServer, clock: Clock
) -> None:
    store = RedisStore(f"{redis_url}?prefix=pw-window:")
    index = store.story_index(KeyWindow(days=30, clock=clock))
    name = Keys("pw-window:").story_key(KEY)
    with redis_server.client() as client:
        add(index, clock, "old", days_ago=31)
        assert client.exists(name) == 0  # expired as written: nothing to keep
        add(index, clock, "middle", days_ago=10)
        assert 19 * DAY_S < client.ttl(name) <= 20 * DAY_S
        add(index, clock, "old", days_ago=31)  # an old entry does not shorten it
        assert 19 * DAY_S < client.ttl(name) <= 20 * DAY_S
        add(index, clock, "new", days_ago=0)
        assert 29 * DAY_S < client.ttl(name) <= 30 * DAY_S
        assert client.zrange(name, 0, -1) == ["middle", "new"]  # trimmed on write
        # the item, its summary and story keep no expiry
        ttls = [client.ttl(Keys("pw-window:").story_item("old"))]
        ttls += [client.ttl(Keys("pw-window:").story("old"))]
        assert ttls == [-1, -1]
    index.close()
    store.close()


@pytest.mark.redis
def test_redis_keys_from_before_the_window_are_read_and_converted(
    redis_url: str, redis_server: RedisServer, clock: Clock
) -> None:
    store = RedisStore(f"{redis_url}?prefix=pw-legacy:")
    index = store.story_index(KeyWindow(days=30, clock=clock))
    keys = Keys("pw-legacy:")
    with redis_server.client() as client:
        client.sadd(keys.story_key(KEY), "a", "b")
        client.sadd(keys.story_key("n:2019-11-18:мамин"), "a")
        assert index.candidates([KEY, "n:2019-11-18:мамин"], at_least=2) == {"a"}
        index.add_keys("c", [KEY])  # a write converts its key
        assert client.type(keys.story_key(KEY)) == "zset"
        assert index.candidates([KEY]) == {"a", "b", "c"}
        assert index.expire_keys() == 0  # converts the rest
        assert client.type(keys.story_key("n:2019-11-18:мамин")) == "zset"
        assert 29 * DAY_S < client.ttl(keys.story_key("n:2019-11-18:мамин")) <= 30 * DAY_S
        assert index.candidates([KEY, "n:2019-11-18:мамин"], at_least=2) == {"a"}
    index.close()
    store.close()


def test_the_crawl_reads_the_window_setting(tmp_path: Path) -> None:
    settings = {"PRESSWATCH_STORE": f"sqlite:///{tmp_path}/pw.db", "SYNDICATION_WINDOW_DAYS": 7}
    pipeline = SyndicationPipeline.from_crawler(get_crawler(settings_dict=settings))
    assert pipeline.window.days == 7
    settings["SYNDICATION_WINDOW_DAYS"] = "a month"
    with pytest.raises(ValueError, match="SYNDICATION_WINDOW_DAYS"):
        SyndicationPipeline.from_crawler(get_crawler(settings_dict=settings))
