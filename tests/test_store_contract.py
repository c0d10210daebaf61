"""The Store contract, run against SQLite and Redis alike, plus what each backend adds."""

from __future__ import annotations

import json
import logging
import multiprocessing
import sqlite3
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from crawler.items import PressItem, content_hash
from pipelines.store import open_store
from pipelines.store import sqlite as sqlite_store
from pipelines.store.base import ItemQuery, StoreError
from pipelines.store.keys import Keys
from pipelines.store.redis import RedisStore
from pipelines.store.sqlite import SCHEMA_VERSION, SQLiteStore
from pipelines.store.urls import redact_url
from tests.fixtures.redis_server import running_redis_server

if TYPE_CHECKING:
    from pathlib import Path

    from pipelines.store.base import Store

CANARY_PASSWORD = "CANARY-REDIS-5d1c0b7e"  # noqa: S105 -- a test password that must never leak


def make_item(
    path: str,
    *,
    source: str = "primeminister",
    title: str = "Заголовок",
    text: str = "Текст сообщения.",
    published_at: str | None = "2019-11-18T10:00:00+06:00",
    fetched_at: str = "2019-11-18T12:00:00+06:00",
    lang: str | None = "ru",
) -> dict[str, Any]:
    return PressItem(
        url=f"https://{source}.kz/ru/news/{path}",
        source=source,
        title=title,
        text=text,
        published_at=published_at,
        fetched_at=fetched_at,
        lang=lang,
        content_hash=content_hash(text),
        authors=["Пресс-служба"],
        links=["https://primeminister.kz/ru/news/1"],
    ).to_dict()


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


# --- items -------------------------------------------------------------------------------
def test_add_get_and_add_again_keeps_one_copy(store: Store) -> None:
    item = make_item("1", title="Минфин РК: бюджет", text="Полный текст «в кавычках».")
    assert store.add_item(item) is True
    assert store.get_item(item["id"]) == item
    changed = {**item, "title": "другой заголовок"}
    assert store.add_item(changed) is False
    assert store.get_item(item["id"]) == item
    assert store.count_items() == 1
    assert store.get_item("0000000000000000") is None


def test_known_ids_answers_for_a_whole_feed(store: Store) -> None:
    stored = [make_item(str(n)) for n in range(5)]
    for item in stored:
        store.add_item(item)
    feed = [stored[0]["id"], "unknown-1", stored[3]["id"], stored[3]["id"], "unknown-2"]
    assert store.known_ids(feed) == {stored[0]["id"], stored[3]["id"]}
    assert store.known_ids(iter(feed)) == {stored[0]["id"], stored[3]["id"]}
    assert store.known_ids([]) == set()
    big_feed = [f"unknown-{n}" for n in range(2500)] + [stored[4]["id"]]
    assert store.known_ids(big_feed) == {stored[4]["id"]}


def test_content_hash_names_the_first_item_of_the_source_with_that_text(store: Store) -> None:
    original = make_item("1", source="primeminister", text="Один и тот же текст.")
    mirror = make_item("2", source="primeminister", text="Один и тот же текст.")
    copy = make_item("3", source="caravan", text="Один и тот же текст.")
    for item in (original, mirror, copy):
        store.add_item(item)
    digest = content_hash("Один и тот же текст.")
    assert store.stored_copy("new", "primeminister", digest) == original["id"]
    assert store.stored_copy("new", "caravan", digest) == copy["id"]  # a copy, not a mirror
    assert store.stored_copy("new", "tengrinews", digest) is None
    assert store.stored_copy("new", "caravan", content_hash("никогда не встречался")) is None
    # the item itself, when stored, before any other with its text
    assert store.stored_copy(mirror["id"], "primeminister", digest) == mirror["id"]
    assert store.stored_copy(copy["id"], "caravan", None) == copy["id"]
    assert store.stored_copy("new", "caravan", None) is None


def test_item_without_content_hash_is_stored_but_not_hash_indexed(store: Store) -> None:
    item = {**make_item("1"), "content_hash": ""}
    assert store.add_item(item) is True
    assert store.get_item(item["id"]) == item
    assert store.stored_copy("other", item["source"], "") is None


