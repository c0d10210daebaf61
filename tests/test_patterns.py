"""URL patterns on RE2: they match what Python's re matches, in linear time, and what RE2
cannot run is refused with the reason."""

from __future__ import annotations

import re

import pytest

from crawler.patterns import PatternError, compile_pattern

URLS = (
    "https://www.gov.kz/memleket/entities/minfin/press/news/details/123?lang=ru",
    "https://www.gov.kz/memleket/entities/minfin/press/news/details/12a?lang=ru",
    "https://primeminister.kz/ru/news/mazhilis-odobril-byudzhet-2024",
    "https://primeminister.kz/ru/news?page=2",
    "https://tengrinews.kz/kazakhstan_news/minfin-soobschil-532190/",
    "https://x.kz/новости/минфин-сообщил-١٢٣",  # Cyrillic slug, Arabic-Indic digits
    "https://x.kz/NEWS/Item_7",
    "https://x.kz/a b/\u00a0c",
    "https://x.kz/aaaa",
    "",
)
PATTERNS = (
    r"^https://www\.gov\.kz/memleket/entities/minfin/press/news/details/\d+\?lang=ru$",
    r"^https://primeminister\.kz/ru/news/[a-z0-9-]+-\d+$",
    r"^https://primeminister\.kz/ru/news\?page=\d+$",
    r"^https://tengrinews\.kz/[a-z_]+/[a-z0-9-]+-\d+/$",
    r"/новости/[\w-]+$",  # re's \w is Unicode; RE2's own is ASCII
    r"\d+$",  # re's \d is any decimal digit
    r"(?a)/[\w-]+-\d+$",
    r"\s",
    r"/\S+/\S+$",
    r"[^\W_]+$",  # a class with a negated escape in it
    r"[\W\d]{3}",
    r"\W$",
    r"\D{5}\Z",
    r"(?i)/news/item_\d",
    r"(?i:/NEWS/)item",
    r"(?x) /news/  # verbose, with a comment\n  item",
    r"news(?#a comment)/",
    r"/\u043d\u043e\u0432\u043e\u0441\u0442\u0438/",
    r"^https://x\.kz/a{,3}$",
    r"^https://x\.kz/a{2,}?$",
    r"(?:minfin|mazhilis)-\w+",
    r"^$",
    r"(a+)+$",
    r".+\?page=",
)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_pattern_matches_what_re_matches(pattern: str) -> None:
    expected = [bool(re.search(pattern, url)) for url in URLS]
    assert [bool(compile_pattern(pattern).search(url)) for url in URLS] == expected


def test_a_catastrophic_pattern_runs_in_linear_time() -> None:
    # Under re this takes about 2**n steps: days for n = 40, never for n = 100,000.
    assert compile_pattern(r"(a+)+$").search("https://x.kz/" + "a" * 100_000 + "!") is None


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"^https://x\.kz/(\w+)/\1$", "a backreference"),
        (r"(?P<slug>\w+)/(?P=slug)", "a backreference"),
        (r"/news/(?!amp)", "a negative lookahead"),
        (r"(?<=/news/)\d+", "a lookahead or lookbehind"),
        (r"(/amp)?(?(1)x|y)", "a conditional group"),
        (r"(?>a+)b", "an atomic group"),
        (r"a++b", "a possessive repeat"),
        (r"(unclosed", "not a valid regular expression: missing )"),
        (r"a{1001}", "RE2 cannot compile it (invalid repetition size"),
    ],
)
def test_what_re2_cannot_run_is_refused_with_the_reason(pattern: str, reason: str) -> None:
    with pytest.raises(PatternError) as refused:
        compile_pattern(pattern)
    assert str(refused.value).startswith(reason)
    if "valid" not in reason and "RE2" not in reason:
        assert "cannot run in linear time" in str(refused.value)
