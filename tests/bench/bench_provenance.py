"""Provenance on the labelled dev set: original source, cited sources, phrases, unattributed.

Run: ``python3 -m uv run python -m tests.bench.bench_provenance``. Links the dev set of
``tests/data/provenance/`` (83 items, 30 hand-labelled stories of 18 Nov 2019) with the
current `link_items` and the bundled sources, scores it with `tests.provenance_score`, and
prints one JSON line per figure (value, hits, total) and one with the counts on stdout; every
miss (story, item, expected, got) goes to stderr as a JSON line, for whoever fixes them.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from crawler.config import load_sources
from pipelines.stories import link_items
from tests.provenance_score import load_items, load_labels, score


def emit(stream: TextIO, **record: object) -> None:
    stream.write(json.dumps(record, ensure_ascii=False) + "\n")


def main() -> None:
    items, labels, sources = load_items(), load_labels(), load_sources()
    started = time.perf_counter()
    linked = link_items(items, sources)
    seconds = time.perf_counter() - started
    scores = score(linked, labels, items, sources)
    for name, ratio in (
        ("original_source_accuracy", scores.original),
        ("cited_source_accuracy", scores.cited),
        ("phrase_recall", scores.phrases),
        ("members_in_one_story", scores.together),
    ):
        emit(
            sys.stdout, figure=name, value=round(ratio.value, 3), hits=ratio.hits, total=ratio.total
        )
    unattributed = scores.unattributed
    emit(
        sys.stdout,
        figure="unattributed_precision",
        value=round(scores.unattributed_precision, 3),
        flagged=unattributed["tp"] + unattributed["fp"],
        right=unattributed["tp"],
    )
    emit(
        sys.stdout,
        figure="unattributed_recall",
        value=round(scores.unattributed_recall, 3),
        labelled=unattributed["tp"] + unattributed["fn"],
        found=unattributed["tp"],
    )
    emit(
        sys.stdout,
        counts={
            "items": len(items),
            "stories": len(labels["stories"]),
            "predicted_stories": len(linked["stories"]),
            "misses": len(scores.misses),
            "link_seconds": round(seconds, 2),
        },
    )
    sys.stdout.flush()
    for miss in scores.misses:
        emit(sys.stderr, **miss)


if __name__ == "__main__":
    main()
