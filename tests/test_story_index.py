"""The StoryIndex contract, run against the in-memory reference, SQLite and Redis alike."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest

from pipelines.store import open_store
from pipelines.store.base import StoreError
from pipelines.store.keys import Keys
from pipelines.store.redis import RedisLink, RedisStore
from pipelines.store.redis_stories import RedisStoryIndex
from pipelines.store.sqlite import SCHEMA_VERSION, SQLiteStore
from pipelines.store.sqlite_stories import SQLiteStoryIndex
from pipelines.stories import StoryLinker
from pipelines.story_index import Entry, ItemSummary, Lookup, MemoryStoryIndex, StoryIndex
from tests.stories_data import demo_items, demo_sources

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from crawler.config import Source
    from tests.fixtures.redis_server import RedisServer


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoryIndex]:
    """A fresh index, the store-backed ones opened through their store's seam."""
    if request.param == "memory":
        yield MemoryStoryIndex()
        return
    if request.param == "sqlite":
        (tmp_path / "store").mkdir()
        store = open_store(f"sqlite:///{tmp_path}/store/presswatch.db")
    else:
        store = open_store(request.getfixturevalue("redis_url"))
    opened = store.story_index()
    yield opened
    opened.close()
    store.close()


def summary(item_id: str, **fields: Any) -> ItemSummary:
    values = {"source": "caravan", "title": f"Заголовок {item_id}", "text": "Текст «новости»."}
    return ItemSummary(id=item_id, **{**values, **fields})


def record(story_id: str, members: Iterable[str], *published: str | None) -> dict[str, Any]:
    """A story record as `Story.to_dict` shapes it: `members` (sorted), the first ones
    published at `published`, the rest with no time."""
    items = sorted(members)
    times = [*published, *[None] * (len(items) - len(published))]
    return {
        "id": story_id,
        "original": {"item": story_id, "source": "caravan"},
        "members": [{"item": i, "published_at": t} for i, t in zip(items, times, strict=False)],
    }


def put(index: StoryIndex, story_id: str, *published: str | None) -> dict[str, Any]:
    """Assemble a record of the story's members now and keep it; returns the record."""
    kept = record(story_id, index.members(story_id), *published)
    assert index.put_story(story_id, kept)
    return kept


def partition(index: StoryIndex) -> set[frozenset[str]]:
    return {frozenset(index.members(story_id)) for story_id in index.story_ids()}


# --- items and candidates -----------------------------------------------------------------
def test_put_and_get_items_overwrite_and_skip_unknown_ids(index: StoryIndex) -> None:
    first = summary("a", lang="ru", published_at="2019-11-18T10:00:00+06:00", links=("https://x",))
    index.put_item(first)
    index.put_item(summary("b", lead="Лид", url="https://caravan.kz/b"))
    assert index.get_items(["a"]) == {"a": first}
    changed = summary("a", title="Новый заголовок")
    index.put_item(changed)
    found = index.get_items(iter(["b", "unknown", "a", "a"]))
    assert found == {"a": changed, "b": summary("b", lead="Лид", url="https://caravan.kz/b")}
    assert index.get_items([]) == {}


def test_candidates_count_the_keys_each_item_is_under(index: StoryIndex) -> None:
    index.add_keys("a", ["k1", "k2", "k3"])
    index.add_keys("b", ["k1", "k2"])
    index.add_keys("c", ["k3", "n:2019-11-18:мамин"])
    index.add_keys("b", ["k1"])  # again: still one entry
    index.add_keys("d", [])
    assert index.candidates(["k1"]) == {"a", "b"}
    assert index.candidates(["k1", "k2"], at_least=2) == {"a", "b"}
    assert index.candidates(["k1", "k2", "k3"], at_least=3) == {"a"}
    # a key asked twice counts once
    assert index.candidates(["k1", "k1", "k3"], at_least=2) == {"a"}
    assert index.candidates(iter(["n:2019-11-18:мамин", "k9"])) == {"c"}
    assert index.candidates(["unknown"]) == set()
    assert index.candidates([]) == set()


