"""Parse article pages in worker processes, so that extraction runs beside the reactor.

Decoding and trafilatura cost several milliseconds of CPU a page, about twice what Scrapy
spends fetching it; on the reactor thread they would halve the crawl. The workers start
when a spider opens (or on first use), one per CPU this process may run on, and stop when
the last crawler using them closes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
import sys
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import ClassVar

from crawler.config import Selectors
from crawler.encoding import decode_html
from crawler.extract import extract_article
from pipelines.attribution import AliasIndex
from pipelines.clean import clean_texts
from pipelines.link_features import (
    CatalogSpec,
    LinkFeatures,
    catalog_aliases,
    link_features,
    prepare_catalog,
)

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
    # The crawl links stories: the worker computes the item's `LinkFeatures` too, citations
    # resolved through the crawl's catalog (its alias index handed over once, `prepare`).
    catalog: CatalogSpec | None = None


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
    link: LinkFeatures | None = None  # when the options name a catalog and there is text


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
    links = list(article.links or [])
    link = None
    if options.catalog is not None and cleaned["text"].strip():
        aliases = catalog_aliases(options.catalog)
        link = link_features(cleaned["title"], cleaned["text"], links, aliases)
    return ParsedPage(
        title=cleaned["title"],
        text=cleaned["text"],
        lead=cleaned["lead"],
        content_hash=cleaned["content_hash"],
        repairs=repairs,
        published_at=article.published_at,
        lang=article.lang,
        authors=cleaned["authors"],
        links=links,
        encoding=decoded.encoding,
        flags=list(decoded.flags),
        body_from=article.body_from,
        body_template=article.body_template,
        link=link,
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


class WorkerLost(BrokenProcessPool):
    """The worker parsing a page died (killed, out of memory) before it answered."""


# Pages sent to one worker before its first answer: one to parse, one ready behind it.
PAGES_PER_WORKER = 2
# The task of a message that hands a worker a catalog's alias index ahead of its pages.
PREPARE = -1


def serve(connection: Connection) -> None:
    """A worker: parse the pages that come down `connection` until it closes, answering
    each with ``(task, True, ParsedPage)`` or ``(task, False, exception)``.

    Only the crawl holds the other end, so a worker ends with its crawl, even a SIGKILLed
    one: it reads the end of its input, or fails to send its last answer. A ``PREPARE``
    message hands it a catalog's alias index ahead of the pages that need it."""
    while True:
        try:
            task, *arguments = connection.recv()
        except EOFError:
            return
        if task == PREPARE:
            prepare_catalog(*arguments)  # no answer
            continue
        try:
            answer: tuple[int, bool, object] = (task, True, parse_page(*arguments))
        except Exception as exc:  # the crawl's to report, with the page it came from
            answer = (task, False, exc)
        try:
            connection.send(answer)
        except Exception as exc:  # an exception that does not pickle
            connection.send((task, False, RuntimeError(f"{answer[2]!r}: {exc}")))


@dataclass
class _Worker:
    """One extraction process, the socket to it, and the pages it has not answered yet."""

    process: BaseProcess
    connection: Connection
    pending: dict[int, asyncio.Future[ParsedPage]] = field(default_factory=dict)


