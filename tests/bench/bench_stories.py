"""Story-linking quality and speed: same_story P/R/F1, ru/kk twins, LSH recall, ms/doc (JSON lines).

Run: ``uv run python -m tests.bench.bench_stories``. Reads /work/shared/data (not part of the
test suite); the twin labels live in tests/data/stories/twins_2019-11-18.json.
"""

from __future__ import annotations

import csv
import json
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import lxml.html
from datasketch import MinHash
from py3langid.langid import MODEL_FILE, LanguageIdentifier
from rensa import RMinHash

from crawler.items import PressItem
from pipelines import similarity
from pipelines.similarity import (
    article_signature,
    band_keys,
    normalize_for_shingles,
    same_story,
    shingles,
    signature,
    title_names_missing,
    titles_disagree_on_numbers,
)
from pipelines.twins import are_twins, twin_score
from pipelines.twins import fingerprint as name_fingerprint

DATA = Path("/work/shared/data")
SAME_STORY = DATA / "same_story"
NEWS_DAY = DATA / "news_2019-11-18" / "docs"
LABELS = Path(__file__).resolve().parents[1] / "data" / "stories" / "twins_2019-11-18.json"
SAME_STORY_FILES = (
    ("ru_honey_pool.tsv", "ru"),
    ("ru_train_pool.tsv", "ru"),
    ("ru_exam_pool.tsv", "ru"),
    ("en_train_pool.tsv", "en"),
)
KZ_HOST = re.compile(r"\.kz$|kazpravda")
# The ru and kk editions of one portal publish each other's translations.
PUBLISHERS = (("zakon.kz", "kaz.zakon.kz"),)
SPEED_REPEATS = 3
SWEEP = (0.30, 0.325, 0.35, 0.40, 0.45, 0.50, 0.60)


@dataclass(frozen=True)
class Pair:
    lang: str
    a: PressItem
    b: PressItem
    same: bool


def emit(**record: object) -> None:
    sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def load_same_story() -> list[Pair]:
    csv.field_size_limit(1 << 30)
    pairs = []
    for name, lang in SAME_STORY_FILES:
        with (SAME_STORY / name).open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                a = PressItem(
                    url=row["INPUT:first_url"],
                    source="a",
                    title=row["INPUT:first_title"],
                    text=row["INPUT:first_text"],
                )
                b = PressItem(
                    url=row["INPUT:second_url"],
                    source="b",
                    title=row["INPUT:second_title"],
                    text=row["INPUT:second_text"],
                )
                pairs.append(Pair(lang, a, b, row["GOLDEN:quality"] == "OK"))
    return pairs


def scores(predicted: Iterable[bool], gold: Iterable[bool]) -> dict[str, float | int]:
    tp = fp = fn = 0
    for guess, truth in zip(predicted, gold, strict=True):
        tp += guess and truth
        fp += guess and not truth
        fn += truth and not guess
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def names_agree(a: PressItem, b: PressItem) -> bool:
    names_a = name_fingerprint(a.title, a.text)
    names_b = name_fingerprint(b.title, b.text)
    return similarity.names_agree(len(names_a & names_b), min(len(names_a), len(names_b)))


def bench_same_story() -> list[Pair]:
    pairs = load_same_story()
    matches = [same_story(p.a, p.b) for p in pairs]
    for subset in ("ru", "en", "all"):
        chosen = [(m, p) for m, p in zip(matches, pairs, strict=True) if subset in ("all", p.lang)]
        emit(
            bench="same_story",
            subset=subset,
            pairs=len(chosen),
            **scores([m.same for m, _ in chosen], [p.same for _, p in chosen]),
        )
    near = [p.same for m, p in zip(matches, pairs, strict=True) if m.reason == "near_duplicate"]
    emit(
        bench="same_story_tiers",
        near_duplicate_accepted=len(near),
        near_duplicate_correct=sum(near),
    )
    # The trade-off around the chosen EVENT_COSINE, with and without each veto.
    agree = [names_agree(p.a, p.b) for p in pairs]
    numbers_differ = [titles_disagree_on_numbers(p.a.title, p.b.title) for p in pairs]
    title_missing = [
        title_names_missing(
            p.a.title,
            name_fingerprint(p.a.title, p.a.text),
            p.b.title,
            name_fingerprint(p.b.title, p.b.text),
        )
        for p in pairs
    ]
    for threshold in SWEEP:
        for number_veto in (True, False):
            for names_gate in (True, False):
                for title_veto in (True, False):
                    predicted = [
                        m.reason == "near_duplicate"
                        or (
                            m.event_cosine >= threshold
                            and not (number_veto and differ)
                            and not (names_gate and not agrees)
                            and not (title_veto and missing)
                        )
                        for m, differ, agrees, missing in zip(
                            matches, numbers_differ, agree, title_missing, strict=True
                        )
                    ]
                    emit(
                        bench="same_story_sweep",
                        event_cosine=threshold,
                        number_veto=number_veto,
                        names_gate=names_gate,
                        title_veto=title_veto,
                        **scores(predicted, [p.same for p in pairs]),
                    )
    return pairs


