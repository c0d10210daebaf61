"""Who a text credits: attribution phrases (ru, kk, en) and links, resolved to configured sources.

`find_citations` finds the phrase families a copy uses to credit its original
("со ссылкой на пресс-службу премьер-министра РК", "сообщает Caravan.kz", "деп хабарлайды
Zakon.kz", "... сілтеме жасап", "according to", "citing", "source:") and the body links that
point at a known source's domain. Each citation keeps the exact phrase and its span in the
original text, the cited name as written, and the source it resolves to through the
aliases of sources.yaml (`AliasIndex`), or None when the name is unknown.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pipelines.stemming import stemmer

if TYPE_CHECKING:
    from crawler.config import Source

# A cited name: up to six words, a word being letters, digits, hyphens and inner dots
# (Caravan.kz) or a quoted title; it stops at punctuation and at the words that start the
# next clause, so "сообщает Caravan.kz со ссылкой на ..." cites "Caravan.kz", not the rest.
WORD = r"(?:[«\"„“][^»\"”“]{1,60}[»\"”“]|[^\W_][\w\-'’]*(?:\.[A-Za-z][\w\-]*)*)"
CLAUSE_WORDS = (
    "со|с|о|об|что|и|а|но|по|на|к|в|во|из|от|для|при|как|где|когда|это|уже|также|"
    "деп|және|туралы|бойынша|сілтеме|and|that|on|in|at|by|for|to|as|which|who|said|says|the"
)
# Words of a name are apart by any space but a line break (pages use no-break spaces).
GAP = r"[^\S\n]+"
NAME = rf"(?P<name>(?!(?:{CLAUSE_WORDS})\b){WORD}(?:{GAP}(?!(?:{CLAUSE_WORDS})\b){WORD}){{0,5}})"
# A cited outlet after a verb of saying is a proper name: one domain (Caravan.kz), or up to
# four capitalised or quoted words ("РИА Новости", «Хабар 24»).
QUOTED = r"[«\"„“][^»\"”“]{1,60}[»\"”“]"
DOMAIN = r"[^\W_][\w\-]*(?:\.[^\W_][\w\-]*)*\.[a-zA-Z]{2,}\b"
CAPITALISED = rf"(?:{QUOTED}|[A-ZА-ЯЁӘҒҚҢӨҰҮҺІ][\w\-]+|\d+)"
OUTLET = rf"(?P<name>{DOMAIN}|{CAPITALISED}(?:{GAP}{CAPITALISED}){{0,3}})"
REPORTER = (
    r"(?:(?:собственный\s+)?корреспондент(?:ы|а)?\s+|тілшісі\s+"
    r"|агентство\s+|издание\s+|портал\s+)?"
)
# Present tense only: "сообщил Стародубцев" quotes a person, "сообщает Caravan.kz" credits.
RU_SAYS = r"\b(?:[Сс]ообща(?:ет|ют)|[Пп]ереда(?:ет|ёт|ют)|[Пп]ишет|[Ии]нформирует)\s+"
RU_AS_REPORTED = r"\bкак\s+(?:сообщили|сообщает|сообщило|сообщила|передает|передаёт|отметили)"
RU_REPORTED_IN = r"\b(?:сообщили|рассказали|заявили|пояснили|отметили)"
KK_SAYS = r"\b(?:деп\s+)?(?:хабарлайды|хабарлады|жазады)\s+"
KK_ACCORDING_TO = r"мәліметінше|мәліметіне\s+сәйкес|хабарлауынша|хабарлауына\s+сәйкес"

# Kazakh puts the cited name before the verb ("... баспасөз қызметіне сілтеме жасап"): the
# name is read backwards from the phrase, up to this many words.
KK_NAME_WORDS = 5
KK_NAME_LOOKBACK = 200  # characters searched for those words
KK_NAME_STOP = re.compile(
    r"^(?:деп|хабарлайды|хабарлады|жазады|жазды|және|бұл|туралы|тілшісі|[\w\-]+\.[a-z]{2,})$",
    re.IGNORECASE,
)
PRECEDING_WORD = re.compile(r"([^\s,;:!?()«»\"]+)[ \t]*$")

# Verbs of saying are matched case-sensitively so that the outlet must be capitalised.
CASE_SENSITIVE = frozenset({"ru_says", "kk_says", "en_reported"})
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(pattern, 0 if family in CASE_SENSITIVE else re.IGNORECASE))
    for family, pattern in (
        ("ru_citing", rf"\bсо\s+ссылкой\s+на\s+{NAME}"),
        ("ru_as_reported", rf"{RU_AS_REPORTED}\s+(?:в|во)\s+{NAME}"),
        ("ru_reported_in", rf"{RU_REPORTED_IN}\s+(?:в|во)\s+{NAME}"),
        ("ru_according_to", rf"\bпо\s+(?:данным|информации|сообщению)\s+{NAME}"),
        ("ru_says", rf"{RU_SAYS}{REPORTER}{OUTLET}"),
        ("kk_says", rf"{KK_SAYS}{REPORTER}{OUTLET}"),
        ("kk_citing", r"(?P<verb>\bсілтеме\s+жаса(?:п|ды|йды))"),
        ("kk_according_to", rf"(?P<verb>\b(?:{KK_ACCORDING_TO}))"),
        ("kk_source", rf"\bдереккөз\s*[:\-–—]\s*{NAME}"),
        ("en_according_to", rf"\baccording\s+to\s+(?:the\s+)?{NAME}"),
        ("en_citing", rf"\bciting\s+(?:the\s+)?{NAME}"),
        ("en_source", rf"\bsource\s*:\s*{NAME}"),
        ("en_reported", rf"\b(?:reports?|reported\s+by|told)\s+{OUTLET}"),
    )
)

# Kazakh case and possessive endings, longest first; stripped before stemming so that
# "Ақорданың", "Ақордаға" and "Ақорда" meet.
KK_ENDINGS = sorted(
    [
        *("ның", "нің", "дың", "дің", "тың", "тің", "ға", "ге", "қа", "ке", "на", "не"),
        *("да", "де", "та", "те", "нда", "нде", "дан", "ден", "тан", "тен", "нан", "нен"),
        *("ды", "ді", "ты", "ті", "ны", "ні", "мен", "бен", "пен", "лар", "лер", "дар"),
        *("дер", "тар", "тер", "сы", "сі", "ы", "і", "ын", "ін", "сын", "сін", "ына"),
        *("іне", "сына", "сіне", "ында", "інде", "сында", "сінде", "ынан", "інен"),
        *("сынан", "сінен", "ымен", "імен", "сымен", "сімен"),
    ],
    key=len,
    reverse=True,
)
KK_LETTERS = str.maketrans("әғқңөұүһі", "агкноуухи")
KK_SPECIFIC = re.compile(r"[әғқңөұүһі]")
MIN_KK_STEM = 3
MIN_PREFIX = 4
QUOTES = str.maketrans(dict.fromkeys('«»"„“”'))
ALIAS_TOKEN = re.compile(r"[^\W_]+(?:\.[^\W_]+)+|[^\W_]+")
CYRILLIC = re.compile(r"[а-яё]")


def _strip_kazakh_endings(word: str) -> str:
    changed = True
    while changed:
        changed = False
        for ending in KK_ENDINGS:
            if word.endswith(ending) and len(word) - len(ending) >= MIN_KK_STEM:
                word = word[: -len(ending)]
                changed = True
                break
    return word


@lru_cache(maxsize=65536)
def fold_word(word: str) -> str:
    """One inflection-insensitive key per word: ru/en snowball stem, Kazakh endings stripped."""
    word = word.replace("ё", "е")
    if "." in word:  # a domain is its own key
        return word
    if KK_SPECIFIC.search(word):
        word = _strip_kazakh_endings(word).translate(KK_LETTERS)
    language = "russian" if CYRILLIC.search(word) else "english"
    return stemmer(language).stemWord(word)


def fold_name(name: str) -> tuple[str, ...]:
    """The keys of a name: NFKC, case folded, quotes and hyphens dropped, each word folded."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return tuple(fold_word(token) for token in ALIAS_TOKEN.findall(folded.replace("-", " ")))


