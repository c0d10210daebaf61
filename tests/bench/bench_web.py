"""Benchmark `presswatch web`: each page's time with 100,000 items in the store.

Run: ``uv run python -m tests.bench.bench_web [--items 100000] [--stores sqlite,redis]``.
Fills a store through its own verbs (items, their summaries, stories of four members with
credits and an unattributed copy, alerts, runs), then requests every page `ROUNDS` times
through Starlette's TestClient (the app, its guards and templates; no socket) and prints
one JSON line per page: median and p95 in ms, and the ratio of the median to a baseline
measured in the same run: a plain "hello" route behind the same guards.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from contextlib import ExitStack, closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from crawler.config import Source
from pipelines.store import open_store
from pipelines.story_index import ItemSummary
from scheduler.rules import load_rules
from scheduler.web import create_app
from tests.fixtures.redis_server import running_redis_server

if TYPE_CHECKING:
    from pipelines.store import Store

ROUNDS = 20
SOURCES = [f"portal{n}" for n in range(10)]
WORDS = [
    "правительство",
    "министр",
    "бюджет",
    "область",
    "акимат",
    "экономика",
    "соглашение",
    "встреча",
    "проект",
    "развитие",
    "инвестиции",
    "космодром",
    "Байконур",
    "энергетика",
    "транспорт",
    "образование",
    "здравоохранение",
    "сельское",
    "хозяйство",
    "экспорт",
    "регион",
    "закон",
    "парламент",
    "сенат",
    "выборы",
]
RARE = "квазикристалл"  # in one item only: a search that reads the whole store
START = datetime(2024, 1, 1, tzinfo=UTC)
MEMBERS = 4
BATCH = 2000


def make_items(count: int, rng: random.Random) -> list[dict[str, Any]]:
    items = []
    for n in range(count):
        source = SOURCES[n % len(SOURCES)]
        words = rng.sample(WORDS, 8)
        published = START + timedelta(minutes=5 * n + rng.randrange(5))
        title = " ".join(words[:6]).capitalize() + (f" {RARE}" if n == count // 2 else "")
        items.append(
            {
                "id": f"{source}/{n:07d}",
                "url": f"https://{source}.example/news/{n}",
                "source": source,
                "title": title,
                "lead": "",
                "text": " ".join(rng.choices(WORDS, k=80)),
                "authors": [],
                "published_at": published.isoformat(),
                "fetched_at": published.isoformat(),
                "lang": "ru" if n % 5 else "kk",
                "content_hash": f"{n:016x}",
                "flags": [],
                "links": [],
            }
        )
    return items


def story_record(members: list[dict[str, Any]]) -> dict[str, Any]:
    """A story as the linker records it: the first item the original, one copy of three
    unattributed, the others crediting the original's source."""
    original = members[0]
    first = datetime.fromisoformat(original["published_at"])
    entries = []
    for number, item in enumerate(members):
        lag = (datetime.fromisoformat(item["published_at"]) - first).total_seconds()
        is_copy = number > 0
        cites = (
            [
                {
                    "phrase": "со ссылкой на пресс-службу",
                    "start": 0,
                    "end": 26,
                    "source": original["source"],
                    "name": "пресс-служба",
                    "family": "ru_citing",
                    "address": None,
                }
            ]
            if is_copy and number != 2
            else []
        )
        entries.append(
            {
                "item": item["id"],
                "source": item["source"],
                "role": "copy" if is_copy else "original",
                "published_at": item["published_at"],
                "cites": cites,
                "unattributed": number == 2,
                "lag_seconds": lag,
                "similarity": 0.93 if is_copy else 1.0,
                "chain": None,
            }
        )
    return {
        "id": original["id"],
        "original": {
            "item": original["id"],
            "source": original["source"],
            "name": original["source"],
            "domain": f"{original['source']}.example",
            "published_at": original["published_at"],
            "external": False,
        },
        "members": entries,
    }