def language_identifier() -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    identifier.set_languages(["ru", "kk", "en"])
    return identifier


def load_news_doc(path: Path, identify: LanguageIdentifier) -> PressItem:
    tree = lxml.html.parse(str(path)).getroot()
    meta = {m.get("property"): m.get("content") for m in tree.iter("meta") if m.get("property")}
    url = meta.get("og:url") or path.name
    host = re.sub(r"^(?:www|politics)\.", "", url.split("/")[2]) if "//" in url else ""
    title = " ".join((tree.findtext(".//h1") or "").split())
    text = "\n".join(p.text_content().strip() for p in tree.iter("p"))
    lang = identify.classify(f"{title}\n{text}")[0]
    return PressItem(
        url=url,
        source=host,
        title=title,
        text=text,
        published_at=meta.get("article:published_time"),
        lang=lang,
    )


def bench_twins() -> None:
    labels = json.loads(LABELS.read_text(encoding="utf-8"))["kk"]
    index_lines = (NEWS_DAY.parent / "index.jsonl").read_text(encoding="utf-8").splitlines()
    index = [json.loads(line) for line in index_lines]
    identify = language_identifier()
    items = {
        row["local_file"]: load_news_doc(NEWS_DAY / row["local_file"], identify)
        for row in index
        if KZ_HOST.search(row["host"])
    }
    russian = {name: item for name, item in items.items() if item.lang == "ru"}
    kazakh = {name: items[name] for name in labels}
    wrong_lang = [name for name, item in kazakh.items() if item.lang != "kk"]
    linked = wrong = ambiguous = 0
    wrong_pairs = []
    for kk_name, kk_item in kazakh.items():
        truth = set(labels[kk_name]["ru"])
        unsure = set(labels[kk_name]["ambiguous"])
        for ru_name, ru_item in russian.items():
            if not are_twins(kk_item, ru_item, publishers=PUBLISHERS):
                continue
            if ru_name in truth:
                linked += 1
            elif ru_name in unsure:
                ambiguous += 1
            else:
                wrong += 1
                score = round(twin_score(kk_item, ru_item), 2)
                wrong_pairs.append((kk_item.title, ru_item.title, score))
    total = sum(len(label["ru"]) for label in labels.values())
    emit(
        bench="twins",
        kk_articles=len(kazakh),
        ru_articles=len(russian),
        labelled_twin_pairs=total,
        linked=linked,
        wrong_links=wrong,
        missed=total - linked,
        ambiguous_links=ambiguous,
        kk_detected_as_other_language=len(wrong_lang),
    )
    for kk_title, ru_title, score in wrong_pairs:
        emit(bench="twins_wrong_link", kk=kk_title, ru=ru_title, score=score)


def bench_lsh(pairs: list[Pair]) -> None:
    """Do the pairs tier 1 accepts share a band key (so the store would offer them)?"""
    identify = language_identifier()
    candidates = [(p.a, p.b) for p in pairs]
    with (NEWS_DAY.parent / "candidate_pairs_unverified.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            candidates.append(
                (
                    load_news_doc(NEWS_DAY / row["file_a"], identify),
                    load_news_doc(NEWS_DAY / row["file_b"], identify),
                )
            )
    accepted = [(a, b) for a, b in candidates if same_story(a, b).reason == "near_duplicate"]
    for bands, rows in ((similarity.BANDS, similarity.ROWS), (32, 2), (32, 4)):
        found = sum(
            bool(
                set(band_keys(article_signature(a), bands, rows))
                & set(band_keys(article_signature(b), bands, rows))
            )
            for a, b in accepted
        )
        emit(bench="lsh_recall", bands=bands, rows=rows, near_duplicates=len(accepted), found=found)


def bench_speed(pairs: list[Pair]) -> None:
    texts = [f"{p.a.title}\n{p.a.text}" for p in pairs] + [
        f"{p.b.title}\n{p.b.text}" for p in pairs
    ]
    token_sets = [sorted(shingles(normalize_for_shingles(t))) for t in texts]
    byte_sets = [[token.encode() for token in tokens] for tokens in token_sets]
    best: dict[str, float] = {}

    def timed(name: str, started: float) -> None:
        best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)

    for _ in range(SPEED_REPEATS):
        started = time.perf_counter()
        for text in texts:
            signature(text)
        timed("signature_with_shingling", started)
        started = time.perf_counter()
        RMinHash.digests_from_token_sets(token_sets, similarity.NUM_PERM, similarity.MINHASH_SEED)
        timed("rensa_sign_only", started)
        started = time.perf_counter()
        MinHash.bulk(byte_sets, num_perm=similarity.NUM_PERM)
        timed("datasketch_bulk_sign_only", started)
    emit(
        bench="signature_speed",
        docs=len(texts),
        ms_per_doc={name: round(1000 * seconds / len(texts), 4) for name, seconds in best.items()},
        ratio_datasketch_over_rensa=round(
            best["datasketch_bulk_sign_only"] / best["rensa_sign_only"], 1
        ),
    )


def main() -> None:
    pairs = bench_same_story()
    bench_twins()
    bench_lsh(pairs)
    bench_speed(pairs)


if __name__ == "__main__":
    main()
