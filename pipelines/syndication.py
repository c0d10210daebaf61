"""Link each crawled item into its story (near duplicates, ru/kk twins, credits) in the store."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import DropItem, NotConfigured

from crawler.config import Organisation, Source, SourcesFile, load_sources_file
from pipelines.link_features import take
from pipelines.organisations import directory
from pipelines.outage import store_call
from pipelines.spool import replayed_ids
from pipelines.stories import StoryLinker
from pipelines.storing import (
    close_crawler_story_index,
    crawler_store,
    crawler_story_index,
    in_store_thread,
    item_dict,
)
from pipelines.story_index import KeyWindow

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from pipelines.link_features import LinkFeatures
    from pipelines.stories import StoryUpdate

logger = logging.getLogger(__name__)


def _sources_file(crawler: Crawler) -> SourcesFile:
    """The file a crawl reads, as the portal spider does: ``PRESSWATCH_SOURCES`` (setting,
    then environment variable), else the bundled file."""
    sources_file = crawler.settings.get("PRESSWATCH_SOURCES") or os.environ.get(
        "PRESSWATCH_SOURCES"
    )
    return load_sources_file(sources_file or None)


def crawl_sources(crawler: Crawler) -> list[Source]:
    """The sources a crawl knows (`_sources_file`). The spider's own source takes the place
    of its namesake, since a crawl may be handed a `Source` that no file holds
    (``crawler.run.crawl``)."""
    sources = {source.name: source for source in _sources_file(crawler).sources}
    own = getattr(crawler.spider, "source", None)
    if isinstance(own, Source):
        sources[own.name] = own
    return list(sources.values())


def crawl_organisations(crawler: Crawler) -> list[Organisation]:
    """The directory of organisations a crawl resolves citations through: the bundled one
    and the ``organisations:`` of its sources file."""
    return directory(_sources_file(crawler).organisations)


def count_update(update: StoryUpdate) -> list[str]:
    """The stats one link adds (see `SyndicationPipeline`)."""
    if not update.new:
        return ["syndication/already_linked"]
    counted = ["syndication/linked"]
    if update.joined:
        took_the_lead = update.story.original.item == update.item
        counted.append("syndication/originals_replaced" if took_the_lead else "syndication/copies")
    if update.merged:
        counted.append("syndication/merged")
    return counted


@dataclass
class UnattributedTally:
    """The unattributed copies in the stories this crawl linked into, as each story stood
    after this crawl's last link into it. A copy linked before its official original is
    flagged only when the original arrives, maybe in another source's crawl: that crawl
    counts it too, since the flag is news of its run."""

    flagged: set[str] = field(default_factory=set)

    def update(self, update: StoryUpdate) -> int:
        """Take in one link; returns how many copies are flagged now."""
        for member in update.story.members:
            if member.unattributed:
                self.flagged.add(member.item)
            else:
                self.flagged.discard(member.item)
        return len(self.flagged)


class SyndicationPipeline:
    """Link every item into its story through the crawl store's story index; the item
    passes on unchanged.

    The linker is built once per crawl, on the first item, in the store thread (off the
    reactor, like every store call), over the crawl's story index (`crawler_story_index`,
    which the store pipeline shares) and the crawl's sources
    (`crawl_sources`); its index is closed when the spider closes.

    Settings: ``SYNDICATION_ENABLED`` (True); ``SYNDICATION_WINDOW_DAYS`` (30: how long
    an item stays a candidate for later items, `KeyWindow`); ``PRESSWATCH_STORE`` and
    ``PRESSWATCH_SOURCES`` as for the store pipeline and the spider.
    Stats: ``syndication/linked`` (items linked), ``syndication/copies`` (joined a story
    that had other items, as a copy), ``syndication/originals_replaced`` (joined one and
    took its original's place: the official release arriving after its copies),
    ``syndication/merged`` (bridged two or more stories into one),
    ``syndication/unattributed`` (copies that credit no one, in the stories this crawl
    linked into: `UnattributedTally`), ``syndication/features_taken`` (links that took
    the features the extraction workers computed, `pipelines.link_features`),
    ``syndication/already_linked``
    (the index knew the item: a re-crawl), ``syndication/failed`` (linking raised; the item
    is logged at ERROR and passed on unlinked). A store outage is not a failure: the link
    is retried, and spooled with the item when the crawl gives up (`pipelines.outage`).
    """

    def __init__(self, crawler: Crawler, window: KeyWindow | None = None) -> None:
        self.crawler = crawler
        self.window = window or KeyWindow()
        self.store = crawler_store(crawler)
        self._linker: StoryLinker | None = None
        self._interrupted: set[str] = set()  # ids whose link raised; used in the store thread
        self.unattributed = UnattributedTally()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SyndicationPipeline:
        if not crawler.settings.getbool("SYNDICATION_ENABLED", True):
            raise NotConfigured("SYNDICATION_ENABLED is off")
        window = KeyWindow.from_setting(crawler.settings.get("SYNDICATION_WINDOW_DAYS"))
        return cls(crawler, window)

    def _link(self, fields: dict[str, Any], features: LinkFeatures | None = None) -> StoryUpdate:
        """Runs in the store thread: the index's connection is opened and used there.

        An item whose last link raised (the store failed midway), here or in the crawl
        that spooled it, is linked again in full (`StoryLinker.link`'s ``resume``).
        """
        if self._linker is None:
            self._linker = StoryLinker(
                crawler_story_index(self.crawler, self.window),
                crawl_sources(self.crawler),
                crawl_organisations(self.crawler),
            )
        this = str(fields.get("id"))
        resume = this in self._interrupted or this in replayed_ids(self.crawler)
        self._interrupted.add(this)
        update = self._linker.link(fields, resume=resume, features=features)
        self._interrupted.discard(this)
        return update

    async def close_spider(self) -> None:
        # Before the engine stops and the store closes (storing.crawler_store): the index
        # holds a connection of its own.
        if self._linker is not None:
            await in_store_thread(self.crawler, close_crawler_story_index, self.crawler)

    async def process_item(self, item: Any) -> Any:
        assert self.crawler.stats is not None
        fields = item_dict(item)
        try:
            # the workers' features of the item, when it comes from the portal spider
            update = await store_call(self.crawler, fields, self._link, fields, take(item))
        except DropItem:  # spooled: the store is down, and linking waits for it
            raise
        except Exception:
            # The item still goes on to the store: an article kept unlinked beats one lost
            # (Scrapy drops an item whose pipeline raises).
            logger.exception("story linking failed for %s; it goes on unlinked", fields.get("url"))
            self.crawler.stats.inc_value("syndication/failed")
            return item
        for stat in count_update(update):
            self.crawler.stats.inc_value(stat)
        self.crawler.stats.set_value("syndication/unattributed", self.unattributed.update(update))
        if self._linker is not None and self._linker.features_taken:
            self.crawler.stats.set_value("syndication/features_taken", self._linker.features_taken)
        story = update.story
        logger.debug("item %s in story %s (%d items)", update.item, story.id, len(story.members))
        return item
