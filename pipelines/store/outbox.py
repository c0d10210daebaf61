"""The alert outbox: alerts and their per-channel deliveries, kept before anything is sent.

An **alert** is one (rule, story) pair, or one operator notice, as a JSON-ready dict::

    {"id", "kind": "rule" | "notice" | "digest", "rule", "story", "channels": [names],
     "copies": int, "items": [matched item ids], "message": {...facts to render...},
     "digest": null | {"mode": "hourly" | "daily", "period": "2019-11-18T04:00:00Z"},
     "created_at", "updated_at"}

Each alert is found again by its **keys** (``rule|item`` for every member of its story, so
a story renamed or merged by linking finds the alert its items already have; a notice's
own id): `Outbox.record` looks the keys up, and either creates the alert with one
**delivery** per channel or merges the new facts into the alert found, all in one atomic
step. Ids are deterministic, so recording the same alert twice changes nothing.

A **delivery** is one message to one channel::

    {"id": "<alert id>/<channel>[/copies-N]", "alert", "channel",
     "kind": "alert" | "update", "status": "pending" | "sent" | "failed",
     "attempts": int, "last_error": str | null, "ambiguous": bool,
     "next_attempt_at": epoch seconds, "created_at", "sent_at"}

A sender claims due deliveries with a lease (`Outbox.claim`), so two senders never send the
same delivery and a killed sender's claim lapses; it then settles each (`Outbox.settle`)
with the state `after_attempt` computes: sent, or pending again after an exponential
backoff (capped), or failed for good. An update delivery is added when an immediate
alert's copies count reaches one of `UPDATE_AT`; other updates are recorded, not sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
RULE = "rule"
NOTICE = "notice"
DIGEST = "digest"
# The copies counts at which an immediate alert sends "now N copies" (a story that
# spreads is news too; every further copy would be noise).
UPDATE_AT = (5, 10, 25, 50, 100)
BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 3600.0
# 30 s doubling to the 1 h cap: about 19 hours of trying before a delivery is failed.
MAX_ATTEMPTS = 24
ERROR_LENGTH = 500


@dataclass(frozen=True)
class Recorded:
    """What `Outbox.record` did: the alert the facts went to, and whether it is new."""

    alert: dict[str, Any]  # as stored now (without its deliveries)
    created: bool
    deliveries: tuple[str, ...]  # ids of the deliveries added now

    @property
    def alert_id(self) -> str:
        return str(self.alert["id"])


@dataclass(frozen=True)
class Claim:
    """A delivery leased to one sender, with the alert it carries."""

    delivery: dict[str, Any]
    alert: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What one attempt to send a delivery came to (`scheduler.notify.send`)."""

    ok: bool
    error: str | None = None  # scrubbed of secrets by the sender
    permanent: bool = False  # retrying cannot help (a refused token, an unknown channel)
    ambiguous: bool = False  # may have arrived (a read timeout after the request went out)


