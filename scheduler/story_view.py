"""Stories as people read them: lags in words, story lists and timelines, from a story index.

Story records (`pipelines.stories.Story.to_dict`) hold item ids only; titles and URLs come
from the index's item summaries, fetched in one round trip per view. The CLI
(`presswatch stories`, `presswatch story ID`) and the demo print these tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from pipelines.store.keys import parse_instant
from pipelines.story_index import story_first_seen
from scheduler.display import compact_table, display_zone, id_width, shown_time, time_header

if TYPE_CHECKING:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from pipelines.story_index import ItemSummary, StoryIndex

PAGE = 200  # story records read per round trip when a view pages through the index
MINUTE, HOUR, DAY = 60, 3600, 86400


def human_lag(seconds: float | None) -> str:
    """A lag behind the original in words: "+38 min", "+2 h 05 min", "+3 d 4 h", "-5 min";
    "?" when unknown (an external original, or a member without a time)."""
    if seconds is None:
        return "?"
    sign = "-" if seconds < 0 else "+"
    whole = round(abs(seconds))
    if whole < MINUTE:
        return f"{sign}{whole} s"
    if whole < HOUR:
        return f"{sign}{whole // MINUTE} min"
    if whole < DAY:
        return f"{sign}{whole // HOUR} h {whole % HOUR // MINUTE:02d} min"
    return f"{sign}{whole // DAY} d {whole % DAY // HOUR} h"


def copies(record: dict[str, Any]) -> int:
    """How many members of the story are copies (every member but an item original)."""
    return sum(member["role"] == "copy" for member in record["members"])


def first_seen(record: dict[str, Any], zone: ZoneInfo | None = None) -> str:
    """The story's earliest member time in the display zone (``2019-11-18 17:50``), or "?"
    when no member has one."""
    dated = [m["published_at"] for m in record["members"] if m.get("published_at")]
    return shown_time(min(dated, key=parse_instant), zone) if dated else "?"


def find_story(index: StoryIndex, story_or_item_id: str) -> dict[str, Any] | None:
    """The story record with this id (followed through merges), or the record of the story
    the item with this id is in, or None."""
    record = index.get_story(story_or_item_id)
    if record is not None:
        return record
    story_id = index.story_of(story_or_item_id)
    return index.get_story(story_id) if story_id is not None else None


def iter_stories(index: StoryIndex, min_copies: int = 0) -> Iterator[dict[str, Any]]:
    """Every story record with at least `min_copies` copies, newest first (paged)."""
    offset = 0
    while page := index.latest_stories(limit=PAGE, offset=offset):
        yield from (record for record in page if copies(record) >= min_copies)
        offset += len(page)


def count_stories(index: StoryIndex, min_copies: int = 0) -> int:
    """How many stories have at least `min_copies` copies (every record is read: the ids
    alone would count stories merged into others)."""
    return sum(1 for _ in iter_stories(index, min_copies))


@dataclass
class Credit:
    """One source's copies in stories and how many of them credit no one."""

    copies: int = 0
    unattributed: int = 0


def credit_counts(records: Iterable[dict[str, Any]], since: datetime) -> dict[str, Credit]:
    """Per source, its copies published at or after `since` (members with no time left out)
    and how many of them are unattributed; the sources with the most uncredited first."""
    counts: dict[str, Credit] = {}
    for record in records:
        for member in record["members"]:
            published = member.get("published_at")
            if member["role"] != "copy" or not published or parse_instant(published) < since:
                continue
            credit = counts.setdefault(member["source"], Credit())
            credit.copies += 1
            credit.unattributed += bool(member["unattributed"])
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1].unattributed, -kv[1].copies, kv[0]))
    return dict(ranked)


def top_stories(index: StoryIndex, count: int) -> list[dict[str, Any]]:
    """The `count` stories with the most copies, the newest first among equals. Reads every
    story: for a demo-sized store, not a production one."""
    ranked = sorted(
        iter_stories(index, min_copies=1),
        key=lambda r: (copies(r), story_first_seen(r), r["id"]),
        reverse=True,
    )
    return ranked[:count]


