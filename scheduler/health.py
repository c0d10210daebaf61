"""Source health from the history of crawl runs: one alert when a source breaks, one when it heals.

`assess` reads a source's runs (as `Store.runs` returns them) and names its state; the
rules, in the order they win:

- **blocked**: in each of the last `CONFIRM_RUNS` runs, robots.txt refused us (forbidden,
  or unreachable so we failed closed) or the server answered 403/429 for at least
  `BLOCKED_SHARE` of our content requests.
- **failing**: the last `FAILED_RUNS` runs ended failed, or in each of the last
  `CONFIRM_RUNS` runs at least `MIN_ERRORS` requests failed (5xx, timeouts and other
  download exceptions) and the error rate reached the source's threshold:
  `ERROR_FACTOR` x its usual (90th percentile) rate, at least `ERROR_FLOOR`, at most
  `ERROR_CEILING` (so a long outage cannot become the baseline and hide itself).
- **layout_changed**: in each of the last `CONFIRM_RUNS` runs with at least `MIN_PARSED`
  parsed pages, a field (title, date, text) is missing on at least `LAYOUT_MISSING` of
  them while the source's usual (median) share missing was at most `LAYOUT_USUAL_MAX`
  over at least `MIN_BASELINE` earlier runs.
- **silent**: no new item for longer than the source allows (counted from the last run
  that could not look, if that is later: an outage is not silence), the largest of
  `SILENT_FACTOR` x the 95th percentile gap between runs with new items,
  `SILENT_LONGEST_FACTOR` x the longest such gap seen (nights, weekends), and
  `SILENT_MIN_POLLS` poll intervals. Learning that needs at least `MIN_GAPS` gaps over
  `SILENT_MIN_HISTORY` of runs; with less the source is **unknown**, never silent.

`transition` turns successive assessments into at most one "broken" event when a source
leaves ok and one "recovered" event when it comes back; `remember` gives the
JSON-serialisable `HealthState` the scheduler keeps between checks.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from crawler.config import Source

State = Literal["ok", "silent", "failing", "blocked", "layout_changed", "unknown"]
BROKEN_STATES: tuple[State, ...] = ("blocked", "failing", "layout_changed", "silent")

CONFIRM_RUNS = 2  # a rate-based rule must hold on this many newest runs in a row
FAILED_RUNS = 3  # this many failed runs in a row is failing, whatever the rates
MIN_BASELINE = 5  # earlier runs needed before "usual" rates mean anything
BLOCKED_SHARE = 0.5
ERROR_FACTOR = 2.0
ERROR_FLOOR = 0.2
ERROR_CEILING = 0.5
MIN_ERRORS = 3  # one URL retried to exhaustion (Scrapy retries twice by default)
MIN_PARSED = 3
LAYOUT_MISSING = 0.5
LAYOUT_USUAL_MAX = 0.2
SILENT_FACTOR = 3.0
SILENT_LONGEST_FACTOR = 2.0
SILENT_MIN_POLLS = 4
MIN_GAPS = 5
SILENT_MIN_HISTORY = timedelta(days=7)  # so nights and a weekend are in it
HISTORY = timedelta(days=14)  # how far back the scheduler should read runs for `assess`

# A run with a status outside both sets, or a finish reason outside the last, failed
# (e.g. "failed", "killed"; "shutdown", "closespider_timeout").
UNFINISHED_STATUSES = frozenset({"running"})
COMPLETED_STATUSES = frozenset({"ok", "partial", "finished"})
NORMAL_FINISH_REASONS = frozenset({"finished", "closespider_itemcount", "closespider_pagecount"})


@dataclass(frozen=True)
class Health:
    """What `assess` concluded about one source; `reasons` carry the evidence numbers."""

    source: str
    state: State
    reasons: list[str]
    since: str | None  # ISO 8601: when the current condition began (None: ok, unknown)
    checked_at: str | None = None


@dataclass(frozen=True)
class HealthState:
    """What the scheduler keeps per source between checks (`to_json` / `from_json`)."""

    state: State
    since: str | None
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HealthState:
        return cls(state=data["state"], since=data.get("since"), reasons=data.get("reasons", []))


@dataclass(frozen=True)
class HealthEvent:
    """A source broke (`state` is how) or recovered (`state` is what it recovered from)."""

    kind: Literal["broken", "recovered"]
    source: str
    state: State
    since: str | None  # when the breakage began
    at: str | None  # when it was noticed (broken) or seen healed (recovered)
    reasons: list[str]

    @property
    def id(self) -> str:
        """Stable across re-sends, so a notifier can deduplicate (X-Alert-Id)."""
        return f"health:{self.source}:{self.kind}:{self.state}:{self.since}"


@dataclass(frozen=True)
class _Run:
    """The numbers of one finished run that the rules read."""

    started: datetime
    failed: bool
    requests: int  # content requests: robots.txt fetches left out
    errors: int
    gave_up: int
    refused: int
    robots_refused: int
    new: int
    items: int
    empty: int
    no_title: int
    no_date: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def refused_share(self) -> float:
        return self.refused / self.requests if self.requests else 0.0

    @property
    def robots_share(self) -> float:
        asked = self.requests + self.robots_refused
        return self.robots_refused / asked if asked else 0.0

    @property
    def parsed(self) -> int:
        return self.items + self.empty

    @property
    def blind(self) -> bool:
        """The run could not have seen new items: it failed, or most requests were refused
        or errored, so it is no evidence that the source went quiet."""
        return (
            self.failed
            or (self.errors >= MIN_ERRORS and self.error_rate >= ERROR_CEILING)
            or (self.refused > 0 and self.refused_share >= BLOCKED_SHARE)
            or (self.robots_refused > 0 and self.robots_share >= BLOCKED_SHARE)
        )


def _int(stats: dict[str, Any], key: str) -> int:
    value = stats.get(key, 0)
    return int(value) if isinstance(value, int | float) else 0


def _status_sum(stats: dict[str, Any], codes: Iterable[str]) -> int:
    prefix = "downloader/response_status_count/"
    return sum(_int(stats, prefix + code) for code in codes)


def _run_facts(run: dict[str, Any]) -> _Run:
    stats = run.get("stats") or {}
    server_errors = sum(
        _int(stats, key) for key in stats if key.startswith("downloader/response_status_count/5")
    )
    finish_reason = stats.get("finish_reason")
    failed = run.get("status") not in COMPLETED_STATUSES or (
        finish_reason is not None and finish_reason not in NORMAL_FINISH_REASONS
    )
    return _Run(
        started=datetime.fromisoformat(run["started_at"]),
        failed=failed,
        requests=max(
            _int(stats, "downloader/request_count") - _int(stats, "robotstxt/request_count"), 0
        ),
        errors=server_errors + _int(stats, "downloader/exception_count"),
        gave_up=_int(stats, "retry/max_reached"),
        refused=_status_sum(stats, ("403", "429")),
        robots_refused=_int(stats, "robotstxt/forbidden")
        + _int(stats, "robotstxt/blocked_unreachable"),
        new=_int(stats, "store/new"),
        items=_int(stats, "portal/items"),
        empty=_int(stats, "portal/empty"),
        no_title=_int(stats, "portal/no_title"),
        no_date=_int(stats, "portal/no_date"),
    )


def _percentile(values: list[float], percent: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def _streak(runs: list[_Run], bad: Callable[[_Run], bool]) -> list[_Run]:
    """The newest unbroken streak of `bad` runs, oldest first (`runs` oldest first)."""
    streak: list[_Run] = []
    for run in reversed(runs):
        if not bad(run):
            break
        streak.insert(0, run)
    return streak


def _earliest(streaks: list[list[_Run]]) -> datetime | None:
    return min((streak[0].started for streak in streaks if streak), default=None)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _blocked(runs: list[_Run]) -> tuple[list[str], datetime | None]:
    def robots(run: _Run) -> bool:
        return run.robots_refused > 0 and run.robots_share >= BLOCKED_SHARE

    def refused(run: _Run) -> bool:
        return run.refused > 0 and run.refused_share >= BLOCKED_SHARE

    recent = runs[-CONFIRM_RUNS:]
    if len(recent) < CONFIRM_RUNS:
        return [], None
    reasons, starts = [], []
    if all(robots(run) for run in recent):
        newest = recent[-1]
        reasons.append(
            f"robots.txt refused {newest.robots_refused} of"
            f" {newest.requests + newest.robots_refused} requests in the last run"
        )
        starts.append(_streak(runs, robots))
    if all(refused(run) for run in recent):
        newest = recent[-1]
        reasons.append(
            f"the server answered 403/429 to {newest.refused} of {newest.requests}"
            f" requests in the last run"
        )
        starts.append(_streak(runs, refused))
    return reasons, _earliest(starts)


def _failing(runs: list[_Run]) -> tuple[list[str], datetime | None]:
    reasons, starts = [], []
    failed = _streak(runs, lambda run: run.failed)
    if len(failed) >= FAILED_RUNS:
        reasons.append(f"the last {len(failed)} runs failed")
        starts.append(failed)

    recent, earlier = runs[-CONFIRM_RUNS:], runs[:-CONFIRM_RUNS]
    usual = [run.error_rate for run in earlier if run.requests]
    if len(usual) >= MIN_BASELINE:
        usual_rate = _percentile(usual, 90)
        threshold = min(ERROR_CEILING, max(ERROR_FLOOR, ERROR_FACTOR * usual_rate))
    else:
        usual_rate, threshold = None, ERROR_CEILING

    def erroring(run: _Run) -> bool:
        return run.errors >= MIN_ERRORS and run.error_rate >= threshold

    if len(recent) == CONFIRM_RUNS and all(erroring(run) for run in recent):
        newest = recent[-1]
        usual_text = f"usual {usual_rate:.0%}" if usual_rate is not None else "no baseline yet"
        reasons.append(
            f"{newest.errors} of {newest.requests} requests failed (5xx, timeouts) in the last"
            f" run: {newest.error_rate:.0%}, {usual_text}, threshold {threshold:.0%};"
            f" {newest.gave_up} given up after retries"
        )
        starts.append(_streak(runs, erroring))
    return reasons, _earliest(starts)


_FIELDS: tuple[tuple[str, Callable[[_Run], float]], ...] = (
    ("title", lambda run: run.no_title / run.items if run.items else 0.0),
    ("date", lambda run: run.no_date / run.items if run.items else 0.0),
    ("text", lambda run: run.empty / run.parsed if run.parsed else 0.0),
)


def _layout_changed(runs: list[_Run]) -> tuple[list[str], datetime | None]:
    parsed = [run for run in runs if run.parsed >= MIN_PARSED]
    recent, earlier = parsed[-CONFIRM_RUNS:], parsed[:-CONFIRM_RUNS]
    if len(recent) < CONFIRM_RUNS or len(earlier) < MIN_BASELINE:
        return [], None
    reasons, starts = [], []
    for name, missing in _FIELDS:
        usual = statistics.median(missing(run) for run in earlier)
        if usual > LAYOUT_USUAL_MAX:
            continue  # the source never reliably had this field

        def lost(run: _Run, missing: Callable[[_Run], float] = missing) -> bool:
            return missing(run) >= LAYOUT_MISSING

        if all(lost(run) for run in recent):
            reasons.append(
                f"{name} missing on {missing(recent[-1]):.0%} of {recent[-1].parsed} pages in the"
                f" last run, usually {usual:.0%}"
            )
            starts.append(_streak(parsed, lost))
    return reasons, _earliest(starts)


def _silent(
    runs: list[_Run], poll_seconds: int, now: datetime
) -> tuple[list[str], datetime | None, str | None]:
    """(reasons, since, why unknown): silence needs `MIN_GAPS` learnt gaps to be judged."""
    productive = [run.started for run in runs if run.new > 0]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(productive)]
    history = now - runs[0].started
    if len(gaps) < MIN_GAPS or history < SILENT_MIN_HISTORY:
        why = (
            f"too little history: {len(productive)} runs with new items over"
            f" {_duration(history.total_seconds())}; need {MIN_GAPS + 1}"
            f" over {_duration(SILENT_MIN_HISTORY.total_seconds())}"
        )
        return [], None, why
    longest = max(gaps)
    allowed = max(
        SILENT_FACTOR * _percentile(gaps, 95),
        SILENT_LONGEST_FACTOR * longest,
        SILENT_MIN_POLLS * poll_seconds,
    )
    # An outage is its own alert; silence counts only from when we could look again.
    looking_since = max([productive[-1], *(run.started for run in runs if run.blind)])
    if (now - looking_since).total_seconds() <= allowed:
        return [], None, None
    quiet = (now - productive[-1]).total_seconds()
    reason = (
        f"no new items for {_duration(quiet)} (since {_iso(productive[-1])});"
        f" allowed {_duration(allowed)}, longest usual gap {_duration(longest)}"
    )
    return [reason], productive[-1], None


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m"]
    text = " ".join(p for p in parts if p)
    return text.removesuffix(" 0m") if days or hours else text


def history_limit(source: Source) -> int:
    """How many runs to read (`Store.runs(source.name, limit)`) to cover `HISTORY`."""
    return HISTORY // timedelta(seconds=source.poll_seconds) + CONFIRM_RUNS


def assess(source: Source, runs: list[dict[str, Any]], now: datetime) -> Health:
    """The health of `source` judged from `runs` (any order; runs still going are ignored).

    Pass `history_limit(source)` runs so the source's rhythm shows; `now` must be
    timezone-aware, like the runs' ISO 8601 times.
    """
    finished = sorted(
        (_run_facts(run) for run in runs if run.get("status") not in UNFINISHED_STATUSES),
        key=lambda run: run.started,
    )
    checked_at = _iso(now)
    if not finished:
        return Health(source.name, "unknown", ["no finished runs yet"], None, checked_at)

    silent_reasons, silent_since, unknown_why = _silent(finished, source.poll_seconds, now)
    verdicts: list[tuple[State, list[str], datetime | None]] = [
        ("blocked", *_blocked(finished)),
        ("failing", *_failing(finished)),
        ("layout_changed", *_layout_changed(finished)),
        ("silent", silent_reasons, silent_since),
    ]
    firing = [(state, reasons, since) for state, reasons, since in verdicts if reasons]
    if firing:
        state, _, since = firing[0]
        reasons = [reason for _, found, _ in firing for reason in found]
        return Health(source.name, state, reasons, _iso(since) if since else None, checked_at)
    if unknown_why:
        return Health(source.name, "unknown", [unknown_why], None, checked_at)
    return Health(source.name, "ok", [], None, checked_at)


def _is_broken(state: State | None) -> bool:
    return state in BROKEN_STATES


def transition(previous: HealthState | None, current: Health) -> HealthEvent | None:
    """The event to send, if any: "broken" when `current` leaves ok (or a source is broken
    when first seen), "recovered" when a broken source is ok again; None when it stays ok,
    stays broken in any way, or cannot be judged (unknown)."""
    before = previous.state if previous else None
    if _is_broken(current.state) and not _is_broken(before):
        return HealthEvent(
            "broken",
            current.source,
            current.state,
            current.since,
            current.checked_at,
            current.reasons,
        )
    if current.state == "ok" and previous is not None and _is_broken(before):
        return HealthEvent(
            "recovered",
            current.source,
            previous.state,
            previous.since,
            current.checked_at,
            previous.reasons,
        )
    return None


def remember(previous: HealthState | None, current: Health) -> HealthState:
    """The state to keep after `current`: an unknown verdict and a broken source staying
    broken (in whatever way) keep what was alerted, so recovery names it."""
    if current.state == "unknown" and previous is not None:
        return previous
    if previous is not None and _is_broken(previous.state) and _is_broken(current.state):
        return previous
    return HealthState(current.state, current.since, list(current.reasons))


def message(event: HealthEvent) -> str:
    """`event` for a person: which source, what broke, since when, the numbers."""
    if event.kind == "broken":
        head = f"Source {event.source} is {event.state.replace('_', ' ')}"
        if event.since:
            head += f" since {event.since}"
    else:
        head = f"Source {event.source} recovered from {event.state.replace('_', ' ')}"
        if event.since:
            head += f" (broken since {event.since}"
            head += f", seen healthy at {event.at})" if event.at else ")"
    lines = [head + "."]
    was = "" if event.kind == "broken" else "was: "
    lines += [f"- {was}{reason}" for reason in event.reasons]
    return "\n".join(lines)
