"""Article extraction: one parse of a page into title, text, lead, date, language, authors."""

from __future__ import annotations

import gzip
import io
import json
import logging
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import trafilatura
from dateparser.date import DateDataParser
from htmldate import find_date
from lxml import etree
from py3langid.langid import MODEL_FILE, LanguageIdentifier
from trafilatura.metadata import (
    examine_meta,
    extract_meta_json,
    extract_sitename,
    extract_title,
)
from trafilatura.settings import Document
from trafilatura.utils import load_html
from trafilatura.xml import xmltotxt

from crawler.author import page_author
from crawler.config import Selectors
from crawler.encoding import decode_html
from crawler.settings import DOWNLOAD_MAXSIZE
from crawler.templates import (
    AGREEMENT,
    MIN_BODY_CHARS,
    find_body_template,
    read_template,
    text_agreement,
)
from pipelines.clean import clean_text

if TYPE_CHECKING:
    from lxml.html import HtmlElement

logger = logging.getLogger(__name__)

# Where an article's text was read from: the source's body selector, a learned template,
# or trafilatura.
BodyFrom = Literal["selector", "template", "trafilatura"]


@dataclass(frozen=True)
class Article:
    """What one article page says about itself; plain values so it pickles across processes."""

    title: str
    text: str
    lead: str = ""
    published_at: str | None = None  # ISO 8601 with an offset
    lang: str | None = None
    authors: tuple[str, ...] = ()
    links: tuple[str, ...] = ()  # absolute http(s) links found in the body, in order
    body_from: BodyFrom = "trafilatura"
    # The template (crawler.templates) found on this page, when asked to look for one.
    body_template: str | None = None


# Chosen on the aeb pages of tests/bench/bench_extraction.py. Through this module, fast mode
# scores body F1 0.962 at about 19 ms/page; the full cascade with favor_precision scores
# 0.966 at about 25 ms/page. Crawl throughput is worth more than 0.004 F1. Comments are
# never article text, and leaving them out also raises precision.
TRAFILATURA_OPTIONS: dict[str, Any] = {
    "fast": True,
    "include_comments": False,
    "include_links": True,  # links are read from the body tree, then dropped from the text
    # Read by `page_metadata`, without the parts an item does not keep.
    "with_metadata": False,
    # Only the body tree is read (see _generic_body); "python" output would also render it to text.
    "output_format": "txt",
    # Photo captions and credits are not article text ("Фото: ..." under every picture).
    "prune_xpath": "//figcaption",
}
# htmldate reads metadata and numeric dates only: its free-text search misreads Russian
# month names, which the byline parser below handles.
HTMLDATE_OPTIONS: dict[str, Any] = {"extensive_search": False, "original_date": True}

# An element of the body whose whole text opens like this is page furniture.
FURNITURE = re.compile(
    r"^\W*(?:"
    r"оставить комментари|оставлять комментарии|комментари\w* могут|"
    r"читайте (?:также|ещ[её]|нас)|смотрите (?:также|ещ[её])|по теме:|"
    r"подпис(?:ыв)?айтесь|подписаться на|поделиться|поделитесь|"
    r"новости (?:по теме|партн[её]ров)|другие новости|похожие (?:новости|материалы)|"
    r"пікір (?:қалдыр|жаз)|сондай-ақ оқыңыз|оқи отырыңыз|жазылыңыз|бөлісу|басқа жаңалықтар|"
    r"фото:|фото -|сурет:|"
    r"read (?:also|more)|see also|related:|share (?:this|on)|subscribe to|follow us"
    r")",
    re.IGNORECASE,
)
FURNITURE_MAX_CHARS = 250
# A heading after which the body lists links to other articles.
READ_ALSO = re.compile(
    r"^\W*(?:читайте (?:также|ещ[её])|смотрите также|по теме|другие новости|"
    r"похожие (?:новости|материалы)|новости по теме|сондай-ақ оқыңыз|басқа жаңалықтар|"
    r"read (?:also|more)|see also|related|more from)",
    re.IGNORECASE,
)
READ_ALSO_MAX_CHARS = 100
SHARE_WORDS = frozenset(
    [
        "facebook",
        "twitter",
        "x",
        "vk",
        "vkontakte",
        "вконтакте",
        "telegram",
        "телеграм",
        "whatsapp",
        "viber",
        "ok",
        "одноклассники",
        "instagram",
        "linkedin",
        "mail",
        "email",
        "e-mail",
        "print",
        "печать",
        "копировать",
        "ссылку",
        "share",
        "поделиться",
        "бөлісу",
    ]
)

