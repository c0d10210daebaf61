"""How stored records are indexed: every Redis key name, and the instant items are sorted by."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DEFAULT_PREFIX = "pw:"


@dataclass(frozen=True)
class Keys:
    """Redis key names under one prefix, readable in ``redis-cli``.

    Two deployments (or two test runs) share a server by taking different prefixes.
    """

    prefix: str = DEFAULT_PREFIX

    def item(self, item_id: str) -> str:
        """String: the item as JSON."""
        return f"{self.prefix}item:{item_id}"

    def items_by_time(self) -> str:
        """Sorted set of every item id, score = `sort_instant` in epoch seconds."""
        return f"{self.prefix}items:by_time"

    def source_items(self, source: str) -> str:
        """Sorted set of one source's item ids, scored like `items_by_time`."""
        return f"{self.prefix}source:{source}:items"

    def lang_items(self, lang: str) -> str:
        """Sorted set of the item ids in one language, scored like `items_by_time`."""
        return f"{self.prefix}lang:{lang}:items"

    def item_sources(self) -> str:
        """Set of the names of the sources with at least one item."""
        return f"{self.prefix}sources:with_items"

    def content_hash(self, source: str, digest: str) -> str:
        """String: the id of the first item of `source` stored with this content hash."""
        return f"{self.prefix}source:{source}:hash:{digest}"

    # --- the word index (pipelines.store.redis_words) ------------------------------------
    def item_ordinals(self) -> str:
        """String: a counter, the ordinal of the last item given one (one per stored item)."""
        return f"{self.prefix}items:ordinals"

    def ordinal_items(self, bucket: int | str) -> str:
        """Hash of one bucket of ordinals (``ordinal // 128``): ``ordinal % 128`` → item id.
        Small buckets stay listpack-encoded, a few bytes an item."""
        return f"{self.prefix}items:by_ordinal:{bucket}"

    def words(self, prefix: str) -> str:
        """String of 4-byte big-endian ordinals: the items with a word starting with
        `prefix` (the folded word's first letters, `redis_words.INDEXED_LETTERS`)."""
        return f"{self.prefix}words:{prefix}"

    def words_complete(self) -> str:
        """String, present once the word index holds every stored item (a store older
        than the index gains it from `RedisStore.index_words`)."""
        return f"{self.prefix}words:_complete"

    def words_lock(self) -> str:
        """String with a TTL: held by the process indexing older items' words."""
        return f"{self.prefix}words:_indexing"

    def validators(self, url: str) -> str:
        """String: JSON ``{"url", "validators"}``; hashed because URLs are long and odd."""
        digest = hashlib.sha1(url.encode("utf-8"), usedforsecurity=False).hexdigest()
        return f"{self.prefix}validators:{digest}"

    def run(self, run_id: str) -> str:
        """String: one crawl run as JSON."""
        return f"{self.prefix}run:{run_id}"

    def runs(self) -> str:
        """Sorted set of every run id, score = start time in epoch seconds."""
        return f"{self.prefix}runs"

    def source_runs(self, source: str) -> str:
        """Sorted set of one source's run ids, scored like `runs`."""
        return f"{self.prefix}source:{source}:runs"

    def state(self, name: str) -> str:
        """String: a small named JSON record (a job's cursor, a source's health state)."""
        return f"{self.prefix}state:{name}"

    # --- stories (pipelines.store.redis_stories) ------------------------------------------
    def story_item(self, item_id: str) -> str:
        """String: what linking reads of an item (`ItemSummary`) as JSON, until the item is
        stored (`item`), which it is then read from."""
        return f"{self.prefix}story_item:{item_id}"

    def story_key(self, key: str) -> str:
        """Sorted set of the item ids indexed under one candidate key (an LSH band such as
        ``07:9f86d081884c7d65``, or a dated name such as ``n:2019-11-18:мамин``), scored by
        when each was written (epoch seconds); a plain set when written before the window."""
        return f"{self.prefix}story_key:{key}"

    def story_keys_timed(self) -> str:
        """String, set once no candidate key is a plain set from before the window (every
        one is a sorted set scored by time): the epoch seconds of the sweep that found so."""
        return f"{self.prefix}stories:keys_timed"

    def item_stories(self) -> str:
        """Hash: item id → the id of the story it belongs to."""
        return f"{self.prefix}stories:by_item"

    def story_members(self, story_id: str) -> str:
        """Set of the item ids of one live story."""
        return f"{self.prefix}story_members:{story_id}"

    def story(self, story_id: str) -> str:
        """String: one story's assembled record (`Story.to_dict()`) as JSON."""
        return f"{self.prefix}story:{story_id}"

    def merged_stories(self) -> str:
        """Hash: id of a story merged away → id of the story it merged into (forward pointer)."""
        return f"{self.prefix}stories:merged"

    def live_stories(self) -> str:
        """Set of the ids of every story with at least one member."""
        return f"{self.prefix}stories:live"

    def story_first_seen(self) -> str:
        """Hash: story id → `story_first_seen` of its record in epoch seconds (``-inf`` when
        no member has a time), for every kept record."""
        return f"{self.prefix}stories:first_seen"

    def latest_stories(self) -> str:
        """Sorted set of the live story ids that have a record, score = their first-seen epoch
        seconds (ties read newest first by id, as Redis orders equal scores by member)."""
        return f"{self.prefix}stories:latest"

    def story_changes(self) -> str:
        """List of story ids, one per `put_story`: the id at index i has sequence i + 1."""
        return f"{self.prefix}stories:changes"

    # --- alerts outbox (pipelines.store.redis_outbox) -------------------------------------
    def outbox_alert(self, alert_id: str) -> str:
        """String: one alert as JSON (`pipelines.store.outbox`)."""
        return f"{self.prefix}outbox:alert:{alert_id}"

    def outbox_alerts(self) -> str:
        """Sorted set of every alert id, score = creation time in epoch seconds."""
        return f"{self.prefix}outbox:alerts"

    def outbox_keys(self) -> str:
        """Hash: alert key (``rule|item``, or a notice id) → the id of the alert it finds."""
        return f"{self.prefix}outbox:keys"

    def outbox_delivery(self, delivery_id: str) -> str:
        """String: one delivery (alert × channel) as JSON, with its status and attempts."""
        return f"{self.prefix}outbox:delivery:{delivery_id}"

    def outbox_alert_deliveries(self, alert_id: str) -> str:
        """Set of the delivery ids of one alert."""
        return f"{self.prefix}outbox:deliveries:{alert_id}"

    def outbox_due(self) -> str:
        """Sorted set of the pending delivery ids, score = next attempt in epoch seconds."""
        return f"{self.prefix}outbox:due"

    def outbox_leases(self) -> str:
        """Sorted set of the claimed delivery ids, score = when the claim lapses (epoch s)."""
        return f"{self.prefix}outbox:leases"

    def outbox_lease_owners(self) -> str:
        """Hash: claimed delivery id → the sender holding it (a random token per sender)."""
        return f"{self.prefix}outbox:lease_owners"

    # --- scheduler: job store and leader lease (scheduler.jobstore, scheduler.leader) -----

    def scheduler_jobs(self) -> str:
        """Hash: scheduler job id → the job as JSON (`scheduler.jobstore`), never pickle."""
        return f"{self.prefix}scheduler:jobs"

    def scheduler_run_times(self) -> str:
        """Sorted set of job ids due to run, score = next run time in epoch seconds."""
        return f"{self.prefix}scheduler:run_times"

    def scheduler_leader(self) -> str:
        """String with a TTL: the token of the scheduler that leads (`scheduler.leader`)."""
        return f"{self.prefix}scheduler:leader"


def parse_instant(value: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime; a time without offset is taken as UTC.

    Raises ValueError naming the value when it is not ISO 8601.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        msg = f"not an ISO 8601 time: {value!r} (expected e.g. 2019-11-18T10:05:00+06:00)"
        raise ValueError(msg) from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def sort_instant(item: dict[str, Any]) -> datetime:
    """The instant an item is ordered and filtered by: published, else fetched, else now.

    A page with a garbled date still gets stored and ordered by when it was fetched.
    """
    for field in ("published_at", "fetched_at"):
        value = item.get(field)
        if value:
            try:
                return parse_instant(value)
            except ValueError:
                continue
    return datetime.now(UTC)


def sortable_utc(instant: datetime) -> str:
    """Fixed-width UTC text that sorts like the instant (``2019-11-18T04:05:00.000000Z``)."""
    return instant.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