def fill(store: Store, count: int) -> dict[str, Any]:
    """`count` items in stories of `MEMBERS`, written through the store's verbs."""
    rng = random.Random(14)  # noqa: S311 -- synthetic text, the same every run
    items = make_items(count, rng)
    started = time.perf_counter()
    with closing(store.story_index()) as index, closing(store.outbox()) as outbox:
        for start in range(0, count, MEMBERS):
            members = items[start : start + MEMBERS]
            for item in members:
                store.add_item(item)
                index.put_item(ItemSummary.from_dict(item))
                index.join(members[0]["id"], item["id"])
            index.put_story(members[0]["id"], story_record(members))
            if start % (MEMBERS * 100) == 0:
                outbox.record(
                    {
                        "id": f"rule-{start}",
                        "kind": "rule",
                        "rule": "bench",
                        "story": members[0]["id"],
                        "channels": ["mail", "hook"],
                        "copies": MEMBERS - 1,
                        "items": [members[0]["id"]],
                        "message": {"title": members[0]["title"]},
                        "digest": None,
                        "created_at": members[0]["published_at"],
                        "updated_at": members[0]["published_at"],
                    },
                    [f"bench|{members[0]['id']}"],
                    now=time.time(),
                )
        for source in SOURCES:
            for run in range(20):
                at = (START + timedelta(hours=run)).isoformat()
                store.add_run(
                    {
                        "id": f"{source}-{run}",
                        "source": source,
                        "started_at": at,
                        "ended_at": at,
                        "status": "ok" if run % 7 else "partial",
                        "problems": [] if run % 7 else ["2 requests failed"],
                        "stats": {"store/new": 40},
                    }
                )
    return {"fill_s": round(time.perf_counter() - started, 1), "items": count, "story": items[8]}


def timed(client: TestClient, path: str) -> dict[str, float]:
    client.get(path)  # warm: templates compiled, caches filled
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    times.sort()
    return {"median_ms": statistics.median(times), "p95_ms": times[int(0.95 * (ROUNDS - 1))]}


def bench(kind: str, url: str, count: int) -> None:
    store = open_store(url)
    try:
        facts = fill(store, count)
        print(
            json.dumps(
                {
                    "store": kind,
                    "fill": "items+stories",
                    **{k: facts[k] for k in ("items", "fill_s")},
                }
            )
        )
        sources = [
            Source(
                name=s,
                kind="media",
                domains=[f"{s}.example"],
                discovery={"feeds": [f"https://{s}.example/rss"]},
            )
            for s in SOURCES
        ]
        app = create_app(
            store,
            token="bench-token-0123456789",  # noqa: S106 -- the benchmark's own
            allowed_hosts=["testserver"],
            sources=sources,
            rules=load_rules(None, resolve_secrets=False),
        )
        app.router.routes.append(Route("/hello", lambda _r: PlainTextResponse("hello")))
        story = facts["story"]["id"]
        pages = {
            "baseline hello": "/hello",
            "stories": "/stories",
            "stories page 40": "/stories?page=40",
            "stories by source": "/stories?source=portal3",
            "stories by words": "/stories?q=Байконура",
            "story": f"/stories/{story}",
            "sources": "/sources",
            "source": "/sources/portal3",
            "alerts": "/alerts",
            "items": "/items",
            "items by source page 5": "/items?source=portal3&page=5",
            "items by words": "/items?q=космодрома",
            "items by a rare word": f"/items?q={RARE}",
            "item": f"/items/{story}",
        }
        with TestClient(app, headers={"authorization": "Bearer bench-token-0123456789"}) as client:
            baseline = None
            for name, path in pages.items():
                result = timed(client, path)
                baseline = baseline or result["median_ms"]
                print(
                    json.dumps(
                        {
                            "store": kind,
                            "page": name,
                            "path": path,
                            **{k: round(v, 1) for k, v in result.items()},
                            "ratio_to_baseline": round(result["median_ms"] / baseline, 1),
                        },
                        ensure_ascii=False,
                    )
                )
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--stores", default="sqlite,redis")
    args = parser.parse_args()
    with ExitStack() as stack:
        for kind in args.stores.split(","):
            if kind == "sqlite":
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                bench(kind, f"sqlite:///{folder}/bench.db", args.items)
            elif kind == "redis":
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                server = stack.enter_context(running_redis_server(folder))
                bench(kind, server.url, args.items)


if __name__ == "__main__":
    main()
