"""Run the portal spider over some sources in one process and return each source's stats.

A Twisted reactor runs once per process, so `crawl` is called once per process: the CLI
and the scheduler run it in a subprocess, e.g.

    python -m crawler.run --sources sources.yaml --store sqlite:///pw.db tengrinews zakon
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from typing import Any

from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings

from crawler.config import Source, find_source, load_sources
from crawler.spiders.portal import PortalSpider


def crawl_settings(store_url: str, overrides: dict[str, Any] | None = None) -> Settings:
    """The project settings, then `overrides`, then the store, whatever the working dir."""
    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    settings.setdict(overrides or {}, priority="cmdline")
    settings.set("PRESSWATCH_STORE", store_url, priority="cmdline")
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
    process = CrawlerProcess(crawl_settings(store_url, settings))
    crawlers = {}
    for source in sources:
        crawler = process.create_crawler(PortalSpider)
        crawlers[source.name] = crawler
        process.crawl(crawler, source=source)
    process.start()
    stats: dict[str, dict[str, Any]] = {}
    for name, crawler in crawlers.items():
        assert crawler.stats is not None
        stats[name] = json_safe(crawler.stats.get_stats())
    return stats


def _setting(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep:
        msg = f"{text!r}: give a setting as NAME=VALUE (VALUE may be JSON)"
        raise argparse.ArgumentTypeError(msg)
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.run", description=__doc__)
    parser.add_argument("names", nargs="*", help="sources to crawl (default: every enabled one)")
    parser.add_argument("--sources", help="sources.yaml (default: the bundled file)")
    parser.add_argument("--store", required=True, help="sqlite:///path.db or redis://...")
    parser.add_argument("--set", dest="settings", type=_setting, action="append", default=[])
    args = parser.parse_args(argv)
    known = load_sources(args.sources)
    if args.names:
        chosen = [find_source(known, name) for name in args.names]
    else:
        chosen = [source for source in known if source.enabled]
    settings = dict(args.settings)
    if args.sources:
        settings.setdefault("PRESSWATCH_SOURCES", args.sources)
    stats = crawl(chosen, args.store, settings=settings)
    json.dump(stats, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
