"""Discovery: feeds, sitemaps and listings parsed into article URLs, and hostile XML refused."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from crawler.discovery import Found, maybe_gunzip, parse_feed, parse_listing, parse_sitemap
from scheduler.replay import (
    ReplayPortal,
    generate_articles,
    render_atom,
    render_listing,
    render_news_sitemap,
    render_rss,
    render_sitemap,
    render_sitemap_index,
)

DATA = Path(__file__).parent / "data" / "discovery"
BASE = "http://portal.test"
ARTICLES = generate_articles(3, seed=3)
PORTAL = ReplayPortal("p", "Портал", ARTICLES)
EXPECTED = [Found(f"{BASE}{a.path}", a.published_at) for a in ARTICLES]


def test_rss_gives_links_and_dates() -> None:
    assert parse_feed(render_rss(PORTAL, BASE, ARTICLES).encode(), BASE) == EXPECTED


def test_atom_gives_links_and_dates() -> None:
    assert parse_feed(render_atom(PORTAL, BASE, ARTICLES).encode(), BASE) == EXPECTED


def test_real_rss_feed() -> None:
    found = parse_feed((DATA / "feed2.rss").read_bytes(), "http://www.example.com/")
    assert found == [Found("http://www.example.com/blog/post/1", "2009-09-06T16:20:00+00:00")]


def test_real_atom_feed_skips_self_links() -> None:
    found = parse_feed((DATA / "feed1.atom").read_bytes(), "http://example.org/")
    assert found == [Found("http://example.org/2003/12/13/atom03", "2003-12-13T18:30:02+00:00")]


def test_relative_feed_links_are_resolved() -> None:
    rss = b"<rss><channel><item><link>/news/a.html</link></item></channel></rss>"
    assert parse_feed(rss, "http://portal.test/rss.xml") == [
        Found("http://portal.test/news/a.html")
    ]


def test_sitemap_index_lists_child_sitemaps() -> None:
    links = parse_sitemap((DATA / "sitemap2.xml").read_bytes(), "http://www.example.com/")
    assert links.articles == []
    assert links.sitemaps == [
        "http://www.example.com/sitemap1.xml.gz",
        "http://www.example.com/sitemap2.xml.gz",  # from a CDATA section
    ]


def test_gzipped_sitemap() -> None:
    body = (DATA / "sitemap.xml.gz").read_bytes()
    links = parse_sitemap(body, "https://www.sitemaps.org/")
    assert len(links.articles) == 84
    assert links.articles[0] == Found("https://www.sitemaps.org/", "2016-11-21T00:00:00+00:00")


def test_generated_sitemaps_round_trip() -> None:
    index = parse_sitemap(render_sitemap_index(BASE, "2019-11-18").encode(), BASE)
    assert index.sitemaps == [f"{BASE}/sitemap-articles.xml.gz", f"{BASE}/sitemap-news.xml"]
    plain = gzip.compress(render_sitemap(BASE, ARTICLES).encode())
    assert parse_sitemap(plain, BASE).articles == EXPECTED


def test_news_sitemap_dates_come_from_publication_date() -> None:
    body = render_news_sitemap(PORTAL, BASE, ARTICLES).encode()
    assert parse_sitemap(body, BASE).articles == EXPECTED


def test_listing_links_and_next_page() -> None:
    html = render_listing(PORTAL, "news", 1, ARTICLES, more=True)
    links = parse_listing(html.encode(), f"{BASE}/news/", r"/news/[\w-]+\.html$", r"\?page=\d+$")
    assert links.articles == [Found(f"{BASE}{a.path}") for a in ARTICLES]
    assert links.next_page == f"{BASE}/news/?page=2"


def test_last_listing_page_has_no_next() -> None:
    html = render_listing(PORTAL, "news", 3, ARTICLES, more=False)
    links = parse_listing(html, f"{BASE}/news/?page=3", r"\.html$", r"\?page=\d+$")
    assert links.next_page is None
    assert len(links.articles) == 3


def test_real_tengrinews_listing() -> None:
    body = gzip.decompress((DATA / "tengrinews_kz_news_listing.html.gz").read_bytes())
    links = parse_listing(
        body,
        "https://tengrinews.kz/news/",
        r"^https://tengrinews\.kz/[a-z_]+/[^/]+-\d+/$",
        r"/news/page/\d+/$",
    )
    assert links.next_page == "https://tengrinews.kz/news/page/2/"
    assert len(links.articles) >= 20
    assert len({f.url for f in links.articles}) == len(links.articles)


XXE_FEED = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
  <!ENTITY secret SYSTEM "file:///etc/passwd">
  <!ENTITY remote SYSTEM "http://127.0.0.3:9/canary">
]>
<rss version="2.0"><channel><item>
  <title>&secret;&remote;</title><link>http://portal.test/a&secret;.html</link>
</item></channel></rss>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss><channel><item><link>http://portal.test/&lol9;</link></item></channel></rss>"""


def test_external_entities_are_not_resolved() -> None:
    found = parse_feed(XXE_FEED, "http://portal.test/")
    assert all("root:" not in f.url for f in found)
    sitemap = XXE_FEED.replace(b"<rss", b"<urlset><url><loc>&secret;</loc></url></urlset><x")
    assert all("root:" not in f.url for f in parse_sitemap(sitemap, "http://p.test/").articles)


@pytest.mark.timeout(10)
def test_billion_laughs_expands_nothing() -> None:
    found = parse_feed(BILLION_LAUGHS, "http://portal.test/")
    assert all(len(f.url) < 1000 for f in found)
    sitemap = BILLION_LAUGHS.replace(b"<rss><channel><item><link>", b"<urlset><url><loc>")
    sitemap = sitemap.replace(b"</link></item></channel></rss>", b"</loc></url></urlset>")
    assert all(len(f.url) < 1000 for f in parse_sitemap(sitemap, "http://p.test/").articles)


@pytest.mark.parametrize("body", [b"", b"not xml at all", b"<html><body>oops</body></html>"])
def test_garbage_gives_no_links(body: bytes) -> None:
    assert parse_feed(body, BASE) == []
    assert parse_sitemap(body, BASE).articles == []


def test_plain_body_is_not_gunzipped() -> None:
    assert maybe_gunzip(b"<rss/>") == b"<rss/>"
