"""The README's main command end to end: `presswatch demo`, then review and export its store."""

from __future__ import annotations

import csv
import io
import itertools
import json
import subprocess
from contextlib import closing
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest

from pipelines.store import ItemQuery, open_store
from scheduler.demo import load_stories
from scheduler.story_view import iter_stories
from tests.entry_point import presswatch as run_presswatch

# Measured on the crawled demo store (SQLite and Redis): pairwise co-membership precision
# 1.0, recall 0.943 (82 of 87 verified pairs), as offline linking (tests/test_link_offline.py).
MIN_RECALL = 0.94


def presswatch(*args: str, cwd: Path, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return run_presswatch(
        *args, cwd=cwd, env={"PRESSWATCH_STORE": f"sqlite:///{cwd}/demo.db"}, timeout=timeout
    )


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("demo")
    done = presswatch("demo", cwd=where)
    assert done.returncode == 0, done.stdout + done.stderr
    (where / "demo.out").write_text(done.stdout, encoding="utf-8")
    return where


@pytest.mark.timeout(200)
def test_demo_prints_what_it_collected(demo_dir: Path) -> None:
    out = (demo_dir / "demo.out").read_text(encoding="utf-8")
    for source in ("primeminister", "zakon", "nur", "tengrinews", "caravan"):
        assert source in out
    assert "Байконур" in out


@pytest.mark.timeout(200)
def test_demo_leaves_its_items_for_review(demo_dir: Path) -> None:
    listed = presswatch("items", "--limit", "200", "--json", cwd=demo_dir)
    assert listed.returncode == 0, listed.stderr
    items = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(items) >= 40
    assert {"zakon", "zakon-kaz", "nur", "tengrinews", "primeminister"} <= {
        i["source"] for i in items
    }
    assert all(i["title"] and i["text"] and i["published_at"] for i in items)
    assert {i["lang"] for i in items} >= {"ru", "kk"}

    official = presswatch("items", "--source", "primeminister", "--json", cwd=demo_dir)
    (release,) = [json.loads(line) for line in official.stdout.splitlines()]
    shown = presswatch("show", release["id"], cwd=demo_dir)
    assert "Байконур" in shown.stdout

    exported = presswatch("export", "--format", "csv", cwd=demo_dir)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(rows) == len(items)


@pytest.mark.timeout(200)
def test_a_second_demo_run_stores_no_duplicates(demo_dir: Path) -> None:
    before = presswatch("items", "--limit", "500", "--json", cwd=demo_dir).stdout.count("\n")
    again = presswatch("demo", cwd=demo_dir)
    assert again.returncode == 0, again.stderr
    after = presswatch("items", "--limit", "500", "--json", cwd=demo_dir).stdout.count("\n")
    assert after == before


@pytest.mark.timeout(200)
def test_demo_prints_the_release_story_with_its_copies(demo_dir: Path) -> None:
    out = (demo_dir / "demo.out").read_text(encoding="utf-8")
    assert "Stories" in out
    story = out[out.index("Story ") :]
    assert "primeminister" in story
    assert "original" in story
    for copy in ("caravan", "steppe", "aqsu"):
        assert copy in story
    assert "со ссылкой на пресс-службу" in story
    assert "unattributed" in story
    assert " min" in story


def corpus_id(item: dict) -> str:
    """The demo corpus id of a crawled item: its source and the slug of its page."""
    return f"{item['source']}/{PurePosixPath(urlsplit(item['url']).path).stem}"


def pairs(groups) -> set[frozenset[str]]:
    return {frozenset(p) for group in groups for p in itertools.combinations(sorted(group), 2)}


@pytest.mark.timeout(200)
def test_the_crawl_links_the_verified_stories(demo_dir: Path) -> None:
    store = open_store(f"sqlite:///{demo_dir}/demo.db")
    try:
        items = store.items(ItemQuery(limit=1000))
        with closing(store.story_index()) as index:
            records = list(iter_stories(index))
    finally:
        store.close()
    names = {item["id"]: corpus_id(item) for item in items}
    linked = [m["item"] for record in records for m in record["members"]]
    assert sorted(linked) == sorted(names), "every crawled item is in exactly one story"
    truth = pairs(story["members"] for story in load_stories().values())
    found = pairs([names[m["item"]] for m in record["members"]] for record in records)
    precision = len(truth & found) / len(found)
    recall = len(truth & found) / len(truth)
    assert precision == 1.0, sorted(map(sorted, found - truth))
    assert recall >= MIN_RECALL, (recall, sorted(map(sorted, truth - found)))


@pytest.mark.timeout(200)
def test_the_demo_stories_are_there_to_review_and_export(demo_dir: Path) -> None:
    listed = presswatch("stories", "--min-copies", "3", "--json", cwd=demo_dir)
    assert listed.returncode == 0, listed.stderr
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    (release,) = [
        r for r in records if r["original"]["source"] == "primeminister" and r["original"]["item"]
    ]
    timeline = presswatch("story", release["members"][-1]["item"], cwd=demo_dir)
    assert timeline.returncode == 0, timeline.stderr
    assert "unattributed" in timeline.stdout

    exported = presswatch("export", "--format", "csv", "--source", "aqsu", cwd=demo_dir)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    copy = next(row for row in rows if row["story_id"] == release["id"])
    assert copy["role"] == "copy"
    assert copy["original_source"] == "primeminister.kz"
    assert copy["unattributed"] == "True"
    assert float(copy["lag_seconds"]) > 0