@pytest.fixture
def corpus(store: Store) -> dict[str, str]:
    """Eight items over three days, two sources, two languages, in shuffled insert order."""
    items = {
        "pm_old": make_item("pm-old", published_at="2019-11-16T09:00:00+06:00"),
        "pm_mid": make_item(
            "pm-mid", title="Минфин сообщил о бюджете", published_at="2019-11-17T09:00:00+06:00"
        ),
        # Same instant as pm_mid, written in UTC: the offset must not change the order.
        "zk_mid": make_item(
            "zk-mid",
            source="zakon",
            text="По данным МИНФИНа, дефицит снизился.",
            published_at="2019-11-17T03:00:00Z",
        ),
        "zk_kk": make_item(
            "zk-kk",
            source="zakon",
            lang="kk",
            title="Қаржы министрлігі",
            text="Байқоңырда жиын өтті.",
            published_at="2019-11-17T12:00:00+06:00",
        ),
        "pm_new": make_item("pm-new", published_at="2019-11-18T15:30:00+06:00"),
        # No date on the page: ordered by when it was fetched.
        "zk_nodate": make_item(
            "zk-nodate", source="zakon", published_at=None, fetched_at="2019-11-18T08:00:00+06:00"
        ),
        "pm_nodate_old": make_item(
            "pm-nodate-old", published_at=None, fetched_at="2019-11-15T08:00:00+06:00"
        ),
        "pm_es": make_item(
            "pm-es", text="Казахстан и ЕС подписали соглашение.", published_at="2019-11-16T18:00"
        ),
    }
    for key in ["pm_new", "pm_old", "zk_nodate", "zk_kk", "pm_es", "zk_mid", "pm_nodate_old"]:
        store.add_item(items[key])
    store.add_item(items["pm_mid"])
    return {key: item["id"] for key, item in items.items()}


# When each corpus item happened, in UTC: newest first means this, then the larger id.
INSTANTS = {
    "pm_new": "2019-11-18T09:30",
    "zk_nodate": "2019-11-18T02:00",  # fetched
    "zk_kk": "2019-11-17T06:00",
    "zk_mid": "2019-11-17T03:00",
    "pm_mid": "2019-11-17T03:00",
    "pm_es": "2019-11-16T18:00",  # no offset: taken as UTC
    "pm_old": "2019-11-16T03:00",
    "pm_nodate_old": "2019-11-15T02:00",  # fetched
}


def expected(corpus: dict[str, str], keys: list[str]) -> list[str]:
    newest_first = sorted(keys, key=lambda key: (INSTANTS[key], corpus[key]), reverse=True)
    return [corpus[key] for key in newest_first]


def test_items_newest_first_with_fetch_time_standing_in_for_a_missing_date(
    store: Store, corpus: dict[str, str]
) -> None:
    assert ids(store.items()) == expected(corpus, list(INSTANTS))
    assert ids(store.items())[:2] == [corpus["pm_new"], corpus["zk_nodate"]]
    assert ids(store.items())[-1] == corpus["pm_nodate_old"]


def test_item_with_a_garbled_date_is_ordered_by_fetch_time(store: Store) -> None:
    garbled = make_item("garbled", published_at="18 ноября 2019", fetched_at="2019-11-18T12:00Z")
    older = make_item("older", published_at="2019-11-18T11:00:00Z")
    store.add_item(older)
    store.add_item(garbled)
    assert ids(store.items()) == [garbled["id"], older["id"]]
    assert ids(store.items(ItemQuery(since="2019-11-18T11:30Z"))) == [garbled["id"]]
    assert store.get_item(garbled["id"])["published_at"] == "18 ноября 2019"  # kept as given


@pytest.mark.parametrize(
    ("query", "keys"),
    [
        (ItemQuery(source="zakon"), ["zk_mid", "zk_kk", "zk_nodate"]),
        (ItemQuery(source="nobody"), []),
        (ItemQuery(lang="kk"), ["zk_kk"]),
        (ItemQuery(source="zakon", lang="ru"), ["zk_mid", "zk_nodate"]),
        # since is inclusive, until exclusive; offsets are compared as instants.
        (
            ItemQuery(since="2019-11-17T09:00:00+06:00"),
            ["pm_new", "zk_nodate", "zk_kk", "zk_mid", "pm_mid"],
        ),
        (ItemQuery(until="2019-11-17T03:00:00+00:00"), ["pm_es", "pm_old", "pm_nodate_old"]),
        (
            ItemQuery(since="2019-11-17T01:00:00+06:00", until="2019-11-18T08:00:00+06:00"),
            ["zk_kk", "zk_mid", "pm_mid"],
        ),
        (
            ItemQuery(source="primeminister", since="2019-11-16"),
            ["pm_new", "pm_mid", "pm_es", "pm_old"],
        ),
        # Case-insensitive Cyrillic, in the title or the text.
        (ItemQuery(text="минфин"), ["zk_mid", "pm_mid"]),
        (ItemQuery(text="МИНФИН", source="primeminister"), ["pm_mid"]),
        (ItemQuery(text="байқоңыр"), ["zk_kk"]),
        (ItemQuery(text="ес"), ["pm_es"]),  # a two-letter word
        (ItemQuery(text='"кавычки" OR x'), []),
        (ItemQuery(text="минфин", lang="kk"), []),
    ],
)  # fmt: skip
def test_items_filters(
    store: Store, corpus: dict[str, str], query: ItemQuery, keys: list[str]
) -> None:
    assert ids(store.items(query)) == expected(corpus, keys)


