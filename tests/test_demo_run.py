"""The README's main command end to end: `presswatch demo`, then review and export its store."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def presswatch(*args: str, cwd: Path, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    # The console script is `presswatch`; running the same typer app by module keeps the
    # test independent of PATH.
    env = {**os.environ, "COLUMNS": "200", "PRESSWATCH_STORE": f"sqlite:///{cwd}/demo.db"}
    return subprocess.run(
        [sys.executable, "-c", "from scheduler.cli import app; app()", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
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
