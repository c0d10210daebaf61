"""`presswatch stories` and `presswatch story ID`: review stories, their originals and copies."""

from __future__ import annotations

import json
from contextlib import closing
from itertools import islice
from typing import Annotated

import typer
from rich.markup import escape

from scheduler.cli_support import JsonOption, StoreOption, app, console, fail, opened_store
from scheduler.story_view import (
    StoryView,
    count_stories,
    credit_counts,
    find_story,
    iter_stories,
    stories_table,
    timeline_table,
)


@app.command()
def stories(
    limit: Annotated[int, typer.Option(min=1, help="how many stories to show")] = 30,
    min_copies: Annotated[
        int, typer.Option(min=0, help="only stories with at least this many copies")
    ] = 0,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """List stories, newest first: the original, how many copies, which sources, first seen."""
    with opened_store(store) as st, closing(st.story_index()) as index:
        # One more than asked: whether there are more to say so.
        records = list(islice(iter_stories(index, min_copies), limit + 1))
        more = len(records) > limit
        records = records[:limit]
        if as_json:
            for record in records:
                print(json.dumps(record, ensure_ascii=False))
            return
        views = [StoryView.load(index, record) for record in records]
        total = count_stories(index, min_copies) if more else len(views)
    kind = "stories" + (f" with {min_copies}+ copies" if min_copies else "")
    shown = f"{len(views)} shown of {total} {kind}" if more else f"{total} {kind}"
    console.print(stories_table(views, title=f"{shown}, newest first"))
    if more:
        console.print(f"{total - len(views)} more: --limit {total} shows them all.")
    console.print("A story's timeline: presswatch story ID (a story id or any item id).")


@app.command()
def story(
    story_id: Annotated[str, typer.Argument(help="a story id, or the id of an item in it")],
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one story as a timeline of its original and copies.

    Each copy with its lag behind the original, its similarity to it and whom it credits
    with which phrase, or the unattributed flag. ID may be any item's id.
    """
    with opened_store(store) as st, closing(st.story_index()) as index:
        record = find_story(index, story_id)
        if record is None:
            fail(
                f"no story or item {story_id!r} is linked; `presswatch stories` lists story "
                "ids and `presswatch items` item ids"
            )
        if as_json:
            print(json.dumps(record, ensure_ascii=False))
            return
        view = StoryView.load(index, record)
    console.print(timeline_table(view))


@app.command()
def credits(
    since: Annotated[
        str | None, typer.Option(help="ISO time or date, inclusive (default: 7 days ago)")
    ] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per source: its copies in stories and how many credit no one (unattributed)."""
    from datetime import UTC, datetime, timedelta

    from pipelines.store.keys import parse_instant

    if since is None:
        start = datetime.now(UTC) - timedelta(days=7)
    else:
        try:
            start = parse_instant(since)
        except ValueError as exc:
            fail(f"--since: {exc}")
    with opened_store(store) as st, closing(st.story_index()) as index:
        counts = credit_counts(iter_stories(index, min_copies=1), start)
    if as_json:
        for source, credit in counts.items():
            row = {"source": source, "copies": credit.copies, "unattributed": credit.unattributed}
            print(json.dumps(row, ensure_ascii=False))
        return
    shown = since or "the last 7 days"
    if not counts:
        console.print(f"No copies published since {shown}.")
        return
    for source, credit in counts.items():
        console.print(
            f"{escape(source)}: {credit.copies} copies since {shown}, "
            f"{credit.unattributed} without credit",
            highlight=False,
        )