@dataclass(frozen=True)
class StoryView:
    """A story record with the summaries of its members (titles, URLs)."""

    record: dict[str, Any]
    summaries: dict[str, ItemSummary]

    @classmethod
    def load(cls, index: StoryIndex, record: dict[str, Any]) -> StoryView:
        ids = [member["item"] for member in record["members"]]
        return cls(record, index.get_items(ids))

    def title(self, item_id: str | None = None) -> str:
        """An item's title; without an id, the story's: its original's, else its earliest
        member's (the first member when the original is external)."""
        if item_id is None:
            item_id = self.record["original"]["item"] or self.record["members"][0]["item"]
        summary = self.summaries.get(item_id)
        return summary.title if summary else ""

    def url(self, item_id: str) -> str:
        summary = self.summaries.get(item_id)
        return summary.url if summary else ""

    def original_label(self, *, full: bool = False) -> str:
        """The original's source; an external one marked "not collected", and in `full`
        with its name and domain."""
        original = self.record["original"]
        label = original["source"]
        if not original["external"]:
            return label
        if not full:
            return f"{label} (not collected)"
        where = f", {original['domain']}" if original.get("domain") else ""
        return f"{original['name']} ({label}{where}), not collected"


def sources_of(record: dict[str, Any]) -> list[str]:
    return sorted({member["source"] for member in record["members"]})


def stories_table(views: list[StoryView], title: str) -> Table:
    """One row per story: id, first seen, copies, and its title over the original's source
    and the other sources; each line ends in "…" where the terminal is too narrow."""
    zone = display_zone()
    table = compact_table(title, expand=True)
    table.add_column("story", no_wrap=True, width=id_width(v.record["id"] for v in views))
    table.add_column(time_header("first seen", zone), no_wrap=True, width=16)
    table.add_column("copies", justify="right", no_wrap=True, width=6)
    table.add_column("title · original → other sources", no_wrap=True, overflow="ellipsis", ratio=1)
    for view in views:
        record = view.record
        others = [s for s in sources_of(record) if s != record["original"]["source"]]
        carried = escape(view.original_label()) + (
            " → " + escape(", ".join(others)) if others else ""
        )
        table.add_row(
            record["id"],
            first_seen(record, zone),
            str(copies(record)),
            f"{escape(view.title())}\n[dim]{carried}[/dim]",
        )
    return table


def credit(member: dict[str, Any]) -> str:
    """Whom a member credits, with the phrase (rich markup); or the unattributed flag."""
    if member["unattributed"]:
        return "[bold red]unattributed[/bold red] (copies an official text, credits no one)"
    if not member["cites"]:
        return "[dim]cites no one[/dim]" if member["role"] == "copy" else ""
    # A name no source config knows is in its phrase already ("со ссылкой на пресс-службу
    # ведомства"), so only a configured source is named beside the phrase.
    return "; ".join(
        f"{escape(cite['source'])}: «{escape(cite['phrase'])}»"
        if cite["source"]
        else f"«{escape(cite['phrase'])}»"
        for cite in member["cites"]
    )


def timeline_table(view: StoryView) -> Table:
    """The story as a timeline: its original, then every copy with its lag behind it, its
    similarity to it and whom it credits (or the unattributed flag). Each item's id is under
    its title (for `presswatch show ID`), which leaves the title room in 80 columns."""
    record = view.record
    original = record["original"]
    zone = display_zone()
    table = compact_table(
        f"Story {record['id']}: {escape(view.title())}",
        title_justify="left",
        caption=escape(view.url(original["item"])) if original["item"] else None,
        caption_justify="left",
        leading=1,  # a blank line between members: their titles wrap
    )
    table.add_column(time_header("published", zone), no_wrap=True)
    table.add_column("lag", justify="right", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("sim", justify="right", no_wrap=True)
    table.add_column("title · item · attribution")
    if original["external"]:
        label = escape(view.original_label(full=True))
        table.add_row("?", "original", escape(original["source"]), "", label)
    for member in record["members"]:
        is_original = member["role"] == "original"
        said = credit(member)
        table.add_row(
            shown_time(member["published_at"], zone, missing="?"),
            "original" if is_original else human_lag(member["lag_seconds"]),
            escape(member["source"]),
            "" if is_original else f"{member['similarity']:.2f}",
            f"{escape(view.title(member['item']))}\n[dim]{member['item']}[/dim]"
            + (f" · {said}" if said else ""),
        )
    return table
