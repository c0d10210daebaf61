"""Rules files: the bundled default, file:line refusals, and channel URLs that stay secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.config import ConfigError
from scheduler.rules import BUNDLED_RULES, Rule, load_rules

CANARY = "CANARY-TG-5f0c9b1e-7d2a-4c33-9a61-0e4f8b2d6c17"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refusal(path: Path, **options: bool) -> str:
    with pytest.raises(ConfigError) as caught:
        load_rules(path, **options)
    return str(caught.value)


def test_bundled_rules_watch_baikonur_and_baiterek_in_three_languages() -> None:
    rules = load_rules()
    baikonur, baiterek = rules.rule("baikonur"), rules.rule("baiterek")
    assert {"Байконур", "Байқоңыр", "Baikonur"} <= set(baikonur.terms)
    assert {"Байтерек", "Бәйтерек", "Baiterek"} <= set(baiterek.terms)
    assert "Байконурская улица" in baikonur.exclude
    assert set(rules.channels) == {"console"}
    assert all(r.channels == ["console"] and r.mode == "immediate" for r in rules.rules)
    assert load_rules(None) == load_rules(BUNDLED_RULES)


def test_a_full_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW_TEST_HOOK", "hook-path")
    path = write(
        tmp_path,
        """
channels:
  ops-hook: "json://127.0.0.1:9/${PW_TEST_HOOK}"
  console: "console://"
rules:
  - name: baikonur
    terms: [Байконур, Байқоңыр]
    exclude: ["Байконурская улица"]
    near: {terms: [космодром, ракета, запуск], window: 15}
    sources: [zakon, tengrinews]
    languages: [ru, kk]
    channels: [ops-hook, console]
    mode: daily
""",
    )
    rules = load_rules(path)
    rule = rules.rules[0]
    assert rule.near is not None
    assert rule.near.window == 15
    assert rule.is_digest
    assert rules.channels["ops-hook"].get_secret_value() == "json://127.0.0.1:9/hook-path"
    kept = load_rules(path, resolve_secrets=False).channels["ops-hook"]
    assert kept.get_secret_value() == "json://127.0.0.1:9/${PW_TEST_HOOK}"


def test_undefined_channel_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """channels:
  console: "console://"
rules:
  - name: baikonur
    terms: [Байконур]
    channels:
      - console
      - space-telegram
""",
    )
    message = refusal(path)
    assert f"{path}:8: rules[0].channels[1]: no channel named 'space-telegram'" in message
    assert "defined: console" in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("    terms: [Байконур]\n    channel: [console]\n", ":6: rules[0].channel: Extra inputs"),
        ("    terms: []\n    channels: [console]\n", ":5: rules[0].terms:"),
        ('    terms: ["«»"]\n    channels: [console]\n', ":5: rules[0].terms: '«»' has no letters"),
        ("    terms: [x]\n    channels: [console]\n    mode: weekly\n", ":7: rules[0].mode:"),
        (
            "    terms: [x]\n    channels: [console]\n    near: {terms: [y], window: 0}\n",
            ":7: rules[0].near.window:",
        ),
        ("    terms: [x]\n", ":4: rules[0].channels: Field required"),
        (
            '    terms: ["Бай\\u200bконур"]\n    channels: [console]\n',
            ":5: rules[0].terms: 'Бай\\u200bконур' contains invisible characters (U+200B)",
        ),
    ],
)
def test_bad_rules_are_refused_with_file_line_and_field(
    tmp_path: Path, body: str, expected: str
) -> None:
    path = write(tmp_path, 'channels:\n  console: "console://"\nrules:\n  - name: r\n' + body)
    assert f"{path}{expected}" in refusal(path)


def test_rule_names_are_unique(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """channels: {console: "console://"}
rules:
  - {name: twice, terms: [a], channels: [console]}
  - {name: twice, terms: [b], channels: [console]}
""",
    )
    assert f"{path}:4: rules[1].name: rule name 'twice' is used twice" in refusal(path)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"tgram//{CANARY}/123", "is not a notification URL"),
        (f"nosuchscheme://{CANARY}@host", "unknown notification scheme 'nosuchscheme'"),
        (f"tgram://${{{CANARY}}}/1", "is not an environment name"),
    ],
)
def test_bad_channel_urls_are_refused_without_echoing_them(
    tmp_path: Path, url: str, reason: str
) -> None:
    path = write(
        tmp_path,
        f"""channels:
  ops: "{url}"
rules:
  - {{name: r, terms: [a], channels: [ops]}}
""",
    )
    message = refusal(path)
    assert f"{path}:2: channels.ops: " in message
    assert reason in message
    assert CANARY not in message


def test_missing_secret_names_the_variable_not_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PW_TEST_TG_TOKEN", raising=False)
    path = write(
        tmp_path,
        f"""channels:
  console: "console://"
  space-telegram: "tgram://${{PW_TEST_TG_TOKEN}}/{CANARY}"
rules:
  - {{name: r, terms: [a], channels: [space-telegram]}}
""",
    )
    message = refusal(path)
    assert f"{path}:3: channels.space-telegram: environment variable PW_TEST_TG_TOKEN" in message
    assert CANARY not in message
    assert load_rules(path, resolve_secrets=False).rules[0].name == "r"


def test_channel_urls_never_show_in_repr_or_dumps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PW_TEST_TG_TOKEN", CANARY)
    path = write(
        tmp_path,
        """channels:
  space-telegram: "tgram://${PW_TEST_TG_TOKEN}/-100123"
rules:
  - {name: r, terms: [a], channels: [space-telegram]}
""",
    )
    rules = load_rules(path)
    assert CANARY in rules.channels["space-telegram"].get_secret_value()
    for shown in (repr(rules), str(rules), rules.model_dump_json(), repr(rules.channels)):
        assert CANARY not in shown


def test_scope_reading() -> None:
    rule = Rule(name="r", terms=["a"], channels=["c"], sources=["zakon"], languages=["kk"])
    assert rule.applies_to(source="zakon", lang="kk")
    assert not rule.applies_to(source="nur", lang="kk")
    assert not rule.applies_to(source="zakon", lang="ru")
    assert rule.applies_to()


def test_unknown_rule_name_lists_the_known(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="known rules: baikonur, baiterek"):
        load_rules().rule("baikal")


def test_health_channels_default_to_the_console_and_can_be_named(tmp_path: Path) -> None:
    assert load_rules().health_channels == ["console"]
    path = write(
        tmp_path,
        """channels:
  console: "console://"
  ops-hook: "json://127.0.0.1:9/hook"
rules:
  - name: baikonur
    terms: [Байконур]
    channels: [console]
health:
  channels: [ops-hook]
""",
    )
    assert load_rules(path).health_channels == ["ops-hook"]


def test_health_with_an_undefined_channel_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """channels:
  console: "console://"
rules:
  - name: baikonur
    terms: [Байконур]
    channels: [console]
health:
  channels: [console, pager]
""",
    )
    message = refusal(path)
    assert f"{path}:8: health.channels[1]: no channel named 'pager'" in message