def _same_word(a: str, b: str) -> bool:
    # Kazakh endings are ambiguous ("үкіметі" loses "ті" or "і"), so a key that starts
    # another of at least MIN_PREFIX letters counts as the same word.
    if a == b:
        return True
    shorter, longer = sorted((a, b), key=len)
    return len(shorter) >= MIN_PREFIX and longer.startswith(shorter)


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    width = len(needle)
    return any(
        all(
            _same_word(word, want)
            for word, want in zip(haystack[i : i + width], needle, strict=True)
        )
        for i in range(len(haystack) - width + 1)
    )


@dataclass(frozen=True)
class AliasIndex:
    """Cited names (aliases, titles, domains) of the configured sources, folded for lookup."""

    entries: tuple[tuple[tuple[str, ...], str], ...]  # (folded alias, source name)
    domains: tuple[tuple[str, str], ...]  # (domain, source name)

    @classmethod
    def from_sources(cls, sources: Iterable[Source]) -> AliasIndex:
        entries: dict[tuple[str, ...], str] = {}
        domains: list[tuple[str, str]] = []
        for source in sources:
            for alias in (*source.aliases, source.title, *source.domains):
                key = fold_name(alias)
                if key:
                    entries.setdefault(key, source.name)
            domains.extend((domain, source.name) for domain in source.domains)
        # Longest aliases first: "пресс-служба Акорды" wins over a bare "Акорда" of another.
        ordered = sorted(entries.items(), key=lambda entry: len(entry[0]), reverse=True)
        return cls(entries=tuple(ordered), domains=tuple(domains))

    def resolve(self, name: str) -> str | None:
        """The source `name` refers to, or None when no alias is inside it."""
        folded = fold_name(name)
        for alias, source in self.entries:
            if _contains(folded, alias):
                return source
        for word in folded:
            source = self.source_of_host(word)
            if source:
                return source
        return None

    def source_of_host(self, host: str) -> str | None:
        host = host.lower().rstrip(".")
        for domain, source in self.domains:
            if host == domain or host.endswith("." + domain):
                return source
        return None


