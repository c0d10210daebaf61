"""Scrapy settings of the crawler: safety defaults first, then the spider's own wiring."""

from __future__ import annotations

import os

BOT_NAME = "presswatch"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

# ---------------------------------------------------------------------------------------
# Safety defaults (RELIABILITY.md §4): robots, identity, limits, retries, egress, TLS.
# ---------------------------------------------------------------------------------------

# A contact URL lets a site operator reach us instead of blocking us.
USER_AGENT = os.environ.get(
    "PRESSWATCH_USER_AGENT", "Presswatch/0.1 (+https://github.com/presswatch/presswatch)"
)

# Scrapy's own robots middleware fails open on an unreachable robots.txt; ours fails closed.
ROBOTSTXT_OBEY = True
ROBOTSTXT_MAX_BYTES = 500 * 1024  # RFC 9309: parse at least the first 500 KiB

DOWNLOAD_TIMEOUT = 30
DNS_TIMEOUT = 10
DOWNLOAD_MAXSIZE = 10 * 1024 * 1024
DOWNLOAD_WARNSIZE = 2 * 1024 * 1024
# A truncated body must never be parsed into an item.
DOWNLOAD_FAIL_ON_DATALOSS = True
DOWNLOAD_VERIFY_CERTIFICATES = True

REDIRECT_MAX_TIMES = 5
# Only near-immediate meta refreshes are redirects; slower ones are page furniture.
METAREFRESH_MAXDELAY = 5

RETRY_ENABLED = True
RETRY_TIMES = 3
# Sentry's logging integration turns every ERROR into an event; per-source stats alert instead.
RETRY_GIVE_UP_LOG_LEVEL = "WARNING"
# Scrapy's list, plus browser failures (a crashed or timed-out page) from scrapy-playwright.
RETRY_EXCEPTIONS = [
    "scrapy.exceptions.CannotResolveHostError",
    "scrapy.exceptions.DownloadConnectionRefusedError",
    "scrapy.exceptions.DownloadFailedError",
    "scrapy.exceptions.DownloadTimeoutError",
    "scrapy.exceptions.ResponseDataLossError",
    "twisted.internet.error.ConnectionDone",
    "twisted.internet.error.ConnectError",
    "twisted.internet.error.ConnectionLost",
    "builtins.OSError",
    "scrapy.core.downloader.handlers.http11.TunnelError",
    "playwright.async_api.Error",
]
RETRY_BACKOFF_BASE = 2.0  # seconds before the first retry, doubled on each further one
RETRY_BACKOFF_MAX = 60.0  # ceiling of one exponential backoff delay
RETRY_AFTER_MAX = 300.0  # a longer Retry-After defers the host to the next run

CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 2
# Also AutoThrottle's floor. Scrapy 2.19 under asyncio enforces the per-domain limit only
# when the delay is non-zero: with 0 a slot releases its whole queue at once.
DOWNLOAD_DELAY = 0.5
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0

# Only the web: no local files, inline data, FTP or S3 fetches.
DOWNLOAD_HANDLERS = {"file": None, "data": None, "ftp": None, "s3": None}
# Every resolved address is checked against the egress policy before we connect.
TWISTED_DNS_RESOLVER = "crawler.egress.EgressFilteringResolver"
EGRESS_ENABLED = True
EGRESS_ALLOW_NETS: list[str] = []  # CIDRs let through despite being private (tests, demo)

DOWNLOADER_MIDDLEWARES = {
    "crawler.egress.EgressMiddleware": 40,
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "crawler.robots.FailClosedRobotsTxtMiddleware": 100,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawler.retry.BackoffRetryMiddleware": 550,
}

# Scrapy's own collector checks for a deprecated argument on every read (crawler.stats).
STATS_CLASS = "crawler.stats.MemoryStats"

# Both open a local control channel into the crawl process; nothing here needs them.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False

# A crawl of one source that runs past an hour or 1 GiB is stuck or leaking.
CLOSESPIDER_TIMEOUT = 3600
MEMUSAGE_ENABLED = True
MEMUSAGE_LIMIT_MB = 1024
MEMUSAGE_WARNING_MB = 768

# ---------------------------------------------------------------------------------------
# Browser rendering (crawler/browser.py), used only by crawls of `render: browser` sources:
# the spider installs scrapy-playwright's handler for those; other crawls never start it.
# ---------------------------------------------------------------------------------------

