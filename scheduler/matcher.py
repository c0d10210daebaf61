"""Keyword matching, pure: compiled rules × text → matches with spans into the original text.

How a term is read (FIELD_NOTES "Text"): text and terms go through the same `normalize`
(NFKC, case, ё→е, zero-width characters and soft hyphens removed, line-end hyphenation
joined, Latin look-alikes inside Cyrillic words folded and the reverse). Each word of a term
then matches every token that starts with its stem (Russian or English snowball; a Kazakh
word is its own stem, plus the к→г / қ→ғ / п→б form its suffixes cause) when the stem has at
least five letters; a shorter word matches only itself or its stem with one case ending.
A term written in Kazakh Cyrillic also matches its official Latin spellings (2017, 2018,
2021 alphabets, generated from the tables below) and their plain-ASCII forms.

Speed: one `str.lower`, a scan for rare characters, and one Aho-Corasick pass (pyahocorasick)
over the text find candidate positions for every rule at once; only candidates pay for a
regular expression. Rewrites that change the length are rare and tracked by `OffsetMap`.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import accumulate, product
from typing import TYPE_CHECKING, Any

import ahocorasick

from pipelines.stemming import stemmer

if TYPE_CHECKING:
    from scheduler.rules import Rule

# ---------------------------------------------------------------------------------------
# Normalisation

CYRILLIC = "абвгдежзийклмнопрстуфхцчшщъыьэюяёәғқңөұүһіјѕ"
KAZAKH_LETTERS = frozenset("әғқңөұүһі")
# Length-preserving folds applied after lower-casing: each is a rare character, so a
# membership test followed by str.replace beats str.translate (10 MB/s on Cyrillic) by far.
FOLDS = (
    ("ё", "е"),
    ("ı", "i"),  # Kazakh Latin dotless i: writers mix ı and i freely
    ("ə", "ә"),  # Latin schwa typed for Kazakh ә
    ("ɵ", "ө"),
    ("’", "'"),  # apostrophes of the 2017 Kazakh Latin alphabet
    ("‘", "'"),
    ("ʼ", "'"),
    ("`", "'"),
    ("´", "'"),
    ("\xa0", " "),  # the NFKC mappings of the common spaces, done here because they are
    ("\u2009", " "),  # frequent (one per few hundred characters in real news) and 1:1
    ("\u202f", " "),
    ("\u2007", " "),
)
FOLDED = frozenset(a for a, _ in FOLDS)
# Look-alike letters (after lower-casing) of the two scripts, for mixed-script words.
LATIN_TO_CYRILLIC = str.maketrans("abcehikmoptxy", "авсенікмортху")
CYRILLIC_TO_LATIN = str.maketrans("авсеніјкмортхуѕһ", "abcehijkmoptxysh")
MIXED_AT_LATIN = re.compile(rf"[a-z](?:(?<=[{CYRILLIC}][a-z])|(?=[{CYRILLIC}]))")
MIXED_AT_CYRILLIC = re.compile(rf"[{CYRILLIC}](?:(?<=[a-z][{CYRILLIC}])|(?=[a-z]))")
HYPHENATION = re.compile(r"[-\u2010\u00ad][ \t]*\r?\n[ \t]*")
LINE_END = re.compile(r"[ \t]*\r?\n[ \t]*")
WORD = re.compile(r"\w+")
ASTRAL = re.compile("[\U00010000-\U0010ffff]")


@cache
def _special_chars() -> re.Pattern[str]:
    """Characters that need more than a case fold: format characters (zero-width, soft
    hyphen, bidi marks), combining marks, anything NFKC rewrites, and the few characters
    whose lower case is longer. The scan for them runs at hundreds of MB/s and rarely hits.

    Every character beyond the BMP counts (mathematical letters, tags, emoji): re scans a
    BMP-only class with a bitmap but a class with astral ranges range by range, so callers
    test for astral characters apart and use this pattern only to find what to rewrite.
    """
    code_points = []
    for code_point in range(0x80, 0x10000):
        if 0xD800 <= code_point <= 0xDFFF:
            continue
        char = chr(code_point)
        if char in FOLDED:
            continue
        if (
            unicodedata.category(char) in ("Cf", "Mn", "Me")
            or unicodedata.normalize("NFKC", char) != char
            or len(char.lower()) != 1
        ):
            code_points.append(code_point)
    ranges = []
    first = last = code_points[0]
    for code_point in code_points[1:]:
        if code_point != last + 1:
            ranges.append((first, last))
            first = code_point
        last = code_point
    ranges.append((first, last))
    body = "".join(f"\\u{a:04x}-\\u{b:04x}" if a != b else f"\\u{a:04x}" for a, b in ranges)
    return re.compile(f"[{body}]+|{ASTRAL.pattern}+")


@cache
def _special_bmp_chars() -> re.Pattern[str]:
    return re.compile(_special_chars().pattern.split("|", 1)[0])


def _has_astral(text: str) -> bool:
    # Each character beyond the BMP takes two UTF-16 units; encoding is 6x faster than a scan.
    return len(text.encode("utf-16-le")) != 2 * len(text)


def _strip_marks(text: str) -> str:
    return "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Mn", "Me"))


class OffsetMap:
    """Maps spans of a rewritten text back to the text it was made from.

    Built from the rewrites (start, end, replacement) in order; untouched stretches map
    one to one, a replaced stretch maps as a whole.
    """

    def __init__(self, rewrites: Sequence[tuple[int, int, str]], source_length: int) -> None:
        self._starts: list[int] = []  # start of each segment in the rewritten text
        # (source start, source end, rewritten start, whether it maps one to one)
        self._segments: list[tuple[int, int, int, bool]] = []
        position = last = 0
        for start, end, replacement in rewrites:
            if start > last:
                self._add(position, last, start, identity=True)
                position += start - last
            self._add(position, start, end, identity=False)
            position += len(replacement)
            last = end
        self._add(position, last, source_length, identity=True)

    def _add(self, position: int, start: int, end: int, *, identity: bool) -> None:
        self._starts.append(position)
        self._segments.append((start, end, position, identity))

    def span(self, start: int, end: int) -> tuple[int, int]:
        first = self._segments[bisect.bisect_right(self._starts, start) - 1]
        source_start = first[0] + (start - first[2]) if first[3] else first[0]
        last = self._segments[bisect.bisect_right(self._starts, max(end - 1, start)) - 1]
        source_end = last[0] + (end - last[2]) if last[3] else last[1]
        return source_start, max(source_end, source_start)


@dataclass(frozen=True, slots=True)
class Normalized:
    """A text prepared for matching, with what maps its spans back to `original`."""

    text: str
    original: str
    offsets: tuple[OffsetMap, ...] = ()  # applied last to first

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        for offset_map in reversed(self.offsets):
            start, end = offset_map.span(start, end)
        return start, end


def _rewrite(text: str, rewrites: list[tuple[int, int, str]]) -> tuple[str, OffsetMap]:
    pieces = []
    last = 0
    for start, end, replacement in rewrites:
        pieces.append(text[last:start])
        pieces.append(replacement)
        last = end
    pieces.append(text[last:])
    return "".join(pieces), OffsetMap(rewrites, len(text))


def _special_rewrites(text: str) -> list[tuple[int, int, str]]:
    rewrites: list[tuple[int, int, str]] = []
    last = 0
    finder = _special_chars() if _has_astral(text) else _special_bmp_chars()
    for found in finder.finditer(text):
        start, end = found.span()
        # A combining mark composes with the letter before it (и + ̆ → й) under NFKC.
        if start > last and unicodedata.combining(text[start]):
            start -= 1
        replacement = _strip_marks(unicodedata.normalize("NFKC", text[start:end]).lower())
        if text[end - 1] == "\u00ad":  # a soft hyphen at a line end also joins the lines
            line_end = LINE_END.match(text, end)
            if line_end:
                end = line_end.end()
        rewrites.append((start, end, replacement))
        last = end
    return rewrites


def _hyphenation_rewrites(text: str) -> list[tuple[int, int, str]]:
    rewrites = []
    for found in HYPHENATION.finditer(text):
        start, end = found.span()
        if start and text[start - 1].isalpha() and end < len(text) and text[end].islower():
            rewrites.append((start, end, ""))
    return rewrites


def _fold_mixed_scripts(text: str) -> str:
    """Fold look-alike letters of the minority script inside words that mix Latin and
    Cyrillic ("Mинфин", "Бaйконур"); words in one script are left alone, so Latin "COBET"
    never becomes Cyrillic "совет". The scan anchors on the rarer script of the text."""
    sample = text[:4000]
    latin_share = sum(sample.count(c) for c in "eaot")
    finder = MIXED_AT_LATIN if latin_share * 12 < len(sample) else MIXED_AT_CYRILLIC
    pieces = []
    last = 0
    for found in finder.finditer(text):
        if found.start() < last:
            continue
        start = found.start()
        while start and text[start - 1].isalnum():
            start -= 1
        end = found.end()
        while end < len(text) and text[end].isalnum():
            end += 1
        word = text[start:end]
        cyrillic = sum(1 for c in word if c in CYRILLIC)
        latin = sum(1 for c in word if "a" <= c <= "z")
        table = LATIN_TO_CYRILLIC if cyrillic >= latin else CYRILLIC_TO_LATIN
        pieces.append(text[last:start])
        pieces.append(word.translate(table))
        last = end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def normalize(text: str) -> Normalized:
    """`text` as the matcher reads it; `Normalized.original_span` maps spans back."""
    offsets: list[OffsetMap] = []
    lowered = text.lower()
    if len(lowered) != len(text):  # İ and a few others lower to two characters
        rewritten, offset_map = _rewrite(text, _special_rewrites(text))
        offsets.append(offset_map)
        lowered = rewritten.lower()
    elif _special_bmp_chars().search(lowered) or _has_astral(lowered):
        lowered, offset_map = _rewrite(lowered, _special_rewrites(lowered))
        offsets.append(offset_map)
    for char, replacement in FOLDS:
        if char in lowered:
            lowered = lowered.replace(char, replacement)
    if (
        "-\n" in lowered
        or "- \n" in lowered
        or "-\r\n" in lowered
        or ("\u2010" in lowered and "\u2010\n" in lowered)  # a one-character test is ~free
    ):
        rewrites = _hyphenation_rewrites(lowered)
        if rewrites:
            lowered, offset_map = _rewrite(lowered, rewrites)
            offsets.append(offset_map)
    return Normalized(_fold_mixed_scripts(lowered), text, tuple(offsets))


# ---------------------------------------------------------------------------------------
# Terms: stems, endings and Kazakh Latin spellings

MIN_STEM = 5
# One case ending a short word may take (a long word takes any suffix): Russian noun and
# adjective endings, Kazakh case and plural endings.
RUSSIAN_ENDINGS = (
    "а", "я", "о", "е", "у", "ю", "ы", "и", "ь", "й", "ом", "ем", "ой", "ей", "ою", "ею",
    "ам", "ям", "ами", "ями", "ах", "ях", "ов", "ев", "ым", "им", "ых", "их", "ую", "юю",
    "ая", "яя", "ое", "ее", "ого", "его", "ому", "ему", "ые", "ие",
)  # fmt: skip
KAZAKH_ENDINGS = (
    "да", "де", "та", "те", "ға", "ге", "қа", "ке", "на", "не", "ны", "ні", "ды", "ді", "ты",
    "ті", "ның", "нің", "дың", "дің", "тың", "тің", "нан", "нен", "дан", "ден", "тан", "тен",
    "мен", "бен", "пен", "ы", "і", "сы", "сі", "лар", "лер", "дар", "дер", "тар", "тер",
)  # fmt: skip
ENDINGS = sorted(set(RUSSIAN_ENDINGS + KAZAKH_ENDINGS), key=len, reverse=True)
SHORT_WORD_END = "(?:" + "|".join(ENDINGS) + ")?(?!\\w)"
PHRASE_GAP = r"\W{1,3}"
TERM_WORD = re.compile(r"\w+(?:'\w+)*")
KAZAKH_SOFTENING = {"к": "г", "қ": "ғ", "п": "б"}
# Official Latin alphabets for Kazakh, from Cyrillic (lower case; alternatives in tuples).
_COMMON = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ж": "j", "з": "z", "к": "k",
    "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "ф": "f",
    "х": "h", "һ": "h", "қ": "q", "ц": "ts", "ъ": "", "ь": "", "э": "e",
}  # fmt: skip
KAZAKH_LATIN: Mapping[str, Mapping[str, str | tuple[str, ...]]] = {
    "2017": _COMMON | {
        "ә": "a'", "ғ": "g'", "и": "i'", "й": "i'", "і": "i", "ң": "n'", "ө": "o'", "у": "y'",
        "ұ": "u", "ү": "u'", "ш": "s'", "щ": "s'", "ч": "c'", "ы": "y", "ю": "i'y'", "я": "i'a",
        "ё": "i'o",
    },
    "2018": _COMMON | {
        "ә": "á", "ғ": "ǵ", "и": "ı", "й": "ı", "і": "i", "ң": "ń", "ө": "ó", "у": "ý", "ұ": "u",
        "ү": "ú", "ш": "sh", "щ": "sh", "ч": "ch", "ы": "y", "ю": "ıý", "я": "ıa", "ё": "ıo",
    },
    "2021": _COMMON | {
        "ә": "ä", "ғ": "ğ", "и": "i", "й": ("i", "y"), "і": "ı", "ң": "ñ", "ө": "ö", "у": "u",
        "ұ": "ū", "ү": "ü", "ш": "ş", "щ": "ş", "ч": "ç", "ы": "y", "ю": "iu", "я": "ia",
        "ё": "io",
    },
}  # fmt: skip
MAX_SPELLINGS = 16
SNOWBALL_LANGUAGES = {"ru": "russian", "en": "english"}


def _is_kazakh(word: str) -> bool:
    return any(c in KAZAKH_LETTERS for c in word)


def _transliterations(word: str) -> list[str]:
    """The Latin spellings of a Kazakh Cyrillic word in each official alphabet, and the
    plain-ASCII form of each that people type on a keyboard without Kazakh letters."""
    spellings: list[str] = []
    for table in KAZAKH_LATIN.values():
        options = [table.get(c, c) for c in word]
        choices = [(o,) if isinstance(o, str) else o for o in options]
        for combination in product(*choices):
            spelling = normalize("".join(combination)).text
            plain = _strip_marks(unicodedata.normalize("NFKD", spelling)).replace("'", "")
            spellings.extend((spelling, plain))
            if len(spellings) >= MAX_SPELLINGS:  # ambiguous letters multiply: keep a few
                break
    return list(dict.fromkeys(spellings))


def _stem(word: str) -> str:
    if _is_kazakh(word) or not word.isalpha():
        return word
    language = "ru" if any(c in CYRILLIC for c in word) else "en"
    if language == "en" and not word.isascii():
        return word  # a Kazakh Latin spelling: its suffixes are appended, like Kazakh's
    stem = stemmer(SNOWBALL_LANGUAGES[language]).stemWord(word)
    # English snowball rewrites endings (happy → happi): keep only what the word starts with.
    common = 0
    for a, b in zip(word, stem, strict=False):
        if a != b:
            break
        common += 1
    return stem[:common]


@dataclass(frozen=True, slots=True)
class WordForm:
    """How one word of a term is matched: `prefix` then any suffix (`open`), or the word
    or its stem with at most one ending."""

    prefix: str
    open: bool
    whole: str = ""

    def pattern(self) -> str:
        if self.open:
            return re.escape(self.prefix) + r"\w*"
        forms = sorted({self.prefix, self.whole}, key=len, reverse=True)
        return "(?:" + "|".join(map(re.escape, forms)) + ")" + SHORT_WORD_END


def _word_forms(word: str) -> list[WordForm]:
    stem = _stem(word)
    if len(stem) < MIN_STEM:
        return [WordForm(stem or word, open=False, whole=word)]
    forms = [WordForm(stem, open=True)]
    if _is_kazakh(word) and word[-1] in KAZAKH_SOFTENING:
        forms.append(WordForm(word[:-1] + KAZAKH_SOFTENING[word[-1]], open=True))
    return forms


def _latin_word_forms(word: str) -> list[WordForm]:
    forms = []
    variants = [word]
    if word[-1] in KAZAKH_SOFTENING:
        variants.append(word[:-1] + KAZAKH_SOFTENING[word[-1]])
    for variant in variants:
        for spelling in _transliterations(variant):
            if len(spelling.replace("'", "")) >= MIN_STEM:
                forms.append(WordForm(spelling, open=True))
            else:
                forms.append(WordForm(spelling, open=False, whole=spelling))
    return forms


def term_spellings(term: str) -> list[list[list[WordForm]]]:
    """Every spelling of `term`: a list of words, each a list of accepted word forms."""
    words = TERM_WORD.findall(normalize(term).text)
    spellings = [[_word_forms(w) for w in words]]
    if any(_is_kazakh(w) for w in words):
        spellings.append([_latin_word_forms(w) for w in words])
    return spellings


# ---------------------------------------------------------------------------------------
# Compiled rules

TERM, EXCLUDE, NEAR = "term", "exclude", "near"


@dataclass(frozen=True, slots=True)
class Match:
    """One term found: `start`/`end` index the ORIGINAL text, `text` is that slice."""

    rule: str
    term: str  # the term as the rule writes it
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class _Pattern:
    kind: str
    rule: int
    term: str
    regex: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class _Hit:
    pattern: _Pattern
    start: int
    end: int


def _window(text: str, start: int, end: int, words: int) -> tuple[int, int]:
    """The stretch around text[start:end] within `words` words of it: a hit that ends at or
    after `left` (the end of the (words+1)-th word before) and starts at or before `right`
    (the start of the (words+1)-th word after) has at most `words` words in between."""
    right = len(text)
    for count, word in enumerate(WORD.finditer(text, end), start=1):
        if count > words:
            right = word.start()
            break
    left = 0
    reach = 64 * (words + 1)
    while True:  # words before: look back in growing stretches, as re cannot search back
        lower = max(0, start - reach)
        before = [w.end() for w in WORD.finditer(text, lower, start)]
        # The first word of a stretch may be cut by `lower`, so it is not counted.
        counted = before if lower == 0 else before[1:]
        if len(counted) > words:
            left = counted[-(words + 1)]
            break
        if lower == 0:
            break
        reach *= 4
    return left, right


class CompiledRules:
    """Rules prepared for matching: build once with `compile_rules`, match many texts."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._patterns: list[_Pattern] = []
        literals: dict[str, list[int]] = {}
        for index, rule in enumerate(self.rules):
            phrases = [(TERM, t) for t in rule.terms] + [(EXCLUDE, t) for t in rule.exclude]
            if rule.near is not None:
                phrases += [(NEAR, t) for t in rule.near.terms]
            for kind, phrase in phrases:
                for spelling in term_spellings(phrase):
                    rest = "".join(
                        PHRASE_GAP + "(?:" + "|".join(f.pattern() for f in forms) + ")"
                        for forms in spelling[1:]
                    )
                    for first in spelling[0]:
                        regex = re.compile(first.pattern() + rest)
                        literals.setdefault(first.prefix, []).append(len(self._patterns))
                        self._patterns.append(_Pattern(kind, index, phrase, regex))
        self.literals = tuple(literals)  # the token prefixes the scan looks for
        self._scopes: dict[tuple[str | None, str | None], list[bool]] = {}
        self._automaton = ahocorasick.Automaton()
        for literal, ids in literals.items():
            # the patterns themselves, with their rule and bound match, so the scan's inner
            # loop (run for every prefix found) does no lookups
            candidates = tuple(
                (self._patterns[i].rule, self._patterns[i].regex.match, self._patterns[i])
                for i in ids
            )
            self._automaton.add_word(literal, (len(literal), candidates))
        if literals:
            self._automaton.make_automaton()

    def _scan(self, text: str, in_scope: Sequence[bool]) -> list[_Hit]:
        hits: list[_Hit] = []
        if not self._patterns:
            return hits
        for last, (length, candidates) in self._automaton.iter(text):
            start = last - length + 1
            if start:
                before = text[start - 1]
                if before.isalnum() or before == "_":
                    continue  # inside a word: a prefix must start the token
            for rule, match, pattern in candidates:
                if in_scope[rule]:
                    found = match(text, start)
                    if found:
                        hits.append(_Hit(pattern, start, found.end()))
        return hits

    def _in_scope(self, source: str | None, lang: str | None) -> list[bool]:
        key = (source, lang)
        scope = self._scopes.get(key)
        if scope is None:
            scope = [r.applies_to(source=source, lang=lang) for r in self.rules]
            if len(self._scopes) < 1024:  # sources × languages: small, but bounded anyway
                self._scopes[key] = scope
        return scope

    def match(
        self, text: str, *, source: str | None = None, lang: str | None = None
    ) -> list[Match]:
        """Every match of every rule in scope (see `Rule.applies_to`), by position."""
        if not text:
            return []
        normalized = normalize(text)
        hits = self._scan(normalized.text, self._in_scope(source, lang))
        by_rule: dict[int, dict[str, list[_Hit]]] = {}
        for hit in hits:
            by_rule.setdefault(hit.pattern.rule, {}).setdefault(hit.pattern.kind, []).append(hit)
        matches = []
        for rule_index, kinds in by_rule.items():
            for hit in self._kept(rule_index, kinds, normalized.text):
                start, end = normalized.original_span(hit.start, hit.end)
                rule = self.rules[rule_index]
                matches.append(Match(rule.name, hit.pattern.term, start, end, text[start:end]))
        matches.sort(key=lambda m: (m.start, m.end, m.rule))
        return matches

    def _kept(self, rule_index: int, kinds: dict[str, list[_Hit]], text: str) -> list[_Hit]:
        """The term hits of one rule that no exclude phrase contains, that have their near
        context, and that no longer hit of the same rule contains.

        One pass over the hits by position, so the time grows with the hits, not with their
        square (a page with 50k hits took two minutes when each hit was compared with every
        kept one): of the exclude and kept hits that start at or before a hit, only the
        furthest end matters, and a near hit is found by bisecting the near hits' starts.
        """
        rule = self.rules[rule_index]
        excludes = sorted(kinds.get(EXCLUDE, []), key=lambda h: h.start)
        next_exclude = 0
        excluded_to = kept_to = -1  # furthest end of an exclude / a kept hit started so far
        near = _NearIndex(kinds.get(NEAR, [])) if rule.near is not None else None
        kept: list[_Hit] = []
        # Longest first, so a shorter hit inside a kept one is recognised as redundant.
        for hit in sorted(kinds.get(TERM, []), key=lambda h: (h.start, -(h.end - h.start))):
            while next_exclude < len(excludes) and excludes[next_exclude].start <= hit.start:
                excluded_to = max(excluded_to, excludes[next_exclude].end)
                next_exclude += 1
            if hit.end <= excluded_to or hit.end <= kept_to:
                continue
            if near is not None and rule.near is not None:
                left, right = _window(text, hit.start, hit.end, rule.near.window)
                if not near.any_within(left, right):
                    continue
            kept.append(hit)
            kept_to = max(kept_to, hit.end)
        return kept


