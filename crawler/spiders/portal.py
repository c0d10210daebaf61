"""The one generic spider: a Source's feeds, sitemaps and listings in, PressItems out.

    scrapy crawl portal -a source=NAME

reads the source from ``PRESSWATCH_SOURCES`` (a sources.yaml path; setting or environment
variable) or the bundled ``crawler/sources.yaml``. Code that already holds a `Source`
passes it as ``source=`` to ``crawler.crawl``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.http import Request, Response

from crawler.config import Source, find_source, load_sources
from crawler.discovery import Found, parse_feed, parse_json_api, parse_listing, parse_sitemap
from crawler.items import PressItem, item_id
from crawler.pool import ExtractionPool, ParsedPage, ParseOptions
from crawler.templates import TemplateLearner
from crawler.urls import canonical_host, canonical_url
from pipelines.link_features import attach, catalog_aliases, crawl_catalog_spec

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

KIND = "presswatch_kind"  # feed | sitemap | listing | json_api | article
ITEM_ID = "presswatch_item_id"
BATCH = "presswatch_batch"  # item ids found by the same discovery response
FOUND_DATE = "presswatch_found_date"


def resolve_source(source: Source | str | None, sources_file: str | None) -> Source:
    """The Source given, or the one of that name in `sources_file` (None: the bundled file)."""
    if isinstance(source, Source):
        return source
    if not source:
        msg = "the portal spider needs a source: scrapy crawl portal -a source=NAME"
        raise ValueError(msg)
    return find_source(load_sources(sources_file), source)


def declared_charset(content_type: bytes | None) -> str | None:
    """The charset parameter of a Content-Type header value, if any."""
    if not content_type:
        return None
    for parameter in content_type.decode("latin-1").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


def newest_first(found: Iterable[Found]) -> list[Found]:
    """Dated links newest first, then undated ones in page order."""
    found = list(found)
    dated = sorted((f for f in found if f.published_at), key=_sort_key, reverse=True)
    return dated + [f for f in found if not f.published_at]


def _sort_key(found: Found) -> datetime:
    when = datetime.fromisoformat(found.published_at or "")
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class PortalSpider(scrapy.Spider):
    """Crawl one source: discover article URLs, fetch at most ``source.max_items`` of them,
    and parse each in the extraction pool.

    Settings: ``PRESSWATCH_SOURCES`` (path of sources.yaml; default the bundled file),
    ``PRESSWATCH_PARSE_WORKERS`` (extraction processes; default: the usable CPUs),
    ``PRESSWATCH_LEARN_TEMPLATES`` (True: learn where the source's pages keep the body,
    see crawler.templates; a source with a text selector has no need),
    ``SYNDICATION_ENABLED`` (True: the workers also compute what story linking needs of each
    item, carried beside it to the syndication pipeline, see pipelines.link_features).
    Stats: ``discovery/<kind>_links``, ``portal/articles_requested``, ``portal/offsite``,
    ``portal/over_limit``, ``portal/items``, ``portal/empty``, ``portal/parse_failed``,
    ``portal/no_title`` and ``portal/no_date`` (pages that lacked the field: a rise means the
    site's layout changed; source health reads them), ``clean/title_removed`` (the workers
    clean each page's text, see crawler.pool), ``template/learned``,
    ``template/checked``, ``template/dropped`` (a check disagreed), ``template/pages``
    (read through the template) and ``template/missed`` (a page the template found no
    article on, read by trafilatura).
    """

    name = "portal"

    def __init__(self, *args: Any, source: Source | str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._source_arg = source
        self.source: Source
        self.pool: ExtractionPool
        self.options: ParseOptions
        self.templates: TemplateLearner | None = None
        self._requested: set[str] = set()
        self._browser_problem: Exception | None = None  # raised by start(): ends this crawl

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> PortalSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        sources_file = crawler.settings.get("PRESSWATCH_SOURCES") or os.environ.get(
            "PRESSWATCH_SOURCES"
        )
        spider.source = resolve_source(spider._source_arg, sources_file)
        spider.allowed_domains = sorted(spider.hosts())
        spider.pool = ExtractionPool.acquire(
            crawler.settings.getint("PRESSWATCH_PARSE_WORKERS") or None
        )
        spider.options = spider.parse_options()
        if crawler.settings.getbool("SYNDICATION_ENABLED", True):
            # the workers compute what linking needs of each item (pipelines.link_features)
            catalog = crawl_catalog_spec(sources_file, spider.source)
            spider.options = replace(spider.options, catalog=catalog)
            spider.pool.prepare(catalog, catalog_aliases(catalog))
        if crawler.settings.getbool("PRESSWATCH_LEARN_TEMPLATES", True) and not (
            spider.source.selectors.text
        ):
            spider.templates = TemplateLearner()
        crawler.signals.connect(spider.pool.warm, signal=signals.spider_opened)
        crawler.signals.connect(spider.release_pool, signal=signals.spider_closed)
        if spider.source.render == "browser":
            spider.enable_browser(crawler)
        return spider

    def enable_browser(self, crawler: Crawler) -> None:
        """Render this source's pages in Chromium (crawler.browser), in this crawler only."""
        # Imported here so that crawls of HTTP sources never load scrapy-playwright.
        from crawler import browser

        try:
            browser.enable_browser(crawler.settings, self.source)
        except browser.BrowserUnavailableError as exc:
            self._browser_problem = browser.browser_problem(exc)

    def release_pool(self) -> None:
        self.pool.release()

    # --- where we may go --------------------------------------------------------------

    def hosts(self) -> set[str]:
        """The source's domains plus the hosts of its discovery URLs."""
        discovery = self.source.discovery
        urls = [*discovery.feeds, *discovery.sitemaps, *(lst.url for lst in discovery.listings)]
        urls += [api.url for api in discovery.json_api]
        return set(self.source.hosts) | {canonical_host(urlsplit(u).hostname or "") for u in urls}

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        host = canonical_host(parts.hostname or "")
        return parts.scheme in ("http", "https") and (
            self.source.owns(host) or host in self.allowed_domains
        )

    # --- discovery ----------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Request]:
        if self._browser_problem is not None:
            self._count("browser/unavailable")
            raise self._browser_problem
        discovery = self.source.discovery
        for url in discovery.feeds:
            yield Request(url, callback=self.parse_feed, meta={KIND: "feed"}, priority=10)
        for url in discovery.sitemaps:
            yield Request(url, callback=self.parse_sitemap, meta={KIND: "sitemap"}, priority=10)
        for index, listing in enumerate(discovery.listings):
            meta = {KIND: "listing", "presswatch_listing": index, "presswatch_page": 1}
            yield Request(listing.url, callback=self.parse_listing, meta=meta, priority=10)
        for index, api in enumerate(discovery.json_api):
            for page in range(1, api.pages + 1):
                yield Request(
                    api.url.replace("{page}", str(page)),
                    headers=api.headers,
                    callback=self.parse_json_api,
                    meta={KIND: "json_api", "presswatch_api": index},
                    priority=10,
                )

    def parse_feed(self, response: Response) -> Iterator[Request]:
        found = parse_feed(response.body, response.url)
        self._count("discovery/feed_links", len(found))
        yield from self.article_requests(found)

    def parse_sitemap(self, response: Response) -> Iterator[Request]:
        links = parse_sitemap(response.body, response.url)
        self._count("discovery/sitemap_links", len(links.articles))
        for child in links.sitemaps:
            if self.allowed(child):
                yield Request(
                    child, callback=self.parse_sitemap, meta={KIND: "sitemap"}, priority=10
                )
        yield from self.article_requests(links.articles)

    def parse_listing(self, response: Response) -> Iterator[Request]:
        index, page = response.meta["presswatch_listing"], response.meta["presswatch_page"]
        listing = self.source.discovery.listings[index]
        links = parse_listing(
            response.body,
            response.url,
            listing.link_pattern,
            listing.next_pattern,
            encoding=getattr(response, "encoding", "utf-8"),
        )
        self._count("discovery/listing_links", len(links.articles))
        if links.next_page and page < listing.pages and self.allowed(links.next_page):
            meta = {KIND: "listing", "presswatch_listing": index, "presswatch_page": page + 1}
            yield Request(links.next_page, callback=self.parse_listing, meta=meta, priority=10)
        yield from self.article_requests(links.articles)

    def parse_json_api(self, response: Response) -> Iterator[Request]:
        api = self.source.discovery.json_api[response.meta["presswatch_api"]]
        found = parse_json_api(
            response.body, response.url, api.items_path, api.url_field, api.date_field
        )
        self._count("discovery/json_api_links", len(found))
        yield from self.article_requests(found)

    def article_requests(self, found: Iterable[Found]) -> Iterator[Request]:
        """Requests for the links not requested yet in this run, newest first, up to
        ``max_items``. The batch of their ids lets the incremental middleware ask the store
        about a whole feed in one round trip."""
        chosen: list[tuple[Found, str]] = []
        for link in newest_first(found):
            if not self.allowed(link.url):
                self._count("portal/offsite")
                continue
            link_id = item_id(canonical_url(link.url))
            if link_id in self._requested:
                continue
            if len(self._requested) >= self.source.max_items:
                self._count("portal/over_limit")
                continue
            self._requested.add(link_id)
            chosen.append((link, link_id))
        batch = tuple(link_id for _, link_id in chosen)
        for link, link_id in chosen:
            self._count("portal/articles_requested")
            meta = {KIND: "article", ITEM_ID: link_id, BATCH: batch, FOUND_DATE: link.published_at}
            yield Request(link.url, callback=self.parse_article, meta=meta)

    # --- articles -----------------------------------------------------------------------

    def parse_options(self) -> ParseOptions:
        selectors = self.source.selectors
        return ParseOptions(
            selectors=selectors if selectors.model_dump(exclude_none=True) else None,
            timezone=self.source.timezone,
            languages=tuple(self.source.languages),
            forced_encoding=self.source.encoding,
        )

    def page_options(self) -> ParseOptions:
        """How to read the next article page: with the source's template, as learned so far."""
        if self.templates is None:
            return self.options
        template, find = self.templates.plan()
        return replace(self.options, body_template=template, find_template=find)

    def learn_template(self, page: ParsedPage, options: ParseOptions) -> None:
        if page.body_from == "template":
            self._count("template/pages")
        elif self.templates is not None and options.find_template:
            event = self.templates.observe(options.body_template, page.body_template)
            if event is not None:
                self._count(f"template/{event}")
            if event in ("learned", "dropped"):
                logger.info(
                    "%s the body template of %s: %s",
                    event,
                    self.source.name,
                    options.body_template or page.body_template,
                )
        elif options.body_template:
            self._count("template/missed")

    async def parse_article(self, response: Response) -> AsyncIterator[PressItem]:
        declared = declared_charset(response.headers.get(b"Content-Type"))
        options = self.page_options()
        try:
            page = await self.pool.parse(response.body, declared, response.url, options)
        except BrokenProcessPool:
            self._count("portal/parse_failed")
            logger.warning("the extraction worker died while parsing %s", response.url)
            return
        self.learn_template(page, options)
        if not page.text.strip():
            self._count("portal/empty")
            logger.info("no article text at %s", response.url)
            return
        flags = list(page.flags)
        if not page.title.strip():
            self._count("portal/no_title")
        published_at = page.published_at
        if published_at is None:
            self._count("portal/no_date")
            published_at = response.meta.get(FOUND_DATE)
            flags.append("date_from_discovery" if published_at else "no_date")
        self._count("portal/items")
        for repair in page.repairs:
            self._count(f"clean/{repair}")
        item = PressItem(
            url=canonical_url(response.url),
            source=self.source.name,
            title=page.title,
            text=page.text,
            lead=page.lead,
            published_at=published_at,
            lang=page.lang,
            authors=page.authors,
            links=page.links,
            content_hash=page.content_hash,
            fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
            fetched_url=response.request.url if response.request else response.url,
            flags=flags,
        )
        if page.link is not None:
            attach(item, page.link)
        yield item

    def _count(self, key: str, count: int = 1) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(key, count)
