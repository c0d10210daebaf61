"""Rewrite the expected fields of the golden cases from the current extractor, then show what moved.

Run ``uv run python tests/data/golden/refresh.py [CASE ...]`` after a deliberate change to
crawler/extract.py, read every printed change, and hand-correct the JSON where the new
output is wrong: the expected values are reviewed by a person, not taken on trust.
Each case is ``<name>.json`` beside ``<name>.html.gz``; the keys ``url``, ``origin``,
``selectors``, ``unchecked``, ``text_excludes`` and ``known_differences`` are kept as they
are, and so are the expected fields named in ``reviewed`` (values set by hand or taken from
a benchmark's human gold, such as the article text): their differences are only printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from crawler.config import Selectors
from crawler.extract import extract_article, read_saved_page

HERE = Path(__file__).parent
FIELDS = ("title", "lead", "published_at", "lang", "authors", "links", "text")


def extract_case(case: dict[str, Any], page: Path) -> dict[str, Any]:
    """The extractor's output for one golden case, as JSON values."""
    selectors = Selectors(**case["selectors"]) if case.get("selectors") else None
    article = extract_article(read_saved_page(page.read_bytes()), case["url"], selectors=selectors)
    values = {name: getattr(article, name) for name in FIELDS}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def refresh(case_file: Path) -> None:
    case = json.loads(case_file.read_text(encoding="utf-8"))
    got = extract_case(case, case_file.with_name(case_file.stem + ".html.gz"))
    old = case.get("expected", {})
    kept = set(case.get("reviewed", []))
    new = {
        k: old[k] if k in kept and k in old else v
        for k, v in got.items()
        if k not in case.get("unchecked", [])
    }
    for name in FIELDS:
        if old.get(name) != got.get(name) and name not in case.get("unchecked", []):
            kept_note = " (kept: reviewed)" if name in kept else ""
            print(
                f"{case_file.stem}: {name}{kept_note}: {old.get(name)!r:.200} -> {got[name]!r:.200}"
            )
    case["expected"] = new
    case_file.write_text(json.dumps(case, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def main(names: list[str]) -> None:
    files = [HERE / f"{n}.json" for n in names] if names else sorted(HERE.glob("*.json"))
    for case_file in files:
        refresh(case_file)


if __name__ == "__main__":
    main(sys.argv[1:])