PUBLISHED_META = (
    "article:published_time",
    "og:article:published_time",
    "datepublished",
    "pubdate",
    "publishdate",
    "publish-date",
    "publish_date",
    "dc.date.issued",
    "dcterms.created",
    "parsely-pub-date",
    "sailthru.date",
)
MONTHS = (
    "январ|феврал|март|апрел|ма[йя]|июн|июл|август|сентябр|октябр|ноябр|декабр|"
    "қаңтар|ақпан|наурыз|сәуір|мамыр|маусым|шілде|тамыз|қыркүйек|қазан|қараша|желтоқсан"
)
BYLINE_DATE = re.compile(
    rf"(?:\d{{1,2}}:\d{{2}},?\s*)?\d{{1,2}}\s+(?:{MONTHS})\w*\.?,?(?:\s+\d{{4}})?"
    r"(?:\s*(?:г\.|года|ж\.|жыл\w*))?(?:,?\s*(?:в\s+)?\d{1,2}:\d{2})?",
    re.IGNORECASE,
)
BYLINE_MAX_CHARS = 80
# The label some bylines put before the names: "Текст: Лида Буслаева", "Автор: ...".
BYLINE_LABEL = re.compile(r"^(?:текст|автор\w*|фото|мәтін|by|text)\b\W*", re.IGNORECASE)
KAZAKH_LETTERS = frozenset("әғқңөұүһіӘҒҚҢӨҰҮҺІ")
# Share of Cyrillic letters that are Kazakh-only above which a text is Kazakh: Kazakh prose
# runs at 5-10 %, Russian prose quoting Kazakh names well under 1 %.
KAZAKH_LETTER_SHARE = 0.02
LANGID_SAMPLE_CHARS = 2000
BLOCK_TAGS = frozenset(
    [
        "p",
        "div",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "tr",
        "br",
        "section",
        "article",
        "header",
        "footer",
    ]
)
# Between a headline and the site name in a <title>: "Headline | Site", "Headline - Site".
TITLE_SEPARATOR = re.compile(r"(\s[|\-–—:·]\s|｜|：)")
SAVED_PAGE_LANGUAGES = ("ru", "kk", "en")
# A saved page is held to what the crawler would download.
MAX_PAGE_BYTES = DOWNLOAD_MAXSIZE
MAX_PAGE_SIZE = f"{MAX_PAGE_BYTES:,} bytes (the crawler's download limit, DOWNLOAD_MAXSIZE)"


