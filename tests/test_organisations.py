"""The directory of organisations: citations of bodies no crawl source covers, by family
(government, akimats, media and agencies, international) in ru, kk and en, inflected and
abbreviated; generic references resolved by context; the data file's own checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.config import ConfigError, Organisation, load_sources_file
from pipelines.attribution import AliasIndex, find_citations, fold_name
from pipelines.organisations import (
    BUNDLED_ORGANISATIONS,
    bundled_organisations,
    directory,
    load_organisations,
)
from pipelines.stories import SourceCatalog
from tests.stories_data import demo_sources

MVD = "gov.kz/memleket/entities/qriim"
DIRECTORY = AliasIndex.from_sources([], bundled_organisations())

# (text, cited name, address it resolves to); one found citation each
CASES = {
    "government": [
        ("По данным МВД, задержаны трое.", "МВД", MVD),
        ("Қылмыскер ұсталды. ІІМ хабарлады.", "ІІМ", MVD),
        ("Трое задержаны, according to the Interior Ministry.", "Interior Ministry", MVD),
        ("Как сообщили в пресс-службе Министерства внутренних дел, ...", None, MVD),
        ("Ішкі істер министрлігінің мәліметінше, ұсталды.", None, MVD),
        # a regional police department credits MVD
        ("По данным ДП Атырауской области, ...", "ДП Атырауской области", MVD),
        ("Аймақтық полиция департаментінің мәліметінше, ...", None, MVD),
        ("По данным КНБ, задержаны двое.", "КНБ", "knb.kz"),
        ("ҰҚК-нің мәліметінше, екеуі ұсталды.", None, "knb.kz"),
        ("Завтра похолодает, сообщает Казгидромет.", "Казгидромет", "kazhydromet.kz"),
        ("Қазгидромет мәліметінше, ауа райы суытады.", "Қазгидромет", "kazhydromet.kz"),
        ("Snow is coming, according to Kazhydromet.", "Kazhydromet", "kazhydromet.kz"),
        ("Об этом сообщили в Минздраве.", None, "gov.kz/memleket/entities/dsm"),
        ("Денсаулық сақтау министрлігі хабарлады.", None, "gov.kz/memleket/entities/dsm"),
        ("По информации КТЖ, поезд задерживается.", "КТЖ", "railways.kz"),
        ("Об этом сообщили в Генпрокуратуре.", None, "gov.kz/memleket/entities/prokuror"),
        ("Указ опубликован на сайте Elbasy.kz, сообщает Elbasy.kz.", "Elbasy.kz", "elbasy.kz"),
        ("The fund said so, citing Samruk-Kazyna.", "Samruk-Kazyna", "sk.kz"),
    ],
    "akimats": [
        (
            "Работы завершат к зиме, сообщили в пресс-службе акимата Карагандинской области.",
            None,
            "gov.kz/memleket/entities/karaganda",
        ),
        (
            "Дороги откроют, со ссылкой на пресс-службу акима Алматы.",
            None,
            "gov.kz/memleket/entities/almaty",
        ),
        ("Астана қаласының әкімдігі хабарлады.", None, "gov.kz/memleket/entities/astana"),
        (
            "The road reopened, according to the Shymkent City Akimat.",
            None,
            "gov.kz/memleket/entities/shymkent",
        ),
    ],
    "media": [
        ("Об этом сообщает РИА Новости.", "РИА Новости", "ria.ru"),
        ("Переговоры прошли, передает ТАСС.", "ТАСС", "tass.ru"),
        ("Сделка закрыта, сообщает Sputnik Казахстан.", None, "sputnik.kz"),
        ("Сделка закрыта, пишет Sputnik.", "Sputnik", "sputnik.kz"),
        ("The law was signed, according to Kazinform.", "Kazinform", "inform.kz"),
        ("Заң қабылданды, деп хабарлайды ҚазАқпарат.", "ҚазАқпарат", "inform.kz"),
        ("Об этом передает Интерфакс-Казахстан.", "Интерфакс-Казахстан", "interfax.kz"),
        ("Со ссылкой на Хабар 24 сообщается, что ...", None, "24.kz"),
        ("Хабар 24 арнасының хабарлауынша, ...", None, "24.kz"),
    ],
    "international": [
        ("По данным ВОЗ, число случаев растёт.", "ВОЗ", "who.int"),
        ("ДДҰ мәліметінше, ауру азайды.", None, "who.int"),
        ("Growth will slow, according to the IMF.", "IMF", "imf.org"),
        ("По данным Всемирного банка, рост замедлится.", None, "worldbank.org"),
        ("Об этом сообщает Reuters.", "Reuters", "reuters.com"),
        ("Как сообщили в ЕЭК, пошлины снизят.", None, "eec.eaeunion.org"),
    ],
}


@pytest.mark.parametrize(
    ("text", "name", "address"),
    [case for family in CASES.values() for case in family],
    ids=[f"{family}:{case[0][:30]}" for family, cases in CASES.items() for case in cases],
)
def test_directory_resolves_bodies_no_crawl_source_covers(
    text: str, name: str | None, address: str
) -> None:
    found = find_citations(text, [], DIRECTORY)
    assert len(found) == 1, found
    (citation,) = found
    assert citation.address == address, citation
    assert text[citation.start : citation.end] == citation.phrase
    if name is not None:
        assert citation.name == name


@pytest.mark.parametrize(
    ("text", "phrase", "address"),
    [
        # a long post ends in the body the speaker works for; "и.о." is part of the name
        (
            "Об этом заявил и.о. начальника управления криминальной полиции Департамента"
            " полиции Алматинской области Марат Сейтжанов.",
            "заявил и.о. начальника управления криминальной полиции Департамента полиции"
            " Алматинской области Марат Сейтжанов",
            MVD,
        ),
        (
            "Штрафы вырастут, сообщил временно исполняющий обязанности руководителя управления"
            " администрирования Комитета государственных доходов Министерства финансов.",
            "сообщил временно исполняющий обязанности руководителя управления администрирования"
            " Комитета государственных доходов Министерства финансов",
            "kgd.gov.kz",
        ),
        # where he said it stands between the verb and the speaker
        (
            "Тарифы не вырастут, заявил на полях форума министр энергетики Канат Бозумбаев.",
            "заявил на полях форума министр энергетики Канат Бозумбаев",
            "gov.kz/memleket/entities/energo",
        ),
        (
            "Новость опубликовал в Instagram аким Карагандинской области Женис Касымбек.",
            "опубликовал в Instagram аким Карагандинской области Женис Касымбек",
            "gov.kz/memleket/entities/karaganda",
        ),
    ],
)
def test_a_speaker_credits_the_body_his_post_names(text: str, phrase: str, address: str) -> None:
    (citation,) = find_citations(text, [], DIRECTORY)
    assert (citation.phrase, citation.address) == (phrase, address)


@pytest.mark.parametrize(
    "text",
    ["Об этом он заявил на брифинге в Акорде.", "Решение одобрено, сообщил в Акорде помощник."],
)
def test_a_place_after_the_verb_is_no_speaker(text: str) -> None:
    assert find_citations(text, [], DIRECTORY) == []


def test_a_quoted_body_that_gives_out_news_is_credited() -> None:
    text = "Вчера «Самрук-Казына» распространил отчёт о доходах за год."
    (citation,) = find_citations(text, [], DIRECTORY)
    assert citation.address == "sk.kz"
    assert citation.phrase.endswith("«Самрук-Казына» распространил")
    # whoever receives the news is no source
    assert find_citations("Компания предоставила Минздраву данные.", [], DIRECTORY) == []


def test_unknown_names_are_kept_with_no_address() -> None:
    (citation,) = find_citations("Об этом пишет «Степной вестник».", [], DIRECTORY)
    assert (citation.name, citation.source, citation.address) == (
        "Степной вестник",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (
            "Дорогу на Абая откроют в декабре. Аким Карагандинской области поручил ускорить"
            " работы. Как сообщили в пресс-службе акимата, подрядчик оштрафован.",
            "gov.kz/memleket/entities/karaganda",
        ),
        (
            "В Шымкенте отремонтируют школы. Как сообщили в пресс-службе акимата, работы"
            " начнутся летом.",
            "gov.kz/memleket/entities/shymkent",
        ),
        (
            "Министерство здравоохранения обновило правила. По данным пресс-службы ведомства,"
            " они вступят в силу в мае.",
            "gov.kz/memleket/entities/dsm",
        ),
    ],
)
def test_generic_references_resolve_to_the_body_the_text_names(text: str, address: str) -> None:
    [citation] = [c for c in find_citations(text, [], DIRECTORY) if c.address]
    assert citation.address == address


@pytest.mark.parametrize(
    ("text", "address"),
    [
        # two regions named alike: the one named more often is the akimat meant
        (
            "Делегация Павлодарской области прибыла в Карагандинскую область. В Карагандинской"
            " области гостей встретили на вокзале. Как сообщили в пресс-службе акимата, визит"
            " продлится два дня.",
            "gov.kz/memleket/entities/karaganda",
        ),
        # named once each, but one by its akim ("акима", inflected: a name beats a place)
        (
            "Заявление акима Костанайской области опубликовано. По данным УВП, в Астане и"
            " Костанайской области похолодает.",
            "gov.kz/memleket/entities/kostanay",
        ),
        # named once each, alike: no one is meant
        (
            "Делегация Павлодарской области прибыла в Карагандинскую область. Как сообщили в"
            " пресс-службе акимата, визит продлится два дня.",
            None,
        ),
    ],
)
def test_a_generic_reference_weighs_how_the_text_names_bodies(
    text: str, address: str | None
) -> None:
    (citation,) = find_citations(text, [], DIRECTORY)
    assert citation.address == address


def test_a_generic_reference_with_no_body_named_is_kept_as_a_name() -> None:
    text = "Как сообщили в пресс-службе акимата, работы начнутся летом."
    (citation,) = find_citations(text, [], DIRECTORY)
    assert (citation.name, citation.source) == ("пресс-службе акимата", None)


def test_photo_credits_are_not_attribution() -> None:
    text = (
        "Министр провёл совещание.\nФото: пресс-служба МВД\n"
        "Фото с сайта https://www.akorda.kz/ru/1\nЖиын өтті."
    )
    assert find_citations(text, [], DIRECTORY) == []
    # the link in the photo credit is left out; a link the text does not show is a credit
    links = ["https://www.akorda.kz/ru/1", "https://kazhydromet.kz/ru/2"]
    assert [c.address for c in find_citations(text, links, DIRECTORY)] == ["kazhydromet.kz"]


def test_links_to_gov_kz_bodies_resolve_by_path() -> None:
    links = [
        "https://www.gov.kz/memleket/entities/qriim/press/news/details/1?lang=ru",
        "https://www.gov.kz/memleket/entities/dsm/press/news/details/2",
        "https://www.gov.kz/memleket/entities/unknown-body/press",
    ]
    found = find_citations("", links, DIRECTORY)
    assert [c.address for c in found] == [MVD, "gov.kz/memleket/entities/dsm"]


def test_a_former_domain_resolves_to_the_body_and_reports_its_current_one() -> None:
    entry = Organisation(
        id="steppe",
        kind="media",
        names={"ru": "Степной вестник"},
        domain="steppe-news.kz",
        former_domains=["Old-Steppe-Vestnik.kz/"],
    )
    assert entry.former_domains == ["old-steppe-vestnik.kz"]
    index = AliasIndex.from_sources([], [entry])
    text = "Об этом сообщает Old-steppe-vestnik.kz. Первоисточник: https://www.old-steppe-vestnik.kz/a/1"
    links = ["https://www.old-steppe-vestnik.kz/a/1"]
    found = find_citations(text, links, index)
    assert [(c.family, c.address) for c in found] == [
        ("ru_says", "steppe-news.kz"),
        ("link", "steppe-news.kz"),
    ]


def test_a_host_label_long_enough_to_be_a_name_resolves() -> None:
    # "пишет tengrinews": a site's coined first label names it, in lower case too
    (citation,) = find_citations("Суд отложен, пишет tengrinews.", [], DIRECTORY)
    assert (citation.name, citation.address) == ("tengrinews", "tengrinews.kz")
    # a short label is a word as often as a name: "total" is not total.kz
    assert DIRECTORY.resolve("total") is None


def test_a_crawl_source_owns_the_directory_entries_of_its_site() -> None:
    catalog = SourceCatalog(demo_sources())
    # the demo's primeminister source owns primeminister.kz: the directory's names for the
    # government resolve to it, and it keeps its name as the key
    assert catalog.aliases.resolve("пресс-службы Правительства") == "primeminister"
    assert catalog.aliases.resolve("Үкіметтің") == "primeminister"
    # a body no source crawls is keyed by its address
    assert catalog.aliases.resolve("МВД") == MVD
    assert catalog.kind(MVD) == "official"


def test_sources_on_one_host_are_told_apart_by_path() -> None:
    catalog = SourceCatalog(load_sources_file().sources)
    base = "https://www.gov.kz/memleket/entities/{}/press/news/details/1?lang=ru"
    assert catalog.source_of_url(base.format("minfin")) == "gov-minfin"
    assert catalog.source_of_url(base.format("economy")) == "gov-economy"
    assert catalog.source_of_url(base.format("almaty")) == "gov-almaty"
    assert catalog.source_of_url(base.format("qriim")) == MVD
    assert catalog.source_of_url("https://www.gov.kz/other") == "gov.kz"
    assert catalog.domain("gov-minfin") == "gov.kz/memleket/entities/minfin"
    # the crawler still fetches from the host
    (minfin,) = [s for s in load_sources_file().sources if s.name == "gov-minfin"]
    assert minfin.hosts == ["gov.kz"]
    assert minfin.owns("www.gov.kz")


def test_the_bundled_directory_is_valid_and_large() -> None:
    entries = bundled_organisations()
    assert len(entries) >= 200
    kinds = {o.kind for o in entries}
    assert kinds == {"official", "agency", "media", "international"}
    assert load_organisations(BUNDLED_ORGANISATIONS) == list(entries)


def test_no_two_entries_claim_one_name() -> None:
    # a name two bodies share would resolve to whichever came first: say which instead
    owner: dict[tuple[str, ...], str] = {}
    clashes = []
    for organisation in bundled_organisations():
        for name in {*organisation.cited_names()}:
            key = fold_name(name)
            if owner.setdefault(key, organisation.id) != organisation.id:
                clashes.append((name, owner[key], organisation.id))
    assert clashes == []


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(body, encoding="utf-8")
    return path


SOURCES_HEAD = """\
sources:
  - name: akorda
    kind: official
    domains: [akorda.kz]
    discovery: {feeds: ['https://akorda.kz/rss']}
