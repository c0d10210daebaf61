"""The alert job end to end: linked stories → one alert per (rule, story) → real sinks."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from pipelines.store import open_store
from pipelines.stories import StoryLinker
from pipelines.story_index import MemoryStoryIndex
from scheduler.alerts import (
    deliver_pending,
    digest_alert,
    enqueue_notice,
    run_alert_job,
    snippet,
)
from scheduler.cli import app
from scheduler.rules import RulesFile
from tests.stories_data import BAIKONUR, demo_items, demo_sources
from tests.waiting import wait_for

if TYPE_CHECKING:
    pass

T0 = 1_700_000_000.0
ROOT = Path(__file__).resolve().parent.parent


def make_rules(channels: dict[str, str], *, mode: str = "immediate", **rule: Any) -> RulesFile:
    return RulesFile.model_validate(
        {
            "channels": channels,
            "rules": [
                {
                    "name": "baikonur",
                    "terms": ["Байконур", "Baikonur"],
                    "channels": list(channels),
                    "mode": mode,
                    **rule,
                }
            ],
        }
    )


@pytest.fixture(scope="module")
def sources():
    return demo_sources()


@pytest.fixture(scope="module")
def items() -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in demo_items()}


def fifth_copy(items: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A fifth portal's copy of the PM's release, crediting it."""
    original = items[BAIKONUR[0]]
    return {
        **original,
        "id": "tengrinews/mamin-rogozin",
        "url": "https://tengrinews.kz/kazakhstan_news/mamin-rogozin",
        "source": "tengrinews",
        "published_at": "2019-07-09T22:40:00+06:00",
        "text": original["text"] + "\n\nСообщает пресс-служба Премьер-министра РК.",
    }


def hook_url(sink, path: str = "hook") -> str:
    return f"json://127.0.0.1:{sink.port}/{path}"


def test_five_syndicated_copies_make_one_alert_that_ends_at_five(
    store, sources, items, webhook_sink
) -> None:
    rules = make_rules({"hook": hook_url(webhook_sink)})
    index = MemoryStoryIndex()
    linker = StoryLinker(index, sources)
    linker.link(items[BAIKONUR[0]])
    first = run_alert_job(store, rules, index=index, now=T0)
    assert (first.created, first.delivery.sent) == (1, 1)
    for n, item in enumerate([*(items[i] for i in BAIKONUR[1:]), fifth_copy(items)], start=1):
        linker.link(item)
        run_alert_job(store, rules, index=index, now=T0 + n)
    (alert,) = store.outbox().alerts()
    assert alert["copies"] == 5
    assert len(alert["items"]) == 5
    messages = webhook_sink.accepted()
    # the alert, then one update when the story reached five copies
    assert [m.body["title"].split(":")[1].strip() for m in messages][1].startswith("now 5 copies")
    assert len(messages) == 2
    assert "Copies so far: 5" in messages[1].body["message"]
    assert len({m.headers["Idempotency-Key"] for m in messages}) == 2
    assert {m.headers["X-Alert-Id"] for m in messages} == {alert["id"]}


def test_a_story_matching_only_through_a_copy_alerts(store, sources, items, webhook_sink) -> None:
    rules = make_rules({"hook": hook_url(webhook_sink)})
    plain = next(i for i in items.values() if "Байконур" not in i["text"] and len(i["text"]) > 800)
    copy = {
        **plain,
        "id": "zz-copy",
        "url": "https://total.kz/ru/news/zz-copy",
        "source": "total",
        "text": plain["text"] + "\n\nРанее глава ведомства побывал на космодроме Байконур.",
    }
    index = MemoryStoryIndex()
    linker = StoryLinker(index, sources)
    linker.link(plain)
    assert run_alert_job(store, rules, index=index, now=T0).created == 0
    update = linker.link(copy)
    assert {m.item for m in update.story.members} == {plain["id"], "zz-copy"}
    assert run_alert_job(store, rules, index=index, now=T0 + 1).created == 1
    (alert,) = store.outbox().alerts()
    assert alert["items"] == ["zz-copy"]
    assert alert["message"]["title"] == " ".join(plain["title"].split())
    assert "*Байконур*" in alert["message"]["snippet"]


