"""Incremental crawling: skip stored articles, and ask for feeds only when they changed.

A downloader middleware. Article requests (meta ``presswatch_kind="article"``) whose item is
already stored are ignored before anything is fetched; the spider attaches the ids of every
link a feed or listing gave (``presswatch_batch``), so the store is asked once per feed,
not once per link. Feed, sitemap and listing requests carry the ETag and Last-Modified
seen last time; a 304 answer ends there.

New validators are saved only when the crawl finishes cleanly with no failed article
(not fetched, or fetched and not stored because a pipeline failed or the store was
unavailable, see `pipelines.outage`): saved earlier, a crash, a failed fetch or a failed
store write would leave the next run a 304 over articles it never kept.

A store that fails a lookup here is taken to know nothing: the article or feed is fetched
in full, and the pipelines, which ride out the outage, drop what turns out to be stored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.exceptions import IgnoreRequest, NotConfigured

from crawler.items import item_id
from crawler.urls import canonical_url
from pipelines.store.base import StoreError
from pipelines.storing import crawler_store

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response

    from pipelines.store import Store

logger = logging.getLogger(__name__)

DISCOVERY_KINDS = frozenset({"feed", "sitemap", "listing", "json_api"})
# Items the store could not take in this crawl (pipelines.outage): spooled or lost.
UNSTORED_STATS = ("store/spooled", "store/lost")


class KnownItems:
    """Answers "is this item stored?" from the store, one batch of ids per round trip."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.checked: set[str] = set()
        self.known: set[str] = set()
        self.lookups = 0

    def is_known(self, this_id: str, batch: Iterable[str] = ()) -> bool:
        if this_id not in self.checked:
            wanted = {this_id, *batch} - self.checked
            self.known |= self.store.known_ids(wanted)
            self.checked |= wanted
            self.lookups += 1
        return this_id in self.known


def response_validators(headers: dict[str, str | None]) -> dict[str, str]:
    """The ``etag``/``last_modified`` pair of a response, without absent ones."""
    pairs = {"etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}
    return {key: value for key, value in pairs.items() if value}


def conditional_headers(validators: dict[str, str]) -> dict[str, str]:
    headers = {}
    if validators.get("etag"):
        headers["If-None-Match"] = validators["etag"]
    if validators.get("last_modified"):
        headers["If-Modified-Since"] = validators["last_modified"]
    return headers


class IncrementalMiddleware:
    """Skip stored articles; send conditional requests for feeds, sitemaps and listings.

    Settings: ``INCREMENTAL_ENABLED`` (True), ``INCREMENTAL_SKIP_KNOWN`` (True),
    ``INCREMENTAL_CONDITIONAL`` (True). Stats: ``incremental/skipped``,
    ``incremental/lookups``, ``incremental/conditional``, ``incremental/not_modified``,
    ``incremental/validators_saved``, ``incremental/store_errors`` (lookups that failed:
    fetched in full).
    """

    def __init__(self, crawler: Crawler, store: Store) -> None:
        self.crawler = crawler
        self.store = store
        self.skip_known = crawler.settings.getbool("INCREMENTAL_SKIP_KNOWN", True)
        self.conditional = crawler.settings.getbool("INCREMENTAL_CONDITIONAL", True)
        self.known = KnownItems(store)
        self.pending_validators: dict[str, dict[str, str]] = {}
        self.failed_articles = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> IncrementalMiddleware:
        if not crawler.settings.getbool("INCREMENTAL_ENABLED", True):
            raise NotConfigured("INCREMENTAL_ENABLED is off")
        middleware = cls(crawler, crawler_store(crawler))
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(middleware.item_error, signal=signals.item_error)
        return middleware

    def _inc(self, key: str) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(key)

    def process_request(self, request: Request) -> None:
        kind = request.meta.get("presswatch_kind")
        if kind == "article" and self.skip_known:
            this_id = request.meta.get("presswatch_item_id") or item_id(canonical_url(request.url))
            lookups = self.known.lookups
            try:
                known = self.known.is_known(this_id, request.meta.get("presswatch_batch", ()))
            except StoreError as exc:
                self._store_failed(exc)
                return
            if self.known.lookups != lookups:
                self._inc("incremental/lookups")
            if known:
                self._inc("incremental/skipped")
                raise IgnoreRequest(f"already stored: {request.url}")
        elif kind in DISCOVERY_KINDS and self.conditional:
            try:
                headers = conditional_headers(self.store.get_validators(request.url))
            except StoreError as exc:
                self._store_failed(exc)
                return
            for name, value in headers.items():
                request.headers.setdefault(name, value)
            if headers:
                self._inc("incremental/conditional")

    def _store_failed(self, exc: StoreError) -> None:
        self._inc("incremental/store_errors")
        logger.warning("store lookup failed, fetching in full: %s", exc)

    def process_response(self, request: Request, response: Response) -> Response:
        kind = request.meta.get("presswatch_kind")
        if kind == "article" and response.status >= 400:
            self.failed_articles += 1
        if kind not in DISCOVERY_KINDS or not self.conditional:
            return response
        if response.status == 304:
            self._inc("incremental/not_modified")
            raise IgnoreRequest(f"not modified since the last crawl: {request.url}")
        if 200 <= response.status < 300:
            headers = {
                name: response.headers.get(name, b"").decode("latin-1") or None
                for name in ("ETag", "Last-Modified")
            }
            if validators := response_validators(headers):
                self.pending_validators[request.url] = validators
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        if request.meta.get("presswatch_kind") == "article" and not isinstance(
            exception, IgnoreRequest
        ):
            self.failed_articles += 1

    def item_error(self) -> None:
        """A pipeline raised on an item (the store down, say): it was not kept."""
        self.failed_articles += 1

    def spider_closed(self, reason: str) -> None:
        assert self.crawler.stats is not None
        unstored = sum(self.crawler.stats.get_value(key, 0) for key in UNSTORED_STATS)
        if reason != "finished" or self.failed_articles or unstored:
            logger.info(
                "feed validators not saved (close reason %s, %d articles failed, %d not"
                " stored): the next run fetches the feeds in full",
                reason,
                self.failed_articles,
                unstored,
            )
            return
        try:
            for url, validators in self.pending_validators.items():
                self.store.set_validators(url, validators)
                self._inc("incremental/validators_saved")
        except StoreError as exc:  # the next run fetches in full: nothing is lost
            logger.warning("feed validators not saved: %s", exc)
