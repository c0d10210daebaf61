"""Crawl JavaScript-rendered portals through scrapy-playwright and Chromium, within limits.

Only crawls of a ``render: browser`` source use any of this: the portal spider calls
`enable_browser` for such a source, which installs `BrowserDownloadHandler` for http(s)
and `BrowserRequestMiddleware`. The middleware sends the source's listing and article
requests through Chromium (``meta["playwright"]``); its feeds, sitemaps and robots.txt,
and every request of other sources, keep Scrapy's plain HTTP handler (scrapy-playwright
hands requests without that meta to it). A crawl of HTTP sources never starts a browser.

Chromium: ``BROWSER_EXECUTABLE`` (or ``PRESSWATCH_CHROMIUM``), else Debian's
``/usr/lib/chromium/chromium``, else Playwright's own install. When none can be started
the source's crawl ends at once with finish reason ``browser_unavailable`` and a log line
naming the fix; the other sources of the crawl go on.

What scrapy-playwright lacks and this module adds (RELIABILITY rows N7, B1-B7):

- a per-page time limit: Playwright's navigation timeout, then a watchdog over the whole
  page (navigation, waits, load more, HTML) that closes the page, or its context when
  closing hangs (``browser/timeout``);
- a cap on the bytes a page receives, all resources together, counted from Chromium's
  network events as the page receives them, or judged by a declared Content-Length
  (``browser/too_large``); and a cap on the rendered HTML;
- requests from the page only to the source's hosts over http(s), refused before they
  leave (``browser/blocked_requests``); images, media and fonts never fetched
  (``browser/skipped_resources``);
- all of Chromium's traffic through `EgressProxy`, a filtering forward proxy: every
  connection, redirect hops included (Playwright's routing does not see those), goes
  only to the source's hosts and to an address the egress policy allows, resolved and
  checked by us (``browser/blocked_connections``); a response past twice the page's byte
  cap is cut off on the wire (``browser/cut_responses``); a page whose navigation ended
  off the source is dropped (``browser/blocked_navigation``);
- a crashed page fails its request, which is retried (``browser/crashed``); a browser
  that went away fails every page in flight at once (a call into a dead browser may never
  return), is launched again for the next page, and those requests are retried
  (``browser/disconnected``); popups and downloads are refused.

Finding the JSON API behind a rendered listing
----------------------------------------------
A browser is the expensive way in. Most script-filled listings load their links from a
JSON endpoint, which a source can poll directly like a feed:

1. Open the listing in a desktop browser, open the developer tools (F12), Network tab,
   filter "Fetch/XHR", and reload. Click "load more" or scroll if the list grows that way.
2. Look for the request whose response holds the titles you see (the Preview pane shows
   the JSON). Note its URL (page and size parameters), and the request headers the site
   insists on: try the URL in a new tab, or with ``curl``; add back ``Accept``,
   ``X-Requested-With`` or a language header until it answers as it did in the page.
3. Note the path to the list of items in the JSON (``data.items``) and the field that
   holds each article's URL or slug, and the date field if there is one.
4. Put it in the source as ``discovery: {json_api: [{url, headers, items_path,
   url_field, date_field}]}`` (see ``crawler/config.py``); article pages then come over
   plain HTTP when their text is in the HTML, or through the browser otherwise.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from scrapy.exceptions import (
    CloseSpider,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
)
from scrapy_playwright.handler import BrowserContextWrapper, ScrapyPlaywrightDownloadHandler
from scrapy_playwright.page import PageMethod

from crawler.egress import EgressPolicy, ip_literal
from crawler.patterns import compile_pattern
from crawler.spiders.portal import KIND

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.async_api import CDPSession, Page, Route
    from playwright.async_api import Request as PlaywrightRequest
    from playwright.async_api import Response as PlaywrightResponse
    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response
    from scrapy.settings import Settings

    from crawler.config import Listing, LoadMore, Source

logger = logging.getLogger(__name__)

SYSTEM_CHROMIUM = "/usr/lib/chromium/chromium"
HANDLER = "crawler.browser.BrowserDownloadHandler"
MIDDLEWARE = "crawler.browser.BrowserRequestMiddleware"
MIDDLEWARE_ORDER = 560  # after retries (550), so a retried request is rendered again
BROWSER_KINDS = frozenset({"listing", "article"})  # feeds and sitemaps are data, not pages
UNAVAILABLE = "browser_unavailable"
FIX = (
    "install Debian's chromium (apt-get install chromium), or set PRESSWATCH_CHROMIUM "
    "(setting BROWSER_EXECUTABLE) to a Chromium binary, or run `playwright install "
    "chromium` where the machine may download it"
)
CLOSE_GRACE = 5.0  # seconds a page.close() may take before its context is closed instead
OPEN_TIMEOUT_PAGES = 4  # a page not open after this many page limits is given up
HEAD_LIMIT = 64 * 1024  # bytes of a request head the proxy reads
# Chromium calls these by itself despite --disable-component-update (seen: update. and
# clients2.google.com); the proxy refuses them like anything off the source.
BROWSER_SERVICES = ("googleapis.com", "google.com", "gvt1.com")
COPY_CHUNK = 64 * 1024


class BrowserUnavailableError(RuntimeError):
    """No Chromium can be started for this crawl; the message names the fix."""


class PageTooLargeError(IgnoreRequest):
    """The page received more bytes, or rendered more HTML, than the limits allow."""


class PageBlockedError(IgnoreRequest):
    """The main navigation ended off the source or at a forbidden address."""


# --- pure decisions ------------------------------------------------------------------------


def chromium_executable(configured: str, system: str = SYSTEM_CHROMIUM) -> str | None:
    """The Chromium binary to launch: `configured`, else `system` if installed, else None
    (Playwright's own install). A configured path that is not executable is an error."""
    if configured:
        if Path(configured).is_file() and os.access(configured, os.X_OK):
            return configured
        msg = (
            f"BROWSER_EXECUTABLE / PRESSWATCH_CHROMIUM is {configured!r}, which is not an "
            f"executable file: point it at a Chromium binary (such as {SYSTEM_CHROMIUM}) "
            "or unset it"
        )
        raise BrowserUnavailableError(msg)
    if Path(system).is_file() and os.access(system, os.X_OK):
        return system
    return None


def launch_options(executable: str | None, args: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {"headless": True, "args": list(args)}
    if executable:
        options["executable_path"] = executable
    return options


def request_refusal(
    url: str, resource_type: str, allowed: Callable[[str], bool], skip_types: frozenset[str]
) -> tuple[str, str] | None:
    """Why a request from a page must not go out, as ``(stat, reason)``, or None.

    `allowed` says whether a URL is on the source (http(s) and one of its hosts).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "blocked_requests", f"scheme {parts.scheme!r} is not http(s)"
    if not allowed(url):
        return "blocked_requests", f"{parts.hostname} is not one of the source's hosts"
    if resource_type in skip_types:
        return "skipped_resources", f"{resource_type} is not needed for text"
    return None


def over_limit(received: int, limit: int) -> bool:
    return limit > 0 and received > limit


def matching_links(hrefs: list[str], link_pattern: str) -> int:
    pattern = compile_pattern(link_pattern)  # RE2: linear in each link
    return len({href for href in hrefs if pattern.search(href)})


def listing_wait_for(source: Source, listing: Listing) -> str | None:
    return listing.wait_for or source.wait_for


# --- wiring ---------------------------------------------------------------------------------


def enable_browser(settings: Settings, source: Source) -> None:
    """Route `source`'s pages through Chromium in this crawler (settings not yet frozen).

    Raises BrowserUnavailableError when a configured Chromium path is wrong.
    """
    executable = chromium_executable(settings.get("BROWSER_EXECUTABLE") or "")
    handlers = settings.getdict("DOWNLOAD_HANDLERS")
    handlers.update(http=HANDLER, https=HANDLER)
    settings.set("DOWNLOAD_HANDLERS", handlers, priority="spider")
    middlewares = settings.getdict("DOWNLOADER_MIDDLEWARES")
    middlewares[MIDDLEWARE] = MIDDLEWARE_ORDER
    settings.set("DOWNLOADER_MIDDLEWARES", middlewares, priority="spider")
    options = launch_options(executable, settings.getlist("BROWSER_ARGS"))
    options.update(settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS"))
    settings.set("PLAYWRIGHT_LAUNCH_OPTIONS", options, priority="spider")
    logger.info("source %s renders in Chromium (%s)", source.name, executable or "Playwright's own")


class BrowserRequestMiddleware:
    """Downloader middleware: the source's listing and article requests go to Chromium.

    Sets scrapy-playwright's meta: one browser context per source (downloads refused,
    service workers blocked, our User-Agent), the ready selectors (``wait_for`` of the
    listing or source, ``article_wait_for``) and a listing's ``load_more`` rounds.
    Stats: ``browser/pages``, ``browser/not_ready`` (a ready selector did not appear in
    time; the page is parsed as it is), ``browser/load_more_rounds``.
    """

    def __init__(self, crawler: Crawler, source: Source) -> None:
        self.crawler = crawler
        self.source = source
        self.wait_ms = crawler.settings.getfloat("PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT")
        self.context_kwargs = {
            "accept_downloads": False,
            "service_workers": "block",
            "user_agent": crawler.settings.get("USER_AGENT"),
        }

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        assert crawler.spider is not None  # the spider is built before its middlewares
        return cls(crawler, crawler.spider.source)  # type: ignore[attr-defined]

    def process_request(self, request: Request) -> None:
        kind = request.meta.get(KIND)
        if kind not in BROWSER_KINDS or request.meta.get("playwright"):
            return
        # The page's content comes from its scripts: an unchanged shell (a 304) says
        # nothing about it, so a rendered page is never asked for conditionally.
        for validator in (b"If-None-Match", b"If-Modified-Since"):
            request.headers.pop(validator, None)
        request.meta["playwright"] = True
        request.meta["playwright_context"] = self.source.name
        request.meta["playwright_context_kwargs"] = self.context_kwargs
        request.meta["playwright_page_methods"] = self.page_methods(request, kind)
        self._count("browser/pages")

    def page_methods(self, request: Request, kind: str) -> list[PageMethod]:
        if kind == "article":
            ready = self.source.article_wait_for
            return [PageMethod(self.wait_ready, ready)] if ready else []
        listing = self.source.discovery.listings[request.meta["presswatch_listing"]]
        methods = []
        if ready := listing_wait_for(self.source, listing):
            methods.append(PageMethod(self.wait_ready, ready))
        if listing.load_more:
            methods.append(PageMethod(self.load_more, listing.load_more, listing.link_pattern))
        return methods

    async def wait_ready(self, page: Page, selector: str) -> None:
        """Wait for `selector`; when it does not come, parse what is there (and count it)."""
        try:
            await page.wait_for_selector(selector, state="attached", timeout=self.wait_ms)
        except PlaywrightTimeoutError:
            self._count("browser/not_ready")
            logger.info("%s: %r did not appear; parsing the page as it is", page.url, selector)

    async def load_more(self, page: Page, options: LoadMore, link_pattern: str) -> int:
        """Click and/or scroll until `until_links` article links, `max_rounds` rounds, or
        a round that adds no link. Returns the number of article links."""
        links = matching_links(await _hrefs(page), link_pattern)
        for _ in range(options.max_rounds):
            if links >= options.until_links:
                break
            anchors = await page.locator("a[href]").count()
            if options.click:
                button = page.locator(options.click).first
                if not await button.is_visible():
                    break  # the site has no more to show
                try:
                    await button.click(timeout=options.wait * 1000)
                except PlaywrightError as exc:  # covered, detached: keep what is shown
                    logger.info("%s: %r not clickable (%s)", page.url, options.click, exc)
                    break
            if options.scroll:
                await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
            try:
                await page.wait_for_function(
                    "n => document.querySelectorAll('a[href]').length > n",
                    arg=anchors,
                    timeout=options.wait * 1000,
                )
            except PlaywrightTimeoutError:
                break
            self._count("browser/load_more_rounds")
            grown = matching_links(await _hrefs(page), link_pattern)
            if grown <= links:
                break
            links = grown
        return links

    def _count(self, key: str) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(key)


async def _hrefs(page: Page) -> list[str]:
    return await page.eval_on_selector_all("a[href]", "anchors => anchors.map(a => a.href)")


# --- the download handler -------------------------------------------------------------------


@dataclass
class PageGuard:
    """What the watchdog knows of one page: when it started, and why to stop it early."""

    max_bytes: int
    page: Page | None = None
    cdp: CDPSession | None = None
    received: int = 0
    reason: str | None = None  # too_large | crashed
    started: asyncio.Event = field(default_factory=asyncio.Event)
    tripped: asyncio.Event = field(default_factory=asyncio.Event)

    def trip(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.tripped.set()

    def on_data(self, event: dict[str, Any]) -> None:
        self.received += int(event.get("dataLength", 0))
        if over_limit(self.received, self.max_bytes):
            self.trip("too_large")

    def on_response(self, response: PlaywrightResponse) -> None:
        """Stop at the headers when a response declares more than the page may receive.

        Chromium reports a document's bytes as they stream, but a script's headers and
        bytes only once it has loaded in full (the proxy cuts such a one off on the wire).
        """
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and over_limit(int(declared), self.max_bytes):
            self.trip("too_large")


_SHARED: WeakKeyDictionary[Crawler, BrowserDownloadHandler] = WeakKeyDictionary()


class BrowserDownloadHandler(ScrapyPlaywrightDownloadHandler):
    """scrapy-playwright's handler with the limits a crawl of untrusted pages needs.

    Settings: ``BROWSER_PAGE_TIMEOUT`` (45 s, whole page), ``BROWSER_MAX_PAGE_BYTES``
    (30 MiB received), ``BROWSER_MAX_HTML`` (10 MiB rendered), ``BROWSER_SKIP_RESOURCES``
    (image, media, font, texttrack, manifest), ``EGRESS_ALLOW_NETS``; and
    scrapy-playwright's ``PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT``,
    ``PLAYWRIGHT_MAX_CONTEXTS``, ``PLAYWRIGHT_MAX_PAGES_PER_CONTEXT``,
    ``PLAYWRIGHT_RESTART_DISCONNECTED_BROWSER``, ``PLAYWRIGHT_LAUNCH_OPTIONS``.
    Stats: ``browser/timeout``, ``browser/too_large``, ``browser/crashed`` (a page
    crashed or its browser went away: retried), ``browser/disconnected``,
    ``browser/blocked_requests``, ``browser/skipped_resources``,
    ``browser/blocked_navigation``, ``browser/close_hung``, ``browser/unavailable``.
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        settings = crawler.settings
        self.crawler = crawler
        self.page_timeout = settings.getfloat("BROWSER_PAGE_TIMEOUT", 45.0)
        self.open_timeout = OPEN_TIMEOUT_PAGES * self.page_timeout
        self.max_bytes = settings.getint("BROWSER_MAX_PAGE_BYTES")
        self.max_html = settings.getint("BROWSER_MAX_HTML")
        self.skip_types = frozenset(settings.getlist("BROWSER_SKIP_RESOURCES"))
        self.policy = (
            EgressPolicy.from_cidrs(settings.getlist("EGRESS_ALLOW_NETS"))
            if settings.getbool("EGRESS_ENABLED", True)
            else None
        )
        # Our hook, not PLAYWRIGHT_ABORT_REQUEST: it needs this crawl's source.
        self.abort_request = self.refuse_request
        # The proxy's cut is a backstop above the page's own count, which knows the page
        # and trips first when it can see the bytes.
        self.proxy = (
            EgressProxy(self._allowed, self.policy, 2 * self.max_bytes, self._count)
            if settings.getbool("BROWSER_PROXY_ENABLED", True)
            else None
        )
        self._guards: dict[int, PageGuard] = {}  # id(Scrapy request) -> its page's guard
        self._logged: set[str] = set()
        self._unavailable: str | None = None
        self._closing: asyncio.Future[None] | None = None
        self._closed = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        # The downloader builds one handler per scheme; http and https share this one, so
        # a crawl runs one Playwright driver and one Chromium, not two.
        if crawler not in _SHARED:
            _SHARED[crawler] = cls(crawler)
        return _SHARED[crawler]  # type: ignore[return-value]

    async def close(self) -> None:
        if not self._closed:  # called once per scheme it serves
            self._closed = True
            await super().close()
            if self.proxy is not None:
                await self.proxy.close()

    def _allowed(self, url: str) -> bool:
        """Whether `url` is on this crawl's source (the spider's own judgement)."""
        allowed: Callable[[str], bool] = getattr(self.crawler.spider, "allowed", lambda _: False)
        return allowed(url)

    # -- what a page may fetch --------------------------------------------------------

    async def refuse_request(self, request: PlaywrightRequest) -> bool:
        """PLAYWRIGHT_ABORT_REQUEST hook: True aborts this request of the page."""
        refusal = request_refusal(
            request.url, request.resource_type, self._allowed, self.skip_types
        )
        if refusal is None:
            return False
        stat, reason = refusal
        self._count(f"browser/{stat}")
        if stat == "blocked_requests" and reason not in self._logged:
            self._logged.add(reason)
            logger.warning("browser request blocked: %s: %s", request.url[:200], reason)
        return True

    # -- pages ------------------------------------------------------------------------

    async def _maybe_launch_browser(self) -> None:
        if self._unavailable:
            raise IgnoreRequest(f"{UNAVAILABLE}: {self._unavailable}")
        before = getattr(self, "browser", None)
        if self.proxy is not None and "proxy" not in self.config.launch_options:
            # started once, on the reactor's loop; a relaunched browser uses it too
            self.config.launch_options["proxy"] = {"server": await self.proxy.start()}
        try:
            await super()._maybe_launch_browser()
        except PlaywrightError as exc:
            self._unavailable = str(exc).splitlines()[0]
            self._count("browser/unavailable")
            logger.error("Chromium could not be started (%s): %s", self._unavailable, FIX)
            assert self.crawler.engine is not None
            self._closing = asyncio.ensure_future(
                self.crawler.engine.close_spider_async(reason=UNAVAILABLE)
            )
            raise IgnoreRequest(f"{UNAVAILABLE}: {self._unavailable}") from None
        if self.browser is not before:
            self.browser.on("disconnected", self._browser_lost)

    def _browser_lost(self) -> None:
        """Fail every page in flight: a call into a dead browser may never return.

        scrapy-playwright launches a new browser for the next page (its
        PLAYWRIGHT_RESTART_DISCONNECTED_BROWSER); the failed requests are retried.
        """
        if self._closed:
            return  # our own browser.close() at the end of the crawl
        self._count("browser/disconnected")
        logger.warning("Chromium went away; %d pages in flight fail", len(self._guards))
        for guard in self._guards.values():
            guard.trip("crashed")

    async def _create_browser_context(
        self, name: str, context_kwargs: dict | None, spider: Spider | None = None
    ) -> BrowserContextWrapper:
        wrapper = await super()._create_browser_context(name, context_kwargs, spider)
        # scrapy-playwright routes each page it opens; a popup (window.open) is a page it
        # did not open, so the context refuses for it what the page route would.
        await wrapper.context.route("**", self._route_unrouted)
        return wrapper

    async def _route_unrouted(self, route: Route, request: PlaywrightRequest) -> None:
        if await self.refuse_request(request):
            await route.abort()
        else:
            await route.continue_()

    async def _create_page(self, request: Request, spider: Spider) -> Page:
        page = await super()._create_page(request, spider)
        guard = self._guards.get(id(request))
        if guard is not None:
            guard.page = page
            page.on("crash", lambda _page: guard.trip("crashed"))
            page.on("response", guard.on_response)
            page.on("popup", _close_popup)
            guard.cdp = await _count_bytes(page, guard)
            guard.started.set()
        return page

    async def _download_request(self, request: Request, spider: Spider | None = None) -> Response:
        guard = PageGuard(max_bytes=self.max_bytes)
        self._guards[id(request)] = guard
        download = asyncio.ensure_future(super()._download_request(request, spider))
        try:
            # The page's own time starts when it opens; waiting for a free page of the
            # context is bounded by the pages ahead of us, and by a broad limit in case
            # opening itself hangs.
            await _first_of(download, guard.started, guard.tripped, timeout=self.open_timeout)
            if guard.started.is_set() and not guard.tripped.is_set():
                await _first_of(download, guard.tripped, timeout=self.page_timeout)
        finally:
            del self._guards[id(request)]
        if not download.done() or guard.reason:
            reason = guard.reason or "timeout"
            await self._abandon(download, guard)
            self._count(f"browser/{reason}")
            logger.warning("browser page stopped (%s): %s", reason, request.url)
            raise _stop_error(reason, request.url, self)
        try:
            response = download.result()
        except PlaywrightTimeoutError as exc:  # the navigation timeout, the first limit
            self._count("browser/timeout")
            raise DownloadTimeoutError(f"{request.url}: {str(exc).splitlines()[0]}") from None
        self._check_response(request, response)
        return response

    def _check_response(self, request: Request, response: Response) -> None:
        hops = [*request.meta.get("redirect_urls", []), response.url]
        off_source = next((url for url in hops if not self._allowed(url)), None)
        address = response.ip_address
        why = None
        if off_source is not None:
            why = f"the page went to {off_source}, off the source"
        elif self.policy is not None and address is not None:
            refusal = self.policy.refusal(address)
            why = f"{response.url} was served from a {refusal}" if refusal else None
        if why:
            self._count("browser/blocked_navigation")
            logger.warning("browser navigation blocked: %s", why)
            raise PageBlockedError(why)
        if over_limit(len(response.body), self.max_html):
            self._count("browser/too_large")
            msg = f"{request.url}: rendered HTML of {len(response.body)} bytes > BROWSER_MAX_HTML"
            raise PageTooLargeError(msg)

    async def _abandon(self, download: asyncio.Future[Response], guard: PageGuard) -> None:
        """Stop a page's download and close the page; its context when closing hangs."""
        download.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(download, CLOSE_GRACE)
        page = guard.page
        browser = page.context.browser if page is not None else None
        if page is None or page.is_closed() or (browser is not None and not browser.is_connected()):
            return  # nothing to close, or nothing left to close it with
        try:
            await asyncio.wait_for(page.close(), CLOSE_GRACE)
        except (TimeoutError, PlaywrightError):
            self._count("browser/close_hung")
            with suppress(TimeoutError, PlaywrightError):
                await asyncio.wait_for(page.context.close(), CLOSE_GRACE)
        self._count("playwright/page_count/closed")

    def _count(self, key: str) -> None:
        assert self.stats is not None
        self.stats.inc_value(key)


async def _first_of(
    download: asyncio.Future[Response], *events: asyncio.Event, timeout: float
) -> None:
    """Wait until the download ends, one of `events` is set, or `timeout` s pass."""
    waiters = {asyncio.ensure_future(event.wait()) for event in events}
    try:
        await asyncio.wait({download, *waiters}, timeout=timeout, return_when="FIRST_COMPLETED")
    finally:
        for waiter in waiters:
            waiter.cancel()


def _stop_error(reason: str, url: str, handler: BrowserDownloadHandler) -> Exception:
    if reason == "too_large":
        return PageTooLargeError(
            f"{url}: the page received more than BROWSER_MAX_PAGE_BYTES={handler.max_bytes}"
        )
    if reason == "crashed":
        return DownloadFailedError(f"{url}: the page crashed")
    return DownloadTimeoutError(
        f"{url}: the page took longer than BROWSER_PAGE_TIMEOUT={handler.page_timeout:g} s"
    )


async def _count_bytes(page: Page, guard: PageGuard) -> CDPSession | None:
    """Count the bytes the page receives as they arrive (Chromium's DevTools protocol)."""
    try:
        session = await asyncio.wait_for(page.context.new_cdp_session(page), CLOSE_GRACE)
        session.on("Network.dataReceived", guard.on_data)
        await asyncio.wait_for(session.send("Network.enable"), CLOSE_GRACE)
    except (PlaywrightError, TimeoutError) as exc:
        logger.warning("no byte count for %s (%s): BROWSER_MAX_PAGE_BYTES not applied", page, exc)
        return None
    return session


async def _close_popup(popup: Page) -> None:
    with suppress(PlaywrightError):
        await popup.close()


def browser_problem(exc: BrowserUnavailableError) -> CloseSpider:
    """The CloseSpider to end a source's crawl with when its browser cannot be started."""
    logger.error("%s (%s)", exc, FIX)
    return CloseSpider(UNAVAILABLE)


# --- the filtering proxy --------------------------------------------------------------------


class EgressProxy:
    """A forward proxy on 127.0.0.1 that Chromium sends all its traffic through.

    Playwright's routing sees a page's requests but not the hops of a redirect, and
    Chromium resolves host names itself. Here every connection, redirect hops included,
    is judged on the host it names (the source's hosts only) and on the address it is
    made to (resolved here, checked by the egress policy, and connected to as checked,
    so a rebinding DNS answer does not matter); a response is cut off on the wire past
    `max_bytes`. Plain http is proxied request by request (``Connection: close``), https
    through CONNECT tunnels whose bytes are counted the same way. Stats:
    ``browser/blocked_connections``, ``browser/blocked_service_connections`` (Chromium's
    own update checks), ``browser/cut_responses``.
    """

    def __init__(
        self,
        allowed: Callable[[str], bool],
        policy: EgressPolicy | None,
        max_bytes: int,
        count: Callable[[str], None],
    ) -> None:
        self.allowed = allowed
        self.policy = policy
        self.max_bytes = max_bytes
        self.count = count
        self.server: asyncio.Server | None = None
        self.logged: set[str] = set()

    async def start(self) -> str:
        """Listen on a free loopback port; returns the proxy URL for Chromium."""
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0, limit=HEAD_LIMIT)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), CLOSE_GRACE)
            self.server = None

    async def serve(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        try:
            await self._serve(client, to_client)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # either side went away or never spoke: nothing to answer
        finally:
            to_client.close()

    async def _serve(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(client.readuntil(b"\r\n\r\n"), CLOSE_GRACE)
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        target_parts = proxy_target(method, target)
        if target_parts is None:
            await self._refuse(to_client, target, "not a proxy request")
            return
        scheme, host, port, path = target_parts
        why = None if self.allowed(f"{scheme}://{host}/") else "not one of the source's hosts"
        address = None
        if why is None:
            address, why = await self._address(host)
        if why is not None or address is None:
            await self._refuse(to_client, host, why or "no address")
            return
        try:
            connecting = asyncio.open_connection(address, port)
            up, to_up = await asyncio.wait_for(connecting, CLOSE_GRACE)
        except (OSError, TimeoutError) as exc:
            await _answer(to_client, 502, f"cannot connect to {host}: {exc}")
            return
        try:
            if method == "CONNECT":
                to_client.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                to_up.write(forwarded_head(method, path, version, header_lines))
            await self._relay(client, to_client, up, to_up)
        finally:
            to_up.close()

    async def _address(self, host: str) -> tuple[str | None, str | None]:
        """The address to connect to for `host`, or why there is none."""
        literal = ip_literal(host)
        if literal is not None:
            why = self.policy.refusal(literal) if self.policy else None
            return (None, why) if why else (str(literal), None)
        try:
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return None, f"cannot resolve {host}: {exc.strerror}"
        addresses = [str(info[4][0]) for info in infos]
        for address in addresses:  # every answer must pass: a mixed answer is an attack
            why = self.policy.refusal(ipaddress.ip_address(address)) if self.policy else None
            if why:
                return None, f"{host} resolves to a {why}"
        return (addresses[0], None) if addresses else (None, f"no address for {host}")

    async def _refuse(self, to_client: asyncio.StreamWriter, host: str, why: str) -> None:
        if is_browser_service(host):
            # Chromium's own update checks, whatever the flags say: refused, but they say
            # nothing about the pages, so they are kept out of the pages' count.
            self.count("browser/blocked_service_connections")
        else:
            self.count("browser/blocked_connections")
            if why not in self.logged:
                self.logged.add(why)
                logger.warning("browser connection refused: %s: %s", host, why)
        await _answer(to_client, 403, f"refused by Presswatch: {why}")

    async def _relay(
        self,
        client: asyncio.StreamReader,
        to_client: asyncio.StreamWriter,
        up: asyncio.StreamReader,
        to_up: asyncio.StreamWriter,
    ) -> None:
        """Copy both ways until either side closes; past `max_bytes` down, cut it off."""
        upward = asyncio.ensure_future(_copy(client, to_up, limit=0))
        downward = asyncio.ensure_future(_copy(up, to_client, limit=self.max_bytes))
        try:
            await asyncio.wait({upward, downward}, return_when="FIRST_COMPLETED")
        finally:
            upward.cancel()
            downward.cancel()
        if downward.done() and not downward.cancelled() and downward.result():
            self.count("browser/cut_responses")


async def _answer(to_client: asyncio.StreamWriter, status: int, text: str) -> None:
    body = text.encode()
    reason = {403: "Forbidden", 502: "Bad Gateway"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    to_client.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await to_client.drain()


def is_browser_service(host: str) -> bool:
    """Whether `host` is one Chromium calls by itself (component and extension updates)."""
    host = host.lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in BROWSER_SERVICES)


def proxy_target(method: str, target: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, origin-form path) of a proxy request line's target, or None."""
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            return None
        return "https", host.strip("[]").lower(), int(port), ""
    parts = urlsplit(target)
    if parts.scheme != "http" or not parts.hostname:
        return None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return "http", parts.hostname.lower(), parts.port or 80, path


def forwarded_head(method: str, path: str, version: str, header_lines: list[str]) -> bytes:
    """The request head sent on to the site: origin-form, one request per connection."""
    hop_by_hop = ("proxy-", "connection:", "keep-alive:")
    kept = [line for line in header_lines if line and not line.lower().startswith(hop_by_hop)]
    return "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""]).encode(
        "latin-1"
    )


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter, limit: int) -> bool:
    """Copy until end of stream; True when stopped for passing `limit` bytes (0: none)."""
    copied = 0
    while chunk := await source.read(COPY_CHUNK):
        copied += len(chunk)
        if over_limit(copied, limit):
            return True
        sink.write(chunk)
        await sink.drain()
    return False
