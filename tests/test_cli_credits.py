"""`presswatch credits` (copies per source and how many credit no one) and `presswatch link`
resolving a sources file's own organisations, through the installed entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.stories_data import AQSU, BAIKONUR
from tests.test_cli_stories import fill_store

PRESSWATCH = str(Path(sys.executable).with_name("presswatch"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRESSWATCH, *args], capture_output=True, text=True, check=False)


def test_credits_per_source(store_url: str) -> None:
    fill_store(store_url, BAIKONUR)
    done = run("credits", "--since", "2019-01-01", "--store", store_url, "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    aqsu = AQSU.split("/")[0]
    # the uncredited copy's source first; the copies that credit the PM's office after it
    assert rows[0] == {"source": aqsu, "copies": 1, "unattributed": 1}
    assert {row["source"]: row["unattributed"] for row in rows[1:]} == {"caravan": 0, "steppe": 0}
    shown = run("credits", "--since", "2019-01-01", "--store", store_url)
    assert f"{aqsu}: 1 copies since 2019-01-01, 1 without credit" in shown.stdout
    # nothing published in the last week of a 2019 corpus
    recent = run("credits", "--store", store_url)
    assert recent.returncode == 0
    assert "No copies published since the last 7 days." in recent.stdout


def test_credits_refuses_a_bad_time(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    done = run("credits", "--since", "last week", "--store", f"sqlite:///{tmp_path}/store/pw.db")
    assert done.returncode == 2
    assert "--since: not an ISO 8601 time: 'last week'" in done.stderr
    assert "Traceback" not in done.stderr


def test_link_resolves_the_organisations_of_the_sources_file(tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        "  - name: caravan\n    kind: media\n    domains: [caravan.kz]\n"
        "    discovery: {feeds: ['https://caravan.kz/rss']}\n"
        "organisations:\n"
        "  - id: gres\n    kind: official\n    names: {ru: Экибастузская ГРЭС-1}\n"
        "    domain: gres1.kz\n",
        encoding="utf-8",
    )
    items = tmp_path / "items.jsonl"
    text = "Энергоблок запущен, сообщили в Экибастузской ГРЭС-1."
    item = {"id": "c1", "url": "https://caravan.kz/news/1", "title": "Блок", "text": text}
    items.write_text(json.dumps(item, ensure_ascii=False) + "\n", encoding="utf-8")
    done = run("link", str(items), "--sources", str(sources), "--json")
    assert done.returncode == 0, done.stderr
    (story,) = json.loads(done.stdout)["stories"]
    cited = [cite["source"] for cite in story["members"][0]["cites"]]
    assert cited == ["gres1.kz"]
    # the body the copy credits is the original, not collected, named by its domain
    assert story["original"] == {"item": None, "source": "gres1.kz"}


def test_link_refuses_a_bad_organisation_with_its_line(tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        "  - name: caravan\n    kind: media\n    domains: [caravan.kz]\n"
        "    discovery: {feeds: ['https://caravan.kz/rss']}\n"
        "organisations:\n"
        "  - {id: gres, kind: plant, names: {ru: ГРЭС}, domain: gres1.kz}\n",
        encoding="utf-8",
    )
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "a", "url": "https://caravan.kz/1", "text": "x"}\n', encoding="utf-8")
    done = run("link", str(items), "--sources", str(sources))
    assert done.returncode == 2
    assert f"{sources}:7: organisations[0].kind" in done.stderr
    assert "Traceback" not in done.stderr
