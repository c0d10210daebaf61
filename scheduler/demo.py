"""`presswatch demo`: serve the bundled corpus of real news on 127.0.0.1, crawl it, show the result.

The corpus (``scheduler/demo_corpus/``) is a day of Kazakh and Russian news with the stories
the portals share, plus one Prime Minister's press release and its copies; its README says
where every document came from. Loading, serving and crawling are separate steps so that
later parts of the demo (stories, alerts, the dashboard) can reuse the first ones.
"""

from __future__ import annotations

import gzip
import json
import logging
import shlex
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field
from rich.markup import escape
from rich.table import Table

from crawler.config import load_sources, load_yaml_model
from crawler.run import CrawlFailed, crawl_in_subprocess
from pipelines.store import DEFAULT_STORE_URL, ItemQuery, open_store
from pipelines.store.urls import redact_password, redact_url
from scheduler.display import display_zone, shown_time, time_header
from scheduler.replay import ReplayArticle, ReplayPortal, ReplayServer
from scheduler.story_view import (
    StoryView,
    copies,
    find_story,
    iter_stories,
    timeline_table,
    top_stories,
)

if TYPE_CHECKING:
    from rich.console import Console

    from crawler.config import Source

log = logging.getLogger(__name__)

CORPUS_DIR = Path(__file__).with_name("demo_corpus")
PORTALS_FILE = CORPUS_DIR / "portals.yaml"
ARTICLES_FILE = CORPUS_DIR / "articles.jsonl.gz"
STORIES_FILE = CORPUS_DIR / "stories.json"

# What the demo crawl may do that a real crawl may not: reach loopback, and go fast
# (the replay server is ours, so politeness delays would only slow the demo down).
DEMO_CRAWL_SETTINGS: dict[str, Any] = {
    "EGRESS_ALLOW_NETS": ["127.0.0.0/8"],
    "AUTOTHROTTLE_ENABLED": False,
    "DOWNLOAD_DELAY": 0.02,  # above 0 so that the per-host limit still holds (settings.py)
    "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
    "RETRY_BACKOFF_BASE": 0.1,
    "DOWNLOAD_TIMEOUT": 10,
    "CLOSESPIDER_TIMEOUT": 50,
}
CRAWL_TIMEOUT = 120  # seconds; the crawl itself stops at CLOSESPIDER_TIMEOUT
SHOWCASE_TERM = "Байконур"  # what the alerts part of the demo will watch
TOP_STORIES = 4  # stories shown beside the showcase's, the most copies first
TITLE_WIDTH = 60  # characters of the newest title shown per source, one line in most terminals


class DemoError(RuntimeError):
    """The demo could not run to the end; the message says which step failed and why."""


class DemoPortal(BaseModel):
    """One portal of the demo: a source's identity plus the discovery path the demo uses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    title: str
    kind: Literal["official", "agency", "media"]
    domains: list[str] = Field(min_length=1)
    languages: list[Literal["ru", "kk", "en"]] = Field(default_factory=lambda: ["ru"])
    timezone: str = "Asia/Almaty"
    aliases: list[str] = Field(default_factory=list)
    discovery: Literal["rss", "atom", "sitemap", "listing"]
    render: Literal["http", "browser"] = "http"  # browser: its pages are filled by scripts
    constructed: bool = False  # invented for the demo, not a real outlet

    def owns(self, host: str) -> bool:
        host = host.lower()
        return any(host == d or host.endswith("." + d) for d in self.domains)


class DemoPortalsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    portals: list[DemoPortal]


@dataclass
class DemoResult:
    """What one demo run did: per-source crawl stats and how many items each source has."""

    store_url: str
    stats: dict[str, dict[str, Any]]
    items: dict[str, int]
    seconds: float
    showcase: list[dict[str, Any]]  # items that mention SHOWCASE_TERM, newest first
    stories: list[dict[str, Any]] = field(default_factory=list)  # the story records shown
    alerts: int = 0  # alerts the bundled rules raised

    @property
    def total_items(self) -> int:
        return sum(self.items.values())


# --- the corpus ---------------------------------------------------------------------------


@cache
def load_portals(path: Path = PORTALS_FILE) -> tuple[DemoPortal, ...]:
    return tuple(load_yaml_model(path, DemoPortalsFile).portals)


def load_articles(path: Path = ARTICLES_FILE) -> list[dict[str, Any]]:
    """The corpus articles as stored: one dict per article (see the corpus README)."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def load_stories(path: Path = STORIES_FILE) -> dict[str, dict[str, Any]]:
    """Verified story groups: ``{story id: {"note": ..., "members": [article ids]}}``."""
    return json.loads(path.read_text(encoding="utf-8"))["stories"]


