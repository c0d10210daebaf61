"""The alert job: new story changes → rules → one alert per (rule, story) in the outbox → send.

`run_alert_job` reads the story change log (`StoryIndex.changes`) after its cursor, matches
every rule on every member of each changed story (so a story that matches only through a
copy alerts too), and records one alert per (rule, story) in the outbox (`Outbox.record`
finds the alert again through any item of the story, so later copies, renames and merges
update it instead of alerting again). The cursor, kept with `Store.set_state` under
``alerts/cursor``, advances only after the alerts are in the outbox: a crash in between
redoes the work, and recording is idempotent. Digest rules (``mode: hourly | daily``) keep
their alerts back; when the period is over, one summary per rule and period goes out.
Then `deliver_pending` sends what is due.

`enqueue_notice` puts an operator message (a source-health alert) in the same outbox.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from crawler.telemetry import capture_failure
from pipelines.store.outbox import (
    DIGEST,
    FAILED,
    NOTICE,
    RULE,
    SENT,
    Outcome,
    after_attempt,
    rule_alert_id,
    rule_keys,
    utc_text,
)
from scheduler.matcher import compile_rules, match_item
from scheduler.notify import one_line, render, send

if TYPE_CHECKING:
    from pipelines.store import Store
    from pipelines.store.outbox import Outbox
    from pipelines.story_index import ItemSummary, StoryIndex
    from scheduler.matcher import CompiledRules
    from scheduler.rules import Rule, RulesFile

logger = logging.getLogger(__name__)

CURSOR_STATE = "alerts/cursor"
CHANGES_BATCH = 500
CLAIM_BATCH = 50
LEASE_S = 120.0  # longer than one send can take (apprise's timeouts are 4 s a request)
SEND_TIMEOUT_S = 30.0
SNIPPET_CONTEXT = 80  # characters either side of the match
MAX_TERMS_SHOWN = 5
MAX_DIGEST_LINES = 50
DIGEST_LINE_LENGTH = 600  # a title, its terms and a link
# Daily digests follow the day in Kazakhstan, where the news and its readers are.
DIGEST_ZONE = ZoneInfo("Asia/Almaty")
PERIOD = {"hourly": timedelta(hours=1), "daily": timedelta(days=1)}


@dataclass(frozen=True)
class DeliveryResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


@dataclass(frozen=True)
class AlertJobResult:
    """What one run of the alert job did."""

    changes: int  # story changes read from the log
    stories: int  # distinct live stories checked
    created: int  # new alerts
    updated: int  # existing alerts found again (their copies count kept up to date)
    digests: int  # digest summaries queued
    delivery: DeliveryResult
    cursor: int


# --- pure parts ----------------------------------------------------------------------------


def snippet(text: str, start: int, end: int, context: int = SNIPPET_CONTEXT) -> str:
    """The text around ``text[start:end]`` on one line, the match between asterisks."""
    left = max(0, start - context)
    right = min(len(text), end + context)
    # Whole words at the edges: widen to the word the cut falls in.
    while 0 < left < start and text[left - 1].isalnum():
        left -= 1
    while end < right < len(text) and text[right].isalnum():
        right += 1
    before = ("…" if left else "") + " ".join(text[left:start].split())
    after = " ".join(text[end:right].split()) + ("…" if right < len(text) else "")
    gap_before = " " if text[left:start][-1:].isspace() else ""
    gap_after = " " if text[end:right][:1].isspace() else ""
    return f"{before}{gap_before}*{text[start:end]}*{gap_after}{after}"


def period_start(mode: str, now: float) -> datetime:
    """The start of the digest period (``hourly``: UTC hour; ``daily``: Almaty day) at `now`."""
    instant = datetime.fromtimestamp(now, UTC)
    if mode == "hourly":
        return instant.replace(minute=0, second=0, microsecond=0)
    local = instant.astimezone(DIGEST_ZONE)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def period_over(mode: str, period: str, now: float) -> bool:
    return datetime.fromisoformat(period) + PERIOD[mode] <= datetime.fromtimestamp(now, UTC)


def _original_facts(record: dict[str, Any], members: dict[str, ItemSummary]) -> dict[str, Any]:
    original = record.get("original") or {}
    item = members.get(original.get("item") or "")
    url = item.url if item else (f"https://{original['domain']}" if original.get("domain") else "")
    return {
        "source": original.get("source"),
        "name": original.get("name"),
        "published_at": original.get("published_at") or (item.published_at if item else None),
        "url": url,
    }


def story_alerts(
    compiled: CompiledRules,
    record: dict[str, Any],
    members: dict[str, ItemSummary],
    now: float,
) -> list[tuple[dict[str, Any], list[str]]]:
    """The alerts a story raises, each with the keys that find it again: one per rule that
    matches any member (in the rule's scope of sources and languages)."""
    order = [m["item"] for m in record.get("members", ()) if m["item"] in members]
    found: dict[str, list[tuple[ItemSummary, dict[str, Any]]]] = {}
    for item_id in order:
        summary = members[item_id]
        result = match_item(compiled, summary.to_dict())
        for match in result["matches"]:
            found.setdefault(match["rule"], []).append((summary, match))
    lead = members[order[0]] if order else None
    alerts = []
    for rule in compiled.rules:
        hits = found.get(rule.name)
        if not hits:
            continue
        first_item, first = hits[0]
        text = getattr(first_item, first["field"])
        terms = list(dict.fromkeys(match["text"] for _, match in hits))[:MAX_TERMS_SHOWN]
        alert = {
            "id": rule_alert_id(rule.name, record["id"]),
            "kind": RULE,
            "rule": rule.name,
            "story": record["id"],
            "channels": list(rule.channels),
            "copies": len(record.get("members", ())),
            "items": sorted({summary.id for summary, _ in hits}),
            "message": {
                "title": one_line((lead.title if lead else "") or first_item.title),
                "terms": terms,
                "snippet": snippet(text, first["start"], first["end"]),
                "original": _original_facts(record, members),
            },
            "digest": _digest_of(rule, now),
            "created_at": utc_text(now),
            "updated_at": utc_text(now),
        }
        alerts.append((alert, rule_keys(rule.name, order)))
    return alerts


def _digest_of(rule: Rule, now: float) -> dict[str, str] | None:
    if not rule.is_digest:
        return None
    return {"mode": rule.mode, "period": period_start(rule.mode, now).isoformat()}


def digest_alert(rule: Rule, period: str, alerts: list[dict[str, Any]], now: float) -> dict:
    """One summary of a digest rule's alerts of one period, as an outbox alert."""
    lines = []
    for alert in sorted(alerts, key=lambda a: a["created_at"])[:MAX_DIGEST_LINES]:
        facts = alert.get("message") or {}
        original = facts.get("original") or {}
        where = original.get("url") or original.get("name") or ""
        # One line per story whatever the crawled title holds (a CR/LF would fake lines).
        line = (
            f"- {facts.get('title') or '(untitled)'} ({alert['copies']} copies; "
            f"{', '.join(facts.get('terms') or [])}) {where}"
        )
        lines.append(one_line(line, limit=DIGEST_LINE_LENGTH))
    if len(alerts) > MAX_DIGEST_LINES:
        lines.append(f"… and {len(alerts) - MAX_DIGEST_LINES} more (presswatch alerts)")
    stamp = period.replace(":", "").replace("-", "")
    alert_id = f"digest-{rule.name}-{stamp}"
    return {
        "id": alert_id,
        "kind": DIGEST,
        "rule": rule.name,
        "story": None,
        "channels": list(rule.channels),
        "copies": len(alerts),
        "items": sorted(a["id"] for a in alerts),
        "message": {
            "subject": f"[presswatch] {rule.name}: {len(alerts)} stories ({rule.mode} digest"
            f" from {period})",
            "body": "\n".join(lines),
        },
        "digest": None,
        "created_at": utc_text(now),
        "updated_at": utc_text(now),
    }


# --- the job -------------------------------------------------------------------------------


def run_alert_job(
    store: Store,
    rules: RulesFile,
    *,
    index: StoryIndex | None = None,
    now: float | None = None,
    deliver: bool = True,
) -> AlertJobResult:
    """Alert on the story changes since the cursor, close digests that are due, and send.

    `index` defaults to the store's story index; `now` (epoch seconds) to the clock.
    """
    at = now if now is not None else time.time()
    own_index = store.story_index() if index is None else None
    index = index if index is not None else own_index
    compiled = compile_rules(rules.rules)
    state = store.get_state(CURSOR_STATE) or {}
    cursor = int(state.get("sequence", 0))
    digests: dict[str, dict[str, list[str]]] = state.get("digests", {})
    closed: dict[str, str] = state.get("closed", {})
    outbox = store.outbox()
    counts = {"changes": 0, "stories": 0, "created": 0, "updated": 0, "digests": 0}
    try:
        while changes := index.changes(after=cursor, limit=CHANGES_BATCH):
            counts["changes"] += len(changes)
            seen: set[str] = set()
            for _, story_id in changes:
                record = index.get_story(story_id)
                if record is None or record["id"] in seen:
                    continue
                seen.add(record["id"])
                members = index.get_items([m["item"] for m in record.get("members", ())])
                for alert, keys in story_alerts(compiled, record, members, at):
                    recorded = outbox.record(alert, keys, now=at)
                    counts["created" if recorded.created else "updated"] += 1
                    _hold_for_digest(recorded.alert, digests, closed)
            counts["stories"] += len(seen)
            cursor = changes[-1][0]
            # Only now, with the alerts in the outbox: a crash before this line redoes them.
            store.set_state(CURSOR_STATE, _state(cursor, digests, closed))
        counts["digests"] = _close_digests(
            store, rules, outbox, digests=digests, closed=closed, now=at, cursor=cursor
        )
        delivery = deliver_pending(store, rules, outbox=outbox, now=now) if deliver else None
    finally:
        outbox.close()
        if own_index is not None:
            own_index.close()  # both store indexes have one; the protocol does not say so yet
    if counts["created"]:
        logger.info("alert job: %d new alert(s), %d updated", counts["created"], counts["updated"])
    return AlertJobResult(**counts, delivery=delivery or DeliveryResult(), cursor=cursor)


def _state(cursor: int, digests: dict, closed: dict) -> dict[str, Any]:
    return {"sequence": cursor, "digests": digests, "closed": closed}


def _hold_for_digest(alert: dict[str, Any], digests: dict, closed: dict[str, str]) -> None:
    """Remember a digest rule's alert for its period's summary (unless that went out)."""
    digest = alert.get("digest")
    if not digest:
        return
    rule, period = alert["rule"], digest["period"]
    if closed.get(rule) and period <= closed[rule]:
        return
    held = digests.setdefault(rule, {}).setdefault(period, [])
    if alert["id"] not in held:
        held.append(alert["id"])


def _close_digests(
    store: Store,
    rules: RulesFile,
    outbox: Outbox,
    *,
    digests: dict[str, dict[str, list[str]]],
    closed: dict[str, str],
    now: float,
    cursor: int,
) -> int:
    """Queue one summary per digest rule and finished period; forget those periods.

    Periods of a rule that is gone or no longer a digest are dropped: its alerts stay in
    the outbox and in `presswatch alerts`, but nobody asked for their summary any more.
    """
    queued = 0
    by_name = {rule.name: rule for rule in rules.rules}
    for rule_name, periods in list(digests.items()):
        rule = by_name.get(rule_name)
        for period in sorted(periods):
            if rule is not None and rule.is_digest:
                if not period_over(rule.mode, period, now):
                    continue
                alerts = [a for a in map(outbox.get, periods[period]) if a is not None]
                summary = digest_alert(rule, period, alerts, now)
                # Idempotent by id: a crash before the state below is saved queues the
                # same summary again, which changes nothing.
                outbox.record(summary, [summary["id"]], now=now)
                queued += 1
            else:
                logger.info("dropping the %s digest of %s: no such digest rule", period, rule_name)
            del periods[period]
            closed[rule_name] = max(closed.get(rule_name, ""), period)
        if not periods:
            del digests[rule_name]
    if queued or not digests:
        store.set_state(CURSOR_STATE, _state(cursor, digests, closed))
    return queued


def deliver_pending(
    store: Store,
    rules: RulesFile,
    *,
    outbox: Outbox | None = None,
    now: float | None = None,
    owner: str | None = None,
    lease_s: float = LEASE_S,
) -> DeliveryResult:
    """Send every delivery that is due, each claimed first so no other sender sends it too.

    A channel missing from `rules` (renamed or removed since) fails its deliveries for good.
    """
    box = outbox if outbox is not None else store.outbox()
    owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    sent = retrying = failed = 0
    try:
        while claims := box.claim(
            owner, now=now if now is not None else time.time(), lease_s=lease_s, limit=CLAIM_BATCH
        ):
            for claim in claims:
                delivery, alert = claim.delivery, claim.alert
                url = rules.channels.get(delivery["channel"])
                if url is None:
                    outcome = _missing_channel(delivery["channel"])
                else:
                    outcome = send(
                        url.get_secret_value(),
                        render(alert, delivery),
                        key=delivery["id"],
                        alert_id=alert["id"],
                        timeout_s=SEND_TIMEOUT_S,
                    )
                settled = after_attempt(delivery, outcome, now if now is not None else time.time())
                if not box.settle(settled, owner):
                    logger.warning("delivery %s was taken over by another sender", delivery["id"])
                    continue
                if settled["status"] == SENT:
                    sent += 1
                elif settled["status"] == FAILED:
                    failed += 1
                    logger.warning(
                        "delivery %s failed for good after %d attempt(s): %s",
                        delivery["id"],
                        settled["attempts"],
                        settled["last_error"],
                    )
                    capture_failure(
                        "delivery failed for good",
                        kind="delivery",
                        details={
                            "delivery": delivery["id"],
                            "attempts": settled["attempts"],
                            "last_error": settled["last_error"],
                        },
                        channel=delivery["channel"],
                    )
                else:
                    retrying += 1
    finally:
        if outbox is None:
            box.close()
    return DeliveryResult(sent=sent, retrying=retrying, failed=failed)


def _missing_channel(name: str) -> Outcome:
    return Outcome(
        ok=False,
        error=f"no channel named {name!r} in the rules file any more: add it under channels:",
        permanent=True,
    )


def enqueue_notice(
    store: Store,
    *,
    notice_id: str,
    channels: list[str],
    subject: str,
    body: str,
    now: float | None = None,
) -> bool:
    """Put an operator message (e.g. a source-health alert) in the outbox for `channels`
    (names from the rules file's ``channels:``); True when new, False when `notice_id` was
    queued before (nothing changes). It is sent by the next `deliver_pending`."""
    if not channels:
        msg = f"notice {notice_id!r} names no channel: give at least one from rules.yaml"
        raise ValueError(msg)
    at = now if now is not None else time.time()
    alert_id = f"notice-{notice_id}"
    alert = {
        "id": alert_id,
        "kind": NOTICE,
        "rule": None,
        "story": None,
        "channels": list(channels),
        "copies": 0,
        "items": [],
        "message": {"subject": subject, "body": body},
        "digest": None,
        "created_at": utc_text(at),
        "updated_at": utc_text(at),
    }
    outbox = store.outbox()
    try:
        return outbox.record(alert, [f"notice|{notice_id}"], now=at).created
    finally:
        outbox.close()