def extract_article(
    html: str,
    url: str,
    *,
    selectors: Selectors | None = None,
    timezone: str = "Asia/Almaty",
    languages: Sequence[str] = ("ru", "kk", "en"),
    body_template: str | None = None,
    find_template: bool = False,
) -> Article:
    """Extract the article of one page; `selectors` (CSS) override fields where they match.

    A time the page gives without an offset is read in `timezone`. The body is read
    through the source's text selector, else through `body_template` (a learned one, see
    crawler.templates) unless `find_template`, else by trafilatura; with `find_template`,
    the template that gives trafilatura's text on this page is returned too.
    """
    tree = load_html(html)
    if tree is None:
        return Article(title="", text="")
    selectors = selectors or Selectors()
    metadata = page_metadata(tree)
    title = (selectors.title and _selected_text(tree, selectors.title)) or _title(
        metadata, tree, url
    )
    # The source's own body selector first, then a learned template: when either gives
    # the body, trafilatura (three quarters of a page's parsing time) is not run at all.
    selected = _select(tree, selectors.text) if selectors.text else []
    found_template = None
    if selected:
        body_from: BodyFrom = "selector"
        paragraphs, links = _selected_body(selected, title, url)
    else:
        body_from = "template"
        paragraphs, links = (
            _templated_body(tree, body_template, title, url) if not find_template else ([], ())
        )
        if not paragraphs:
            body_from = "trafilatura"
            paragraphs, links = _generic_body(tree, title, url)
            if find_template:
                found_template = _body_template(tree, paragraphs, title, url)
    text = "\n".join(paragraphs)
    lead = (
        (selectors.lead and _selected_text(tree, selectors.lead))
        or (_clean(metadata.description) if metadata.description else "")
        or (paragraphs[0] if paragraphs else "")
    )
    authors: tuple[str, ...] = ()
    if selectors.authors:
        authors = _unique(_clean(e.text_content()) for e in _select(tree, selectors.authors))
    if not authors and metadata.author:
        authors = _unique(BYLINE_LABEL.sub("", _clean(a)) for a in metadata.author.split(";"))
    published = _published(
        tree,
        selectors.published_at,
        lambda: find_date(tree, url=url or None, **HTMLDATE_OPTIONS),
        ZoneInfo(timezone),
        languages,
    )
    return Article(
        title=title,
        text=text,
        lead=lead,
        published_at=published.isoformat() if published else None,
        lang=detect_language(text or title, languages) if (text or title) else None,
        authors=authors,
        links=links,
        body_from=body_from,
        body_template=found_template,
    )


def page_metadata(tree: HtmlElement) -> Document:
    """Title, author, description and site name as trafilatura's `extract_metadata` reads
    them, without what an item does not keep (categories, tags, licence, URL) and without
    the date, which `_published` asks htmldate for only when the page declares none. The
    author search is trafilatura's with faster XPaths (crawler.author).

    The same steps in the same order, so the fields come out equal (a test compares them
    on the golden pages); skipping the rest saves about a millisecond a page.
    """
    metadata = examine_meta(tree)
    if metadata.author and " " not in metadata.author:
        metadata.author = None  # trafilatura's rule: a single word is rarely a name
    try:
        metadata = extract_meta_json(tree, metadata)
    except Exception:  # trafilatura guards its JSON-LD reader the same way
        logger.debug("unreadable JSON-LD metadata", exc_info=True)
    metadata.title = metadata.title or extract_title(tree)
    metadata.author = metadata.author or page_author(tree)
    metadata.sitename = metadata.sitename or extract_sitename(tree)
    sitename = (metadata.sitename or "").lstrip("@")
    if sitename and "." not in sitename and not sitename[0].isupper():
        sitename = sitename.title()
    metadata.sitename = sitename or None
    metadata.clean_and_trim()
    return metadata


def detect_language(text: str, languages: Sequence[str] = ("ru", "kk", "en")) -> str | None:
    """The language of `text` among `languages`; Kazakh-only letters decide for Kazakh."""
    if not languages:
        return None
    sample = text[:LANGID_SAMPLE_CHARS]
    if "kk" in languages:
        cyrillic = sum(1 for c in sample if "\u0400" <= c <= "\u04ff")
        kazakh = sum(1 for c in sample if c in KAZAKH_LETTERS)
        if cyrillic and kazakh / cyrillic >= KAZAKH_LETTER_SHARE:
            return "kk"
    if len(languages) == 1:
        return languages[0]
    lang, _confidence = _identifier(tuple(sorted(languages))).classify(sample)
    return str(lang)


class SavedPageError(ValueError):
    """A saved page that `extract_file` refuses: unreadable, too big, or a broken gzip."""


