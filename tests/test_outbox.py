"""The alert outbox contract, run against SQLite and a real Redis alike, plus its pure helpers."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from pipelines.store import open_store
from pipelines.store.outbox import (
    BACKOFF_CAP_S,
    FAILED,
    MAX_ATTEMPTS,
    PENDING,
    RULE,
    SENT,
    Outcome,
    after_attempt,
    backoff_seconds,
    plan_record,
    rule_alert_id,
    rule_keys,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pipelines.store.outbox import Outbox

T0 = 1_700_000_000.0


def rule_alert(story: str, items: list[str], *, copies: int, digest: dict | None = None) -> dict:
    return {
        "id": rule_alert_id("baikonur", story),
        "kind": RULE,
        "rule": "baikonur",
        "story": story,
        "channels": ["ops-mail", "hook"],
        "copies": copies,
        "items": items,
        "message": {"title": "Байконур"},
        "digest": digest,
        "created_at": "2023-11-14T22:13:20+00:00",
        "updated_at": "2023-11-14T22:13:20+00:00",
    }


@contextmanager
def opened_outbox(url: str) -> Iterator[Outbox]:
    store = open_store(url)
    box = store.outbox()
    try:
        yield box
    finally:
        box.close()
        store.close()


@pytest.fixture
def outbox(store_url: str) -> Iterator[Outbox]:
    with opened_outbox(store_url) as box:
        yield box


def test_record_creates_one_delivery_per_channel_and_again_changes_nothing(outbox) -> None:
    alert = rule_alert("s1", ["s1"], copies=1)
    first = outbox.record(alert, rule_keys("baikonur", ["s1"]), now=T0)
    assert first.created
    assert first.alert_id == alert["id"]
    assert sorted(first.deliveries) == [f"{alert['id']}/hook", f"{alert['id']}/ops-mail"]
    again = outbox.record(alert, rule_keys("baikonur", ["s1"]), now=T0 + 5)
    assert (again.created, again.deliveries) == (False, ())
    stored = outbox.get(alert["id"])
    assert stored["copies"] == 1
    assert [d["status"] for d in stored["deliveries"]] == [PENDING, PENDING]
    assert len(outbox.alerts()) == 1


def test_a_renamed_story_finds_its_alert_through_its_items(outbox) -> None:
    outbox.record(rule_alert("s2", ["s2"], copies=1), rule_keys("baikonur", ["s2"]), now=T0)
    # the story gained an item with a smaller id: its id changed, its items did not
    renamed = rule_alert("s0", ["s2"], copies=2)
    found = outbox.record(renamed, rule_keys("baikonur", ["s0", "s2"]), now=T0 + 1)
    assert not found.created
    assert found.alert_id == rule_alert_id("baikonur", "s2")
    assert outbox.get(found.alert_id)["copies"] == 2
    assert outbox.get(renamed["id"]) is None


def test_two_alerted_stories_that_merge_keep_the_earlier_alert(outbox) -> None:
    a = rule_alert("a", ["a"], copies=1)
    b = {**rule_alert("b", ["b"], copies=1), "created_at": "2023-11-14T22:20:00+00:00"}
    outbox.record(a, rule_keys("baikonur", ["a"]), now=T0)
    outbox.record(b, rule_keys("baikonur", ["b"]), now=T0 + 400)
    merged = rule_alert("a", ["a", "b"], copies=2)
    found = outbox.record(merged, rule_keys("baikonur", ["a", "b"]), now=T0 + 500)
    assert (found.alert_id, found.created) == (a["id"], False)
    assert len(outbox.alerts()) == 2
    assert [alert["id"] for alert in outbox.alerts()] == [b["id"], a["id"]]
    assert outbox.get(b["id"])["merged_into"] == a["id"]
    assert outbox.get(a["id"])["items"] == ["a", "b"]
    # recording the merged story again finds the same alert and changes nothing
    again = outbox.record(merged, rule_keys("baikonur", ["a", "b"]), now=T0 + 600)
    assert (again.alert_id, again.created, again.deliveries) == (a["id"], False, ())


def test_crossing_a_copies_threshold_adds_one_update_per_channel(outbox) -> None:
    keys = rule_keys("baikonur", ["s"])
    outbox.record(rule_alert("s", ["s"], copies=2), keys, now=T0)
    grown = outbox.record(rule_alert("s", ["s"], copies=5), keys, now=T0 + 1)
    assert sorted(grown.deliveries) == [
        f"{rule_alert_id('baikonur', 's')}/hook/copies-5",
        f"{rule_alert_id('baikonur', 's')}/ops-mail/copies-5",
    ]
    assert outbox.record(rule_alert("s", ["s"], copies=6), keys, now=T0 + 2).deliveries == ()
    assert outbox.get(grown.alert_id)["copies"] == 6


def test_a_digest_alert_waits_without_deliveries(outbox) -> None:
    digest = {"mode": "hourly", "period": "2023-11-14T22:00:00+00:00"}
    recorded = outbox.record(rule_alert("d", ["d"], copies=1, digest=digest), ["x|d"], now=T0)
    assert recorded.created
    assert recorded.deliveries == ()
    assert outbox.claim("w", now=T0 + 10, lease_s=60, limit=10) == []


def test_claim_leases_so_a_second_sender_gets_nothing_until_the_lease_lapses(outbox) -> None:
    outbox.record(rule_alert("s", ["s"], copies=1), ["k|s"], now=T0)
    first = outbox.claim("sender-1", now=T0, lease_s=60, limit=10)
    assert len(first) == 2
    assert first[0].alert["rule"] == "baikonur"
    assert outbox.claim("sender-2", now=T0 + 30, lease_s=60, limit=10) == []
    # sender-1 was killed: its claim lapses and another sender resumes the deliveries
    taken = outbox.claim("sender-2", now=T0 + 61, lease_s=60, limit=10)
    assert {c.delivery["id"] for c in taken} == {c.delivery["id"] for c in first}
    # the killed sender's late write does not overwrite the new holder's
    late = after_attempt(first[0].delivery, Outcome(ok=True), T0 + 62)
    assert not outbox.settle(late, "sender-1")
    sent = after_attempt(taken[0].delivery, Outcome(ok=True), T0 + 62)
    assert outbox.settle(sent, "sender-2")


def test_settle_sent_and_retry_with_backoff(outbox) -> None:
    outbox.record(rule_alert("s", ["s"], copies=1), ["k|s"], now=T0)
    hook, mail = sorted(
        outbox.claim("w", now=T0, lease_s=60, limit=10), key=lambda c: c.delivery["id"]
    )
    assert outbox.settle(after_attempt(hook.delivery, Outcome(ok=True), T0 + 1), "w")
    failed = after_attempt(mail.delivery, Outcome(ok=False, error="503 from the sink"), T0 + 1)
    assert outbox.settle(failed, "w")
    assert outbox.claim("w", now=T0 + 2, lease_s=60, limit=10) == []
    retry = outbox.claim("w", now=T0 + 1 + backoff_seconds(1), lease_s=60, limit=10)
    assert [c.delivery["id"] for c in retry] == [mail.delivery["id"]]
    assert retry[0].delivery["attempts"] == 1
    assert retry[0].delivery["last_error"] == "503 from the sink"
    by_id = {d["id"]: d for d in outbox.get(hook.alert["id"])["deliveries"]}
    assert by_id[hook.delivery["id"]]["status"] == SENT


def test_two_senders_never_get_the_same_delivery(outbox, store_url) -> None:
    for n in range(20):
        outbox.record(rule_alert(f"s{n}", [f"s{n}"], copies=1), [f"k|s{n}"], now=T0)
    got: dict[str, list[str]] = {"a": [], "b": []}

    def sender(name: str) -> None:
        # each sender on its own connection, as two processes would be
        with opened_outbox(store_url) as own:
            while claims := own.claim(name, now=T0, lease_s=600, limit=3):
                got[name].extend(c.delivery["id"] for c in claims)

    threads = [threading.Thread(target=sender, args=(n,)) for n in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    every = got["a"] + got["b"]
    assert len(every) == 40
    assert len(set(every)) == 40


# --- pure helpers ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("attempts", "wait"),
    [(1, 30.0), (2, 60.0), (3, 120.0), (8, BACKOFF_CAP_S), (30, BACKOFF_CAP_S)],
)
def test_backoff_doubles_and_is_capped(attempts: int, wait: float) -> None:
    assert backoff_seconds(attempts) == wait


def test_after_attempt_gives_up_on_permanent_errors_and_after_max_attempts() -> None:
    delivery: dict[str, Any] = {"id": "a/hook", "attempts": 0, "status": PENDING}
    assert after_attempt(delivery, Outcome(ok=False, permanent=True), T0)["status"] == FAILED
    worn = {**delivery, "attempts": MAX_ATTEMPTS - 1}
    assert after_attempt(worn, Outcome(ok=False, error="x"), T0)["status"] == FAILED
    unsure = after_attempt(delivery, Outcome(ok=False, ambiguous=True), T0)
    assert (unsure["status"], unsure["ambiguous"]) == (PENDING, True)


def test_plan_record_sends_no_update_below_the_thresholds() -> None:
    old = rule_alert("s", ["s"], copies=1)
    written, deliveries = plan_record(old, rule_alert("s", ["s", "t"], copies=4), T0)
    assert written["copies"] == 4
    assert written["items"] == ["s", "t"]
    assert deliveries == []
