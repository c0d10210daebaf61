"""The faster `find_citations` finds exactly what the code it replaced found.

`tests/data/citations/expected.json` holds, per text of the citation bench
(`tests.bench.bench_citations.text_sets`), a digest of the citations that
`pipelines/attribution.py` at `BASELINE_COMMIT` found through the bundled catalog
(`python3 -m uv run python -m tests.data.citations.build` wrote it). The news day of
/work/shared/data is read only where it exists.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pipelines.attribution import PRECEDING_WORD, AliasIndex, _preceding_word, find_citations
from pipelines.link_features import crawl_catalog
from tests.bench.bench_citations import NEWS_DAY, citations_digest, text_sets

EXPECTED = Path(__file__).parent / "data" / "citations" / "expected.json"


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads(EXPECTED.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def aliases(expected: dict) -> AliasIndex:
    index = AliasIndex.from_sources(*crawl_catalog(None))
    assert index.key == expected["aliases"], (
        "the bundled sources or organisations changed since expected.json was written: "
        "check that citations did not change otherwise, then rebuild it (tests/data/citations)"
    )
    return index


@pytest.mark.parametrize("name", ["replay", "provenance", "news"])
def test_same_citations_as_the_baseline(name: str, expected: dict, aliases: AliasIndex) -> None:
    if name == "news" and not NEWS_DAY.is_dir():
        pytest.skip(f"{NEWS_DAY} is absent")
    texts = text_sets()[name]
    assert len(texts) == len(expected[name])
    differing = [
        (at, find_citations(text, links, aliases))
        for at, (text, links) in enumerate(texts)
        if citations_digest(find_citations(text, links, aliases)) != expected[name][at]
    ]
    assert differing == []


def test_preceding_word_is_the_anchored_search() -> None:
    """`_preceding_word` against the pattern it replaces, on strings of its hard cases:
    quotes that open and close, spaces, tabs and line breaks before the end, no-break
    spaces, punctuation, titles near the quote length limit, windows that cut a word."""
    rng = random.Random(13)  # noqa: S311 - reproducible cases, not secrets
    alphabet = [*'aaaaaaaab     .,:\t\n«»"„“”’-', "\u00a0"]
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
        end = rng.randint(0, len(text))
        lo = rng.randint(0, end)
        found = PRECEDING_WORD.search(text, lo, end)
        assert _preceding_word(text, lo, end) == (found.span(1) if found else None), (text, lo, end)