def test_items_limit_and_offset_page_through_in_order(store: Store, corpus: dict[str, str]) -> None:
    everything = ids(store.items(ItemQuery(limit=100)))
    assert len(everything) == 8
    pages = [ids(store.items(ItemQuery(limit=3, offset=start))) for start in (0, 3, 6)]
    assert [len(page) for page in pages] == [3, 3, 2]
    assert [item_id for page in pages for item_id in page] == everything
    assert store.items(ItemQuery(limit=3, offset=8)) == []
    assert store.items(ItemQuery(limit=0)) == []
    zakon_page = ids(store.items(ItemQuery(source="zakon", lang="ru", limit=1, offset=1)))
    assert zakon_page == [corpus["zk_mid"]]


def test_items_refuses_a_time_that_is_not_iso(store: Store) -> None:
    with pytest.raises(ValueError, match="not an ISO 8601 time: 'yesterday'"):
        store.items(ItemQuery(since="yesterday"))


def test_item_sources_name_every_source_with_items(store: Store, corpus: dict[str, str]) -> None:
    assert store.item_sources() == ["primeminister", "zakon"]
    store.add_item(make_item("x", source="aqsu"))
    assert store.item_sources() == ["aqsu", "primeminister", "zakon"]


def test_count_items_in_all_and_per_source(store: Store, corpus: dict[str, str]) -> None:
    assert store.count_items() == 8
    assert store.count_items("zakon") == 3
    assert store.count_items("primeminister") == 5
    assert store.count_items("nobody") == 0


def test_count_items_in_windows_all_and_per_source(store: Store, corpus: dict[str, str]) -> None:
    # Days in Almaty time (+06:00); a window's end is exclusive.
    days = [(f"2019-11-{d}T00:00+06:00", f"2019-11-{d + 1}T00:00+06:00") for d in (16, 17, 18)]
    assert store.count_items_in(days) == [1, 4, 2]  # pm_es: 18:00 UTC is the 17th here
    assert store.count_items_in(days, source="zakon") == [0, 2, 1]
    assert store.count_items_in(days, source="nobody") == [0, 0, 0]
    edge = [("2019-11-17T09:00:00+06:00", "2019-11-17T12:00:00+06:00")]
    assert store.count_items_in(edge) == [2]  # pm_mid and zk_mid, not zk_kk at the end
    assert store.count_items_in([]) == []


# --- validators --------------------------------------------------------------------------
def test_validators_round_trip_and_replace(store: Store) -> None:
    feed = "https://tengrinews.kz/rss/all.xml?lang=ru&ключ=значение"
    assert store.get_validators(feed) == {}
    store.set_validators(
        feed, {"etag": 'W/"5d-abc"', "last_modified": "Mon, 18 Nov 2019 04:05:00 GMT"}
    )
    assert store.get_validators(feed) == {
        "etag": 'W/"5d-abc"',
        "last_modified": "Mon, 18 Nov 2019 04:05:00 GMT",
    }
    store.set_validators(feed, {"etag": '"new"'})
    assert store.get_validators(feed) == {"etag": '"new"'}
    assert store.get_validators("https://tengrinews.kz/rss/") == {}


# --- runs --------------------------------------------------------------------------------
def make_run(run_id: str, source: str, started_at: str, status: str = "ok") -> dict[str, Any]:
    return {
        "id": run_id,
        "source": source,
        "started_at": started_at,
        "ended_at": started_at,
        "status": status,
        "stats": {"item_scraped_count": 12, "dedup/dropped": 3},
    }


def test_runs_newest_first_and_per_source(store: Store) -> None:
    store.add_run(make_run("r1", "akorda", "2019-11-18T08:00:00+06:00"))
    store.add_run(make_run("r3", "akorda", "2019-11-18T10:00:00+06:00"))
    store.add_run(make_run("r2", "zakon", "2019-11-18T03:30:00Z"))  # 09:30 +06:00
    assert [run["id"] for run in store.runs()] == ["r3", "r2", "r1"]
    assert [run["id"] for run in store.runs(limit=2)] == ["r3", "r2"]
    assert [run["id"] for run in store.runs(source="akorda")] == ["r3", "r1"]
    assert store.runs(source="nobody") == []
    assert store.runs(limit=0) == []
    assert store.runs()[0] == make_run("r3", "akorda", "2019-11-18T10:00:00+06:00")


def test_recording_a_run_again_replaces_it(store: Store) -> None:
    store.add_run(make_run("r1", "akorda", "2019-11-18T08:00:00+06:00", status="running"))
    store.add_run(make_run("r1", "akorda", "2019-11-18T08:00:00+06:00", status="partial"))
    assert [(run["id"], run["status"]) for run in store.runs()] == [("r1", "partial")]


# --- two processes -----------------------------------------------------------------------
def add_all(url: str, items: list[dict[str, Any]], start: Any, results: Any) -> None:
    """Child process: open the store, wait for the other writer, add every item."""
    store = open_store(url)
    start.wait()
    results.put(sum(store.add_item(item) for item in items))
    store.close()