class Outbox(Protocol):
    """The durable outbox: SQLite (`sqlite_outbox`) and Redis (`redis_outbox`)."""

    def record(self, alert: dict[str, Any], keys: list[str], *, now: float) -> Recorded:
        """Create `alert` with its deliveries, or merge it into the earliest alert that one
        of `keys` (or its id) already leads to (`merge_alerts`, `plan_record`), marking any
        other alert found as merged into that one (`absorbed_into`: two alerted stories
        became one); map every key to it. One atomic step."""

    def get(self, alert_id: str) -> dict[str, Any] | None:
        """The alert with its deliveries under ``"deliveries"``."""

    def alerts(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Alerts newest first, each with its deliveries under ``"deliveries"``."""

    def claim(self, owner: str, *, now: float, lease_s: float, limit: int) -> list[Claim]:
        """Lease up to `limit` pending deliveries due at `now` to `owner` for `lease_s`."""

    def settle(self, delivery: dict[str, Any], owner: str) -> bool:
        """Write the delivery's new state and end the lease; False (nothing written) when
        another sender holds the delivery now (our lease lapsed and was taken)."""

    def close(self) -> None: ...


def utc_text(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def digest_id(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:16]


def rule_alert_id(rule: str, story_id: str) -> str:
    """The id of a rule's alert on a story: the same inputs always give the same id."""
    return f"{rule}-{digest_id(story_id)}"


def rule_keys(rule: str, item_ids: list[str]) -> list[str]:
    """The keys that find a rule's alert again from any item of its story."""
    return [f"{rule}|{item}" for item in item_ids]


def new_delivery(alert_id: str, channel: str, now: float, *, copies: int | None = None) -> dict:
    """A pending delivery; with `copies`, the update that says the story reached that many."""
    suffix = f"/copies-{copies}" if copies is not None else ""
    return {
        "id": f"{alert_id}/{channel}{suffix}",
        "alert": alert_id,
        "channel": channel,
        "kind": "alert" if copies is None else "update",
        "copies": copies,
        "status": PENDING,
        "attempts": 0,
        "last_error": None,
        "ambiguous": False,
        "next_attempt_at": now,
        "created_at": utc_text(now),
        "sent_at": None,
    }


def merge_alerts(existing: dict[str, Any], incoming: dict[str, Any], now: float) -> dict:
    """`existing` with what `incoming` adds: more matched items, a larger copies count.

    The message facts stay those of the first alert (what was sent is what is shown),
    except the copies count. Merging the same facts twice gives the same alert.
    """
    items = sorted(set(existing.get("items", ())) | set(incoming.get("items", ())))
    copies = max(existing.get("copies", 0), incoming.get("copies", 0))
    if items == existing.get("items") and copies == existing.get("copies"):
        return existing
    return {**existing, "items": items, "copies": copies, "updated_at": utc_text(now)}


def plan_record(
    existing: dict[str, Any] | None, incoming: dict[str, Any], now: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The alert to write and the deliveries to add, for `Outbox.record`.

    A new alert gets one delivery per channel, except a digest rule's alert, which waits
    for its period's summary. An immediate rule's alert whose copies count crosses one of
    `UPDATE_AT` gets an update delivery per channel (one per threshold, by id).
    """
    if existing is None:
        if incoming.get("digest"):
            return incoming, []
        return incoming, [new_delivery(incoming["id"], c, now) for c in incoming["channels"]]
    merged = merge_alerts(existing, incoming, now)
    deliveries: list[dict[str, Any]] = []
    if merged["kind"] == RULE and not merged.get("digest"):
        before, after = existing.get("copies", 0), merged["copies"]
        crossed = [t for t in UPDATE_AT if before < t <= after]
        if crossed:
            deliveries = [
                new_delivery(merged["id"], c, now, copies=crossed[-1]) for c in merged["channels"]
            ]
    return merged, deliveries


def absorbed_into(alert: dict[str, Any], survivor: str, now: float) -> dict[str, Any] | None:
    """`alert` marked as merged into `survivor` (its story merged into the survivor's), or
    None when it is marked so already. Its deliveries stay as they are: it was sent."""
    if alert.get("merged_into") == survivor:
        return None
    return {**alert, "merged_into": survivor, "updated_at": utc_text(now)}


def backoff_seconds(attempts: int) -> float:
    """The wait after the `attempts`-th failed attempt: 30 s doubling, capped at an hour."""
    return min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_CAP_S)


def after_attempt(delivery: dict[str, Any], outcome: Outcome, now: float) -> dict[str, Any]:
    """The delivery's state after one attempt came to `outcome`."""
    attempts = delivery.get("attempts", 0) + 1
    if outcome.ok:
        return {
            **delivery,
            "status": SENT,
            "attempts": attempts,
            "sent_at": utc_text(now),
            "last_error": None,
        }
    error = (outcome.error or "delivery failed")[:ERROR_LENGTH]
    gives_up = outcome.permanent or attempts >= MAX_ATTEMPTS
    return {
        **delivery,
        "status": FAILED if gives_up else PENDING,
        "attempts": attempts,
        "last_error": error,
        # Once a try may have arrived, a duplicate is possible: shown to the operator.
        "ambiguous": delivery.get("ambiguous", False) or outcome.ambiguous,
        "next_attempt_at": now + backoff_seconds(attempts),
    }
