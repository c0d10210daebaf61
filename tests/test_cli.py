"""The `presswatch` command: listing sources, refusing bad input without a traceback."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from scheduler.cli import app
from scheduler.export import csv_safe, write_csv

runner = CliRunner()


def test_sources_lists_the_bundled_file() -> None:
    result = runner.invoke(app, ["sources", "--json"])
    assert result.exit_code == 0, result.output
    assert '"name":"akorda"' in result.output


def test_a_broken_sources_file_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("sources:\n  - name: x\n    kind: blog\n", encoding="utf-8")
    result = runner.invoke(app, ["sources", "--sources", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:3: sources[0].kind" in result.output
    assert "Traceback" not in result.output


def test_a_pattern_re2_cannot_run_is_refused_before_crawling(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text(
        "sources:\n  - name: x\n    kind: media\n    domains: [x.kz]\n    discovery:\n"
        "      listings:\n        - url: https://x.kz/news/\n"
        "          link_pattern: '^https://x\\.kz/(\\w+)/\\1$'\n",
        encoding="utf-8",
    )
    presswatch = str(Path(sys.executable).with_name("presswatch"))
    done = subprocess.run(
        [presswatch, "crawl", "--sources", str(bad), "--store", f"sqlite:///{tmp_path}/pw.db"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()  # one line: RE2's own logging is off
    assert f"{bad}:8: sources[0].discovery.listings[0].link_pattern: a backreference" in line
    assert "cannot run in linear time" in line
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "pw.db").exists()


def test_an_unknown_store_scheme_is_refused() -> None:
    result = runner.invoke(app, ["items", "--store", "mongodb://x"])
    assert result.exit_code == 2
    assert "unknown store 'mongodb'" in result.output


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted() -> None:
    assert csv_safe('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert csv_safe("+7 701") == "'+7 701"
    assert csv_safe("@SUM(A1)") == "'@SUM(A1)"
    assert csv_safe("Минфин") == "Минфин"
    assert csv_safe(["a", "b"]) == "a; b"
    assert csv_safe(None) == ""


def test_csv_export_round_trips_cyrillic() -> None:
    out = io.StringIO()
    item = {"id": "1", "source": "zakon", "title": "-Минфин", "text": "текст, с запятой"}
    list(write_csv([item], out))
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert row["title"] == "'-Минфин"
    assert row["text"] == "текст, с запятой"


def test_crawl_problems_are_said_in_words() -> None:
    from scheduler.problems import crawl_problems

    stats = {
        "robotstxt/blocked_unreachable": 1,
        "retry/max_reached": 2,
        "downloader/exception_type_count/scrapy.exceptions.CannotResolveHostError": 4,
        "downloader/exception_type_count/scrapy.exceptions.IgnoreRequest": 1,
        "downloader/response_status_count/503": 3,
        "downloader/response_status_count/200": 9,
    }
    assert crawl_problems(stats) == [
        "robots.txt unreachable: nothing fetched",
        "2 gave up after retries",
        "4× CannotResolveHostError",
        "3× HTTP 503",
    ]
    assert crawl_problems({"downloader/response_status_count/200": 5}) == []


def test_link_groups_saved_items_into_stories(tmp_path: Path) -> None:
    import json

    release = "Премьер-министр провёл совещание по проекту Байтерек на Байконуре. " * 8
    items = [
        {
            "id": "a",
            "url": "https://primeminister.kz/ru/news/a-1",
            "title": "Совещание",
            "text": release,
            "published_at": "2019-07-09T16:40:00+06:00",
        },
        {
            "id": "b",
            "url": "https://www.caravan.kz/news/b",
            "title": "Совещание",
            "text": release + " Об этом сообщает Caravan.kz со ссылкой на пресс-службу "
            "премьер-министра РК.",
            "published_at": "2019-07-09T17:10:00+06:00",
        },
    ]
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in items), "utf-8")
    result = runner.invoke(app, ["link", str(path), "--json"])
    assert result.exit_code == 0, result.output
    (story,) = json.loads(result.output)["stories"]
    assert story["original"] == {"item": "a", "source": "primeminister.kz"}
    copy = next(m for m in story["members"] if m["item"] == "b")
    assert copy["role"] == "copy"
    assert copy["lag_seconds"] == 1800
    assert any(c["source"] == "primeminister.kz" for c in copy["cites"])


def test_a_bad_json_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "a", "title": "x", "text": "y"}\n{broken\n', encoding="utf-8")
    for command in ("match", "link"):
        result = runner.invoke(app, [command, str(path), "--json"])
        assert result.exit_code == 2
        assert f"{path}:2: not JSON" in result.output
        assert "Traceback" not in result.output
    missing = runner.invoke(app, ["link", str(tmp_path / "none.jsonl")])
    assert missing.exit_code == 2
    assert "cannot read" in missing.output