class _NearIndex:
    """Near hits ordered by start, with the furthest end among the first i of them, to
    answer "does any near hit touch [left, right]?" by one bisection."""

    def __init__(self, hits: Iterable[_Hit]) -> None:
        ordered = sorted(hits, key=lambda h: h.start)
        self._starts = [h.start for h in ordered]
        self._reach = list(accumulate((h.end for h in ordered), max))

    def any_within(self, left: int, right: int) -> bool:
        # the near hits that start at or before `right`; one of them must end at or after `left`
        count = bisect.bisect_right(self._starts, right)
        return count > 0 and self._reach[count - 1] >= left


def compile_rules(rules: Iterable[Rule]) -> CompiledRules:
    """Compile `rules` (a `RulesFile.rules` list) for `CompiledRules.match`."""
    return CompiledRules(list(rules))


def match_item(rules: CompiledRules, item: Mapping[str, Any]) -> dict[str, Any]:
    """The `presswatch match` record of one item (a PressItem dict: id, title, text, source,
    lang). Spans index the item's field named by "field" ("title" or "text")."""
    found = []
    for field in ("title", "text"):
        value = item.get(field) or ""
        for match in rules.match(value, source=item.get("source"), lang=item.get("lang")):
            found.append(
                {
                    "rule": match.rule,
                    "term": match.term,
                    "field": field,
                    "start": match.start,
                    "end": match.end,
                    "text": match.text,
                }
            )
    names = {m["rule"] for m in found}
    return {
        "item": item.get("id"),
        "rules": [r.name for r in rules.rules if r.name in names],
        "matches": found,
    }


