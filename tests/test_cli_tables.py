"""The review tables in an 80-column terminal, their times in one zone, and `items --text`
finding inflected forms as rules do; through the `presswatch` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rich.cells import cell_len

from crawler.items import PressItem, content_hash
from pipelines.store import ItemQuery, open_store
from pipelines.store.keys import parse_instant
from pipelines.stories import StoryLinker
from scheduler.alerts import run_alert_job
from scheduler.rules import RulesFile
from tests.stories_data import demo_items, demo_sources

PRESSWATCH = str(Path(sys.executable).with_name("presswatch"))
WIDTH = 80


def presswatch(*args: str, columns: int = WIDTH, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": str(columns), **env}
    for name in ("PRESSWATCH_STORE", "PRESSWATCH_TZ", "LINES"):
        if name not in env:
            environ.pop(name, None)
    return subprocess.run(
        [PRESSWATCH, *args], env=environ, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A SQLite store as a crawl leaves it: the demo articles under their real (hashed)
    ids, linked into stories, alerts raised (not sent), one run and a source's health."""
    url = f"sqlite:///{tmp_path_factory.mktemp('tables')}/pw.db"
    store = open_store(url)
    try:
        with closing(store.story_index()) as index:
            linker = StoryLinker(index, demo_sources())
            for article in demo_items():
                item = PressItem.from_dict({k: v for k, v in article.items() if k != "id"})
                store.add_item(item.to_dict())
                linker.link(item.to_dict())
        rules = RulesFile.model_validate(
            {
                "channels": {"console": "console://"},
                "rules": [{"name": "baikonur", "terms": ["Байконур"], "channels": ["console"]}],
            }
        )
        assert run_alert_job(store, rules, deliver=False).created >= 1
        store.add_run(
            {
                "id": "r1",
                "source": "akorda",
                "started_at": "2019-11-18T20:00:00+00:00",
                "ended_at": "2019-11-18T20:01:00+00:00",
                "status": "failed",
                "stats": {},
            }
        )
        reasons = ["3 failed runs in a row (last: connection refused)", "no new items for 2 days"]
        store.set_state("health/akorda", {"state": "failing", "verdict": {"reasons": reasons}})
        newest = store.items(ItemQuery(limit=1))[0]
        outbox = store.outbox()
        try:
            alert = outbox.alerts(limit=1)[0]
        finally:
            outbox.close()
    finally:
        store.close()
    return {"url": url, "newest": newest, "alert": alert}


def first_words(title: str, count: int = 2) -> str:
    return " ".join(title.split()[:count])


