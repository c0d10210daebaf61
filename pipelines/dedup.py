"""Drop an item already seen: the same canonical URL, or the same text elsewhere on its site.

The same text on another site is not a duplicate: it is a syndicated copy, which story
linking (`pipelines.syndication`) must see to show who republished a release word for word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from scrapy.exceptions import DropItem, NotConfigured

from crawler.items import content_hash, item_id
from pipelines.outage import store_call
from pipelines.storing import crawler_store, item_dict

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from pipelines.store import Store

Verdict = Literal["new", "url", "text"]


@dataclass
class SeenInRun:
    """Ids and text hashes of the items that passed in this run."""

    ids: set[str] = field(default_factory=set)
    hashes: dict[tuple[str, str], str] = field(default_factory=dict)  # (source, hash) -> id


def _keys(item: dict[str, Any]) -> tuple[str, str, bool]:
    this_id = item.get("id") or item_id(item["url"])
    text = item.get("text") or ""
    # an empty text says nothing about sameness
    return this_id, item.get("content_hash") or content_hash(text), bool(text.strip())


def seen_before(item: dict[str, Any], seen: SeenInRun) -> Verdict:
    """Whether `item` repeats one that passed in this run; a new one is recorded."""
    this_id, text_hash, has_text = _keys(item)
    if this_id in seen.ids:
        return "url"
    key = (item.get("source") or "", text_hash)
    same_text = seen.hashes.get(key) if has_text else None
    if same_text is not None and same_text != this_id:
        return "text"
    seen.ids.add(this_id)
    if has_text:
        seen.hashes.setdefault(key, this_id)
    return "new"


def stored_before(item: dict[str, Any], store: Store) -> Verdict:
    """Whether `item` repeats a stored one: its id, or its text under another id of its source."""
    this_id, text_hash, has_text = _keys(item)
    copy = store.stored_copy(this_id, item.get("source") or "", text_hash if has_text else None)
    if copy is None:
        return "new"
    return "url" if copy == this_id else "text"


class DedupPipeline:
    """Drop items whose URL, or whose text on the same source, was seen in this run or is
    in the store.

    Settings: ``DEDUP_ENABLED`` (True), ``DEDUP_USE_STORE`` (True: also compare with the
    stored items). Stats: ``dedup/url``, ``dedup/text``, ``dedup/passed``.
    """

    def __init__(self, crawler: Crawler, store: Store | None) -> None:
        self.crawler = crawler
        self.store = store
        self.seen = SeenInRun()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DedupPipeline:
        if not crawler.settings.getbool("DEDUP_ENABLED", True):
            raise NotConfigured("DEDUP_ENABLED is off")
        use_store = crawler.settings.getbool("DEDUP_USE_STORE", True)
        return cls(crawler, crawler_store(crawler) if use_store else None)

    async def process_item(self, item: Any) -> Any:
        assert self.crawler.stats is not None
        fields = item_dict(item)
        # The run's own memory first, on the reactor thread, so that two copies in flight
        # at once cannot both pass; then the store, in its thread, riding out an outage
        # (see pipelines.outage.store_call).
        verdict = seen_before(fields, self.seen)
        if verdict == "new" and self.store is not None:
            verdict = await store_call(self.crawler, fields, stored_before, fields, self.store)
        if verdict == "new":
            self.crawler.stats.inc_value("dedup/passed")
            return item
        self.crawler.stats.inc_value(f"dedup/{verdict}")
        reason = "same URL" if verdict == "url" else "same text as another URL of this source"
        raise DropItem(f"duplicate ({reason}): {fields.get('url')}", log_level="INFO")