MIN_SEARCH_PREFIX = 3  # shorter word prefixes would narrow a search too little to help


@dataclass(frozen=True)
class TextSearch:
    """Words searched as a rule's term would match them; call it on an item to test it."""

    compiled: CompiledRules

    @property
    def prefixes(self) -> tuple[str, ...]:
        """A matching item holds a word that starts with one of these (`ItemQuery`), in
        folded form (ё as е); none when they would be too short to narrow anything.

        A store's word index does not undo what `normalize` undoes for matching (invisible
        characters inside a word, Latin look-alikes in Cyrillic): a search for such words
        may miss an item that an alert would catch.
        """
        literals = set(self.compiled.literals)
        if any(len(prefix) < MIN_SEARCH_PREFIX for prefix in literals):
            return ()
        return tuple(sorted(literals))

    def __call__(self, item: Mapping[str, Any]) -> bool:
        return any(self.compiled.match(item.get(field) or "") for field in ("title", "text"))


def text_search(words: str) -> TextSearch:
    """What `presswatch items --text WORDS` keeps: an item whose title or text matches
    `words` as a rule's term would (inflected forms, case, ё/е, Kazakh Latin spellings).
    A ValueError says why `words` cannot be searched (no letter or digit in it)."""
    from scheduler.rules import Rule

    if not WORD.search(words):
        msg = f"--text {words!r} has no letter or digit to search for"
        raise ValueError(msg)
    return TextSearch(compile_rules([Rule(name="text", terms=[words], channels=["none"])]))
