"""Citation finding speed: ms per text of `find_citations` against the code it replaced.

Run: ``python3 -m uv run python -m tests.bench.bench_citations``. Times
`pipelines.attribution.find_citations` over three sets of texts, each with the alias index a
crawl resolves through (the bundled sources and the directory of organisations,
`pipelines.link_features.crawl_catalog`):
- ``replay``: the 500 article texts of the crawl bench's ``news`` pages
  (`tests.bench.bench_crawl.news_articles(500, seed=42)`), always present;
- ``provenance``: the 83 real news items of ``tests/data/provenance``, always present;
- ``news``: the 618 real pages of /work/shared/data/news_2019-11-18/docs (skipped when absent).
The baseline is `pipelines/attribution.py` as of `BASELINE_COMMIT` (read with ``git show``
and loaded as a module of its own), timed in the same run over the same texts, passes
interleaved; CPU time of this process, best of `PASSES`. Prints one JSON line per set:
ms per text of both, their ratio (baseline / current) and whether every text gave the same
citations.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import lxml.html

from pipelines import attribution
from pipelines.link_features import crawl_catalog
from tests.bench.bench_crawl import news_articles
from tests.provenance_score import load_items

# The last commit of main before `find_citations` was made faster (issue h17).
BASELINE_COMMIT = "9eeeb5d"
NEWS_DAY = Path("/work/shared/data/news_2019-11-18/docs")
PASSES = 3

Text = tuple[str, tuple[str, ...]]  # a text and its body links


def baseline_module() -> ModuleType:
    """`pipelines.attribution` as it was at `BASELINE_COMMIT`, a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{BASELINE_COMMIT}:pipelines/attribution.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    name = "attribution_baseline"
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, f"{BASELINE_COMMIT}:pipelines/attribution.py", "exec"), module.__dict__)  # noqa: S102
    return module


def news_page(path: Path) -> Text:
    """A page's text as `tests.bench.bench_stories.load_news_doc` reads it, and its links."""
    tree = lxml.html.parse(str(path)).getroot()
    paragraphs = list(tree.iter("p"))
    text = "\n".join(p.text_content().strip() for p in paragraphs)
    links = tuple(a.get("href") for p in paragraphs for a in p.iter("a") if a.get("href"))
    return text, links


def text_sets() -> dict[str, list[Text]]:
    sets = {
        "replay": [(a.text, tuple(a.links)) for a in news_articles(500, seed=42)],
        "provenance": [(item["text"], tuple(item.get("links") or ())) for item in load_items()],
    }
    if NEWS_DAY.is_dir():
        sets["news"] = [news_page(path) for path in sorted(NEWS_DAY.glob("*.html"))]
    return sets


def citations_digest(citations: Sequence[Any]) -> str:
    """A digest of a list of `Citation` (of either module) by its fields, in order."""
    fields = [dataclasses.astuple(citation) for citation in citations]
    encoded = json.dumps(fields, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(encoded, digest_size=8).hexdigest()


def citations_of(module: ModuleType, texts: Sequence[Text], aliases: Any) -> list[list[tuple]]:
    return [
        [dataclasses.astuple(c) for c in module.find_citations(text, links, aliases)]
        for text, links in texts
    ]


def main() -> None:
    baseline = baseline_module()
    sources, organisations = crawl_catalog(None)
    current_aliases = attribution.AliasIndex.from_sources(sources, organisations)
    baseline_aliases = baseline.AliasIndex.from_sources(sources, organisations)
    for name, texts in text_sets().items():
        times: dict[str, list[float]] = {"baseline": [], "current": []}
        outputs = {}
        for _ in range(PASSES):
            for label, module, aliases in (
                ("baseline", baseline, baseline_aliases),
                ("current", attribution, current_aliases),
            ):
                started = time.process_time()
                outputs[label] = citations_of(module, texts, aliases)
                times[label].append((time.process_time() - started) * 1000 / len(texts))
        before, after = min(times["baseline"]), min(times["current"])
        print(
            json.dumps(
                {
                    "set": name,
                    "texts": len(texts),
                    "citations": sum(map(len, outputs["current"])),
                    "baseline_ms_per_text": round(before, 3),
                    "current_ms_per_text": round(after, 3),
                    "ratio": round(before / after, 2),
                    "identical": outputs["baseline"] == outputs["current"],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
