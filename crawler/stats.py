"""Scrapy's in-memory stats collector, without a deprecation check on every attribute read.

Scrapy 2.13 deprecated the ``spider`` argument of the stats methods (scrapy#7011) with a
``__getattribute__`` on `StatsCollector` that runs on every attribute read, the
collector's own ``self._stats`` included, and raises and catches an AttributeError for
most of them. A crawl updates a stat some twenty times a page, and the check cost the
reactor half a millisecond a page (upstream has since made it cheaper: scrapy#7045,
scrapy#7842). Nothing in Presswatch passes ``spider``, so nothing is lost without it.
"""

from __future__ import annotations

from scrapy.statscollectors import MemoryStatsCollector


class MemoryStats(MemoryStatsCollector):
    """`MemoryStatsCollector` with plain attribute access (``STATS_CLASS``)."""

    __getattribute__ = object.__getattribute__
