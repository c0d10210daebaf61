"""Who a text credits: attribution phrases (ru, kk, en) and links, resolved to known bodies.

`find_citations` finds the phrase families a copy uses to credit its original
("со ссылкой на пресс-службу премьер-министра РК", "сообщает Caravan.kz", "деп хабарлайды
Zakon.kz", "... сілтеме жасап", "according to", "citing", "source:", "по данным МВД",
"ІІМ хабарлады", "сообщил министр сельского хозяйства") and the body links that point at a
known site. Each citation keeps the exact phrase and its span in the original text, the
cited name as written, and the body it resolves to through ONE index (`AliasIndex`) of
the crawl sources' aliases and the directory of organisations (`pipelines.organisations`),
or None when the name is unknown. Weak families (a subject before "сообщил", a name after
it) are kept only when the name resolves or names a body ("пресс-служба ведомства").
Generic references ("пресс-служба акимата") resolve to the one body of their group the
text names. Photo credits ("Фото: пресс-служба МВД") are not credits.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from crawler.urls import canonical_host
from pipelines.stemming import stemmer

if TYPE_CHECKING:
    from crawler.config import Organisation, Source

# A cited name: up to six words, a word being letters, digits, hyphens and inner dots
# (Caravan.kz), an abbreviation with dots ("и.о.", "м.а.") or a quoted title; it stops at
# punctuation and at the words that start the next clause, so "сообщает Caravan.kz со
# ссылкой на ..." cites "Caravan.kz", not the rest.
ABBREVIATION = r"[^\W\d_]{1,3}\.(?:[^\W\d_]{1,3}\.)+"
WORD = (
    rf"(?:[«\"„“][^»\"”“]{{1,60}}[»\"”“]|{ABBREVIATION}"
    r"|[^\W_][\w\-'’]*(?:\.[A-Za-z][\w\-]*)*)"
)
CLAUSE_WORDS = (
    "со|с|о|об|что|и|а|но|по|на|к|в|во|из|от|для|при|как|где|когда|это|уже|также|"
    "деп|және|туралы|бойынша|сілтеме|and|that|on|in|at|by|for|to|as|which|who|said|says|the"
)
# Words of a name are apart by any space but a line break (pages use no-break spaces).
GAP = r"[^\S\n]+"
# ("и" starts a clause, "и.о." a name)
NOT_CLAUSE = rf"(?!(?:{CLAUSE_WORDS})(?![\w.]))"


def _name(words: int) -> str:
    return rf"(?P<name>{NOT_CLAUSE}{WORD}(?:{GAP}{NOT_CLAUSE}{WORD}){{0,{words - 1}}})"


NAME = _name(6)
# A speaker is named by his post, and a post can be a long chain ("и.о. директора
# департамента налоговой методологии Комитета государственных доходов МФ РК"): the body at
# its end is the credit, so a speaker's name may run to twelve words.
SPEAKER = _name(12)
# Where he said it may stand between the verb and the speaker ("сообщил в кулуарах
# правительства министр ...", "опубликовал в Twitter президент ..."): "в"/"на" and a word
# (the speaker's name, read from the next word on, holds the rest of the place, and the
# longest known name in it wins: "министр внутренних дел" over "правительства").
CIRCUMSTANCE = rf"(?:(?:в|во|на)\s+{NOT_CLAUSE}[^\W\d_][\w\-]*\s+)?"
# A cited outlet after a verb of saying is a proper name: one domain (Caravan.kz), or up to
# four capitalised or quoted words ("РИА Новости", «Хабар 24»).
QUOTED = r"[«\"„“][^»\"”“]{1,60}[»\"”“]"
DOMAIN = r"[^\W_][\w\-]*(?:\.[^\W_][\w\-]*)*\.[a-zA-Z]{2,}\b"
CAPITALISED = rf"(?:{QUOTED}|[A-ZА-ЯЁӘҒҚҢӨҰҮҺІ][\w\-]+|\d+)"
# A Latin word in lower case after a Russian verb is an outlet's name too ("пишет
# sputniknews"): a Russian sentence has no other reason to hold one there.
LATIN_WORD = r"[a-z][a-z0-9\-]{3,}\b"
OUTLET = rf"(?P<name>{DOMAIN}|{LATIN_WORD}|{CAPITALISED}(?:{GAP}{CAPITALISED}){{0,3}})"
REPORTER = (
    r"(?:(?:собственный\s+)?корреспондент(?:ы|а)?\s+|тілшісі\s+"
    r"|агентство\s+|издание\s+|портал\s+)?"
)
# Present tense only: "сообщил Стародубцев" quotes a person, "сообщает Caravan.kz" credits.
RU_SAYS = r"\b(?:[Сс]ообща(?:ет|ют)|[Пп]ереда(?:ет|ёт|ют)|[Пп]ишет|[Ии]нформирует)\s+"
RU_AS_REPORTED = r"\bкак\s+(?:сообщили|сообщает|сообщило|сообщила|передает|передаёт|отметили)"
RU_REPORTED_IN = r"\b(?:сообщили|рассказали|заявили|пояснили|отметили)"
# "Об этом сообщил министр сельского хозяйства", "МИД РФ сообщил": weak, kept when a body
RU_SAID = (
    r"сообщил[аои]?|заявил[аои]?|рассказал[аои]?|уточнил[аои]?|написал[аои]?|опубликовал[аои]?"
    r"|прокомментировал[аои]?"
)
# A body that gives out news is its source ("Казгидромет предоставил прогноз"); after the
# verb the name would be the receiver, so these verbs credit the subject only.
RU_GAVE = r"предоставил[аои]?|распространил[аои]?|обнародовал[аои]?"
RU_SITE = r"сообщает|сообщается\s+на|указанной\s+на|опубликовано\s+на"
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
# A word, or a quoted title as one word ('"Казгидромет" предоставил'): what
# `_preceding_word` finds, the leftmost match of this pattern in its window.
PRECEDING_WORD = re.compile(rf"({QUOTED}|[^\s,;:!?()«»\"]+)[ \t]*$")
# What ends a word of PRECEDING_WORD besides whitespace, and the quotes of QUOTED.
WORD_BREAKS = frozenset(',;:!?()«»"')
OPENING_QUOTES = frozenset('«"„“')
CLOSING_QUOTES = frozenset('»"”“')
QUOTED_LONGEST = 60  # characters between the quotes

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
        ("ru_source", rf"\bисточник\s*[:\-–—]\s*{NAME}"),
        # Weak families (WEAK): kept only when the name resolves or names a body.
        ("ru_in_reported", rf"\b[Вв]о?{GAP}{NAME}{GAP}{RU_REPORTED_IN}\b"),
        ("ru_press_service", rf"\bпресс-служб[аыеуо]й?{GAP}{NAME}"),
        ("kk_reported", r"(?P<verb>\b(?:хабарлады|хабарлайды|мәлімдеді|мәлімдейді|жазды)\b)"),
        ("ru_site", rf"\b(?:{RU_SITE})\s+(?:официальн\w+\s+)?(?:сайте?|странице)\s+{NAME}"),
        ("ru_said_by", rf"\b(?:{RU_SAID})\s+{CIRCUMSTANCE}{SPEAKER}"),
        ("ru_subject_said", rf"(?P<verb>(?<!\w)(?:{RU_SAID}|{RU_GAVE})\b)"),
    )
)
# Words without which a family cannot match (case folded): a pattern scans a long text in
# about a millisecond even when it finds nothing, a word is looked for in a fraction of it.
# A family not named here is always scanned.
REQUIRED_WORDS: dict[str, tuple[str, ...]] = {
    "ru_citing": ("ссылкой",),
    "ru_reported_in": ("сообщили", "рассказали", "заявили", "пояснили", "отметили"),
    "ru_according_to": ("данным", "информации", "сообщению"),
    "ru_says": ("сообща", "переда", "пишет", "информирует"),
    "kk_says": ("хабарлайды", "хабарлады", "жазады"),
    "kk_citing": ("сілтеме",),
    "kk_according_to": ("мәліметін", "хабарлау"),
    "kk_source": ("дереккөз",),
    "en_according_to": ("according",),
    "en_citing": ("citing",),
    "en_source": ("source",),
    "en_reported": ("report", "told"),
    "ru_source": ("источник",),
    "ru_in_reported": ("сообщили", "рассказали", "заявили", "пояснили", "отметили"),
    "ru_press_service": ("пресс-служб",),
    "kk_reported": ("хабарла", "мәлімде", "жазды"),
    "ru_site": ("сообща", "указанной", "опубликовано"),
}
WEAK = frozenset(
    {"ru_in_reported", "ru_press_service", "kk_reported", "ru_said_by", "ru_subject_said"}
)
# Stems of the words that make a name a body's ("пресс-служба ведомства", "баспасөз
# қызметі"), folded at import; a weak family's unknown name must hold one.
BODY_WORDS = (
    *("пресс", "служба", "министерство", "ведомство", "департамент", "управление", "акимат"),
    *("комитет", "агентство", "полиция", "прокуратура", "суд", "правительство", "баспасөз"),
    *("министрлік", "әкімдік", "басқарма", "комитеті", "агенттік", "қызметі", "полициясы"),
    *("представитель", "министр", "пресс-секретарь"),
)
# A photo or video credit ("Фото: пресс-служба акимата") credits a picture, not the text.
NAMED_DOMAIN = re.compile(DOMAIN, re.IGNORECASE)
URL_AT = re.compile(r"https?://[^\s<>\"«»]+", re.IGNORECASE)  # a cited name that is an address
PHOTO_CREDIT = re.compile(r"(?:фото|photo|сурет|видео|video|кадр)\w*[^\n]{0,40}$", re.IGNORECASE)

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
MIN_STEM = 3
MIN_PREFIX = 4
# A host's first label is a cited name when it is this long: a coined name (tengrinews,
# sputniknews), not a word that happens to be a domain (total.kz, zakon.kz, el.kz).
MIN_SITE_LABEL = 8
KAZAKH_MARK = "~"  # no token holds it (ALIAS_TOKEN)
TEXTS_REMEMBERED = 4  # by `AliasIndex._mentions_in`
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
    """One inflection-insensitive key per word: ru/en snowball stem, Kazakh endings stripped
    (a Kazakh key ends in KAZAKH_MARK, so that only Kazakh keys meet by prefix)."""
    word = word.replace("ё", "е")
    if "." in word:  # a domain is its own key
        return word
    kazakh = bool(KK_SPECIFIC.search(word))
    if kazakh:
        word = _strip_kazakh_endings(word).translate(KK_LETTERS)
    language = "russian" if CYRILLIC.search(word) else "english"
    stem = stemmer(language).stemWord(word)
    # Snowball reads the end of a short noun as an adjective's ("аким" -> "ак", while
    # "акима" -> "аким"): a stem that short is no key, the word is.
    if len(stem) < MIN_STEM < len(word):
        stem = word
    return stem + (KAZAKH_MARK if kazakh else "")


def fold_name(name: str) -> tuple[str, ...]:
    """The keys of a name: NFKC, case folded, quotes and hyphens dropped, each word folded."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return tuple(fold_word(token) for token in ALIAS_TOKEN.findall(folded.replace("-", " ")))


