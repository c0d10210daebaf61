"""The story index in the Redis store: `StoryIndex` verbs over the keys `Keys` names.

Writes that decide a story (`enter`, `join`, `merge`, `put_story`) are Lua scripts, so each runs
whole while no other client's command does; they follow the forward pointers merges leave
(see the concurrency contract in `pipelines.story_index`). A script reaches the member set
and record of a story it finds by following pointers, so it builds those two key names
from their prefix (passed in ARGV): a standalone or replicated Redis runs that fine; a
Redis Cluster would not, and Presswatch does not use one.

Candidate keys and the window (`KeyWindow`): each candidate key is a sorted set of item ids
scored by when they were written (epoch seconds), so `candidates` counts only entries
within the window, even in a key a newer item keeps alive. A key expires (PEXPIREAT) a
window after its newest entry: a write renews it, never shortens it, and trims the entries
that have left the window. Items, summaries and stories have no expiry. Keys written before
the window were plain sets: a write converts one (its members counted as written then),
a read counts its members, and `expire_keys` converts every one left (SCAN), which
`add_keys` calls at most once an hour (`SWEEP_EVERY_S`); once a sweep has found no set
left it marks the store (`Keys.story_keys_timed`) and later sweeps do nothing, since this
code writes sorted sets only.

An item's summary (``story_item:<id>``) lives until the item is stored (``item:<id>``):
`item_stored` drops it then, and `get_items` reads each id's summary, else its stored item,
in one script.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from pipelines.store.keys import parse_instant
from pipelines.store.redis import translating_errors
from pipelines.story_index import (
    Entry,
    ItemSummary,
    KeyWindow,
    Lookup,
    stored_summary,
    story_first_seen,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from pipelines.store.redis import RedisLink

logger = logging.getLogger(__name__)

# Shared by the scripts. KEYS[1] merged-pointer hash. Lua's `<` on strings follows the
# server's locale (strcoll), so ids are compared byte by byte, as Python and SQLite do.
LUA_HELPERS = """
local function live(story)
    local next_story = redis.call('HGET', KEYS[1], story)
    while next_story do
        story = next_story
        next_story = redis.call('HGET', KEYS[1], story)
    end
    return story
end
local function bytewise_less(a, b)
    for i = 1, math.min(#a, #b) do
        local x, y = string.byte(a, i), string.byte(b, i)
        if x ~= y then
            return x < y
        end
    end
    return #a < #b
end
"""

# Shared by the candidate-key scripts: a key from before the window is a set; make it a
# sorted set whose members count as written at `score`.
LUA_TIMED = """
local function timed(key, score)
    if redis.call('TYPE', key).ok == 'set' then
        local members = redis.call('SMEMBERS', key)
        redis.call('DEL', key)
        for _, member in ipairs(members) do
            redis.call('ZADD', key, score, member)
        end
    end
end
"""

# Shared by the scripts that write and read candidate keys. `add_key`: index `item` under
# `key` as written `now` (epoch s); with a window, trim the entries before `cutoff` and make
# the key expire at `expiry` (epoch ms) unless it lives longer already. `count_candidates`:
# the items under at least `at_least` of KEYS[first..last] written since `since`, counted
# here rather than by ZUNION, whose scores would add up times, not keys; with `most`, only
# that many, ranked as `Lookup` says (ids are hex: `<` is bytewise). `legacy`: keys may
# still be sets from before the window (until the sweep marks the store, see `_sweep`);
# once they cannot be, no key's type is asked. A link writes ~95 keys and reads ~150: each
# call a Lua script makes costs the server about a microsecond, and these were ~5 a key.
LUA_CANDIDATE_KEYS = (
    LUA_TIMED
    + """
local function add_key(key, item, now, cutoff, expiry, legacy)
    if legacy then
        timed(key, now)
    end
    if not cutoff then
        redis.call('ZADD', key, 'GT', now, item)
        return
    end
    -- -2: a new key, which holds nothing to trim; -1: no expiry yet.
    local expires = redis.call('PEXPIRETIME', key)
    redis.call('ZADD', key, 'GT', now, item)
    if expires ~= -2 then
        redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. cutoff)
    end
    -- A time already past deletes the key: all of it is old.
    if expires < tonumber(expiry) then
        redis.call('PEXPIREAT', key, expiry)
    end
