"""The store's contract: the application's verbs, implemented by SQLite and by Redis.

Every value is a JSON-ready dict. Items are keyed by ``PressItem.id`` (a hash of the
canonical URL), so writing the same article twice, from one process or two, keeps one copy.
Times are ISO 8601 strings with an offset; the time index orders items by
``published_at`` and, when a page gave none, by ``fetched_at``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pipelines.store.outbox import Outbox
    from pipelines.story_index import KeyWindow, StoryIndex


class StoreError(RuntimeError):
    """The store cannot be reached or refuses us; the message names where and the fix."""


WORD = re.compile(r"[^\W_]+")  # as SQLite's unicode61 tokenizer splits words


def fold(value: str) -> str:
    return value.casefold().replace("ё", "е")


def text_matcher(query_text: str) -> Callable[[str], bool]:
    """What `ItemQuery.text` means, for a store that filters in Python.

    The query's words must appear in order, case-insensitively and ``ё`` read as ``е``,
    the last one as a prefix ("минфин" finds "Минфина"), as SQLite's word index does. A
    query with no word in it (punctuation only) is matched as a plain substring.
    """
    words = WORD.findall(fold(query_text))
    if not words:
        needle = fold(query_text)
        return lambda text: needle in fold(text)
    pattern = re.compile(r"\b" + r"[\W_]+".join(re.escape(word) for word in words) + r"\w*")
    return lambda text: pattern.search(fold(text)) is not None


@dataclass(frozen=True)
class ItemQuery:
    """What `Store.items` returns: newest first, filtered by every field that is set."""

    source: str | None = None
    since: str | None = None  # ISO 8601; items at or after
    until: str | None = None  # ISO 8601; items before
    lang: str | None = None
    text: str | None = None  # words of the title or text, in order; the last may be a prefix
    # The caller's own test of an item (e.g. the keyword matcher's, which knows inflections
    # and spellings the word index does not): read newest first until `limit` items pass.
    keep: Callable[[dict[str, Any]], bool] | None = None
    # What `keep` needs of an item: a word of its title or text that starts with one of
    # these. A store with a word index narrows by them before `keep` runs; one without may
    # ignore them, since `keep` decides anyway.
    word_prefixes: tuple[str, ...] = ()
    limit: int = 50
    offset: int = 0


class Store(Protocol):
    """Where items, feed validators, crawl runs, named state, stories and alerts are kept."""

    url: str  # the store URL without any password, safe to print

    # --- items -----------------------------------------------------------------------
    def add_item(self, item: dict[str, Any]) -> bool:
        """Keep `item` unless an item with its id is kept already; True when it was new."""

    def get_item(self, item_id: str) -> dict[str, Any] | None: ...

    def known_ids(self, item_ids: Iterable[str]) -> set[str]:
        """Which of `item_ids` are stored (one round trip for a whole feed)."""

    def stored_copy(self, item_id: str, source: str, content_hash: str | None) -> str | None:
        """The stored item that an item would repeat, in one round trip: `item_id` itself
        when it is stored, else the first stored item of `source` whose text has this
        hash (the same text under another URL of one site; another site's copy is
        syndication, kept); None when there is neither."""

    def items(self, query: ItemQuery = ItemQuery()) -> list[dict[str, Any]]: ...

    def item_sources(self) -> list[str]:
        """The names of the sources with at least one item, sorted."""

    def count_items(self, source: str | None = None) -> int: ...

    def index_words(self, starting: Callable[[int], object] | None = None) -> int:
        """Bring the word index that narrows word searches up to every stored item now, so
        a search need not (a long-running reader calls it at start); returns how many items
        it indexed. Safe to run at any time, from several processes, and to interrupt.
        `starting` is told how many items it is about to index, when there are any."""

    def count_items_in(
        self, windows: Sequence[tuple[str, str]], source: str | None = None
    ) -> list[int]:
        """How many items (of `source`, or all) fall in each ``[since, until)`` window of
        ISO 8601 times, by the time index; one indexed count a window (items per day)."""

    # --- conditional requests for feeds, sitemaps and listings ------------------------
    def get_validators(self, url: str) -> dict[str, str]:
        """``{"etag": ..., "last_modified": ...}`` last seen for `url` (keys may be absent)."""

    def set_validators(self, url: str, validators: dict[str, str]) -> None: ...

    # --- crawl runs ----------------------------------------------------------------------
    def add_run(self, run: dict[str, Any]) -> None:
        """Record one crawl of one source: ``{"id", "source", "started_at", "ended_at",
        "status", "stats": {...}}``."""

    def runs(self, source: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Newest first."""

    # --- small named state: a job's cursor, a source's health ------------------------------
    def get_state(self, name: str) -> dict[str, Any] | None: ...

    def set_state(self, name: str, value: dict[str, Any]) -> None:
        """Keep `value` under `name`, replacing what was there (last writer wins)."""

    # --- the store's other parts ---------------------------------------------------------
    def story_index(self, window: KeyWindow | None = None) -> StoryIndex:
        """Where story linking keeps its state, in this store (`pipelines.story_index`);
        its candidate entries count for `window` (default: `KeyWindow()`, 30 days)."""

    def outbox(self) -> Outbox:
        """The durable alert outbox and delivery ledger, in this store."""

    def close(self) -> None: ...
