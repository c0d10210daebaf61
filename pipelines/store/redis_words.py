"""The Redis store's word index: which items hold a word starting with given letters.

Redis 7 without modules has no full-text search, so a word search would read every item
newest first: 13 s for a rare word among 100,000 items. This index keeps, per folded word
prefix (`INDEXED_LETTERS` letters, or the whole word when shorter), the ordinals of the items
that hold such a word: ``words:<prefix>`` is a string of 4-byte ordinals that each stored
item appends to, and ``items:by_ordinal:<n // 128>`` maps ordinals back to item ids in small
listpack hashes. An item costs ~4 bytes per distinct prefix plus ~25 bytes for its ordinal,
instead of a sorted-set entry (~60 bytes) per word.

Both are written by the store's item-adding script in the same atomic step as the item, so
an item is never stored unindexed. A store older than the index lacks the
``words:_complete`` mark: its searches scan until `index_older_items` has indexed the items
written before (`RedisStore.index_words`, run by ``presswatch web`` at start).

A search reads the postings of the query's words (`ItemQuery.word_prefixes`: any of them;
`ItemQuery.text`: its rarest word), maps them to ids and times in one server-side script,
and loads the candidates newest first until enough pass the query's own tests. A common word
is left to the newest-first scan, which finds a page of matches sooner (`use_index`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pipelines.store.base import ItemQuery, fold

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import redis

    from pipelines.store.keys import Keys

INDEXED_LETTERS = 4  # a prefix this long narrows a word well; longer ones add keys, not speed
SHORTEST_WORD = 2  # one-letter words ("в", "и", digits) are in nearly every item: not indexed
BUCKET = 128  # ordinals per hash: under hash-max-listpack-entries (128), so compact
POSTING = ">I4"  # Lua struct format of one ordinal: 4 bytes, big-endian
POSTING_BYTES = 4
# Choosing between the index and the newest-first scan. Reading a candidate's id and time
# through the index costs about 1/INDEX_TO_SCAN_COST of reading and testing one item in a
# scan (an estimate, not yet tuned: a few µs of server-side script against tens of µs to
# load, parse and test a multi-KB item). A scan reads about
# wanted * scanned / candidates items before it has `wanted` matches; the index reads every
# candidate's id and time, then about `wanted` items. Below ALWAYS_INDEX candidates the
# index is cheap whatever the scan would cost; above MOST_CANDIDATES the server-side
# script would hold Redis up too long (tens of ms), so the scan runs instead.
INDEX_TO_SCAN_COST = 30
ALWAYS_INDEX = 2000
MOST_CANDIDATES = 60_000
LOCK_MS = 60_000  # how long the indexing of older items holds its lock between batches
OLDER_BATCH = 200

# Extra folds that matching applies (`scheduler.matcher.FOLDS`): Kazakh Latin ı, ə, ɵ.
# Folding more than the query's tests do is safe: the index only narrows, the tests decide.
EXTRA_FOLDS = {"ı": "i", "ə": "ә", "ɵ": "ө"}
WORD = re.compile(r"[^\W_]+")  # as `pipelines.store.base.WORD`

# The Lua that gives a newly stored item its ordinal and posts it under its word prefixes.
# Used inside the store's item-adding script (after its SET NX) and by `INDEX_ITEM_LUA`.
# Expects: `ordinals_key` (the counter), `first_word_key` (index in KEYS of the first
# ``words:`` key, the rest follow), `bucket_prefix` and `item_id`.
POST_WORDS_LUA = f"""
local ordinal = redis.call('INCR', ordinals_key)
redis.call('HSET', bucket_prefix .. math.floor(ordinal / {BUCKET}), ordinal % {BUCKET}, item_id)
local posting = struct.pack('{POSTING}', ordinal)
for i = first_word_key, #KEYS do
    redis.call('APPEND', KEYS[i], posting)
