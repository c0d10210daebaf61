"""Exports of collected items: JSON lines and formula-safe CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

EXPORT_COLUMNS = (
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
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_safe(value: Any) -> str:
    """The cell text for `value`, with a leading quote where a spreadsheet would run it."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


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
