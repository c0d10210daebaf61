"""Keep each source's learned body template in the store from one crawl to the next."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.exceptions import NotConfigured

from pipelines.store.base import StoreError
from pipelines.storing import crawler_store

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


def state_name(source: str) -> str:
    return f"template/{source}"


class TemplateMemory:
    """A Scrapy extension for the portal spider's `TemplateLearner` (crawler.templates).

    A scheduled crawl of a source fetches a few new articles, too few to learn a template
    before they are all parsed. So the template a crawl ends with is kept in the store
    (state ``template/<source>``), and the next crawl of the source starts from it: its
    first page is a check, and a template the site has since outgrown is dropped there.
    Settings: ``PRESSWATCH_LEARN_TEMPLATES``.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.remembered: str | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> TemplateMemory:
        if not crawler.settings.getbool("PRESSWATCH_LEARN_TEMPLATES", True):
            raise NotConfigured("PRESSWATCH_LEARN_TEMPLATES is off")
        memory = cls(crawler)
        crawler.signals.connect(memory.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(memory.spider_closed, signal=signals.spider_closed)
        return memory

    def spider_opened(self, spider: Spider) -> None:
        learner = getattr(spider, "templates", None)
        if learner is None:  # not the portal spider, or its source names its body
            return
        try:
            state = crawler_store(self.crawler).get_state(state_name(spider.source.name))
        except StoreError:
            logger.warning("could not read the remembered template of %s", spider.source.name)
            return
        self.remembered = (state or {}).get("template")
        learner.remember(self.remembered)

    def spider_closed(self, spider: Spider) -> None:
        learner = getattr(spider, "templates", None)
        if learner is None or learner.template == self.remembered:
            return
        try:
            crawler_store(self.crawler).set_state(
                state_name(spider.source.name), {"template": learner.template}
            )
        except StoreError:
            logger.warning("could not keep the learned template of %s", spider.source.name)
