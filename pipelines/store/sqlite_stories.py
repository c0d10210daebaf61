"""The story index in the SQLite store file: `StoryIndex` verbs over ``story_*`` tables.

Each verb is one statement or one ``BEGIN IMMEDIATE`` transaction (`enter`, a link's writes
and candidate reads, is one), so two crawl processes
linking into one file at once see each other's writes whole (see the concurrency contract
in `pipelines.story_index`). The tables live beside the item schema in the same file but
are created here, with ``IF NOT EXISTS``, and leave ``PRAGMA user_version`` to the items;
a file from before a column was added gets it on open (`KEY_TIME_MIGRATION`).

Candidate entries older than the index's `KeyWindow` are no candidates, and a delete at
most once an hour per index (`PURGE_EVERY_S`, on an `add_keys`) drops them.

An item's summary (a ``story_items`` row) lives until the item is stored in the ``items``
table: `item_stored` deletes it then, and `get_items` reads each id's summary, else its
stored item, in one query.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from pipelines.store.base import StoreError
from pipelines.store.sqlite import BUSY_TIMEOUT_S, WalCheckpointer, cannot_open, connect
from pipelines.story_index import (
    Entry,
    ItemSummary,
    KeyWindow,
    Lookup,
    stored_summary,
    story_first_seen,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

SCHEMA = """
-- Rowid tables hold the JSON: WITHOUT ROWID suits small rows only (the SQLite manual says
-- under a twentieth of a page), and an item's text or a big story's record is kilobytes.
CREATE TABLE IF NOT EXISTS story_items (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL CHECK (json_valid(data))  -- the ItemSummary, until items holds the item
);
-- candidate key -> item ids; the primary key answers `candidates` by key
CREATE TABLE IF NOT EXISTS story_keys (
    key TEXT NOT NULL,
    item TEXT NOT NULL,
    seen REAL NOT NULL DEFAULT 0,  -- when written, epoch seconds: the window counts from it
    PRIMARY KEY (key, item)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS story_members (
    item TEXT PRIMARY KEY,
    story TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS story_members_by_story ON story_members (story, item);
-- forward pointers: a story merged away -> the story it merged into (always a smaller id)
CREATE TABLE IF NOT EXISTS story_merged (
    story TEXT PRIMARY KEY,
    into_story TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS story_records (
    id TEXT PRIMARY KEY,
    first_seen TEXT NOT NULL,  -- story_first_seen(record): sortable UTC text, or ""
    data TEXT NOT NULL CHECK (json_valid(data))
);
CREATE INDEX IF NOT EXISTS story_records_by_first_seen ON story_records (first_seen, id);
-- AUTOINCREMENT: a sequence is never reused, so readers may keep one as their cursor
CREATE TABLE IF NOT EXISTS story_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    story TEXT NOT NULL
);
"""
# A file whose story_keys predate the window: its entries count as written when the file is
# first opened by this version (? = now), so an upgrade drops no candidate at once.
KEY_TIME_MIGRATION = (
    "ALTER TABLE story_keys ADD COLUMN seen REAL NOT NULL DEFAULT 0",
    "UPDATE story_keys SET seen = ?",
)
# After the migration: the periodic delete finds old entries by time.
KEY_TIME_INDEX = "CREATE INDEX IF NOT EXISTS story_keys_by_seen ON story_keys (seen)"
PURGE_EVERY_S = 3600.0
# Each wanted id's summary, else its stored item; `{wanted}`: a table of ids in a column
# ``value`` (`GIVEN_IDS` or `STORY_MEMBERS`).
SUMMARY_OR_ITEM = """
SELECT wanted.value, coalesce(story_items.data, items.data)
FROM {wanted} AS wanted
LEFT JOIN story_items ON story_items.id = wanted.value
LEFT JOIN items ON story_items.id IS NULL AND items.id = wanted.value
WHERE story_items.id IS NOT NULL OR items.id IS NOT NULL
"""
SUMMARY_ONLY = """
SELECT id, data FROM story_items WHERE id IN (SELECT value FROM {wanted})
"""

# The live story of `?`: the end of its chain of forward pointers. The chain ends, since a
# pointer always leads to a smaller id.
LIVE_STORY = """(
    WITH RECURSIVE chain (id, depth) AS (
        VALUES (?, 0)
        UNION ALL
        SELECT story_merged.into_story, chain.depth + 1
        FROM story_merged JOIN chain ON story_merged.story = chain.id
    )
    SELECT id FROM chain ORDER BY depth DESC LIMIT 1
)"""

# The ids of a JSON array (`?`): one bound value, however many ids, so no batching under
# SQLite's limit on bound values.
GIVEN_IDS = "json_each(?)"
# The members of the live story of `?`.
STORY_MEMBERS = f"(SELECT item AS value FROM story_members WHERE story = {LIVE_STORY})"  # noqa: S608 -- a constant

P = ParamSpec("P")
R = TypeVar("R")


def _translating_errors(
    method: Callable[Concatenate[SQLiteStoryIndex, P], R],
) -> Callable[Concatenate[SQLiteStoryIndex, P], R]:
    """Run a verb alone on the connection, and turn a locked, full or unwritable database
    into a `StoreError` naming the file."""

    @functools.wraps(method)
    def wrapper(self: SQLiteStoryIndex, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with self._lock:
                return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            msg = (
                f"the story index in the SQLite store {self.path!r} failed: {exc} (a full"
                " disk, a read-only file, or another process holding the write lock over"
                f" {BUSY_TIMEOUT_S} s)"
            )
            raise StoreError(msg) from exc

    return wrapper


class SQLiteStoryIndex:
    """`StoryIndex` in the ``story_*`` tables of the store file at `path`, on a connection of
    its own (close it with `close`). One index may be shared by threads: a lock keeps each
    verb's transaction whole on the shared connection."""

    def __init__(self, path: str, window: KeyWindow | None = None) -> None:
        self.path = path
        self.window = window or KeyWindow()
        self._next_purge = float("-inf")
        self._items_table = False  # whether the file has the store's items table (yet)
        self._db = connect(path, checkpointed_beside=True)
        self._lock = threading.Lock()
        try:
            # IMMEDIATE takes the write lock first, so two processes creating the tables of a
            # fresh file wait for each other instead of deadlocking on a lock upgrade.
            self._db.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}")
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(story_keys)")}
            if "seen" not in columns:
                alter, stamp = KEY_TIME_MIGRATION
                self._db.execute(alter)
                self._db.execute(stamp, (self.window.clock(),))
            self._db.execute(KEY_TIME_INDEX)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._db.close()
            raise StoreError(cannot_open(path, exc)) from exc
        self._checkpointer = WalCheckpointer(path)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction: committed whole, or rolled back."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            # SQLite may have rolled back already (a full disk, for one).
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _live(self, story_id: str) -> str:
        return self._db.execute(f"SELECT {LIVE_STORY}", (story_id,)).fetchone()[0]

    # --- items and candidates -----------------------------------------------------------
    @_translating_errors
    def put_item(self, summary: ItemSummary) -> None:
        self._put_item(summary)

    def _put_item(self, summary: ItemSummary) -> None:
        self._db.execute(
            "INSERT INTO story_items (id, data) VALUES (?, ?)"
            " ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            (summary.id, summary.to_json()),
        )

    def _has_items_table(self) -> bool:
        """Whether the store's items table exists; an index may be opened on a file before
        the store creates it, and a table once made is never dropped."""
        if not self._items_table:
            found = self._db.execute(
                "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'items'"
            ).fetchone()
            self._items_table = found is not None
        return self._items_table

    @_translating_errors
    def get_items(self, item_ids: Iterable[str]) -> dict[str, ItemSummary]:
        return self._summaries(GIVEN_IDS, json.dumps(list(item_ids)))

    def _summaries(self, wanted: str, parameter: str) -> dict[str, ItemSummary]:
        query = SUMMARY_OR_ITEM if self._has_items_table() else SUMMARY_ONLY
        rows = self._db.execute(query.format(wanted=wanted), (parameter,))
        return {item_id: ItemSummary.from_dict(json.loads(data)) for item_id, data in rows}

    @_translating_errors
    def item_stored(self, item: dict[str, Any]) -> bool:
        summary = stored_summary(item)
        if summary is None or not self._has_items_table():
            return False
        cursor = self._db.execute(
            "DELETE FROM story_items WHERE id = ? AND data = ?"
            " AND EXISTS (SELECT 1 FROM items WHERE id = ?)",
            (summary.id, summary.to_json(), summary.id),
        )
        return cursor.rowcount == 1

    @_translating_errors
    def add_keys(self, item_id: str, keys: Iterable[str]) -> None:
        now = self.window.clock()
        self._add_keys(item_id, keys, now)
        if now >= self._next_purge:
            self._expire(now)

    def _add_keys(self, item_id: str, keys: Iterable[str], now: float) -> None:
        self._db.execute(
            "INSERT INTO story_keys (key, item, seen) SELECT value, ?, ? FROM json_each(?)"
            " WHERE true"  # the upsert after a SELECT needs a WHERE (SQLite's parser)
            " ON CONFLICT (key, item) DO UPDATE SET seen = max(seen, excluded.seen)",
            (item_id, now, json.dumps(list(keys), ensure_ascii=False)),
        )

    @_translating_errors
    def candidates(self, keys: Iterable[str], at_least: int = 1) -> set[str]:
        return self._candidates([(list(keys), at_least)], self.window.clock())[0]

    def _candidates(self, lookups: Sequence[Lookup], now: float) -> tuple[set[str], ...]:
        """Each lookup's candidates, in one statement (a link's every statement costs it a
        wait for the GIL in a busy crawl)."""
        cutoff = self.window.cutoff(now)
        parts, parameters = [], []
        for n, lookup in enumerate(lookups):
            keys, at_least, most = Lookup(*lookup)
            if most is None:
                parts.append(
                    f"SELECT {n}, item FROM story_keys"  # noqa: S608 -- n is a number
                    " WHERE key IN (SELECT value FROM json_each(?))"
                    " AND seen >= ? GROUP BY item HAVING count(*) >= ?"
                )
                parameters += [_keys_json(keys), cutoff, at_least]
                continue
            # bounded: ranked by the weight of the keys shared (`Lookup`)
            parts.append(
                f"SELECT * FROM (SELECT {n}, entry.item FROM story_keys AS entry"  # noqa: S608
                " JOIN (SELECT key, 1.0 / count(*) AS weight FROM story_keys"
                " WHERE key IN (SELECT value FROM json_each(?)) AND seen >= ? GROUP BY key)"
                " AS shared ON entry.key = shared.key WHERE entry.seen >= ?"
                " GROUP BY entry.item HAVING count(*) >= ?"
                " ORDER BY sum(shared.weight) DESC, entry.item LIMIT ?)"
            )
            parameters += [_keys_json(keys), cutoff, cutoff, at_least, most]
        found: tuple[set[str], ...] = tuple(set() for _ in lookups)
        if parts:
            for n, item in self._db.execute(" UNION ALL ".join(parts), parameters):
                found[n].add(item)
        return found

    @_translating_errors
    def enter(
        self, summary: ItemSummary, keys: Iterable[str], lookups: Sequence[Lookup], *, again: bool
    ) -> Entry:
        now = self.window.clock()
        with self._writing():
            known, story_id = self._db.execute(
                f"SELECT (SELECT story FROM story_members WHERE item = ?), {LIVE_STORY}",  # noqa: S608
                (summary.id, summary.id),
            ).fetchone()
            if known is not None and not again:
                return Entry(known, new=False)
            self._put_item(summary)
            self._put_member(summary.id, story_id)
            self._add_keys(summary.id, keys, now)
            found = self._candidates(lookups, now)
        if now >= self._next_purge:
            self._expire(now)
        return Entry(story_id, new=True, found=found)

    @_translating_errors
    def expire_keys(self) -> int:
        return self._expire(self.window.clock())

    def _expire(self, now: float) -> int:
        self._next_purge = now + PURGE_EVERY_S
        if self.window.seconds is None:
            return 0
        cursor = self._db.execute(
            "DELETE FROM story_keys WHERE seen < ?", (self.window.cutoff(now),)
        )
        return cursor.rowcount

    # --- stories ------------------------------------------------------------------------
    @_translating_errors
    def story_of(self, item_id: str) -> str | None:
        row = self._db.execute(
            "SELECT story FROM story_members WHERE item = ?", (item_id,)
        ).fetchone()
        return row[0] if row else None

    @_translating_errors
    def stories_of(self, item_ids: Iterable[str]) -> dict[str, str]:
        # A JSON array is one bound value, however many ids (as in `get_items`).
        rows = self._db.execute(
            "SELECT item, story FROM story_members WHERE item IN (SELECT value FROM json_each(?))",
            (json.dumps(list(item_ids)),),
        )
        return dict(rows.fetchall())

    @_translating_errors
    def join(self, story_id: str, item_id: str) -> str:
        with self._writing():
            story_id = self._live(story_id)
            self._put_member(item_id, story_id)
        return story_id

    def _put_member(self, item_id: str, live_story_id: str) -> None:
        self._db.execute(
            "INSERT INTO story_members (item, story) VALUES (?, ?)"
            " ON CONFLICT (item) DO UPDATE SET story = excluded.story",
            (item_id, live_story_id),
        )

    @_translating_errors
    def merge(self, story_a: str, story_b: str) -> str:
        with self._writing():
            into, absorbed = sorted((self._live(story_a), self._live(story_b)))
            if into == absorbed:
                return into
            self._db.execute("UPDATE story_members SET story = ? WHERE story = ?", (into, absorbed))
            self._db.execute("DELETE FROM story_records WHERE id = ?", (absorbed,))
            self._db.execute(
                "INSERT INTO story_merged (story, into_story) VALUES (?, ?)", (absorbed, into)
            )
        return into

    @_translating_errors
    def members(self, story_id: str) -> set[str]:
        rows = self._db.execute(
            f"SELECT item FROM story_members WHERE story = {LIVE_STORY}",  # noqa: S608 -- a constant
            (story_id,),
        )
        return {row[0] for row in rows}

    @_translating_errors
    def story_items(self, story_id: str) -> dict[str, ItemSummary]:
        found = self._summaries(STORY_MEMBERS, story_id)
        return {item_id: found[item_id] for item_id in sorted(found)}

    @_translating_errors
    def put_story(self, story_id: str, record: dict[str, Any]) -> bool:
        with self._writing():
            # Only a record of the story's members now (see StoryIndex.put_story); a story
            # merged away since it was assembled has none, so it keeps no record.
            rows = self._db.execute("SELECT item FROM story_members WHERE story = ?", (story_id,))
            if {row[0] for row in rows} != {member["item"] for member in record["members"]}:
                return False
            self._db.execute(
                "INSERT INTO story_records (id, first_seen, data) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET"
                " first_seen = excluded.first_seen, data = excluded.data",
                (story_id, story_first_seen(record), json.dumps(record, ensure_ascii=False)),
            )
            self._db.execute("INSERT INTO story_changes (story) VALUES (?)", (story_id,))
        return True

    @_translating_errors
    def get_story(self, story_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            f"SELECT data FROM story_records WHERE id = {LIVE_STORY}",  # noqa: S608 -- a constant
            (story_id,),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def get_stories(self, story_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        # No round trips to save in a local file: one indexed lookup each.
        found = {story_id: self.get_story(story_id) for story_id in story_ids}
        return {story_id: record for story_id, record in found.items() if record is not None}

    @_translating_errors
    def story_ids(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT story FROM story_members ORDER BY story")
        return [row[0] for row in rows]

    @_translating_errors
    def latest_stories(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT data FROM story_records"
            " WHERE EXISTS (SELECT 1 FROM story_members WHERE story = story_records.id)"
            " ORDER BY first_seen DESC, id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [json.loads(row[0]) for row in rows]

    # --- change log ---------------------------------------------------------------------
    @_translating_errors
    def changes(self, after: int = 0, limit: int = 1000) -> list[tuple[int, str]]:
        rows = self._db.execute(
            "SELECT seq, story FROM story_changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [(seq, story) for seq, story in rows]

    def close(self) -> None:
        self._checkpointer.close()
        self._db.close()


def _keys_json(keys: Iterable[str]) -> str:
    """Keys as one bound value (a JSON array, read by ``json_each``), however many."""
    return json.dumps(sorted(set(keys)), ensure_ascii=False)
