"""Attribution phrases in ru, kk and en, with spans, resolved through source aliases."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.config import Source
from pipelines.attribution import (
    AliasIndex,
    Citation,
    find_citations,
    fold_name,
    names_a_reporter,
)

SEED = (Path(__file__).parent / "data" / "stories" / "caravan_2019-07-09_baikonur.txt").read_text(
    encoding="utf-8"
)


def source(name: str, kind: str, domains: list[str], aliases: list[str]) -> Source:
    return Source(
        name=name,
        kind=kind,
        domains=domains,
        aliases=aliases,
        discovery={"feeds": [f"https://{domains[0]}/rss"]},
    )


SOURCES = [
    source(
        "primeminister",
        "official",
        ["primeminister.kz"],
        [
            "пресс-служба премьер-министра",
            "пресс-служба правительства",
            "Үкіметтің баспасөз қызметі",
            "Prime Minister's press service",
        ],
    ),
    source("akorda", "official", ["akorda.kz"], ["Акорда", "Ақорда", "Akorda"]),
    source("mvd", "official", ["polisia.kz"], ["МВД", "ІІМ", "Interior Ministry"]),
    source("almaty_akimat", "official", ["almaty.gov.kz"], ["акимат Алматы", "Алматы әкімдігі"]),
    source("kazinform", "agency", ["inform.kz"], ["Kazinform", "Казинформ", "ҚазАқпарат"]),
    source("caravan", "media", ["caravan.kz"], ["Caravan.kz", "Караван"]),
    source("zakon", "media", ["zakon.kz"], ["Zakon.kz", "Закон.кз"]),
]
ALIASES = AliasIndex.from_sources(SOURCES)

# (text, phrase, cited name, resolved source, family)
CASES = [
    # ru
    (
        "Об этом сообщает Caravan.kz со ссылкой на пресс-службу премьер-министра РК.",
        "со ссылкой на пресс-службу премьер-министра РК",
        "пресс-службу премьер-министра РК",
        "primeminister",
        "ru_citing",
    ),
    (
        "Встреча прошла в Астане, сообщает Caravan.kz.",
        "сообщает Caravan.kz",
        "Caravan.kz",
        "caravan",
        "ru_says",
    ),
    (
        "Решение принято, передает Kazinform.",
        "передает Kazinform",
        "Kazinform",
        "kazinform",
        "ru_says",
    ),
    (
        "Об этом передаёт корреспондент Zakon.kz.",
        "передаёт корреспондент Zakon.kz",
        "Zakon.kz",
        "zakon",
        "ru_says",
    ),
    (
        "Как сообщили в пресс-службе Акимата Алматы, работы завершат к зиме.",
        "Как сообщили в пресс-службе Акимата Алматы",
        "пресс-службе Акимата Алматы",
        "almaty_akimat",
        "ru_as_reported",
    ),
    ("По данным МВД, задержаны трое.", "По данным МВД", "МВД", "mvd", "ru_according_to"),
    (
        "Указ подписан, сообщили в пресс-службе Акорды.",
        "сообщили в пресс-службе Акорды",
        "пресс-службе Акорды",
        "akorda",
        "ru_reported_in",
    ),
    ("Об этом пишет «Курсив».", "пишет «Курсив»", "Курсив", None, "ru_says"),
    # kk
    (
        "Олжас Смағұлов тағайындалды, деп хабарлайды Zakon.kz.",
        "деп хабарлайды Zakon.kz",
        "Zakon.kz",
        "zakon",
        "kk_says",
    ),
    (
        "Бұл туралы деп хабарлайды ҚазАқпарат тілшісі.",
        "деп хабарлайды ҚазАқпарат",
        "ҚазАқпарат",
        "kazinform",
        "kk_says",
    ),
    (
        "Zakon.kz ҚР Үкіметінің баспасөз қызметіне сілтеме жасап хабарлады.",
        "ҚР Үкіметінің баспасөз қызметіне сілтеме жасап",
        "ҚР Үкіметінің баспасөз қызметіне",
        "primeminister",
        "kk_citing",
    ),
    (
        "Жол ашылды. Алматы әкімдігінің мәліметінше, жұмыс аяқталды.",
        "Алматы әкімдігінің мәліметінше",
        "Алматы әкімдігінің",
        "almaty_akimat",
        "kk_according_to",
    ),
    (
        "Дереккөз: Ақорданың баспасөз қызметі",
        "Дереккөз: Ақорданың баспасөз қызметі",
        "Ақорданың баспасөз қызметі",
        "akorda",
        "kk_source",
    ),
    # en
    (
        "Three people were detained, according to the Interior Ministry.",
        "according to the Interior Ministry",
        "Interior Ministry",
        "mvd",
        "en_according_to",
    ),
    (
        "Reuters reported the deal, citing Kazinform.",
        "citing Kazinform",
        "Kazinform",
        "kazinform",
        "en_citing",
    ),
    ("Source: akorda.kz", "Source: akorda.kz", "akorda.kz", "akorda", "en_source"),
    (
        "The minister told Kazinform on Monday.",
        "told Kazinform",
        "Kazinform",
        "kazinform",
        "en_reported",
    ),
    (
        "The talks went well, according to the Prime Minister's press service.",
        "according to the Prime Minister's press service",
        "Prime Minister's press service",
        "primeminister",
        "en_according_to",
    ),
]


@pytest.mark.parametrize(
    ("text", "phrase", "name", "resolved", "family"),
    CASES,
    ids=[c[4] + ":" + c[1][:24] for c in CASES],
)
def test_phrase_families_with_spans(
    text: str, phrase: str, name: str, resolved: str | None, family: str
) -> None:
    found = [c for c in find_citations(text, [], ALIASES) if c.family == family]
    assert len(found) == 1, find_citations(text, [], ALIASES)
    citation = found[0]
    assert citation.phrase == phrase
    assert text[citation.start : citation.end] == phrase
    assert citation.name == name
    assert citation.source == resolved


def test_the_seed_copy_credits_caravan_and_the_prime_minister() -> None:
    citations = find_citations(SEED, [], ALIASES)
    assert [(c.name, c.source) for c in citations] == [
        ("Caravan.kz", "caravan"),
        ("пресс-службу премьер-министра РК", "primeminister"),
    ]
    for citation in citations:
        assert SEED[citation.start : citation.end] == citation.phrase


def test_a_kazakh_sentence_with_outlet_and_original() -> None:
    text = (
        "Олжас Смағұлов тағайындалды, деп хабарлайды Zakon.kz ҚР Үкіметінің баспасөз "
        "қызметіне сілтеме жасап."
    )
    citations = find_citations(text, [], ALIASES)
    assert [(c.family, c.source) for c in citations] == [
        ("kk_says", "zakon"),
        ("kk_citing", "primeminister"),
    ]


def test_a_lower_case_latin_outlet_after_a_russian_verb_is_cited() -> None:
    # "пишет vlastkz": a Latin word after a Russian verb of saying names an outlet
    text = "Сделка сорвалась, пишет vlastkz. Подробности позже."
    (citation,) = find_citations(text, [], ALIASES)
    assert (citation.family, citation.phrase, citation.source) == (
        "ru_says",
        "пишет vlastkz",
        None,
    )
    # a Russian word in lower case is still no outlet
    assert find_citations("Он пишет письмо.", [], ALIASES) == []


@pytest.mark.parametrize(
    ("text", "reporter"),
    [
        ("Сессия открылась, передает корреспондент Caravan.kz.", True),
        ("Сессия ашылды, деп хабарлайды ҚазАқпарат тілшісі.", True),  # the word follows
        ("Сессия открылась, сообщает Caravan.kz. Корреспондент уехал.", False),
    ],
)
def test_a_credit_may_name_the_outlets_own_reporter(text: str, reporter: bool) -> None:
    (citation,) = find_citations(text, [], ALIASES)
    assert names_a_reporter(text, citation) is reporter


def test_unknown_names_are_kept_as_names() -> None:
    [citation] = find_citations("Об этом сообщили в пресс-службе ДЧС города.", [], ALIASES)
    assert citation.name == "пресс-службе ДЧС города"
    assert citation.source is None


def test_links_to_known_domains_are_citations() -> None:
    text = "Полный текст указа: https://www.akorda.kz/ru/legal_acts/decrees/1 ."
    links = [
        "https://www.akorda.kz/ru/legal_acts/decrees/1",
        "https://example.org/unrelated",
        "https://primeminister.kz/ru/news/x-123",
        "https://primeminister.kz/ru/news/x-123",
    ]
    citations = [c for c in find_citations(text, links, ALIASES) if c.family == "link"]
    assert [(c.source, c.start >= 0) for c in citations] == [
        ("akorda", True),
        ("primeminister", False),
    ]
    assert text[citations[0].start : citations[0].end] == links[0]
    assert (citations[1].start, citations[1].end) == (-1, -1)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("пресс-службы Акорды", "akorda"),
        ("Акордой", "akorda"),
        ("Ақорданың", "akorda"),
        ("АКОРДА", "akorda"),
        ("пресс-службе Правительства РК", "primeminister"),
        ("Үкіметтің баспасөз қызметінің", "primeminister"),
        ("ҚазАқпараттың", "kazinform"),
        ("агентства Казинформ", "kazinform"),
        ("www.zakon.kz", "zakon"),
        ("Министерства финансов", None),
    ],
)
def test_alias_lookup_ignores_case_and_inflection(name: str, expected: str | None) -> None:
    assert ALIASES.resolve(name) == expected


def test_folded_names_meet_across_spellings() -> None:
    assert fold_name("Пресс-службы") == fold_name("пресс-служба")
    assert fold_name("ещё") == fold_name("еще")
    # snowball takes "-им" of a short noun for an adjective's ending: "аким" would be "ак"
    assert fold_name("аким") == fold_name("акима") == fold_name("акимом") == ("аким",)


def test_plain_text_cites_nobody() -> None:
    text = "Министр провёл совещание. Обсудили сроки и бюджет. Жиын өтті."
    assert find_citations(text, [], ALIASES) == []


def test_citation_is_plain_data() -> None:
    citation = Citation("по данным МВД", 0, 13, "МВД", "mvd")
    assert citation.family == ""


@pytest.mark.parametrize("linked", [True, False], ids=["in links", "text only"])
def test_a_source_line_with_an_address_cites_the_address_once(linked: bool) -> None:
    url = "https://www.inform.kz/ru/article/3000001"
    text = f"Вице-министр подписал меморандум.\nИсточник: {url}"
    (citation,) = find_citations(text, [url] if linked else [], ALIASES)
    assert citation.phrase == f"Источник: {url}"  # not "Источник: https", cited as "https"
    assert citation.name == "www.inform.kz"
    assert citation.source == "kazinform"
