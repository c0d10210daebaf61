"""Benchmark the stores on a real news day: writes, feed look-ups and text search.

Run: ``uv run python -m tests.bench.bench_store [--copies 4]``. Prints one JSON line per
measurement with a ratio against a baseline measured in the same run, on the same
machine: plain SQL inserts and SETs for writes, one round trip per id for feed look-ups,
a full-table case-folding scan for text search.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parsel import Selector

from crawler.items import PressItem, content_hash
from pipelines.store.base import ItemQuery
from pipelines.store.redis import RedisStore
from pipelines.store.sqlite import SQLiteStore
from tests.fixtures.redis_server import running_redis_server

if TYPE_CHECKING:
    from collections.abc import Callable

NEWS_DAY = Path("/work/shared/data/news_2019-11-18")
FEED_SIZE = 100
FEED_ROUNDS = 50
SEARCH_ROUNDS = 20


def load_items(copies: int) -> list[dict[str, Any]]:
    """The day's articles as items, `copies` times over under distinct URLs."""
    articles = []
    for line in (NEWS_DAY / "index.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        page = Selector(text=(NEWS_DAY / "docs" / entry["local_file"]).read_text("utf-8"))
        text = "\n".join(p.xpath("string()").get().strip() for p in page.css("article p"))
        articles.append((entry, text))
    items = []
    for copy in range(copies):
        for entry, text in articles:
            items.append(
                PressItem(
                    url=f"{entry['url']}?copy={copy}",
                    source=entry["host"],
                    title=entry["title"],
                    text=text,
                    published_at=entry["published"],
                    fetched_at=entry["published"],
                    lang="ru",
                    content_hash=content_hash(f"{copy}{text}"),
                ).to_dict()
            )
    return items


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def report(name: str, backend: str, *, n: int, seconds: float, baseline: float, what: str) -> None:
    print(
        json.dumps(
            {
                "bench": name,
                "backend": backend,
                "n": n,
                "seconds": round(seconds, 4),
                "baseline": what,
                "baseline_seconds": round(baseline, 4),
                "ratio": round(seconds / baseline, 3),
            },
            ensure_ascii=False,
        ),
        flush=True,
    )


def bench_sqlite(items: list[dict[str, Any]], directory: Path) -> None:
    store = SQLiteStore(f"sqlite:///{directory}/store.db")
    raw = SQLiteStore(f"sqlite:///{directory}/raw.db")._db  # same pragmas, bare table
    raw.execute("CREATE TABLE plain (id TEXT PRIMARY KEY, data TEXT)")
    baseline = timed(
        lambda: [
            raw.execute("INSERT OR IGNORE INTO plain VALUES (?, ?)", (i["id"], json.dumps(i)))
            for i in items
        ]
    )
    seconds = timed(lambda: [store.add_item(item) for item in items])
    report(
        "add_item",
        "sqlite",
        n=len(items),
        seconds=seconds,
        baseline=baseline,
        what="bare INSERT per item",
    )

    feed = [item["id"] for item in items[: FEED_SIZE // 2]] + [f"new-{n}" for n in range(50)]
    baseline = timed(
        lambda: [
            [store._db.execute("SELECT 1 FROM items WHERE id = ?", (i,)).fetchone() for i in feed]
            for _ in range(FEED_ROUNDS)
        ]
    )
    seconds = timed(lambda: [store.known_ids(feed) for _ in range(FEED_ROUNDS)])
    report(
        "known_ids",
        "sqlite",
        n=FEED_ROUNDS,
        seconds=seconds,
        baseline=baseline,
        what="one SELECT per id",
    )

    scan = (
        "SELECT data FROM items WHERE instr(casefold(json_extract(data, '$.title')), ?) > 0"
        " OR instr(casefold(json_extract(data, '$.text')), ?) > 0"
        " ORDER BY sort_time DESC, id DESC LIMIT 50"
    )
    baseline = timed(
        lambda: [
            store._db.execute(scan, ("минфин", "минфин")).fetchall() for _ in range(SEARCH_ROUNDS)
        ]
    )
    seconds = timed(lambda: [store.items(ItemQuery(text="Минфин")) for _ in range(SEARCH_ROUNDS)])
    report(
        "text_search",
        "sqlite",
        n=SEARCH_ROUNDS,
        seconds=seconds,
        baseline=baseline,
        what="casefold scan",
    )
    store.close()
    raw.close()


def bench_redis(items: list[dict[str, Any]], directory: Path) -> None:
    with running_redis_server(directory / "redis") as server:
        store = RedisStore(server.url)
        raw = server.client()
        baseline = timed(
            lambda: [raw.set(f"plain:{i['id']}", json.dumps(i), nx=True) for i in items]
        )
        seconds = timed(lambda: [store.add_item(item) for item in items])
        report(
            "add_item",
            "redis",
            n=len(items),
            seconds=seconds,
            baseline=baseline,
            what="plain SET NX per item",
        )

        feed = [item["id"] for item in items[: FEED_SIZE // 2]] + [f"new-{n}" for n in range(50)]
        baseline = timed(
            lambda: [[raw.exists(f"pw:item:{i}") for i in feed] for _ in range(FEED_ROUNDS)]
        )
        seconds = timed(lambda: [store.known_ids(feed) for _ in range(FEED_ROUNDS)])
        report(
            "known_ids",
            "redis",
            n=FEED_ROUNDS,
            seconds=seconds,
            baseline=baseline,
            what="one EXISTS per id",
        )

        sqlite = SQLiteStore(f"sqlite:///{directory}/store.db")
        baseline = timed(
            lambda: [sqlite.items(ItemQuery(text="Минфин")) for _ in range(SEARCH_ROUNDS)]
        )
        seconds = timed(
            lambda: [store.items(ItemQuery(text="Минфин")) for _ in range(SEARCH_ROUNDS)]
        )
        report(
            "text_search",
            "redis",
            n=SEARCH_ROUNDS,
            seconds=seconds,
            baseline=baseline,
            what="sqlite trigram index",
        )
        sqlite.close()
        store.close()
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4, help="times the day is stored over")
    args = parser.parse_args()
    items = load_items(args.copies)
    with tempfile.TemporaryDirectory() as directory:
        bench_sqlite(items, Path(directory))
        bench_redis(items, Path(directory))


if __name__ == "__main__":
    main()
