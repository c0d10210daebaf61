"""Redis memory per stored and linked item, beyond the item's own JSON (JSON lines).

Run: ``python3 -m uv run python -m tests.bench.bench_redis_memory [--items 20000]
[--window-days 30] [--days 90]``. Links and stores the synthetic news of
`tests.bench.bench_linking` (copy families planted) into a redis-server started here on a
free loopback port, the way a crawl does: `StoryLinker.link` over the store's story index
(the syndication pipeline), then `RedisStore.add_item` and `StoryIndex.item_stored` (the
store pipeline), so the index reads each item's summary from the stored item. Items are
spread evenly over the last ``--days`` days and each is linked as if first seen at its
publication (the index's clock), so with a window the candidate entries of items older than
it are already gone, as in a store that has run that long. Redis expires keys by its own
clock, which cannot be moved: an entry dated before the window is dropped as it is written,
so those items are linked without candidates (more, smaller stories than in a store that
lived through the days; the ``stories`` field shows it). The index cost per item inside the
window is unaffected.

Prints one line: ``used_memory`` growth per item, the items' own JSON per item, the rest
per item (target <= 8 KB), and that rest split by key kind from ``MEMORY USAGE`` on a
sample of each kind, with the candidate-index cost per item inside the window and the word
index's cost per item (its postings and ordinal buckets together).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.store import open_store
from pipelines.stories import StoryLinker
from pipelines.story_index import DEFAULT_WINDOW_DAYS, KeyWindow
from tests.bench.bench_linking import synthesize
from tests.fixtures.redis_server import running_redis_server
from tests.stories_data import demo_sources

DEFAULT_ITEMS = 20_000
DEFAULT_SEED = 20191118
KB = 1024
SAMPLE_PER_KIND = 3000
PREFIX = "pw:"
# Key kinds by the name part after the prefix (pipelines.store.keys); the rest is "other".
KINDS = (
    "item:",
    "story_item:",
    "story_key:",
    "story_members:",
    "story:",
    "words:",  # the word index's postings (pipelines.store.redis_words)
    "items:by_ordinal:",  # and its ordinal -> item id buckets
)
WORD_INDEX_KINDS = ("words:", "items:by_ordinal:")


class Clock:
    """The index's clock, set to each item's first-seen time before it is linked."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def kind_of(key: str) -> str:
    name = key.removeprefix(PREFIX)
    return next((kind for kind in KINDS if name.startswith(kind)), "other")


def memory_by_kind(client: Any) -> dict[str, dict[str, float]]:
    """Per kind: how many keys, and their bytes extrapolated from a sample's MEMORY USAGE."""
    counts: dict[str, int] = defaultdict(int)
    samples: dict[str, list[str]] = defaultdict(list)
    rng = random.Random(0)  # noqa: S311 -- a reservoir sample, not a secret
    for key in client.scan_iter(match=f"{PREFIX}*", count=5000):
        kind = kind_of(key)
        counts[kind] += 1
        # Every word-index key is measured: a few common words hold most of its bytes,
        # which a sample would miss or overweight.
        if len(samples[kind]) < SAMPLE_PER_KIND or kind in WORD_INDEX_KINDS:
            samples[kind].append(key)
        elif (slot := rng.randrange(counts[kind])) < SAMPLE_PER_KIND:
            samples[kind][slot] = key
    result = {}
    for kind, keys in samples.items():
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key, samples=0)
        used = [size or 0 for size in pipe.execute()]
        mean = sum(used) / len(used)
        result[kind] = {"keys": counts[kind], "bytes": mean * counts[kind]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=DEFAULT_ITEMS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--days", type=float, default=90.0, help="span the items cover")
    parser.add_argument(
        "--window-days",
        type=float,
        default=DEFAULT_WINDOW_DAYS,
        help="the index window (default: the crawl's, 30 days)",
    )
    args = parser.parse_args()
    items, _ = synthesize(args.items, args.seed)
    end = datetime.now(UTC)
    step = timedelta(days=args.days) / max(1, len(items) - 1)
    clock = Clock()
    window = KeyWindow(days=args.window_days, clock=clock)
    with (
        tempfile.TemporaryDirectory(prefix="bench-redis-memory-") as tmp,
        running_redis_server(Path(tmp)) as server,
    ):
        client = server.client()
        empty = int(client.info("memory")["used_memory"])
        store = open_store(f"{server.url}?prefix={PREFIX}")
        index = store.story_index(window=window)
        linker = StoryLinker(index, demo_sources())
        own_json = 0
        started = time.perf_counter()
        for n, synthetic in enumerate(items):
            first_seen = end - step * (len(items) - 1 - n)
            item = {**synthetic, "published_at": first_seen.isoformat()}
            clock.now = first_seen.timestamp()
            linker.link(item)
            if store.add_item(item):
                index.item_stored(item)
            own_json += len(json.dumps(item, ensure_ascii=False).encode())
        seconds = time.perf_counter() - started
        used = int(client.info("memory")["used_memory"]) - empty
        kinds = memory_by_kind(client)
        index.close()
        store.close()
    count = len(items)
    inside = min(count, round(count * args.window_days / args.days)) if args.window_days else count
    record = {
        "bench": "redis_memory",
        "items": count,
        "days": args.days,
        "window_days": args.window_days,
        "items_in_window": inside,
        "seconds": round(seconds, 1),
        "used_kb_per_item": round(used / count / KB, 2),
        "own_json_kb_per_item": round(own_json / count / KB, 2),
        "beyond_json_kb_per_item": round((used - own_json) / count / KB, 2),
        "target_kb": 8,
        "kb_per_item_by_kind": {k: round(v["bytes"] / count / KB, 2) for k, v in kinds.items()},
        "keys_by_kind": {k: v["keys"] for k, v in kinds.items()},
        "stories": kinds.get("story:", {"keys": 0})["keys"],
        "index_kb_per_item_in_window": round(
            kinds.get("story_key:", {"bytes": 0})["bytes"] / max(1, inside) / KB, 2
        ),
        "word_index_kb_per_item": round(
            sum(kinds.get(kind, {"bytes": 0})["bytes"] for kind in WORD_INDEX_KINDS) / count / KB,
            2,
        ),
    }
    sys.stdout.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
