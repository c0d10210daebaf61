"""Where story linking keeps its state: the `StoryIndex` verbs and an in-memory implementation.

The linker (`pipelines.stories.StoryLinker`) needs four things remembered between items:
the candidate keys of every linked item (LSH band keys for near duplicates, dated name keys
for other write-ups of one event and ru/kk twins, which share no shingles), a summary of
each item to re-check a candidate exactly, which story each item belongs to, and each story's
assembled record. Each verb is one small write or read that a SQLite table set (one
transaction per verb) and a Redis key set (one MULTI or Lua call per verb) can do
atomically; `MemoryStoryIndex` is the reference the store-backed ones will be tested
against. A link runs in a crawl's one store thread, where each verb costs a transaction or
a round trip (and a wait for the GIL after it), so the linker's steps are few verbs that do
much: `enter` writes the item and reads its candidates at once, `story_items` reads a
story with its members' summaries.

Time window: the candidate entries (band and name keys) count for `KeyWindow.days` (30 by
default, ``SYNDICATION_WINDOW_DAYS``) after they were written, then stop being candidates
and are dropped (Redis: key expiry; SQLite: a periodic delete), since syndication happens
within days and keeping every entry forever does not fit a modest Redis. Items, their
summaries and stories never expire. An entry's time is when the index wrote it (the item's
first sighting), not the item's publication: a backfill of old news is linked among itself
as it is crawled, and its entries leave a window after the backfill, not at once.

One copy of an item's text: an item is linked before it is stored (the crawl's pipelines:
syndication, then the store), so the index keeps its own summary, text and all, until the
store holds the item; then `item_stored` drops that summary, and a store-backed index reads
the summary from the stored item (`ItemSummary.from_dict` of it) from then on. The summary
is dropped only when it is exactly what the stored item gives, and a stored item never
changes, so a reader finds the same summary before and after, in either place. Linking
first, storing second is kept on purpose: an item stored but not yet linked when a crawl
dies or spools it would be dropped by the next crawl's dedup as already stored, never linked.

Concurrency contract, so that two crawl processes linking at once end with the same stories:
the linker writes an item (summary, band keys, time) before it asks for candidates, so of
two similar items linked at the same moment at least one sees the other, and reads its
summary (the index's own until the item is stored, the stored item's after); `join` and
`merge` follow the forward pointers that `merge` leaves behind, so an item joined to a
story another process has just merged lands in the surviving story; and the surviving
story of a merge is always the one with the smaller id, whoever merges.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple, Protocol

from pipelines.store.keys import parse_instant, sortable_utc

DEFAULT_WINDOW_DAYS = 30.0
DAY_S = 86_400.0


@dataclass(frozen=True)
class KeyWindow:
    """How long a candidate entry counts: `days` after it was written (None: forever), by
    `clock` (epoch seconds; tests and benchmarks set it, nobody sleeps)."""

    days: float | None = DEFAULT_WINDOW_DAYS
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.days is not None and not self.days > 0:
            msg = (
                f"the story index window must be a positive number of days, got {self.days!r}"
                " (SYNDICATION_WINDOW_DAYS; the default is 30)"
            )
            raise ValueError(msg)

    @classmethod
    def from_setting(cls, value: object) -> KeyWindow:
        """From ``SYNDICATION_WINDOW_DAYS``: a positive number of days; None or "" is
        the default. Raises ValueError naming the setting when it is anything else."""
        if value is None or value == "":
            return cls()
        try:
            days = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            days = float("nan")
        if not days > 0 or days == float("inf"):
            msg = (
                f"SYNDICATION_WINDOW_DAYS must be a positive number of days, got {value!r}"
                " (the default is 30)"
            )
            raise ValueError(msg)
        return cls(days=days)

    @property
    def seconds(self) -> float | None:
        return None if self.days is None else self.days * DAY_S

    def cutoff(self, now: float) -> float:
        """Entries written before this (epoch seconds) no longer count."""
        return float("-inf") if self.seconds is None else now - self.seconds


@dataclass(frozen=True)
class ItemSummary:
    """What linking and story assembly read of an item (a subset of `PressItem`)."""

    id: str
    source: str
    title: str
    text: str
    url: str = ""
    lead: str = ""
    lang: str | None = None
    published_at: str | None = None
    links: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["links"] = list(self.links)
        return data

    def to_json(self) -> str:
        """As the stores keep it; equal summaries give equal text (`item_stored` compares)."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ItemSummary:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        values["links"] = tuple(values.get("links") or ())
        return cls(**values)


