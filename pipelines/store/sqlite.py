"""The embedded store: one SQLite file in WAL mode, shared safely by several processes."""

from __future__ import annotations

import functools
import json
import logging
import re
import sqlite3
import threading
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from pipelines.store.base import ItemQuery, StoreError
from pipelines.store.keys import parse_instant, sort_instant, sortable_utc

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from pipelines.store.outbox import Outbox
    from pipelines.story_index import KeyWindow, StoryIndex

logger = logging.getLogger(__name__)

URL_PREFIX = "sqlite:///"
BUSY_TIMEOUT_S = 10.0
SCHEMA_VERSION = 5
# Bound variables per statement stay under SQLite's lowest default limit (999).
ID_BATCH = 900
NEWEST = ItemQuery()

# Contentless: the text lives once, in items.data; this holds only a word index, whose
# unicode case folding makes "минфин" find "Минфин" (LIKE folds ASCII only). Words, not
# trigrams: a trigram index of a 20,000-character article cost 3-5 ms a page to build.
# Words still cost 1.6 ms a page, the largest cost of storing an item, so a crawl does not
# index as it writes: `_index_text` brings the index up to the newest item (kept in
# ``INDEXED_UP_TO``) before every text search, in batches of ``INDEX_BATCH`` items.
TEXT_INDEX = """
CREATE VIRTUAL TABLE IF NOT EXISTS items_text
    USING fts5(title, text, content='', tokenize='unicode61 remove_diacritics 2');
"""
INDEXED_UP_TO = "store/text_index"
INDEX_BATCH = 2000
PLAIN_SCAN_ROWS = 1000  # newest rows a word search reads before it asks the word index
SHORTEST_FTS_PREFIX = 3  # a shorter word prefix narrows a search too little to help

STATE_TABLE = """
CREATE TABLE IF NOT EXISTS state (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL CHECK (json_valid(data))
);
"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS items (
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    lang TEXT,
    content_hash TEXT,
    sort_time TEXT NOT NULL,  -- published_at, else fetched_at, as sortable UTC text
    data TEXT NOT NULL CHECK (json_valid(data))  -- the whole item
);
CREATE INDEX IF NOT EXISTS items_by_time ON items (sort_time, id);
CREATE INDEX IF NOT EXISTS items_by_source ON items (source, sort_time, id);
CREATE INDEX IF NOT EXISTS items_by_lang ON items (lang, sort_time, id);
CREATE INDEX IF NOT EXISTS items_by_hash ON items (content_hash);

{TEXT_INDEX}

CREATE TABLE IF NOT EXISTS validators (
    url TEXT PRIMARY KEY,
    data TEXT NOT NULL CHECK (json_valid(data))
);

CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    started TEXT NOT NULL,  -- started_at as sortable UTC text
    data TEXT NOT NULL CHECK (json_valid(data))
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (started, id);
CREATE INDEX IF NOT EXISTS runs_by_source ON runs (source, started, id);

{STATE_TABLE}
"""

# The steps from an older schema to this one. Schema 1 indexed trigrams; schemas 1-3 indexed
# each item as it was written, by a trigger (now searches catch up); schemas 1-4 indexed ё
# as written, which a search for е missed. Their word index is built again, by the first
# search (or `index_words`). Schema 2 had no state table.
REINDEX = (
    "DROP TABLE IF EXISTS items_text;",
    TEXT_INDEX,
    f"DELETE FROM state WHERE name = '{INDEXED_UP_TO}';",  # noqa: S608 - a module constant
)
MIGRATIONS = {
    1: ("DROP TRIGGER IF EXISTS items_text_insert;", STATE_TABLE, *REINDEX),
    2: ("DROP TRIGGER IF EXISTS items_text_insert;", STATE_TABLE, *REINDEX),
    3: ("DROP TRIGGER IF EXISTS items_text_insert;", *REINDEX),
    4: REINDEX,
}
# A query with a word character goes to the word index; one of punctuation only scans.
WORD = re.compile(r"[^\W_]")


def path_from_url(url: str) -> str:
    """``sqlite:///relative.db`` → ``relative.db``; ``sqlite:////abs/x.db`` → ``/abs/x.db``."""
    if not url.startswith(URL_PREFIX) or url == URL_PREFIX:
        msg = f"not a SQLite store URL: {url!r} (use sqlite:///relative.db or sqlite:////abs.db)"
        raise ValueError(msg)
    return url[len(URL_PREFIX) :]


def _casefold(value: str | None) -> str:
    return value.casefold() if value else ""


def _fold_yo(text: str) -> str:
    return text.replace("ё", "е").replace("Ё", "Е")


