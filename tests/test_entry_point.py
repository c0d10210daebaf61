"""Every command of README.md and `presswatch --help`, run as a user runs it: the installed
`presswatch` script in a subprocess, against a local portal."""

from __future__ import annotations

import json
import re
import shlex
import signal
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from scheduler.replay import ReplayPortal, ReplayServer, generate_articles
from tests.entry_point import REPO, presswatch, start_presswatch
from tests.waiting import wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

README = (REPO / "README.md").read_text(encoding="utf-8")
README_COMMANDS = re.findall(r"^\| `presswatch (\w+)", README, flags=re.MULTILINE)
ARTICLES = 12
RULES = {
    "channels": {"console": "console://"},
    "rules": [{"name": "shymkent", "terms": ["Шымкент"], "channels": ["console"]}],
}


def no_traceback(done: Any) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReplayServer, Path]]:
    """A local portal and a sources.yaml that names it."""
    spec = ReplayPortal("vestnik", "Вестник", generate_articles(ARTICLES, seed=7), page_size=5)
    where = tmp_path_factory.mktemp("site")
    with ReplayServer([spec]) as server:
        sources = where / "sources.yaml"
        config = server.source_config("vestnik")
        sources.write_text(yaml.safe_dump({"sources": [config]}, allow_unicode=True), "utf-8")
        yield server, sources


@pytest.fixture(scope="module")
def crawled(
    site: tuple[ReplayServer, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A store filled by `presswatch crawl --allow-net`, and the files it used."""
    _, sources = site
    where = tmp_path_factory.mktemp("crawled")
    rules = where / "rules.yaml"
    rules.write_text(yaml.safe_dump(RULES, allow_unicode=True), "utf-8")
    env = {
        "PRESSWATCH_STORE": f"sqlite:///{where / 'pw.db'}",
        "PRESSWATCH_SOURCES": str(sources),
        "PRESSWATCH_RULES": str(rules),
    }
    done = presswatch("crawl", "--allow-net", "127.0.0.0/8", cwd=where, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"dir": where, "env": env, "rules": rules, "crawl": done}


def run_in(crawled: dict[str, Any], *args: str) -> Any:
    done = presswatch(*args, cwd=crawled["dir"], env=crawled["env"])
    no_traceback(done)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


# --- every command is there and says how it is used --------------------------------------


def test_the_readme_names_every_command_the_help_lists() -> None:
    done = presswatch("--help")
    assert done.returncode == 0, done.stderr
    listed = set(re.findall(r"^│ (\w+) ", done.stdout, flags=re.MULTILINE))
    assert listed == set(README_COMMANDS)


@pytest.mark.parametrize("command", README_COMMANDS)
def test_each_command_explains_itself(command: str) -> None:
    done = presswatch(command, "--help")
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert f"presswatch {command}" in done.stdout


# --- the review commands on a crawled store ---------------------------------------------


def test_crawl_stores_the_portal_and_alerts(crawled: dict[str, Any]) -> None:
    out = crawled["crawl"].stdout
    assert "vestnik" in out
    assert "finished" in out
    assert "[presswatch] shymkent" in out  # the console channel printed the alert


def test_crawl_without_allow_net_says_how_to_reach_a_local_portal(
    site: tuple[ReplayServer, Path], tmp_path: Path
) -> None:
    _, sources = site
    done = presswatch(
        "crawl", "--sources", str(sources), "--store", f"sqlite:///{tmp_path / 'pw.db'}",
        cwd=tmp_path,
    )  # fmt: skip
    no_traceback(done)
    assert done.returncode == 1
    assert "--allow-net" in done.stdout + done.stderr
    assert "crawl failed for vestnik" in done.stderr


def test_items_show_stories_story_alerts_status_sources(crawled: dict[str, Any]) -> None:
    items = [json.loads(line) for line in run_in(crawled, "items", "--json").stdout.splitlines()]
    assert len(items) == ARTICLES
    first = items[0]
    assert first["title"] in run_in(crawled, "show", first["id"]).stdout
    assert "12 shown of 12" in run_in(crawled, "items", "--limit", "50").stdout
    assert first["id"] in run_in(crawled, "story", first["id"]).stdout
    assert run_in(crawled, "stories").stdout.strip()
    assert "shymkent" in run_in(crawled, "alerts").stdout
    status = json.loads(run_in(crawled, "status", "--json").stdout)
    assert status["sources"][0]["last_run"]["status"] == "ok"
    assert "vestnik" in run_in(crawled, "sources").stdout


def test_export_then_link_and_match_the_export(crawled: dict[str, Any]) -> None:
    where = crawled["dir"]
    run_in(crawled, "export", "--format", "jsonl", "-o", str(where / "items.jsonl"), "--force")
    run_in(crawled, "export", "--format", "csv", "-o", str(where / "items.csv"), "--force")
    assert (where / "items.csv").read_text("utf-8").count("\n") > ARTICLES
    linked = json.loads(run_in(crawled, "link", str(where / "items.jsonl"), "--json").stdout)
    assert sum(len(story["members"]) for story in linked["stories"]) == ARTICLES
    matched = run_in(
        crawled, "match", "--rules", str(crawled["rules"]), str(where / "items.jsonl"), "--json"
    )
    results = [json.loads(line) for line in matched.stdout.splitlines()]
    assert len(results) == ARTICLES
    assert any(result["rules"] == ["shymkent"] for result in results)


def test_extract_reads_a_saved_page(site: tuple[ReplayServer, Path], tmp_path: Path) -> None:
    server, _ = site
    article = server.portals["vestnik"].articles[0]
    url = server.base_url("vestnik") + article.path
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our loopback portal
        (tmp_path / "page.html").write_bytes(response.read())
    done = presswatch("extract", str(tmp_path / "page.html"), "--url", url, "--json")
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["title"] == article.title


# --- demo --serve: the portals stay up and the printed command crawls them ---------------


def test_demo_serve_prints_a_crawl_command_that_works(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    server = start_presswatch("demo", "--serve", log=log, cwd=tmp_path)
    try:
        wait_for(lambda: "presswatch crawl " in log.read_text("utf-8"), "the printed commands")
        text = log.read_text("utf-8")
        command = next(line for line in text.splitlines() if "presswatch crawl " in line)
        assert "presswatch run " in text
        # the command exactly as printed, one source to keep it short
        args = shlex.split(command.strip())[1:]
        done = presswatch(*args, "zakon", cwd=tmp_path, timeout=120)
        no_traceback(done)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (tmp_path / "presswatch.db").exists()  # the default store, where it was run
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert "portals stopped" in log.read_text("utf-8")


def test_a_crawl_that_cannot_start_says_why_and_fails(
    site: tuple[ReplayServer, Path], tmp_path: Path
) -> None:
    _, sources = site
    done = presswatch(
        "crawl", "--sources", str(sources), "--store", f"sqlite:///{tmp_path / 'pw.db'}",
        "--allow-net", "127.0.0.0/8", "--set", "SYNDICATION_WINDOW_DAYS=-3", cwd=tmp_path,
    )  # fmt: skip
    no_traceback(done)
    assert done.returncode == 1
    assert "vestnik: SYNDICATION_WINDOW_DAYS must be a positive number of days" in done.stderr
