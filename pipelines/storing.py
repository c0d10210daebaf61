"""Keep each crawled item in the store; one store connection shared by a crawl's components."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar
from weakref import WeakKeyDictionary

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.exceptions import NotConfigured

from pipelines.store import Store, open_store, store_url_from_env

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

R = TypeVar("R")

_stores: WeakKeyDictionary[Crawler, Store] = WeakKeyDictionary()
_threads: WeakKeyDictionary[Crawler, ThreadPoolExecutor] = WeakKeyDictionary()


def crawler_store(crawler: Crawler) -> Store:
    """The store of this crawl (``PRESSWATCH_STORE``, else the environment's), opened on
    first use and closed when the engine stops, after every component's last write."""
    store = _stores.get(crawler)
    if store is None:
        url = crawler.settings.get("PRESSWATCH_STORE") or store_url_from_env()
        store = open_store(url)
        _stores[crawler] = store
        crawler.signals.connect(_close_store(crawler), signal=signals.engine_stopped, weak=False)
        logger.debug("crawl store: %s", store.url)
    return store


async def in_store_thread(crawler: Crawler, function: Callable[..., R], *args: Any) -> R:
    """Run a call on this crawl's store in the crawl's one store thread.

    Off the reactor: a slow or hung store (Redis paused, SQLite busy) must not stall it,
    and SQLite's indexing releases the GIL, so it overlaps with fetching. One thread, not
    asyncio's pool: the calls share one connection anyway, and idle threads queueing on
    it only take the GIL from the reactor.
    """
    executor = _threads.get(crawler)
    if executor is None:
        executor = _threads[crawler] = ThreadPoolExecutor(1, thread_name_prefix="store")
    return await asyncio.get_running_loop().run_in_executor(executor, function, *args)


def close_crawler_store(crawler: Crawler) -> None:
    """Close the store of this crawl, if it was opened."""
    executor = _threads.pop(crawler, None)
    if executor is not None:
        executor.shutdown(wait=True)
    store = _stores.pop(crawler, None)
    if store is not None:
        store.close()


def _close_store(crawler: Crawler) -> Callable[[], None]:
    return lambda: close_crawler_store(crawler)


def item_dict(item: Any) -> dict[str, Any]:
    """A PressItem, a dict or any Scrapy item as a plain dict (shallow: the values are
    the item's own, which is all JSON needs and spares a deep copy of the text)."""
    return dict(ItemAdapter(item).items())


class StorePipeline:
    """Write items to the store; an item already there (same id) is left as it was.

    Settings: ``STORE_ENABLED`` (True), ``PRESSWATCH_STORE`` (the store URL; default the
    ``PRESSWATCH_STORE`` environment variable, then ``sqlite:///presswatch.db``).
    Stats: ``store/new``, ``store/existing``.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.store = crawler_store(crawler)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StorePipeline:
        if not crawler.settings.getbool("STORE_ENABLED", True):
            raise NotConfigured("STORE_ENABLED is off")
        return cls(crawler)

    async def process_item(self, item: Any) -> Any:
        assert self.crawler.stats is not None
        if await in_store_thread(self.crawler, self.store.add_item, item_dict(item)):
            self.crawler.stats.inc_value("store/new")
        else:
            self.crawler.stats.inc_value("store/existing")
        return item
