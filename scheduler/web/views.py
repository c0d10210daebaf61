"""What the dashboard's pages show, as plain data: safe links, timeline and per-day charts
(server-drawn SVG geometry: the CSP allows no script), pages of rows and filters read from
a query string. Pure functions, tested without a server."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from pipelines.store.keys import parse_instant
from scheduler.story_view import human_lag

if TYPE_CHECKING:
    from collections.abc import Mapping
    from zoneinfo import ZoneInfo

PAGE_SIZE = 50
MAX_PAGE = 10_000  # a page number past this is a typo or a probe, not a reader
LINK_SCHEMES = frozenset({"http", "https"})
CHART_WIDTH = 720  # the SVG's own units; the stylesheet scales it to the page
LABEL_WIDTH = 150  # left of the timeline: the source of each row
ROW_HEIGHT = 22
LAG_LABEL_WIDTH = 110  # right of the furthest dot: its lag in words
BAR_CHART_HEIGHT = 90


class BadRequestError(ValueError):
    """A query-string value the page cannot use; the message names the field and the fix."""


def safe_href(url: str | None) -> str | None:
    """`url` when it may be a link (http or https, with a host); None when it must be shown
    as text (``javascript:``, ``data:``, relative or garbled URLs)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return url if parts.scheme.lower() in LINK_SCHEMES and parts.netloc else None


# --- query strings -----------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """The filters of a list page, as read from its query string (blank means unset)."""

    source: str | None = None
    lang: str | None = None
    rule: str | None = None
    q: str | None = None  # words, found in their inflected forms
    since: str | None = None  # ISO date or time, inclusive
    until: str | None = None  # ISO date or time, exclusive
    page: int = 1
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return any((self.source, self.lang, self.rule, self.q, self.since, self.until))

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE

    def params(self, **changes: object) -> str:
        """This query string with `changes` (e.g. ``page=2``), unset fields left out."""
        values = {
            "source": self.source,
            "lang": self.lang,
            "rule": self.rule,
            "q": self.q,
            "since": self.since,
            "until": self.until,
            "page": self.page if self.page != 1 else None,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v not in (None, "", 1)})


def read_filters(query: Mapping[str, str], allowed: tuple[str, ...]) -> Filters:
    """The `allowed` filters of `query`; raises `BadRequestError` for a bad time or page."""
    values: dict[str, Any] = {}
    for name in allowed:
        value = (query.get(name) or "").strip()
        if value:
            values[name] = value
    for name in ("since", "until"):
        if name in values:
            try:
                parse_instant(values[name])
            except ValueError:
                msg = (
                    f"{name} {values[name]!r} is not an ISO 8601 date or time"
                    " (e.g. 2024-05-01 or 2024-05-01T09:30+05:00)"
                )
                raise BadRequestError(msg) from None
    raw_page = (query.get("page") or "1").strip()
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= MAX_PAGE:
        msg = f"page {raw_page!r} should be a number from 1 to {MAX_PAGE}"
        raise BadRequestError(msg)
    return Filters(**values, page=int(raw_page))


# --- the story timeline --------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineRow:
    """One member of a story on the timeline chart."""

    source: str
    item: str | None
    kind: str  # original | credited | uncredited | unattributed | unknown
    lag: str  # in words ("+38 min"), "original", or "?"
    x: float  # the dot's centre, in chart units
    y: float


@dataclass(frozen=True)
class Timeline:
    rows: list[TimelineRow]
    ticks: list[tuple[float, str]]  # x, label
    width: int
    height: int
    left: int  # where the time axis starts


def member_kind(member: Mapping[str, Any]) -> str:
    """How a member stands: the original; a copy that credits someone, credits no one, or
    copies an official text and credits no one (unattributed)."""
    if member["role"] == "original":
        return "original"
    if member.get("unattributed"):
        return "unattributed"
    return "credited" if member.get("cites") else "uncredited"


def timeline(record: Mapping[str, Any]) -> Timeline:
    """The story's members on a line of lag behind the original (0 at the left), one row
    each; a member whose lag is unknown sits at 0, marked "?"."""
    members = list(record["members"])
    lags = [m["lag_seconds"] for m in members if m.get("lag_seconds") is not None]
    longest = max([*lags, 60.0])  # a story of one item still gets an axis
    span = CHART_WIDTH - LABEL_WIDTH - LAG_LABEL_WIDTH
    rows = []
    for number, member in enumerate(members):
        lag = member.get("lag_seconds")
        is_original = member["role"] == "original"
        rows.append(
            TimelineRow(
                source=member["source"],
                item=member.get("item"),
                kind=member_kind(member) if lag is not None or is_original else "unknown",
                lag="original" if is_original else human_lag(lag),
                x=LABEL_WIDTH + span * max(lag or 0.0, 0.0) / longest,
                y=ROW_HEIGHT * (number + 1),
            )
        )
    ticks = [(LABEL_WIDTH + span * share, human_lag(longest * share)) for share in (0, 0.5, 1)]
    height = ROW_HEIGHT * (len(members) + 2)
    return Timeline(rows, ticks, CHART_WIDTH, height, LABEL_WIDTH)


# --- items per day ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DayBar:
    day: str  # 2019-11-18
    count: int
    x: float
    width: float
    height: float


def day_windows(last: datetime, days: int, zone: ZoneInfo) -> list[tuple[str, str, str]]:
    """`days` whole days in `zone` ending with the day of `last`: ``(day, since, until)``
    with ISO times, oldest first."""
    end = datetime.combine(last.astimezone(zone).date() + timedelta(days=1), time(), zone)
    windows = []
    for back in range(days, 0, -1):
        start = end - timedelta(days=back)
        until = start + timedelta(days=1)
        windows.append((start.date().isoformat(), start.isoformat(), until.isoformat()))
    return windows


def day_bars(days: list[str], counts: list[int]) -> list[DayBar]:
    """Bars for a chart `CHART_WIDTH` wide and `BAR_CHART_HEIGHT` high (the tallest fills it)."""
    if not days:
        return []
    tallest = max([*counts, 1])
    step = CHART_WIDTH / len(days)
    return [
        DayBar(day, count, step * i + 1, max(step - 2, 1), BAR_CHART_HEIGHT * count / tallest)
        for i, (day, count) in enumerate(zip(days, counts, strict=True))
    ]
