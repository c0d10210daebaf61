"""Exports of collected items with their story provenance: JSON lines and formula-safe CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from pipelines.stories import link_view

if TYPE_CHECKING:
    from pipelines.story_index import StoryIndex

ITEM_COLUMNS = (
    "id",
    "source",
    "url",
    "published_at",
    "fetched_at",
    "lang",
    "title",
    "lead",
    "text",
    "authors",
    "content_hash",
    "flags",
)
# Where an item stands in its story; empty (None) for an item not linked yet.
PROVENANCE_COLUMNS = (
    "story_id",
    "role",  # original | copy
    "original_url",  # empty when the original is a cited source not collected
    # Sources as ``presswatch link --json`` reports them: where the body publishes (a domain,
    # or gov.kz and its entity path), whether a crawl source collects it or not.
    "original_source",
    "cited_sources",  # whom the item credits: their domains, else the names it uses
    "attribution",  # the phrases (or links) that credit them
    "unattributed",  # a copy of an official text that credits no one
    "lag_seconds",  # behind the original; None when either time is unknown
)
EXPORT_COLUMNS = ITEM_COLUMNS + PROVENANCE_COLUMNS
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_safe(value: Any) -> str:
    """The cell text for `value`, with a leading quote where a spreadsheet would run it."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # a number is data, even a negative lag: no quote needed
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def provenance(item_id: str, record: dict[str, Any], original_url: str | None) -> dict[str, Any]:
    """The provenance columns of one item of the story `record` (`Story.to_dict()`), given
    the URL of the story's original item (None when it is external)."""
    view = link_view(record)
    member = next(m for m in view["members"] if m["item"] == item_id)
    cited = [cite["source"] for cite in member["cites"]]
    return {
        "story_id": record["id"],
        "role": member["role"],
        "original_url": original_url,
        "original_source": view["original"]["source"],
        "cited_sources": list(dict.fromkeys(cited)),
        "attribution": [cite["phrase"] for cite in member["cites"]],
        "unattributed": member["unattributed"],
        "lag_seconds": member["lag_seconds"],
    }


class ProvenanceLookup:
    """The provenance of items from a story index: one ``story_of`` per item (or one
    ``stories_of`` per batch, see `prefetch`), each story's record and original URL read
    once."""

    def __init__(self, index: StoryIndex) -> None:
        self.index = index
        self._stories: dict[str, tuple[dict[str, Any] | None, str | None]] = {}
        self._story_ids: dict[str, str | None] = {}

    def prefetch(self, items: Iterable[dict[str, Any]]) -> None:
        """Look up the stories of `items`, their records and their originals' URLs in three
        round trips, for the calls that follow."""
        wanted = [item["id"] for item in items]
        found = self.index.stories_of(wanted)
        self._story_ids = {item_id: found.get(item_id) for item_id in wanted}
        new = [s for s in dict.fromkeys(found.values()) if s not in self._stories]
        records = self.index.get_stories(new)
        originals = [r["original"]["item"] for r in records.values() if r["original"]["item"]]
        summaries = self.index.get_items(originals) if originals else {}
        for story_id in new:
            record = records.get(story_id)
            original = record["original"]["item"] if record else None
            url = summaries[original].url if original in summaries else None
            self._stories[story_id] = (record, url)

    def _story(self, story_id: str) -> tuple[dict[str, Any] | None, str | None]:
        if story_id not in self._stories:
            record = self.index.get_story(story_id)
            original = record["original"]["item"] if record else None
            found = self.index.get_items([original]) if original else {}
            url = found[original].url if original in found else None
            self._stories[story_id] = (record, url)
        return self._stories[story_id]

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        if item["id"] in self._story_ids:
            story_id = self._story_ids[item["id"]]
        else:
            story_id = self.index.story_of(item["id"])
        record, original_url = self._story(story_id) if story_id else (None, None)
        if record is None or not any(m["item"] == item["id"] for m in record["members"]):
            return dict.fromkeys(PROVENANCE_COLUMNS)
        return provenance(item["id"], record, original_url)


def with_provenance(items: Iterable[dict[str, Any]], index: StoryIndex) -> Iterator[dict[str, Any]]:
    """Each item with its provenance columns filled from `index`."""
    lookup = ProvenanceLookup(index)
    for item in items:
        yield {**item, **lookup(item)}


def export_row(item: dict[str, Any]) -> dict[str, Any]:
    return {column: item.get(column) for column in EXPORT_COLUMNS}


def write_jsonl(items: Iterable[dict[str, Any]], out: TextIO) -> Iterator[None]:
    """Write one JSON object a line; yields after each item so callers can show progress."""
    for item in items:
        out.write(json.dumps(export_row(item), ensure_ascii=False) + "\n")
        yield None


def write_csv(items: Iterable[dict[str, Any]], out: TextIO) -> Iterator[None]:
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    for item in items:
        writer.writerow({k: csv_safe(v) for k, v in export_row(item).items()})
        yield None


WRITERS = {"jsonl": write_jsonl, "csv": write_csv}
