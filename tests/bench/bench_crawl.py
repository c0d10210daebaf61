"""Crawl throughput: the full pipeline against plain Scrapy downloads of the same pages.

    uv run python -m tests.bench.bench_crawl [--articles 2000] [--paragraphs 55] [--no-stories]
        [--pages 40kb,news] [--repeat 1]

A replay portal (its own process) serves Russian article pages, found through a sitemap
index, in two sets: ``40kb`` (every page ~40 KB, ``--paragraphs``) and ``news`` (article
lengths drawn from those of real Kazakh news, `NEWS_TEXT_CHARS`). For the ``40kb`` set, in
the same run:
(a) a plain spider downloads exactly those article URLs and does nothing else;
(b) the full crawl discovers, fetches, parses (worker pool), cleans, dedups and stores
    into SQLite; trafilatura reads the first pages and every check, a learned template
    the rest (crawler.templates);
(b') the same for a source whose config names its body (``selectors.text``), for which
    trafilatura does not run;
(c) the full crawl into a throwaway Redis;
and (b) and (c) again with story linking (`+stories`, which a crawl runs by default). The
``news`` set has its own plain baseline and the default crawl (`+stories`) on both stores.
All use the project settings with the same concurrency and throttle (AutoThrottle off,
robots.txt on). Prints one JSON line per variant (pages/s) and the ratios to plain;
target >= 0.5. ``--repeat N`` runs plain and every variant N times in turn (this machine's
speed drifts over minutes: one run's ratio moved by up to 0.1) and ends with each
variant's median, least and greatest ratio. Each line also gives CPU ms per page: the crawl process
(``cpu_ms_per_page``), its extraction workers (``worker_cpu_ms_per_page``) and the replay
server (``server_cpu_ms_per_page``; every page is rendered and cached before anything is
timed) and, for a Redis crawl, the redis-server (``redis_cpu_ms_per_page``). On 2 cores
the full crawl is bound by the sum of them all.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import redis
import scrapy
import yaml
from scrapy.crawler import CrawlerProcess
from scrapy.http import Request, Response

from crawler.run import crawl_settings, json_safe
from scheduler.replay import ReplayArticle, ReplayPortal, ReplayServer, generate_articles

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

# Article text length in characters (trafilatura's text of the page) at every 5th percentile,
# 0 % to 100 %, over the 618 pages of /work/shared/data/news_2019-11-18/docs (Kazakh news
# sites, 18 Nov 2019), computed once so the bench runs without that directory. Median
# 1.8 K characters, mean 2.4 K: most news is far shorter than the 40 KB page.
NEWS_TEXT_CHARS = (
    281, 703, 880, 971, 1081, 1234, 1313, 1386, 1500, 1633, 1802,
    1946, 2060, 2241, 2405, 2570, 3009, 3537, 4433, 5913, 29667,
)  # fmt: skip
# generate_articles writes ~356 characters a paragraph: enough paragraphs for the longest
PARAGRAPH_CHARS = 356


def news_length(rng: random.Random) -> int:
    """A text length drawn from `NEWS_TEXT_CHARS` (linear between the percentiles)."""
    at = rng.random() * (len(NEWS_TEXT_CHARS) - 1)
    low = int(at)
    if low + 1 >= len(NEWS_TEXT_CHARS):
        return NEWS_TEXT_CHARS[-1]
    span = NEWS_TEXT_CHARS[low + 1] - NEWS_TEXT_CHARS[low]
    return round(NEWS_TEXT_CHARS[low] + (at - low) * span)


def news_articles(count: int, seed: int) -> list[ReplayArticle]:
    """`count` articles whose text lengths follow `NEWS_TEXT_CHARS`: each cut to the first
    paragraphs that reach its drawn length."""
    rng = random.Random(seed)  # noqa: S311 - reproducible bench text, not secrets
    most = NEWS_TEXT_CHARS[-1] // PARAGRAPH_CHARS + 2
    articles = []
    for article in generate_articles(count, seed=seed, paragraphs=most):
        paragraphs = article.paragraphs
        ends = [0]
        for paragraph in paragraphs:
            ends.append(ends[-1] + len(paragraph) + 2)
        keep = max(1, bisect.bisect_left(ends, news_length(rng)))
        articles.append(dataclasses.replace(article, text="\n\n".join(paragraphs[:keep])))
    return articles


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


class TreeCpu:
    """CPU seconds of a process and all its descendants (the extraction workers are the
    fork server's children, which no ``RUSAGE_CHILDREN`` of ours ever sees), sampled
    until `stop`; the last sample of each process counts."""

    def __init__(self, pid: int) -> None:
        self.root = pid
        self.seen: dict[int, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            try:
                root = psutil.Process(self.root)
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for process in processes:
                try:
                    times = process.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                self.seen[process.pid] = times.user + times.system

    def stop(self) -> tuple[float, float]:
        """(the root's CPU seconds, its descendants' CPU seconds)."""
        self._done.set()
        self._thread.join()
        root = self.seen.get(self.root, 0.0)
        return root, sum(self.seen.values()) - root


def child(args: list[str]) -> dict[str, Any]:
    """Run a benchmark step in its own process; its stats, plus ``cpu_seconds`` (that
    process) and ``worker_cpu_seconds`` (every process under it: extraction workers)."""
    process = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    cpu = TreeCpu(process.pid)
    stdout, stderr = process.communicate(timeout=1800)
    own, workers = cpu.stop()
    if process.returncode != 0:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(f"benchmark child failed: {args}")
    stats = json.loads(stdout.strip().splitlines()[-1])
    return {"cpu_seconds": own, "worker_cpu_seconds": workers, **stats}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def throwaway_redis(workdir: Path) -> Iterator[tuple[str, psutil.Process]]:
    """A redis-server on a free loopback port, without persistence, until the block ends:
    its URL and its process (whose CPU a Redis crawl's line counts)."""
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
        yield f"redis://127.0.0.1:{port}/0", psutil.Process(server.pid)
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
    parser.add_argument(
        "--pages", default="40kb,news", help="page sets to run, comma-separated: 40kb, news"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of plain and full runs; >1 adds medians"
    )
    args = parser.parse_args()
    if args.plain:
        print(json.dumps(run_plain(args.plain)))
        return
    page_sets = {
        "40kb": lambda: generate_articles(args.articles, seed=42, paragraphs=args.paragraphs),
        "news": lambda: news_articles(args.articles, seed=42),
    }
    wanted = [name.strip() for name in args.pages.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(page_sets))
    if unknown:
        parser.error(f"--pages: unknown set {', '.join(unknown)} (choose from 40kb, news)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis_dir = work / "redis"
        redis_dir.mkdir()
        with throwaway_redis(redis_dir) if not args.skip_redis else _none() as redis:
            for name in wanted:
                pages_dir = work / name
                pages_dir.mkdir()
                bench_pages(name, page_sets[name](), pages_dir, redis, args)


def bench_pages(
    pages_name: str,
    articles: list[ReplayArticle],
    work: Path,
    redis: tuple[str, psutil.Process] | None,
    args: argparse.Namespace,
) -> None:
    """The plain baseline and the full crawls over one page set, served by its own replay
    portal; prints a line per variant and each one's ratio to plain."""
    spec = ReplayPortal(PORTAL, "Бенчмарк", articles, feed=None, listing=False)
    with ReplayServer([spec], subprocess=True) as server:
        base = server.base_url(PORTAL)
        (work / "urls.txt").write_text("\n".join(base + a.path for a in articles))
        config = server.source_config(PORTAL, max_items=len(articles))
        sources = work / "sources.yaml"
        sources.write_text(yaml.safe_dump({"sources": [config]}, allow_unicode=True), "utf-8")
        # The same portal for a source that names its body (selectors.text): no trafilatura.
        selected = work / "sources-selector.yaml"
        config = {**config, "selectors": {"text": "div.article-body"}}
        selected.write_text(yaml.safe_dump({"sources": [config]}, allow_unicode=True), "utf-8")
        # Every page rendered before anything is timed: the server then only sends bytes,
        # as a remote site costs this machine nothing, and every variant sees it alike.
        with ThreadPoolExecutor(8) as warming:
            sizes = list(
                warming.map(len, warming.map(urlopen_bytes, [base + a.path for a in articles]))
            )
        site = psutil.Process(server.pid)
        page_kb = round(sorted(sizes)[len(sizes) // 2] / 1024, 1)
        ratios: dict[str, list[float]] = {}
        for round_ in range(args.repeat):
            bench_round(pages_name, articles, work, redis, args, (site, page_kb), round_, ratios)
    if args.repeat > 1:
        for variant, measured in ratios.items():
            line(
                pages_set=pages_name,
                variant=variant,
                rounds=len(measured),
                ratio_median=round(statistics.median(measured), 3),
                ratio_min=min(measured),
                ratio_max=max(measured),
                target=0.5,
            )


def bench_round(
    pages_name: str,
    articles: list[ReplayArticle],
    work: Path,
    redis: tuple[str, psutil.Process] | None,
    args: argparse.Namespace,
    served: tuple[psutil.Process, float],
    round_: int,
    ratios: dict[str, list[float]],
) -> None:
    """One plain run and the full crawls after it, each into a fresh store; adds each
    variant's ratio to plain to `ratios`."""
    site, page_kb = served
    server_cpu = _cpu(site)
    plain = child(["-m", "tests.bench.bench_crawl", "--plain", str(work / "urls.txt")])
    server_cpu = _cpu(site) - server_cpu
    pages, seconds, plain_rate = rate(plain, "response_received_count")
    pages -= plain.get("robotstxt/response_count", 0)
    plain_rate = pages / seconds
    text_chars = sorted(len(a.text) for a in articles)
    line(
        pages_set=pages_name,
        variant="plain",
        cpu_ms_per_page=round(1000 * plain["cpu_seconds"] / max(pages, 1), 1),
        server_cpu_ms_per_page=round(1000 * server_cpu / max(pages, 1), 2),
        pages=pages,
        seconds=round(seconds, 2),
        pages_per_s=round(plain_rate, 1),
        page_kb_median=page_kb,
        text_chars_median=text_chars[len(text_chars) // 2],
    )
    stores = {"sqlite": f"sqlite:///{work}/bench.db"}
    if redis:
        stores["redis"] = redis[0]
    # "full": the backbone's pipeline (parse, clean, dedup, store); "+stories": with
    # story linking (pipelines.syndication) as a crawl runs by default.
    # "_selector": the SQLite variant for a source with a body selector. The news set
    # runs the default crawl only: the linking share is what its short pages show.
    sources, selected = work / "sources.yaml", work / "sources-selector.yaml"
    variants = [
        (f"full_{name}{suffix}", url, linking, sources)
        for name, url in stores.items()
        for suffix, linking in (("", False), ("+stories", True))
        if linking or pages_name == "40kb"
    ]
    if pages_name == "40kb":
        variants.insert(1, ("full_sqlite_selector", stores["sqlite"], False, selected))
    for variant, base_url, linking, config_file in variants:
        if linking and not args.stories:
            continue
        # a fresh store each: an earlier variant's (or round's) items would be skipped
        store_url = base_url.replace("bench.db", f"bench-{variant}-{round_}.db")
        if store_url.startswith("redis"):
            store_url += f"?prefix=pw-{pages_name}-{variant}-{round_}:"
        store_server = redis[1] if redis and store_url.startswith("redis") else None
        full_rate = run_full(
            f"{pages_name}/{variant}",
            store_url,
            config_file,
            (site, store_server),
            args.workers,
            linking,
        )
        ratio = round(full_rate / plain_rate, 3)
        ratios.setdefault(f"{variant}/plain", []).append(ratio)
        line(pages_set=pages_name, variant=f"{variant}/plain", ratio=ratio, target=0.5)


def run_full(
    variant: str,
    store_url: str,
    sources: Path,
    servers: tuple[psutil.Process, psutil.Process | None],
    workers: int,
    linking: bool,
) -> float:
    """One full crawl into `store_url`; prints its line and returns its pages per second.
    `servers`: the replay site's process, and the Redis server's for a Redis crawl."""
    full_settings = {
        **BENCH_SETTINGS,
        "PRESSWATCH_PARSE_WORKERS": workers,
        "SYNDICATION_ENABLED": linking,
    }
    settings = [f"--set={k}={json.dumps(v)}" for k, v in full_settings.items()]
    site, store_server = servers
    server_cpu, store_cpu = _cpu(site), _cpu(store_server) if store_server else 0.0
    commands = redis_commands(store_url) if store_server else Counter()
    full = child(
        ["-m", "crawler.run", "--sources", str(sources), "--store", store_url, *settings, PORTAL]
    )
    server_cpu = _cpu(site) - server_cpu
    store_cpu = _cpu(store_server) - store_cpu if store_server else 0.0
    if store_server:
        commands = redis_commands(store_url) - commands
    cpu, worker_cpu, stats = full["cpu_seconds"], full["worker_cpu_seconds"], full[PORTAL]
    pages, seconds, full_rate = rate(stats, "store/new")
    line(
        variant=variant,
        pages=pages,
        seconds=round(seconds, 2),
        pages_per_s=round(full_rate, 1),
        cpu_ms_per_page=round(1000 * cpu / max(pages, 1), 1),
        worker_cpu_ms_per_page=round(1000 * worker_cpu / max(pages, 1), 1),
        server_cpu_ms_per_page=round(1000 * server_cpu / max(pages, 1), 2),
        redis_cpu_ms_per_page=round(1000 * store_cpu / max(pages, 1), 2),
        redis_commands_per_page={
            name: round(count / max(pages, 1), 2) for name, count in commands.most_common(8)
        },
        requests=stats.get("downloader/request_count"),
        dropped={k: v for k, v in stats.items() if k.startswith(("dedup/", "portal/e"))},
        finish_reason=stats.get("finish_reason"),
    )
    return full_rate


def redis_commands(store_url: str) -> Counter[str]:
    """How many times the Redis server has run each command (a script is EVALSHA)."""
    client = redis.Redis.from_url(store_url.split("?", 1)[0])
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


@contextmanager
def _none() -> Iterator[None]:
    yield None


def urlopen_bytes(url: str) -> bytes:
    from urllib.request import urlopen

    with urlopen(url, timeout=10) as reply:  # noqa: S310 - a loopback URL we built
        return reply.read()


if __name__ == "__main__":
    main()