end
"""

# Index one item stored before the index existed. KEYS[1] the counter, KEYS[2..] its
# ``words:`` keys; ARGV: the ordinal bucket key prefix, the item id.
INDEX_ITEM_LUA = f"""
local ordinals_key, first_word_key, bucket_prefix, item_id = KEYS[1], 2, ARGV[1], ARGV[2]
{POST_WORDS_LUA}
return ordinal
"""

# The candidates of a search: the union of the ordinals under KEYS[2..], as ids with their
# time in the sorted set KEYS[1] (the time, source or language index), kept when they are
# in it with since <= time < until. ARGV: bucket key prefix, since, until (epoch seconds;
# -1e308 and 1e308 when open). Returns a flat list: id, time, id, time, ...
CANDIDATES_LUA = f"""
local bucket_prefix, since, before = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local seen, found = {{}}, {{}}
for k = 2, #KEYS do
    local postings = redis.call('GET', KEYS[k])
    if postings then
        for at = 1, #postings, {POSTING_BYTES} do
            local ordinal = struct.unpack('{POSTING}', postings, at)
            if not seen[ordinal] then
                seen[ordinal] = true
                local id = redis.call(
                    'HGET', bucket_prefix .. math.floor(ordinal / {BUCKET}), ordinal % {BUCKET})
                if id then
                    local score = redis.call('ZSCORE', KEYS[1], id)
                    if score then
                        local time = tonumber(score)
                        if time >= since and time < before then
                            found[#found + 1] = id
                            found[#found + 1] = score
                        end
                    end
                end
            end
        end
    end
end
return found
"""


def index_fold(value: str) -> str:
    """`value` as the index keeps words: case folded, ``ё`` as ``е``, Kazakh Latin ı as i.

    Each extra fold is replaced only where its letter occurs: `str.translate` with a table
    looks every character of a Cyrillic text up in a dict, and took a tenth of the crawl
    thread's own time of a Redis crawl (every item is folded as it is stored)."""
    folded = fold(value)
    for letter, replacement in EXTRA_FOLDS.items():
        if letter in folded:
            folded = folded.replace(letter, replacement)
    return folded


def indexed_prefixes(item: dict[str, Any]) -> list[str]:
    """The distinct prefixes under which `item` is indexed: of each word of its title and
    text of at least `SHORTEST_WORD` letters, its first `INDEXED_LETTERS` letters."""
    text = index_fold(f"{item.get('title') or ''}\n{item.get('text') or ''}")
    found = {word[:INDEXED_LETTERS] for word in WORD.findall(text) if len(word) >= SHORTEST_WORD}
    return sorted(found)


def has_word_starting(item: dict[str, Any], prefixes: Iterable[str]) -> bool:
    """Whether a word of `item`'s title or text starts with one of `prefixes` (folded as
    the index folds), which is what `ItemQuery.word_prefixes` asks of an item."""
    wanted = tuple(index_fold(prefix) for prefix in prefixes)
    return any(
        word.startswith(wanted)
        for field in ("title", "text")
        for word in WORD.findall(index_fold(item.get(field) or ""))
    )


def posting_sets(query: ItemQuery) -> list[list[str]]:
    """Sets of index prefixes such that every item `query` selects is posted under at
    least one prefix of each set; any one set yields candidates. Empty: no set can.

    `word_prefixes` give one set (any of them), when each is at least `INDEXED_LETTERS`
    long: a shorter prefix would need every longer prefix it begins. Each word of `text`
    gives a set of its own, since all must appear: the words before the last are whole words
    (indexed whole when short), the last may be a prefix.
    """
    sets: list[list[str]] = []
    prefixes = [index_fold(prefix) for prefix in query.word_prefixes]
    if prefixes and all(len(prefix) >= INDEXED_LETTERS for prefix in prefixes):
        sets.append(sorted({prefix[:INDEXED_LETTERS] for prefix in prefixes}))
    words = WORD.findall(index_fold(query.text or ""))
    for number, word in enumerate(words):
        shortest = INDEXED_LETTERS if number == len(words) - 1 else SHORTEST_WORD
        if len(word) >= shortest:
            sets.append([word[:INDEXED_LETTERS]])
    return sets


def use_index(candidates: int, scanned: int, wanted: int) -> bool:
    """Whether reading `candidates` through the index beats scanning the `scanned` items of
    the query's time, source or language index newest first for `wanted` matches."""
    if candidates <= ALWAYS_INDEX:
        return True
    if candidates > MOST_CANDIDATES:
        return False
    # If the candidates are spread evenly in time, the scan finds `wanted` of them after
    # reading wanted * scanned / candidates items (all of them, when fewer match).
    scan_reads = min(scanned, wanted * scanned / candidates)
    return candidates / INDEX_TO_SCAN_COST + wanted < scan_reads


class WordIndex:
    """The word index of one Redis store: its keys, scripts and searches."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        self._index_item = client.register_script(INDEX_ITEM_LUA)
        self._candidates = client.register_script(CANDIDATES_LUA)

    def word_keys(self, item: dict[str, Any]) -> list[str]:
        return [self._keys.words(prefix) for prefix in indexed_prefixes(item)]

    def bucket_prefix(self) -> str:
        return self._keys.ordinal_items("")

    def candidates(
        self, query: ItemQuery, index: str, bounds: tuple[float, float]
    ) -> list[str] | None:
        """The ids that may match `query`, newest first, when the index should answer it
        (see `use_index`); None when the query is better (or only) scanned. `index` is the
        sorted set the scan would read; `bounds` its since and until in epoch seconds."""
        sets = posting_sets(query)
        if not sets:
            return None
        flat = [self._keys.words(prefix) for prefix_set in sets for prefix in prefix_set]
        pipe = self._redis.pipeline(transaction=False)
        pipe.exists(self._keys.words_complete())
        pipe.zcard(index)
        for key in flat:
            pipe.strlen(key)
        complete, scanned, *lengths = pipe.execute()
        if not complete:
            return None  # items older than the index may hold the words: scan them all
        sizes = dict(zip(flat, lengths, strict=True))
        cheapest = min(sets, key=lambda keys: sum(sizes[self._keys.words(k)] for k in keys))
        count = sum(sizes[self._keys.words(k)] for k in cheapest) // POSTING_BYTES
        if not use_index(count, scanned, query.offset + query.limit):
            return None
        if count == 0:
            return []
        found = self._candidates(
            keys=[index, *(self._keys.words(prefix) for prefix in cheapest)],
            args=[self.bucket_prefix(), repr(bounds[0]), repr(bounds[1])],
        )
        timed = {found[i]: float(found[i + 1]) for i in range(0, len(found), 2)}
        # Newest first, equal times by the larger id: the order of the sorted sets' ZRANGE.
        return sorted(timed, key=lambda item_id: (timed[item_id], item_id), reverse=True)

    def index_older_items(
        self,
        load: Callable[[list[str]], list[dict[str, Any]]],
        starting: Callable[[int], object] | None = None,
    ) -> int:
        """Index every stored item that has no ordinal yet (stored before the index
        existed), with its source among the sources with items, then mark the index
        complete; returns how many were indexed.

        `starting` is told how many items it is about to index, when there are any.
        Resumable: a run cut short leaves the mark unset, and the next one indexes only
        what is still missing. One process at a time (a lock with a TTL); items stored
        meanwhile are indexed by their own writes, so they are never indexed twice: every
        stored id is read before the ordinals are.
        """
        if self._redis.exists(self._keys.words_complete()):
            return 0
        lock = self._keys.words_lock()
        if not self._redis.set(lock, "1", nx=True, px=LOCK_MS):
            return 0  # another process is indexing them
        try:
            stored = self._redis.zrange(self._keys.items_by_time(), 0, -1)
            last = int(self._redis.get(self._keys.item_ordinals()) or 0)
            pipe = self._redis.pipeline(transaction=False)
            for bucket in range(last // BUCKET + 1):
                pipe.hvals(self._keys.ordinal_items(bucket))
            indexed = {item_id for values in pipe.execute() for item_id in values}
            missing = [item_id for item_id in stored if item_id not in indexed]
            if missing and starting is not None:
                starting(len(missing))
            for start in range(0, len(missing), OLDER_BATCH):
                pipe = self._redis.pipeline(transaction=False)
                for item in load(missing[start : start + OLDER_BATCH]):
                    pipe.sadd(self._keys.item_sources(), item["source"])
                    self._index_item(
                        keys=[self._keys.item_ordinals(), *self.word_keys(item)],
                        args=[self.bucket_prefix(), item["id"]],
                        client=pipe,
                    )
                pipe.pexpire(lock, LOCK_MS)
                pipe.execute()
            self._redis.set(self._keys.words_complete(), "1")
            return len(missing)
        finally:
            self._redis.delete(lock)