"""


def test_users_add_organisations_in_sources_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        SOURCES_HEAD
        + """\
organisations:
  - id: ekibastuz-gres
    kind: official
    names: {ru: Экибастузская ГРЭС-1, en: Ekibastuz GRES-1}
    abbreviations: [ЭГРЭС-1]
    domain: gres1.kz
  - id: mvd
    kind: official
    names: {ru: Министерство внутренних дел}
    abbreviations: [МВД]
    gov_kz_path: memleket/entities/mvd-new
""",
    )
    extra = load_sources_file(path).organisations
    index = AliasIndex.from_sources([], directory(extra))
    (citation,) = find_citations("По данным Экибастузской ГРЭС-1, ...", [], index)
    assert citation.address == "gres1.kz"
    # an entry of the user's takes the place of the bundled one with its id
    assert index.resolve("МВД") == "gov.kz/memleket/entities/mvd-new"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "  - {id: x, kind: official, names: {ru: X}, domain: x.kz, gov_kz_path: "
            "memleket/entities/x}",
            "organisations[0]: give either domain or gov_kz_path",
        ),
        ("  - {id: x, kind: official, names: {}, domain: x.kz}", "give at least one of"),
        ("  - {id: x, kind: ministry, names: {ru: X}, domain: x.kz}", "organisations[0].kind"),
        ("  - {id: x, kind: media, names: {ru: X}, domain: 'https://x.kz/'}", "not a URL"),
        (
            "  - {id: x, kind: media, names: {ru: X}, domain: x.kz}\n"
            "  - {id: x, kind: media, names: {ru: Y}, domain: y.kz}",
            "organisation id 'x' is used twice",
        ),
        (
            "  - {id: x, kind: media, names: {ru: X}, domain: x.kz}\n"
            "  - {id: y, kind: media, names: {ru: Y}, domain: x.kz}",
            "address 'x.kz' is another entry's",
        ),
        (
            "  - {id: x, kind: media, names: {ru: X}, domain: x.kz}\n"
            "  - {id: y, kind: media, names: {ru: Y}, domain: y.kz, former_domains: [x.kz]}",
            "address 'x.kz' is another entry's",
        ),
        (
            "  - {id: x, kind: media, names: {ru: X}, domain: x.kz, former_domains: ['http://o.kz']}",
            "not a URL",
        ),
    ],
)
def test_bad_organisations_are_refused_with_file_and_line(
    tmp_path: Path, entry: str, message: str
) -> None:
    path = write(tmp_path, SOURCES_HEAD + "organisations:\n" + entry + "\n")
    with pytest.raises(ConfigError, match=r"sources\.yaml:\d+: ") as refused:
        load_sources_file(path)
    assert message in str(refused.value)


def test_the_schema_reports_an_address() -> None:
    body = Organisation(
        id="x", kind="official", names={"ru": "X"}, gov_kz_path="memleket/entities/x"
    )
    assert body.address == "gov.kz/memleket/entities/x"
    assert body.title == "X"