def extract_file(path: Path, url: str | None = None) -> dict[str, Any]:
    """Extract a saved page (plain or gzipped HTML) for the CLI's `extract FILE` command.

    Without `url`, the page's own canonical or og:url address is used. A page is read as
    the crawler would download it: at most `MAX_PAGE_BYTES`, before and after inflating.
    Raises `SavedPageError` naming the file.
    """
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_PAGE_BYTES + 1)
    except OSError as exc:
        raise SavedPageError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_PAGE_BYTES:
        size = max(path.stat().st_size, len(raw))
        msg = f"{path}: {size:,} bytes, over {MAX_PAGE_SIZE}"
        raise SavedPageError(msg)
    try:
        html = read_saved_page(raw)
    except SavedPageError as exc:
        raise SavedPageError(f"{path}: {exc}; the file is {len(raw):,} bytes") from None
    if url is None:
        url = page_url(html) or ""
    article = extract_article(html, url)
    return {
        "file": str(path),
        "title": article.title,
        "text": article.text,
        "published_at": article.published_at,
        "lang": article.lang,
        "authors": list(article.authors),
    }


def read_saved_page(raw: bytes) -> str:
    """Text of a saved page, plain or gzipped, decoded the way the crawler decodes a response
    (BOM, declared charset, then detection; see crawler.encoding).

    Inflating stops past `MAX_PAGE_BYTES` with `SavedPageError`: a 2 MB gzip bomb would
    otherwise inflate to 2 GiB, and parsing that takes several times as much memory.
    """
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as inflating:
                raw = inflating.read(MAX_PAGE_BYTES + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise SavedPageError(f"not a readable gzip file: {exc}") from None
        if len(raw) > MAX_PAGE_BYTES:
            raise SavedPageError(f"inflates to more than {MAX_PAGE_SIZE}")
    return decode_html(raw, None, languages=SAVED_PAGE_LANGUAGES).text


def page_url(html: str) -> str | None:
    """The address a page gives for itself (canonical link, else og:url), if any."""
    tree = load_html(html)
    if tree is None:
        return None
    for found in tree.xpath('//link[@rel="canonical"]/@href|//meta[@property="og:url"]/@content'):
        if str(found).startswith(("http://", "https://")):
            return str(found).strip()
    return None


@lru_cache(maxsize=4)
def _identifier(languages: tuple[str, ...]) -> LanguageIdentifier:
    # Loading the model takes about a second: once per process and language set.
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(languages))
    return identifier


@lru_cache(maxsize=4)
def _date_parser(languages: tuple[str, ...]) -> DateDataParser:
    # Russian is always tried: Kazakh pages print Russian month names too, and dateparser
    # with "kk" alone does not read "9 июля".
    wanted = [lang for lang in ("ru", "kk", "en") if lang in languages or lang == "ru"]
    return DateDataParser(
        languages=wanted,
        settings={"PREFER_DATES_FROM": "past", "DATE_ORDER": "DMY"},
    )


def _selected_body(
    selected: list[HtmlElement], title: str, url: str
) -> tuple[list[str], tuple[str, ...]]:
    """Paragraphs of the article body and the links in it, from the elements a source's
    selector picked."""
    paragraphs = [p for element in selected for p in _block_texts(element)]  # cleaned
    return _drop_title_lines(_drop_furniture(paragraphs), title), _links(selected, url)


def _templated_body(
    tree: HtmlElement, template: str | None, title: str, url: str
) -> tuple[list[str], tuple[str, ...]]:
    """The body through a learned template; nothing when it names no element here or
    finds too short a text (a page of another layout: trafilatura reads it)."""
    selected = read_template(tree, template) if template else []
    if not selected:
        return [], ()
    paragraphs, links = _selected_body(selected, title, url)
    link_lines = {_clean(e.text_content()) for s in selected for e in _link_heavy_blocks(s)}
    paragraphs = [p for p in paragraphs if p not in link_lines]
    if sum(len(p) for p in paragraphs) < MIN_BODY_CHARS:
        return [], ()
    return paragraphs, links


