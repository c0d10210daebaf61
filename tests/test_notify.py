"""Sending one delivery through apprise to real sinks on loopback: content, outcomes, secrets."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

import pytest

from scheduler.notify import (
    Message,
    channel_secrets,
    classify,
    render,
    scrub,
    send,
    with_idempotency,
)

if TYPE_CHECKING:
    from email.message import EmailMessage

ALERT = {
    "id": "baikonur-0123456789abcdef",
    "kind": "rule",
    "rule": "baikonur",
    "copies": 3,
    "message": {
        "title": "Первый вице-премьер провел переговоры с гендиректором Роскосмоса",
        "terms": ["Байконур"],
        "snippet": "…сотрудничество на комплексе *Байконур* и проект «Байтерек»…",
        "original": {
            "source": "primeminister",
            "name": "Премьер-министр РК",
            "published_at": "2019-07-09T15:00:00+06:00",
            "url": "https://primeminister.kz/ru/news/1",
        },
    },
}
DELIVERY = {"id": f"{ALERT['id']}/hook", "kind": "alert"}


def test_render_names_rule_terms_story_original_and_copies() -> None:
    message = render(ALERT, DELIVERY)
    assert message.title.startswith("[presswatch] baikonur: Первый вице-премьер")
    for expected in (
        "Rule: baikonur",
        "Matched: Байконур",
        "Премьер-министр РК, 2019-07-09T15:00:00+06:00, https://primeminister.kz/ru/news/1",
        "Copies so far: 3",
        "*Байконур*",
    ):
        assert expected in message.body
    update = render({**ALERT, "copies": 5}, {**DELIVERY, "kind": "update"})
    assert "now 5 copies" in update.title


def test_a_title_cannot_inject_mail_headers() -> None:
    alert = {**ALERT, "message": {**ALERT["message"], "title": "Байконур\r\nBcc: all@example.org"}}
    assert "\n" not in render(alert, DELIVERY).title
    assert "\r" not in render(alert, DELIVERY).title


def test_mail_arrives_with_the_message(smtp_sink) -> None:
    outcome = send(
        smtp_sink.url(), render(ALERT, DELIVERY), key=DELIVERY["id"], alert_id=ALERT["id"]
    )
    assert outcome.ok, outcome.error
    (mail,) = smtp_sink.messages
    assert "baikonur" in mail["Subject"]
    body = mail.get_body(preferencelist=("plain", "html")).get_content()
    assert "Copies so far: 3" in body
    assert "https://primeminister.kz/ru/news/1" in body


def test_webhook_gets_the_message_and_the_idempotency_headers(webhook_sink) -> None:
    url = f"json://127.0.0.1:{webhook_sink.port}/hook"
    assert send(url, render(ALERT, DELIVERY), key=DELIVERY["id"], alert_id=ALERT["id"]).ok
    (got,) = webhook_sink.accepted()
    assert got.headers["Idempotency-Key"] == DELIVERY["id"]
    assert got.headers["X-Alert-Id"] == ALERT["id"]
    assert got.body["title"].startswith("[presswatch] baikonur")
    assert "Copies so far: 3" in got.body["message"]


@pytest.mark.parametrize(
    ("mode", "permanent", "ambiguous"),
    [("500", False, False), ("400", True, False), ("close", False, True)],
)
def test_failures_are_told_apart(webhook_sink, mode: str, permanent: bool, ambiguous: bool) -> None:
    webhook_sink.mode = mode
    url = f"json://127.0.0.1:{webhook_sink.port}/hook"
    outcome = send(url, Message("t", "b"), key="k/hook", alert_id="k")
    assert not outcome.ok
    assert (outcome.permanent, outcome.ambiguous) == (permanent, ambiguous)
    assert outcome.error


def test_a_channel_that_is_down_is_a_retryable_failure(webhook_sink) -> None:
    webhook_sink.go_down()
    url = f"json://127.0.0.1:{webhook_sink.port}/hook"
    outcome = send(url, Message("t", "b"), key="k", alert_id="k")
    assert (outcome.ok, outcome.permanent) == (False, False)
    webhook_sink.come_up()
    assert send(url, Message("t", "b"), key="k", alert_id="k").ok


def test_a_slow_endpoint_past_the_timeout_is_ambiguous(webhook_sink) -> None:
    webhook_sink.mode = "slow"
    webhook_sink.delay_s = 5
    url = f"json://127.0.0.1:{webhook_sink.port}/hook?rto=0.5"
    outcome = send(url, Message("t", "b"), key="k/hook", alert_id="k")
    assert (outcome.ok, outcome.ambiguous) == (False, True)


def test_telegram_token_never_reaches_logs_or_errors(telegram_at_sink, caplog) -> None:
    token = f"123456:CANARY-TG-{uuid.uuid4()}"
    url = f"tgram://{token}/-100200300"
    caplog.set_level(logging.DEBUG)
    assert send(url, render(ALERT, DELIVERY), key="a/tg", alert_id="a").ok
    (got,) = telegram_at_sink.accepted()
    assert token in got.path  # the sink is the bot API: it must see the token
    telegram_at_sink.mode = "500"
    failed = send(url, render(ALERT, DELIVERY), key="a/tg", alert_id="a")
    assert not failed.ok
    assert "CANARY-TG" not in (failed.error or "")
    assert "CANARY-TG" not in caplog.text
    assert caplog.text  # apprise and urllib3 did log, scrubbed


def test_console_channel_prints(capsys) -> None:
    assert send("console://", Message("Заголовок", "Текст"), key="k", alert_id="k").ok
    assert "Заголовок" in capsys.readouterr().out


def test_secret_helpers() -> None:
    secrets = channel_secrets("mailtos://user:CANARY-SMTP-pass@smtp.example.org?to=a@example.org")
    assert scrub("login as user:CANARY-SMTP-pass failed", secrets) == "login as user:*** failed"
    assert "CANARY" not in scrub("GET /bot123:CANARY-x/sendMessage", set())
    url = with_idempotency("json://h/p?x=1", "a/b", "a")
    assert url == "json://h/p?x=1&+Idempotency-Key=a%2Fb&+X-Alert-Id=a"
    assert with_idempotency("mailto://h", "k", "a") == "mailto://h"
    assert classify(False, "NOMATCH", []).permanent


HOSTILE = {
    **ALERT,
    "rule": "baikonur<b>",
    "message": {
        **ALERT["message"],
        "title": "<script>alert(1)</script> Байконур\r\nBcc: x@y.example",
        "terms": ["<i>Байконур</i>"],
        "snippet": "…*Байконур* <img src=x onerror=alert(2)> [link](javascript:alert(3))…",
        "original": {
            **ALERT["message"]["original"],
            "name": "Премьер & <b>министр</b>",
            "url": 'https://primeminister.kz/ru/news/1?a=1&b="><script>',
        },
    },
}


def _no_raw_markup(text: str) -> None:
    for raw in ("<script", "<img", "baikonur<b>", "<i>", "<b>министр", '"><'):
        assert raw not in text


def _one_mail(smtp_sink) -> EmailMessage:
    (mail,) = smtp_sink.messages
    assert "Bcc" not in mail
    assert "x@y.example" not in str(mail.get("To"))
    assert "\n" not in mail["Subject"]
    assert "<script>alert(1)</script>" in mail["Subject"]  # a subject is plain text
    return mail


def test_hostile_fields_reach_a_text_mail_as_text(smtp_sink) -> None:
    assert send(smtp_sink.url(), render(HOSTILE, DELIVERY), key="h/mail", alert_id="h").ok
    mail = _one_mail(smtp_sink)
    assert mail.get_body(preferencelist=("html",)) is None  # text said, text sent
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "Story: <script>alert(1)</script> Байконур Bcc: x@y.example" in text


def test_hostile_fields_reach_an_html_mail_escaped(smtp_sink) -> None:
    url = f"{smtp_sink.url()}&format=html"
    assert send(url, render(HOSTILE, DELIVERY), key="h/mail", alert_id="h").ok
    html = _one_mail(smtp_sink).get_body(preferencelist=("html",))
    assert html is not None
    content = html.get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "&amp;&nbsp;&lt;b&gt;министр&lt;/b&gt;" in content
    _no_raw_markup(content)


def test_hostile_fields_reach_telegram_escaped(telegram_at_sink) -> None:
    url = "tgram://123456:CANARY-TG-hostile/-100200300"
    assert send(url, render(HOSTILE, DELIVERY), key="h/tg", alert_id="h").ok
    (got,) = telegram_at_sink.accepted()
    text = got.body["text"]
    assert got.body.get("parse_mode", "").upper() in ("HTML", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    _no_raw_markup(text)


def test_hostile_fields_reach_the_webhook_as_text(webhook_sink) -> None:
    url = f"json://127.0.0.1:{webhook_sink.port}/hook"
    assert send(url, render(HOSTILE, DELIVERY), key="h/hook", alert_id="h").ok
    (got,) = webhook_sink.accepted()
    assert "\n" not in got.body["title"]
    assert "\r" not in got.body["title"]
    # A JSON webhook is data, not markup: the text arrives as written, on one-line fields.
    assert "Story: <script>alert(1)</script> Байконур Bcc: x@y.example\n" in got.body["message"]


def test_hostile_fields_reach_slack_escaped(webhook_sink, monkeypatch) -> None:
    from apprise.plugins.slack import NotifySlack

    monkeypatch.setattr(NotifySlack, "webhook_url", f"{webhook_sink.url}/services")
    url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
    assert send(url, render(HOSTILE, DELIVERY), key="h/slack", alert_id="h").ok
    (got,) = webhook_sink.accepted()
    text = str(got.body)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x" in text
    _no_raw_markup(text)
