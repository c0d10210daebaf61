"""The matcher on real sentences: inflections, Latin spellings, normalisation, exclude, near."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scheduler.matcher import (
    CompiledRules,
    Match,
    compile_rules,
    match_item,
    normalize,
    term_spellings,
)
from scheduler.rules import Near, Rule, load_rules

DATA = Path(__file__).parent / "data" / "matcher"
SENTENCES = json.loads((DATA / "sentences.json").read_text(encoding="utf-8"))["cases"]
BY_ID = {case["id"]: case["text"] for case in SENTENCES}


@pytest.fixture(scope="module")
def bundled() -> CompiledRules:
    return compile_rules(load_rules(resolve_secrets=False).rules)


def rule(name: str = "watch", **fields: object) -> Rule:
    return Rule.model_validate({"name": name, "channels": ["console"], **fields})


def found(matches: list[Match]) -> dict[str, list[str]]:
    by_rule: dict[str, list[str]] = {}
    for match in matches:
        by_rule.setdefault(match.rule, []).append(match.text)
    return by_rule


def assert_spans_point_into(text: str, matches: list[Match]) -> None:
    for match in matches:
        assert text[match.start : match.end] == match.text


@pytest.mark.parametrize("case", SENTENCES, ids=[c["id"] for c in SENTENCES])
def test_bundled_rules_on_real_sentences(bundled: CompiledRules, case: dict) -> None:
    matches = bundled.match(case["text"], lang=case["lang"])
    assert found(matches) == case["expect"]
    assert_spans_point_into(case["text"], matches)


# Kazakh Latin spellings, typed by hand from the KazNERD sentence "Байқоңырда биыл бес
# көпқабатты тұрғын үй бой көтереді ." and from the news sentence with "Бәйтерек холдингіне".
@pytest.mark.parametrize(
    ("sentence", "rule_name", "word"),
    [
        ("Baıqońyrda bıyl bes kópqabatty turǵyn úı boı kóteredi.", "baikonur", "Baıqońyrda"),
        ("Baiqońyrda biyl bes kópqabatty turǵyn úi boi kóteredi.", "baikonur", "Baiqońyrda"),
        ("Bayqoñyrda biyl bes köpqabatty tūrğyn üy boy köteredi.", "baikonur", "Bayqoñyrda"),
        ("Baiqoñyrda bıyl bes köpqabatty tūrğyn üi boi köteredı.", "baikonur", "Baiqoñyrda"),
        (
            "Bai'qon'yrda bi'yl bes ko'pqabatty turg'yn u'i' boi' ko'teredi.",
            "baikonur",
            "Bai'qon'yrda",
        ),
        ("Baiqonyrda biyl bes kopqabatty turgyn ui boi koteredi.", "baikonur", "Baiqonyrda"),
        ("Indýstrııa mınıstrligi men Báıterek holdıngine tapsyramyn.", "baiterek", "Báıterek"),
        ("Industriia ministrlıgı men Bäiterek holdingıne tapsyramyn.", "baiterek", "Bäiterek"),
        ("Industriia ministrlıgı men Bäyterek holdingıne tapsyramyn.", "baiterek", "Bäyterek"),
        ("Bäitereginiñ basşysy keldı.", "baiterek", "Bäitereginiñ"),
    ],
)
def test_kazakh_latin_spellings(
    bundled: CompiledRules, sentence: str, rule_name: str, word: str
) -> None:
    matches = bundled.match(sentence)
    assert found(matches) == {rule_name: [word]}


def test_latin_spellings_come_from_tables_not_from_the_rule() -> None:
    (cyrillic, latin) = term_spellings("Байқоңыр")
    assert [f.prefix for f in cyrillic[0]] == ["байқоңыр"]
    assert {"baiqońyr", "bayqoñyr", "baiqoñyr", "bai'qon'yr", "baiqonyr"} <= {
        f.prefix for f in latin[0]
    }


def test_kazakh_final_consonant_softens_before_a_vowel() -> None:
    compiled = compile_rules([rule(terms=["Бәйтерек"])])
    for form in ("Бәйтерекке", "Бәйтеректің", "Бәйтерегі", "Бәйтерегінің"):
        assert found(compiled.match(f"«{form}» туралы")) == {"watch": [form]}


@pytest.mark.parametrize(
    "form",
    ["Байконур", "Байконура", "Байконуру", "Байконуром", "Байконуре", "байконурский", "байконурцы"],
)
def test_russian_cases_and_derived_words(form: str) -> None:
    compiled = compile_rules([rule(terms=["Байконур"])])
    sentence = BY_ID["ru-cosmodromes"].replace("Байконур", form)
    assert found(compiled.match(sentence)) == {"watch": [form]}


@pytest.mark.parametrize(
    "sentence",
    [
        BY_ID["ru-baikal-negative"],
        BY_ID["ru-baikal-adjective-negative"],
        BY_ID["kk-baitursynov-negative"],
        BY_ID["kk-baikenzhe-negative"],
        # No sentence in the data has these two: written here.
        "Байкеры проехали колонной по проспекту.",
        "Улица Байтурсынова перекрыта до вечера.",
    ],
)
def test_look_alike_names_do_not_match(bundled: CompiledRules, sentence: str) -> None:
    assert bundled.match(sentence) == []


# Each normalisation case applied to a real sentence; the span must cover the disguised
# word in the ORIGINAL text, invisible characters included.
COSMODROMES = BY_ID["ru-cosmodromes"]
NORMALISATION = {  # case: (sentence id, word in it, the word disguised)
    "upper case": ("ru-cosmodromes", "Байконур", "БАЙКОНУР"),
    "zero-width space": ("ru-cosmodromes", "Байконур", "Бай\u200bконур"),
    "word joiner": ("ru-cosmodromes", "Байконур", "Байк\u2060онур"),
    "soft hyphens": ("ru-cosmodromes", "Байконур", "Бай\u00adко\u00adнур"),
    "line-end hyphenation": ("ru-cosmodromes", "Байконур", "Байко-\nнур"),
    "soft hyphen at line end": ("ru-cosmodromes", "Байконур", "Байко\u00ad\nнур"),
    "latin a and o inside": ("ru-cosmodromes", "Байконур", "Бaйкoнур"),
    "latin p last": ("ru-cosmodromes", "Байконур", "Байконуp"),
    "stress mark": ("ru-cosmodromes", "Байконур", "Байкону\u0301р"),
    "decomposed й": ("ru-cosmodromes", "Байконур", "Баи\u0306конур"),
    "fullwidth latin": ("en-cosmodrome", "Baikonur", "ＢＡＩＫＯＮＵＲ"),
    "cyrillic а and о in latin": ("en-cosmodrome", "Baikonur", "Bаikоnur"),
    "decomposed ń": ("kk-nominative", "Байқоңыр", "Baiqon\u0301yr"),
}


@pytest.mark.parametrize("case", NORMALISATION.values(), ids=NORMALISATION.keys())
def test_normalisation_cases(bundled: CompiledRules, case: tuple[str, str, str]) -> None:
    sentence_id, word, disguised = case
    sentence = BY_ID[sentence_id].replace(word, disguised)
    matches = bundled.match(sentence)
    assert found(matches) == {"baikonur": [disguised]}
    assert matches[0].start == sentence.index(disguised)
    assert_spans_point_into(sentence, matches)


def test_spans_survive_expansions_before_the_match(bundled: CompiledRules) -> None:
    # NFKC turns "№" into "No" and "…" into "...": the normalised text is longer.
    sentence = "Приказ № 5… Ｂ " + COSMODROMES + " ﬁ " + BY_ID["ru-holding-dative"]
    matches = bundled.match(sentence)
    assert found(matches) == {"baikonur": ["Байконур"], "baiterek": ["Байтерек"]}
    assert_spans_point_into(sentence, matches)
    # Two rewrites that change the length, one after the other: both maps apply.
    hyphenated = sentence.replace("Байтерек", "Бай-\nтерек").replace("Байконур", "Бай\u200bконур")
    matches = bundled.match(hyphenated)
    assert found(matches) == {"baikonur": ["Бай\u200bконур"], "baiterek": ["Бай-\nтерек"]}
    assert_spans_point_into(hyphenated, matches)


def test_yo_is_e_in_text_and_in_terms() -> None:
    compiled = compile_rules([rule(terms=["Королёв"])])
    sentence = BY_ID["ru-korolev"]
    assert found(compiled.match(sentence)) == {"watch": ["Королева"]}
    assert found(compiled.match(sentence.replace("Королева", "Королёва"))) == {
        "watch": ["Королёва"]
    }


def test_latin_capital_starting_a_cyrillic_word() -> None:
    compiled = compile_rules([rule(terms=["Министерство"])])
    sentence = BY_ID["ru-holding-dative"].replace("Министерству", "Mинистерству")
    assert found(compiled.match(sentence)) == {"watch": ["Mинистерству"]}


def test_words_in_one_script_are_not_folded() -> None:
    compiled = compile_rules([rule(terms=["Совет"])])
    assert compiled.match("COBET") == []  # Latin look-alikes, but a Latin word
    assert found(compiled.match("Заседание Cовета")) == {"watch": ["Cовета"]}


def test_normalize_maps_spans_back() -> None:
    original = "№1 Бай\u00adконур"
    normalized = normalize(original)
    assert normalized.text == "no1 байконур"
    start = normalized.text.index("байконур")
    assert normalized.original_span(start, start + len("байконур")) == (3, len(original))


def test_exclude_vetoes_only_the_matches_it_contains() -> None:
    compiled = compile_rules(
        [rule(terms=["Байконур"], exclude=["Байконурская улица"])]  # as in rules.yaml
    )
    street = BY_ID["ru-street-excluded"]
    assert compiled.match(street) == []
    both = street + " " + COSMODROMES
    assert found(compiled.match(both)) == {"watch": ["Байконур"]}


def test_exclude_phrase_inflects_like_terms() -> None:
    compiled = compile_rules([rule(terms=["Байконур"], exclude=["Байконурская улица"])])
    for form in ("на Байконурской улице", "Байконурской улицей", "Байконурскую улицу"):
        assert compiled.match(f"ДТП {form} вечером") == []
    assert found(compiled.match("ДТП на Байконурской площадке")) == {"watch": ["Байконурской"]}


SPACE = Near(terms=["космодром", "ракета", "запуск", "пуск"], window=15)


def test_near_keeps_matches_with_context() -> None:
    compiled = compile_rules([rule(terms=["Байконур"], near=SPACE)])
    assert found(compiled.match(COSMODROMES)) == {"watch": ["Байконур"]}
    assert compiled.match(BY_ID["ru-adjective"]) == []
    assert compiled.match(BY_ID["ru-adjective-alone"]) == []


@pytest.mark.parametrize(("filler", "expected"), [(15, True), (16, False)])
def test_near_window_counts_words(filler: int, expected: bool) -> None:
    compiled = compile_rules([rule(terms=["Байконур"], near=SPACE)])
    words = " ".join(["слово"] * filler)
    for sentence in (f"ракета {words} Байконур", f"Байконур, {words} ракетой"):
        assert bool(compiled.match(sentence)) is expected


def test_near_window_is_in_words_not_characters() -> None:
    compiled = compile_rules([rule(terms=["Байконур"], near=SPACE)])
    long_words = " ".join(["длинноеслово" * 40] * 10)
    assert compiled.match(f"{COSMODROMES} {long_words} ракета {long_words} Байконур")


def test_phrase_terms_match_across_inflection() -> None:
    compiled = compile_rules([rule(terms=["космодром Байконур"])])
    sentence = BY_ID["ru-seed-cosmodrome"]
    assert found(compiled.match(sentence)) == {"watch": ["космодроме Байконур"]}


def test_short_words_match_whole_words_with_an_ending() -> None:
    compiled = compile_rules([rule(terms=["МКС"])])
    assert found(compiled.match("экипаж МКС вернулся")) == {"watch": ["МКС"]}
    assert found(compiled.match("на борту МКСа")) == {"watch": ["МКСа"]}
    assert compiled.match("мксимальный") == []


def test_scope_by_source_and_language() -> None:
    compiled = compile_rules([rule(terms=["Байконур"], sources=["zakon"], languages=["ru"])])
    assert compiled.match(COSMODROMES, source="zakon", lang="ru")
    assert compiled.match(COSMODROMES, source="tengrinews", lang="ru") == []
    assert compiled.match(COSMODROMES, source="zakon", lang="kk") == []
    assert compiled.match(COSMODROMES)  # unknown scope: a dry run over bare text


def test_match_item_record(bundled: CompiledRules) -> None:
    item = {
        "id": "abc123",
        "title": "Космодром Байконур",
        "text": BY_ID["ru-seed-genitive-variant"],
        "source": "caravan",
        "lang": "ru",
    }
    record = match_item(bundled, item)
    assert record["item"] == "abc123"
    assert record["rules"] == ["baikonur", "baiterek"]
    assert {(m["rule"], m["field"], m["text"]) for m in record["matches"]} == {
        ("baikonur", "title", "Байконур"),
        ("baiterek", "text", "Байтерек"),
        ("baikonur", "text", "Байконыра"),
    }
    for match in record["matches"]:
        assert item[match["field"]][match["start"] : match["end"]] == match["text"]
        assert set(match) == {"rule", "term", "field", "start", "end", "text"}
    assert json.loads(json.dumps(record, ensure_ascii=False)) == record


def test_match_item_without_matches(bundled: CompiledRules) -> None:
    record = match_item(bundled, {"id": "x", "title": "", "text": BY_ID["ru-baikal-negative"]})
    assert record == {"item": "x", "rules": [], "matches": []}


def test_pathological_text_stays_linear(bundled: CompiledRules) -> None:
    # Only literal prefixes and \w* tails are used: no backtracking to blow up.
    text = "байконурбайконур" * 20_000 + " " + "Бай" * 50_000 + "\u00ad" * 10_000
    assert bundled.match(text) == [Match("baikonur", "Байконур", 0, 320_000, text[:320_000])]


def test_rules_compile_every_term_into_the_scan() -> None:
    compiled = compile_rules(load_rules(resolve_secrets=False).rules)
    assert {"байконур", "байқоңыр", "baikonur", "байтерек", "бәйтерек"} <= set(compiled.literals)
    assert not any(re.fullmatch(r"байк\w{0,2}", literal) for literal in compiled.literals)


REPEATED = (
    "Раз два три четыре пять шесть. Минфин России сообщил. Министерство финансов "
    "Казахстана и Минфин утвердили бюджет. О финансов положении. Далее бюджет без "
    "контекста: раз два три четыре пять шесть. "
)


def test_a_big_item_gives_each_copy_the_matches_of_one() -> None:
    """Exclude, near and longer-hit-wins are decided in one pass over the hits: a page that
    repeats a paragraph 2,000 times gives that paragraph's matches, moved, at every copy
    (each copy's words before and after are out of the near window of the next)."""
    compiled = compile_rules(
        [
            rule(
                "minfin",
                terms=["Министерство финансов", "Министерство", "финансов", "Минфин"],
                exclude=["Минфин России"],
            ),
            rule("budget", terms=["бюджет"], near={"terms": ["Минфин"], "window": 3}),
        ]
    )
    one = [(m.rule, m.start, m.end, m.text) for m in compiled.match(REPEATED)]
    # as the matcher gave them before it was made linear
    assert one == [
        ("minfin", 54, 75, "Министерство финансов"),  # not also "Министерство", "финансов"
        ("minfin", 89, 95, "Минфин"),  # "Минфин России" is excluded
        ("budget", 106, 112, "бюджет"),  # the second "бюджет" has no Минфин near it
        ("minfin", 116, 124, "финансов"),
    ]
    copies = 2_000
    many = [(m.rule, m.start, m.end, m.text) for m in compiled.match(REPEATED * copies)]
    step = len(REPEATED)
    assert many == [(r, s + k * step, e + k * step, t) for k in range(copies) for r, s, e, t in one]