def test_enter_writes_the_item_then_reads_its_candidates(index: StoryIndex) -> None:
    index.add_keys("b", ["k1", "n1", "n2"])
    index.add_keys("c", ["k2", "n1"])
    first = summary("a", lang="ru")
    entry = index.enter(
        first, ["k1", "k2", "n1"], [(["k1", "k2"], 1), (["n1", "n2", "n2"], 2)], again=False
    )
    # the item's own writes come first: it finds itself
    assert entry == Entry("a", new=True, found=({"a", "b", "c"}, {"b"}))
    assert index.get_items(["a"]) == {"a": first}
    assert index.story_of("a") == "a"
    assert index.members("a") == {"a"}
    assert index.candidates(["n1"]) == {"a", "b", "c"}
    assert index.enter(summary("d"), [], [], again=False) == Entry("d", new=True)
    assert index.enter(summary("e"), ["k9"], [([], 1)], again=False).found == (set(),)


def test_a_bounded_lookup_keeps_the_items_that_share_the_rarest_keys(index: StoryIndex) -> None:
    index.add_keys("b", ["n1", "n2", "n3"])
    index.add_keys("c", ["n1", "n2"])
    index.add_keys("d", ["n1", "n2", "n3", "n4"])
    index.add_keys("e", ["n3", "n4"])
    index.add_keys("f", ["n1"])
    index.add_keys("g", ["n5", "n6"])
    index.add_keys("h", ["n5", "n6"])
    names = ["n1", "n2", "n3", "n4"]
    lookups = [
        Lookup(names, 2, 3),
        Lookup(names, 2),
        Lookup(names, 2, 9),
        Lookup(names, 5, 1),
        Lookup(["n5", "n6"], 2, 1),
    ]
    entry = index.enter(summary("a"), [], lookups, again=False)
    # A shared key weighs 1 / the items under it (n1: 4, n2 and n3: 3, n4: 2): "d" 1.42,
    # "b" 0.92, "e" 0.83 (two rarer keys) before "c" 0.58; equal weights go by id.
    assert entry.found == (
        {"d", "b", "e"},
        {"b", "c", "d", "e"},
        {"b", "c", "d", "e"},
        set(),
        {"g"},
    )


def test_enter_leaves_a_linked_item_alone_unless_again(index: StoryIndex) -> None:
    index.enter(summary("a"), ["k1"], [(["k1"], 1)], again=False)
    index.join("a", "b")
    changed = summary("b", title="Другой")
    assert index.enter(changed, ["k1"], [(["k1"], 1)], again=False) == Entry("a", new=False)
    assert index.get_items(["b"]) == {}  # nothing written
    assert index.candidates(["k1"]) == {"a"}
    # again (a link that stopped partway): written, and joined to its own story anew
    again = index.enter(changed, ["k1"], [(["k1"], 1)], again=True)
    assert again == Entry("b", new=True, found=({"a", "b"},))
    assert index.get_items(["b"]) == {"b": changed}
    assert index.members("a") == {"a"}


def test_story_items_reads_a_story_with_its_members_summaries(index: StoryIndex) -> None:
    for item_id in ("a", "b", "c"):
        index.put_item(summary(item_id))
    index.join("b", "b")
    index.join("b", "c")
    index.join("b", "unsummarized")
    index.join("a", "a")
    assert index.merge("b", "a") == "a"
    found = index.story_items("b")  # followed to the survivor
    assert list(found) == ["a", "b", "c"]
    assert found == {i: summary(i) for i in ("a", "b", "c")}
    assert index.story_items("unknown") == {}


