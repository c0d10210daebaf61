"""Exports carry each item's story provenance: story, role, original, credits, lag."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crawler.items import PressItem
from pipelines.store import open_store
from pipelines.story_index import MemoryStoryIndex
from scheduler.cli import app
from scheduler.export import PROVENANCE_COLUMNS, csv_safe, with_provenance, write_csv
from tests.stories_data import AQSU, CARAVAN, PRIME, STEPPE, demo_items
from tests.test_cli_stories import fill_store, lone_keys

runner = CliRunner()


@pytest.fixture
def filled(store_url: str) -> dict[str, Any]:
    """The Baikonur release, its copies and one unrelated item, all linked; plus one item
    stored but not linked yet."""
    stored = fill_store(store_url, (CARAVAN, AQSU, PRIME, STEPPE, lone_keys()[0]))
    unlinked = PressItem.from_dict(
        next(i for i in demo_items() if i["id"] == lone_keys()[1])
    ).to_dict()
    store = open_store(store_url)
    try:
        store.add_item(unlinked)
    finally:
        store.close()
    return {"url": store_url, "items": stored, "unlinked": unlinked["id"]}


def export(store_url: str, *args: str) -> str:
    result = runner.invoke(app, ["export", "--store", store_url, *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_jsonl_rows_carry_the_story(filled: dict[str, Any]) -> None:
    rows = {
        row["id"]: row
        for row in map(json.loads, export(filled["url"], "--format", "jsonl").splitlines())
    }
    assert len(rows) == 6
    release_url = filled["items"][PRIME]["url"]
    original = rows[PRIME]
    assert original["role"] == "original"
    assert original["lag_seconds"] == 0
    assert original["original_url"] == release_url
    assert original["cited_sources"] == []
    for copy in (CARAVAN, STEPPE, AQSU):
        row = rows[copy]
        assert row["story_id"] == original["story_id"] == min(CARAVAN, AQSU, PRIME, STEPPE)
        assert row["role"] == "copy"
        assert row["original_url"] == release_url
        # a domain, as `presswatch link --json` reports it, for a collected original too
        assert row["original_source"] == "primeminister.kz"
        assert row["lag_seconds"] > 0
    caravan = rows[CARAVAN]
    assert caravan["cited_sources"] == ["primeminister.kz"]
    assert caravan["attribution"][0].startswith("со ссылкой на пресс-службу")
    assert not caravan["unattributed"]
    assert rows[AQSU]["unattributed"] is True
    assert rows[AQSU]["attribution"] == []
    alone = rows[lone_keys()[0]]
    # alone in its story, it credits the Kremlin's spokesman: a copy of an external original
    assert (alone["story_id"], alone["role"]) == (lone_keys()[0], "copy")
    assert (alone["original_url"], alone["original_source"]) == (None, "kremlin.ru")
    assert all(rows[filled["unlinked"]][column] is None for column in PROVENANCE_COLUMNS)


def test_csv_rows_carry_the_story_in_cells(filled: dict[str, Any]) -> None:
    rows = {
        row["id"]: row
        for row in csv.DictReader(io.StringIO(export(filled["url"], "--format", "csv")))
    }
    assert set(PROVENANCE_COLUMNS) <= set(next(iter(rows.values())))
    caravan = rows[CARAVAN]
    assert caravan["role"] == "copy"
    assert caravan["original_source"] == "primeminister.kz"
    assert caravan["cited_sources"] == "primeminister.kz"
    assert caravan["attribution"].startswith("со ссылкой на пресс-службу")
    assert float(caravan["lag_seconds"]) > 0
    assert rows[AQSU]["unattributed"] == "True"
    assert all(rows[filled["unlinked"]][column] == "" for column in PROVENANCE_COLUMNS)


def test_provenance_cells_stay_formula_safe() -> None:
    record = {
        "id": "s",
        "original": {"item": None, "source": "=cmd|' /C calc'!A0", "domain": None},
        "members": [
            {
                "item": "a",
                "role": "copy",
                "cites": [
                    {"phrase": "@SUM(A1)", "start": 0, "end": 8, "source": None, "name": "+evil"}
                ],
                "unattributed": False,
                "lag_seconds": -300.0,
                "similarity": 1.0,
            }
        ],
    }
    index = MemoryStoryIndex()
    index.join("s", "a")
    index.put_story("s", record)
    out = io.StringIO()
    list(write_csv(with_provenance([{"id": "a", "title": "-1+1"}], index), out))
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert row["original_source"] == "'=cmd|' /C calc'!A0"
    assert row["attribution"] == "'@SUM(A1)"
    assert row["cited_sources"] == "'+evil"
    assert row["title"] == "'-1+1"
    assert row["lag_seconds"] == "-300.0", "a number is data, not a formula"
    assert csv_safe(-5) == "-5"


def test_export_to_a_file_does_not_overwrite_silently(
    filled: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "out.csv"
    target.write_text("keep me", encoding="utf-8")
    refused = runner.invoke(
        app, ["export", "--store", filled["url"], "--format", "csv", "-o", str(target)]
    )
    assert refused.exit_code == 2
    assert "--force" in refused.output
    assert target.read_text(encoding="utf-8") == "keep me"
    forced = runner.invoke(
        app, ["export", "--store", filled["url"], "--format", "csv", "-o", str(target), "--force"]
    )
    assert forced.exit_code == 0, forced.output
    with target.open(encoding="utf-8") as written:
        assert len(list(csv.DictReader(written))) == 6