LINKED_BLOCKS = etree.XPath(
    ".//*[self::p or self::li or self::div or self::blockquote or self::h2 or self::h3"
    " or self::h4 or self::h5 or self::h6][.//a]"
)


def _link_heavy_blocks(container: HtmlElement) -> Iterator[HtmlElement]:
    """The blocks of `container` that trafilatura drops as mostly link ("Источник: <URL>",
    a list of related links), by the two rules of its `link_density_test` that such
    blocks meet: one long link that is nearly all the text, or a short block (by
    trafilatura's measure of short) that is four fifths link."""
    for block in LINKED_BLOCKS(container):
        links = [_clean(a.text_content()) for a in block.iter("a")]
        text = _clean(block.text_content())
        link_chars = sum(len(link) for link in links)
        if len(links) == 1 and link_chars > 100 and link_chars > 0.9 * len(text):
            yield block
            continue
        last = block.getnext() is None
        short = (60 if last else 30) if block.tag == "p" else (300 if last else 100)
        if len(text) < short and link_chars > 0.8 * len(text):
            yield block


def _body_template(tree: HtmlElement, paragraphs: list[str], title: str, url: str) -> str | None:
    """The template whose text on this page agrees with trafilatura's `paragraphs`, both
    compared as they would be stored (cleaned: trafilatura drops zero-width spaces, for
    one, which cleaning drops from the template's text too)."""
    text = "\n".join(paragraphs)
    template = find_body_template(tree, text)
    if template is None:
        return None
    selected, _links = _templated_body(tree, template, title, url)
    agreement = text_agreement(clean_text(text), clean_text("\n".join(selected)))
    return template if agreement >= AGREEMENT else None


def _generic_body(tree: HtmlElement, title: str, url: str) -> tuple[list[str], tuple[str, ...]]:
    """Paragraphs of the article body and the links in it, from trafilatura's body tree."""
    # trafilatura works on its own copy of the tree, so ours stays whole for what follows.
    document = trafilatura.bare_extraction(tree, url=url or None, **TRAFILATURA_OPTIONS)
    if document is None or document.body is None:
        return [], ()
    body = document.body
    _prune_body(body)
    links = _links([body], url, link_tag="ref", link_attribute="target")
    etree.strip_tags(body, "ref")
    paragraphs = _drop_title_lines(xmltotxt(body, False).split("\n"), title)
    return [p for p in (_clean(p) for p in paragraphs) if p], links


def _published(
    tree: HtmlElement,
    css: str | None,
    day: Callable[[], str | None],
    zone: ZoneInfo,
    languages: Sequence[str],
) -> datetime | None:
    """Publication time: the selector, then the page's metadata, then htmldate's `day`
    (asked only now) and the byline."""
    return (
        (_selected_date(tree, css, zone, languages) if css else None)
        or _metadata_date(tree, zone)
        or _day_or_byline(day(), tree, zone, languages)
    )


def _title(metadata: Document, tree: HtmlElement, url: str) -> str:
    """The headline: an <h1> marked as the headline, or an <h1> that the metadata title
    starts with (the title adds a site name), else the metadata title without a trailing
    site name or date."""
    title = _clean(metadata.title) if metadata.title else ""
    for headline in tree.xpath('//h1[@itemprop="headline"]'):
        text = _clean(headline.text_content())
        if text:
            return text
    wanted = _normal(title)
    for heading in tree.xpath("//h1")[:3]:
        text = _clean(heading.text_content())
        found = _normal(text)
        if found and (not wanted or (len(found) >= 0.5 * len(wanted) and wanted.startswith(found))):
            return text
    site_words = set(_normal(metadata.sitename or "").split())
    host_labels = (urlsplit(url).hostname or "").removeprefix("www.").split(".")[:-1]
    site_words.update(w for label in host_labels for w in label.split("-") if len(w) > 1)
    parts = TITLE_SEPARATOR.split(title)  # text, separator, text, ...
    while len(parts) >= 3 and _is_site_name(parts[-1], site_words):
        del parts[-2:]
    return "".join(parts).strip()