# --- stories ------------------------------------------------------------------------------
def test_join_creates_a_story_and_story_of_finds_it(index: StoryIndex) -> None:
    assert index.story_of("a") is None
    assert index.join("a", "a") == "a"
    assert index.join("a", "b") == "a"
    assert index.story_of("b") == "a"
    assert index.members("a") == {"a", "b"}
    assert index.members("unknown") == set()
    assert index.story_ids() == ["a"]


def test_stories_of_many_items_at_once(index: StoryIndex) -> None:
    for story, item in (("a", "a"), ("a", "a2"), ("b", "b"), ("c", "c")):
        index.join(story, item)
    index.merge("a", "c")
    assert index.stories_of(["a2", "unlinked", "b", "c", "b"]) == {"a2": "a", "b": "b", "c": "a"}
    assert index.stories_of(iter(["a"])) == {"a": "a"}
    assert index.stories_of([]) == {}


def test_get_stories_of_many_at_once_follows_merges(index: StoryIndex) -> None:
    for story in ("a", "b", "c"):
        index.join(story, story)
    kept_a, kept_b = put(index, "a"), put(index, "b")
    assert index.get_stories(["b", "a", "nothing", "c"]) == {"a": kept_a, "b": kept_b}
    index.merge("a", "c")
    assert index.get_stories(["c"]) == {"c": kept_a}  # its id leads to the survivor
    assert index.get_stories([]) == {}


def test_joining_another_story_moves_the_item(index: StoryIndex) -> None:
    index.join("s1", "x")
    index.join("s1", "y")
    index.join("s2", "x")
    assert index.story_of("x") == "s2"
    assert index.members("s1") == {"y"}
    assert index.members("s2") == {"x"}
    index.join("s2", "y")
    assert index.story_ids() == ["s2"]  # s1 has no members left


@pytest.mark.parametrize("order", ["smaller first", "larger first"])
def test_merge_keeps_the_smaller_id_whoever_merges(index: StoryIndex, order: str) -> None:
    for story, item in (("a", "a"), ("a", "a2"), ("b", "b"), ("b", "b2")):
        index.join(story, item)
    kept = put(index, "a")
    put(index, "b")
    pair = ("a", "b") if order == "smaller first" else ("b", "a")
    assert index.merge(*pair) == "a"
    assert index.members("a") == {"a", "a2", "b", "b2"}
    assert index.story_of("b2") == "a"
    assert index.story_ids() == ["a"]
    assert index.get_story("a") == kept  # until the linker assembles the merged story
    # the absorbed story's record is dropped; its id leads to the survivor
    assert index.get_story("b") == kept
    assert index.members("b") == index.members("a")


def test_join_and_merge_follow_forward_pointers(index: StoryIndex) -> None:
    for story in ("c", "b", "a"):
        index.join(story, story)
    assert index.merge("c", "b") == "b"
    assert index.merge("b", "a") == "a"
    # a process that still holds "c" lands in the survivor, two pointers on
    assert index.join("c", "late") == "a"
    assert index.story_of("late") == "a"
    assert index.members("c") == {"a", "b", "c", "late"}
    index.join("d", "d")
    assert index.merge("d", "c") == "a"
    assert index.merge("c", "b") == "a"  # both merged away already: nothing to do
    assert index.story_ids() == ["a"]
    assert index.members("a") == {"a", "b", "c", "d", "late"}
    kept = put(index, "a")
    assert index.get_story("c") == kept


def test_merging_a_story_with_itself_changes_nothing(index: StoryIndex) -> None:
    index.join("a", "a")
    index.join("b", "b")
    kept = put(index, "a")
    assert index.merge("a", "a") == "a"
    assert index.get_story("a") == kept
    index.merge("b", "a")
    assert index.merge("b", "a") == "a"  # b is a by now
    assert index.members("a") == {"a", "b"}


def test_records_replace_and_unknown_stories_have_none(index: StoryIndex) -> None:
    index.join("a", "a")
    assert index.get_story("a") is None
    put(index, "a", "2019-11-18T10:00:00+06:00")
    replaced = {**record("a", ["a"]), "note": "«кавычки» и ё"}
    assert index.put_story("a", replaced)
    assert index.get_story("a") == replaced
    assert index.get_story("unknown") is None
    assert [r["id"] for r in index.latest_stories()] == ["a"]