# What an item must hold for a summary to be read from it (the fields without a default).
SUMMARY_FIELDS = frozenset({"id", "source", "title", "text"})


def stored_summary(item: dict[str, Any]) -> ItemSummary | None:
    """The summary a stored item gives (`get_items` reads it so); None when the item lacks
    a field a summary needs, so no summary would be read from it."""
    if not item.keys() >= SUMMARY_FIELDS:
        return None
    return ItemSummary.from_dict(item)


class Lookup(NamedTuple):
    """One candidate read of `StoryIndex.enter`: the items under at least `at_least` of
    `keys`. With `most`, only that many of them, the best first: each key an item shares
    weighs one over the number of items under it (a name few items carry says more than a
    name half the day carries), then by id, so that every index gives the same answer. A
    plain ``(keys, at_least)`` pair is a lookup without a bound."""

    keys: Sequence[str]
    at_least: int
    most: int | None = None


def looked_up(under: dict[str, Iterable[str]], at_least: int, most: int | None) -> set[str]:
    """What a `Lookup` finds, given the items under each of its keys."""
    counts: Counter[str] = Counter()
    weights: Counter[str] = Counter()
    for items in under.values():
        listed = list(items)
        for item in listed:
            counts[item] += 1
            weights[item] += 1 / len(listed)
    found = [item for item, count in counts.items() if count >= at_least]
    if most is not None and len(found) > most:
        found.sort(key=lambda item: (-weights[item], item))
        del found[most:]
    return set(found)


@dataclass(frozen=True)
class Entry:
    """What `StoryIndex.enter` did: the story the item is in, whether it was entered now
    (False: it was linked before and nothing was written), and per lookup the items found."""

    story: str
    new: bool
    found: tuple[set[str], ...] = ()