class ExtractionPool:
    """Worker processes that parse pages off the reactor thread.

    Workers come from a fork server, not from forking the crawler itself: the crawler
    has reactor and DNS threads whose locks a plain fork could copy while held.

    The event loop talks to each worker over a socket pair it watches itself. A
    `ProcessPoolExecutor` did the same through two threads of its own, which cost the
    crawl process 0.6 ms of CPU a page in thread wake-ups, on the core the reactor needs.
    A worker that dies fails only the pages it held (`WorkerLost`); the next page starts
    a new one.
    """

    _shared: ClassVar[ExtractionPool | None] = None
    _users: ClassVar[int] = 0

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or usable_cpus()
        self._live: list[_Worker] = []
        # pages not sent yet: (task number, the call's arguments, who waits for the answer)
        self._waiting: deque[tuple[int, tuple[object, ...], asyncio.Future[ParsedPage]]] = deque()
        self._tasks = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        # every worker prepares these (`prepare`)
        self._catalogs: list[tuple[CatalogSpec, AliasIndex]] = []

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

    @property
    def started(self) -> bool:
        return bool(self._live)

    def warm(self) -> None:
        """Start the workers now, while discovery fetches feeds and sitemaps, rather than
        when the first article arrives."""
        while len(self._live) < self.workers:
            self._start_worker()

    def prepare(self, catalog: CatalogSpec, aliases: AliasIndex) -> None:
        """Hand every worker, now and later, `catalog`'s alias index before its first page
        (`pipelines.link_features.prepare_catalog`)."""
        if any(known == catalog for known, _ in self._catalogs):
            return
        self._catalogs.append((catalog, aliases))
        for worker in self._live:
            self._send_catalogs(worker, [(catalog, aliases)])

    def _send_catalogs(
        self, worker: _Worker, catalogs: list[tuple[CatalogSpec, AliasIndex]]
    ) -> None:
        for catalog in catalogs:
            try:
                worker.connection.send((PREPARE, *catalog))
            except OSError:  # the worker is gone; its sentinel tells the loop
                return

    async def parse(
        self, body: bytes, declared_encoding: str | None, url: str, options: ParseOptions
    ) -> ParsedPage:
        """Parse one page in a worker; raises `WorkerLost` when its worker dies first."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._watch_from(loop)
        future: asyncio.Future[ParsedPage] = loop.create_future()
        arguments = (body, declared_encoding, url, options)
        self._waiting.append((next(self._tasks), arguments, future))
        self._dispatch()
        return await future

    def shutdown(self) -> None:
        """Stop every worker; pages not answered yet fail with `WorkerLost`."""
        for worker in list(self._live):
            self._forget(worker, "the extraction pool was shut down")
        for _task, _arguments, future in self._waiting:
            _fail(future, "the extraction pool was shut down")
        self._waiting.clear()

    # --- the workers ---------------------------------------------------------------------

    def _start_worker(self) -> _Worker:
        context = multiprocessing.get_context("forkserver")
        if not self._live:
            context.set_forkserver_preload(forkserver_preload())
        ours, theirs = context.Pipe(duplex=True)
        process = context.Process(
            target=serve, args=(theirs,), name="presswatch-extraction", daemon=True
        )
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        self._live.append(worker)
        self._send_catalogs(worker, self._catalogs)
        if self._loop is not None and not self._loop.is_closed():
            self._watch(worker)
        logger.debug("started extraction worker %d", process.pid)
        return worker

    def _dispatch(self) -> None:
        """Hand waiting pages to workers with room, starting workers up to `workers`."""
        while self._waiting:
            worker = min(self._live, key=lambda w: len(w.pending), default=None)
            if worker is None or (worker.pending and len(self._live) < self.workers):
                worker = self._start_worker()
            if len(worker.pending) >= PAGES_PER_WORKER:
                return
            task, arguments, future = self._waiting.popleft()
            if future.done():  # cancelled while it waited
                continue
            try:
                worker.connection.send((task, *arguments))
            except OSError:  # the worker is gone; the page goes to another
                self._waiting.appendleft((task, arguments, future))
                self._lost(worker)
                continue
            worker.pending[task] = future

    def _watch_from(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch the workers from `loop` (a new loop: tests run one per page)."""
        if self._loop is not None and not self._loop.is_closed():
            for worker in self._live:
                self._unwatch(worker)
        for worker in self._live:
            for future in worker.pending.values():
                _fail(future, "the event loop that asked for this page is gone")
            worker.pending.clear()
        self._loop = loop
        for worker in self._live:
            self._watch(worker)

    def _watch(self, worker: _Worker) -> None:
        assert self._loop is not None
        self._loop.add_reader(worker.connection.fileno(), self._answered, worker)
        self._loop.add_reader(worker.process.sentinel, self._lost, worker)

    def _unwatch(self, worker: _Worker) -> None:
        assert self._loop is not None
        self._loop.remove_reader(worker.connection.fileno())
        self._loop.remove_reader(worker.process.sentinel)

    def _answered(self, worker: _Worker) -> None:
        try:
            while worker.connection.poll():
                task, ok, value = worker.connection.recv()
                future = worker.pending.pop(task, None)
                if future is None or future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        except (EOFError, OSError):
            self._lost(worker)
            return
        self._dispatch()

    def _lost(self, worker: _Worker) -> None:
        if worker in self._live:
            self._forget(worker, "an extraction worker died before it answered")
            self._dispatch()

    def _forget(self, worker: _Worker, why: str) -> None:
        self._live.remove(worker)
        if self._loop is not None and not self._loop.is_closed():
            self._unwatch(worker)
        worker.connection.close()  # the worker reads the end of its input and exits
        worker.process.join(timeout=5)
        if worker.process.exitcode is None:
            worker.process.kill()
            worker.process.join()
        for future in worker.pending.values():
            _fail(future, f"{why} (exit code {worker.process.exitcode})")
        worker.pending.clear()


def _fail(future: asyncio.Future[ParsedPage], why: str) -> None:
    if not future.done() and not future.get_loop().is_closed():
        future.set_exception(WorkerLost(why))
