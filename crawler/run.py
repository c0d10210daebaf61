"""Run the portal spider over some sources in one process and return each source's stats.

A Twisted reactor runs once per process, so `crawl` is called once per process: the CLI,
the demo and the scheduler run it in a child process through `crawl_in_subprocess`, i.e.

    python -m crawler.run --sources sources.yaml --store sqlite:///pw.db tengrinews zakon
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.config import Source, find_source, load_sources
from crawler.telemetry import SentryExtension, flush, init_sentry
from pipelines.store import open_store
from pipelines.store.base import StoreError

if TYPE_CHECKING:
    from scrapy.settings import Settings


def crawl_settings(store_url: str, overrides: dict[str, Any] | None = None) -> Settings:
    """The project settings, then `overrides`, then the store, whatever the working dir;
    with ``SENTRY_DSN`` set, the Sentry extension too (``SENTRY_ENABLED`` turns it off)."""
    from scrapy.settings import Settings  # Scrapy loads only in a process that crawls

    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    settings.setdict(overrides or {}, priority="cmdline")
    settings.set("PRESSWATCH_STORE", store_url, priority="cmdline")
    if os.environ.get("SENTRY_DSN", "").strip():
        settings.setdefault_in_component_priority_dict("EXTENSIONS", SentryExtension, 100)
    return settings


def json_safe(value: Any) -> Any:
    """Stats as plain JSON: times as ISO strings, anything unknown as its str()."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def crawl(
    sources: list[Source], store_url: str, *, settings: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Crawl every source (concurrently, one reactor) into the store at `store_url`.

    Returns ``{source name: final Scrapy stats}``, JSON-safe; ``finish_reason`` tells
    whether a source's crawl finished.
    """
    from scrapy.crawler import CrawlerProcess

    from crawler.spiders.portal import PortalSpider

    process = CrawlerProcess(crawl_settings(store_url, settings))
    crawlers = {}
    errors: dict[str, str] = {}  # a crawl that raised, e.g. a component refusing a setting
    for source in sources:
        crawler = process.create_crawler(PortalSpider)
        crawlers[source.name] = crawler
        process.crawl(crawler, source=source).addErrback(
            lambda failure, name=source.name: errors.__setitem__(
                name, failure.getErrorMessage() or failure.type.__name__
            )
        )
    process.start()
    stats: dict[str, dict[str, Any]] = {}
    for name, crawler in crawlers.items():
        found = json_safe(crawler.stats.get_stats()) if crawler.stats is not None else {}
        if name in errors:
            found.setdefault("finish_reason", CRAWL_ERROR)
            found["crawl/error"] = errors[name]
        stats[name] = found
    return stats


CRAWL_ERROR = "crawl_error"  # the finish_reason of a crawl that raised before it could finish


def crawl_errors(stats: dict[str, dict[str, Any]]) -> list[str]:
    """One line for each source whose crawl raised (it may not have started at all)."""
    return [f"{name}: {st['crawl/error']}" for name, st in stats.items() if "crawl/error" in st]


EXIT_NOT_STORED = 3  # the crawl ran, but the store could not take what it fetched
FAILED_PREFIX = "crawl failed: "  # how the child's last stderr lines give their reasons


def store_failures(stats: dict[str, dict[str, Any]]) -> list[str]:
    """One line for each source whose crawl could not store its items (`pipelines.outage`)."""
    from pipelines.outage import STORE_UNAVAILABLE  # with Scrapy: only where crawls ran

    lines = []
    for name, st in stats.items():
        spooled, lost = st.get("store/spooled", 0), st.get("store/lost", 0)
        if st.get("finish_reason") != STORE_UNAVAILABLE and not lost:
            continue
        error = st.get("store/error") or "the store failed"
        lines.append(
            f"{name}: stopped, the store is unavailable ({error}); {spooled} items spooled"
            f" for the next crawl, {lost} not kept"
        )
    return lines


PARENT_PID = "PRESSWATCH_PARENT_PID"  # set by crawl_in_subprocess for _stop_with_parent
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class CrawlFailed(RuntimeError):
    """A crawl process failed or overran its time limit; the message says how.

    `stats`: each source's stats when the crawl ran to its end but could not store what
    it fetched (its exit code is `EXIT_NOT_STORED`), so that the run records say why.
    """

    def __init__(self, message: str, stats: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.stats = stats


def crawl_command(
    names: list[str],
    store_url: str | None,
    *,
    sources_file: Path | None = None,
    settings: dict[str, Any] | None = None,
) -> list[str]:
    """The command line of a crawl process (`python -m crawler.run ...`); without
    `store_url` the process reads the store from ``PRESSWATCH_STORE``."""
    command = [sys.executable, "-m", "crawler.run"]
    if store_url:
        command += ["--store", store_url]
    if sources_file:
        command += ["--sources", str(sources_file)]
    for name, value in (settings or {}).items():
        command += ["--set", f"{name}={json.dumps(value)}"]
    return [*command, *names]


def crawl_in_subprocess(
    names: list[str],
    store_url: str,
    *,
    sources_file: Path | None = None,
    settings: dict[str, Any] | None = None,
    timeout: float = 3600,
) -> dict[str, dict[str, Any]]:
    """Run `crawl` in a child process (killed after `timeout` s) and return its stats.

    The store URL goes to the child in its environment, not on its command line, where
    any local user could read a Redis password with `ps`. The child stops when this
    process dies (see `_stop_with_parent`), so a killed scheduler leaves no crawl behind
    to race its successor's.
    """
    command = crawl_command(names, None, sources_file=sources_file, settings=settings)
    env = {**os.environ, "PRESSWATCH_STORE": store_url, PARENT_PID: str(os.getpid())}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        msg = f"the crawl did not end within {timeout:g} s and was stopped"
        raise CrawlFailed(msg) from None
    reasons = [
        line.removeprefix(FAILED_PREFIX)
        for line in done.stderr.splitlines()
        if line.startswith(FAILED_PREFIX)
    ]
    if done.returncode == EXIT_NOT_STORED:
        raise CrawlFailed("; ".join(reasons), stats=json.loads(done.stdout))
    if done.returncode != 0 and reasons:
        raise CrawlFailed("; ".join(reasons))
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        msg = f"the crawl failed (exit {done.returncode}); its last log lines:\n{tail}"
        raise CrawlFailed(msg)
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        # e.g. stopped by a signal before Scrapy could say how it went
        msg = "the crawl ended without reporting its stats (stopped before it started?)"
        raise CrawlFailed(msg) from None


def setting_argument(text: str) -> tuple[str, Any]:
    """``--set NAME=VALUE`` as a (name, value) pair; VALUE is read as JSON when it is JSON."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        msg = f"{text!r}: give a setting as NAME=VALUE (VALUE may be JSON)"
        raise argparse.ArgumentTypeError(msg)
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def _stop_with_parent() -> None:
    """Ask Linux to kill this crawl when the parent that started it dies, and stop at once
    if it died before we asked. Elsewhere: nothing.

    SIGKILL, not SIGTERM: Scrapy's graceful stop waits for downloads in flight (up to
    DOWNLOAD_TIMEOUT), and nobody is left to read this crawl's stats anyway. Nothing is
    lost: an item is stored in one transaction, and what was not stored yet is not known
    to the store, so the next crawl fetches it again.
    """
    parent = os.environ.get(PARENT_PID)
    if parent is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):
        sys.exit("the process that started this crawl has gone; not crawling")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.run", description=__doc__)
    parser.add_argument("names", nargs="*", help="sources to crawl (default: every enabled one)")
    parser.add_argument("--sources", help="sources.yaml (default: the bundled file)")
    parser.add_argument(
        "--store",
        default=os.environ.get("PRESSWATCH_STORE"),
        help="sqlite:///path.db or redis://... (default: $PRESSWATCH_STORE)",
    )
    parser.add_argument(
        "--set", dest="settings", type=setting_argument, action="append", default=[]
    )
    args = parser.parse_args(argv)
    if not args.store:
        parser.error("give --store or set PRESSWATCH_STORE")
    _stop_with_parent()
    known = load_sources(args.sources)
    if args.names:
        chosen = [find_source(known, name) for name in args.names]
    else:
        chosen = [source for source in known if source.enabled]
    settings = dict(args.settings)
    if args.sources:
        settings.setdefault("PRESSWATCH_SOURCES", args.sources)
    # The store URL may come on the command line, which Sentry reports as `sys.argv`.
    init_sentry("crawl", secrets=[args.store], source=",".join(s.name for s in chosen))
    try:
        # a store that cannot even be opened fails the crawl before anything is fetched
        open_store(args.store).close()
    except (StoreError, ValueError) as exc:
        sys.stderr.write(f"{FAILED_PREFIX}{exc}\n")
        return 2
    try:
        stats = crawl(chosen, args.store, settings=settings)
    finally:
        flush()
    json.dump(stats, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    failures = store_failures(stats)
    errors = crawl_errors(stats)
    for line in [*errors, *failures]:
        sys.stderr.write(f"{FAILED_PREFIX}{line}\n")
    if errors:
        return 1
    return EXIT_NOT_STORED if failures else 0


if __name__ == "__main__":
    sys.exit(main())
