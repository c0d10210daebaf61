"""The local spool: items a crawl could not store, kept on disk until the store takes them.

One JSON Lines file per source and store (``<STORE_SPOOL_DIR>/<source>-<store hash>.jsonl``),
each line ``{"v": 1, "spooled_at", "reason", "item"}``, written and fsync'd before the item
is let go. JSON, never pickle: the file is data, whoever wrote it.

The next crawl of that source replays the spool before it fetches anything: the
`SpoolReplayMiddleware` yields each spooled item from the spider's start, so it passes
through the same pipelines as a fetched one (cleaning, dedup against the store, story
linking, the store write). Those are idempotent by item id, so an item that did reach the
store before it was spooled, or a spool replayed twice after a crash, is stored once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from scrapy import signals
from scrapy.exceptions import DropItem

from crawler.items import PressItem
from pipelines.storing import crawler_store, item_dict

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

SPOOL_VERSION = 1
DEFAULT_SPOOL_DIR = "presswatch-spool"

_spools: WeakKeyDictionary[Crawler, Spool] = WeakKeyDictionary()
# ids of the items a crawl replayed from its spool (see `replayed_ids`)
_replayed: WeakKeyDictionary[Crawler, set[str]] = WeakKeyDictionary()


class ItemLost(DropItem):
    """Neither the store nor the spool took the item: it is lost to this crawl, which saves
    no feed validators then, so the next crawl fetches it again."""


class Spool:
    """The spool file of one source and store; safe to use from several threads."""

    def __init__(self, directory: Path, source: str, store_url: str) -> None:
        # the store's identity, not its URL, in the name: an item waits for its own store
        store_hash = hashlib.sha256(store_url.encode()).hexdigest()[:12]
        self.path = directory / f"{source}-{store_hash}.jsonl"
        # what a replay has taken and not yet settled; kept until it is, so a crash in
        # the middle of a replay leaves the items to the next one
        self.replaying = self.path.with_suffix(".replaying")
        self._lock = threading.Lock()

    def add(self, item: dict[str, Any], reason: str) -> None:
        """Append `item`, durably: on disk (fsync'd) when this returns. Raises OSError."""
        line = {
            "v": SPOOL_VERSION,
            "spooled_at": datetime.now(UTC).isoformat(),
            "reason": reason,
            "item": item,
        }
        self._append(self.path, [json.dumps(line, ensure_ascii=False)])

    def _append(self, path: Path, lines: list[str]) -> None:
        with self._lock:
            created = not path.exists()
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as spool:
                spool.write("".join(f"{line}\n" for line in lines))
                spool.flush()
                os.fsync(spool.fileno())
            if created:  # the new name must survive a crash too
                directory = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)

    def begin_replay(self) -> list[dict[str, Any]]:
        """Take every spooled item (one per id, the last spooled) for a replay; the items
        stay on disk until `end_replay`."""
        with self._lock:
            if self.path.exists():
                moved = self.path.read_text("utf-8")
                with self.replaying.open("a", encoding="utf-8") as taken:
                    taken.write(moved)
                    taken.flush()
                    os.fsync(taken.fileno())
                self.path.unlink()
            if not self.replaying.exists():
                return []
            items: dict[str, dict[str, Any]] = {}
            for number, text in enumerate(self.replaying.read_text("utf-8").splitlines(), 1):
                item = _spooled_item(text)
                if item is None:
                    logger.warning(
                        "spool %s line %d is not a spooled item; skipped", self.replaying, number
                    )
                    continue
                items[item.get("id") or PressItem.from_dict(item).id] = item
            return list(items.values())

    def end_replay(self, left: Iterable[dict[str, Any]], reason: str) -> None:
        """Settle a replay: the items `left` (not stored, not dropped) go back to the spool."""
        lines = [
            json.dumps(
                {"v": SPOOL_VERSION, "spooled_at": datetime.now(UTC).isoformat(),
                 "reason": reason, "item": item},
                ensure_ascii=False,
            )
            for item in left
        ]  # fmt: skip
        if lines:
            self._append(self.path, lines)
        with self._lock:
            self.replaying.unlink(missing_ok=True)

    def count(self) -> int:
        """How many items wait in the spool (a replay's taken ones included)."""
        with self._lock:
            return sum(
                1
                for path in (self.path, self.replaying)
                if path.exists()
                for text in path.read_text("utf-8").splitlines()
                if _spooled_item(text) is not None
            )


