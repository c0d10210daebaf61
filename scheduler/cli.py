"""The `presswatch` command: crawl, review, export and try out parsing on saved pages."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from crawler.config import find_source
from scheduler.cli_alerts import alert_after_crawl
from scheduler.cli_support import (
    AllowNetOption,
    JsonOption,
    RulesOption,
    SettingOption,
    SourcesOption,
    StoreOption,
    app,
    configured_sources,
    console,
    crawl_settings_from,
    errors,
    fail,
    opened_store,
    refusing_bad_input,
)
from scheduler.display import (
    NARROW,
    SOURCE_WIDTH,
    compact_table,
    display_zone,
    id_width,
    shown_time,
    time_header,
)
from scheduler.problems import crawl_problems


@app.command()
def sources(sources_file: SourcesOption = None, as_json: JsonOption = False) -> None:
    """List the configured sources (a broken file is refused with file, line and field)."""
    configured = configured_sources(sources_file)
    if as_json:
        for source in configured:
            print(source.model_dump_json())
        return
    table = compact_table(f"{len(configured)} sources", expand=True)
    for column in ("name", "kind", "render", "poll", "checked", "lang"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=SOURCE_WIDTH)
    # Domains over the ways to discover articles: both wrap, as lists of words.
    table.add_column("domains · discovery", ratio=1)
    for s in configured:
        ways = [f"{len(v)} {k}" for k, v in s.discovery.model_dump().items() if v]
        name = escape(s.name)
        table.add_row(
            name if s.enabled else f"[dim]{name} (off)[/dim]",
            s.kind,
            s.render,
            s.poll,
            "yes" if s.verified else "[yellow]no[/yellow]",
            ",".join(s.languages),
            f"{escape(', '.join(s.domains))}\n[dim]{escape(', '.join(ways))}[/dim]",
        )
    console.print(table)


def _print_crawl_summary(stats: dict[str, dict[str, Any]]) -> None:
    table = Table(title="crawl")
    for column in ("source", "status", "requests", "new items", "duplicates", "problems"):
        table.add_column(column)
    for name, st in stats.items():
        table.add_row(
            name,
            str(st.get("finish_reason", "?")),
            str(st.get("downloader/request_count", 0)),
            str(st.get("store/new", 0)),
            str(st.get("dedup/url", 0) + st.get("dedup/text", 0)),
            "; ".join(crawl_problems(st)) or "none",
        )
    console.print(table)


@app.command()
def crawl(
    names: Annotated[
        list[str] | None, typer.Argument(help="sources to crawl (default: all)")
    ] = None,
    store: StoreOption = None,
    sources_file: SourcesOption = None,
    rules_file: RulesOption = None,
    now: Annotated[
        bool,
        typer.Option(
            "--now", help="one crawl per source through the service's job, each run recorded"
        ),
    ] = False,
    settings: SettingOption = None,
    allow_nets: AllowNetOption = None,
) -> None:
    """Crawl sources once into the store, then raise the alerts the new items call for."""
    from crawler.run import CrawlFailed, crawl_in_subprocess
    from pipelines.store import open_store, store_url_from_env
    from pipelines.store.base import StoreError
    from pipelines.store.urls import redact_password
    from scheduler.runs import run_record

    configured = configured_sources(sources_file)
    with refusing_bad_input():
        chosen = [find_source(configured, n) for n in names] if names else configured
    chosen = [s for s in chosen if s.enabled]
    if not chosen:
        fail("nothing to crawl", 1)
    overrides = crawl_settings_from(settings, allow_nets)
    with opened_store(store, create=True):
        pass  # a wrong --store fails now, before any fetching, not after the crawl
    if now:
        from scheduler.jobs import crawl_source

        with refusing_bad_input():
            runs = [
                crawl_source(
                    s.name,
                    str(sources_file) if sources_file else None,
                    settings=overrides,
                    store_url=store or store_url_from_env(),
                )
                for s in chosen
            ]
        _print_crawl_summary({run["source"]: run["stats"] for run in runs})
        with opened_store(store, create=True) as st:
            alert_after_crawl(st, rules_file)
    else:
        try:
            stats = crawl_in_subprocess(
                [s.name for s in chosen],
                store or store_url_from_env(),
                sources_file=sources_file,
                settings=overrides,
            )
        except CrawlFailed as exc:
            if exc.stats is None:
                # the crawl's own log lines may quote the store URL it was given
                fail(redact_password(str(exc), store or store_url_from_env()), 1)
            # the store refused the items: record the runs if it takes that much, then say why
            with contextlib.suppress(StoreError):
                st = open_store(store or store_url_from_env())
                try:
                    for name, source_stats in exc.stats.items():
                        st.add_run({**run_record(name, source_stats), "error": str(exc)})
                finally:
                    st.close()
            _print_crawl_summary(exc.stats)
            fail(redact_password(str(exc), store or store_url_from_env()), 1)
        runs = [run_record(name, source_stats) for name, source_stats in stats.items()]
        with opened_store(store, create=True) as st, refusing_bad_input():
            for run in runs:
                st.add_run(run)
            _print_crawl_summary(stats)
            alert_after_crawl(st, rules_file)
    failed = [
        f"{run['source']}: {run.get('error') or '; '.join(run['problems']) or 'did not finish'}"
        for run in runs
        if run["status"] == "failed"
    ]
    if failed:
        message = "crawl failed for " + "; ".join(failed)
        fail(redact_password(message, store or store_url_from_env()), 1)


@app.command()
def demo(
    store: StoreOption = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="only serve the replay portals, until stopped, and print the `presswatch"
            " crawl` and `presswatch run` commands that crawl them",
        ),
    ] = False,
) -> None:
    """Serve a bundled replay of real news on 127.0.0.1, crawl it and show what was collected."""
    from pipelines.store import store_url_from_env
    from scheduler.demo import DemoError, run_demo, serve_demo

    store_url = store or store_url_from_env()
    with opened_store(store_url, create=True):
        pass  # a wrong --store fails now, not after the portals were served and crawled
    if serve:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda _signum, _frame: stop.set())
        serve_demo(store_url, console, stop)
        return
    try:
        with refusing_bad_input():
            run_demo(store_url, console)
    except DemoError as exc:
        fail(str(exc), 1, label="demo failed")


def _item_query(**filters: Any) -> Any:
    """The store query of `items` and `export`; a bad --since or --until stops with exit 2
    (checked before the store is opened, so the message is about the option)."""
    from pipelines.store import ItemQuery
    from pipelines.store.keys import parse_instant

    for option in ("since", "until"):
        value = filters.get(option)
        if value is None:
            continue
        try:
            parse_instant(value)
        except ValueError:
            fail(
                f"--{option} {value!r} is not an ISO 8601 date or time"
                " (e.g. 2024-05-01, 2024-05-01T09:30 or 2024-05-01T09:30:00+05:00)"
            )
    return ItemQuery(**filters)


@app.command()
def items(
    source: Annotated[str | None, typer.Option(help="only this source")] = None,
    since: Annotated[str | None, typer.Option(help="ISO time or date, inclusive")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time or date, exclusive")] = None,
    lang: Annotated[str | None, typer.Option(help="ru, kk or en")] = None,
    text: Annotated[
        str | None, typer.Option(help="words in the title or text, in any inflected form")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 30,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """List collected items, newest first; --text finds words as rules do (inflected forms,
    ё/е, Kazakh Latin spellings)."""
    search = None
    if text is not None:
        from scheduler.matcher import text_search

        with refusing_bad_input():
            search = text_search(text)
    query = _item_query(
        source=source,
        since=since,
        until=until,
        lang=lang,
        keep=search,
        word_prefixes=search.prefixes if search else (),
        limit=limit,
    )
    with opened_store(store) as st:
        found = st.items(query)
        total = st.count_items(source)
    if as_json:
        for item in found:
            print(json.dumps(item, ensure_ascii=False))
        return
    filtered = any(v is not None for v in (since, until, lang, text))
    shown = f"{len(found)} {'matching' if filtered else 'shown'} of {total} items"
    if len(found) == limit:
        shown += "; --limit N for more"
    zone = display_zone()
    wide = console.width >= NARROW
    table = compact_table(shown, expand=True)
    # Fixed widths for the short columns; the title takes the rest, one line an item
    # (`presswatch show ID` gives the whole title).
    table.add_column("id", no_wrap=True, width=id_width(i["id"] for i in found))
    table.add_column(time_header("published", zone), no_wrap=True, width=16)
    source_width = min(SOURCE_WIDTH, max((len(i["source"]) for i in found), default=6))
    table.add_column("source", no_wrap=True, overflow="ellipsis", width=max(source_width, 6))
    if wide:
        table.add_column("lang", no_wrap=True, width=4)
    table.add_column("title", no_wrap=True, overflow="ellipsis", ratio=1)
    for item in found:
        table.add_row(
            item["id"],
            shown_time(item.get("published_at") or item.get("fetched_at"), zone),
            escape(item["source"]),
            *([item.get("lang") or ""] if wide else []),
            escape(item.get("title") or ""),
        )
    console.print(table)


@app.command()
def show(item_id: str, store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Show one item in full."""
    with opened_store(store) as st:
        item = st.get_item(item_id)
    if item is None:
        fail(f"no item {item_id!r}; `presswatch items` lists their ids", 1)
    if as_json:
        print(json.dumps(item, ensure_ascii=False, indent=2))
        return
    zone = display_zone()
    published = shown_time(item.get("published_at"), zone, missing="no date")
    console.print(f"[bold]{item['title']}[/bold]")
    console.print(f"{item['source']} · {published} ({zone.key}) · {item.get('lang') or '?'}")
    console.print(item["url"], style="blue", highlight=False)
    if item.get("authors"):
        console.print("by " + ", ".join(item["authors"]))
    if item.get("flags"):
        console.print("[yellow]flags:[/yellow] " + ", ".join(item["flags"]))
    console.print()
    console.print(item["text"], highlight=False, markup=False)


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file (default: stdout)")
    ] = None,
    source: Annotated[str | None, typer.Option(help="only this source")] = None,
    since: Annotated[str | None, typer.Option(help="ISO time or date, inclusive")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time or date, exclusive")] = None,
    store: StoreOption = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing --output")] = False,
) -> None:
    """Export items with their story provenance, as JSON lines or formula-safe CSV.

    Provenance: story id, role (original or copy), the original's URL and source, whom the
    item credits and with which phrase, the unattributed flag and the lag in seconds.
    """
    from contextlib import closing
    from dataclasses import replace

    from rich.progress import Progress

    from scheduler.export import WRITERS, with_provenance

    if fmt not in WRITERS:
        fail(f"--format must be one of {', '.join(WRITERS)}, not {fmt!r}")
    if output and output.exists() and not force:
        fail(f"{output} exists; choose another --output or add --force to replace it")
    query = _item_query(source=source, since=since, until=until)
    with opened_store(store) as st:
        total = st.count_items(source)
        found = st.items(replace(query, limit=max(total, 1)))
        out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            with Progress(console=errors, transient=True, disable=output is None) as progress:
                task = progress.add_task("exporting", total=len(found))
                with closing(st.story_index()) as index:
                    for _ in WRITERS[fmt](with_provenance(found, index), out):
                        progress.advance(task)
        finally:
            if output:
                out.close()
    if output:
        errors.print(f"{len(found)} items written to {output}")


