"""Decode a fetched page to Unicode and refuse to pass on mojibake silently."""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from charset_normalizer import from_bytes
from w3lib.encoding import html_body_declared_encoding, read_bom, resolve_encoding

logger = logging.getLogger(__name__)

# Re-decoding candidates for the Cyrillic sites we crawl; a wider set lets short
# cp1251 fragments pass for CJK or Greek.
FALLBACK_ENCODINGS = ("utf_8", "cp1251", "koi8_r", "utf_16")
MAX_REPLACEMENT_RATIO = 0.001
MAX_CJK_SHARE = 0.05
MAX_MOJIBAKE_SHARE = 0.3
# UTF-8 Cyrillic read as cp1251: a lead byte 0xD0/0xD1 ("Р"/"С") then a continuation
# byte 0x80-0xBF, which cp1251 shows as Ђ Ѓ ‚ ѓ „ … ё № and the like ("РњРёРЅ").
_CONTINUATIONS = bytes(range(0x80, 0xC0)).decode("cp1251", errors="ignore")
MOJIBAKE = re.compile(f"[РС][{re.escape(_CONTINUATIONS)}]")
CYRILLIC = re.compile(r"[Ѐ-ӿ]")
CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]")
LETTER = re.compile(r"[^\W\d_]")
CYRILLIC_LANGUAGES = frozenset({"ru", "kk"})
# How much of a decoded page `decode_html` checks: markup and scripts fill the head of a
# page, so a slice of the middle (the article) and the tail (footer) join it.
SAMPLE_HEAD_CHARS = 12_000
SAMPLE_SLICE_CHARS = 4_000


@dataclass
class Decoded:
    """A page's text, the codec that produced it, and flags such as ``bad_encoding``."""

    text: str
    encoding: str
    flags: list[str] = field(default_factory=list)


def encoding_problems(text: str, languages: Sequence[str] = ("ru",)) -> list[str]:
    """Signs that `text` was decoded with the wrong codec; empty when it looks right."""
    problems = []
    if text and text.count("\ufffd") / len(text) > MAX_REPLACEMENT_RATIO:
        problems.append("replacement_characters")
    # The rare patterns are counted first: the common letters only when they decide.
    mojibake = len(MOJIBAKE.findall(text))
    # Kazakh "Сіз" or Russian "Сёмин" match once; mojibake matches on every other letter.
    if mojibake >= 2 and 2 * mojibake / max(len(CYRILLIC.findall(text)), 1) > MAX_MOJIBAKE_SHARE:
        problems.append("utf8_read_as_cp1251")
    if CYRILLIC_LANGUAGES.intersection(languages) and (cjk := len(CJK.findall(text))):
        letters = len(LETTER.findall(text))
        if letters and cjk / letters > MAX_CJK_SHARE:
            problems.append("cjk_on_cyrillic_source")
    return problems


def text_sample(text: str) -> str:
    """The head, a middle slice and the tail of a long text: a wrong codec garbles a whole
    page, so the sample shows it at a fraction of the cost of checking every character."""
    if len(text) <= SAMPLE_HEAD_CHARS + 2 * SAMPLE_SLICE_CHARS:
        return text
    middle = len(text) // 2
    return "\n".join(
        (
            text[:SAMPLE_HEAD_CHARS],
            text[middle : middle + SAMPLE_SLICE_CHARS],
            text[-SAMPLE_SLICE_CHARS:],
        )
    )


def _codec(name: str | None) -> str | None:
    """Python's codec name for an HTTP/HTML charset label, or None when unknown."""
    if not name:
        return None
    resolved = resolve_encoding(name)
    if resolved is None:
        return None
    return codecs.lookup(resolved).name


def _decode(body: bytes, encoding: str) -> str:
    return body.decode(encoding, errors="replace")


def _redecode(body: bytes, languages: Sequence[str]) -> Decoded | None:
    """The first charset-normalizer reading among the fallback codecs that looks right."""
    for match in from_bytes(body, cp_isolation=list(FALLBACK_ENCODINGS)):
        text = str(match)
        if not encoding_problems(text_sample(text), languages):
            return Decoded(text, codecs.lookup(match.encoding).name)
    return None


def decode_html(
    body: bytes,
    declared_encoding: str | None,
    *,
    languages: Sequence[str] = ("ru",),
    forced: str | None = None,
) -> Decoded:
    """Decode an HTML page: forced codec, BOM, HTTP header, ``<meta>``, then detection.

    A declared charset is trusted only when the text it gives passes
    `encoding_problems`; otherwise the raw bytes are re-decoded with charset-normalizer
    among `FALLBACK_ENCODINGS`. When nothing reads cleanly, the declared reading is
    returned with the flag ``bad_encoding`` so the item is flagged, not stored as mojibake.
    """
    if forced_codec := _codec(forced):
        text = _decode(body, forced_codec)
        flags = ["bad_encoding"] if encoding_problems(text_sample(text), languages) else []
        return Decoded(text, forced_codec, flags)

    bom, bom_bytes = read_bom(body)
    # A byte order mark outranks every declaration (WHATWG encoding sniffing).
    if bom_codec := _codec(bom):
        return Decoded(_decode(body[len(bom_bytes) :], bom_codec), bom_codec)

    declared = _codec(declared_encoding) or _codec(html_body_declared_encoding(body))
    if declared:
        text = _decode(body, declared)
        problems = encoding_problems(text_sample(text), languages)
        if not problems:
            return Decoded(text, declared)
        logger.debug("declared charset %s gives %s; re-detecting", declared, problems)
    else:
        declared = "utf-8"
        try:
            text = body.decode(declared)
        except UnicodeDecodeError:
            text = _decode(body, declared)
        else:
            if not encoding_problems(text_sample(text), languages):
                return Decoded(text, declared)

    if redecoded := _redecode(body, languages):
        return redecoded
    return Decoded(text, declared, ["bad_encoding"])
