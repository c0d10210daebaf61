"""`presswatch stories` and `presswatch story ID` over a store the linker filled, both stores."""

from __future__ import annotations

import json
import re
from contextlib import closing
from typing import Any

import pytest
from typer.testing import CliRunner

from crawler.items import PressItem
from pipelines.store import open_store
from pipelines.stories import StoryLinker
from scheduler.cli import app
from scheduler.cli_support import console
from scheduler.story_view import human_lag
from tests.stories_data import AQSU, BAIKONUR, CARAVAN, PRIME, STEPPE, demo_items, demo_sources

runner = CliRunner()


def fill_store(store_url: str, keys: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Store the demo articles of `keys` and link them, in that order, as a crawl would;
    returns the stored items by id."""
    items = {item["id"]: item for item in demo_items()}
    stored = {}
    store = open_store(store_url)
    try:
        with closing(store.story_index()) as index:
            linker = StoryLinker(index, demo_sources())
            for key in keys:
                item = PressItem.from_dict(items[key]).to_dict()
                store.add_item(item)
                linker.link(item)
                stored[key] = item
    finally:
        store.close()
    return stored


def lone_keys() -> tuple[str, ...]:
    """Two demo articles that share no story with the Baikonur release or each other."""
    ids = [item["id"] for item in demo_items() if item["id"] not in BAIKONUR]
    return (ids[0], ids[-1])


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as in a wide terminal, so that a row stays on one line; the console took its
    width from the environment when it was made, so COLUMNS would come too late."""
    monkeypatch.setattr(console, "width", 250)


@pytest.fixture
def filled(store_url: str) -> str:
    fill_store(store_url, (CARAVAN, AQSU, PRIME, STEPPE, *lone_keys()))
    return store_url


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, "?"),
        (0, "+0 s"),
        (45, "+45 s"),
        (38 * 60 + 10, "+38 min"),
        (2 * 3600 + 5 * 60, "+2 h 05 min"),
        (3 * 86400 + 4 * 3600 + 59, "+3 d 4 h"),
        (-300, "-5 min"),
    ],
)
def test_lag_in_words(seconds: float | None, words: str) -> None:
    assert human_lag(seconds) == words


def test_stories_lists_the_release_with_its_copies(filled: str) -> None:
    result = invoke("stories", "--store", filled)
    assert result.exit_code == 0, result.output
    assert "3 stories" in result.output
    lines = result.output.splitlines()
    (at,) = [i for i, line in enumerate(lines) if min(BAIKONUR) in line]
    row, carried = lines[at], lines[at + 1]  # the title, then who carried it
    assert "2019-07-09" in row
    assert "Первый вице-премьер" in row
    assert "primeminister → aqsu, caravan, steppe" in carried


def test_stories_json_is_one_record_a_line_newest_first(filled: str) -> None:
    result = invoke("stories", "--store", filled, "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert len(records) == 3
    assert records[-1]["id"] == min(BAIKONUR), "the July release is the oldest story"
    firsts = [min(m["published_at"] for m in r["members"]) for r in records]
    assert firsts == sorted(firsts, reverse=True)
    release = records[-1]
    assert release["original"]["item"] == PRIME
    assert {m["item"] for m in release["members"]} == set(BAIKONUR)


def test_stories_filters_by_copies_and_limits(filled: str) -> None:
    # (a story of one item that credits a source not collected has one copy)
    shared = invoke("stories", "--store", filled, "--json", "--min-copies", "2")
    assert [json.loads(line)["id"] for line in shared.output.splitlines()] == [min(BAIKONUR)]
    first = invoke("stories", "--store", filled, "--json", "--limit", "1")
    assert len(first.output.splitlines()) == 1


def test_story_timeline_shows_lag_similarity_and_credit(filled: str) -> None:
    result = invoke("story", min(BAIKONUR), "--store", filled)
    assert result.exit_code == 0, result.output
    out = result.output
    rule = next(i for i, line in enumerate(out.splitlines()) if line.startswith("───"))
    lines = out.splitlines()[rule + 1 :]  # the table's rows, under its header

    def row_of(item: str) -> int:
        """A member's row: the line above the one with its id (the title's line)."""
        (at,) = [i for i, line in enumerate(lines) if item in line]
        return at - 1

    original = row_of(PRIME)
    assert "original" in lines[original]
    for copy in (CARAVAN, STEPPE, AQSU):
        row = row_of(copy)
        assert re.search(r"\+\d+ (h \d\d )?min", lines[row]), lines[row]
        assert row > original, "the original comes first"
    assert "со ссылкой на пресс-службу" in out
    assert "unattributed" in out
    assert "0." in out  # similarities


def test_story_accepts_an_item_id(filled: str) -> None:
    by_story = invoke("story", min(BAIKONUR), "--store", filled, "--json")
    by_item = invoke("story", AQSU, "--store", filled, "--json")
    assert by_item.exit_code == 0, by_item.output
    assert json.loads(by_item.output) == json.loads(by_story.output)


def test_an_unknown_story_is_refused_clearly(filled: str) -> None:
    result = invoke("story", "no-such-id", "--store", filled)
    assert result.exit_code == 2
    assert "no story or item 'no-such-id'" in result.output
    assert "Traceback" not in result.output


def test_an_external_original_is_named_as_not_collected(store_url: str) -> None:
    fill_store(store_url, (CARAVAN, AQSU))
    result = invoke("story", CARAVAN, "--store", store_url)
    assert result.exit_code == 0, result.output
    assert "not collected" in result.output
    assert "primeminister.kz" in result.output
    assert "?" in result.output  # no lag behind a source that was not fetched