def test_a_record_missing_a_member_or_holding_a_stranger_is_not_kept(index: StoryIndex) -> None:
    # Process A assembled {a} while process B joined b: A's record is stale, and B writes
    # the record of {a, b} after its join, so refusing A's loses nothing.
    index.join("a", "a")
    index.join("a", "b")
    assert index.put_story("a", record("a", ["a"])) is False
    assert index.put_story("a", record("a", ["a", "b", "c"])) is False
    assert index.put_story("b", record("b", ["b"])) is False  # no such story
    assert index.get_story("a") is None
    assert index.changes() == []
    assert index.put_story("a", record("a", ["b", "a"])) is True
    assert index.changes() == [(1, "a")]


def test_a_record_put_after_its_story_merged_away_is_not_seen(index: StoryIndex) -> None:
    index.join("a", "a")
    index.join("b", "b")
    kept = put(index, "a")
    index.merge("a", "b")
    # a slow process assembled b before the merge
    assert index.put_story("b", record("b", ["b"])) is False
    assert index.get_story("b") == kept
    assert [r["id"] for r in index.latest_stories()] == ["a"]
    assert index.changes() == [(1, "a")]


def test_story_ids_lists_live_stories_sorted(index: StoryIndex) -> None:
    for story in ("m", "b", "z", "a"):
        index.join(story, f"{story}-item")
    index.merge("z", "m")
    assert index.story_ids() == ["a", "b", "m"]


# --- newest first ---------------------------------------------------------------------------
def test_latest_stories_newest_first_then_larger_id(index: StoryIndex) -> None:
    times = {
        "s1": ("2019-11-18T10:00:00+06:00",),
        # the earliest member counts, and offsets do not change the order
        "s2": ("2019-11-18T12:00:00+06:00", "2019-11-18T03:30:00Z"),
        "s3": ("2019-11-18T09:30:00+06:00",),  # same instant as s2
        "s4": (None,),  # no time: last
        "s5": ("2019-11-17T23:00:00+06:00", None, "not a time"),
        "s6": (),
        "s7": ("2019-11-19T08:00:00+06:00",),
    }
    kept = {}
    for story_id, published in times.items():
        index.join(story_id, story_id)
        for n in range(1, len(published)):
            index.join(story_id, f"{story_id}-{n}")
        kept[story_id] = put(index, story_id, *published)
    index.join("no-record", "no-record")
    newest = ["s7", "s1", "s3", "s2", "s5", "s6", "s4"]
    assert [r["id"] for r in index.latest_stories()] == newest
    assert index.latest_stories(limit=1)[0] == kept["s7"]
    assert [r["id"] for r in index.latest_stories(limit=3, offset=2)] == newest[2:5]
    assert index.latest_stories(limit=5, offset=10) == []
    index.merge("s1", "s7")
    assert [r["id"] for r in index.latest_stories()] == newest[1:]
    # a story whose only member left it drops out
    index.join("s2", "s3")
    assert [r["id"] for r in index.latest_stories(limit=3)] == ["s1", "s2", "s5"]


# --- change log ---------------------------------------------------------------------------
def test_changes_number_every_put_and_page_by_cursor(index: StoryIndex) -> None:
    assert index.changes() == []
    for story_id in ("b", "a", "b", "c"):
        index.join(story_id, story_id)
        put(index, story_id)
    assert index.changes() == [(1, "b"), (2, "a"), (3, "b"), (4, "c")]
    assert index.changes(after=2) == [(3, "b"), (4, "c")]
    assert index.changes(after=1, limit=2) == [(2, "a"), (3, "b")]
    assert index.changes(after=4) == []
    index.merge("a", "b")
    merged = put(index, "a")
    # the log keeps b, merged away since; get_story follows it
    assert index.changes(after=3) == [(4, "c"), (5, "a")]
    assert index.get_story(index.changes(limit=1)[0][1]) == merged