def _fold_yo_or_none(text: str | None) -> str | None:
    return _fold_yo(text) if text is not None else None


def _fts_prefix_phrase(text: str) -> str:
    # A quoted FTS5 string is one phrase of the words in it, whatever operators they spell;
    # the star makes its last word a prefix, so "минфин" finds "Минфина" and "МИНФИНом".
    # The index holds ё as е (`_index_text`), so the query reads it so too.
    return '"' + _fold_yo(text).replace('"', '""') + '" *'


def fts_prefixes(prefixes: Sequence[str]) -> tuple[str, ...]:
    """`ItemQuery.word_prefixes` that narrow a search through the word index; none when one
    is too short to narrow anything (the search then reads every row)."""
    if any(len(prefix) < SHORTEST_FTS_PREFIX for prefix in prefixes):
        return ()
    return tuple(prefixes)


def item_filters(query: ItemQuery) -> tuple[str, list[Any]]:
    """The WHERE clause (or "") and its parameters that select the items `query` asks for."""
    clauses: list[str] = []
    params: list[Any] = []
    if query.source is not None:
        clauses.append("source = ?")
        params.append(query.source)
    if query.lang is not None:
        clauses.append("lang = ?")
        params.append(query.lang)
    if query.since is not None:
        clauses.append("sort_time >= ?")
        params.append(sortable_utc(parse_instant(query.since)))
    if query.until is not None:
        clauses.append("sort_time < ?")
        params.append(sortable_utc(parse_instant(query.until)))
    if query.text:
        if WORD.search(query.text):
            clauses.append("rowid IN (SELECT rowid FROM items_text WHERE items_text MATCH ?)")
            params.append(_fts_prefix_phrase(query.text))
        else:
            clauses.append(
                "(instr(casefold(json_extract(data, '$.title')), ?) > 0"
                " OR instr(casefold(json_extract(data, '$.text')), ?) > 0)"
            )
            params.extend([query.text.casefold()] * 2)
    if prefixes := fts_prefixes(query.word_prefixes):
        clauses.append("rowid IN (SELECT rowid FROM items_text WHERE items_text MATCH ?)")
        params.append(" OR ".join(map(_fts_prefix_phrase, prefixes)))
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    return where, params


def cannot_open(path: str, exc: BaseException) -> str:
    return (
        f"cannot open the SQLite store {path!r}: {exc}"
        " (check that the directory is writable and the file is a SQLite database)"
    )


def missing_store(path: str, *, create: bool) -> str | None:
    """Why the store file at `path` cannot be opened as asked, or None when it can.

    Its directory must exist: a typo in ``--store`` must not grow a tree of directories
    holding an empty store. The file itself must exist unless `create` (a command that
    writes, such as a crawl, may start a new store; one that only reads may not).
    """
    if path == ":memory:":
        return None
    file = Path(path)
    if not file.parent.is_dir():
        return (
            f"the directory {str(file.parent)!r} of the SQLite store {path!r} does not exist"
            f" (create it first, e.g. mkdir -p {file.parent}, or fix --store / PRESSWATCH_STORE)"
        )
    if not create and not file.exists():
        return (
            f"no SQLite store at {path!r}; this command only reads one (check --store /"
            " PRESSWATCH_STORE, or fill a store first with `presswatch crawl` or `presswatch demo`)"
        )
    return None


# How often a store's own thread copies the WAL back into the file (`WalCheckpointer`).
CHECKPOINT_EVERY_S = 1.0
# A WAL file past this size is emptied by its `WalCheckpointer`, which waits this long at
# most for a write under way to end (a link's transaction takes a few milliseconds).
WAL_TRUNCATE_BYTES = 64 * 1024 * 1024
TRUNCATE_WAIT_S = 0.1