def test_two_processes_adding_the_same_items_keep_one_copy_each(
    store: Store, store_url: str
) -> None:
    items = [make_item(f"shared-{n}", text=f"Текст {n}") for n in range(150)]
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    results = context.Queue()
    writers = [
        context.Process(target=add_all, args=(store_url, order, start, results))
        for order in (items, items[::-1])
    ]
    for writer in writers:
        writer.start()
    created = [results.get(timeout=60) for _ in writers]
    for writer in writers:
        writer.join(timeout=60)
    assert [writer.exitcode for writer in writers] == [0, 0]
    assert sum(created) == len(items)
    assert store.count_items() == len(items)
    assert store.count_items("primeminister") == len(items)
    assert store.known_ids(ids(items)) == set(ids(items))
    assert len(store.items(ItemQuery(limit=1000))) == len(items)
    assert store.stored_copy("new", "primeminister", content_hash("Текст 7")) == items[7]["id"]


# --- SQLite only -------------------------------------------------------------------------
def test_sqlite_relative_and_absolute_urls_open_files_in_existing_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    relative = SQLiteStore("sqlite:///data/relative.db")
    relative.add_item(make_item("1"))
    relative.close()
    assert (tmp_path / "data/relative.db").is_file()
    absolute = SQLiteStore(f"sqlite:///{tmp_path}/absolute.db")
    absolute.close()
    assert (tmp_path / "absolute.db").is_file()
    assert SQLiteStore("sqlite:///data/relative.db", create=False).count_items() == 1


def test_sqlite_never_creates_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"the directory '.*/nope/dir' .* does not exist"):
        open_store(f"sqlite:///{tmp_path}/nope/dir/x.db")
    assert list(tmp_path.iterdir()) == []


def test_sqlite_opened_for_reading_never_creates_the_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"no SQLite store at '.*/missing\.db'"):
        open_store(f"sqlite:///{tmp_path}/missing.db", create=False)
    assert list(tmp_path.iterdir()) == []