@dataclass(frozen=True)
class Citation:
    """One credit found in a text: the exact phrase, its span, the name, the resolved source.

    A link citation has the URL as its phrase and the span -1, -1 unless the URL is written
    in the text itself.
    """

    phrase: str
    start: int
    end: int
    name: str
    source: str | None
    family: str = ""


def _clean_name(name: str) -> str:
    """The name as cited, quotes dropped and spaces (no-break ones too) made plain."""
    return " ".join(name.translate(QUOTES).split())


def _kazakh_name_start(text: str, verb_start: int) -> int:
    """Where the name cited before a Kazakh verb of citing begins (scanning backwards)."""
    start = verb_start
    for _ in range(KK_NAME_WORDS):
        word = PRECEDING_WORD.search(text, max(0, start - KK_NAME_LOOKBACK), start)
        # A word ending in a full stop closes the previous sentence, not the name.
        if word is None or KK_NAME_STOP.match(word.group(1)) or word.group(1).endswith("."):
            break
        start = word.start(1)
    return start


def find_citations(text: str, links: Sequence[str], aliases: AliasIndex) -> list[Citation]:
    """Every credit in `text` (phrase families, in text order) and in `links` (after them)."""
    found: list[Citation] = []
    covered: list[tuple[int, int]] = []
    for family, pattern in PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if "verb" in pattern.groupindex:
                start = _kazakh_name_start(text, start)
                name = _clean_name(text[start : match.start("verb")])
            else:
                name = _clean_name(match.group("name"))
            if any(start < c_end and c_start < end for c_start, c_end in covered):
                continue
            if not name:
                continue
            covered.append((start, end))
            found.append(
                Citation(
                    phrase=text[start:end],
                    start=start,
                    end=end,
                    name=name,
                    source=aliases.resolve(name),
                    family=family,
                )
            )
    found.sort(key=lambda citation: citation.start)
    seen_links: set[str] = set()
    for link in links:
        host = urlsplit(link).hostname or ""
        source = aliases.source_of_host(host)
        if source is None or link in seen_links:
            continue
        seen_links.add(link)
        at = text.find(link)
        span = (at, at + len(link)) if at >= 0 else (-1, -1)
        found.append(Citation(link, span[0], span[1], host, source, family="link"))
    return found