def _same_word(a: str, b: str) -> bool:
    # Kazakh endings are ambiguous ("үкіметі" loses "ті" or "і"), so a Kazakh key that
    # starts another key of at least MIN_PREFIX letters, or that another starts, counts as
    # the same word. Russian and English stems meet only when equal: by prefix, "Степь"
    # would be "Степной" and "Ведомости" "ведомства".
    if a == b:
        return True
    if KAZAKH_MARK not in a and KAZAKH_MARK not in b:
        return False
    shorter, longer = sorted((a.rstrip(KAZAKH_MARK), b.rstrip(KAZAKH_MARK)), key=len)
    return len(shorter) >= MIN_PREFIX and longer.startswith(shorter)


def _bucket(word: str) -> str:
    # Two words are the same (`_same_word`) only when they share their first MIN_PREFIX
    # letters, or are equal when shorter: the bucket a lookup starts from.
    return word[:MIN_PREFIX]


def _split_site(site: str) -> tuple[str, str]:
    """``gov.kz/memleket/entities/minfin`` as host and path prefix."""
    host, _, path = site.partition("/")
    return host, f"/{path}" if path else ""


@dataclass(frozen=True)
class Party:
    """Whom a citation can resolve to: a crawl source (`key` is its name) or an entry of the
    directory of organisations that no crawl source owns (`key` is its address)."""

    key: str
    kind: str  # official, agency, media or international
    title: str
    address: str  # a domain, or a host and path (gov.kz/memleket/entities/qriim)
    group: str | None = None  # akimat, police ...: what a generic reference can mean


