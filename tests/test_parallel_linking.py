"""Two crawl processes linking into one store at once make the stories one process makes alone."""

from __future__ import annotations

import multiprocessing
import random
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from pipelines.store import open_store
from pipelines.stories import StoryLinker
from tests.stories_data import demo_items, demo_sources

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier
    from pathlib import Path

SHUFFLE_SEED = 20191118
WRITERS = 2
WAIT_S = 90


def link_all(store_url: str, items: list[dict[str, Any]]) -> None:
    store = open_store(store_url)
    index = store.story_index()
    try:
        linker = StoryLinker(index, demo_sources())
        for item in items:
            linker.link(item)
    finally:
        index.close()
        store.close()


def link_at_once(
    store_url: str, items: list[dict[str, Any]], start: Barrier, spans: Queue[tuple[float, float]]
) -> None:
    """A crawl process: open the store, wait for the other writer, link `items`, report when
    it started and finished linking."""
    store = open_store(store_url)
    index = store.story_index()
    try:
        linker = StoryLinker(index, demo_sources())
        start.wait(timeout=WAIT_S)
        started = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process
        for item in items:
            linker.link(item)
        spans.put((started, time.monotonic()))
    finally:
        index.close()
        store.close()


def partition(store_url: str) -> set[frozenset[str]]:
    store = open_store(store_url)
    index = store.story_index()
    try:
        return {frozenset(index.members(story_id)) for story_id in index.story_ids()}
    finally:
        index.close()
        store.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def fresh_store_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Two empty stores of one backend: for the parallel writers and for the lone one."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/parallel.db", f"sqlite:///{tmp_path}/sequential.db"
    server = request.getfixturevalue("redis_url")
    run = uuid.uuid4().hex[:8]
    return f"{server}?prefix=pw-test-{run}-parallel:", f"{server}?prefix=pw-test-{run}-sequential:"


def test_two_processes_linking_at_once_make_the_same_stories(
    fresh_store_urls: tuple[str, str],
) -> None:
    parallel_url, sequential_url = fresh_store_urls
    items = demo_items()
    random.Random(SHUFFLE_SEED).shuffle(items)  # noqa: S311 -- a fixed, replayable order
    halves = [items[n::WRITERS] for n in range(WRITERS)]
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WRITERS)
    spans = context.Queue()
    writers = [
        context.Process(target=link_at_once, args=(parallel_url, half, start, spans))
        for half in halves
    ]
    for writer in writers:
        writer.start()
    link_all(sequential_url, items)
    reported = [spans.get(timeout=WAIT_S) for _ in writers]
    for writer in writers:
        writer.join(timeout=WAIT_S)
    assert [writer.exitcode for writer in writers] == [0] * WRITERS
    # the writers really overlapped: each started before the other finished
    assert max(started for started, _ in reported) < min(finished for _, finished in reported)
    expected = partition(sequential_url)
    assert any(len(members) >= 4 for members in expected)
    assert partition(parallel_url) == expected
