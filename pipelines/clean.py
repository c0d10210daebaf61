"""Normalise an item's text, dates and language before anything compares or stores it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import regex
from itemadapter import ItemAdapter
from py3langid.langid import MODEL_FILE, LanguageIdentifier
from scrapy.exceptions import NotConfigured

from crawler.items import content_hash

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

WORD = re.compile(r"\w+")
# Format characters (Cf): zero-width space and joiners, soft hyphen, BOM, direction marks.
# Invisible on the page, they split words for matching and hashing.
FORMAT_CHARACTERS = regex.compile(r"\p{Cf}+")
MIN_TEXT_FOR_DETECTION = 20


def clean_text(text: str) -> str:
    """NFC, no invisible format characters, one space between words, no spaces at line
    ends, at most one blank line between paragraphs."""
    if is_clean(text):
        return text
    lines: list[str] = []
    # str.split() does the whitespace work in C: a regex per rule cost ~2 ms a long article
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        # Format characters are never printable, and most lines are: the C check spares
        # them the regex, which cost more than the rest of the crawl's cleaning together.
        if not line.isprintable():
            line = FORMAT_CHARACTERS.sub("", line)  # noqa: PLW2901 - the same line, cleaner
        line = " ".join(line.split())  # noqa: PLW2901 - the cleaned form of the same line
        if line or (lines and lines[-1]):
            lines.append(line)
    # NFC last: a format character between a letter and its accent kept them apart
    return unicodedata.normalize("NFC", "\n".join(lines).strip())


def is_clean(text: str) -> bool:
    """Whether `clean_text` would return `text` unchanged, by a few scans in C.

    Extraction already gives text in that shape, so the crawl checks it rather than
    rebuilding it line by line. A printable line has no control, format or separator
    character but the plain space.
    """
    if "  " in text or "\n\n\n" in text or text != text.strip():
        return False
    for line in text.split("\n"):
        if line and (line[0] == " " or line[-1] == " " or not line.isprintable()):
            return False
    return unicodedata.is_normalized("NFC", text)


def clean_line(text: str) -> str:
    """`clean_text` for one-line fields (title, author): line breaks become spaces."""
    return " ".join(clean_text(text).split())


def _words(text: str) -> list[str]:
    return WORD.findall(text.casefold().replace("ё", "е"))


def drop_repeated_title(title: str, text: str) -> str:
    """The text without its first paragraph when that paragraph only repeats the title."""
    first, _, rest = text.partition("\n")
    if not title:
        return text
    words = _words(first)
    if words and words == _words(title):
        return rest.lstrip("\n")
    return text


def localize_date(value: str | None, timezone: str) -> str | None:
    """An ISO 8601 time with an offset; a naive one is read in `timezone`. None when
    absent or unreadable."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(timezone))
    return when.isoformat()


@lru_cache(maxsize=8)
def _identifier(languages: tuple[str, ...]) -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    identifier.set_languages(list(languages))
    return identifier


def detect_language(text: str, languages: Sequence[str]) -> str | None:
    """The most likely of `languages` for `text`; the only one when there is one."""
    if len(languages) == 1:
        return languages[0]
    if len(text) < MIN_TEXT_FOR_DETECTION or not languages:
        return None
    return str(_identifier(tuple(sorted(languages))).classify(text)[0])


def clean_texts(item: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The title, text, lead and authors of `item` cleaned, the text's `content_hash`, and
    the repairs made. An item whose `content_hash` is that of its text was cleaned so
    already (the portal spider cleans in its extraction workers, off the reactor): it is
    taken as it is, for the price of one hash."""
    text = item.get("text") or ""
    if item.get("content_hash") and item["content_hash"] == content_hash(text):
        as_it_is = {
            "title": item.get("title") or "",
            "text": text,
            "lead": item.get("lead") or "",
            "authors": list(item.get("authors") or []),
            "content_hash": item["content_hash"],
        }
        return as_it_is, []
    repairs: list[str] = []
    title = clean_line(item.get("title") or "")
    raw_text = clean_text(text)
    text = drop_repeated_title(title, raw_text)
    if text != raw_text:
        repairs.append("title_removed")
    cleaned = {
        "title": title,
        "text": text,
        "lead": clean_text(item.get("lead") or ""),
        "authors": [a for a in (clean_line(a) for a in item.get("authors") or []) if a],
        "content_hash": content_hash(text),
    }
    return cleaned, repairs


def clean_item(
    item: dict[str, Any], *, timezone: str = "Asia/Almaty", languages: Sequence[str] = ("ru",)
) -> tuple[dict[str, Any], list[str]]:
    """The cleaned fields of `item` and the names of the repairs made (for stats)."""
    cleaned, repairs = clean_texts(item)
    published_at = item.get("published_at")
    localized = localize_date(published_at, timezone)
    if published_at and localized is None:
        repairs.append("bad_date")
    elif localized != published_at:
        repairs.append("date_localized")
    lang = item.get("lang")
    if not lang:
        lang = detect_language(cleaned["text"], languages)
        repairs.append("lang_detected")
    return {**cleaned, "published_at": localized, "lang": lang}, repairs


class CleanPipeline:
    """Clean every item's text, dates and language in place (see `clean_item`).

    The time zone and languages are the crawling spider's source's, else the settings'.
    Settings: ``CLEAN_ENABLED`` (True), ``CLEAN_TIMEZONE`` ("Asia/Almaty"),
    ``CLEAN_LANGUAGES`` (["ru"]). Stats: ``clean/items``, ``clean/<repair>``.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.timezone = crawler.settings.get("CLEAN_TIMEZONE", "Asia/Almaty")
        self.languages = tuple(crawler.settings.getlist("CLEAN_LANGUAGES", ["ru"]))

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CleanPipeline:
        if not crawler.settings.getbool("CLEAN_ENABLED", True):
            raise NotConfigured("CLEAN_ENABLED is off")
        return cls(crawler)

    def _source_context(self) -> tuple[str, tuple[str, ...]]:
        source = getattr(self.crawler.spider, "source", None)
        if source is None:
            return self.timezone, self.languages
        return source.timezone, tuple(source.languages)

    def process_item(self, item: Any) -> Any:
        timezone, languages = self._source_context()
        adapter = ItemAdapter(item)
        cleaned, repairs = clean_item(dict(adapter.items()), timezone=timezone, languages=languages)
        for name, value in cleaned.items():
            adapter[name] = value
        if "bad_date" in repairs and "bad_date" not in adapter.get("flags", []):
            adapter["flags"] = [*adapter.get("flags", []), "bad_date"]
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value("clean/items")
        for repair in repairs:
            self.crawler.stats.inc_value(f"clean/{repair}")
        return item