def test_sqlite_file_is_wal_with_readable_json(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/p.db")
    item = make_item("1", title="Минфин")
    store.add_item(item)
    store.close()
    with sqlite3.connect(tmp_path / "p.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        title = db.execute("SELECT data ->> '$.title' FROM items").fetchone()
    db.close()
    assert title == ("Минфин",)


def test_sqlite_wal_is_copied_back_by_the_stores_checkpointer_not_by_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/p.db")
    index = store.story_index()
    for connection in (store._db, index._db):
        assert connection.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    index.close()
    store._checkpointer.close()  # stopped: nothing copies the WAL back now
    file, wal = tmp_path / "p.db", tmp_path / "p.db-wal"
    before = file.stat().st_size
    text = "Министерство финансов " * 200
    for n in range(50):
        store.add_item(make_item(str(n), text=text))
    assert file.stat().st_size == before  # every commit stayed in the WAL
    assert wal.stat().st_size > 50 * len(text.encode())
    monkeypatch.setattr(sqlite_store, "WAL_TRUNCATE_BYTES", 1024)
    sqlite_store.WalCheckpointer(store.path, every=3600).close()  # one checkpoint, at close
    assert file.stat().st_size > 50 * len(text.encode())  # copied back
    assert wal.stat().st_size == 0  # and the WAL, past the bound, emptied
    assert len(store.items(ItemQuery(limit=100))) == 50
    store.close()


def test_text_search_finds_word_prefixes_and_phrases(store: Store) -> None:
    # Deliberately words, not substrings: SQLite's word index is what keeps storing cheap,
    # and Redis, which scans, means the same by a query.
    store.add_item(make_item("1", text="Министерство финансов сообщило о МИНФИНовском плане."))
    store.add_item(make_item("2", text="Ещё одна новость, без совпадений; знаки: !!!"))

    def found(text: str) -> list[str]:
        return [item["url"].rsplit("/", 1)[1] for item in store.items(ItemQuery(text=text))]

    assert found("минфин") == ["1"]  # a prefix of an inflected word
    assert found("финансов сообщ") == ["1"]  # a phrase, its last word a prefix
    assert found("сообщило финансов") == []  # words out of order are no phrase
    assert found("нфин") == []  # inside a word
    assert found("!!!") == ["2"]  # no words at all: a plain substring scan
    assert found("Ещё одна") == ["2"]  # ё read as е on both sides


def test_sqlite_schema_1_trigram_index_is_rebuilt_as_words(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SQLiteStore(f"sqlite:///{path}")
    store.add_item(make_item("1", text="По данным МИНФИНа, дефицит снизился."))
    store.close()
    with sqlite3.connect(path) as db:
        db.executescript(
            "DROP TABLE items_text;"
            " CREATE VIRTUAL TABLE items_text"
            " USING fts5(title, text, content='', tokenize='trigram');"
            " PRAGMA user_version = 1;"
        )
    db.close()
    reopened = SQLiteStore(f"sqlite:///{path}")
    assert ids(reopened.items(ItemQuery(text="минфин"))) == [make_item("1")["id"]]
    reopened.add_item(make_item("2", text="Минфин ответил."))
    assert len(reopened.items(ItemQuery(text="Минфин"))) == 2
    reopened.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    db.close()


def test_sqlite_schema_3_items_indexed_by_its_trigger_stay_found(tmp_path: Path) -> None:
    """Schema 3 indexed each item as it was written; schema 4 on indexes when searched."""
    path = tmp_path / "v3.db"
    SQLiteStore(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        db.executescript(
            "DELETE FROM state;"
            " CREATE TRIGGER items_text_insert AFTER INSERT ON items BEGIN"
            " INSERT INTO items_text (rowid, title, text) VALUES (new.rowid,"
            " json_extract(new.data, '$.title'), json_extract(new.data, '$.text')); END;"
            " PRAGMA user_version = 3;"
        )
        item = make_item("old", text="Минфин сообщил о дефиците.")
        db.execute(
            "INSERT INTO items (id, source, sort_time, data) VALUES (?, ?, ?, ?)",
            (item["id"], item["source"], "2019-11-18T00:00:00", json.dumps(item)),
        )
    db.close()
    reopened = SQLiteStore(f"sqlite:///{path}")
    reopened.add_item(make_item("new", text="Минфин ответил."))
    assert sorted(ids(reopened.items(ItemQuery(text="минфин")))) == sorted(
        [make_item("old")["id"], make_item("new")["id"]]
    )
    reopened.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall() == []
        # each item indexed once: both again by the search, with ё read as е (schema 5)
        assert db.execute("SELECT count(*) FROM items_text_docsize").fetchone() == (2,)
    db.close()


def test_a_search_indexes_every_item_written_since_the_last_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    writer, searcher = SQLiteStore(url), SQLiteStore(url)
    total = sqlite_store.INDEX_BATCH + 5  # more than one batch
    for number in range(total):
        writer.add_item(make_item(str(number), text=f"Минфин, сообщение {number}."))
    assert len(searcher.items(ItemQuery(text="минфин", limit=total + 1))) == total
    writer.add_item(make_item("late", text="Минфин опоздал."))
    assert ids(searcher.items(ItemQuery(text="опоздал"))) == [make_item("late")["id"]]
    writer.close()
    searcher.close()


def test_sqlite_schema_2_gains_the_state_table(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    SQLiteStore(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        db.executescript("DROP TABLE state; PRAGMA user_version = 2;")
    db.close()
    reopened = SQLiteStore(f"sqlite:///{path}")
    reopened.set_state("alerts/cursor", {"sequence": 7})
    assert reopened.get_state("alerts/cursor") == {"sequence": 7}
    reopened.close()


def test_named_state_round_trips_and_is_replaced(store: Store) -> None:
    assert store.get_state("health/akorda") is None
    store.set_state("health/akorda", {"status": "ok", "note": "Ақорда"})
    store.set_state("alerts/cursor", {"sequence": 3})
    assert store.get_state("health/akorda") == {"status": "ok", "note": "Ақорда"}
    store.set_state("alerts/cursor", {"sequence": 4})
    assert store.get_state("alerts/cursor") == {"sequence": 4}


def test_sqlite_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-db").write_text("plain text, not SQLite")
    with pytest.raises(StoreError, match="cannot open the SQLite store"):
        SQLiteStore(f"sqlite:///{tmp_path}/not-a-db")


def test_sqlite_refuses_a_file_from_a_newer_schema(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "future.db") as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="schema 99, newer than this Presswatch knows"):
        SQLiteStore(f"sqlite:///{tmp_path}/future.db")


def test_sqlite_write_failure_is_a_store_error_naming_the_file(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/ro.db")
    # Root ignores file modes, so make the connection read-only from the inside.
    store._db.execute("PRAGMA query_only = 1")
    with pytest.raises(StoreError, match=r"ro\.db.*readonly"):
        store.add_item(make_item("1"))
    store.close()


# --- Redis only --------------------------------------------------------------------------
@pytest.mark.redis
def test_redis_keys_are_readable_json(redis_url: str) -> None:
    store = RedisStore(redis_url)
    item = make_item("1", source="akorda", lang="kk")
    store.add_item(item)
    store.set_validators("https://akorda.kz/ru/rss", {"etag": "x"})
    store.add_run(make_run("r1", "akorda", "2019-11-18T08:00:00+06:00"))
    raw = store._redis  # the test reads what an operator sees in redis-cli
    assert json.loads(raw.get(f"pw:item:{item['id']}")) == item
    assert raw.zscore("pw:items:by_time", item["id"]) == 1574049600.0  # 10:00 +06:00
    assert raw.zscore("pw:source:akorda:items", item["id"]) is not None
    assert raw.zscore("pw:lang:kk:items", item["id"]) is not None
    assert raw.get(f"pw:source:akorda:hash:{item['content_hash']}") == item["id"]
    assert json.loads(raw.get(Keys().validators("https://akorda.kz/ru/rss")))["url"] == (
        "https://akorda.kz/ru/rss"
    )
    assert raw.zrange("pw:source:akorda:runs", 0, -1) == ["r1"]
    # The word index: the item's ordinal, its id by ordinal, the ordinal under each prefix
    # of its words ("Заголовок", "Текст сообщения."), as 4 bytes.
    assert raw.get("pw:items:ordinals") == "1"
    assert raw.hgetall("pw:items:by_ordinal:0") == {"1": item["id"]}
    words = {"pw:words:заго", "pw:words:текс", "pw:words:сооб"}
    assert {raw.get(key) for key in words} == {"\x00\x00\x00\x01"}
    assert set(raw.keys("*")) == {
        f"pw:item:{item['id']}",
        "pw:items:by_time",
        "pw:source:akorda:items",
        "pw:lang:kk:items",
        f"pw:source:akorda:hash:{item['content_hash']}",
        Keys().validators("https://akorda.kz/ru/rss"),
        "pw:run:r1",
        "pw:runs",
        "pw:source:akorda:runs",
        "pw:items:ordinals",
        "pw:items:by_ordinal:0",
        "pw:words:_complete",
        *words,
        "pw:sources:with_items",
    }
    assert raw.smembers("pw:sources:with_items") == {"akorda"}
    store.close()


@pytest.mark.redis
def test_redis_prefix_lets_two_deployments_share_a_server(redis_url: str) -> None:
    first = RedisStore(redis_url)
    second = open_store(f"{redis_url}?prefix=pw2:")
    first.add_item(make_item("1"))
    assert second.count_items() == 0
    assert second.add_item(make_item("1")) is True
    assert second.keys.prefix == "pw2:"
    assert "prefix=pw2" in second.url
    assert first._redis.exists(f"pw2:item:{make_item('1')['id']}") == 1
    first.close()
    second.close()


@pytest.mark.redis
def test_redis_password_is_never_shown(tmp_path: Path) -> None:
    with running_redis_server(tmp_path / "auth", password=CANARY_PASSWORD) as server:
        store = RedisStore(server.url)
        store.add_item(make_item("1"))
        assert CANARY_PASSWORD not in store.url
        assert store.url == f"redis://:***@127.0.0.1:{server.port}/0"
        store.close()

        wrong = f"redis://:{CANARY_PASSWORD}-wrong@127.0.0.1:{server.port}/0"
        with pytest.raises(StoreError) as wrong_password:
            RedisStore(wrong)
        missing = f"redis://127.0.0.1:{server.port}/0"
        with pytest.raises(StoreError) as missing_password:
            RedisStore(missing)
    for error in (wrong_password.value, missing_password.value):
        message = str(error)
        assert f"127.0.0.1:{server.port}" in message
        assert "password" in message
        assert CANARY_PASSWORD not in message
        assert CANARY_PASSWORD not in str(error.__cause__)
    assert "refused the password" in str(wrong_password.value)
    assert "asks for a password and the store URL has none" in str(missing_password.value)


@pytest.mark.redis
def test_redis_unreachable_is_a_clear_store_error(tmp_path: Path) -> None:
    with running_redis_server(tmp_path / "gone") as server:
        port = server.port
    url = f"redis://:{CANARY_PASSWORD}@127.0.0.1:{port}/0"
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}.*redis-server running") as error:
        RedisStore(url)
    assert CANARY_PASSWORD not in str(error.value)


@pytest.mark.redis
def test_redis_warns_when_it_may_lose_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    extra = ("--appendonly", "no", "--maxmemory-policy", "allkeys-lru")
    with (
        running_redis_server(tmp_path / "lossy", *extra) as server,
        caplog.at_level(logging.WARNING, logger="pipelines.store.redis"),
    ):
        RedisStore(server.url).close()
    warnings = " ".join(record.getMessage() for record in caplog.records)
    assert "appendonly=no" in warnings
    assert "maxmemory-policy=allkeys-lru" in warnings


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:secret@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:secret@h:6379/0", "redis://user:***@h:6379/0"),
        ("redis://h:6379/0?password=secret&prefix=pw:", "redis://h:6379/0?password=***&prefix=pw:"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("rediss://user@h:6380/1", "rediss://user@h:6380/1"),
        ("sqlite:///presswatch.db", "sqlite:///presswatch.db"),
        ("sqlite:////var/lib/presswatch/pw.db", "sqlite:////var/lib/presswatch/pw.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_word_prefixes_narrow_but_keep_decides(store: Store) -> None:
    texts = {
        "a": "Запуск с Байконура перенесли.",
        "b": "Байқоңырда ұшыру өтті.",
        "c": "Космодромы мира: Байконур и Восточный.",
        "d": "На Байкале потеплело.",
    }
    for key, text in texts.items():
        store.add_item(make_item(key, text=text))
    query = ItemQuery(
        keep=lambda item: "Байконур" in item["text"] or "Байқоңыр" in item["text"],
        word_prefixes=("байконур", "байқоңыр"),
        limit=10,
    )
    found = {item["text"] for item in store.items(query)}
    assert found == {texts["a"], texts["b"], texts["c"]}


def test_a_word_search_past_the_plain_scan_finds_the_older_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pipelines.store.sqlite.PLAIN_SCAN_ROWS", 2)  # then the word index
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    try:
        for n in range(6):
            word = "Байконура" if n % 3 == 0 else "Байкала"
            store.add_item(
                make_item(f"n{n}", text=f"Новость {n} про {word}.",
                          published_at=f"2019-11-18T1{n}:00:00+06:00")
            )  # fmt: skip
        query = ItemQuery(
            keep=lambda item: "Байконур" in item["text"], word_prefixes=("байконур",), limit=10
        )
        assert [item["text"] for item in store.items(query)] == [
            "Новость 3 про Байконура.",
            "Новость 0 про Байконура.",
        ]
    finally:
        store.close()


# --- word search (SQLite's FTS5 index, Redis's word index or its scan) ---------------------
@pytest.fixture
def words_corpus(store: Store) -> dict[str, str]:
    """Items for word searches: inflected forms, ё and е, a phrase and its words apart."""
    items = {
        "baik_pm": make_item(
            "baik-pm", title="Запуск с Байконура перенесли", published_at="2019-11-18T10:00+06:00"
        ),
        "baik_kk": make_item(
            "baik-kk", source="zakon", lang="kk", text="Байқоңырда ұшыру өтті.",
            published_at="2019-11-17T10:00+06:00",
        ),
        "baik_zk": make_item(
            "baik-zk", source="zakon", text="Космодромы мира: Байконур и Восточный.",
            published_at="2019-11-16T10:00+06:00",
        ),
        "baikal": make_item("baikal", text="На Байкале потеплело.", published_at="2019-11-15"),
        "actor_yo": make_item("actor-yo", title="Актёры театра", published_at="2019-11-14"),
        "actor_e": make_item("actor-e", text="АКТЕРЫ и зрители.", published_at="2019-11-13"),
        "phrase": make_item(
            "phrase", text="Министерство финансов сообщило о плане.", published_at="2019-11-12"
        ),
        "apart": make_item(
            "apart", text="Финансов не хватает, сообщило министерство.", published_at="2019-11-11"
        ),
    }  # fmt: skip
    for item in items.values():
        store.add_item(item)
    return {key: item["id"] for key, item in items.items()}


def searched(store: Store, query: ItemQuery, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids `query` finds; on Redis, checked to be what the newest-first scan finds too."""
    found = ids(store.items(query))
    if isinstance(store, RedisStore):
        with monkeypatch.context() as scanning:
            scanning.setattr("pipelines.store.redis_words.use_index", lambda *_: False)
            assert ids(store.items(query)) == found, "the scan and the word index disagree"
    return found


def words(term: str, **filters: Any) -> ItemQuery:
    """What the dashboard asks for a word search: the matcher's test and word prefixes."""
    from scheduler.matcher import text_search

    search = text_search(term)
    return ItemQuery(keep=search, word_prefixes=search.prefixes, limit=20, **filters)


@pytest.mark.parametrize(
    ("query", "keys"),
    [
        # The matcher's inflections and spellings, narrowed by its word prefixes.
        (words("Байконур"), ["baik_pm", "baik_zk"]),
        (words("Байқоңыр"), ["baik_kk"]),
        (words("актёр"), ["actor_yo", "actor_e"]),
        # Words in order, case-insensitive, ё read as е both ways, the last one a prefix.
        (ItemQuery(text="актеры"), ["actor_yo", "actor_e"]),
        (ItemQuery(text="АКТЁР"), ["actor_yo", "actor_e"]),
        (ItemQuery(text="байкал"), ["baikal"]),
        (ItemQuery(text="финансов сообщ"), ["phrase"]),  # every word, in order
        (ItemQuery(text="министерство финансов"), ["phrase"]),
        (ItemQuery(text="сообщило финансов"), []),
        (ItemQuery(text="финан"), ["phrase", "apart"]),
        (ItemQuery(text="на"), ["baikal"]),  # shorter than an indexed prefix
        (ItemQuery(text="квазикристалл"), []),
        # Combined with source, language and time.
        (words("Байконур", source="zakon"), ["baik_zk"]),
        (words("Байконур", lang="ru"), ["baik_pm", "baik_zk"]),
        (words("Байконур", since="2019-11-17T00:00+06:00"), ["baik_pm"]),
        (words("Байконур", until="2019-11-17T00:00+06:00"), ["baik_zk"]),
        (ItemQuery(text="космодром", source="zakon", lang="ru", since="2019-11-16",
                   until="2019-11-17"), ["baik_zk"]),
        (ItemQuery(text="космодром", source="zakon", lang="kk"), []),
        (ItemQuery(text="байконур", until="2019-11-16T10:00+06:00"), []),  # until: exclusive
        (ItemQuery(text="байконур", since="2019-11-16T10:00+06:00"), ["baik_pm", "baik_zk"]),
        # Without the caller's test, the word prefixes themselves filter.
        (ItemQuery(word_prefixes=("байконур", "байқоңыр")), ["baik_pm", "baik_kk", "baik_zk"]),
    ],
)  # fmt: skip
def test_word_search(
    store: Store,
    words_corpus: dict[str, str],
    query: ItemQuery,
    keys: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert searched(store, query, monkeypatch) == [words_corpus[key] for key in keys]


def test_word_search_pages_newest_first(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(7):
        word = "Байконура" if n % 2 == 0 else "Байкала"
        store.add_item(
            make_item(f"n{n}", text=f"Новость {n} про {word}.",
                      published_at=f"2019-11-18T1{n}:00:00+06:00")
        )  # fmt: skip
    pages = [
        [item["text"] for item in store.items(replace(words("Байконур"), limit=2, offset=start))]
        for start in (0, 2, 4)
    ]
    assert pages == [
        ["Новость 6 про Байконура.", "Новость 4 про Байконура."],
        ["Новость 2 про Байконура.", "Новость 0 про Байконура."],
        [],
    ]
    assert len(searched(store, ItemQuery(text="новость", limit=5, offset=3), monkeypatch)) == 4


def test_index_words_brings_searches_up_to_every_item(store: Store) -> None:
    store.add_item(make_item("1", text="Минфин сообщил."))
    assert store.index_words() >= 0
    store.add_item(make_item("2", text="Минфин ответил."))
    told: list[int] = []
    indexed = store.index_words(starting=told.append)
    assert told == ([indexed] if indexed else [])  # told before, when there is work
    assert store.index_words(starting=told.append) == 0  # nothing left to do
    assert told == ([indexed] if indexed else [])
    assert len(store.items(ItemQuery(text="минфин"))) == 2


# --- the Redis word index ------------------------------------------------------------------
def forget_word_index(store: RedisStore) -> None:
    """Leave the store as a Presswatch older than the word index wrote it."""
    raw = store._redis
    raw.delete(
        "pw:items:ordinals",
        "pw:sources:with_items",
        *raw.keys("pw:items:by_ordinal:*"),
        *raw.keys("pw:words:*"),
    )


@pytest.mark.redis
def test_redis_word_index_answers_a_word_search(redis_url: str) -> None:
    store = RedisStore(redis_url)
    for n in range(5):
        store.add_item(make_item(str(n), text="Минфин сообщил." if n == 3 else "Погода."))
    query = ItemQuery(text="минфин")
    bounds = (-1e308, 1e308)
    assert store._words.candidates(query, "pw:items:by_time", bounds) == [make_item("3")["id"]]
    # A prefix shorter than the indexed one cannot use the index: the scan answers.
    assert store._words.candidates(ItemQuery(text="мин"), "pw:items:by_time", bounds) is None
    assert ids(store.items(ItemQuery(text="мин"))) == [make_item("3")["id"]]
    store.close()


@pytest.mark.redis
def test_redis_items_stored_before_the_word_index_are_found_then_indexed(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisStore(redis_url)
    old = [make_item(f"old{n}", text=f"Минфин сообщил {n}.") for n in range(5)]
    for item in old:
        store.add_item(item)
    forget_word_index(store)
    new = make_item("new", text="Минфин ответил.", published_at="2019-11-19T10:00:00+06:00")
    store.add_item(new)  # indexed as it is written, but the older ones are not
    query = ItemQuery(text="минфин", limit=10)
    everything = ids(store.items(ItemQuery(limit=10)))
    assert ids(store.items(query)) == everything  # the scan, not the incomplete index
    assert store._words.candidates(query, "pw:items:by_time", (-1e308, 1e308)) is None

    # An indexing cut short after its first batch is resumed by the next run.
    monkeypatch.setattr("pipelines.store.redis_words.OLDER_BATCH", 2)
    loads = 0

    def failing_load(item_ids: list[str]) -> list[dict[str, Any]]:
        nonlocal loads
        loads += 1
        if loads > 1:
            raise StoreError("cut short")
        return store._load(item_ids)

    with pytest.raises(StoreError, match="cut short"):
        store._words.index_older_items(failing_load)
    assert ids(store.items(query)) == everything  # still scanning
    assert store.item_sources() == ["primeminister"]  # found by their item indexes
    told: list[int] = []  # what `presswatch web` prints before it indexes
    assert store.index_words(starting=told.append) == 3
    assert store.index_words(starting=told.append) == 0
    assert told == [3]
    assert store._words.candidates(query, "pw:items:by_time", (-1e308, 1e308)) == everything
    assert ids(store.items(query)) == everything
    # Each item was posted once: six items under "минф" and "сооб"/"отве" as they hold them.
    assert store._redis.strlen("pw:words:минф") == 4 * 6
    assert store._redis.strlen("pw:words:сооб") == 4 * 5
    assert store._redis.smembers("pw:sources:with_items") == {"primeminister"}
    assert store.item_sources() == ["primeminister"]
    store.close()