def _is_site_name(text: str, site_words: set[str]) -> bool:
    words = _normal(text).split()
    return not words or all(w.isdigit() for w in words) or bool(set(words) & site_words)


def _clean(text: str) -> str:
    return " ".join(text.split())


def _unique(values: Iterator[str] | Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def _select(tree: HtmlElement, css: str) -> list[HtmlElement]:
    return list(tree.cssselect(css))


def _selected_text(tree: HtmlElement, css: str) -> str:
    found = _select(tree, css)
    return _clean(found[0].text_content()) if found else ""


def _block_texts(element: HtmlElement) -> list[str]:
    """The text of `element` split at block-level tags, the way a browser would show it."""
    parts: list[str] = []
    current: list[str] = []

    def walk(node: HtmlElement) -> None:
        if not isinstance(node.tag, str) or node.tag in ("script", "style", "noscript"):
            return
        block = node.tag in BLOCK_TAGS
        if block and current:
            parts.append("".join(current))
            current.clear()
        if node.text:
            current.append(node.text)
        for child in node:
            walk(child)
            if child.tail:
                current.append(child.tail)
        if block and current:
            parts.append("".join(current))
            current.clear()

    walk(element)
    if current:
        parts.append("".join(current))
    return [p for p in (_clean(part) for part in parts) if p]


def _is_furniture(text: str) -> bool:
    # No share bar runs this long either; most paragraphs end here, before any cleaning.
    if len(text) > 2 * FURNITURE_MAX_CHARS:
        return False
    text = _clean(text)
    if not text or len(text) > FURNITURE_MAX_CHARS:
        return False
    if FURNITURE.match(text):
        return True
    words = re.findall(r"[\w-]+", text.lower())
    return bool(words) and all(w in SHARE_WORDS for w in words)


def _drop_furniture(paragraphs: list[str]) -> list[str]:
    return [p for p in paragraphs if not _is_furniture(p)]


def _normal(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def _drop_title_lines(lines: list[str], title: str) -> list[str]:
    """Drop the title where the body repeats it as its first lines."""
    wanted = _normal(title)
    if not wanted:
        return lines
    start = 0
    while start < len(lines):
        line = _normal(lines[start])
        if not line:
            start += 1
            continue
        # "Title | Site" against a body line "Title", or the reverse
        if line == wanted or (
            len(line) >= 0.6 * len(wanted)
            and (wanted.startswith(line) or line.startswith(wanted))
            and len(line) <= 1.5 * len(wanted)
        ):
            start += 1
            continue
        break
    return lines[start:]


def _only_links(element: etree._Element) -> bool:
    """True when `element` holds links and every word of it sits inside one (a
    related-articles entry)."""
    refs = list(element.iter("ref"))
    text = _normal("".join(element.itertext()))
    return bool(refs) and text == _normal(" ".join("".join(r.itertext()) for r in refs))


def _prune_body(body: etree._Element) -> None:
    """Remove page furniture from trafilatura's body tree, in place."""
    after_read_also = False
    for element in list(body):
        text = _clean("".join(element.itertext()))
        if len(text) <= READ_ALSO_MAX_CHARS and READ_ALSO.match(text):
            after_read_also = True
            body.remove(element)
            continue
        if after_read_also and (
            _only_links(element)
            or (element.tag == "list" and all(_only_links(item) for item in element))
        ):
            body.remove(element)
            continue
        after_read_also = False
        if _is_furniture(text):
            body.remove(element)
        elif element.tag == "list":
            for item in list(element):
                if _is_furniture("".join(item.itertext())):
                    element.remove(item)


def _links(
    roots: Sequence[etree._Element], url: str, link_tag: str = "a", link_attribute: str = "href"
) -> tuple[str, ...]:
    """Absolute http(s) links under `roots`, without the page itself and its site's home
    page (a "#top" anchor comes out of trafilatura as the home page)."""
    found = []
    page = url.split("#", 1)[0]
    host = urlsplit(url).hostname
    for root in roots:
        for element in root.iter(link_tag):
            href = (element.get(link_attribute) or "").strip()
            if not href or href.startswith("#"):
                continue
            absolute = urljoin(url, href).split("#", 1)[0]
            parts = urlsplit(absolute)
            if parts.scheme not in ("http", "https") or absolute == page:
                continue
            if parts.hostname == host and parts.path in ("", "/") and not parts.query:
                continue
            found.append(absolute)
    return _unique(found)


def _aware(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _parse_iso(value: str, zone: ZoneInfo) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        return _aware(datetime.fromisoformat(value), zone)
    except ValueError:
        return None


def _metadata_date(tree: HtmlElement, zone: ZoneInfo) -> datetime | None:
    """The publication time the page declares in meta tags, JSON-LD or a marked <time>."""
    for meta in tree.iter("meta"):
        key = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").lower()
        if key in PUBLISHED_META:
            found = _parse_iso(meta.get("content") or "", zone)
            if found is not None:
                return found
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text or "")
        except json.JSONDecodeError:
            continue
        for value in _json_values(data, "datePublished"):
            found = _parse_iso(value, zone) if isinstance(value, str) else None
            if found is not None:
                return found
    for time in tree.xpath(
        '//time[@datetime][@itemprop="datePublished" or @pubdate or ancestor::article]'
    ):
        found = _parse_iso(time.get("datetime"), zone)
        if found is not None:
            return found
    return None


def _json_values(data: Any, key: str) -> Iterator[Any]:
    if isinstance(data, dict):
        if key in data:
            yield data[key]
        for value in data.values():
            yield from _json_values(value, key)
    elif isinstance(data, list):
        for value in data:
            yield from _json_values(value, key)


def _parse_text_date(text: str, zone: ZoneInfo, languages: Sequence[str]) -> datetime | None:
    parsed = _date_parser(tuple(languages)).get_date_data(text).date_obj
    return _aware(parsed, zone) if parsed is not None else None


def _selected_date(
    tree: HtmlElement, css: str, zone: ZoneInfo, languages: Sequence[str]
) -> datetime | None:
    for element in _select(tree, css):
        for value in (element.get("datetime"), element.get("content")):
            found = _parse_iso(value, zone) if value else None
            if found is not None:
                return found
        match = BYLINE_DATE.search(element.text_content())
        text = match.group(0) if match else _clean(element.text_content())
        found = _parse_text_date(text, zone, languages) if text else None
        if found is not None:
            return found
    return None


def _byline_date(tree: HtmlElement, zone: ZoneInfo, languages: Sequence[str]) -> datetime | None:
    """The first short line that is a date with a month name ("9 июля 2019, 14:05"), looked
    for in the article first: a sidebar of other news carries dates too."""
    for scope in ("//article", "//main", "//body"):
        for node in tree.xpath(f"{scope}//text()[not(ancestor::script or ancestor::style)]"):
            text = _clean(str(node))
            if not text or len(text) > BYLINE_MAX_CHARS:
                continue
            match = BYLINE_DATE.search(text)
            found = _parse_text_date(match.group(0), zone, languages) if match else None
            if found is not None:
                return found
    return None


def _day_or_byline(
    day: str | None, tree: HtmlElement, zone: ZoneInfo, languages: Sequence[str]
) -> datetime | None:
    """htmldate's day, refined or corrected by a byline date.

    A byline on the same day adds the time of day. htmldate's known failure on Russian
    pages is a made-up 1 January, so a byline wins over a 1 January day too.
    """
    found_day = _parse_iso(day, zone) if day else None
    byline = _byline_date(tree, zone, languages)
    if found_day is None:
        return byline
    if byline is not None and (
        byline.date() == found_day.date() or (found_day.month, found_day.day) == (1, 1)
    ):
        return byline
    return found_day
