"""The shared store: Redis, for many crawl workers, with readable keys and JSON values."""

from __future__ import annotations

import functools
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from pipelines.store.base import ItemQuery, StoreError, text_matcher
from pipelines.store.keys import DEFAULT_PREFIX, Keys, parse_instant, sort_instant
from pipelines.store.redis_words import POST_WORDS_LUA, WordIndex, has_word_starting
from pipelines.store.urls import redact_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from pipelines.store.outbox import Outbox
    from pipelines.story_index import KeyWindow, StoryIndex

logger = logging.getLogger(__name__)

PREFIX_PARAM = "prefix"  # redis://host:6379/0?prefix=pw2: gives a second deployment its keys
CONNECT_TIMEOUT_S = 5.0
SOCKET_TIMEOUT_S = 10.0
# How many ids a filtered query fetches per round trip while it scans an index.
SCAN_BATCH = 256
NEWEST = ItemQuery()
OPEN_TIME = 1e308  # the bound of an open time range, as a number Lua can compare

# One atomic step, so a crash can never leave an item stored but unindexed (which the
# next add would then take for "already kept" and never index): SET NX decides, and only
# the process that created the item key writes the indexes, the word index among them.
# KEYS: the item; ARGV[4] sorted sets to index it in (the time index first); the
# content-hash key when ARGV[5] == "1"; the ordinal counter; the word index's "complete"
# mark; the set of sources with items; the ``words:`` keys. ARGV: item JSON, score, item
# id, sorted sets, has-hash flag, the ordinal bucket key prefix, the item's source.
ADD_ITEM_LUA = f"""
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then
    return 0
end
local item_id, sorted_sets = ARGV[3], tonumber(ARGV[4])
-- The first item of a store: the word index will hold every item (see redis_words).
local first_item = redis.call('EXISTS', KEYS[2]) == 0
for i = 2, 1 + sorted_sets do
    redis.call('ZADD', KEYS[i], ARGV[2], item_id)
end
local next_key = 2 + sorted_sets
if ARGV[5] == '1' then
    redis.call('SET', KEYS[next_key], item_id, 'NX')
    next_key = next_key + 1
end
local ordinals_key, first_word_key, bucket_prefix = KEYS[next_key], next_key + 3, ARGV[6]
if first_item then
    redis.call('SET', KEYS[next_key + 1], '1')
end
redis.call('SADD', KEYS[next_key + 2], ARGV[7])
{POST_WORDS_LUA}
return 1
"""

P = ParamSpec("P")
R = TypeVar("R")


def split_prefix(url: str) -> tuple[str, str | None]:
    """`url` without the ``prefix=`` parameter redis-py would not accept, and that prefix."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in pairs if k == PREFIX_PARAM), None)
    query = urlencode([(k, v) for k, v in pairs if k != PREFIX_PARAM])
    return urlunsplit(parts._replace(query=query)), prefix


def describe_error(exc: redis.RedisError, where: str, secret: str | None) -> str:
    """A message for `exc` that names the server and the fix, never the password."""
    detail = f"{type(exc).__name__}: {exc}"
    if secret:
        detail = detail.replace(secret, "***")
    if isinstance(exc, redis.AuthenticationError) and secret is None:
        fix = (
            "the server asks for a password and the store URL has none; put it in the URL"
            " (redis://:PASSWORD@host:port/db, e.g. in PRESSWATCH_STORE)"
        )
    elif isinstance(exc, redis.AuthenticationError):
        fix = (
            "the server refused the password (or user) in the store URL; check it"
            " against the server's requirepass or ACL"
        )
    elif isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        fix = (
            "is redis-server running and listening there? Start it, or point"
            " PRESSWATCH_STORE at the right host:port"
        )
    elif isinstance(exc, redis.exceptions.OutOfMemoryError):
        fix = "Redis is full and refuses writes; raise maxmemory (keep maxmemory-policy noeviction)"
    elif isinstance(exc, redis.exceptions.NoPermissionError):
        fix = "the Redis user lacks a permission; grant it in the ACL for this key prefix"
    else:
        fix = "see the Redis server log"
    return f"Redis at {where} failed ({detail}): {fix}"


@dataclass(frozen=True)
class RedisLink:
    """One connection to the Redis store, shared by its parts (items, stories, outbox, jobs).

    `where` (host:port or socket path) and `url` are safe to print; `password` is kept
    only to scrub it from error messages.
    """

    client: redis.Redis
    keys: Keys
    url: str
    where: str
    password: str | None

    @classmethod
    def open(cls, url: str, prefix: str | None = None) -> RedisLink:
        client_url, url_prefix = split_prefix(url)
        client = redis.Redis.from_url(
            client_url,
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            health_check_interval=30,
        )
        options = client.connection_pool.connection_kwargs
        return cls(
            client=client,
            keys=Keys(prefix or url_prefix or DEFAULT_PREFIX),
            url=redact_url(url),
            where=options.get("path") or f"{options.get('host')}:{options.get('port')}",
            password=options.get("password"),
        )

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn a Redis failure into a `StoreError` naming the server and the fix."""
        try:
            yield
        except redis.RedisError as exc:
            raise StoreError(describe_error(exc, self.where, self.password)) from exc


