"""Writes expected.json: a digest of the citations each bench text gives under the baseline.

Run: ``python3 -m uv run python -m tests.data.citations.build``. For every text of
`tests.bench.bench_citations.text_sets` (the replay articles, the provenance dev set and,
when /work/shared/data is present, the news day), the digest of the `find_citations` output
of `pipelines/attribution.py` at `BASELINE_COMMIT`, through the alias index of the bundled
catalog; with that index's `config_key`, since a change of the catalog changes citations.
`tests/test_citations_fast.py` holds the current code to these digests.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.link_features import crawl_catalog
from tests.bench.bench_citations import (
    BASELINE_COMMIT,
    baseline_module,
    citations_digest,
    text_sets,
)

EXPECTED = Path(__file__).with_name("expected.json")


def main() -> None:
    baseline = baseline_module()
    sources, organisations = crawl_catalog(None)
    aliases = baseline.AliasIndex.from_sources(sources, organisations)
    expected: dict[str, object] = {"baseline": BASELINE_COMMIT, "aliases": aliases.key}
    for name, texts in text_sets().items():
        expected[name] = [
            citations_digest(baseline.find_citations(text, links, aliases)) for text, links in texts
        ]
    EXPECTED.write_text(json.dumps(expected, indent=0) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