end
local function count_candidates(first, last, at_least, since, most, legacy)
    local counts, weights, found = {}, {}, {}
    for i = first, last do
        local members
        if legacy and redis.call('TYPE', KEYS[i]).ok == 'set' then
            members = redis.call('SMEMBERS', KEYS[i])
        else
            members = redis.call('ZRANGE', KEYS[i], since, '+inf', 'BYSCORE')
        end
        local weight = 1 / #members
        for _, member in ipairs(members) do
            local count = (counts[member] or 0) + 1
            counts[member] = count
            weights[member] = (weights[member] or 0) + weight
            if count == at_least then
                found[#found + 1] = member
            end
        end
    end
    if most and #found > most then
        table.sort(found, function(a, b)
            if weights[a] ~= weights[b] then
                return weights[a] > weights[b]
            end
            return a < b
        end)
        for i = #found, most + 1, -1 do
            found[i] = nil
        end
    end
    return found
end
"""
)

# KEYS: the candidate keys to add the item to. ARGV: item id, now (epoch s), then with a
# window: the cutoff (epoch s) and when the key expires (epoch ms). One script rather than
# MULTI with a ZADD per key: the item is indexed under all its keys or none either way, and
# a script took 0.31 ms against 0.54 ms for 64 band keys on loopback.
ADD_KEYS_LUA = (
    LUA_CANDIDATE_KEYS
    + """
for i = 1, #KEYS do
    add_key(KEYS[i], ARGV[1], ARGV[2], ARGV[3], ARGV[4], true)
end
return #KEYS
"""
)

# KEYS: the candidate keys. ARGV: how many keys an item must be under, the cutoff (epoch s).
CANDIDATES_LUA = (
    LUA_CANDIDATE_KEYS
    + """
return count_candidates(1, #KEYS, tonumber(ARGV[1]), ARGV[2], nil, true)
"""
)

# KEYS: candidate keys that are still sets. ARGV: now (epoch s), when they expire (epoch ms,
# or none).
CONVERT_LUA = (
    LUA_TIMED
    + """
for i = 1, #KEYS do
    timed(KEYS[i], ARGV[1])
    if ARGV[2] and redis.call('PEXPIRETIME', KEYS[i]) == -1 then
        redis.call('PEXPIREAT', KEYS[i], ARGV[2])
    end
end
return #KEYS
"""
)
SCAN_BATCH = 1000
SWEEP_EVERY_S = 3600.0

# KEYS: the summary keys, then the stored-item keys of the same ids in the same order.
# Per id: its summary, else its stored item, else nil.
GET_ITEMS_LUA = """
local count = #KEYS / 2
local found = {}
for i = 1, count do
    found[i] = redis.call('GET', KEYS[i]) or redis.call('GET', KEYS[count + i])
end
return found
"""

# KEYS: a summary key, the stored item's key. ARGV: the summary the stored item gives.
# Drops the summary when the item is stored and gives that one; 1 when it did.
DROP_SUMMARY_LUA = """
if redis.call('EXISTS', KEYS[2]) == 1 and redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# Shared by `join` and `enter`. KEYS[1..5]: merged, by-item hash, live set, first-seen hash,
# latest zset. Puts `item` in the live story of `story`, returns that story.
LUA_JOIN = """
local function join(story, item, members_prefix)
    story = live(story)
    local previous = redis.call('HGET', KEYS[2], item)
    if previous and previous ~= story then
        local left = members_prefix .. previous
        redis.call('SREM', left, item)
        if redis.call('EXISTS', left) == 0 then
            redis.call('SREM', KEYS[3], previous)
            redis.call('ZREM', KEYS[5], previous)
        end
    end
    redis.call('HSET', KEYS[2], item, story)
    redis.call('SADD', members_prefix .. story, item)
    if redis.call('SADD', KEYS[3], story) == 1 then
        -- a story with a record but no members until now enters the newest-first list
        local seen = redis.call('HGET', KEYS[4], story)
        if seen then
            redis.call('ZADD', KEYS[5], seen, story)
        end
    end
    return story
end
"""

# KEYS: merged, by-item hash, live set, first-seen hash, latest zset.
# ARGV: story id, item id, members key prefix. Returns the story the item is in now.
JOIN_LUA = (
    LUA_HELPERS
    + LUA_JOIN
    + """
return join(ARGV[1], ARGV[2], ARGV[3])
"""
)

# A link's first step (`enter`). KEYS: merged, by-item hash, live set, first-seen hash,
# latest zset, the item's summary key, the mark of a store whose candidate keys are all
# timed (`Keys.story_keys_timed`), its candidate keys, then each lookup's keys in turn.
# ARGV: item id, summary JSON, members key prefix, "again" ("1" or "0"), now (epoch s), the
# read cutoff (epoch s), how many candidate keys, how many lookups, each lookup's key count,
# `at_least` and `most` (-1: no bound), then with a window: the trim cutoff (epoch s) and
# expiry (epoch ms).
# Returns {story, 1 when entered now or 0, the items found by each lookup...}.
ENTER_LUA = (
    LUA_HELPERS
    + LUA_JOIN
    + LUA_CANDIDATE_KEYS
    + """
local item = ARGV[1]
if ARGV[4] ~= '1' then
    local known = redis.call('HGET', KEYS[2], item)
    if known then
        return {known, 0}
    end
end
redis.call('SET', KEYS[6], ARGV[2])
local story = join(item, item, ARGV[3])
local legacy = redis.call('EXISTS', KEYS[7]) == 0
local own, lookups = tonumber(ARGV[7]), tonumber(ARGV[8])
local trim_at, expiry = ARGV[9 + 3 * lookups], ARGV[10 + 3 * lookups]
for i = 8, 7 + own do
    add_key(KEYS[i], item, ARGV[5], trim_at, expiry, legacy)
end
local reply, first = {story, 1}, 8 + own
for n = 1, lookups do
    local at = 6 + 3 * n
    local count, at_least, most = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
    if most < 0 then
        most = nil
    end
    reply[#reply + 1] = count_candidates(first, first + count - 1, at_least, ARGV[6], most, legacy)
    first = first + count
end
return reply
"""
)

# KEYS: merged, by-item hash, live set, first-seen hash, latest zset.
# ARGV: story a, story b, members key prefix, record key prefix. Returns the survivor.
MERGE_LUA = (
    LUA_HELPERS
    + """
local into, absorbed = live(ARGV[1]), live(ARGV[2])
if into == absorbed then
    return into
end
if bytewise_less(absorbed, into) then
    into, absorbed = absorbed, into
end
local from, to = ARGV[3] .. absorbed, ARGV[3] .. into
local moved = redis.call('SMEMBERS', from)
-- item by item, so a merge costs what moves, not the size of the story it joins
for _, item in ipairs(moved) do
    redis.call('HSET', KEYS[2], item, into)
    redis.call('SADD', to, item)
end
if #moved > 0 then
    redis.call('DEL', from)
    redis.call('SREM', KEYS[3], absorbed)
    if redis.call('SADD', KEYS[3], into) == 1 then
        local seen = redis.call('HGET', KEYS[4], into)
        if seen then
            redis.call('ZADD', KEYS[5], seen, into)
        end
    end
end
redis.call('DEL', ARGV[4] .. absorbed)
redis.call('HDEL', KEYS[4], absorbed)
redis.call('ZREM', KEYS[5], absorbed)
redis.call('HSET', KEYS[1], absorbed, into)
return into
"""
)

# KEYS: merged, record, first-seen hash, live set, latest zset, change list.
# ARGV: story id, record JSON, first-seen score. Returns the change's sequence.
PUT_STORY_LUA = """
-- Only a record of the story's members now (see StoryIndex.put_story): the same count and
-- each one a member. A story merged away since it was assembled has none, so no record.
if redis.call('SCARD', KEYS[7]) ~= #ARGV - 3 then
    return 0
end
for i = 4, #ARGV do
    if redis.call('SISMEMBER', KEYS[7], ARGV[i]) == 0 then
        return 0
    end
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then
    redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
end
redis.call('RPUSH', KEYS[6], ARGV[1])
return 1
"""

# KEYS: merged. ARGV: story id, members key prefix. The members of the live story.
MEMBERS_LUA = (
    LUA_HELPERS
    + """
return redis.call('SMEMBERS', ARGV[2] .. live(ARGV[1]))
"""
)

# KEYS: merged. ARGV: story id, members key prefix, summary key prefix, stored-item key
# prefix. Each member of the live story and its summary, else its stored item (none when it
# has neither): {id, JSON, id, JSON, ...}.
STORY_ITEMS_LUA = (
    LUA_HELPERS
    + """
local found = {}
for _, item in ipairs(redis.call('SMEMBERS', ARGV[2] .. live(ARGV[1]))) do
    local value = redis.call('GET', ARGV[3] .. item) or redis.call('GET', ARGV[4] .. item)
    if value then
        found[#found + 1] = item
        found[#found + 1] = value
    end
end
return found
"""
)

# KEYS: merged. ARGV: story id, record key prefix. The live story's record, or nil.
GET_STORY_LUA = (
    LUA_HELPERS
    + """
return redis.call('GET', ARGV[2] .. live(ARGV[1]))
"""
)

# KEYS: latest zset. ARGV: first rank, last rank, record key prefix. Every id in the zset
# has a record (they are written and dropped together), so the reply has no holes.
LATEST_LUA = """
local ids = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'REV')
local records = {}
for i, story in ipairs(ids) do
    records[i] = redis.call('GET', ARGV[3] .. story)
end
return records
"""


def first_seen_score(record: dict[str, Any]) -> str:
    """The sorted-set score of a story: its first-seen time in epoch seconds, ``-inf`` when
    no member has a time (last of all, as the empty string is in `story_first_seen` order)."""
    first_seen = story_first_seen(record)
    if not first_seen:
        return "-inf"
    return repr(parse_instant(first_seen).timestamp())


class RedisStoryIndex:
    """`StoryIndex` in Redis, on the store's connection (`RedisLink`).

    The link's client belongs to the `RedisStore` that opened it, which the other store
    parts share: `close` leaves it open, and `RedisStore.close` closes it.
    """

    def __init__(self, link: RedisLink, window: KeyWindow | None = None) -> None:
        self.link = link
        self.window = window or KeyWindow()
        self._redis = link.client
        self._keys = link.keys
        self._add_keys = self._redis.register_script(ADD_KEYS_LUA)
        self._candidates = self._redis.register_script(CANDIDATES_LUA)
        self._convert = self._redis.register_script(CONVERT_LUA)
        self._join = self._redis.register_script(JOIN_LUA)
        self._merge = self._redis.register_script(MERGE_LUA)
        self._put_story = self._redis.register_script(PUT_STORY_LUA)
        self._members = self._redis.register_script(MEMBERS_LUA)
        self._story_items = self._redis.register_script(STORY_ITEMS_LUA)
        self._enter = self._redis.register_script(ENTER_LUA)
        self._get_story = self._redis.register_script(GET_STORY_LUA)
        self._latest = self._redis.register_script(LATEST_LUA)
        self._get_items = self._redis.register_script(GET_ITEMS_LUA)
        self._drop_summary = self._redis.register_script(DROP_SUMMARY_LUA)
        self._next_sweep = float("-inf")

    def _story_keys(self) -> list[str]:
        keys = self._keys
        return [
            keys.merged_stories(),
            keys.item_stories(),
            keys.live_stories(),
            keys.story_first_seen(),
            keys.latest_stories(),
        ]

    # --- items and candidates -----------------------------------------------------------
    @translating_errors
    def put_item(self, summary: ItemSummary) -> None:
        self._redis.set(self._keys.story_item(summary.id), summary.to_json())

    @translating_errors
    def get_items(self, item_ids: Iterable[str]) -> dict[str, ItemSummary]:
        wanted = list(dict.fromkeys(item_ids))
        if not wanted:
            return {}
        keys = self._keys
        values = self._get_items(keys=[*map(keys.story_item, wanted), *map(keys.item, wanted)])
        return {
            item_id: ItemSummary.from_dict(json.loads(value))
            for item_id, value in zip(wanted, values, strict=True)
            if value is not None
        }

    @translating_errors
    def item_stored(self, item: dict[str, Any]) -> bool:
        summary = stored_summary(item)
        if summary is None:
            return False
        return bool(
            self._drop_summary(
                keys=[self._keys.story_item(summary.id), self._keys.item(summary.id)],
                args=[summary.to_json()],
            )
        )

    def _expiry_args(self, now: float) -> list[str]:
        """The cutoff (epoch s) and expiry (epoch ms) of keys written `now`; none without
        a window."""
        seconds = self.window.seconds
        if seconds is None:
            return []
        return [repr(now - seconds), str(int((now + seconds) * 1000))]

    @translating_errors
    def add_keys(self, item_id: str, keys: Iterable[str]) -> None:
        wanted = [self._keys.story_key(key) for key in set(keys)]
        if wanted:
            now = self.window.clock()
            self._add_keys(keys=wanted, args=[item_id, repr(now), *self._expiry_args(now)])
            if now >= self._next_sweep:
                self._sweep(now)

    @translating_errors
    def candidates(self, keys: Iterable[str], at_least: int = 1) -> set[str]:
        wanted = [self._keys.story_key(key) for key in set(keys)]
        if not wanted:
            return set()
        cutoff = self.window.cutoff(self.window.clock())
        return set(self._candidates(keys=wanted, args=[max(at_least, 1), repr(cutoff)]))

    @translating_errors
    def enter(
        self, summary: ItemSummary, keys: Iterable[str], lookups: Sequence[Lookup], *, again: bool
    ) -> Entry:
        story_key = self._keys.story_key
        own = [story_key(key) for key in set(keys)]
        bounded = [Lookup(*lookup) for lookup in lookups]
        asked = [[story_key(key) for key in set(lookup.keys)] for lookup in bounded]
        now = self.window.clock()
        reply = self._enter(
            keys=[
                *self._story_keys(),
                self._keys.story_item(summary.id),
                self._keys.story_keys_timed(),
                *own,
                *(key for wanted in asked for key in wanted),
            ],
            args=[
                summary.id,
                summary.to_json(),
                self._keys.story_members(""),
                "1" if again else "0",
                repr(now),
                repr(self.window.cutoff(now)),
                len(own),
                len(asked),
                *(
                    value
                    for wanted, lookup in zip(asked, bounded, strict=True)
                    for value in (
                        len(wanted),
                        max(lookup.at_least, 1),
                        -1 if lookup.most is None else lookup.most,
                    )
                ),
                *self._expiry_args(now),
            ],
        )
        story, entered, *found = reply
        if entered and now >= self._next_sweep:
            self._sweep(now)
        return Entry(story, new=bool(entered), found=tuple(set(items) for items in found))

    @translating_errors
    def expire_keys(self) -> int:
        """Redis drops old entries itself (key expiry; trimming on write): this gives keys
        from before the window, still sets, their times and expiry. Returns 0."""
        self._sweep(self.window.clock())
        return 0

    def _sweep(self, now: float) -> None:
        """Convert the candidate keys that are still sets (see the module docstring); a
        whole SCAN of the keyspace, so done until one finds none, then never again."""
        self._next_sweep = now + SWEEP_EVERY_S
        done = self._keys.story_keys_timed()
        if self._redis.exists(done):
            return
        expiry = self._expiry_args(now)[1:]
        batch: list[str] = []
        converted = 0
        pattern = self._keys.story_key("*")
        for key in self._redis.scan_iter(match=pattern, count=SCAN_BATCH, _type="set"):
            batch.append(key)
            if len(batch) >= SCAN_BATCH:
                converted += self._convert(keys=batch, args=[repr(now), *expiry])
                batch = []
        if batch:
            converted += self._convert(keys=batch, args=[repr(now), *expiry])
        if converted:
            logger.info("story index: %d candidate keys from before the window timed", converted)
        else:
            self._redis.set(done, repr(now))

    # --- stories ------------------------------------------------------------------------
    @translating_errors
    def story_of(self, item_id: str) -> str | None:
        return self._redis.hget(self._keys.item_stories(), item_id)

    @translating_errors
    def stories_of(self, item_ids: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(item_ids))
        if not wanted:
            return {}
        found = self._redis.hmget(self._keys.item_stories(), wanted)
        return {i: story for i, story in zip(wanted, found, strict=True) if story is not None}

    @translating_errors
    def join(self, story_id: str, item_id: str) -> str:
        return self._join(
            keys=self._story_keys(), args=[story_id, item_id, self._keys.story_members("")]
        )

    @translating_errors
    def merge(self, story_a: str, story_b: str) -> str:
        return self._merge(
            keys=self._story_keys(),
            args=[story_a, story_b, self._keys.story_members(""), self._keys.story("")],
        )

    @translating_errors
    def members(self, story_id: str) -> set[str]:
        members = self._members(
            keys=[self._keys.merged_stories()], args=[story_id, self._keys.story_members("")]
        )
        return set(members)

    @translating_errors
    def story_items(self, story_id: str) -> dict[str, ItemSummary]:
        keys = self._keys
        flat = self._story_items(
            keys=[keys.merged_stories()],
            args=[story_id, keys.story_members(""), keys.story_item(""), keys.item("")],
        )
        found = dict(zip(flat[::2], flat[1::2], strict=True))
        return {
            item_id: ItemSummary.from_dict(json.loads(found[item_id])) for item_id in sorted(found)
        }

    @translating_errors
    def put_story(self, story_id: str, record: dict[str, Any]) -> bool:
        keys = self._keys
        members = sorted({member["item"] for member in record["members"]})
        return bool(
            self._put_story(
                keys=[
                    keys.merged_stories(),
                    keys.story(story_id),
                    keys.story_first_seen(),
                    keys.live_stories(),
                    keys.latest_stories(),
                    keys.story_changes(),
                    keys.story_members(story_id),
                ],
                args=[
                    story_id,
                    json.dumps(record, ensure_ascii=False),
                    first_seen_score(record),
                    *members,
                ],
            )
        )

    @translating_errors
    def get_story(self, story_id: str) -> dict[str, Any] | None:
        value = self._get_story(
            keys=[self._keys.merged_stories()], args=[story_id, self._keys.story("")]
        )
        return json.loads(value) if value is not None else None

    @translating_errors
    def get_stories(self, story_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = list(dict.fromkeys(story_ids))
        pipe = self._redis.pipeline(transaction=False)
        for story_id in wanted:
            self._get_story(
                keys=[self._keys.merged_stories()],
                args=[story_id, self._keys.story("")],
                client=pipe,
            )
        values = pipe.execute() if wanted else []
        return {
            story_id: json.loads(value)
            for story_id, value in zip(wanted, values, strict=True)
            if value is not None
        }

    @translating_errors
    def story_ids(self) -> list[str]:
        return sorted(self._redis.smembers(self._keys.live_stories()))

    @translating_errors
    def latest_stories(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        values = self._latest(
            keys=[self._keys.latest_stories()],
            args=[offset, offset + limit - 1, self._keys.story("")],
        )
        return [json.loads(value) for value in values]

    # --- change log ---------------------------------------------------------------------
    @translating_errors
    def changes(self, after: int = 0, limit: int = 1000) -> list[tuple[int, str]]:
        if limit <= 0:
            return []
        story_ids = self._redis.lrange(self._keys.story_changes(), after, after + limit - 1)
        return [(after + 1 + n, story_id) for n, story_id in enumerate(story_ids)]

    def close(self) -> None:
        """Nothing to release: the connection is the store's (see the class docstring)."""
