"""Linking cost at scale: synthetic items with planted copy families, linked over each store.

Run: ``python3 -m uv run python -m tests.bench.bench_linking [--items 100000] [--skip-redis]
[--seed N] [--profile]``. Synthesizes Russian-looking news (words and names made of Cyrillic
syllables, Zipf-distributed, numbers, dates) in which copy families of 2-15 members are
planted: copies of one release that were trimmed, re-headlined, given a new lead or a
different ending, some crediting the original. Each store links the same items with
`StoryLinker`, in a child process of its own (so its peak RSS is its own): the in-memory
index first (the baseline), then SQLite and Redis (a redis-server on a free loopback port,
started here). One JSON line per store: per-item link time (median, p99, mean), its ratio
to the baseline, peak RSS growth while linking, the store's size, and how well the planted
families came back (pairwise precision and recall). For Redis a further line compares two
ways to ask for candidates at that size. ``--profile`` prints each store's cProfile top
functions to stderr (and slows linking down).
"""

from __future__ import annotations

import argparse
import bisect
import cProfile
import hashlib
import io
import itertools
import json
import math
import os
import pstats
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from crawler.items import item_id
from pipelines.similarity import article_signature, band_keys
from pipelines.store import open_store
from pipelines.stories import StoryLinker
from pipelines.story_index import ItemSummary, MemoryStoryIndex
from scheduler.demo import load_portals
from tests.fixtures.redis_server import running_redis_server
from tests.stories_data import demo_sources

if TYPE_CHECKING:
    from pipelines.store.redis_stories import RedisStoryIndex

DEFAULT_ITEMS = 100_000
DEFAULT_SEED = 20191118
MB = 1024 * 1024
ALMATY = timezone(timedelta(hours=6))
START = datetime(2019, 11, 1, 6, 0, tzinfo=ALMATY)
ITEMS_PER_DAY = 1500  # a busy day of Kazakh news across the configured portals
VOCABULARY = 20_000
NAMES = 5_000
WORDS_ZIPF = 0.9
NAMES_ZIPF = 0.7
TOPIC_WORDS = 30
FUNCTION_SHARE = 0.3
TOPIC_SHARE = 0.4
SINGLETON_SHARE = 0.85  # events nobody copies: about half the items, as on 18 Nov 2019
FAMILY_SIZES = range(2, 16)
CANDIDATE_PROBES = 2000
PROFILE_LINES = 30

# The sounds and endings coined words are made of, and the short words between them.
ONSETS = ("б", "в", "г", "д", "ж", "з", "к", "л", "м", "н", "п", "р", "с", "т", "ф", "х",
          "ц", "ч", "ш", "щ", "бр", "вл", "гр", "др", "кр", "пр", "ст", "тр", "ск", "сл",
          "зн")  # fmt: skip
VOWELS = ("а", "о", "е", "и", "у", "ы", "я", "ю")
CODAS = ("", "", "", "н", "р", "л", "с", "т", "к", "м", "й")
ENDINGS = ("ов", "ение", "ами", "ого", "ский", "ная", "ять", "ует", "ией", "ости", "ата", "ные",
           "ему")  # fmt: skip
NAME_ENDINGS = ("ов", "ев", "ин", "баев", "ова", "ский", "ск", "бек", "тау", "стан", "ия")
FUNCTION_WORDS = ("и", "в", "на", "по", "с", "что", "не", "для", "от", "до", "из", "за", "как",
                  "это", "к", "о", "а", "но", "при", "его", "их")  # fmt: skip


@dataclass(frozen=True)
class Families:
    """Which planted family each item belongs to (a singleton is a family of one)."""

    of_item: dict[str, int]

    def pairs(self) -> int:
        return sum(math.comb(size, 2) for size in Counter(self.of_item.values()).values())


