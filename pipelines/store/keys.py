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

    def content_hash(self, digest: str) -> str:
        """String: the id of the first item stored with this content hash."""
        return f"{self.prefix}hash:{digest}"

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

    # --- alerts outbox (pipelines.store.redis_outbox) -------------------------------------

    # --- scheduler: job store and leader lease (scheduler.jobstore, scheduler.leader) -----


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
