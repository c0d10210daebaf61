"""The news-day sample the story tests share (tests/data/stories/)."""

from __future__ import annotations

import json
from pathlib import Path

from crawler.items import PressItem

DATA = Path(__file__).parent / "data" / "stories"


def load_news() -> dict[str, PressItem]:
    """The sample's articles by their short key."""
    items = {}
    for line in (DATA / "news_2019-11-18_sample.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        key = record.pop("key")
        record.pop("file")
        items[key] = PressItem(**record)
    return items
