"""Keep each crawled item in the store; one store connection shared by a crawl's components."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from weakref import WeakKeyDictionary

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.exceptions import NotConfigured

from pipelines.store import Store, open_store, store_url_from_env
from pipelines.store.base import StoreError

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from pipelines.story_index import KeyWindow, StoryIndex

logger = logging.getLogger(__name__)

R = TypeVar("R")

_stores: WeakKeyDictionary[Crawler, Store] = WeakKeyDictionary()
_threads: WeakKeyDictionary[Crawler, StoreThread] = WeakKeyDictionary()
_story_indexes: WeakKeyDictionary[Crawler, StoryIndex] = WeakKeyDictionary()
# a call, with the loop and future that wait for its outcome
Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class StoreThread:
    """The one thread that runs a crawl's store calls, in the order they were made.

    Calls that queue up while one runs are taken together, and their outcomes go back to
    the event loop in one wake-up: a `run_in_executor` per call cost the reactor about
    twice the CPU (a thread pool's future and a loop wake-up for each).
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="store", daemon=True)
        self._thread.start()

    def call(self, function: Callable[..., R], *args: Any) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._jobs.put((loop, future, function, args))
        return future

    def shutdown(self) -> None:
        """Run the calls already made, then stop."""
        self._jobs.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while True:
            jobs, stop = self._waiting()
            outcomes: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, Any]]] = {}
            for loop, future, function, args in jobs:
                try:
                    outcome = (future, function(*args), None)
                except BaseException as exc:  # handed to the caller, whatever it is
                    outcome = (future, None, exc)
                outcomes.setdefault(loop, []).append(outcome)
            for loop, settled in outcomes.items():
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_settle, settled)
            if stop:
                return

    def _waiting(self) -> tuple[list[Job], bool]:
        """The next call (waiting for one) and every call queued behind it; True at the end."""
        jobs: list[Job] = []
        job = self._jobs.get()
        while job is not None:
            jobs.append(job)
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return jobs, False
        return jobs, True


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


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
    it only take the GIL from the reactor (see `StoreThread`).
    """
    thread = _threads.get(crawler)
    if thread is None:
        thread = _threads[crawler] = StoreThread()
    return await thread.call(function, *args)


def crawler_story_index(crawler: Crawler, window: KeyWindow | None = None) -> StoryIndex:
    """The story index of this crawl's store (`window`: see `Store.story_index`), opened on
    first use; call it in the store thread, where its connection is used. The linker links
    through it and `StorePipeline` tells it which items the store now holds."""
    index = _story_indexes.get(crawler)
    if index is None:
        index = _story_indexes[crawler] = crawler_store(crawler).story_index(window)
    return index


def close_crawler_story_index(crawler: Crawler) -> None:
    """Close the story index of this crawl, if it was opened (it holds a connection of its
    own, which must go before the store closes)."""
    index = _story_indexes.pop(crawler, None)
    if index is not None:
        index.close()


def close_crawler_store(crawler: Crawler) -> None:
    """Close the store of this crawl, if it was opened."""
    thread = _threads.pop(crawler, None)
    if thread is not None:
        thread.shutdown()
    close_crawler_story_index(crawler)
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

    A write that fails is retried while the store is down, and the item is spooled when
    the crawl gives up on the store (`pipelines.outage`). Once a new item is stored, the
    crawl's story index (when linking opened one) drops its own copy of the item's summary,
    text and all, and reads it from the stored item from then on (`StoryIndex.item_stored`).

    Settings: ``STORE_ENABLED`` (True), ``PRESSWATCH_STORE`` (the store URL; default the
    ``PRESSWATCH_STORE`` environment variable, then ``sqlite:///presswatch.db``), and the
    ``STORE_RETRY_*`` and ``STORE_SPOOL_DIR`` settings of `pipelines.outage`.
    Stats: ``store/new``, ``store/existing``; ``store/retries``, ``store/spooled`` ...
    """

    def __init__(self, crawler: Crawler) -> None:
        # here, not at the top: the outage guard runs its calls through this module
        from pipelines.outage import store_call

        self.crawler = crawler
        self.store = crawler_store(crawler)
        self.store_call = store_call

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StorePipeline:
        if not crawler.settings.getbool("STORE_ENABLED", True):
            raise NotConfigured("STORE_ENABLED is off")
        return cls(crawler)

    async def process_item(self, item: Any) -> Any:
        assert self.crawler.stats is not None
        fields = item_dict(item)
        if await self.store_call(self.crawler, fields, self._keep, fields):
            self.crawler.stats.inc_value("store/new")
        else:
            self.crawler.stats.inc_value("store/existing")
        return item

    def _keep(self, fields: dict[str, Any]) -> bool:
        """Runs in the store thread: `Store.add_item`, then `StoryIndex.item_stored` for a
        new item. The item is kept once the first succeeds: when the second fails, the
        index keeps its summary (memory, not data) and the failure is not the item's."""
        created = self.store.add_item(fields)
        index = _story_indexes.get(self.crawler)
        if created and index is not None:
            try:
                index.item_stored(fields)
            except StoreError as exc:
                logger.warning("the story index keeps its copy of %s: %s", fields.get("url"), exc)
        return created