# Chromium binary; empty: /usr/lib/chromium/chromium, else Playwright's own install.
BROWSER_EXECUTABLE = os.environ.get("PRESSWATCH_CHROMIUM", "")
# What runs as root without a sandbox or network services (FIELD_NOTES "Playwright").
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # a script that allocates without end kills its renderer, not the machine (B4)
    "--js-flags=--max-old-space-size=512",
]
BROWSER_PAGE_TIMEOUT = 45.0  # seconds for a whole page: navigation, waits, load more, HTML
BROWSER_MAX_HTML = DOWNLOAD_MAXSIZE  # characters of rendered HTML (page.content())
BROWSER_MAX_PAGE_BYTES = 3 * DOWNLOAD_MAXSIZE  # bytes a page may receive, all resources
# Playwright resource types never fetched: they cost time and bytes and carry no text.
BROWSER_SKIP_RESOURCES = ["image", "media", "font", "texttrack", "manifest"]
# All of Chromium's traffic through our filtering proxy: every hop's address checked, and
# a response cut off on the wire past twice BROWSER_MAX_PAGE_BYTES (crawler/browser.py).
BROWSER_PROXY_ENABLED = True
PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT = 30_000  # ms; the first of the page's time limits
PLAYWRIGHT_MAX_CONTEXTS = 2  # one per source, plus one while a crashed one is replaced
PLAYWRIGHT_MAX_PAGES_PER_CONTEXT = 4
PLAYWRIGHT_RESTART_DISCONNECTED_BROWSER = True

# ---------------------------------------------------------------------------------------
# Spider, pipelines and incremental crawling (owned by the spider's engineer).
# ---------------------------------------------------------------------------------------

ITEM_PIPELINES = {
    "pipelines.clean.CleanPipeline": 100,
    "pipelines.dedup.DedupPipeline": 200,
    "pipelines.syndication.SyndicationPipeline": 300,
    "pipelines.storing.StorePipeline": 900,
}
# Before robots (100): a stored article is skipped without asking anything of the site.
DOWNLOADER_MIDDLEWARES = {
    **DOWNLOADER_MIDDLEWARES,
    "pipelines.incremental.IncrementalMiddleware": 50,
}

# The store every component of a crawl writes to; crawler.run passes its own.
PRESSWATCH_STORE = os.environ.get("PRESSWATCH_STORE", "sqlite:///presswatch.db")
# sources.yaml to read `-a source=NAME` from; empty means the bundled crawler/sources.yaml.
PRESSWATCH_SOURCES = os.environ.get("PRESSWATCH_SOURCES", "")
# Extraction processes beside the reactor; 0 means one per usable CPU.
PRESSWATCH_PARSE_WORKERS = 0
# Learn where a source's pages keep the article and read later pages there, checking
# against trafilatura now and then (crawler.templates): 7 ms less CPU a page. The template
# a crawl ends with is kept for the source's next crawl (crawler.template_memory).
PRESSWATCH_LEARN_TEMPLATES = True
EXTENSIONS = {"crawler.template_memory.TemplateMemory": 500}

# A store outage (pipelines/outage.py): fetching pauses and store calls are retried with
# backoff for up to STORE_RETRY_MAX_TIME seconds; then the crawl stops (finish reason
# store_unavailable, a non-zero exit) and the items it could not store wait in a JSONL
# spool, relative to the working directory, that the source's next crawl replays first.
STORE_RETRY_ENABLED = True
STORE_RETRY_MAX_TIME = 60.0
STORE_RETRY_BASE_DELAY = 0.5
STORE_RETRY_MAX_DELAY = 8.0
STORE_SPOOL_DIR = os.environ.get("PRESSWATCH_SPOOL_DIR", "presswatch-spool")
SPIDER_MIDDLEWARES = {"pipelines.spool.SpoolReplayMiddleware": 50}

CLEAN_ENABLED = True
DEDUP_ENABLED = True
SYNDICATION_ENABLED = True
# Days a story-index candidate entry (LSH band, name key) counts after it is written; items
# and stories stay for good (pipelines.story_index.KeyWindow).
SYNDICATION_WINDOW_DAYS = 30
STORE_ENABLED = True
INCREMENTAL_ENABLED = True

# Scrapy starts this many tasks for every callback's output, whatever its size; an article
# yields one item and a feed a few hundred requests, so 100 only costs reactor time.
CONCURRENT_ITEMS = 8