class HasLink(Protocol):
    link: RedisLink


Part = TypeVar("Part", bound=HasLink)


def translating_errors(
    method: Callable[Concatenate[Part, P], R],
) -> Callable[Concatenate[Part, P], R]:
    """Decorate a method of a Redis store part so its failures become `StoreError`s."""

    @functools.wraps(method)
    def wrapper(self: Part, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.link.errors():
            return method(self, *args, **kwargs)

    return wrapper


class RedisStore:
    """Items, validators and runs in Redis (``redis://[:password@]host:port/db[?prefix=pw:]``).

    Key names are in `pipelines.store.keys`; values are JSON strings. Connection, password
    and server-side failures surface as `StoreError` naming host:port and the fix.
    """

    def __init__(self, url: str, prefix: str | None = None) -> None:
        self.link = RedisLink.open(url, prefix)
        self.url = self.link.url
        self.keys = self.link.keys
        self.where = self.link.where
        self._redis = self.link.client
        self._add_item = self._redis.register_script(ADD_ITEM_LUA)
        self._words = WordIndex(self._redis, self.keys)
        self._check_server()

    @translating_errors
    def _check_server(self) -> None:
        """Fail now, not mid-crawl, when Redis is unreachable; warn when it may lose data."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.ping()
        pipe.config_get("appendonly")
        pipe.config_get("maxmemory-policy")
        _, appendonly, policy = pipe.execute(raise_on_error=False)
        if isinstance(appendonly, Exception) or isinstance(policy, Exception):
            # A managed Redis or a restricted ACL user may refuse CONFIG: nothing to check.
            logger.debug("cannot read the persistence settings of Redis at %s", self.where)
            return
        if appendonly.get("appendonly") != "yes":
            logger.warning(
                "Redis at %s has appendonly=no: a crash loses every write since the last"
                " snapshot. Set appendonly yes (appendfsync everysec).",
                self.where,
            )
        if policy.get("maxmemory-policy") != "noeviction":
            logger.warning(
                "Redis at %s has maxmemory-policy=%s: it may silently delete items."
                " Set maxmemory-policy noeviction.",
                self.where,
                policy.get("maxmemory-policy"),
            )

    # --- items -----------------------------------------------------------------------
    @translating_errors
    def add_item(self, item: dict[str, Any]) -> bool:
        item_id = item["id"]
        sorted_sets = [self.keys.items_by_time(), self.keys.source_items(item["source"])]
        if item.get("lang"):
            sorted_sets.append(self.keys.lang_items(item["lang"]))
        has_hash = bool(item.get("content_hash"))
        hash_key = (
            [self.keys.content_hash(item["source"], item["content_hash"])] if has_hash else []
        )
        created = self._add_item(
            keys=[
                self.keys.item(item_id),
                *sorted_sets,
                *hash_key,
                self.keys.item_ordinals(),
                self.keys.words_complete(),
                self.keys.item_sources(),
                *self._words.word_keys(item),
            ],
            args=[
                json.dumps(item, ensure_ascii=False),
                repr(sort_instant(item).timestamp()),
                item_id,
                len(sorted_sets),
                "1" if has_hash else "0",
                self._words.bucket_prefix(),
                item["source"],
            ],
        )
        return created == 1

    @translating_errors
    def get_item(self, item_id: str) -> dict[str, Any] | None:
        value = self._redis.get(self.keys.item(item_id))
        return json.loads(value) if value is not None else None

    @translating_errors
    def known_ids(self, item_ids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(item_ids))
        if not wanted:
            return set()
        # Every stored id is in the time index, so one ZMSCORE answers for a whole feed.
        scores = self._redis.zmscore(self.keys.items_by_time(), wanted)
        return {item_id for item_id, score in zip(wanted, scores, strict=True) if score is not None}

    @translating_errors
    def stored_copy(self, item_id: str, source: str, content_hash: str | None) -> str | None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zscore(self.keys.items_by_time(), item_id)  # every stored id is in it
        if content_hash:
            pipe.get(self.keys.content_hash(source, content_hash))
        score, *same_text = pipe.execute()
        if score is not None:
            return item_id
        return same_text[0] if same_text else None

    @translating_errors
    def items(self, query: ItemQuery = NEWEST) -> list[dict[str, Any]]:
        if query.source is not None:
            index = self.keys.source_items(query.source)
        elif query.lang is not None:
            index = self.keys.lang_items(query.lang)
        else:
            index = self.keys.items_by_time()
        since = parse_instant(query.since).timestamp() if query.since else -OPEN_TIME
        until = parse_instant(query.until).timestamp() if query.until else OPEN_TIME
        newest = f"({until!r}" if query.until else "+inf"
        oldest = repr(since) if query.since else "-inf"

        def page(start: int, count: int) -> list[dict[str, Any]]:
            ids = self._redis.zrange(
                index, newest, oldest, desc=True, byscore=True, offset=start, num=count
            )
            return self._load(ids)

        test = item_test(query)
        if test is None:
            return page(query.offset, query.limit)
        wanted = query.offset + query.limit
        matched: list[dict[str, Any]] = []
        candidates = self._words.candidates(query, index, (since, until))
        if candidates is not None:
            # The word index named every item that may match, newest first.
            for start in range(0, len(candidates), SCAN_BATCH):
                matched.extend(filter(test, self._load(candidates[start : start + SCAN_BATCH])))
                if len(matched) >= wanted:
                    break
            return matched[query.offset : wanted]
        # No index answers this filter, so walk the chosen index newest first.
        start = 0
        while len(matched) < wanted:
            batch = page(start, SCAN_BATCH)
            matched.extend(filter(test, batch))
            if len(batch) < SCAN_BATCH:
                break
            start += SCAN_BATCH
        return matched[query.offset : wanted]

    @translating_errors
    def index_words(self, starting: Callable[[int], object] | None = None) -> int:
        """Index the words of the items stored before the word index existed (a store
        written by an older Presswatch), so word searches need not scan; resumable, and
        nothing to do once done. Returns how many items it indexed."""
        return self._words.index_older_items(self._load, starting)

    def _load(self, item_ids: list[str]) -> list[dict[str, Any]]:
        if not item_ids:
            return []
        values = self._redis.mget([self.keys.item(item_id) for item_id in item_ids])
        return [json.loads(value) for value in values if value is not None]

    @translating_errors
    def item_sources(self) -> list[str]:
        if self._redis.exists(self.keys.words_complete()):
            return sorted(self._redis.smembers(self.keys.item_sources()))
        # A store older than the set (see `index_words`): find the sources' item indexes.
        pattern = self.keys.source_items("*")
        head, tail = pattern.split("*")
        found = self._redis.scan_iter(match=pattern, count=1000, _type="zset")
        return sorted({key[len(head) : -len(tail)] for key in found})

    @translating_errors
    def count_items(self, source: str | None = None) -> int:
        index = self.keys.source_items(source) if source is not None else self.keys.items_by_time()
        return self._redis.zcard(index)

    @translating_errors
    def count_items_in(
        self, windows: Sequence[tuple[str, str]], source: str | None = None
    ) -> list[int]:
        index = self.keys.source_items(source) if source is not None else self.keys.items_by_time()
        pipe = self._redis.pipeline(transaction=False)  # one round trip for every window
        for since, until in windows:
            newest = f"({parse_instant(until).timestamp()!r}"
            pipe.zcount(index, repr(parse_instant(since).timestamp()), newest)
        return [int(count) for count in pipe.execute()]

    # --- conditional requests ----------------------------------------------------------
    @translating_errors
    def get_validators(self, url: str) -> dict[str, str]:
        value = self._redis.get(self.keys.validators(url))
        return json.loads(value)["validators"] if value is not None else {}

    @translating_errors
    def set_validators(self, url: str, validators: dict[str, str]) -> None:
        # The URL is kept beside its validators so that the hashed key reads back in redis-cli.
        value = json.dumps({"url": url, "validators": validators}, ensure_ascii=False)
        self._redis.set(self.keys.validators(url), value)

    # --- crawl runs ----------------------------------------------------------------------
    @translating_errors
    def add_run(self, run: dict[str, Any]) -> None:
        score = parse_instant(run["started_at"]).timestamp()
        # MULTI/EXEC: the run and its two index entries are kept or lost together.
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self.keys.run(run["id"]), json.dumps(run, ensure_ascii=False))
        pipe.zadd(self.keys.runs(), {run["id"]: score})
        pipe.zadd(self.keys.source_runs(run["source"]), {run["id"]: score})
        pipe.execute()

    @translating_errors
    def runs(self, source: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        index = self.keys.source_runs(source) if source is not None else self.keys.runs()
        run_ids = self._redis.zrange(index, 0, limit - 1, desc=True)
        if not run_ids:
            return []
        values = self._redis.mget([self.keys.run(run_id) for run_id in run_ids])
        return [json.loads(value) for value in values if value is not None]

    # --- small named state -------------------------------------------------------------
    @translating_errors
    def get_state(self, name: str) -> dict[str, Any] | None:
        value = self._redis.get(self.keys.state(name))
        return json.loads(value) if value is not None else None

    @translating_errors
    def set_state(self, name: str, value: dict[str, Any]) -> None:
        self._redis.set(self.keys.state(name), json.dumps(value, ensure_ascii=False))

    # --- the store's other parts, on the same connection ----------------------------------
    def story_index(self, window: KeyWindow | None = None) -> StoryIndex:
        from pipelines.store.redis_stories import RedisStoryIndex

        return RedisStoryIndex(self.link, window)

    def outbox(self) -> Outbox:
        from pipelines.store.redis_outbox import RedisOutbox

        return RedisOutbox(self.link)

    def close(self) -> None:
        self._redis.close()


def item_test(query: ItemQuery) -> Callable[[dict[str, Any]], bool] | None:
    """What an item read from the query's sorted set must also pass, or None: its language
    (when the set is a source's), its words, and the caller's own test."""
    tests: list[Callable[[dict[str, Any]], bool]] = []
    if query.source is not None and query.lang is not None:
        tests.append(lambda item: item.get("lang") == query.lang)
    if query.text:
        needle = text_matcher(query.text)
        tests.append(lambda item: needle(item.get("title") or "") or needle(item.get("text") or ""))
    if query.keep is not None:
        tests.append(query.keep)
    elif query.word_prefixes:
        # `keep` would decide; without it the prefixes are the filter, as in SQLite.
        tests.append(lambda item: has_word_starting(item, query.word_prefixes))
    if not tests:
        return None
    return lambda item: all(test(item) for test in tests)