class Writer:
    """Russian-looking sentences: short function words, Zipf-weighted content words mixed with
    the words of the event's own topic, and names from a Zipf-weighted pool."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.words = self._coin(VOCABULARY, ENDINGS, capital=False)
        self.names = self._coin(NAMES, NAME_ENDINGS, capital=True)
        self.word_weights = list(itertools.accumulate(_zipf(len(self.words), WORDS_ZIPF)))
        self.name_weights = list(itertools.accumulate(_zipf(len(self.names), NAMES_ZIPF)))

    def _coin(self, count: int, endings: tuple[str, ...], *, capital: bool) -> list[str]:
        coined: set[str] = set()
        while len(coined) < count:
            syllables = self.rng.choice((1, 2, 2, 3))
            stem = "".join(
                self.rng.choice(ONSETS) + self.rng.choice(VOWELS) + self.rng.choice(CODAS)
                for _ in range(syllables)
            )
            word = stem + self.rng.choice(endings)
            coined.add(word.capitalize() if capital else word)
        # Shuffled, so the Zipf ranks do not follow the alphabet.
        ranked = sorted(coined)
        self.rng.shuffle(ranked)
        return ranked

    def _weighted(self, pool: list[str], weights: list[float]) -> str:
        return pool[bisect.bisect(weights, self.rng.random() * weights[-1])]

    def name(self) -> str:
        return self._weighted(self.names, self.name_weights)

    def topic(self) -> list[str]:
        """The words an event is told in, beside the common ones."""
        return self.rng.sample(self.words, TOPIC_WORDS)

    def _token(self, topic: list[str]) -> str:
        draw = self.rng.random()
        if draw < FUNCTION_SHARE:
            return self.rng.choice(FUNCTION_WORDS)
        if draw < FUNCTION_SHARE + TOPIC_SHARE:
            return self.rng.choice(topic)
        return self._weighted(self.words, self.word_weights)

    def sentence(self, topic: list[str], names: list[str]) -> str:
        words = [self._token(topic) for _ in range(self.rng.randint(8, 18))]
        # Names and figures inside the sentence, where the name fingerprint looks for them.
        if self.rng.random() < 0.5:
            words.insert(self.rng.randint(1, len(words)), self.rng.choice(names))
        if self.rng.random() < 0.2:
            words.insert(self.rng.randint(1, len(words)), str(self.rng.randint(10, 99_999)))
        return _capitalize_first(" ".join(words)) + "."

    def title(self, topic: list[str], names: list[str]) -> str:
        words = [self._token(topic) for _ in range(self.rng.randint(5, 9))]
        words.insert(self.rng.randint(1, len(words)), names[0])
        return _capitalize_first(" ".join(words))


class TimedIndex:
    """A `StoryIndex` that adds up the time spent in its verbs, so that a link's time splits
    into the store's part and the linker's own (signatures, checks, assembly)."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self.spent = 0.0
        self.by_verb: Counter[str] = Counter()

    def __getattr__(self, verb: str) -> Any:
        method = getattr(self.index, verb)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                took = time.perf_counter() - started
                self.spent += took
                self.by_verb[verb] += took

        return timed


def _capitalize_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _zipf(count: int, exponent: float) -> list[float]:
    return [1 / (rank**exponent) for rank in range(1, count + 1)]


def _copy(
    writer: Writer,
    title: str,
    sentences: list[str],
    event: tuple[list[str], list[str]],
    credit: str | None,
) -> tuple[str, list[str]]:
    """A portal's copy of a release: one or two edits, and maybe a credit."""
    rng = writer.rng
    edits = rng.sample(["trim", "headline", "lead", "ending"], rng.randint(1, 2))
    if "trim" in edits:
        sentences = sentences[: max(4, round(len(sentences) * rng.uniform(0.5, 0.8)))]
    if "headline" in edits:
        title = writer.title(*event)
    if "lead" in edits:
        sentences = [writer.sentence(*event) for _ in range(rng.randint(1, 2))] + sentences
    if "ending" in edits:
        cut = rng.randint(1, 3)
        sentences = sentences[:-cut] + [writer.sentence(*event) for _ in range(cut)]
    if credit is not None:
        sentences = [*sentences, f"Об этом сообщает {credit}."]
    return title, sentences


