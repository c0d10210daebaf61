"""Rebuild items.jsonl of the provenance dev set from the shared news day, by hand (not in pytest).

    python3 -m uv run python tests/data/provenance/build.py [/work/shared/data]

The selection and the labels live in ``labels.json`` (hand-made, checked by reading every
text): this script takes every labelled item id (``<source>/<contest document id>``), reads
that document of ``news_2019-11-18/docs`` and writes it as one item a line in the shape
``presswatch link`` reads (id, url, source, title, lead, text, published_at, lang, links).
``source`` is the name of the bundled ``crawler/sources.yaml`` source that owns the URL's
host, else the host without ``www.``. The output is byte-for-byte reproducible.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from crawler.config import load_sources  # noqa: E402
from pipelines.stories import SourceCatalog  # noqa: E402
from tests.data.build_demo_corpus import parse_contest_doc  # noqa: E402

HERE = Path(__file__).resolve().parent
LABELS = HERE / "labels.json"
ITEMS = HERE / "items.jsonl"
DEFAULT_DATA = Path("/work/shared/data")
DAY = "news_2019-11-18"
KAZAKH_LETTERS = re.compile(r"[әғқңөұүһі]", re.IGNORECASE)
# Kazakh text has its own letters; a Russian text quoting a Kazakh name has a few.
KAZAKH_SHARE = 0.01


def source_name(url: str, catalog: SourceCatalog) -> str:
    owner = catalog.source_of_url(url)
    return owner.removeprefix("www.")


def language(text: str) -> str:
    return "kk" if len(KAZAKH_LETTERS.findall(text)) / max(1, len(text)) > KAZAKH_SHARE else "ru"


def item(item_id: str, data: Path, catalog: SourceCatalog) -> dict[str, object]:
    source, _, doc = item_id.partition("/")
    parsed = parse_contest_doc((data / DAY / "docs" / f"20191118_{doc}.html").read_bytes())
    if source_name(parsed["url"], catalog) != source:
        msg = f"{item_id}: the document is from {urlsplit(parsed['url']).hostname}, not {source}"
        raise SystemExit(msg)
    text = "\n\n".join(parsed["paragraphs"])
    return {
        "id": item_id,
        "url": parsed["url"],
        "source": source,
        "title": parsed["title"],
        "lead": parsed["lead"],
        "text": text,
        "published_at": parsed["published_at"],
        "lang": language(text),
        "links": parsed["links"],
    }


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA
    catalog = SourceCatalog(load_sources())
    labels = json.loads(LABELS.read_text(encoding="utf-8"))
    ids = sorted({m for story in labels["stories"].values() for m in story["members"]})
    items = [item(i, data, catalog) for i in ids]
    with ITEMS.open("w", encoding="utf-8") as out:
        for record in items:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"{len(items)} items of {len(labels['stories'])} stories -> {ITEMS}")


if __name__ == "__main__":
    main()