def test_mail_and_webhook_receive_the_alert(store, sources, items, smtp_sink, webhook_sink) -> None:
    rules = make_rules({"ops-mail": smtp_sink.url(), "hook": hook_url(webhook_sink)})
    index = MemoryStoryIndex()
    linker = StoryLinker(index, sources)
    for item_id in BAIKONUR:
        linker.link(items[item_id])
    result = run_alert_job(store, rules, index=index, now=T0)
    assert (result.created, result.delivery.sent) == (1, 2)
    (mail,) = smtp_sink.messages
    body = mail.get_body(preferencelist=("plain", "html")).get_content()
    (hook,) = webhook_sink.accepted()
    for text in (body, hook.body["message"]):
        assert "Rule: baikonur" in text
        assert "Copies so far: 4" in text
        assert "https://primeminister.kz/" in text
        assert "*Байконур*" in text
    assert mail["Subject"].startswith("[presswatch] baikonur: ")


def test_a_channel_that_is_down_gets_its_message_once_it_is_back(
    store, sources, items, webhook_sink
) -> None:
    rules = make_rules({"hook": hook_url(webhook_sink)})
    index = MemoryStoryIndex()
    StoryLinker(index, sources).link(items[BAIKONUR[0]])
    webhook_sink.go_down()
    down = run_alert_job(store, rules, index=index, now=T0)
    assert (down.delivery.sent, down.delivery.retrying) == (0, 1)
    # still down at the first retry
    assert deliver_pending(store, rules, now=T0 + 31).retrying == 1
    webhook_sink.come_up()
    assert deliver_pending(store, rules, now=T0 + 40).sent == 0  # not due yet (backoff)
    assert deliver_pending(store, rules, now=T0 + 31 + 60).sent == 1
    assert run_alert_job(store, rules, index=index, now=T0 + 7200).delivery.sent == 0
    assert len(webhook_sink.accepted()) == 1
    (delivery,) = store.outbox().alerts()[0]["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("sent", 3)


KILLED_CHILD = """
import os, signal, sys
sys.path.insert(0, {root!r})
from pipelines.store import open_store
from pipelines.stories import StoryLinker
from scheduler.alerts import run_alert_job
from scheduler.rules import RulesFile
from tests.stories_data import BAIKONUR, demo_items, demo_sources

store = open_store({url!r})
index = store.story_index()
items = {{i["id"]: i for i in demo_items()}}
StoryLinker(index, demo_sources()).link(items[BAIKONUR[0]])
rules = RulesFile.model_validate({rules!r})
result = run_alert_job(store, rules, index=index, deliver=False)
print("recorded", result.created, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # before any delivery
"""


def test_a_process_killed_between_outbox_and_delivery_loses_nothing(
    store, webhook_sink, tmp_path
) -> None:
    channels = {"hook": hook_url(webhook_sink)}
    rules = make_rules(channels)
    script = KILLED_CHILD.format(
        root=str(ROOT), url=store.url, rules=rules.model_dump(mode="json") | {"channels": channels}
    )
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=100, check=False
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "recorded 1" in child.stdout
    assert webhook_sink.accepted() == []
    # the next run finds the story's alert already in the outbox and delivers it once
    result = run_alert_job(store, rules)
    assert (result.created, result.delivery.sent) == (0, 1)
    assert run_alert_job(store, rules).delivery.sent == 0
    assert len(webhook_sink.accepted()) == 1


def test_digest_sends_one_summary_per_period(store, sources, items, webhook_sink) -> None:
    rules = make_rules({"hook": hook_url(webhook_sink)}, mode="hourly")
    index = MemoryStoryIndex()
    linker = StoryLinker(index, sources)
    linker.link(items[BAIKONUR[0]])
    plain = next(i for i in items.values() if "Байконур" not in i["text"] and len(i["text"]) > 800)
    linker.link({**plain, "text": plain["text"] + "\n\nРанее он побывал на Байконуре."})
    start = 1_699_999_200.0  # 22:00:00 UTC: an hour starts
    held = run_alert_job(store, rules, index=index, now=start + 60)
    assert (held.created, held.delivery.sent) == (2, 0)
    assert run_alert_job(store, rules, index=index, now=start + 1800).delivery.sent == 0
    closing = run_alert_job(store, rules, index=index, now=start + 3600)
    assert (closing.digests, closing.delivery.sent) == (1, 1)
    assert run_alert_job(store, rules, index=index, now=start + 7200).delivery.sent == 0
    (summary,) = webhook_sink.accepted()
    assert "2 stories (hourly digest" in summary.body["title"]
    assert summary.body["message"].count("\n- ") == 1  # two lines


def test_a_digest_line_stays_one_line_whatever_the_title() -> None:
    rule = make_rules({"hook": "json://127.0.0.1:9/hook"}, mode="hourly").rules[0]
    alert = {
        "id": "a",
        "copies": 2,
        "created_at": "2023-11-14T22:00:00+00:00",
        "message": {"title": "Байконур\r\nBcc: x@y.example\n- fake line", "terms": ["Байконур"]},
    }
    body = digest_alert(rule, "2023-11-14T22:00:00+00:00", [alert], T0)["message"]["body"]
    assert body.count("\n") == 0
    assert body.startswith("- Байконур Bcc: x@y.example - fake line (2 copies; Байконур)")


def test_notice_is_idempotent_and_delivered(store, webhook_sink) -> None:
    rules = make_rules({"hook": hook_url(webhook_sink)})
    notice = {"channels": ["hook"], "subject": "Source zakon silent", "body": "No items for 6 h."}
    assert enqueue_notice(store, notice_id="health-zakon-1", **notice, now=T0)
    assert not enqueue_notice(store, notice_id="health-zakon-1", **notice, now=T0 + 5)
    assert deliver_pending(store, rules, now=T0 + 6).sent == 1
    (got,) = webhook_sink.accepted()
    assert (got.body["title"], got.body["message"]) == ("Source zakon silent", "No items for 6 h.")


def test_secrets_appear_in_no_log_error_or_alerts_output(
    store, sources, items, telegram_at_sink, caplog, monkeypatch
) -> None:
    canaries = [f"CANARY-TG-{uuid.uuid4()}", f"CANARY-HOOK-{uuid.uuid4()}"]
    rules = make_rules(
        {
            "space-telegram": f"tgram://987654321:{canaries[0]}/-100200300",
            "hook": f"json://127.0.0.1:{telegram_at_sink.port}/hooks/{canaries[1]}",
        }
    )
    caplog.set_level(logging.DEBUG)
    telegram_at_sink.mode = "500"
    index = MemoryStoryIndex()
    StoryLinker(index, sources).link(items[BAIKONUR[0]])
    result = run_alert_job(store, rules, index=index, now=T0)
    assert result.delivery.retrying == 2
    outbox_dump = json.dumps(store.outbox().alerts(), ensure_ascii=False)
    assert "500" in outbox_dump  # the error is recorded ...
    monkeypatch.setenv("PRESSWATCH_STORE", store.url)
    shown = (
        CliRunner().invoke(app, ["alerts"]).output
        + CliRunner().invoke(app, ["alerts", "--json"]).output
    )
    assert "baikonur" in shown
    assert '"channel": "space-telegram"' in shown
    assert "pending (1 try)" in shown
    for canary in canaries:  # ... without the secrets
        assert canary not in outbox_dump
        assert canary not in caplog.text
        assert canary not in shown


def test_snippet_marks_the_match_on_one_line() -> None:
    text = "Начало.\n\nВстреча прошла на космодроме Байконур в июле.\nДалее."
    start = text.index("Байконур")
    assert (
        snippet(text, start, start + 8, context=20)
        == "…прошла на космодроме *Байконур* в июле. Далее."
    )
    assert os.linesep not in snippet(text, start, start + 8)


def test_alert_after_crawl_uses_the_store_index_and_the_bundled_console_channel(
    tmp_path, sources, items, capsys
) -> None:
    from scheduler.cli_alerts import alert_after_crawl

    store = open_store(f"sqlite:///{tmp_path}/presswatch.db")
    index = store.story_index()
    StoryLinker(index, sources).link(items[BAIKONUR[0]])
    index.close()
    result = alert_after_crawl(store, None)
    store.close()
    # the bundled rules watch Baikonur and Baiterek: the PM's release names both
    assert (result.created, result.delivery.sent) == (2, 2)
    out = capsys.readouterr().out
    assert "=== [presswatch] baikonur: " in out
    assert "alerts: 2 new, 0 updated; deliveries: 2 sent" in out


def test_two_alerted_stories_that_merge_raise_no_new_alert(
    store, sources, items, webhook_sink
) -> None:
    rules = make_rules({"hook": hook_url(webhook_sink)})
    first = items["ria/1561088279"]  # plane cabin video
    second = items["zakon/4995300-kazahstanskiy-armeets-stal-chempionom"]  # pankration
    marked = [
        {**item, "text": item["text"] + "\n\nРанее он побывал на Байконуре."}
        for item in (first, second)
    ]
    index = MemoryStoryIndex()
    linker = StoryLinker(index, sources)
    for item in marked:
        linker.link(item)
    assert run_alert_job(store, rules, index=index, now=T0).created == 2
    bridge = {
        "id": "0-digest",
        "url": "https://example.org/digest",
        "title": "Главное за день",
        "text": f"{marked[0]['text']}\n\n{marked[1]['text']}",
        "lang": "ru",
        "published_at": "2019-11-18T23:00:00+06:00",
    }
    assert linker.link(bridge).merged
    merged = run_alert_job(store, rules, index=index, now=T0 + 60)
    assert (merged.created, merged.updated, merged.delivery.sent) == (0, 1, 0)
    survivor, absorbed = sorted(store.outbox().alerts(), key=lambda a: "merged_into" in a)
    assert absorbed["merged_into"] == survivor["id"]
    assert survivor["copies"] == 3
    assert len(webhook_sink.accepted()) == 2


SENDING_CHILD = """
import sys
import time
sys.path.insert(0, {root!r})
from pipelines.store import open_store
from scheduler.alerts import deliver_pending
from scheduler.rules import RulesFile

deliver_pending(open_store({url!r}), RulesFile.model_validate({rules!r}), lease_s={lease})
"""


def test_a_sender_killed_mid_send_is_taken_over_with_the_same_idempotency_key(
    store, sources, items, webhook_sink
) -> None:
    channels = {"hook": hook_url(webhook_sink)}
    rules = make_rules(channels)
    index = MemoryStoryIndex()
    StoryLinker(index, sources).link(items[BAIKONUR[0]])
    assert run_alert_job(store, rules, index=index, deliver=False).created == 1
    webhook_sink.mode = "slow"  # holds the request: the child is killed while it waits
    script = SENDING_CHILD.format(
        root=str(ROOT),
        url=store.url,
        rules=rules.model_dump(mode="json") | {"channels": channels},
        lease=2.0,
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        wait_for(lambda: webhook_sink.arrived() or child.poll() is not None, "the child to send")
        assert child.poll() is None, "the child exited before sending"
    finally:
        child.kill()
        child.wait(10)
    webhook_sink.mode = "ok"
    # the killed sender's lease lapses; the next sender takes the delivery over
    wait_for(lambda: deliver_pending(store, rules).sent, "the lapsed delivery to be taken over", 30)
    first, second = webhook_sink.arrived()
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    # two requests, one delivery for a receiver that honours the key
    assert len({r.headers["Idempotency-Key"] for r in webhook_sink.arrived()}) == 1
    (delivery,) = store.outbox().alerts()[0]["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("sent", 1)
