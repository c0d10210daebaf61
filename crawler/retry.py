"""Retries that back off per host: exponential delay with jitter, and Retry-After honoured."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from time import monotonic
from typing import TYPE_CHECKING, Self

from scrapy import signals
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.asyncio import call_later
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.response import response_status_message
from twisted.internet.defer import Deferred

if TYPE_CHECKING:
    from scrapy.core.downloader import Downloader, Slot
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response

logger = logging.getLogger(__name__)

DEFERRED_REASON = "retry_after_beyond_cap"


def parse_retry_after(value: str | bytes | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date), or None."""
    if value is None:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(retry_number: int, base: float, ceiling: float, rng: random.Random) -> float:
    """Delay before retry `retry_number` (1, 2, ...): base·2ⁿ⁻¹ capped, half of it jittered.

    The fixed half keeps the backoff growing; the random half spreads many crawlers apart.
    """
    delay = min(ceiling, base * 2 ** (retry_number - 1))
    return delay / 2 + rng.uniform(0, delay / 2)


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's RetryMiddleware with a per-host pause before each retry (scrapy#3849).

    The pause is ``Retry-After`` when the response carries one, else an exponential
    backoff. It holds back every request to that host, not just the retried one: the
    host's downloader slot is paused (requests already queued there wait) and requests
    reaching this middleware wait on a timer, so the reactor never blocks. A Retry-After
    beyond ``RETRY_AFTER_MAX`` gives up: the request and the rest of that host are left
    to the next run, with the reason ``retry_after_beyond_cap``.

    Settings: the stock ``RETRY_*``, plus ``RETRY_BACKOFF_BASE`` (2 s),
    ``RETRY_BACKOFF_MAX`` (60 s), ``RETRY_AFTER_MAX`` (300 s). Stats: ``retry/backoff``,
    ``retry/retry_after``, ``retry/deferred_hosts``, ``retry/deferred_requests``.
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler.settings)
        self.crawler = crawler
        settings = crawler.settings
        self.backoff_base = settings.getfloat("RETRY_BACKOFF_BASE", 2.0)
        self.backoff_max = settings.getfloat("RETRY_BACKOFF_MAX", 60.0)
        self.retry_after_max = settings.getfloat("RETRY_AFTER_MAX", 300.0)
        self.rng = random.Random()  # noqa: S311  (jitter, not cryptography)
        self.hold_until: dict[str, float] = {}  # slot key -> monotonic time
        self.deferred_hosts: dict[str, str] = {}  # slot key -> why

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        middleware = cls(crawler)
        # The downloader sends response_downloaded before it frees the slot for the next
        # request; pausing the host any later would let one more request slip out.
        crawler.signals.connect(middleware.pause_host, signal=signals.response_downloaded)
        return middleware

    @property
    def _downloader(self) -> Downloader:
        assert self.crawler.engine is not None
        return self.crawler.engine.downloader

    async def process_request(self, request: Request) -> None:
        key = self._downloader.get_slot_key(request)
        if why := self.deferred_hosts.get(key):
            self.crawler.stats.inc_value("retry/deferred_requests")
            raise IgnoreRequest(f"{DEFERRED_REASON}: {why}")
        wait = self.hold_until.get(key, 0.0) - monotonic()
        if wait > 0:
            paused: Deferred[None] = Deferred()
            call_later(wait, paused.callback, None)
            await maybe_deferred_to_future(paused)

    def pause_host(self, response: Response, request: Request) -> None:
        """Pause the response's host when it answers with a status we retry."""
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return
        key = self._downloader.get_slot_key(request)
        retry_after = self._retry_after(response)
        if retry_after is None:
            self._backoff(key, request.meta.get("retry_times", 0) + 1)
        elif retry_after > self.retry_after_max:
            self._defer_host(key, request, f"Retry-After {retry_after:.0f} s > cap")
        else:
            self._hold(key, retry_after)

    def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        key = self._downloader.get_slot_key(request)
        if key in self.deferred_hosts:
            return response
        retry = self._retry(request, response_status_message(response.status))
        if retry is not None and self._retry_after(response) is not None:
            self.crawler.stats.inc_value("retry/retry_after")
        return retry or response

    def process_exception(self, request: Request, exception: Exception) -> Request | None:
        retry = super().process_exception(request, exception)
        if retry is not None:
            self._backoff(self._downloader.get_slot_key(request), retry.meta["retry_times"])
        return retry

    @staticmethod
    def _retry_after(response: Response) -> float | None:
        return parse_retry_after(response.headers.get(b"Retry-After"), datetime.now(UTC))

    def _backoff(self, key: str, retry_number: int) -> None:
        delay = backoff_delay(retry_number, self.backoff_base, self.backoff_max, self.rng)
        self.crawler.stats.inc_value("retry/backoff")
        self._hold(key, delay)

    def _hold(self, key: str, seconds: float) -> None:
        until = max(self.hold_until.get(key, 0.0), monotonic() + seconds)
        self.hold_until[key] = until
        logger.debug("Holding requests to %s for %.2f s", key, until - monotonic())
        if (slot := self._downloader.slots.get(key)) is not None:
            self._pause_slot(slot, until - monotonic())

    def _pause_slot(self, slot: Slot, seconds: float) -> None:
        # The downloader skips a slot while its latercall is pending; this is the same
        # timer it uses for DOWNLOAD_DELAY, so releasing it resumes normal pacing.
        if slot.latercall is not None:
            slot.latercall.cancel()
        slot.latercall = call_later(seconds, self._release_slot, slot)

    def _release_slot(self, slot: Slot) -> None:
        slot.latercall = None
        self._downloader._process_queue(slot)  # no public resume in 2.19

    def _defer_host(self, key: str, request: Request, why: str) -> None:
        self.crawler.stats.inc_value("retry/deferred_requests")
        if key not in self.deferred_hosts:
            self.crawler.stats.inc_value("retry/deferred_hosts")
            self.deferred_hosts[key] = why
            logger.warning(
                "Gave up on %s and the rest of %s this run (%s): %s",
                request,
                key,
                why,
                DEFERRED_REASON,
            )
        # Requests already queued for the host would otherwise still go out.
        if (slot := self._downloader.slots.get(key)) is not None:
            while slot.queue:
                _queued, pending = slot.queue.popleft()
                pending.errback(IgnoreRequest(f"{DEFERRED_REASON}: {why}"))