def replay_article(article: dict[str, Any], portal: DemoPortal) -> ReplayArticle:
    """The replay page of a corpus article; only links that leave the portal are kept, since
    the replay server shows them as the article's sources."""
    outbound = [u for u in article["links"] if not portal.owns(urlsplit(u).hostname or "")]
    return ReplayArticle(
        slug=article["slug"],
        title=article["title"],
        text="\n\n".join(article["paragraphs"]),
        published_at=article["published_at"],
        lang=article["lang"],
        lead=article["lead"],
        authors=list(article["authors"]),
        links=outbound,
        section=article["section"],
    )


def load_corpus() -> list[ReplayPortal]:
    """Every demo portal with its articles, ready for a `ReplayServer`."""
    by_portal: dict[str, list[dict[str, Any]]] = {}
    for article in load_articles():
        by_portal.setdefault(article["portal"], []).append(article)
    portals = []
    for spec in load_portals():
        articles = [replay_article(a, spec) for a in by_portal.pop(spec.name, [])]
        feed = spec.discovery if spec.discovery in ("rss", "atom") else None
        portals.append(
            ReplayPortal(
                name=spec.name, title=spec.title, articles=articles, feed=feed, render=spec.render
            )
        )
    if by_portal:
        msg = f"{ARTICLES_FILE}: portals missing from {PORTALS_FILE}: {sorted(by_portal)}"
        raise ValueError(msg)
    return portals


# --- sources ------------------------------------------------------------------------------

_DISCOVERY_KEY = {"rss": "feeds", "atom": "feeds", "sitemap": "sitemaps", "listing": "listings"}


def demo_sources(server: ReplayServer) -> list[dict[str, Any]]:
    """A sources.yaml entry per demo portal: the portal's real identity (kind, domains,
    aliases) and one way into the local replay of it."""
    entries = []
    for spec in load_portals():
        served = server.source_config(spec.name)
        key = _DISCOVERY_KEY[spec.discovery]
        entries.append(
            {
                **served,
                "title": spec.title,
                "kind": spec.kind,
                # the real domains, as attribution links name them; the spider accepts the
                # replay's own host because the discovery URLs are on it
                "domains": list(spec.domains),
                "languages": list(spec.languages),
                "timezone": spec.timezone,
                "aliases": list(spec.aliases),
                "discovery": {key: served["discovery"][key]},
            }
        )
    return entries