def readable(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    wide = [line for line in done.stdout.splitlines() if cell_len(line) > WIDTH]
    assert not wide, "\n".join(wide)
    return done.stdout


def test_items_at_80_columns(reviewed: dict[str, Any]) -> None:
    out = readable(presswatch("items", "--store", reviewed["url"]))
    newest = reviewed["newest"]
    (row,) = [line for line in out.splitlines() if newest["id"] in line]
    assert first_words(newest["title"]) in row
    assert newest["source"] in row
    assert "published" in out
    assert "(Asia/Almaty)" in out
    assert "30 shown of" in out


def test_stories_at_80_columns_say_how_many_are_left(reviewed: dict[str, Any]) -> None:
    url = reviewed["url"]
    out = readable(presswatch("stories", "--store", url, "--limit", "3"))
    listed = presswatch("stories", "--store", url, "--json", "--limit", "1000").stdout
    records = [json.loads(line) for line in listed.splitlines()]
    total = len(records)
    assert f"3 shown of {total} stories" in out
    assert f"{total - 3} more: --limit {total}" in out
    lines = out.splitlines()
    (at,) = [i for i, line in enumerate(lines) if records[0]["id"] in line]
    assert "2019-" in lines[at]
    everything = readable(presswatch("stories", "--store", url, "--limit", str(total)))
    assert "more:" not in everything
    assert f"{total} stories, newest first" in everything


def test_story_at_80_columns(reviewed: dict[str, Any]) -> None:
    story = reviewed["alert"]["story"]
    out = readable(presswatch("story", story, "--store", reviewed["url"]))
    assert f"Story {story}" in out
    assert "published" in out
    assert "(Asia/Almaty)" in out
    assert "original" in out


def test_alerts_at_80_columns_show_the_story_id(reviewed: dict[str, Any]) -> None:
    alert = reviewed["alert"]
    out = readable(presswatch("alerts", "--store", reviewed["url"]))
    lines = out.splitlines()
    (at,) = [i for i, line in enumerate(lines) if alert["story"] in line]
    assert "baikonur" in lines[at]
    assert first_words(alert["message"]["title"]) in lines[at + 1]
    assert "created" in out
    assert "(Asia/Almaty)" in out


def test_status_and_sources_at_80_columns(reviewed: dict[str, Any]) -> None:
    out = readable(presswatch("status", "--store", reviewed["url"]))
    (row,) = [line for line in out.splitlines() if line.startswith("akorda")]
    assert "2019-11-19 02:00" in row  # 20:00 UTC in Almaty (+06:00 in 2019)
    assert "failing: 3 failed runs" in row
    sources = readable(presswatch("sources"))
    assert any(line.startswith("primeminister ") for line in sources.splitlines())


def test_times_follow_presswatch_tz(reviewed: dict[str, Any]) -> None:
    newest = reviewed["newest"]
    out = readable(presswatch("items", "--store", reviewed["url"], PRESSWATCH_TZ="UTC"))
    (row,) = [line for line in out.splitlines() if newest["id"] in line]
    published = newest["published_at"]
    assert f"{parse_instant(published):%Y-%m-%d %H:%M}" in row
    assert "(UTC)" in out
    shown = readable(presswatch("show", newest["id"], "--store", reviewed["url"]))
    almaty = parse_instant(published).astimezone(ZoneInfo("Asia/Almaty"))
    assert f"{almaty:%Y-%m-%d %H:%M} (Asia/Almaty)" in shown.splitlines()[1]
    bad = presswatch("items", "--store", reviewed["url"], PRESSWATCH_TZ="Mars/Olympus")
    assert bad.returncode == 2
    assert "PRESSWATCH_TZ='Mars/Olympus' is not a time zone name" in bad.stderr
    assert "Traceback" not in bad.stderr


# --- items --text reads words as rules do ------------------------------------------------

TEXTS = {
    "genitive": ("Запуск с Байконура перенесли", "Ракету вывезли на старт."),
    "locative": ("Новости космоса", "Совещание прошло на Байконуре в пятницу."),
    "adjective": ("Байконурский комплекс", "Аренду продлили."),
    "capital": ("Форум в Астане", "В столице прошёл форум."),
    "kazakh": ("Ұшыру", "Байқоңырда ұшыру өтті."),
    "latin": ("Ushyru", "Baiqońyrda ushyru otti."),
    "other": ("Байкал", "На Байкале потеплело."),
}


@pytest.fixture
def worded(store_url: str) -> dict[str, str]:
    """Items whose words come in several forms, by key; returns their ids by key."""
    ids = {}
    store = open_store(store_url)
    try:
        for n, (key, (title, text)) in enumerate(TEXTS.items()):
            item = PressItem(
                url=f"https://zakon.kz/news/{key}",
                source="zakon",
                title=title,
                text=text,
                published_at=f"2019-11-18T1{n}:00:00+06:00",
                fetched_at="2019-11-18T20:00:00+06:00",
                lang="ru",
                content_hash=content_hash(text),
            ).to_dict()
            store.add_item(item)
            ids[key] = item["id"]
    finally:
        store.close()
    return ids


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("Байконур", {"genitive", "locative", "adjective"}),
        ("байконур", {"genitive", "locative", "adjective"}),
        ("Астана", {"capital"}),
        ("прошел форум", {"capital"}),
        ("Байқоңыр", {"kazakh", "latin"}),
    ],
)
def test_items_text_finds_inflected_forms(
    store_url: str, worded: dict[str, str], words: str, expected: set[str]
) -> None:
    done = presswatch("items", "--store", store_url, "--text", words, "--json")
    assert done.returncode == 0, done.stderr
    found = {json.loads(line)["id"] for line in done.stdout.splitlines()}
    assert found == {worded[key] for key in expected}


def test_items_text_limit_counts_matches(store_url: str, worded: dict[str, str]) -> None:
    done = presswatch("items", "--store", store_url, "--text", "Байконур", "--limit", "2", "--json")
    found = [json.loads(line)["id"] for line in done.stdout.splitlines()]
    assert found == [worded["adjective"], worded["locative"]]  # the newest two that match


def test_items_text_without_words_is_refused(store_url: str, worded: dict[str, str]) -> None:
    done = presswatch("items", "--store", store_url, "--text", "!!")
    assert done.returncode == 2
    assert "--text '!!' has no letter or digit" in done.stderr
    assert "Traceback" not in done.stderr