def synthesize(count: int, seed: int) -> tuple[list[dict[str, Any]], Families]:
    """`count` items in publication order, and the planted family of each."""
    rng = random.Random(seed)  # noqa: S311 -- a replayable corpus, not a secret
    writer = Writer(rng)
    portals = load_portals()
    credits = {p.name: [a for a in p.aliases if " " not in a] or [p.title] for p in portals}
    sizes = list(FAMILY_SIZES)
    size_weights = [1 / size for size in sizes]
    items: list[dict[str, Any]] = []
    family_of: dict[str, int] = {}
    seconds_per_item = 86_400 / ITEMS_PER_DAY
    for family in itertools.count():
        if len(items) >= count:
            break
        size = 1 if rng.random() < SINGLETON_SHARE else rng.choices(sizes, size_weights)[0]
        size = min(size, count - len(items))
        event = (writer.topic(), [writer.name() for _ in range(rng.randint(2, 6))])
        title = writer.title(*event)
        sentences = [writer.sentence(*event) for _ in range(rng.randint(8, 16))]
        released = START + timedelta(seconds=len(items) * seconds_per_item)
        publishers = rng.sample(portals, min(size, len(portals)))
        for member in range(size):
            portal = publishers[member % len(publishers)]
            if member == 0:
                text_title, text = title, sentences
            else:
                cited = publishers[0].name if rng.random() < 0.5 else None
                credit = rng.choice(credits[cited]) if cited else None
                text_title, text = _copy(writer, title, sentences, event, credit)
            url = f"https://{portal.domains[0]}/news/{family}-{member}"
            published = released + timedelta(minutes=rng.uniform(0, 360) if member else 0)
            items.append(
                {
                    "id": item_id(url),
                    "url": url,
                    "source": portal.name,
                    "title": text_title,
                    "text": "\n\n".join(" ".join(text[i : i + 3]) for i in range(0, len(text), 3)),
                    "lead": text[0],
                    "published_at": published.isoformat(),
                    "lang": "ru",
                    "links": [],
                }
            )
            family_of[items[-1]["id"]] = family
    items.sort(key=lambda item: item["published_at"])
    return items, Families(family_of)


def _spread(prefix: str, timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        f"{prefix}median_ms": round(statistics.median(ordered), 3),
        f"{prefix}p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        f"{prefix}mean_ms": round(statistics.fmean(ordered), 3),
    }


def pairwise_scores(story_of: dict[str, str], families: Families) -> dict[str, float]:
    """Precision and recall of the pairs of items put together, against the planted pairs."""
    cells = Counter((story_of[item], family) for item, family in families.of_item.items())
    together = sum(math.comb(n, 2) for n in cells.values())
    linked = sum(math.comb(n, 2) for n in Counter(story_of.values()).values())
    planted = families.pairs()
    return {
        "pair_precision": round(together / linked, 4) if linked else 1.0,
        "pair_recall": round(together / planted, 4) if planted else 1.0,
        "planted_pairs": planted,
        "linked_pairs": linked,
    }


def partition_digest(story_of: dict[str, str]) -> str:
    groups: dict[str, list[str]] = {}
    for item, story in story_of.items():
        groups.setdefault(story, []).append(item)
    canonical = sorted(sorted(members) for members in groups.values())
    return hashlib.sha1(json.dumps(canonical).encode(), usedforsecurity=False).hexdigest()[:12]


