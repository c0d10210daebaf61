"""Browser path throughput and memory: Chromium against plain HTTP on the same local pages.

    uv run python -m tests.bench.bench_browser [--articles 200] [--pages-per-context 4]

A replay server (its own process) serves the same generated articles twice: as static
HTML, and as a script-rendered portal (listing behind "load more", bodies fetched by
script). In the same run, each in its own crawl process with the full pipeline:
(a) ``http``: the static pages over plain HTTP, found through the sitemap;
(b) ``browser_static``: the same static pages rendered in Chromium;
(c) ``browser_js``: the script-rendered portal, listing clicked open, bodies awaited.
Prints one JSON line per variant (articles/s; the peak memory of the crawl's Chromium
processes and of its whole process tree, as the sum of their PSS sampled every 0.1 s),
then the ratios browser/http.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

from crawler.run import crawl_command
from scheduler.replay import ReplayPortal, ReplayServer, generate_articles

MIB = 1024 * 1024
SAMPLE_S = 0.1
BENCH_SETTINGS: dict[str, Any] = {
    "EGRESS_ALLOW_NETS": ["127.0.0.0/8"],
    "AUTOTHROTTLE_ENABLED": False,
    "DOWNLOAD_DELAY": 0,
    "CONCURRENT_REQUESTS": 16,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
    "LOG_LEVEL": "WARNING",
    "CLOSESPIDER_TIMEOUT": 900,
    "DEDUP_ENABLED": False,  # the variants crawl the same texts, each into its own store
}


@dataclass
class Run:
    stats: dict[str, Any]
    peak_chromium_mb: float  # PSS summed over the Chromium processes
    peak_tree_mb: float  # PSS summed over the crawl process and all its descendants


def watched(command: list[str]) -> Run:
    """Run a crawl process; sample the RSS of its process tree until it ends."""
    peak_chromium = peak_tree = 0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        root = psutil.Process(process.pid)
        while process.poll() is None:
            chromium = tree = 0
            try:
                for member in [root, *root.children(recursive=True)]:
                    # PSS: Chromium's processes share most of their pages; RSS would count
                    # each shared page once per process
                    pss = member.memory_full_info().pss
                    tree += pss
                    chromium += pss if member.name().startswith("chrom") else 0
            except psutil.NoSuchProcess:
                pass  # a process ended while we looked: the next sample counts again
            peak_chromium, peak_tree = max(peak_chromium, chromium), max(peak_tree, tree)
            try:
                process.wait(timeout=SAMPLE_S)
            except subprocess.TimeoutExpired:
                continue
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            sys.stderr.write(err.read()[-4000:])
            raise SystemExit(f"benchmark crawl failed: {command}")
        stats = json.loads(out.read().strip().splitlines()[-1])
    return Run(stats, round(peak_chromium / MIB, 1), round(peak_tree / MIB, 1))


def line(**fields: Any) -> None:
    print(json.dumps({"bench": "browser", **fields}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=200)
    parser.add_argument("--paragraphs", type=int, default=20, help="20 make a ~15 KB page")
    parser.add_argument("--pages-per-context", type=int, default=4)
    args = parser.parse_args()

    articles = generate_articles(args.articles, seed=42, paragraphs=args.paragraphs)
    static = ReplayPortal("static", "Бенчмарк", articles, feed=None, listing=False)
    rendered = ReplayPortal(
        "rendered",
        "Бенчмарк",
        articles,
        feed=None,
        sitemap=False,
        page_size=20,
        render="browser",
        script_delay_ms=50,
    )
    settings = {**BENCH_SETTINGS, "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": args.pages_per_context}
    with (
        tempfile.TemporaryDirectory() as tmp,
        ReplayServer([static, rendered], subprocess=True) as server,
    ):
        work = Path(tmp)
        variants = {
            "http": server.source_config("static"),
            "browser_static": server.source_config("static", render="browser"),
            "browser_js": server.source_config("rendered"),
        }
        rates: dict[str, float] = {}
        for variant, served in variants.items():
            config = {**served, "name": variant}
            sources = work / f"{variant}.yaml"
            sources.write_text(yaml.safe_dump({"sources": [config]}, allow_unicode=True))
            store = f"sqlite:///{work}/{variant}.db"
            started = time.monotonic()
            run = watched(crawl_command([variant], store, sources_file=sources, settings=settings))
            wall = time.monotonic() - started
            stats = run.stats[variant]
            articles_done = int(stats.get("store/new", 0))
            seconds = float(stats["elapsed_time_seconds"])
            rates[variant] = articles_done / seconds if seconds else 0.0
            line(
                variant=variant,
                articles=articles_done,
                seconds=round(seconds, 2),
                articles_per_s=round(rates[variant], 2),
                wall_seconds=round(wall, 2),
                peak_chromium_mb=run.peak_chromium_mb,
                peak_tree_mb=run.peak_tree_mb,
                pages_per_context=args.pages_per_context,
                finish_reason=stats.get("finish_reason"),
                limits={k: v for k, v in stats.items() if k.startswith("browser/")},
            )
        for variant in ("browser_static", "browser_js"):
            ratio = rates[variant] / rates["http"] if rates["http"] else 0.0
            line(variant=f"{variant}/http", ratio=round(ratio, 3))


if __name__ == "__main__":
    main()
