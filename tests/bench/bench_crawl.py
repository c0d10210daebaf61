"""Crawl throughput: the full pipeline against plain Scrapy downloads of the same pages.

    uv run python -m tests.bench.bench_crawl [--articles 2000] [--paragraphs 55] [--no-stories]

A replay portal (its own process) serves ~40 KB Russian article pages, found through a
sitemap index. In the same run: (a) a plain spider downloads exactly those article URLs
and does nothing else; (b) the full crawl discovers, fetches, parses (worker pool),
cleans, dedups and stores into SQLite, then (c) into a throwaway Redis; and each again
with story linking (`+stories`, the syndication stage a crawl runs by default). All use the
project settings with the same concurrency and throttle (AutoThrottle off, robots.txt on).
Prints one JSON line per variant (pages/s) and the ratios to plain; target >= 0.5.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import scrapy
import yaml
from scrapy.crawler import CrawlerProcess
from scrapy.http import Request, Response

from crawler.run import crawl_settings, json_safe
from scheduler.replay import ReplayPortal, ReplayServer, generate_articles

PORTAL = "bench"
# Equal for both variants: loopback allowed, no throttling, enough requests in flight for
# the CPU to be the limit rather than round trips.
BENCH_SETTINGS: dict[str, Any] = {
    "EGRESS_ALLOW_NETS": ["127.0.0.0/8"],
    "AUTOTHROTTLE_ENABLED": False,
    "DOWNLOAD_DELAY": 0,
    "ROBOTSTXT_OBEY": True,
    "CONCURRENT_REQUESTS": 16,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
    "LOG_LEVEL": "INFO",
    "CLOSESPIDER_TIMEOUT": 900,
}


class PlainSpider(scrapy.Spider):
    """Downloads the given URLs and keeps nothing: the baseline."""

    name = "plain"

    def __init__(self, urls: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.urls = urls

    async def start(self) -> AsyncIterator[Request]:
        for url in self.urls:
            yield Request(url, callback=self.parse)

    def parse(self, response: Response) -> Iterator[Any]:
        yield from ()


def run_plain(urls_file: str) -> dict[str, Any]:
    """Child process: the plain spider over the URLs in `urls_file`; returns its stats."""
    urls = Path(urls_file).read_text().split()
    settings = crawl_settings("sqlite:///:memory:", BENCH_SETTINGS)
    settings.set("ITEM_PIPELINES", {}, priority="cmdline")
    settings.set("INCREMENTAL_ENABLED", False, priority="cmdline")
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(PlainSpider)
    process.crawl(crawler, urls=urls)
    process.start()
    assert crawler.stats is not None
    return json_safe(crawler.stats.get_stats())


def child(args: list[str]) -> dict[str, Any]:
    """Run a benchmark step in its own process; its stats, plus ``cpu_seconds``: the CPU
    time of that process and every process it waited for (the extraction workers)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, *args], check=False, capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"benchmark child failed: {args}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"cpu_seconds": cpu, **json.loads(done.stdout.strip().splitlines()[-1])}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def throwaway_redis(workdir: Path) -> Iterator[str]:
    """A redis-server on a free loopback port, without persistence, until the block ends."""
    port = free_port()
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir)]
    command += ["--save", "", "--appendonly", "no", "--logfile", "", "--daemonize", "no"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert server.stdout is not None
        for output in server.stdout:  # ends when the server exits
            if "Ready to accept connections" in output:
                break
        else:
            raise SystemExit(f"redis-server did not start: {command}")
        # keep reading its log so that a full pipe never blocks the server
        threading.Thread(target=server.stdout.read, daemon=True).start()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


def line(**fields: Any) -> None:
    print(json.dumps({"bench": "crawl", **fields}), flush=True)


def rate(stats: dict[str, Any], key: str) -> tuple[int, float, float]:
    pages = int(stats.get(key, 0))
    seconds = float(stats["elapsed_time_seconds"])
    return pages, seconds, pages / seconds if seconds else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--paragraphs", type=int, default=55, help="55 make a ~40 KB page")
    parser.add_argument("--plain", help=argparse.SUPPRESS)  # child mode: URLs file
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--workers", type=int, default=0, help="extraction workers (0: CPUs)")
    parser.add_argument(
        "--no-stories", dest="stories", action="store_false", help="skip the +stories variants"
    )
    args = parser.parse_args()
    if args.plain:
        print(json.dumps(run_plain(args.plain)))
        return

    articles = generate_articles(args.articles, seed=42, paragraphs=args.paragraphs)
    spec = ReplayPortal(PORTAL, "Бенчмарк", articles, feed=None, listing=False)
    with tempfile.TemporaryDirectory() as tmp, ReplayServer([spec], subprocess=True) as server:
        work = Path(tmp)
        base = server.base_url(PORTAL)
        (work / "urls.txt").write_text("\n".join(base + a.path for a in articles))
        config = server.source_config(PORTAL, max_items=args.articles)
        sources = work / "sources.yaml"
        sources.write_text(yaml.safe_dump({"sources": [config]}, allow_unicode=True), "utf-8")
        page_kb = len(urlopen_bytes(base + articles[0].path)) / 1024

        plain = child(["-m", "tests.bench.bench_crawl", "--plain", str(work / "urls.txt")])
        pages, seconds, plain_rate = rate(plain, "response_received_count")
        pages -= plain.get("robotstxt/response_count", 0)
        plain_rate = pages / seconds
        line(
            variant="plain",
            cpu_ms_per_page=round(1000 * plain["cpu_seconds"] / max(pages, 1), 1),
            pages=pages,
            seconds=round(seconds, 2),
            pages_per_s=round(plain_rate, 1),
            page_kb=round(page_kb, 1),
        )

        stores = {"sqlite": f"sqlite:///{work}/bench.db"}
        redis_dir = work / "redis"
        redis_dir.mkdir()
        with throwaway_redis(redis_dir) if not args.skip_redis else _none() as redis_url:
            if redis_url:
                stores["redis"] = redis_url
            # "full": the backbone's pipeline (parse, clean, dedup, store); "+stories": with
            # story linking (pipelines.syndication) as a crawl runs by default.
            variants = [
                (f"full_{name}{suffix}", url, linking)
                for name, url in stores.items()
                for suffix, linking in (("", False), ("+stories", True))
            ]
            for variant, base_url, linking in variants:
                if linking and not args.stories:
                    continue
                full_settings = {
                    **BENCH_SETTINGS,
                    "PRESSWATCH_PARSE_WORKERS": args.workers,
                    "SYNDICATION_ENABLED": linking,
                }
                store_url = base_url
                if linking:  # a fresh store: the first variant's items would be skipped
                    store_url = base_url.replace("bench.db", "bench-stories.db")
                    if store_url.startswith("redis"):
                        store_url += "?prefix=pw-stories:"
                settings = [f"--set={k}={json.dumps(v)}" for k, v in full_settings.items()]
                full = child(
                    [
                        "-m",
                        "crawler.run",
                        "--sources",
                        str(sources),
                        "--store",
                        store_url,
                        *settings,
                        PORTAL,
                    ]
                )
                cpu, full = full["cpu_seconds"], full[PORTAL]
                pages, seconds, full_rate = rate(full, "store/new")
                line(
                    variant=variant,
                    pages=pages,
                    seconds=round(seconds, 2),
                    pages_per_s=round(full_rate, 1),
                    cpu_ms_per_page=round(1000 * cpu / max(pages, 1), 1),
                    requests=full.get("downloader/request_count"),
                    dropped={k: v for k, v in full.items() if k.startswith(("dedup/", "portal/e"))},
                    finish_reason=full.get("finish_reason"),
                )
                line(variant=f"{variant}/plain", ratio=round(full_rate / plain_rate, 3), target=0.5)


@contextmanager
def _none() -> Iterator[None]:
    yield None


def urlopen_bytes(url: str) -> bytes:
    from urllib.request import urlopen

    with urlopen(url, timeout=10) as reply:  # noqa: S310 - a loopback URL we built
        return reply.read()


if __name__ == "__main__":
    main()