def compare_candidate_queries(index: RedisStoryIndex, items: list[dict[str, Any]]) -> None:
    """ZUNION over the key sets (what `candidates` does) against a pipeline of SMEMBERS
    counted here, on the band keys of items spread over the whole store."""
    step = max(1, len(items) // CANDIDATE_PROBES)
    probes = [
        band_keys(
            article_signature(ItemSummary(id=i["id"], source="", title=i["title"], text=i["text"]))
        )
        for i in items[::step]
    ]
    client, keys = index.link.client, index.link.keys

    def smembers_pipeline(bands: list[str]) -> set[str]:
        pipe = client.pipeline(transaction=False)
        for band in set(bands):
            pipe.zrange(keys.story_key(band), 0, -1)
        counts = Counter(member for members in pipe.execute() for member in members)
        return {member for member, count in counts.items() if count >= 1}

    timings: dict[str, list[float]] = {"zunion": [], "smembers_pipeline": []}
    for bands in probes:
        for name, ask in (("zunion", index.candidates), ("smembers_pipeline", smembers_pipeline)):
            started = time.perf_counter()
            ask(bands)
            timings[name].append((time.perf_counter() - started) * 1000)
    emit(
        bench="redis_candidates",
        items=len(items),
        probes=len(probes),
        keys_per_probe=len(probes[0]),
        **{f"{name}_median_ms": round(statistics.median(t), 4) for name, t in timings.items()},
        ratio=round(
            statistics.median(timings["zunion"]) / statistics.median(timings["smembers_pipeline"]),
            3,
        ),
    )


def link_in_child(
    store: str, url: str | None, count: int, seed: int, profile: bool
) -> dict[str, Any]:
    """Link the synthetic items over one store (`url`, or memory when None); runs in a fresh
    process, so that the peak RSS it reports is this store's."""
    items, families = synthesize(count, seed)
    opened = open_store(url) if url else None
    index: Any = opened.story_index() if opened else MemoryStoryIndex()
    timed_index = TimedIndex(index)
    linker = StoryLinker(timed_index, demo_sources())  # type: ignore[arg-type]
    rss_before = psutil.Process().memory_info().rss
    profiler = cProfile.Profile() if profile else None
    timings, in_index = [], []
    started_all = time.perf_counter()
    if profiler:
        profiler.enable()
    for item in items:
        timed_index.spent = 0.0
        started = time.perf_counter()
        linker.link(item)
        timings.append((time.perf_counter() - started) * 1000)
        in_index.append(timed_index.spent * 1000)
    if profiler:
        profiler.disable()
        report = io.StringIO()
        pstats.Stats(profiler, stream=report).sort_stats("tottime").print_stats(PROFILE_LINES)
        sys.stderr.write(f"--- profile: {store} ---\n{report.getvalue()}")
    seconds = time.perf_counter() - started_all
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    story_of = {item["id"]: index.story_of(item["id"]) or "" for item in items}
    result = {
        "items": len(items),
        **_spread("", timings),
        **_spread("index_", in_index),
        "index_mean_ms_by_verb": {
            verb: round(total * 1000 / len(items), 3)
            for verb, total in timed_index.by_verb.most_common()
        },
        "seconds": round(seconds, 1),
        "peak_rss_delta_mb": round(max(0, peak_rss - rss_before) / MB, 1),
        "stories": len(set(story_of.values())),
        "partition": partition_digest(story_of),
        **pairwise_scores(story_of, families),
    }
    if opened is not None:
        if store == "redis":
            compare_candidate_queries(index, items)
            used = int(index.link.client.info("memory")["used_memory"])
            result["store_mb"] = round(used / MB, 1)
        index.close()
        opened.close()
    return result


def emit(**record: object) -> None:
    sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=DEFAULT_ITEMS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    context = get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-linking-") as tmp:
        directory = Path(tmp)

        def run(store: str, url: str | None) -> dict[str, Any]:
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as child:
                return child.submit(
                    link_in_child, store, url, args.items, args.seed, args.profile
                ).result()

        baseline = run("memory", None)
        emit(bench="linking", store="memory", **baseline, load_average=round(os.getloadavg()[0], 1))
        sqlite_path = directory / "stories.db"
        measured = run("sqlite", f"sqlite:///{sqlite_path}")
        sqlite_bytes = sum(p.stat().st_size for p in directory.glob("stories.db*"))
        report("sqlite", {**measured, "store_mb": round(sqlite_bytes / MB, 1)}, baseline)
        if not args.skip_redis:
            with running_redis_server(directory / "redis") as server:
                report("redis", run("redis", server.url), baseline)


def report(store: str, measured: dict[str, Any], baseline: dict[str, Any]) -> None:
    emit(
        bench="linking",
        store=store,
        **measured,
        ratio_median=round(measured["median_ms"] / baseline["median_ms"], 3),
        ratio_mean=round(measured["mean_ms"] / baseline["mean_ms"], 3),
        same_partition_as_memory=measured["partition"] == baseline["partition"],
        load_average=round(os.getloadavg()[0], 1),
    )


if __name__ == "__main__":
    main()
