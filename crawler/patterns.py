"""URL patterns written by people (sources.yaml `link_pattern`, `next_pattern`), run on RE2 so
that a match takes time linear in the URL, whatever the pattern.

Why: Python's re backtracks. `(a+)+$` against `https://x.kz/aaa…a!` with forty a's runs for
days while holding the GIL, so neither Scrapy's CLOSESPIDER_TIMEOUT nor a SIGTERM handler
gets a turn (a crawl froze for 11 minutes). RE2 never backtracks; in exchange it has no
backreferences, lookarounds, conditionals, atomic groups or possessive repeats, and a pattern
that uses one is refused when sources.yaml is loaded, saying which and why.

A pattern keeps the meaning it has under re: re's own parser reads it and the tree is written
out in RE2 syntax. So `\\w`, `\\d` and `\\s` stay Unicode (RE2's are ASCII: its `\\w` misses
`я`), `\\Z`, `{,n}`, `\\uXXXX`, verbose mode and comments work, and flags keep their scope.
Two differences remain, neither of which a URL meets: `\\b` and `\\B` see only ASCII letters
and digits as word characters, and `$` does not match before a final newline.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache, lru_cache
from re import _constants as sre  # re's parser, so a pattern reads exactly as re reads it
from re import _parser
from typing import Any

import re2

MAX_CODE_POINT = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)  # not characters in UTF-8, which RE2 matches
UNSUPPORTED = {
    sre.GROUPREF: "a backreference (\\1, (?P=name))",
    sre.GROUPREF_EXISTS: "a conditional group ((?(1)...|...))",
    sre.ASSERT: "a lookahead or lookbehind ((?=...), (?<=...))",
    sre.ASSERT_NOT: "a negative lookahead or lookbehind ((?!...), (?<!...))",
    sre.ATOMIC_GROUP: "an atomic group ((?>...))",
    sre.POSSESSIVE_REPEAT: "a possessive repeat (*+, ++, ?+)",
}
AT = {
    sre.AT_BEGINNING: "^",
    sre.AT_BEGINNING_STRING: r"\A",
    sre.AT_END: "$",
    sre.AT_END_STRING: r"\z",
    sre.AT_BOUNDARY: r"\b",
    sre.AT_NON_BOUNDARY: r"\B",
}
# The class escapes as re spells them, to list a class RE2 cannot spell (see `_listed`).
ATOMS = (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN, sre.SUBPATTERN)  # repeat as they are
CATEGORY_ESCAPES = {
    sre.CATEGORY_DIGIT: r"\d",
    sre.CATEGORY_NOT_DIGIT: r"\D",
    sre.CATEGORY_WORD: r"\w",
    sre.CATEGORY_NOT_WORD: r"\W",
    sre.CATEGORY_SPACE: r"\s",
    sre.CATEGORY_NOT_SPACE: r"\S",
}
FLAG_LETTERS = ((sre.SRE_FLAG_IGNORECASE, "i"), (sre.SRE_FLAG_MULTILINE, "m"))
FLAG_LETTERS += ((sre.SRE_FLAG_DOTALL, "s"),)


class PatternError(ValueError):
    """A pattern refused: not a regular expression, or not one RE2 can run (the message
    says which and why)."""


def _char(code_point: int) -> str:
    char = chr(code_point)
    if char.isalnum():
        return char
    if char.isascii() and char.isprintable() and char != " ":
        return "\\" + char  # RE2 takes any ASCII punctuation escaped as itself
    return f"\\x{{{code_point:x}}}"


def _ranges(code_points: list[int]) -> str:
    """Sorted code points as the inside of an RE2 class, surrogates left out."""
    spans: list[tuple[int, int]] = []
    for code_point in code_points:
        if SURROGATES[0] <= code_point <= SURROGATES[1]:
            continue
        if spans and spans[-1][1] == code_point - 1:
            spans[-1] = (spans[-1][0], code_point)
        else:
            spans.append((code_point, code_point))
    return "".join(_char(a) if a == b else f"{_char(a)}-{_char(b)}" for a, b in spans)


def _every_character() -> str:
    # 17 MB as a str (four bytes a character): built when needed, never kept
    return "".join(map(chr, range(MAX_CODE_POINT + 1)))


@cache
def _listed(python_class: str, flags: int) -> str:
    """The characters re's class `python_class` matches under `flags`, as RE2 class ranges:
    how a class is spelled that mixes a negated escape with other items ([^\\W_]), which
    RE2 cannot say (it has no class intersection). About 0.1 s, once per class."""
    finder = re.compile(python_class, flags)
    return _ranges([found.start() for found in finder.finditer(_every_character())])


@cache
def _unicode_spaces() -> str:
    # every space str.isspace knows lies below U+3001
    return _ranges([c for c in range(0x3001) if chr(c).isspace()])


def _category(code: object, ascii_only: bool) -> str | None:
    """A positive class escape as the inside of an RE2 class (None: it has no such form)."""
    if code == sre.CATEGORY_DIGIT:
        return "0-9" if ascii_only else r"\p{Nd}"  # re's \d is str.isdecimal: category Nd
    if code == sre.CATEGORY_WORD:  # re's \w is str.isalnum() or _: categories L and N
        return "0-9A-Za-z_" if ascii_only else r"\p{L}\p{N}_"
    if code == sre.CATEGORY_SPACE:
        return r"\t\n\x0b\f\r " if ascii_only else _unicode_spaces()
    if code == sre.CATEGORY_NOT_DIGIT and not ascii_only:
        return r"\P{Nd}"
    return None


NEGATED = {
    sre.CATEGORY_NOT_DIGIT: sre.CATEGORY_DIGIT,
    sre.CATEGORY_NOT_WORD: sre.CATEGORY_WORD,
    sre.CATEGORY_NOT_SPACE: sre.CATEGORY_SPACE,
}


def _class(items: list[tuple[object, object]], flags: int) -> str:
    ascii_only = bool(flags & sre.SRE_FLAG_ASCII)
    negate = bool(items) and items[0][0] == sre.NEGATE
    members = items[1:] if negate else items
    if len(members) == 1 and members[0][0] == sre.CATEGORY and members[0][1] in NEGATED:
        # \W alone (re parses a bare \W as the class [\W]): the negation of \w's class
        inner = _category(NEGATED[members[0][1]], ascii_only)
        return f"[{'' if negate else '^'}{inner}]"
    parts = []
    for op, value in members:
        if op == sre.LITERAL:
            parts.append(_char(value))
        elif op == sre.RANGE:
            low, high = value
            parts.append(f"{_char(low)}-{_char(high)}")
        elif op == sre.CATEGORY and _category(value, ascii_only) is not None:
            parts.append(_category(value, ascii_only))
        else:
            return f"[{_listed(_python_class(items), flags)}]"
    return f"[{'^' if negate else ''}{''.join(parts)}]"


def _python_class(items: list[tuple[object, object]]) -> str:
    parts = []
    for op, value in items:
        if op == sre.NEGATE:
            parts.append("^")
        elif op == sre.LITERAL:
            parts.append(f"\\U{value:08x}")
        elif op == sre.RANGE:
            low, high = value
            parts.append(f"\\U{low:08x}-\\U{high:08x}")
        else:
            parts.append(CATEGORY_ESCAPES[value])
    return f"[{''.join(parts)}]"


def _flag_letters(flags: int) -> str:
    return "".join(letter for flag, letter in FLAG_LETTERS if flags & flag)


def _repeat(low: int, high: int) -> str:
    if high == sre.MAXREPEAT:
        return {0: "*", 1: "+"}.get(low, f"{{{low},}}")
    if (low, high) == (0, 1):
        return "?"
    return f"{{{low}}}" if low == high else f"{{{low},{high}}}"


def _written(parsed: _parser.SubPattern | list[tuple[object, object]], flags: int) -> str:
    """The parsed pattern in RE2 syntax; groups do not capture (only whether it matches
    counts), `flags` are those in force (re.ASCII changes what \\w means)."""
    return "".join(_item(op, value, flags) for op, value in parsed)


def _item(op: object, value: Any, flags: int) -> str:
    if op in UNSUPPORTED:
        raise PatternError(UNSUPPORTED[op])
    writer = WRITERS.get(op)
    if writer is None:
        raise PatternError(f"{op} is not supported")
    return writer(value, flags)


def _group(value: Any, flags: int) -> str:
    _, add, remove, inner = value
    letters = _flag_letters(add)
    if _flag_letters(remove):
        letters += "-" + _flag_letters(remove)
    return f"(?{letters}:{_written(inner, (flags | add) & ~remove)})"


def _repeated(value: Any, flags: int, *, lazy: bool = False) -> str:
    low, high, inner = value
    atom = _written(inner, flags)
    if len(inner) != 1 or inner[0][0] not in ATOMS:
        atom = f"(?:{atom})"
    return atom + _repeat(low, high) + ("?" if lazy else "")


WRITERS: dict[object, Callable[[Any, int], str]] = {
    sre.LITERAL: lambda value, _: _char(value),
    sre.NOT_LITERAL: lambda value, _: f"[^{_char(value)}]",
    sre.ANY: lambda _, __: ".",
    sre.IN: _class,
    sre.AT: lambda value, _: AT[value],
    sre.BRANCH: lambda value, flags: "(?:" + "|".join(_written(b, flags) for b in value[1]) + ")",
    sre.SUBPATTERN: _group,
    sre.MAX_REPEAT: _repeated,
    sre.MIN_REPEAT: lambda value, flags: _repeated(value, flags, lazy=True),
}


def to_re2(pattern: str) -> str:
    """`pattern`, as Python's re reads it, in RE2 syntax; PatternError when re refuses it
    or it needs something RE2 lacks."""
    try:
        re.compile(pattern)
        parsed = _parser.parse(pattern)
    except re.error as exc:
        raise PatternError(f"not a valid regular expression: {exc}") from None
    flags = parsed.state.flags
    try:
        body = _written(parsed, flags)
    except PatternError as exc:
        why = (
            f"{exc} cannot run in linear time: URL patterns run on RE2, which has no "
            "backreferences, lookarounds, conditionals, atomic groups or possessive "
            "repeats; rewrite the pattern without it"
        )
        raise PatternError(why) from None
    letters = _flag_letters(flags)
    return f"(?{letters}){body}" if letters else body


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> re2._Regexp:
    """`pattern` compiled for RE2 (cached: listings ask for it page after page)."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print its own complaint to stderr
    try:
        return re2.compile(to_re2(pattern), options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        why = f"RE2 cannot compile it ({reason}); a repeat count is at most 1000"
        raise PatternError(why) from None
