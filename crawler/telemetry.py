"""Sentry for every entry point: init with by-value secret scrubbing, a Scrapy extension,
Crons check-ins around scheduled crawls, and one event per failed job or delivery.

Nothing here sends anything unless ``SENTRY_DSN`` is set. Each process that called
`init_sentry` calls `flush` before it exits: ``crawler.run.main`` after its crawl, the
service after its scheduler has stopped, the CLI when its command returns (Sentry's own
atexit hook would wait 2 s at most, and not at all on ``os._exit``).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from sentry_sdk._types import Event, Hint, MonitorConfig
    from twisted.python.failure import Failure

logger = logging.getLogger(__name__)

FILTERED = "[Filtered]"
# Shorter values would blank ordinary words all over an event; a secret that short is weak
# anyway, and the patterns below still catch it inside a URL or a query string.
MIN_SECRET_LENGTH = 4
# A path segment or query value of a notifier URL is a token when it is this long and
# mixes letters and digits (Slack/Discord webhook ids, Telegram bot tokens).
MIN_TOKEN_LENGTH = 8
ALWAYS_SECRET_ENV = frozenset({"SENTRY_DSN", "PRESSWATCH_STORE"})
# Notifier URLs arrive as ${VAR} in rules.yaml; *_URL and the like hold them.
SECRET_ENV_NAME = re.compile(
    # `_PWD` with its underscore: a bare PWD is the shell's working directory
    r"(?:_PWD|(?:^|_)(?:PASSWORD|PASSWD|PASS|TOKEN|SECRET|KEY|APIKEY|DSN|URL|URLS|URI|WEBHOOK"
    r"|CREDENTIALS))$",
    re.IGNORECASE,
)
SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # the userinfo of any URL: redis://:pw@, mailto://user:pw@, https://token@
    (re.compile(r"\b([a-z][a-z0-9+.-]*://)[^\s/?#@]+@", re.IGNORECASE), rf"\1{FILTERED}@"),
    # a Telegram bot token, in an API URL (…/bot<id>:<token>/) or on its own (tgram://)
    (re.compile(r"\bbot\d+:[\w-]+"), f"bot{FILTERED}"),
    (re.compile(r"\b\d{6,}:[\w-]{30,}"), FILTERED),
    # password=…, token=… in query strings, connection strings and reprs
    (
        re.compile(
            r"\b((?:password|passwd|pwd|token|access_token|api_key|apikey|secret|sentry_key)"
            r"=)[^&\s'\"#,;)]+",
            re.IGNORECASE,
        ),
        rf"\1{FILTERED}",
    ),
)
# Key names the SDK's own scrubber blanks wherever they appear, beside its defaults.
EXTRA_DENYLIST = ["dsn", "webhook", "webhook_url", "smtp_password", "store_url", "channel_url"]
SENTRY_TAG_MAX = 200  # Sentry drops longer tag values
MONITOR_SLUG = re.compile(r"[^a-z0-9_-]+")
MONITOR_SLUG_MAX = 50


# --- scrubbing by value ---------------------------------------------------------------


def _looks_like_token(text: str) -> bool:
    return (
        len(text) >= MIN_TOKEN_LENGTH
        and any(c.isdigit() for c in text)
        and any(c.isalpha() for c in text)
    )


def secret_parts(value: str) -> set[str]:
    """`value` and, when it is a URL, the parts of it that are secret on their own: the
    password (or a lone user name, which is then a token: a Sentry DSN key), and the
    path segments, query values and, outside http(s), the host that look like tokens
    (apprise's ``tgram://TOKEN/CHAT``, ``slack://A/B/C``). A user name beside a password
    is not secret: scrubbing a login such as "alerts" would blank that word everywhere."""
    value = value.strip()
    parts = {value}
    if "://" not in value:
        return parts
    url = urlsplit(value)
    userinfo, at, host = url.netloc.rpartition("@")
    if at:
        # user:password, or a lone token as user (a Sentry DSN key, https://TOKEN@host)
        secret = userinfo.partition(":")[2] if ":" in userinfo else userinfo
        parts |= {secret, unquote(secret)}
    candidates = [*url.path.split("/"), *(v for _, v in parse_qsl(url.query))]
    if url.scheme.lower() not in ("http", "https"):
        candidates.append(host)
    parts |= {candidate for candidate in candidates if _looks_like_token(candidate)}
    return parts


def secret_values(environ: Mapping[str, str], extra: Iterable[str] = ()) -> list[str]:
    """Every value to scrub: the secret-looking environment variables and `extra`, with
    their secret parts and URL-quoted forms."""
    sources = [v for k, v in environ.items() if k in ALWAYS_SECRET_ENV or SECRET_ENV_NAME.search(k)]
    values: set[str] = set()
    for source in [*sources, *extra]:
        for part in secret_parts(source):
            values |= {part, quote(part, safe=""), quote_plus(part)}
    return [value for value in values if len(value) >= MIN_SECRET_LENGTH]


class SecretScrubber:
    """Replace known secret values and secret-shaped patterns in any JSON-like value."""

    def __init__(self, values: Iterable[str]) -> None:
        # longest first, so that a whole URL goes before the password inside it
        self.values = sorted(set(values), key=len, reverse=True)

    def scrub_text(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, FILTERED)
        for pattern, replacement in SECRET_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def scrub(self, value: Any) -> Any:
        """`value` with every string in it scrubbed, dict keys included, however deep."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, Mapping):
            return {self.scrub(key): self.scrub(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(item) for item in value]
        return value

    def before_send(self, event: Event, hint: Hint) -> Event:
        scrubbed = self.scrub(event)
        # Relay routes trace sampling by the DSN's public key in the sampling context; the
        # key goes in every request's auth header anyway, so it alone is kept there.
        trace = event.get("contexts", {}).get("trace", {})
        sampling = trace.get("dynamic_sampling_context", {})
        if "public_key" in sampling:
            scrubbed_trace = scrubbed["contexts"]["trace"]
            scrubbed_trace["dynamic_sampling_context"]["public_key"] = sampling["public_key"]
        return scrubbed

    def before_breadcrumb(self, crumb: dict[str, Any], hint: Hint) -> dict[str, Any]:
        return self.scrub(crumb)


# --- init and flush ---------------------------------------------------------------------


def release() -> str:
    try:
        return f"presswatch@{version('presswatch')}"
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "presswatch@unknown"


def init_sentry(component: str, *, secrets: Iterable[str] = (), source: str | None = None) -> bool:
    """Start Sentry for this process when ``SENTRY_DSN`` is set; return whether it did.

    `component` (crawl, service, cli) and `source` become tags of every event. `secrets`
    are values to scrub besides the DSN and the secret-looking environment variables:
    pass the store URL and the notifier URLs the process holds.
    """
    dsn = os.environ.get("SENTRY_DSN", "").strip()
    if not dsn:
        return False
    scrubber = SecretScrubber(secret_values(os.environ, [dsn, *secrets]))
    sentry_sdk.init(
        dsn=dsn,
        release=release(),
        environment=os.environ.get("SENTRY_ENVIRONMENT") or "production",
        # No PII and no frame locals. `send_default_pii` is not passed: off is its default,
        # and sentry-sdk 2.75 deprecates the option (even set to False) for `data_collection`,
        # which would in turn switch off the key-name EventScrubber below.
        include_local_variables=False,
        # Logs become breadcrumbs, never events: Scrapy logs each download error at ERROR;
        # failures worth an event are captured explicitly (extension, jobs, deliveries).
        integrations=[LoggingIntegration(level=logging.INFO, event_level=None)],
        # No automatic aiohttp/redis instrumentation: its breadcrumbs would carry item
        # payloads, and what we report is chosen here.
        auto_enabling_integrations=False,
        event_scrubber=EventScrubber(recursive=True, denylist=[*DEFAULT_DENYLIST, *EXTRA_DENYLIST]),
        before_send=scrubber.before_send,
        before_breadcrumb=scrubber.before_breadcrumb,
    )
    scope = sentry_sdk.get_global_scope()
    scope.set_tag("component", component)
    if source:
        scope.set_tag("source", source[:SENTRY_TAG_MAX])
    logger.info("Sentry reporting is on for the %s", component)
    return True


def flush(timeout: float = 5.0) -> None:
    """Send what is queued (at most `timeout` s); call it before the process exits."""
    if sentry_sdk.is_initialized():
        sentry_sdk.flush(timeout=timeout)


# --- explicit events --------------------------------------------------------------------


def capture_failure(
    failure: BaseException | str,
    *,
    kind: str,
    details: Mapping[str, Any] | None = None,
    **tags: str,
) -> str | None:
    """Report a failed job or delivery as one event tagged ``failure=<kind>`` and `tags`
    (``source=…``, ``job=…``, ``channel=…``), with `details` as its ``failure`` context.

    A message (no exception at hand) should be stable, "delivery failed for good", with
    the varying parts in `details`: Sentry groups events by it. Returns the event id, or
    None when Sentry is off.
    """
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("failure", kind)
        for name, value in tags.items():
            scope.set_tag(name, value[:SENTRY_TAG_MAX])
        if details:
            scope.set_context("failure", dict(details))
        if isinstance(failure, str):
            return sentry_sdk.capture_message(failure, level="error")
        return sentry_sdk.capture_exception(failure)


def monitor_config(
    schedule: timedelta | str, *, max_runtime: timedelta | None = None
) -> MonitorConfig:
    """A Crons monitor for an interval (`timedelta`) or a crontab expression (`str`).

    Sentry counts intervals in whole minutes, so a shorter one becomes a minute. A
    check-in may come a quarter of an interval late (jitter, a queue of crawls) before it
    counts as missed.
    """
    if isinstance(schedule, str):
        config: MonitorConfig = {"schedule": {"type": "crontab", "value": schedule}}
        margin = 1
    else:
        minutes = max(1, math.ceil(schedule.total_seconds() / 60))
        config = {"schedule": {"type": "interval", "value": minutes, "unit": "minute"}}
        margin = max(1, minutes // 4)
    config["checkin_margin"] = margin
    config["timezone"] = "UTC"
    if max_runtime is not None:
        config["max_runtime"] = max(1, math.ceil(max_runtime.total_seconds() / 60))
    return config


def cron_checkin(
    monitor_slug: str,
    schedule: timedelta | str | None = None,
    *,
    max_runtime: timedelta | None = None,
) -> sentry_sdk.monitor:
    """A context manager around one scheduled run: an ``in_progress`` check-in on entry,
    then ``ok``, or ``error`` when the block raises, with its duration. With a `schedule`
    the monitor is created or updated (upserted) from it. A no-op when Sentry is off."""
    slug = MONITOR_SLUG.sub("-", monitor_slug.lower()).strip("-")[:MONITOR_SLUG_MAX]
    config = monitor_config(schedule, max_runtime=max_runtime) if schedule is not None else None
    return sentry_sdk.monitor(monitor_slug=slug, monitor_config=config)


# --- the Scrapy extension ---------------------------------------------------------------


class SentryExtension:
    """Report a crawl's spider and item pipeline exceptions to Sentry with a ``source``
    tag: once per exception type per source per run, so a broken page layout does not
    flood it; every occurrence is counted. Download errors and retry give-ups are not
    reported: stats and source health judge those.

    Settings: ``SENTRY_ENABLED`` (default True). Not configured without ``SENTRY_DSN``.
    Stats: ``sentry/spider_errors``, ``sentry/item_errors``, ``sentry/events`` (reported),
    ``sentry/repeats`` (counted, not reported).
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.reported: set[tuple[str, str]] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SentryExtension:
        # Scrapy is imported here, not at the top: every CLI command imports this module
        # for `init_sentry`, and most never crawl.
        from scrapy import signals
        from scrapy.exceptions import NotConfigured

        if not crawler.settings.getbool("SENTRY_ENABLED", True):
            raise NotConfigured("SENTRY_ENABLED is off")
        if not os.environ.get("SENTRY_DSN", "").strip():
            raise NotConfigured("SENTRY_DSN is not set")
        if not sentry_sdk.is_initialized():
            # `scrapy crawl portal` from the repository root: no entry point of ours ran.
            init_sentry("crawl", secrets=[crawler.settings.get("PRESSWATCH_STORE", "")])
        extension = cls(crawler)
        crawler.signals.connect(extension.spider_error, signal=signals.spider_error)
        crawler.signals.connect(extension.item_error, signal=signals.item_error)
        return extension

    def spider_error(self, failure: Failure, response: Response | Failure) -> None:
        self._report("spider_error", failure, getattr(response, "url", None))

    def item_error(self, failure: Failure, response: Response | None) -> None:
        self._report("item_error", failure, getattr(response, "url", None))

    def _report(self, kind: str, failure: Failure, url: str | None) -> None:
        stats = self.crawler.stats
        assert stats is not None
        stats.inc_value(f"sentry/{kind}s")
        error_type = failure.type.__qualname__ if failure.type else "unknown"
        if (kind, error_type) in self.reported:
            stats.inc_value("sentry/repeats")
            return
        self.reported.add((kind, error_type))
        spider = self.crawler.spider
        source = getattr(getattr(spider, "source", None), "name", None) or getattr(
            spider, "name", "unknown"
        )
        from scrapy.utils.log import failure_to_exc_info

        with sentry_sdk.new_scope() as scope:
            scope.set_tag("source", source)
            scope.set_tag("scrapy", kind)
            scope.set_context("scrapy", {"kind": kind, "url": url})
            sentry_sdk.capture_exception(failure_to_exc_info(failure))
        stats.inc_value("sentry/events")
