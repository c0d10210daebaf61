"""Benchmark alert latency: a stored, linked matching item → the message at a local webhook.

Run: ``uv run python -m tests.bench.bench_alerts [--rounds 10]``. Each round links one new
item that mentions Baikonur into the store's story index (what the end of a crawl leaves),
then runs the alert job and waits for the webhook to receive the message. The baseline,
measured in the same run against the same sink, is a bare apprise ``json://`` notify: the
ratio is what the outbox, the matcher and the job add. Target: under 2 s per alert.
One JSON line per store (SQLite, and Redis when redis-server is installed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import apprise

from pipelines.store import open_store
from pipelines.stories import StoryLinker
from pipelines.story_index import MemoryStoryIndex
from scheduler.alerts import run_alert_job
from scheduler.rules import RulesFile
from tests.fixtures.redis_server import redis_server_binary, running_redis_server
from tests.fixtures.sinks import WebhookSink
from tests.stories_data import demo_items, demo_sources

if TYPE_CHECKING:
    from collections.abc import Callable

TARGET_S = 2.0
WAIT_LIMIT_S = 30.0


def wait_for(count: int, sink: WebhookSink) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while len(sink.accepted()) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the webhook got {len(sink.accepted())} of {count} messages")
        time.sleep(0.001)


def matching_items(rounds: int) -> list[dict[str, Any]]:
    """`rounds` unrelated demo articles (each a story of its own), each given a sentence
    about Baikonur, so that every round raises one new alert."""
    scratch = StoryLinker(MemoryStoryIndex(), demo_sources())
    chosen = []
    for item in demo_items():
        if "Байконур" in item["text"] or len(item["text"]) < 600:
            continue
        if len(scratch.link(item).story.members) == 1:
            chosen.append({**item, "text": item["text"] + "\n\nРанее он побывал на Байконуре."})
        if len(chosen) == rounds:
            break
    return chosen


def timed(rounds: int, step: Callable[[int], None], sink: WebhookSink) -> list[float]:
    times = []
    for n in range(rounds):
        before = len(sink.accepted())
        start = time.perf_counter()
        step(n)
        wait_for(before + 1, sink)
        times.append(time.perf_counter() - start)
    return times


def bench_store(url: str, label: str, rounds: int, sink: WebhookSink) -> dict[str, Any]:
    hook = f"json://127.0.0.1:{sink.port}/hook"
    rules = RulesFile.model_validate(
        {
            "channels": {"hook": hook},
            "rules": [{"name": "baikonur", "terms": ["Байконур"], "channels": ["hook"]}],
        }
    )
    store = open_store(url)
    index = store.story_index()
    linker = StoryLinker(index, demo_sources())
    items = matching_items(rounds)

    def alert_round(_: int) -> None:
        run_alert_job(store, rules, index=index)

    def baseline_round(n: int) -> None:
        notifier = apprise.Apprise()
        notifier.add(hook)
        notifier.notify(title="baseline", body=items[n]["title"])

    run_alert_job(store, rules, index=index)  # warm up: compile rules, open the outbox
    alert_times = []
    for item in items:
        linker.link(item)  # the crawl's end: stored and linked, before the clock starts
        alert_times += timed(1, alert_round, sink)
    baseline = timed(len(items), baseline_round, sink)
    store.close()
    p50, base = statistics.median(alert_times), statistics.median(baseline)
    return {
        "bench": "alert_latency",
        "store": label,
        "rounds": len(items),
        "p50_s": round(p50, 4),
        "max_s": round(max(alert_times), 4),
        "baseline": "bare apprise json:// notify to the same sink",
        "baseline_p50_s": round(base, 4),
        "ratio": round(p50 / base, 2) if base else None,
        "target_s": TARGET_S,
        "within_target": max(alert_times) < TARGET_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    options = parser.parse_args()
    sink = WebhookSink().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            print(json.dumps(bench_store(url, "sqlite", options.rounds, sink)))
            if redis_server_binary():
                with running_redis_server(Path(tmp) / "redis") as server:
                    print(json.dumps(bench_store(server.url, "redis", options.rounds, sink)))
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
