"""Source health: synthetic run histories give one "broken" and one "recovered" event, no more."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from crawler.config import Source
from scheduler.health import (
    Health,
    HealthEvent,
    HealthState,
    assess,
    history_limit,
    message,
    remember,
    transition,
)

ALMATY = timezone(timedelta(hours=6))
START = datetime(2026, 11, 20, 8, 0, tzinfo=ALMATY)
POLL = timedelta(hours=1)
SOURCE = Source.model_validate(
    {
        "name": "akorda",
        "kind": "official",
        "domains": ["akorda.kz"],
        "discovery": {"feeds": ["https://www.akorda.kz/ru/rss"]},
        "poll": "1h",
    }
)

Stats = dict[str, Any]
Phase = Callable[[random.Random, datetime], Stats]


def healthy(rng: random.Random, at: datetime) -> Stats:
    """A portal with noise: new items in most daytime hours, fewer at night and at the
    weekend, a few 5xx and 404s, a missing date now and then."""
    quiet = at.hour < 7 or at.weekday() >= 5
    new = rng.choice([3, 4, 6, 8]) if rng.random() < (0.3 if quiet else 0.7) else 0
    requests = 4 + new + rng.randint(0, 3)
    stats: Stats = {
        "finish_reason": "finished",
        "downloader/request_count": requests + 1,
        "robotstxt/request_count": 1,
        "downloader/response_status_count/200": requests,
        "store/new": new,
        "portal/items": new,
        "portal/no_date": rng.choice([0, 0, 0, 1]) if new else 0,
        "dedup/url": rng.randint(0, 2),
    }
    if rng.random() < 0.2:
        stats["downloader/response_status_count/503"] = rng.randint(1, 2)
    if rng.random() < 0.1:
        stats["downloader/response_status_count/404"] = 1
    return stats


def stopped_publishing(rng: random.Random, at: datetime) -> Stats:
    return {**healthy(rng, at), "store/new": 0, "portal/items": 0, "portal/no_date": 0}


def returns_503(rng: random.Random, at: datetime) -> Stats:
    return {
        "finish_reason": "finished",
        "downloader/request_count": 4,
        "robotstxt/request_count": 1,
        "downloader/response_status_count/503": 3,
        "retry/max_reached": 1,
    }


def titles_vanish(rng: random.Random, at: datetime) -> Stats:
    stats = healthy(rng, at)
    return {**stats, "portal/no_title": stats["portal/items"]}


def text_vanishes(rng: random.Random, at: datetime) -> Stats:
    stats = healthy(rng, at)
    return {**stats, "store/new": 0, "portal/items": 0, "portal/empty": stats["portal/items"]}


def never_titled(rng: random.Random, at: datetime) -> Stats:
    stats = healthy(rng, at)
    return {**stats, "portal/no_title": stats["portal/items"]}


def robots_forbid(rng: random.Random, at: datetime) -> Stats:
    return {
        "finish_reason": "finished",
        "downloader/request_count": 1,
        "robotstxt/request_count": 1,
        "downloader/response_status_count/200": 1,
        "robotstxt/forbidden": 2,
    }


def robots_unreachable(rng: random.Random, at: datetime) -> Stats:
    return {
        "finish_reason": "finished",
        "downloader/request_count": 3,
        "robotstxt/request_count": 3,
        "downloader/exception_count": 3,
        "robotstxt/unreachable": 1,
        "robotstxt/blocked_unreachable": 2,
    }


def forbidden_403(rng: random.Random, at: datetime) -> Stats:
    return {
        "finish_reason": "finished",
        "downloader/request_count": 6,
        "robotstxt/request_count": 1,
        "downloader/response_status_count/403": 5,
    }


def crashed(rng: random.Random, at: datetime) -> Stats:
    return {"finish_reason": "shutdown", "downloader/request_count": 2}


def one_spike(rng: random.Random, at: datetime) -> Stats:
    """A single run where everything 503s: noise, not a breakage."""
    return returns_503(rng, at)


def simulate(
    phases: list[tuple[Phase, int]], seed: int = 7, status: str = "ok"
) -> tuple[list[HealthEvent], list[Health], list[dict[str, Any]]]:
    """Run the phases poll by poll, checking health after each run as the scheduler would."""
    rng = random.Random(seed)  # noqa: S311 - reproducible noise, not secrets
    runs: list[dict[str, Any]] = []
    events: list[HealthEvent] = []
    verdicts: list[Health] = []
    state: HealthState | None = None
    at = START
    for phase, count in phases:
        for _ in range(count):
            stats = phase(rng, at)
            run_status = "failed" if phase is crashed else status
            runs.insert(0, run(f"r{len(runs)}", at, stats, run_status))
            health = assess(SOURCE, runs, now=at + timedelta(minutes=5))
            event = transition(state, health)
            if event:
                events.append(event)
            state = HealthState.from_json(remember(state, health).to_json())
            verdicts.append(health)
            at += POLL
    return events, verdicts, runs


def run(run_id: str, at: datetime, stats: Stats, status: str = "ok") -> dict[str, Any]:
    return {
        "id": run_id,
        "source": SOURCE.name,
        "started_at": at.isoformat(),
        "ended_at": (at + timedelta(minutes=2)).isoformat(),
        "status": status,
        "stats": stats,
    }


DAY = 24  # runs at an hourly poll
LEARNT = 8 * DAY  # silence is judged after a week of history


@pytest.mark.parametrize(
    ("breakage", "runs_broken", "state", "evidence"),
    [
        (stopped_publishing, 2 * DAY, "silent", "no new items for"),
        (returns_503, 12, "failing", "3 of 3 requests failed"),
        (titles_vanish, DAY, "layout_changed", "title missing on 100%"),
        (text_vanishes, DAY, "layout_changed", "text missing on 100%"),
        (robots_forbid, 8, "blocked", "robots.txt refused 2 of 2"),
        (robots_unreachable, 8, "blocked", "robots.txt refused 2 of 2"),
        (forbidden_403, 8, "blocked", "403/429 to 5 of 5"),
        (crashed, 6, "failing", "the last 3 runs failed"),
    ],
)
def test_a_breakage_alerts_once_and_recovers_once(
    breakage: Phase, runs_broken: int, state: str, evidence: str
) -> None:
    events, _, _ = simulate([(healthy, LEARNT), (breakage, runs_broken), (healthy, DAY)])
    assert [(e.kind, e.state) for e in events] == [("broken", state), ("recovered", state)]
    broken, recovered = events
    assert any(evidence in reason for reason in broken.reasons), broken.reasons
    assert broken.since is not None
    assert recovered.since == broken.since
    assert datetime.fromisoformat(broken.since) >= START + LEARNT * POLL - DAY * POLL
    assert broken.at is not None
    assert recovered.at is not None
    assert broken.at < recovered.at
    assert broken.id != recovered.id


@pytest.mark.parametrize("seed", range(5))
def test_a_healthy_noisy_source_raises_nothing(seed: int) -> None:
    events, verdicts, _ = simulate(
        [(healthy, LEARNT), (one_spike, 1), (healthy, 3 * DAY), (one_spike, 1), (healthy, DAY)],
        seed=seed,
    )
    assert events == []
    assert verdicts[-1].state == "ok"


def test_a_busy_source_seen_for_less_than_a_week_is_unknown_not_silent() -> None:
    events, verdicts, _ = simulate([(healthy, 3 * DAY), (stopped_publishing, 3 * DAY)])
    assert events == []
    assert {v.state for v in verdicts} == {"unknown"}
    assert "too little history" in verdicts[-1].reasons[0]


def test_a_field_the_source_never_had_is_not_a_layout_change() -> None:
    events, verdicts, _ = simulate([(never_titled, LEARNT + DAY)])
    assert events == []
    assert verdicts[-1].state == "ok"


def test_too_little_history_is_unknown_not_silent() -> None:
    runs = [run("r1", START, {"store/new": 3, "portal/items": 3})]
    runs += [run(f"r{i}", START + i * POLL, {"store/new": 0}) for i in range(2, 40)]
    health = assess(SOURCE, runs, now=START + timedelta(days=2))
    assert health.state == "unknown"
    assert "too little history: 1 runs with new items" in health.reasons[0]
    assert transition(None, health) is None


def test_no_runs_is_unknown() -> None:
    health = assess(SOURCE, [], now=START)
    assert (health.state, health.reasons) == ("unknown", ["no finished runs yet"])


def test_runs_still_going_are_ignored() -> None:
    _, _, runs = simulate([(healthy, LEARNT)])
    now = START + LEARNT * POLL
    going = run("now", now, {"downloader/request_count": 1}, "running")
    assert assess(SOURCE, [going, *runs], now=now) == assess(SOURCE, runs, now=now)
    assert assess(SOURCE, runs, now=now).state == "ok"


def test_a_broken_source_first_seen_alerts_once() -> None:
    events, _, _ = simulate([(robots_forbid, 10)])
    assert [(e.kind, e.state) for e in events] == [("broken", "blocked")]


@pytest.mark.parametrize("outage", [returns_503, robots_forbid])
def test_the_quiet_after_an_outage_is_not_a_second_alert(outage: Phase) -> None:
    events, _, _ = simulate([(healthy, LEARNT), (outage, DAY), (stopped_publishing, 12)])
    assert [(e.kind, e.state) for e in events] == [
        ("broken", "failing" if outage is returns_503 else "blocked"),
        ("recovered", "failing" if outage is returns_503 else "blocked"),
    ]


def test_a_long_outage_does_not_become_the_baseline() -> None:
    events, verdicts, _ = simulate([(healthy, LEARNT), (returns_503, 2 * DAY)])
    assert [(e.kind, e.state) for e in events] == [("broken", "failing")]
    assert verdicts[-1].state == "failing"


def broken(state: str, since: str = "2026-11-20T10:00:00+06:00") -> HealthState:
    return HealthState(state, since, ["evidence"])  # type: ignore[arg-type]


def health(state: str) -> Health:
    since = None if state in ("ok", "unknown") else "2026-11-21T09:00:00+06:00"
    return Health("akorda", state, ["now"], since, "2026-11-21T10:00:00+06:00")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (None, "ok", None),
        (None, "unknown", None),
        (None, "failing", ("broken", "failing")),
        (HealthState("ok", None), "ok", None),
        (HealthState("ok", None), "unknown", None),
        (HealthState("ok", None), "silent", ("broken", "silent")),
        (HealthState("unknown", None), "blocked", ("broken", "blocked")),
        (HealthState("unknown", None), "ok", None),
        (broken("failing"), "failing", None),
        (broken("failing"), "blocked", None),
        (broken("failing"), "unknown", None),
        (broken("failing"), "ok", ("recovered", "failing")),
    ],
)
def test_transition_table(
    previous: HealthState | None, current: str, expected: tuple[str, str] | None
) -> None:
    event = transition(previous, health(current))
    assert ((event.kind, event.state) if event else None) == expected


def test_a_broken_state_is_kept_until_recovery() -> None:
    state = broken("failing")
    for current in ("blocked", "unknown", "failing"):
        state = remember(state, health(current))
    assert state == broken("failing")
    event = transition(state, health("ok"))
    assert event is not None
    assert event.since == "2026-11-20T10:00:00+06:00"
    assert remember(state, health("ok")) == HealthState("ok", None, ["now"])


def test_state_round_trips_through_json() -> None:
    import json

    state = broken("layout_changed")
    assert HealthState.from_json(json.loads(json.dumps(state.to_json()))) == state


def test_messages_name_source_state_time_and_numbers() -> None:
    events, _, _ = simulate([(healthy, LEARNT), (returns_503, 12), (healthy, 8)])
    broken_text, recovered_text = (message(e) for e in events)
    since = events[0].since
    assert broken_text.startswith(f"Source akorda is failing since {since}.")
    assert "3 of 3 requests failed (5xx, timeouts) in the last run: 100%" in broken_text
    assert "threshold" in broken_text
    assert "given up after retries" in broken_text
    assert recovered_text.startswith(f"Source akorda recovered from failing (broken since {since}")


def test_history_limit_covers_two_weeks_of_polls() -> None:
    assert history_limit(SOURCE) == 14 * 24 + 2
