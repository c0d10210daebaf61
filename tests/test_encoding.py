"""decode_html gives the exact Unicode of every misdeclared page, or flags it."""

from __future__ import annotations

import codecs

import pytest

from crawler.encoding import Decoded, decode_html, encoding_problems, text_sample

ARTICLE = (
    "Минфин Республики Казахстан сообщает: бюджет исполнен. Министр финансов провёл "
    "брифинг в Астане, где рассказал о поступлениях в Национальный фонд и расходах на "
    "Байконур и Байтерек. Подробности - на сайте министерства."
)
KAZAKH = "Қаржы министрлігі хабарлайды: Байқоңыр мен «Бәйтерек» туралы. Сіз біле аласыз."
FRAGMENT = "Минфин сообщил о"  # 16 Cyrillic bytes in cp1251


def page(body: str, meta: str = "") -> str:
    return f"<html><head>{meta}<title>Новости</title></head><body><p>{body}</p></body></html>"


CASES = {
    "cp1251 page, no charset": (page(ARTICLE).encode("cp1251"), None, page(ARTICLE)),
    "cp1251 fragment, no charset": (FRAGMENT.encode("cp1251"), None, FRAGMENT),
    "cp1251 Минфин alone": ("Минфин".encode("cp1251"), None, "Минфин"),
    "header utf-8, body cp1251": (page(ARTICLE).encode("cp1251"), "utf-8", page(ARTICLE)),
    "header cp1251, body utf-8": (page(ARTICLE).encode("utf-8"), "windows-1251", page(ARTICLE)),
    "header cp1251, utf-8 fragment": ("Минфин".encode(), "cp1251", "Минфин"),
    "meta-only charset": (
        page(ARTICLE, '<meta charset="windows-1251">').encode("cp1251"),
        None,
        page(ARTICLE, '<meta charset="windows-1251">'),
    ),
    "meta http-equiv koi8-r": (
        page(
            ARTICLE, '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">'
        ).encode("koi8_r"),
        None,
        page(ARTICLE, '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">'),
    ),
    "koi8-r in header": (FRAGMENT.encode("koi8_r"), "koi8-r", FRAGMENT),
    "utf-16 with BOM, no header": (
        codecs.BOM_UTF16_LE + page(ARTICLE).encode("utf-16-le"),
        None,
        page(ARTICLE),
    ),
    "utf-8 BOM contradicting a cp1251 header": (
        codecs.BOM_UTF8 + page(ARTICLE).encode(),
        "cp1251",
        page(ARTICLE),
    ),
    "utf-16 BOM contradicting a utf-8 header": (
        codecs.BOM_UTF16_BE + FRAGMENT.encode("utf-16-be"),
        "utf-8",
        FRAGMENT,
    ),
    "plain utf-8, no charset": (page(ARTICLE).encode(), None, page(ARTICLE)),
    "Kazakh utf-8, header cp1251": (page(KAZAKH).encode(), "cp1251", page(KAZAKH)),
}


@pytest.mark.parametrize(("body", "declared", "expected"), CASES.values(), ids=CASES.keys())
def test_decodes_to_the_exact_unicode(body: bytes, declared: str | None, expected: str) -> None:
    decoded = decode_html(body, declared, languages=("ru", "kk"))
    assert decoded.text == expected
    assert decoded.flags == []
    assert not encoding_problems(decoded.text, ("ru", "kk"))


def test_forced_encoding_wins_over_everything() -> None:
    body = page(ARTICLE, '<meta charset="utf-8">').encode("cp1251")
    decoded = decode_html(body, "utf-8", forced="windows-1251")
    assert decoded == Decoded(page(ARTICLE, '<meta charset="utf-8">'), "cp1251", [])


def test_a_wrong_forced_encoding_is_flagged_not_hidden() -> None:
    decoded = decode_html(page(ARTICLE).encode(), None, forced="cp1251")
    assert decoded.flags == ["bad_encoding"]


def test_bytes_no_candidate_reads_are_flagged() -> None:
    # Random high bytes with a Chinese reading: none of the Cyrillic candidates is clean.
    body = "这是一个中文页面，没有任何俄语文字。".encode("gb18030") * 3
    decoded = decode_html(body, "utf-8", languages=("ru",))
    assert decoded.flags == ["bad_encoding"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("РњРёРЅС„РёРЅ СЃРѕРѕР±С‰РёР»", "utf8_read_as_cp1251"),
        ("Минфин \ufffd\ufffd сообщил", "replacement_characters"),
        ("扶桂扶桂扶桂", "cjk_on_cyrillic_source"),
    ],
)
def test_problem_signatures(text: str, problem: str) -> None:
    assert problem in encoding_problems(text, ("ru",))


@pytest.mark.parametrize(
    "text",
    ["Сіз бұл туралы біле аласыз", "Сёмин и Рёбров провели встречу в Астане", ARTICLE, KAZAKH],
)
def test_real_cyrillic_is_not_mojibake(text: str) -> None:
    assert encoding_problems(text, ("ru", "kk")) == []


def test_a_long_page_is_judged_on_a_sample_that_still_sees_its_article() -> None:
    # Markup fills the head; the article below it, misdeclared, is what gives it away.
    head = "<html><head><style>" + "a{color:red}" * 2000 + "</style></head><body>"
    body = (head + f"<p>{ARTICLE}</p>" * 100 + "</body></html>").encode("cp1251")
    decoded = decode_html(body, "utf-8", languages=("ru",))
    assert decoded.encoding == "cp1251"
    assert not decoded.flags
    assert ARTICLE in decoded.text


def test_text_sample_keeps_short_texts_and_cuts_long_ones() -> None:
    assert text_sample(ARTICLE) == ARTICLE
    long_text = "а" * 20_000 + "б" * 20_000 + "в" * 20_000
    sample = text_sample(long_text)
    assert len(sample) < len(long_text) / 2
    assert {"а", "б", "в"} <= set(sample)
