"""What the story tests share: the demo corpus as sources and items (with the Baikonur
release's four copies named), and the news-day sample (tests/data/stories/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crawler.config import Source
from crawler.items import PressItem
from scheduler.demo import load_articles, load_portals

DATA = Path(__file__).parent / "data" / "stories"

PRIME = "primeminister/pervyy-vitse-premer-provel-peregovory-s-gendirektorom-roskosmosa-1907091"
CARAVAN = "caravan/pervyy-vitse-premer-rk-provel-peregovory-s-rogozinym"
STEPPE = "steppe/baiterek-na-baikonure"
AQSU = "aqsu/mamin-rogozin-baikonur"
BAIKONUR = (PRIME, CARAVAN, STEPPE, AQSU)


def demo_sources() -> list[Source]:
    """The demo portals as configured sources (kind, domains, aliases); discovery unused."""
    return [
        Source(
            name=p.name,
            title=p.title,
            kind=p.kind,
            domains=p.domains,
            languages=p.languages,
            timezone=p.timezone,
            aliases=p.aliases,
            discovery={"feeds": [f"https://{p.domains[0]}/rss"]},
        )
        for p in load_portals()
    ]


def demo_items() -> list[dict[str, Any]]:
    """The demo articles as PressItem dicts, keyed by the corpus ids."""
    return [
        {
            "id": a["id"],
            "url": a["url"],
            "source": a["portal"],
            "title": a["title"],
            "text": "\n\n".join(a["paragraphs"]),
            "lead": a["lead"],
            "published_at": a["published_at"],
            "lang": a["lang"],
            "links": a["links"],
        }
        for a in load_articles()
    ]


def load_news() -> dict[str, PressItem]:
    """The sample's articles by their short key."""
    items = {}
    for line in (DATA / "news_2019-11-18_sample.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        key = record.pop("key")
        record.pop("file")
        items[key] = PressItem(**record)
    return items