def connect(
    path: str,
    *,
    synchronous: str = "NORMAL",
    create: bool = True,
    checkpointed_beside: bool = False,
) -> sqlite3.Connection:
    """A connection to the store file as every part of the store opens it.

    Autocommit (``isolation_level=None``): a write outside ``BEGIN`` is one statement, so
    one implicit transaction. The connection may be used from a worker thread (the module
    is built serialized, threadsafety 3). WAL lets readers run beside one writer, and
    ``busy_timeout`` makes a second writer wait its turn instead of failing.
    `synchronous`: NORMAL in WAL mode can lose the last commits on power loss but never
    corrupts the file, and a lost item is fetched again by the next crawl; the alert
    outbox, whose loss would mean a silent or double alert, asks for FULL.
    `create`: whether a missing file may be created (never its directory; see
    `missing_store`). `checkpointed_beside`: a `WalCheckpointer` copies the WAL back, and
    this connection's commits never do. Raises `StoreError` naming the file when it cannot
    be opened.
    """
    problem = missing_store(path, create=create)
    if problem is not None:
        raise StoreError(problem)
    # mode=rw: SQLite itself refuses to create the file, even if it vanished just now.
    target = path if create else Path(path).resolve().as_uri() + "?mode=rw"
    try:
        db = sqlite3.connect(
            target,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
            uri=not create,
        )
    except sqlite3.Error as exc:
        raise StoreError(cannot_open(path, exc)) from exc
    try:
        db.create_function("casefold", 1, _casefold, deterministic=True)
        db.create_function("yo_as_e", 1, _fold_yo_or_none, deterministic=True)
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {synchronous}")
        if checkpointed_beside:  # by a `WalCheckpointer`, not in this connection's commits
            db.execute("PRAGMA wal_autocheckpoint = 0")
    except sqlite3.Error as exc:
        db.close()
        raise StoreError(cannot_open(path, exc)) from exc
    return db


P = ParamSpec("P")
R = TypeVar("R")