@dataclass(frozen=True)
class TextMentions:
    """The bodies a text names, as (words, key), and the places of bodies it holds, as
    (words, key), each in text order (`AliasIndex._mentions_in`)."""

    names: list[tuple[int, str]]
    places: list[tuple[int, str]]


class AliasIndex:
    """Cited names of the crawl sources and the directory of organisations, folded for
    lookup, in ONE index built once: a crawl source's aliases come first, and an entry whose
    address a crawl source owns resolves to that source. Names are bucketed by their first
    word's first letters, so a lookup costs the words of the name, not the size of the index.
    """

    def __init__(self) -> None:
        # What the index was built from (`config_key`): citations found through another
        # index with the same key are the citations this one finds. "" : unknown.
        self.key = ""
        self.parties: dict[str, Party] = {}
        # (folded name, key, order) of every name under its first word's bucket (`_bucket`):
        # what a Kazakh word of a text may meet. A word of any other language meets a
        # name's word only when equal, or when the name's word is Kazakh (`_same_word`), so
        # for it names are also kept apart: a name of no Kazakh word by its words
        # (`_plain`, looked up whole, with the widths to try per first word), any other by
        # its first word (exact, or the bucket when that word is Kazakh). Scanning a Russian
        # word's whole bucket ("минис...": every ministry) cost most of `find_citations`.
        self._names: dict[str, list[tuple[tuple[str, ...], str, int]]] = {}
        self._plain: dict[tuple[str, ...], tuple[str, int]] = {}
        self._plain_widths: dict[str, list[int]] = {}
        self._plain_by_word: dict[str, list[tuple[tuple[str, ...], str, int]]] = {}
        self._mixed_by_word: dict[str, list[tuple[tuple[str, ...], str, int]]] = {}
        self._kazakh_first: dict[str, list[tuple[tuple[str, ...], str, int]]] = {}
        self._folded: set[tuple[str, ...]] = set()
        self._places: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        self._groups: dict[str, str] = {}
        self._sites: list[tuple[str, str, str]] = []  # (host, path prefix, key)
        # The sites by host: (rank in `_sites`, path prefix, key), so that a URL is looked
        # up by its host's suffixes rather than compared with every site (`source_of_url`).
        self._sites_by_host: dict[str, list[tuple[int, str, str]]] = {}
        self._labels: dict[str, str] = {}  # first label of a site's host ("tengrinews")
        self._text_mentions: dict[str, TextMentions] = {}  # `_mentions_in`, oldest first

    @classmethod
    def from_sources(
        cls, sources: Iterable[Source], organisations: Iterable[Organisation] = ()
    ) -> AliasIndex:
        sources, organisations = list(sources), list(organisations)
        index = cls()
        index.key = config_key(sources, organisations)
        for source in sources:
            title = source.title or source.name
            index.parties[source.name] = Party(source.name, source.kind, title, source.domains[0])
            for site in source.domains:
                index._sites.append((*_split_site(site), source.name))
            for alias in (*source.aliases, source.title, *source.domains):
                index._add_name(alias, source.name)
        owned = list(index._sites)
        for organisation in organisations:
            index._add_organisation(organisation, owned)
        # Longest site first: gov.kz/memleket/entities/minfin before a bare gov.kz.
        index._sites.sort(key=lambda site: len(site[0]) + len(site[1]), reverse=True)
        for rank, (host, prefix, key) in enumerate(index._sites):
            index._sites_by_host.setdefault(host, []).append((rank, prefix, key))
        for host, _, key in reversed(index._sites):  # the longest site keeps a label
            label = host.removeprefix("www.").split(".")[0]
            if "." in host and len(label) >= MIN_SITE_LABEL:
                index._labels[label] = key
        return index

    def _add_organisation(
        self, organisation: Organisation, owned: Iterable[tuple[str, str, str]]
    ) -> None:
        """A directory entry: its sites, names and places, under the crawl source that owns
        its address (`owned`) or else under its address."""
        key = _owner(organisation.address, owned) or organisation.address
        if key not in self.parties:
            self.parties[key] = Party(
                key, organisation.kind, organisation.title, key, organisation.group
            )
            self._sites.append((*_split_site(key), key))
        if organisation.group:
            self._groups.setdefault(key, organisation.group)
        for former in organisation.former_domains:
            self._sites.append((*_split_site(former), key))
        for name in (
            *organisation.cited_names(),
            organisation.domain or "",
            *organisation.former_domains,
            *_ministers(organisation),
        ):
            self._add_name(name, key)
        for place in organisation.places:
            folded = fold_name(place)
            if folded:
                self._places.setdefault(folded[0], []).append((folded, key))

    def _add_name(self, name: str, key: str) -> None:
        folded = fold_name(name)
        if not folded or folded in self._folded:  # the first to claim a name keeps it
            return
        self._folded.add(folded)
        entry = (folded, key, len(self._folded))
        self._names.setdefault(_bucket(folded[0]), []).append(entry)
        if KAZAKH_MARK in folded[0]:
            self._kazakh_first.setdefault(_bucket(folded[0]), []).append(entry)
        elif any(KAZAKH_MARK in word for word in folded):
            self._mixed_by_word.setdefault(folded[0], []).append(entry)
        else:
            self._plain[folded] = (key, entry[2])
            self._plain_by_word.setdefault(folded[0], []).append(entry)
            widths = self._plain_widths.setdefault(folded[0], [])
            if len(folded) not in widths:
                widths.append(len(folded))

    def _matches(self, folded: tuple[str, ...]) -> Iterator[tuple[int, int, int, str]]:
        """(start, words, order, key) of every name found inside `folded`."""
        kazakh = [KAZAKH_MARK in word for word in folded]
        plain_widths, mixed, kazakh_first = (
            self._plain_widths,
            self._mixed_by_word,
            self._kazakh_first,
        )
        for i, word in enumerate(folded):
            if kazakh[i]:
                yield from self._matches_at(folded, i, self._names.get(word[:MIN_PREFIX], ()))
                continue
            for width in plain_widths.get(word, ()):
                if i + width > len(folded):
                    continue
                if width > 1 and any(kazakh[i + 1 : i + width]):  # may meet by prefix
                    named = self._plain_by_word[word]
                    yield from self._matches_at(folded, i, (n for n in named if len(n[0]) == width))
                    continue
                found = self._plain.get(folded[i : i + width])
                if found is not None:
                    yield i, width, found[1], found[0]
            if word in mixed:
                yield from self._matches_at(folded, i, mixed[word])
            bucket = word[:MIN_PREFIX]  # `_bucket`
            if bucket in kazakh_first:
                yield from self._matches_at(folded, i, kazakh_first[bucket])

    @staticmethod
    def _matches_at(
        folded: tuple[str, ...], i: int, names: Iterable[tuple[tuple[str, ...], str, int]]
    ) -> Iterator[tuple[int, int, int, str]]:
        for alias, key, order in names:
            width = len(alias)
            if width <= len(folded) - i and all(
                _same_word(w, a) for w, a in zip(folded[i : i + width], alias, strict=True)
            ):
                yield i, width, order, key

    def resolve(self, name: str) -> str | None:
        """The party `name` refers to, or None when no name it knows is inside it. Of
        several, the longest name wins ("пресс-служба Акорды" over a bare "Акорда"). A
        domain resolves to its site's party, and so does a word that is a long first label
        of a site's host ("пишет tengrinews")."""
        folded = fold_name(name)
        best = max(self._matches(folded), key=lambda m: (m[1], -m[2]), default=None)
        if best is not None:
            return best[3]
        for token in ALIAS_TOKEN.findall(name.casefold()):
            key = self.source_of_url(f"//{token}") if "." in token else self._labels.get(token)
            if key:
                return key
        return None

    def resolve_in(self, name: str, text: str) -> str | None:
        """`resolve`, and for a generic reference ("пресс-служба акимата", "пресс-служба
        ведомства") the one body of that group the text names, by name or by place."""
        key = self.resolve(name)
        if key is not None:
            return key
        group = generic_group(fold_name(name))
        return self._named_in(text, group) if group else None

    def _mentions_in(self, text: str) -> TextMentions:
        """Every name and every place of a body inside `text`, in text order, remembered
        for the last few texts: a text with several generic references ("пресс-служба
        ведомства") is searched once (a 40 KB text took 4 ms for its names and 0.7 ms more
        for its places at each reference)."""
        found = self._text_mentions.get(text)
        if found is None:
            folded = _folded_text(text)
            names = [(words, key) for _, words, _, key in self._matches(folded)]
            places = [
                (len(place), key)
                for i, word in enumerate(folded)
                for place, key in self._places.get(word, ())
                if folded[i : i + len(place)] == place
            ]
            found = self._text_mentions[text] = TextMentions(names, places)
            if len(self._text_mentions) > TEXTS_REMEMBERED:
                del self._text_mentions[next(iter(self._text_mentions))]
        return found

    def _named_in(self, text: str, group: str) -> str | None:
        mentioned = self._mentions_in(text)
        # Per body: the widest mention (a name beats a place), then how often it is named.
        width: dict[str, int] = {}
        mentions: Counter[str] = Counter()
        for words, key in mentioned.names:
            if self._groups.get(key) == group or (
                group == "ministry"
                and self.parties[key].kind == "official"
                and self._groups.get(key) in (None, "ministry")
            ):
                width[key] = max(width.get(key, 0), words + 1)
                mentions[key] += 1
        for words, key in mentioned.places:
            if self._groups.get(key) == group:
                width[key] = max(width.get(key, 0), words)
                mentions[key] += 1
        if not width:
            return None
        top = max((width[key], mentions[key]) for key in width)
        best = [key for key in width if (width[key], mentions[key]) == top]
        return best[0] if len(best) == 1 else None

    def source_of_url(self, url: str) -> str | None:
        """The party whose site holds `url` (its host, or on a shared host its path)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        path = parts.path.rstrip("/") + "/"
        # A site holds the URL when its host is the URL's or a parent domain of it: one of
        # these suffixes. Of several, the first in `_sites` (the longest) wins.
        suffixes = [host, *(host[at + 1 :] for at, char in enumerate(host) if char == ".")]
        found = min(
            (
                (rank, key)
                for suffix in suffixes
                for rank, prefix, key in self._sites_by_host.get(suffix, ())
                if not prefix or path.startswith(prefix + "/")
            ),
            default=None,
        )
        return found[1] if found else None

    def source_of_host(self, host: str) -> str | None:
        return self.source_of_url(f"//{host}")

    def address(self, key: str | None) -> str | None:
        party = self.parties.get(key) if key else None
        return party.address if party else None


def config_key(sources: Sequence[Source], organisations: Sequence[Organisation]) -> str:
    """A digest of the sources and organisations an `AliasIndex` is built from."""
    digest = hashlib.blake2b(digest_size=16)
    for entry in (*sources, *organisations):
        digest.update(entry.model_dump_json().encode())
        digest.update(b"\0")
    return f"{len(sources)}:{len(organisations)}:{digest.hexdigest()}"


def _ministers(organisation: Organisation) -> list[str]:
    """ "министр сельского хозяйства" for "Министерство сельского хозяйства": what a minister
    says credits the ministry."""
    names = []
    ru, kk = organisation.names.ru or "", organisation.names.kk or ""
    if ru.startswith("Министерство "):
        names.append("министр " + ru.removeprefix("Министерство "))
    if kk.endswith(" министрлігі"):
        names.append(kk.removesuffix(" министрлігі") + " министрі")
    return names


def _owner(address: str, sites: Iterable[tuple[str, str, str]]) -> str | None:
    """The crawl source whose site holds `address` (a domain, or gov.kz and a path)."""
    host, path = _split_site(address)
    for site_host, prefix, key in sites:
        if (host == site_host or host.endswith("." + site_host)) and (
            not prefix or (path + "/").startswith(prefix + "/")
        ):
            return key
    return None


# Words of a reference to a kind of body rather than to one body: "пресс-служба акимата"
# is the akimat the text names. Folded like names at import.
GENERIC_WORDS = {
    # УВП: the akimat's department of internal policy
    "akimat": ("акимат", "аким", "мэрия", "әкімдік", "әкім", "akimat", "akim", "mayor", "УВП"),
    "court": ("суд", "сот", "court"),
    "prosecutor": ("прокуратура", "прокурор", "прокуратурасы", "prosecutor"),
    "ministry": ("министерство", "ведомство", "министрлік", "ministry", "агентство"),
}
BODY_KEYS = tuple(fold_name(word)[0] for word in BODY_WORDS)
GENERIC_KEYS = tuple(
    (fold_name(word)[0], group) for group, words in GENERIC_WORDS.items() for word in words
)


@lru_cache(maxsize=4096)  # the same few references recur in text after text
def generic_group(folded: tuple[str, ...]) -> str | None:
    """The group a generic reference means, or None."""
    for word in folded:
        for generic, group in GENERIC_KEYS:
            if _same_word(word, generic):
                return group
    return None


@lru_cache(maxsize=64)
def _folded_text(text: str) -> tuple[str, ...]:
    return fold_name(text)


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
    address: str | None = None  # where the source publishes: domain, or gov.kz and path


def _clean_name(name: str) -> str:
    """The name as cited, quotes dropped and spaces (no-break ones too) made plain."""
    return " ".join(name.translate(QUOTES).split())


def _preceding_word(text: str, lo: int, end: int) -> tuple[int, int] | None:
    """The span of the word (or quoted title) that `text[lo:end]` ends with, trailing
    spaces and tabs and one line break aside: ``PRECEDING_WORD.search(text, lo, end)``.

    Read backwards from `end`: a `$`-anchored search tries every start in the window, and
    ran several times for every verb of saying in a text (`_kazakh_name_start`).
    """
    # `$` matches at `end` or before a line break there; nothing can end before a break.
    tail = end - 1 if end > lo and text[end - 1] == "\n" else end
    word_end = tail
    while word_end > lo and text[word_end - 1] in " \t":
        word_end -= 1
    if word_end == lo:
        return None
    start = word_end  # the leftmost start wins: the whole run of word characters
    while start > lo and not (text[start - 1].isspace() or text[start - 1] in WORD_BREAKS):
        start -= 1
    if text[word_end - 1] in CLOSING_QUOTES:
        # A quoted title: an opening quote, 1 to QUOTED_LONGEST characters that close no
        # quote, the closing one. It starts left of the run when it holds a space.
        at = word_end - 2
        while at >= max(lo, word_end - QUOTED_LONGEST - 2):
            if text[at] in OPENING_QUOTES and at <= word_end - 3:
                start = min(start, at)
            if text[at] in CLOSING_QUOTES:
                break
            at -= 1
    return (start, word_end) if start < word_end else None


def _kazakh_name_start(text: str, verb_start: int) -> int:
    """Where the name cited before a Kazakh verb of citing begins (scanning backwards)."""
    start = verb_start
    for _ in range(KK_NAME_WORDS):
        span = _preceding_word(text, max(0, start - KK_NAME_LOOKBACK), start)
        if span is None:
            break
        word = text[span[0] : span[1]]
        # A word ending in a full stop closes the previous sentence, not the name.
        if KK_NAME_STOP.match(word) or word.endswith("."):
            break
        start = span[0]
    return start


def _domain_in(name: str) -> str | None:
    """The domain an unknown name holds ("исследование finprom.kz"): where it publishes."""
    found = NAMED_DOMAIN.search(name)
    return canonical_host(found.group(0)) if found else None


@lru_cache(maxsize=4096)
def _names_a_body(name: str) -> bool:
    return any(_same_word(word, body) for word in fold_name(name) for body in BODY_KEYS)


# "передает корреспондент Zakon.kz", "деп хабарлайды ҚазАқпарат тілшісі": the outlet's own
# reporter (the Kazakh word follows the name).
REPORTER_WORD = re.compile(r"корреспондент|тілші|correspondent", re.IGNORECASE)
REPORTER_AFTER = re.compile(rf"{GAP}(?:{REPORTER_WORD.pattern})", re.IGNORECASE)


def names_a_reporter(text: str, citation: Citation) -> bool:
    """Whether the credit names a reporter of the outlet: the outlet was there itself."""
    return citation.start >= 0 and bool(
        REPORTER_WORD.search(citation.phrase) or REPORTER_AFTER.match(text, citation.end)
    )


def _patterns_for(text: str) -> list[tuple[str, re.Pattern[str]]]:
    """The `PATTERNS` that can match in `text` (`REQUIRED_WORDS`)."""
    folded = text.casefold()
    return [
        (family, pattern)
        for family, pattern in PATTERNS
        if not (required := REQUIRED_WORDS.get(family)) or any(w in folded for w in required)
    ]


def find_citations(text: str, links: Sequence[str], aliases: AliasIndex) -> list[Citation]:
    """Every credit in `text` (phrase families, in text order) and in `links` (after them).

    A name resolves through `aliases` (crawl sources and the directory of organisations);
    an unknown one is kept as a name with source None. Photo credits are left out.
    """
    found: list[Citation] = []
    covered: list[tuple[int, int]] = []
    for family, pattern in _patterns_for(text):
        for match in pattern.finditer(text):
            start, end = match.span()
            if "verb" in pattern.groupindex:
                start = _kazakh_name_start(text, start)
                name = _clean_name(text[start : match.start("verb")])
            else:
                name = _clean_name(match.group("name"))
            url = "name" in pattern.groupindex and URL_AT.match(text, match.start("name"))
            if url:  # "Источник: https://…": the address is the name, resolved as a link
                end = url.end()
                name = urlsplit(url.group()).hostname or ""
            if not name or any(start < c_end and c_start < end for c_start, c_end in covered):
                continue
            line_start = text.rfind("\n", 0, start) + 1
            if PHOTO_CREDIT.search(text, line_start, start):
                continue
            source = aliases.source_of_url(url.group()) if url else aliases.resolve_in(name, text)
            if family in WEAK and source is None and not _names_a_body(name):
                continue
            covered.append((start, end))
            found.append(
                Citation(
                    phrase=text[start:end],
                    start=start,
                    end=end,
                    name=name,
                    source=source,
                    family=family,
                    address=aliases.address(source) or _domain_in(name),
                )
            )
    found.sort(key=lambda citation: citation.start)
    seen_links: set[str] = set()
    for link in links:
        source = aliases.source_of_url(link)
        if source is None or link in seen_links:
            continue
        seen_links.add(link)
        at = text.find(link)
        if at >= 0 and PHOTO_CREDIT.search(text, text.rfind("\n", 0, at) + 1, at):
            continue
        if at >= 0 and any(c.start <= at < c.end for c in found if c.family != "link"):
            continue  # the phrase that names it ("Источник: https://…") is its credit
        span = (at, at + len(link)) if at >= 0 else (-1, -1)
        host = urlsplit(link).hostname or ""
        found.append(
            Citation(link, span[0], span[1], host, source, "link", aliases.address(source))
        )
    return found
