"""robots.txt that fails closed: a host whose robots.txt cannot be read is not crawled."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.misc import build_from_crawler
from twisted.internet.defer import Deferred

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.robotstxt import RobotParser

logger = logging.getLogger(__name__)

UNREACHABLE_REASON = "blocked_by_robots_unreachable"


def robots_verdict(status: int) -> str:
    """What a robots.txt HTTP status means (RFC 9309 §2.3.1): parse, allow_all or unreachable.

    429 counts as unreachable, as Google treats it: being rate-limited is no permission.
    """
    if 200 <= status < 300:
        return "parse"
    if status == 429 or status >= 500:
        return "unreachable"
    return "allow_all"


def truncate_robots(body: bytes, max_bytes: int) -> bytes:
    """The first `max_bytes` of a robots.txt, cut at a line end so no rule is half-read."""
    if len(body) <= max_bytes:
        return body
    head = body[:max_bytes]
    return head[: head.rfind(b"\n") + 1]


class Unreachable:
    """Stands in for a parser when a host's robots.txt could not be read; says why."""

    def __init__(self, why: str) -> None:
        self.why = why


class FailClosedRobotsTxtMiddleware(RobotsTxtMiddleware):
    """Scrapy's RobotsTxtMiddleware, but RFC 9309's fail-closed for unreachable robots.txt.

    2xx: parse the first ``ROBOTSTXT_MAX_BYTES`` (500 KiB); 4xx: allow all; 5xx, 429,
    a timeout, a network error or an egress refusal: refuse every request to that host
    for this run. Verdicts live in this middleware instance, so a later run asks again.
    Stats: ``robotstxt/unreachable`` (hosts), ``robotstxt/blocked_unreachable``
    (requests refused), and Scrapy's ``robotstxt/forbidden``.
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.max_bytes = crawler.settings.getint("ROBOTSTXT_MAX_BYTES", 500 * 1024)
        self.verdicts: dict[str, RobotParser | Unreachable | Deferred[None]] = {}

    async def process_request(self, request: Request) -> None:
        if request.meta.get("dont_obey_robotstxt"):
            return
        verdict = await self.host_verdict(request)
        if isinstance(verdict, Unreachable):
            self._stats.inc_value("robotstxt/blocked_unreachable")
            logger.debug("Refused %s: %s (%s)", request, UNREACHABLE_REASON, verdict.why)
            raise IgnoreRequest(f"{UNREACHABLE_REASON}: {verdict.why}")
        self.process_request_2(verdict, request)

    async def host_verdict(self, request: Request) -> RobotParser | Unreachable:
        """The robots parser of the request's host, fetching robots.txt on first use."""
        url = urlparse_cached(request)
        netloc = url.netloc
        known = self.verdicts.get(netloc)
        if isinstance(known, Deferred):
            await maybe_deferred_to_future(known)
        elif known is None:
            ready: Deferred[None] = Deferred()
            self.verdicts[netloc] = ready
            self.verdicts[netloc] = await self._fetch(f"{url.scheme}://{netloc}/robots.txt")
            ready.callback(None)
        verdict = self.verdicts[netloc]
        assert not isinstance(verdict, Deferred)
        return verdict

    async def _fetch(self, robots_url: str) -> RobotParser | Unreachable:
        robots_request = Request(
            robots_url,
            priority=self.DOWNLOAD_PRIORITY,
            meta={"dont_obey_robotstxt": True},
            callback=NO_CALLBACK,
        )
        self._stats.inc_value("robotstxt/request_count")
        try:
            response = await self.crawler.engine.download_async(robots_request)
        except Exception as exc:  # any failure to fetch is "unreachable"
            return self._unreachable(robots_url, f"{type(exc).__name__}: {exc}")
        self._stats.inc_value("robotstxt/response_count")
        self._stats.inc_value(f"robotstxt/response_status_count/{response.status}")
        verdict = robots_verdict(response.status)
        if verdict == "unreachable":
            return self._unreachable(robots_url, f"HTTP {response.status}")
        body = truncate_robots(response.body, self.max_bytes) if verdict == "parse" else b""
        return await self._parse(body, response)

    async def _parse(self, body: bytes, response: Response) -> RobotParser:
        parser = build_from_crawler(self._parserimpl, self.crawler, body)
        await self.crawler.signals.send_catch_log_async(
            signal=signals.robots_parsed, robotparser=parser, request=response.request
        )
        return parser

    def _unreachable(self, robots_url: str, why: str) -> Unreachable:
        self._stats.inc_value("robotstxt/unreachable")
        logger.warning(
            "robots.txt unreachable (%s): %s; nothing on this host is fetched this run",
            why,
            robots_url,
        )
        return Unreachable(f"{robots_url}: {why}")