def _spooled_item(text: str) -> dict[str, Any] | None:
    """The item of one spool line; None for a torn or foreign line."""
    try:
        line = json.loads(text)
    except json.JSONDecodeError:
        return None
    item = line.get("item") if isinstance(line, dict) else None
    return item if isinstance(item, dict) and item.get("url") else None


def spool_directory(crawler: Crawler) -> Path:
    return Path(crawler.settings.get("STORE_SPOOL_DIR") or DEFAULT_SPOOL_DIR)


def source_name(crawler: Crawler) -> str:
    spider = crawler.spider
    source = getattr(spider, "source", None)
    return str(getattr(source, "name", None) or getattr(spider, "name", None) or "crawl")


def crawler_spool(crawler: Crawler) -> Spool:
    """The spool of this crawl's source and store."""
    spool = _spools.get(crawler)
    if spool is None:
        store = crawler_store(crawler)
        spool = _spools[crawler] = Spool(spool_directory(crawler), source_name(crawler), store.url)
    return spool


def replayed_ids(crawler: Crawler) -> set[str]:
    """Ids of the items this crawl replayed from its spool: their story linking may have
    stopped partway in the crawl that spooled them (`pipelines.syndication`)."""
    return _replayed.setdefault(crawler, set())


class SpoolReplayMiddleware:
    """Replay the source's spool before the spider's own start requests.

    A spider middleware: the spooled items come out of the spider's start, ahead of its
    requests, and go through every item pipeline. An item stored, or dropped (a duplicate,
    or spooled again because the store is still down), is settled; one that failed
    otherwise goes back to the spool when the spider closes.

    Settings: ``STORE_SPOOL_DIR`` (``presswatch-spool``, relative to the working
    directory; ``PRESSWATCH_SPOOL_DIR`` in the environment). Stats: ``store/replayed``.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.pending: dict[str, dict[str, Any]] = {}
        self.spool: Spool | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SpoolReplayMiddleware:
        middleware = cls(crawler)
        crawler.signals.connect(middleware.settled, signal=signals.item_scraped)
        crawler.signals.connect(middleware.dropped, signal=signals.item_dropped)
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        return middleware

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        if self.crawler.settings.getbool("STORE_ENABLED", True):
            self.spool = crawler_spool(self.crawler)
            items = self.spool.begin_replay()
            if items:
                logger.info("replaying %d spooled items from %s", len(items), self.spool.path)
            ids = replayed_ids(self.crawler)
            assert self.crawler.stats is not None
            for fields in items:
                item = PressItem.from_dict(fields)
                self.pending[item.id] = fields
                ids.add(item.id)
                self.crawler.stats.inc_value("store/replayed")
                yield item
        async for request_or_item in start:
            yield request_or_item

    def settled(self, item: Any) -> None:
        self.pending.pop(item_dict(item).get("id") or "", None)

    def dropped(self, item: Any, exception: BaseException) -> None:
        if not isinstance(exception, ItemLost):  # a lost one stays for the next replay
            self.settled(item)

    def spider_closed(self, reason: str) -> None:
        if self.spool is None:
            return
        if self.pending:
            logger.warning(
                "%d replayed items were not stored; back to the spool", len(self.pending)
            )
        try:
            self.spool.end_replay(self.pending.values(), f"replay failed (crawl {reason})")
        except OSError as exc:  # the .replaying file keeps them for the next crawl
            logger.error("cannot settle the spool replay of %s: %s", self.spool.path, exc)
