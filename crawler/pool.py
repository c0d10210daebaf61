"""Parse article pages in worker processes, so that extraction runs beside the reactor.

Decoding and trafilatura cost several milliseconds of CPU a page, about twice what Scrapy
spends fetching it; on the reactor thread they would halve the crawl. The pool is created
on first use, sized to the CPUs this process may run on, and shut down by its owner.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import ClassVar

from crawler.config import Selectors
from crawler.encoding import decode_html
from crawler.extract import extract_article
from crawler.lifetime import end_with
from pipelines.clean import clean_texts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParseOptions:
    """How one source's pages are read (sent to the workers with every page)."""

    selectors: Selectors | None = None
    timezone: str = "Asia/Almaty"
    languages: tuple[str, ...] = ("ru",)
    forced_encoding: str | None = None
    # A learned body template to read the page through, and whether to run trafilatura
    # and look for the template instead (crawler.templates).
    body_template: str | None = None
    find_template: bool = False


@dataclass
class ParsedPage:
    """What a worker sends back: the article's fields, cleaned (pipelines.clean: the clean
    pipeline then takes them as they are), plus the decoding's verdict."""

    title: str = ""
    text: str = ""
    lead: str = ""
    content_hash: str = ""
    repairs: list[str] = field(default_factory=list)  # what cleaning repaired
    published_at: str | None = None
    lang: str | None = None
    authors: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    encoding: str = ""
    flags: list[str] = field(default_factory=list)
    body_from: str = "trafilatura"
    body_template: str | None = None


def parse_page(
    body: bytes, declared_encoding: str | None, url: str, options: ParseOptions
) -> ParsedPage:
    """Decode, extract and clean one article page (runs in a worker, or inline in tests).

    Cleaning here rather than only in the clean pipeline takes half a millisecond a page
    off the reactor, whose process is the crawl's narrowest part."""
    decoded = decode_html(
        body,
        declared_encoding,
        languages=options.languages,
        forced=options.forced_encoding,
    )
    article = extract_article(
        decoded.text,
        url,
        selectors=options.selectors,
        timezone=options.timezone,
        languages=options.languages,
        body_template=options.body_template,
        find_template=options.find_template,
    )
    fields = {"title": article.title, "text": article.text, "lead": article.lead}
    cleaned, repairs = clean_texts({**fields, "authors": list(article.authors)})
    return ParsedPage(
        title=cleaned["title"],
        text=cleaned["text"],
        lead=cleaned["lead"],
        content_hash=cleaned["content_hash"],
        repairs=repairs,
        published_at=article.published_at,
        lang=article.lang,
        authors=cleaned["authors"],
        links=list(article.links or []),
        encoding=decoded.encoding,
        flags=list(decoded.flags),
        body_from=article.body_from,
        body_template=article.body_template,
    )


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def forkserver_preload() -> list[str]:
    """What the fork server imports once, so that each worker starts with it loaded:
    this module (trafilatura and the rest), and the program's main module when it was run
    with ``-m``. multiprocessing re-runs that module in every worker it starts; with its
    imports already loaded, that takes milliseconds instead of a second or more
    (``crawler.run`` imports Scrapy)."""
    main = getattr(sys.modules["__main__"].__spec__, "name", None)
    return [__name__] + ([main] if main and not main.endswith("__main__") else [])


class ExtractionPool:
    """A lazily started process pool that parses pages off the reactor thread.

    Workers come from a fork server, not from forking the crawler itself: the crawler
    has reactor and DNS threads whose locks a plain fork could copy while held.
    """

    _shared: ClassVar[ExtractionPool | None] = None
    _users: ClassVar[int] = 0

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or usable_cpus()
        self._executor: ProcessPoolExecutor | None = None

    @classmethod
    def acquire(cls, workers: int | None = None) -> ExtractionPool:
        """The process's one pool, shared by every crawler in it; `release` when done.

        Sharing keeps the workers at the machine's size whether a process crawls one
        source or fifteen (a pool per crawler would start workers × sources processes).
        """
        if cls._shared is None:
            cls._shared = cls(workers)
        cls._users += 1
        return cls._shared

    def release(self) -> None:
        """One user of the shared pool is done; the last one shuts it down."""
        cls = type(self)
        if self is cls._shared:
            cls._users -= 1
            if cls._users > 0:
                return
            cls._shared = None
        self.shutdown()

    def _started(self) -> ProcessPoolExecutor:
        if self._executor is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(forkserver_preload())
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=context,
                initializer=end_with,
                initargs=(os.getpid(),),
            )
            logger.debug("started %d extraction workers", self.workers)
        return self._executor

    def warm(self) -> None:
        """Start the fork server and a first worker now, while discovery fetches feeds and
        sitemaps, rather than when the first article arrives."""
        self._started().submit(int)

    async def parse(
        self, body: bytes, declared_encoding: str | None, url: str, options: ParseOptions
    ) -> ParsedPage:
        executor = self._started()
        try:
            future = executor.submit(parse_page, body, declared_encoding, url, options)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            # A worker died (killed, out of memory) and took the pool with it: the next
            # page starts a fresh one.
            if self._executor is executor:
                self._executor = None
                executor.shutdown(wait=False, cancel_futures=True)
            raise

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
