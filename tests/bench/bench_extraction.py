"""Extraction quality and speed against plain trafilatura, on the shared benchmark pages.

Run: ``uv run python -m tests.bench.bench_extraction [--data DIR]``. Prints JSON lines:

* aeb (scrapinghub article-extraction-benchmark): body precision, recall and F1 with the
  benchmark's own metric (token 4-gram shingles, per-page normalised counts, precision and
  recall averaged over pages, F1 of the two averages), and ms/page;
* fundus: per page, is the title right (same words, case-insensitive), is the publishing
  date right (same calendar day as the gold, each read in the offset it is written in),
  are the authors right (same set of names);
* a ratio line: our ms/page over trafilatura's, both measured in this run.

Ours is crawler.extract.extract_article; trafilatura is ``trafilatura.extract`` with its
defaults for the body and ``bare_extraction(with_metadata=True)`` for title, date and authors.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import trafilatura

from crawler.extract import extract_article, read_saved_page

DEFAULT_DATA = Path("/work/shared/data/extraction")
TOKEN = re.compile(r"\w+", re.UNICODE | re.MULTILINE | re.IGNORECASE | re.DOTALL)
SHINGLE = 4


def shingles(text: str) -> Counter[tuple[str, ...]]:
    tokens = TOKEN.findall(text or "")
    return Counter(tuple(tokens[i : i + SHINGLE]) for i in range(max(1, len(tokens) - SHINGLE + 1)))


def tp_fp_fn(true: str, pred: str) -> tuple[float, float, float]:
    """The benchmark's string_shingle_matching: counts normalised so each page weighs the same."""
    expected, got = shingles(true), shingles(pred)
    expected.pop((), None)
    got.pop((), None)
    tp = sum((expected & got).values())
    fp = sum((got - expected).values())
    fn = sum((expected - got).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def prf(counts: list[tuple[float, float, float]]) -> dict[str, float]:
    def precision(tp: float, fp: float, fn: float) -> float:
        if fp == fn == 0:
            return 1.0
        return 0.0 if tp == fp == 0 else tp / (tp + fp)

    def recall(tp: float, fp: float, fn: float) -> float:
        if fp == fn == 0:
            return 1.0
        return 0.0 if tp == fn == 0 else tp / (tp + fn)

    p = statistics.mean(precision(*c) for c in counts if c[0] + c[1] > 0)
    r = statistics.mean(recall(*c) for c in counts if c[0] + c[2] > 0)
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4)}


def bench_aeb(root: Path) -> dict[str, float]:
    gold = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    pages = {
        key: read_saved_page((root / "html" / f"{key}.html.gz").read_bytes())
        for key in sorted(gold)
    }
    extract_article(next(iter(pages.values())), "")  # load the language model before timing
    results: dict[str, float] = {}
    extractors = {
        "presswatch": lambda html, url: extract_article(html, url).text,
        "trafilatura": lambda html, url: trafilatura.extract(html, url=url) or "",
    }
    for name, extract in extractors.items():
        counts = []
        started = time.perf_counter()
        for key, html in pages.items():
            counts.append(tp_fp_fn(gold[key]["articleBody"], extract(html, gold[key]["url"])))
        ms = (time.perf_counter() - started) * 1000 / len(pages)
        print(
            json.dumps(
                {
                    "bench": "extraction",
                    "dataset": "aeb",
                    "extractor": name,
                    "pages": len(pages),
                    **prf(counts),
                    "ms_per_page": round(ms, 2),
                }
            ),
            flush=True,
        )
        results[name] = ms
    return results


def words(text: str | None) -> str:
    return " ".join(TOKEN.findall((text or "").casefold()))


def fundus_cases(root: Path) -> list[tuple[Path, str, dict[str, Any]]]:
    """(page, url, gold) for every fundus page; a publisher's JSON lists its pages in file order."""
    cases = []
    for gold_file in sorted(root.glob("test_data/*/*.json")):
        meta = json.loads((gold_file.parent / "meta.info").read_text(encoding="utf-8"))
        pages = sorted(gold_file.parent.glob(f"{gold_file.stem}_*.html.gz"))
        versions = json.loads(gold_file.read_text(encoding="utf-8"))
        for page, gold in zip(pages, versions.values(), strict=False):
            cases.append((page, meta.get(page.name, {}).get("url", ""), gold))
    return cases


def bench_fundus(root: Path) -> None:
    cases = fundus_cases(root)
    scores = {name: Counter[str]() for name in ("presswatch", "trafilatura")}
    for page, url, gold in cases:
        html = read_saved_page(page.read_bytes())
        ours = extract_article(html, url)
        theirs = trafilatura.bare_extraction(html, url=url, with_metadata=True)
        gold_date = (
            datetime.fromisoformat(gold["publishing_date"]) if gold.get("publishing_date") else None
        )
        their_authors = (theirs.author or "").split(";") if theirs else []
        for name, title, day, authors in (
            ("presswatch", ours.title, _our_day(ours.published_at), list(ours.authors)),
            (
                "trafilatura",
                theirs.title if theirs else None,
                theirs.date if theirs else None,
                their_authors,
            ),
        ):
            tally = scores[name]
            if gold.get("authors"):
                tally["author_lists"] += 1
                tally["authors_right"] += _names(authors) == _names(gold["authors"])
            if gold.get("title"):
                tally["titles"] += 1
                tally["title_right"] += words(title) == words(gold["title"])
            if gold_date is not None:
                tally["dates"] += 1
                tally["date_right"] += day == gold_date.date().isoformat()
    for name, tally in scores.items():
        print(
            json.dumps(
                {
                    "bench": "extraction",
                    "dataset": "fundus",
                    "extractor": name,
                    "pages": len(cases),
                    "title_accuracy": round(tally["title_right"] / tally["titles"], 4),
                    "titles_right": tally["title_right"],
                    "titles": tally["titles"],
                    "date_accuracy": round(tally["date_right"] / tally["dates"], 4),
                    "dates_right": tally["date_right"],
                    "dates": tally["dates"],
                    "date_rule": "same calendar day as the gold, each in its own offset",
                    "authors_accuracy": round(tally["authors_right"] / tally["author_lists"], 4),
                    "author_lists": tally["author_lists"],
                    "authors_rule": "same set of names, case and punctuation ignored",
                }
            ),
            flush=True,
        )


def _names(authors: list[str]) -> set[str]:
    return {words(a) for a in authors if words(a)}


def _our_day(published_at: str | None) -> str | None:
    # The day as the page states it: a day-only date is midnight in the source's zone, and
    # moving it into the gold's offset would shift it to the day before.
    return published_at[:10] if published_at else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    timings = bench_aeb(args.data / "aeb")
    print(
        json.dumps(
            {
                "bench": "extraction",
                "metric": "ms_per_page_ratio",
                "ratio": round(timings["presswatch"] / timings["trafilatura"], 3),
                "baseline": "trafilatura.extract defaults, same pages, same run",
            }
        ),
        flush=True,
    )
    bench_fundus(args.data / "fundus")


if __name__ == "__main__":
    main()
