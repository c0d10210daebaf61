"""Finding article URLs: RSS/Atom feeds, sitemaps (index, gzip, news), listing pages and
the JSON APIs that script-filled listings read.

Pure functions over response bytes; the spider decides what to fetch. XML is parsed with
entities left unresolved and no network access, so a hostile feed cannot read files or
reach other hosts (XXE) nor blow up memory (billion laughs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin

import lxml.etree
import lxml.html
from scrapy.utils.gz import gunzip

from crawler.patterns import compile_pattern

GZIP_MAGIC = b"\x1f\x8b"
MAX_UNZIPPED = 50 * 1024 * 1024  # the sitemaps protocol caps a sitemap at 50 MB
ATOM = "{http://www.w3.org/2005/Atom}"


@dataclass(frozen=True)
class Found:
    """An article URL as discovery saw it, with the date the feed or sitemap gave."""

    url: str
    published_at: str | None = None  # ISO 8601 with offset, when given


@dataclass(frozen=True)
class SitemapLinks:
    articles: list[Found]
    sitemaps: list[str]  # child sitemaps of a sitemap index


@dataclass(frozen=True)
class ListingLinks:
    articles: list[Found]
    next_page: str | None


def _xml_parser() -> lxml.etree.XMLParser:
    return lxml.etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        recover=True,
        remove_comments=True,
        remove_pis=True,
    )


def _iso(value: str | None) -> str | None:
    """A feed or sitemap date (RFC 822 or W3C/ISO 8601) as ISO 8601, or None."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    if when.tzinfo is None and len(value) <= 10:
        when = when.replace(tzinfo=UTC)  # a bare W3C date means the day, in UTC
    return when.isoformat()


def _text(element: lxml.etree._Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def maybe_gunzip(body: bytes, max_size: int = MAX_UNZIPPED) -> bytes:
    """The body itself, or its decompressed content when it is a gzip file (.xml.gz)."""
    return gunzip(body, max_size=max_size) if body[:2] == GZIP_MAGIC else body


def parse_feed(body: bytes, base_url: str) -> list[Found]:
    """Article links of an RSS 2.0, RSS 1.0 (RDF) or Atom feed, in feed order."""
    try:
        root = lxml.etree.fromstring(maybe_gunzip(body), parser=_xml_parser())
    except lxml.etree.XMLSyntaxError:
        return []
    if root is None:
        return []
    found: list[Found] = []
    if _local(root.tag) == "feed":
        for entry in root.iter(f"{ATOM}entry"):
            link = next(
                (
                    el.get("href")
                    for el in entry.iter(f"{ATOM}link")
                    if el.get("rel", "alternate") == "alternate" and el.get("href")
                ),
                None,
            )
            if link:
                date = _text(entry.find(f"{ATOM}published")) or _text(entry.find(f"{ATOM}updated"))
                found.append(Found(urljoin(base_url, link), _iso(date)))
        return found
    for item in root.iter():
        if _local(item.tag) != "item":
            continue
        fields = {_local(child.tag): _text(child) for child in item}
        link = fields.get("link") or (
            fields.get("guid") if (fields.get("guid") or "").startswith("http") else None
        )
        if link:
            date = fields.get("pubDate") or fields.get("date") or fields.get("published")
            found.append(Found(urljoin(base_url, link), _iso(date)))
    return found


def parse_sitemap(body: bytes, base_url: str) -> SitemapLinks:
    """Article URLs of a sitemap (plain or Google news, gzipped or not), with their dates,
    or the child sitemaps of a sitemap index."""
    try:
        root = lxml.etree.fromstring(maybe_gunzip(body), parser=_xml_parser())
    except lxml.etree.XMLSyntaxError:
        return SitemapLinks([], [])
    if root is None:
        return SitemapLinks([], [])
    kind = _local(root.tag)
    articles: list[Found] = []
    children: list[str] = []
    for entry in root:
        # <loc>, <lastmod> and, in a news sitemap, <news:news><news:publication_date>
        fields = {_local(el.tag): _text(el) for el in entry.iter()}
        loc = fields.get("loc")
        if not loc:
            continue
        url = urljoin(base_url, loc)
        if kind == "sitemapindex":
            children.append(url)
        elif kind == "urlset":
            date = fields.get("publication_date") or fields.get("lastmod")
            articles.append(Found(url, _iso(date)))
    return SitemapLinks(articles, children)


def parse_listing(
    body: bytes | str,
    base_url: str,
    link_pattern: str,
    next_pattern: str | None = None,
    encoding: str = "utf-8",
) -> ListingLinks:
    """Links of a listing page that match `link_pattern` (in page order, each once), and
    the first link that matches `next_pattern`. The patterns run on RE2, in time linear in
    each link (crawler/patterns.py)."""
    if isinstance(body, bytes):
        body = body.decode(encoding, errors="replace")
    if not body.strip():
        return ListingLinks([], None)
    document = lxml.html.fromstring(body, base_url=base_url)
    article_re = compile_pattern(link_pattern)
    next_re = compile_pattern(next_pattern) if next_pattern else None
    seen: set[str] = set()
    articles: list[Found] = []
    next_page = None
    for anchor in document.iter("a"):
        href = anchor.get("href")
        if not href or href.startswith(("#", "javascript:", "mailto:")):
            continue
        url = urljoin(base_url, href.strip())
        if next_re is not None and next_page is None and next_re.search(url):
            next_page = url
        elif article_re.search(url) and url not in seen:
            seen.add(url)
            articles.append(Found(url))
    return ListingLinks(articles, next_page)


def _at_path(data: object, path: str) -> object:
    """The value at a dotted `path` ("data.items", "0.url") in parsed JSON, or None."""
    for key in filter(None, path.split(".")):
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return None
    return data


def _json_date(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):  # Unix time, in seconds or milliseconds
        seconds = value / 1000 if value > 10**11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            return None
    return _iso(value) if isinstance(value, str) else None


def parse_json_api(
    body: bytes, base_url: str, items_path: str, url_field: str, date_field: str | None = None
) -> list[Found]:
    """Article links of a JSON API answer: the items at `items_path`, each one's link at
    `url_field` (resolved against `base_url`) and date at `date_field`, in answer order."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return []
    items = _at_path(data, items_path)
    if not isinstance(items, list):
        return []
    found: list[Found] = []
    for item in items:
        link = _at_path(item, url_field)
        if isinstance(link, str) and link.strip():
            date = _json_date(_at_path(item, date_field)) if date_field else None
            found.append(Found(urljoin(base_url, link.strip()), date))
    return found