def _translating_errors(
    method: Callable[Concatenate[SQLiteStore, P], R],
) -> Callable[Concatenate[SQLiteStore, P], R]:
    """Turn a locked, full or unwritable database into a `StoreError` naming the file."""

    @functools.wraps(method)
    def wrapper(self: SQLiteStore, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            msg = (
                f"the SQLite store {self.path!r} failed: {exc} (a full disk, a read-only"
                f" file, or another process holding the write lock over {BUSY_TIMEOUT_S} s)"
            )
            raise StoreError(msg) from exc

    return wrapper


class WalCheckpointer:
    """Copies a file's WAL back into it every `every` seconds, from a thread and a
    connection of its own, until `close`.

    SQLite does it in the commit that fills the WAL past 1000 pages, in the writer's
    thread: a linked item writes ~95 candidate keys to random places of story_keys, ~90
    pages, so a crawl's store thread copied ~1000 pages every ~11 items (bench_link_scale:
    a link's p99 was such a commit) and rewrote pages many items change again and again.
    Here the copying runs beside the writers, in C and off the GIL: a PASSIVE checkpoint,
    which takes no lock a writer or reader waits for. The WAL starts over only at a write
    that follows a checkpoint of all of it, which a busy crawl never leaves time for; so a
    WAL file past `WAL_TRUNCATE_BYTES` is checkpointed with TRUNCATE, which waits up to
    `TRUNCATE_WAIT_S` for the write under way (else it tries again at the next tick), holds
    writers back while it copies the little PASSIVE left, and empties the file.
    The store and its story index run one each, and open their connections with SQLite's
    own checkpoints off (`connect`'s `checkpointed_beside`).
    """

    def __init__(self, path: str, every: float = CHECKPOINT_EVERY_S) -> None:
        self.path = path
        self.every = every
        self._wal = Path(f"{path}-wal")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self.path == ":memory:":  # no file, no WAL
            return
        target = Path(self.path).resolve().as_uri() + "?mode=rw"  # never creates the file
        try:
            db = sqlite3.connect(
                target,
                uri=True,
                timeout=TRUNCATE_WAIT_S,  # PASSIVE never waits
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error:
            return
        try:
            while not self._stop.wait(self.every):
                self._checkpoint(db)
            self._checkpoint(db)
        finally:
            db.close()

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            if self._wal.exists() and self._wal.stat().st_size > WAL_TRUNCATE_BYTES:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except (sqlite3.Error, OSError) as exc:  # writes went on, the file is gone: next tick
            logger.debug("WAL checkpoint of %s skipped: %s", self.path, exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class SQLiteStore:
    """Items, validators and runs in one SQLite file (``sqlite:///path.db``).

    Every process opens its own connection; WAL lets readers run beside one writer and
    ``busy_timeout`` makes a second writer wait its turn instead of failing. `create`
    False: the file must exist already (see `missing_store`); its directory always must.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url  # a SQLite URL carries no password
        self.path = path_from_url(url)
        self._db = connect(self.path, create=create, checkpointed_beside=True)
        try:
            self._create_schema()
        except StoreError:
            self._db.close()
            raise
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(cannot_open(self.path, exc)) from exc
        self._checkpointer = WalCheckpointer(self.path)

    def _create_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            msg = (
                f"the SQLite store {self.path!r} has schema {version}, newer than this"
                f" Presswatch knows ({SCHEMA_VERSION}): upgrade Presswatch or use another file"
            )
            raise StoreError(msg)
        # IMMEDIATE takes the write lock first, so two processes creating a fresh file
        # wait for each other instead of deadlocking on a lock upgrade.
        steps = "\n".join(MIGRATIONS.get(version, (SCHEMA,)))
        script = f"BEGIN IMMEDIATE;\n{steps}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
        try:
            self._db.executescript(script)
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    # --- items -----------------------------------------------------------------------
    @_translating_errors
    def add_item(self, item: dict[str, Any]) -> bool:
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO items (id, source, lang, content_hash, sort_time, data)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                item["id"],
                item["source"],
                item.get("lang"),
                item.get("content_hash") or None,
                sortable_utc(sort_instant(item)),
                json.dumps(item, ensure_ascii=False),
            ),
        )
        return cursor.rowcount == 1

    @_translating_errors
    def get_item(self, item_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT data FROM items WHERE id = ?", (item_id,)).fetchone()
        return json.loads(row[0]) if row else None

    @_translating_errors
    def known_ids(self, item_ids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(item_ids))
        known: set[str] = set()
        for start in range(0, len(wanted), ID_BATCH):
            batch = wanted[start : start + ID_BATCH]
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(f"SELECT id FROM items WHERE id IN ({marks})", batch)  # noqa: S608 -- only "?" marks are interpolated
            known.update(row[0] for row in rows)
        return known

    @_translating_errors
    def stored_copy(self, item_id: str, source: str, content_hash: str | None) -> str | None:
        if self._db.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone():
            return item_id
        if not content_hash:
            return None
        row = self._db.execute(
            "SELECT id FROM items WHERE content_hash = ? AND source = ? ORDER BY rowid LIMIT 1",
            (content_hash, source),
        ).fetchone()
        return row[0] if row else None

    @_translating_errors
    def items(self, query: ItemQuery = NEWEST) -> list[dict[str, Any]]:
        if (query.text and WORD.search(query.text)) or fts_prefixes(query.word_prefixes):
            self._index_text()
        if query.keep is not None:
            kept = (item for item in self._newest_first(query) if query.keep(item))  # type: ignore[misc]
            return list(islice(kept, query.offset, query.offset + query.limit))
        where, params = item_filters(query)
        rows = self._db.execute(
            f"SELECT data FROM items{where} ORDER BY sort_time DESC, id DESC LIMIT ? OFFSET ?",  # noqa: S608 -- the clause holds "?" marks only
            [*params, query.limit, query.offset],
        )
        return [json.loads(row[0]) for row in rows]

    @_translating_errors
    def item_sources(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT source FROM items ORDER BY source")
        return [row[0] for row in rows]

    @_translating_errors
    def count_items(self, source: str | None = None) -> int:
        if source is None:
            return self._db.execute("SELECT count(*) FROM items").fetchone()[0]
        return self._db.execute(
            "SELECT count(*) FROM items WHERE source = ?", (source,)
        ).fetchone()[0]

    @_translating_errors
    def count_items_in(
        self, windows: Sequence[tuple[str, str]], source: str | None = None
    ) -> list[int]:
        # Each count is a range of items_by_time or items_by_source: no row is read.
        where = "sort_time >= ? AND sort_time < ?" + (" AND source = ?" if source else "")
        counts = []
        for since, until in windows:
            bounds = [sortable_utc(parse_instant(since)), sortable_utc(parse_instant(until))]
            row = self._db.execute(
                f"SELECT count(*) FROM items WHERE {where}",  # noqa: S608 -- constant clauses
                [*bounds, source] if source else bounds,
            ).fetchone()
            counts.append(row[0])
        return counts

    @_translating_errors
    def index_words(self, starting: Callable[[int], object] | None = None) -> int:
        behind = self._db.execute(
            "SELECT count(*) FROM items WHERE rowid > ?", (self._indexed_up_to(),)
        ).fetchone()[0]
        if behind and starting is not None:
            starting(behind)
        self._index_text()
        return behind

    def _newest_first(self, query: ItemQuery) -> Iterator[dict[str, Any]]:
        """The items `query`'s filters select, newest first, for its `keep` to test.

        With word prefixes, the first ``PLAIN_SCAN_ROWS`` rows are read as they come (a common
        word fills a page among them sooner than the word index can list every item that
        has it); the older rest through the word index (a rare word is found at once).
        """
        order = " ORDER BY sort_time DESC, id DESC"
        where, params = item_filters(replace(query, word_prefixes=()))
        if not fts_prefixes(query.word_prefixes):
            rows = self._db.execute(f"SELECT data FROM items{where}{order}", params)  # noqa: S608 -- "?" marks only
            yield from (json.loads(row[0]) for row in rows)
            return
        last, read = None, 0
        rows = self._db.execute(
            f"SELECT data, sort_time, id FROM items{where}{order} LIMIT ?",  # noqa: S608 -- "?" marks only
            [*params, PLAIN_SCAN_ROWS],
        )
        for data, sort_time, item_id in rows:
            last, read = (sort_time, item_id), read + 1
            yield json.loads(data)
        if last is None or read < PLAIN_SCAN_ROWS:
            return  # every row was read
        where, params = item_filters(query)
        where += (" AND " if where else " WHERE ") + "(sort_time, id) < (?, ?)"
        rows = self._db.execute(f"SELECT data FROM items{where}{order}", [*params, *last])  # noqa: S608 -- "?" marks only
        yield from (json.loads(row[0]) for row in rows)

    def _index_text(self) -> None:
        """Add the items written since the last search to the word index (see TEXT_INDEX).

        Each batch is one write transaction that reads and moves ``INDEXED_UP_TO`` itself,
        so two processes searching at once never index an item twice. Items are never
        deleted, so rowids only grow and the mark says exactly what is indexed.
        """
        while self._indexed_up_to() < self._newest_rowid():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                start = self._indexed_up_to()
                batch = self._db.execute(
                    # ё as е: unicode61 folds case, not ё (a search for "актеры" must
                    # find "Актёры").
                    "SELECT rowid, yo_as_e(json_extract(data, '$.title')),"
                    " yo_as_e(json_extract(data, '$.text'))"
                    " FROM items WHERE rowid > ? ORDER BY rowid LIMIT ?",
                    (start, INDEX_BATCH),
                ).fetchall()
                self._db.executemany(
                    "INSERT INTO items_text (rowid, title, text) VALUES (?, ?, ?)", batch
                )
                if batch:
                    self.set_state(INDEXED_UP_TO, {"rowid": batch[-1][0]})
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _indexed_up_to(self) -> int:
        mark = self.get_state(INDEXED_UP_TO)
        return int(mark["rowid"]) if mark else 0

    def _newest_rowid(self) -> int:
        return self._db.execute("SELECT coalesce(max(rowid), 0) FROM items").fetchone()[0]

    # --- conditional requests ----------------------------------------------------------
    @_translating_errors
    def get_validators(self, url: str) -> dict[str, str]:
        row = self._db.execute("SELECT data FROM validators WHERE url = ?", (url,)).fetchone()
        return json.loads(row[0]) if row else {}

    @_translating_errors
    def set_validators(self, url: str, validators: dict[str, str]) -> None:
        self._db.execute(
            "INSERT INTO validators (url, data) VALUES (?, ?)"
            " ON CONFLICT (url) DO UPDATE SET data = excluded.data",
            (url, json.dumps(validators, ensure_ascii=False)),
        )

    # --- crawl runs ----------------------------------------------------------------------
    @_translating_errors
    def add_run(self, run: dict[str, Any]) -> None:
        # Recording a run again (e.g. once started, once finished) replaces it.
        self._db.execute(
            "INSERT INTO runs (id, source, started, data) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET"
            " source = excluded.source, started = excluded.started, data = excluded.data",
            (
                run["id"],
                run["source"],
                sortable_utc(parse_instant(run["started_at"])),
                json.dumps(run, ensure_ascii=False),
            ),
        )

    @_translating_errors
    def runs(self, source: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        if source is None:
            rows = self._db.execute(
                "SELECT data FROM runs ORDER BY started DESC, id DESC LIMIT ?", (limit,)
            )
        else:
            rows = self._db.execute(
                "SELECT data FROM runs WHERE source = ? ORDER BY started DESC, id DESC LIMIT ?",
                (source, limit),
            )
        return [json.loads(row[0]) for row in rows]

    # --- small named state -------------------------------------------------------------
    @_translating_errors
    def get_state(self, name: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT data FROM state WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    @_translating_errors
    def set_state(self, name: str, value: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO state (name, data) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET data = excluded.data",
            (name, json.dumps(value, ensure_ascii=False)),
        )

    # --- the store's other parts, on their own connections to the same file ---------------
    def story_index(self, window: KeyWindow | None = None) -> StoryIndex:
        from pipelines.store.sqlite_stories import SQLiteStoryIndex

        return SQLiteStoryIndex(self.path, window)

    def outbox(self) -> Outbox:
        from pipelines.store.sqlite_outbox import SQLiteOutbox

        return SQLiteOutbox(self.path)

    def close(self) -> None:
        self._checkpointer.close()
        self._db.close()