# --- linking through each index --------------------------------------------------------------
@pytest.fixture(scope="module")
def sources() -> list[Source]:
    return demo_sources()


@pytest.fixture(scope="module")
def reference(sources: list[Source]) -> MemoryStoryIndex:
    reference = MemoryStoryIndex()
    linker = StoryLinker(reference, sources)
    for item in demo_items():
        linker.link(item)
    return reference


def test_linking_the_demo_corpus_gives_the_reference_stories(
    index: StoryIndex, sources: list[Source], reference: MemoryStoryIndex
) -> None:
    linker = StoryLinker(index, sources)
    for item in demo_items():
        linker.link(item)
    assert partition(index) == partition(reference)
    assert any(len(members) >= 4 for members in partition(index))
    everything = len(reference.story_ids())
    assert index.latest_stories(limit=everything) == reference.latest_stories(limit=everything)
    assert index.changes(limit=10_000) == reference.changes(limit=10_000)


# --- what each backend adds -----------------------------------------------------------------
def test_sqlite_index_leaves_the_item_schema_version_alone(tmp_path: Path) -> None:
    path = f"{tmp_path}/fresh.db"
    index = SQLiteStoryIndex(path)  # first on a fresh file
    index.join("a", "a")
    store = SQLiteStore(f"sqlite:///{path}")
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.count_items() == 0
    store.close()
    index.close()
    again = SQLiteStoryIndex(path)
    assert again.story_of("a") == "a"
    again.close()


def test_sqlite_failures_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    garbage = tmp_path / "not-a-database.db"
    garbage.write_bytes(b"this is not SQLite " * 100)
    with pytest.raises(StoreError, match=r"not-a-database\.db"):
        SQLiteStoryIndex(str(garbage))
    # another process holds the write lock longer than we wait
    monkeypatch.setattr("pipelines.store.sqlite.BUSY_TIMEOUT_S", 0.1)
    path = str(tmp_path / "locked.db")
    index = SQLiteStoryIndex(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match=r"locked\.db.*locked"):
            index.join("a", "a")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert index.join("a", "a") == "a"
    index.close()


@pytest.mark.redis
def test_redis_keys_are_readable_and_json(redis_url: str, redis_server: RedisServer) -> None:
    store = RedisStore(f"{redis_url}?prefix=pw-readable:")
    index = store.story_index()
    index.put_item(summary("a", title="Мамин и Рогозин"))
    index.add_keys("a", ["07:9f86d081884c7d65"])
    index.join("a", "a")
    put(index, "a", "2019-11-18T10:00:00+06:00")
    keys = Keys("pw-readable:")
    with redis_server.client() as client:
        assert client.zrange(keys.story_key("07:9f86d081884c7d65"), 0, -1) == ["a"]
        assert '"title": "Мамин и Рогозин"' in client.get(keys.story_item("a"))
        assert client.hget(keys.item_stories(), "a") == "a"
        assert client.smembers(keys.story_members("a")) == {"a"}
        assert client.get(keys.story("a")).startswith('{"id": "a"')
        assert client.lrange(keys.story_changes(), 0, -1) == ["a"]
        assert all(key.startswith("pw-readable:") for key in client.scan_iter())
    index.close()
    store.close()


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound but not listening, so no one else takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]


@pytest.mark.redis
def test_redis_failures_name_the_server_not_the_password() -> None:
    with closed_port() as port:
        link = RedisLink.open(f"redis://:CANARY-REDIS-0a1b@127.0.0.1:{port}/0")
        index = RedisStoryIndex(link)
        with pytest.raises(StoreError, match=f"127.0.0.1:{port}") as failure:
            index.join("a", "a")
        assert "CANARY" not in str(failure.value)
        link.client.close()