@app.command()
def extract(
    files: Annotated[list[Path], typer.Argument(help="saved pages, plain or .gz", exists=True)],
    url: Annotated[str | None, typer.Option(help="the page's URL (one file only)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show what the parser makes of saved pages: one JSON line per file with --json."""
    from crawler.extract import extract_file

    if url and len(files) > 1:
        fail("--url goes with a single file")
    for path in files:
        with refusing_bad_input():
            result = extract_file(path, url=url)
        if as_json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            console.print(f"[bold]{result['title']}[/bold]  [dim]{path}[/dim]")
            console.print(
                f"{result.get('published_at') or 'no date'} · {result.get('lang') or '?'}"
                f" · {', '.join(result.get('authors') or []) or 'no author'}"
            )
            console.print(result["text"], highlight=False, markup=False)
            console.print()


@app.command()
def match(
    items_file: Annotated[Path, typer.Argument(help="JSON lines of items (an export will do)")],
    rules_file: RulesOption = None,
    as_json: JsonOption = False,
) -> None:
    """Dry-run keyword rules on saved items: which rules each item fires, with spans."""
    from scheduler.item_lines import read_items
    from scheduler.matcher import compile_rules, match_item
    from scheduler.rules import load_rules

    with refusing_bad_input():
        compiled = compile_rules(load_rules(rules_file, resolve_secrets=False).rules)
        # Streamed: one item in memory at a time, so the file's size is not bounded.
        for item in read_items(items_file):
            result = match_item(compiled, item)
            if as_json:
                print(json.dumps(result, ensure_ascii=False))
            elif result["rules"]:
                terms = ", ".join(sorted({m["text"] for m in result["matches"]}))
                console.print(f"{result['item']}: {', '.join(result['rules'])} ({terms})")


@app.command()
def link(
    items_file: Annotated[Path, typer.Argument(help="JSON lines {id, url, title, text, ...}")],
    sources_file: SourcesOption = None,
    as_json: JsonOption = False,
) -> None:
    """Group saved items into stories offline: originals, copies, who they cite, lags."""
    from crawler.config import load_sources_file
    from pipelines.organisations import directory
    from pipelines.stories import link_items
    from scheduler.item_lines import MAX_FILE_BYTES, read_items

    with refusing_bad_input():
        configured = load_sources_file(sources_file)
        # Every item is held at once, so the whole file is bounded.
        items = list(read_items(items_file, max_file_bytes=MAX_FILE_BYTES))
    result = link_items(items, configured.sources, directory(configured.organisations))
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    for story in result["stories"]:
        if len(story["members"]) < 2:
            continue
        original = story["original"]
        console.print(
            f"[bold]story {story['id']}[/bold] original: {original['item'] or '-'}"
            f" ({original['source'] or 'unknown source'})"
        )
        for member in story["members"]:
            if member["role"] == "original":
                continue
            credit = "; ".join(c["phrase"] for c in member["cites"])
            if member["unattributed"]:
                credit = "[red]unattributed[/red]"
            lag = member["lag_seconds"]
            lag_text = f"+{lag / 60:.0f} min" if lag is not None else "lag unknown"
            console.print(f"  {member['item']}  {lag_text}  {credit or 'cites no one'}")


# Commands that live beside their subject register themselves on `app` when imported.
from scheduler import cli_alerts, cli_service, cli_stories, cli_web  # noqa: E402, F401 -- registers commands
