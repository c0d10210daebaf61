"""ru/kk versions of one release, linked by a folded fingerprint of names and numbers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from crawler.items import PressItem
from pipelines.twins import are_twins, fingerprint, item_fingerprint, twin_overlap, twin_score
from tests.stories_data import load_news

ZAKON_EDITIONS = [("zakon.kz", "kaz.zakon.kz")]


NEWS = load_news()


def item(
    source: str, lang: str, text: str, published_at: str = "2019-11-18T12:00:00+06:00"
) -> PressItem:
    return PressItem(
        url=f"https://{source}/{lang}/{abs(hash(text))}",
        source=source,
        title="",
        text=text,
        published_at=published_at,
        lang=lang,
    )


@pytest.mark.parametrize(
    ("kazakh", "russian"),
    [
        ("Олжас Смағұлов келді", "Олжас Смагулов прибыл"),
        ("Ол Ақтөбе облысында", "Он в Актобе"),
        ("министр Бақыт Сұлтанов", "министр Бахыт Султанов"),
        ("вице-министр Қайырбек Өскенбаев", "вице-министр Каирбек Ускенбаев"),
        ("Мемлекет басшысы Қасым-Жомарт Тоқаевтың", "глава государства Касым-Жомарт Токаев"),
    ],
)
def test_names_meet_across_spelling_and_case_endings(kazakh: str, russian: str) -> None:
    assert fingerprint("", kazakh) == fingerprint("", russian) != frozenset()


def test_numbers_count_and_the_own_year_does_not() -> None:
    keys = fingerprint("", "Бағдарлама 5-20-25: 2019 жылы 1,4 трлн теңге", exclude_year=2019)
    assert {"#20", "#25", "#1.4"} <= keys
    assert "#2019" not in keys
    assert "#5" not in keys  # one digit is too common to tell events apart


def test_sentence_initial_words_and_common_names_are_not_keys() -> None:
    keys = fingerprint("", "Сегодня прошло заседание. Казахстан принял решение, сообщает Zakon.kz.")
    assert keys == frozenset()


@pytest.mark.parametrize(
    ("kazakh", "russian"),
    [
        ("kk_smagulov", "ru_smagulov_nur"),  # another publisher
        ("kk_smagulov", "ru_smagulov_zakon"),
        ("kk_vice_ministers", "ru_vice_ministers_zakon"),
        ("kk_karaganda_police", "ru_karaganda_police_zakon"),
        ("kk_mamin_housing", "ru_mamin_housing_zakon"),
    ],
)
def test_real_twins_are_linked(kazakh: str, russian: str) -> None:
    assert are_twins(NEWS[kazakh], NEWS[russian], publishers=ZAKON_EDITIONS)
    assert are_twins(NEWS[russian], NEWS[kazakh], publishers=ZAKON_EDITIONS)


@pytest.mark.parametrize(
    ("kazakh", "russian"),
    [
        # The same minister the same day: punishing a deputy (kk) vs the GDP forecast (ru).
        ("kk_dalenov_punishment", "ru_dalenov_gdp"),
        ("kk_mamin_housing", "ru_mamin_uzbek_delegation"),
        ("kk_smagulov", "ru_karaganda_police_zakon"),
    ],
)
def test_other_events_are_not_linked(kazakh: str, russian: str) -> None:
    assert not are_twins(NEWS[kazakh], NEWS[russian], publishers=ZAKON_EDITIONS)


def test_only_a_russian_and_a_kazakh_item_can_be_twins() -> None:
    kazakh, russian = NEWS["kk_smagulov"], NEWS["ru_smagulov_nur"]
    assert not are_twins(replace(kazakh, lang="ru"), russian)
    assert not are_twins(russian, replace(russian, lang=None, source="other"))


def test_twins_must_be_published_inside_the_window() -> None:
    kazakh, russian = NEWS["kk_smagulov"], NEWS["ru_smagulov_nur"]
    assert are_twins(kazakh, russian)
    assert not are_twins(kazakh, replace(russian, published_at="2019-11-20T10:32:29+00:00"))
    assert not are_twins(kazakh, replace(russian, published_at=None))


def test_times_without_offset_are_read_as_utc() -> None:
    kazakh, russian = NEWS["kk_smagulov"], NEWS["ru_smagulov_nur"]
    assert are_twins(kazakh, replace(russian, published_at="2019-11-18T10:32:29"))


def test_one_publisher_passes_a_lower_bar() -> None:
    names = "Олжас Смағұлов Ақтөбе және 2018"
    kazakh = item("kaz.zakon.kz", "kk", f"Бүгін {names} мен Лондон", "2019-11-18T12:00:00+06:00")
    russian = item(
        "zakon.kz", "ru", f"Сегодня {names} и Калифорния Кентербери", "2019-11-18T11:00:00+06:00"
    )
    assert twin_overlap(kazakh, russian).shared == 4
    assert twin_score(kazakh, russian) >= 0.5
    assert are_twins(kazakh, russian, publishers=ZAKON_EDITIONS)
    assert not are_twins(kazakh, russian)


def test_item_fingerprint_leaves_out_the_publication_year() -> None:
    news = item(
        "zakon.kz", "ru", "Итоги 2019 года и планы до 2025 года", "2019-11-18T12:00:00+06:00"
    )
    assert item_fingerprint(news) == {"#2025"}