def write_sources_file(entries: list[dict[str, Any]], path: Path) -> list[Source]:
    """Write `entries` as a sources.yaml and read it back through the real validation."""
    path.write_text(
        yaml.safe_dump({"sources": entries}, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return load_sources(path)


# --- running ------------------------------------------------------------------------------


@contextmanager
def serving(portals: list[ReplayPortal]) -> Iterator[tuple[ReplayServer, list[Source], Path]]:
    """Serve `portals` and yield the server, its sources and their sources.yaml path."""
    with (
        ReplayServer(portals) as server,
        tempfile.TemporaryDirectory(prefix="presswatch-demo-") as tmp,
    ):
        path = Path(tmp) / "sources.yaml"
        yield server, write_sources_file(demo_sources(server), path), path


def run_demo(store_url: str, console: Console) -> DemoResult:
    """Crawl the replayed corpus into `store_url`, then print what each source gave and the
    stories the crawl linked (one step each).

    The crawl runs in a child process (``crawler.run``): a Twisted reactor cannot start
    twice in one process, and the caller (a test, a long-lived CLI session) may need to
    run the demo again.
    """
    started = time.monotonic()
    sources, stats = crawl_corpus(store_url, console)
    without_browser = say_what_lacked_a_browser(sources, stats, console)
    result = read_collected(store_url, sources, stats, started, console)
    result.stories = show_stories(store_url, result.showcase, console)
    result.alerts = raise_alerts(store_url, console)
    result.seconds = time.monotonic() - started
    console.print(closing_line(result))
    if without_browser:
        say_what_lacked_a_browser(sources, stats, console)  # again, where it is seen last
    return result


def closing_line(result: DemoResult) -> str:
    """What the demo did and what to run next; the store URL shown without its password."""
    return (
        f"{result.total_items} items in {redact_url(result.store_url)} after "
        f"{result.seconds:.1f} s. Next: presswatch items, presswatch show ID, "
        "presswatch stories --min-copies 1, presswatch story ID, presswatch alerts."
    )


def say_what_lacked_a_browser(
    sources: list[Source], stats: dict[str, Any], console: Console
) -> list[str]:
    """Say plainly which portals went uncrawled for want of Chromium, and how to get it;
    their names. Without them the showcase story lacks its official original."""
    from crawler.browser import FIX, UNAVAILABLE

    lacking = [s.name for s in sources if stats.get(s.name, {}).get("finish_reason") == UNAVAILABLE]
    if lacking:
        console.print(
            f"[bold yellow]Not crawled: {', '.join(lacking)}[/bold yellow], rendered by"
            f" JavaScript, needs Chromium, which could not be started here. To get it: {FIX}."
            " `make demo` installs it on Debian when run as root. Until then the stories lack"
            " what those portals published.",
            soft_wrap=True,
        )
    return lacking


def crawl_corpus(store_url: str, console: Console) -> tuple[list[Source], dict[str, Any]]:
    """Serve the corpus and crawl it into `store_url`; the crawl links stories as it goes
    (`pipelines.syndication`). Returns the sources and each one's crawl stats."""
    portals = load_corpus()
    with serving(portals) as (_server, sources, path):
        console.print(
            f"Serving {sum(len(p.articles) for p in portals)} articles of {len(portals)} "
            "portals on 127.0.0.1 and crawling them ..."
        )
        try:
            stats = crawl_in_subprocess(
                [s.name for s in sources],
                store_url,
                sources_file=path,
                settings={**DEMO_CRAWL_SETTINGS, "LOG_LEVEL": "WARNING"},
                timeout=CRAWL_TIMEOUT,
            )
        except CrawlFailed as exc:
            raise DemoError(redact_password(f"crawling the replay: {exc}", store_url)) from None
    return sources, stats


def serve_demo(store_url: str, console: Console, stop: threading.Event) -> None:
    """Serve the corpus until `stop` is set, and print the commands that crawl it, so the
    service (`presswatch run`) can be tried against the local portals."""
    portals = load_corpus()
    with serving(portals) as (server, sources, path):
        hosts = sorted({urlsplit(server.base_url(p.name)).netloc for p in portals})
        common = f"--sources {shlex.quote(str(path))} --allow-net 127.0.0.0/8"
        store = _store_argument(store_url)
        console.print(
            f"Serving {sum(len(p.articles) for p in portals)} articles of {len(sources)} "
            f"portals on {hosts[0]} ... {hosts[-1]}; their sources file is {path}.\n"
            "Crawl them once:\n"
            f"  presswatch crawl {common}{store}\n"
            "or run the service against them (Ctrl-C or SIGTERM stops it):\n"
            f"  presswatch run {common}{store}\n"
            "The portals stay up until this command is stopped (Ctrl-C or SIGTERM).",
            highlight=False,
            soft_wrap=True,
        )
        stop.wait()
    console.print("portals stopped")


def _store_argument(store_url: str) -> str:
    """`` --store URL`` for a printed command; a URL with a password is left to the
    environment, so the password is never printed."""
    if store_url == DEFAULT_STORE_URL:
        return ""
    if urlsplit(store_url).password:
        return ' --store "$PRESSWATCH_STORE"'
    return f" --store {shlex.quote(store_url)}"


def read_collected(
    store_url: str,
    sources: list[Source],
    stats: dict[str, Any],
    started: float,
    console: Console,
) -> DemoResult:
    """Print what each source gave and the items that mention `SHOWCASE_TERM`."""
    store = open_store(store_url)
    try:
        items = {s.name: store.count_items(s.name) for s in sources}
        newest = {s.name: store.items(ItemQuery(source=s.name, limit=1)) for s in sources}
        showcase = store.items(ItemQuery(text=SHOWCASE_TERM, limit=10))
    finally:
        store.close()
    result = DemoResult(store_url, stats, items, time.monotonic() - started, showcase)
    console.print(summary_table(sources, result, newest))
    console.print(showcase_table(result.showcase))
    return result


def raise_alerts(store_url: str, console: Console) -> int:
    """Run the alert job once with the bundled rules, whose console channel prints each
    alert (as `presswatch crawl` does after its crawl); returns how many it raised."""
    from scheduler.alerts import run_alert_job
    from scheduler.rules import load_rules

    console.rule("Alerts of the bundled rules (scheduler/rules.yaml)")
    store = open_store(store_url)
    try:
        done = run_alert_job(store, load_rules(None))
    finally:
        store.close()
    console.print(
        f"{done.created} alerts raised over {done.stories} stories;"
        f" {done.delivery.sent} messages sent, {done.delivery.failed} failed."
    )
    return done.created


def show_stories(
    store_url: str, showcase: list[dict[str, Any]], console: Console
) -> list[dict[str, Any]]:
    """Print the stories of the showcase items, then the stories with the most copies, each
    as a timeline (original, copies, lag, attribution). Returns the records printed."""
    store = open_store(store_url)
    try:
        with closing(store.story_index()) as index:
            chosen: dict[str, dict[str, Any]] = {}
            for item in showcase:
                record = find_story(index, item["id"])
                if record is not None and copies(record):
                    chosen.setdefault(record["id"], record)
            for record in top_stories(index, TOP_STORIES):
                chosen.setdefault(record["id"], record)
            views = [StoryView.load(index, record) for record in chosen.values()]
            linked = list(iter_stories(index))
    finally:
        store.close()
    shared = [r for r in linked if len(r["members"]) > 1]
    unattributed = sum(m["unattributed"] for r in shared for m in r["members"])
    console.print(
        f"\n[bold]Stories[/bold]: {len(linked)}, of which {len(shared)} carried by several "
        f"portals; copies that credit no one: {unattributed}."
    )
    for view in views:
        console.print(timeline_table(view))
    return [view.record for view in views]


def summary_table(
    sources: list[Source], result: DemoResult, newest: dict[str, list[dict[str, Any]]]
) -> Table:
    table = Table(title="Collected per source")
    # the short columns keep their width, so a narrow terminal wraps the titles instead
    table.add_column("source", no_wrap=True, min_width=max(len(s.name) for s in sources))
    table.add_column("kind", no_wrap=True, min_width=8)
    table.add_column("discovery", no_wrap=True, min_width=9)
    table.add_column("new", no_wrap=True, justify="right")
    table.add_column("items", no_wrap=True, justify="right")
    table.add_column("newest title", no_wrap=True, overflow="ellipsis")
    for source in sources:
        way = next(k for k in ("feeds", "sitemaps", "listings") if getattr(source.discovery, k))
        latest = newest.get(source.name) or [{}]
        table.add_row(
            source.name,
            source.kind,
            way,
            str(result.stats.get(source.name, {}).get("store/new", 0)),
            str(result.items.get(source.name, 0)),
            textwrap.shorten(latest[0].get("title", "—"), TITLE_WIDTH, placeholder=" …"),
        )
    return table


def showcase_table(items: list[dict[str, Any]]) -> Table:
    zone = display_zone()
    table = Table(title=f"Items that mention «{SHOWCASE_TERM}»")
    table.add_column(time_header("published", zone), no_wrap=True, min_width=16)
    table.add_column(
        "source", no_wrap=True, min_width=max((len(i["source"]) for i in items), default=6)
    )
    table.add_column("title")
    for item in items:
        when = shown_time(item.get("published_at"), zone, missing="?")
        table.add_row(when, escape(item["source"]), escape(item["title"]))
    return table