class StoryIndex(Protocol):
    """The verbs story linking needs; each must be atomic on its own."""

    # --- items and candidates ---------------------------------------------------------
    def put_item(self, summary: ItemSummary) -> None:
        """Keep the summary of an item (overwrites: the same id is the same article)."""

    def get_items(self, item_ids: Iterable[str]) -> dict[str, ItemSummary]:
        """Summaries of the known ones among `item_ids` (one round trip): the index's own,
        else (a store-backed index) the stored item's."""

    def item_stored(self, item: dict[str, Any]) -> bool:
        """The store keeps `item` now (never to change): drop the index's summary of it when
        the store does hold an item of its id and the summary is exactly
        `ItemSummary.from_dict(item)`, since `get_items` reads the stored item then. Returns
        whether it was dropped (never in an index without a store)."""

    def add_keys(self, item_id: str, keys: Iterable[str]) -> None:
        """Index `item_id` under each candidate key, as written now (the window's clock);
        indexing it again renews its entries."""

    def candidates(self, keys: Iterable[str], at_least: int = 1) -> set[str]:
        """Every item indexed within the window under at least `at_least` of `keys`."""

    def enter(
        self, summary: ItemSummary, keys: Iterable[str], lookups: Sequence[Lookup], *, again: bool
    ) -> Entry:
        """A link's first step, atomic: `put_item`, `join` of the item to a story of its own
        id, `add_keys` of `keys`, then `candidates` for each lookup (the item finds itself
        among them). Writes before it reads, as the concurrency contract asks. Unless
        `again`, an item already in a story is left as it is: ``Entry(story, new=False)``."""

    def expire_keys(self) -> int:
        """Drop the entries older than the window now; returns how many (the store may
        have dropped some itself: Redis expires keys on its own)."""

    # --- stories ------------------------------------------------------------------------
    def story_of(self, item_id: str) -> str | None:
        """The story `item_id` belongs to, or None before it is linked."""

    def stories_of(self, item_ids: Iterable[str]) -> dict[str, str]:
        """`story_of` for many items in one round trip: item id → story id, for the linked
        ones among `item_ids`."""

    def join(self, story_id: str, item_id: str) -> str:
        """Put `item_id` in `story_id` (created when new, followed when merged away); returns
        the story it is in now."""

    def merge(self, story_a: str, story_b: str) -> str:
        """Make one story of two: the smaller id survives, whoever merges; the other's members
        move to it, its record is dropped and a pointer to the survivor is left. Returns the
        survivor."""

    def members(self, story_id: str) -> set[str]: ...

    def story_items(self, story_id: str) -> dict[str, ItemSummary]:
        """`get_items` of the `members` of `story_id` (followed through merges), read
        together: item id → summary, in id order."""

    def put_story(self, story_id: str, record: dict[str, Any]) -> bool:
        """Keep the assembled story (JSON-ready), replacing the previous record, and log the
        change, but only when the record's members are the story's members now; else do
        nothing and return False. A record assembled before another process joined an item
        is stale, and that process writes its own record after its join: the last writer
        always holds every member, so a story's record never loses one."""

    def get_story(self, story_id: str) -> dict[str, Any] | None: ...

    def get_stories(self, story_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """`get_story` for many stories in one round trip: each asked id (followed through
        merges) → its record, for those that have one."""

    def story_ids(self) -> list[str]:
        """Every live story, sorted."""

    def latest_stories(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Records of live stories, newest `story_first_seen` first (ties: larger id first)."""

    # --- change log ---------------------------------------------------------------------
    def changes(self, after: int = 0, limit: int = 1000) -> list[tuple[int, str]]:
        """``(sequence, story id)`` of every `put_story` after sequence `after`, oldest
        first. Sequences grow by one per put and are never reused, so a reader (the alert
        job) keeps the last one it handled as its cursor. A story id there may since have
        been merged away: `get_story` follows it to the survivor."""

    def close(self) -> None:
        """Release the connection this index opened (a shared one stays open)."""


def story_first_seen(record: dict[str, Any]) -> str:
    """When a story was first seen: its earliest member's ``published_at`` as sortable UTC
    text (``2019-11-18T04:05:00.000000Z``), or "" when no member has a time."""
    times = []
    for member in record.get("members", ()):
        value = member.get("published_at")
        if value:
            try:
                times.append(sortable_utc(parse_instant(value)))
            except ValueError:
                continue
    return min(times, default="")


class MemoryStoryIndex:
    """`StoryIndex` in dicts: for offline linking (`link_items`) and as the reference."""

    def __init__(self, window: KeyWindow | None = None) -> None:
        self.window = window or KeyWindow(days=None)
        self._items: dict[str, ItemSummary] = {}
        self._keys: dict[str, dict[str, float]] = {}  # key -> item -> when written
        self._story_of: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}
        self._merged_into: dict[str, str] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._changes: list[str] = []

    def put_item(self, summary: ItemSummary) -> None:
        self._items[summary.id] = summary

    def get_items(self, item_ids: Iterable[str]) -> dict[str, ItemSummary]:
        return {i: self._items[i] for i in item_ids if i in self._items}

    def item_stored(self, item: dict[str, Any]) -> bool:
        """No store here to read the item from: the summary stays."""
        return False

    def add_keys(self, item_id: str, keys: Iterable[str]) -> None:
        now = self.window.clock()
        for key in keys:
            self._keys.setdefault(key, {})[item_id] = now

    def candidates(self, keys: Iterable[str], at_least: int = 1) -> set[str]:
        return self._lookup(Lookup(list(keys), at_least))

    def _lookup(self, lookup: Lookup) -> set[str]:
        keys, at_least, most = Lookup(*lookup)
        cutoff = self.window.cutoff(self.window.clock())
        under = {
            key: [item for item, written in self._keys.get(key, {}).items() if written >= cutoff]
            for key in set(keys)
        }
        return looked_up(under, at_least, most)

    def enter(
        self, summary: ItemSummary, keys: Iterable[str], lookups: Sequence[Lookup], *, again: bool
    ) -> Entry:
        known = self._story_of.get(summary.id)
        if known is not None and not again:
            return Entry(known, new=False)
        self.put_item(summary)
        story_id = self.join(summary.id, summary.id)
        self.add_keys(summary.id, keys)
        found = tuple(self._lookup(lookup) for lookup in lookups)
        return Entry(story_id, new=True, found=found)

    def expire_keys(self) -> int:
        cutoff = self.window.cutoff(self.window.clock())
        dropped = 0
        for key in list(self._keys):
            entries = self._keys[key]
            for item in [i for i, written in entries.items() if written < cutoff]:
                del entries[item]
                dropped += 1
            if not entries:
                del self._keys[key]
        return dropped

    def story_of(self, item_id: str) -> str | None:
        return self._story_of.get(item_id)

    def stories_of(self, item_ids: Iterable[str]) -> dict[str, str]:
        return {i: self._story_of[i] for i in item_ids if i in self._story_of}

    def _live(self, story_id: str) -> str:
        while story_id in self._merged_into:
            story_id = self._merged_into[story_id]
        return story_id

    def join(self, story_id: str, item_id: str) -> str:
        story_id = self._live(story_id)
        previous = self._story_of.get(item_id)
        if previous is not None and previous != story_id:
            self._members[previous].discard(item_id)
        self._story_of[item_id] = story_id
        self._members.setdefault(story_id, set()).add(item_id)
        return story_id

    def merge(self, story_a: str, story_b: str) -> str:
        into, absorbed = sorted((self._live(story_a), self._live(story_b)))
        if into == absorbed:
            return into
        moved = self._members.pop(absorbed, set())
        for item_id in moved:
            self._story_of[item_id] = into
        self._members.setdefault(into, set()).update(moved)
        self._records.pop(absorbed, None)
        self._merged_into[absorbed] = into
        return into

    def members(self, story_id: str) -> set[str]:
        return set(self._members.get(self._live(story_id), set()))

    def story_items(self, story_id: str) -> dict[str, ItemSummary]:
        return self.get_items(sorted(self.members(story_id)))

    def put_story(self, story_id: str, record: dict[str, Any]) -> bool:
        if {member["item"] for member in record["members"]} != self._members.get(story_id):
            return False
        self._records[story_id] = record
        self._changes.append(story_id)
        return True

    def get_story(self, story_id: str) -> dict[str, Any] | None:
        return self._records.get(self._live(story_id))

    def get_stories(self, story_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        found = {story_id: self.get_story(story_id) for story_id in story_ids}
        return {story_id: record for story_id, record in found.items() if record is not None}

    def story_ids(self) -> list[str]:
        return sorted(s for s, members in self._members.items() if members)

    def close(self) -> None:
        """Nothing to release."""

    def latest_stories(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        live = [self._records[s] for s in self.story_ids() if s in self._records]
        live.sort(key=lambda record: (story_first_seen(record), record["id"]), reverse=True)
        return live[offset : offset + limit]

    def changes(self, after: int = 0, limit: int = 1000) -> list[tuple[int, str]]:
        return [
            (sequence, self._changes[sequence - 1])
            for sequence in range(after + 1, min(len(self._changes), after + limit) + 1)
        ]
