"""Ride out a store outage: no item is lost while the store is briefly unavailable.

Every item pipeline that reads or writes the store for an item (dedup, story linking, the
store write) calls it through `store_call`. A call that fails with a `StoreError` is
retried with exponential backoff and jitter; meanwhile the engine is paused, so the crawl
does not download pages it cannot keep. When the store answers again, fetching resumes.

When the outage outlasts ``STORE_RETRY_MAX_TIME``, or the error is one that waiting cannot
mend (a read-only database, a refused password), the crawl gives up on the store: the
item in hand and every later one go to the local spool (`pipelines.spool`), and the spider
is closed with the reason ``store_unavailable``. `crawler.run` then exits non-zero, the
run is recorded as failed with the store's message, and the feed validators are not saved
(`pipelines.incremental`), so the next crawl replays the spool and fetches the feeds again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from weakref import WeakKeyDictionary

import redis
from scrapy.exceptions import DropItem
from scrapy.utils.defer import deferred_from_coro

from pipelines.spool import ItemLost, crawler_spool
from pipelines.store.base import StoreError
from pipelines.storing import in_store_thread

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

R = TypeVar("R")

STORE_UNAVAILABLE = "store_unavailable"  # the finish_reason of a crawl that gave up on it

_guards: WeakKeyDictionary[Crawler, StoreGuard] = WeakKeyDictionary()


class StoreUnavailable(StoreError):
    """The crawl gave up on the store; the message is the store's own last error."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often a failing store is tried again.

    Settings: ``STORE_RETRY_ENABLED`` (True), ``STORE_RETRY_MAX_TIME`` (60 s an outage may
    last), ``STORE_RETRY_BASE_DELAY`` (0.5 s before the first retry, doubled each time),
    ``STORE_RETRY_MAX_DELAY`` (8 s at most between two tries).
    """

    max_time: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 8.0

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RetryPolicy:
        if not settings.getbool("STORE_RETRY_ENABLED", True):
            return cls(max_time=0.0)
        policy = cls(
            max_time=settings.getfloat("STORE_RETRY_MAX_TIME", cls.max_time),
            base_delay=settings.getfloat("STORE_RETRY_BASE_DELAY", cls.base_delay),
            max_delay=settings.getfloat("STORE_RETRY_MAX_DELAY", cls.max_delay),
        )
        if policy.max_time < 0 or policy.base_delay <= 0 or policy.max_delay < policy.base_delay:
            msg = (
                f"STORE_RETRY_* settings contradict each other ({policy}): give"
                " MAX_TIME >= 0 and 0 < BASE_DELAY <= MAX_DELAY"
            )
            raise ValueError(msg)
        return policy

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try `attempt` + 1 (0-based): exponential, half jittered,
        so the calls that failed together do not all come back at once."""
        ceiling = min(self.max_delay, self.base_delay * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not cryptographic


def lasting(error: StoreError) -> bool:
    """Whether waiting cannot mend `error`: a read-only database, a refused password or
    permission. A full disk, a lost connection or Redis out of memory may pass."""
    cause = error.__cause__
    if isinstance(cause, sqlite3.Error):
        return "readonly" in str(cause)
    return isinstance(cause, redis.AuthenticationError | redis.exceptions.NoPermissionError)


class StoreGuard:
    """The store's health as one crawl sees it, shared by the calls of all its pipelines."""

    def __init__(self, crawler: Crawler, policy: RetryPolicy) -> None:
        self.crawler = crawler
        self.policy = policy
        self.down_since: float | None = None
        self.error: str | None = None  # set when the crawl gave up on the store

    def _inc(self, key: str) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(key)

    async def call(self, function: Callable[..., R], *args: Any) -> R:
        """`function(*args)` in the store thread, retried for up to the policy's time;
        raises `StoreUnavailable` once the crawl has given up on the store.

        The budget is the call's own: a read that succeeds while writes fail (Redis out
        of memory, a full disk) says nothing of the write waiting here.
        """
        failing_since: float | None = None
        attempt = 0
        while True:
            if self.error is not None:
                raise StoreUnavailable(self.error)
            try:
                result = await in_store_thread(self.crawler, function, *args)
            except StoreUnavailable:
                raise
            except StoreError as exc:
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                self._outage(exc)
                left = failing_since + self.policy.max_time - now
                if lasting(exc) or left <= 0:
                    self.give_up(str(exc))
                    raise StoreUnavailable(str(exc)) from exc
                self._inc("store/retries")
                # the last try comes when the budget ends, not a whole delay after
                await asyncio.sleep(min(self.policy.delay(attempt), left))
                attempt += 1
                continue
            if failing_since is not None:
                self._recovered()
            return result

    def _outage(self, exc: StoreError) -> None:
        """Take in a failure: at the first of an outage, say so and pause fetching."""
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        self._inc("store/outages")
        if not lasting(exc) and self.policy.max_time > 0:
            logger.warning(
                "the store failed: %s. Fetching paused; retrying for up to %g s",
                exc,
                self.policy.max_time,
            )
            assert self.crawler.engine is not None
            self.crawler.engine.pause()

    def _recovered(self) -> None:
        """A call that had failed went through: the store takes what it refused."""
        if self.down_since is None or self.error is not None:
            return
        down = time.monotonic() - self.down_since
        logger.warning("the store is back after %.1f s; fetching resumes", down)
        self.down_since = None
        assert self.crawler.engine is not None
        self.crawler.engine.unpause()

    def give_up(self, message: str) -> None:
        """Stop the crawl: from now on items go to the spool."""
        if self.error is not None:
            return
        self.error = message
        assert self.crawler.stats is not None
        self.crawler.stats.set_value("store/error", message)
        logger.error(
            "the store is unavailable (%s); stopping the crawl, items not stored go to the spool",
            message,
        )
        engine = self.crawler.engine
        if engine is not None:
            engine.unpause()  # a paused engine would hold the requests it must now drop
            # scheduled, not awaited: closing waits for the items in the pipelines,
            # this one among them
            deferred_from_coro(engine.close_spider_async(reason=STORE_UNAVAILABLE))


def store_guard(crawler: Crawler) -> StoreGuard:
    guard = _guards.get(crawler)
    if guard is None:
        guard = _guards[crawler] = StoreGuard(crawler, RetryPolicy.from_settings(crawler.settings))
    return guard


async def store_call(
    crawler: Crawler, item: dict[str, Any], function: Callable[..., R], *args: Any
) -> R:
    """`function(*args)` on the store for `item`, through the crawl's `StoreGuard`.

    When the crawl has given up on the store, `item` is written to the spool and dropped
    (``store/spooled``); if even the spool cannot be written, it is lost for this run
    (``store/lost``) and the next crawl fetches it again, since the failed crawl saves no
    feed validators.
    """
    try:
        return await store_guard(crawler).call(function, *args)
    except StoreUnavailable as exc:
        reason = str(exc)
    assert crawler.stats is not None
    spool = crawler_spool(crawler)
    try:
        await asyncio.to_thread(spool.add, item, reason)
    except OSError as error:
        crawler.stats.inc_value("store/lost")
        logger.error("item %s not kept: the store and the spool %s both failed (%s)",
                     item.get("url"), spool.path, error)  # fmt: skip
        msg = f"not stored, not spooled: {item.get('url')}"
        raise ItemLost(msg, log_level="ERROR") from None
    crawler.stats.inc_value("store/spooled")
    msg = f"spooled for the next crawl (store unavailable): {item.get('url')}"
    raise DropItem(msg, log_level="INFO")
