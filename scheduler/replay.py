"""A local portal simulator: article pages, feeds, sitemaps and listings served on 127.0.0.1.

Used by the tests, the offline demo and the benchmarks. Each portal gets its own port.
Pages look like a real news portal (navigation, breadcrumbs, byline with a Russian date,
share bar, related links, comment block, footer) so that extraction meets furniture.
Feeds and sitemaps answer conditional requests (ETag, Last-Modified) with 304.

The server is the stdlib ``ThreadingHTTPServer`` with HTTP/1.1 keep-alive: no extra
dependency, and pages are rendered once and cached, so a server process of its own
(``subprocess=True``) serves far faster than a crawler can parse.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import os
import random
import subprocess as sp
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit
from urllib.request import urlopen

LOG_PATH = "/__replay__/requests"
RU_MONTHS_GENITIVE = [
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
]


@dataclass
class ReplayArticle:
    slug: str
    title: str
    text: str  # paragraphs separated by blank lines
    published_at: str  # ISO 8601 with offset
    lang: str = "ru"
    lead: str = ""
    authors: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    section: str = "news"

    @property
    def path(self) -> str:
        return f"/{self.section}/{self.slug}.html"

    @property
    def paragraphs(self) -> list[str]:
        return [p.strip() for p in self.text.split("\n\n") if p.strip()]


@dataclass
class ReplayPortal:
    name: str
    title: str
    articles: list[ReplayArticle]
    feed: Literal["rss", "atom"] | None = "rss"
    sitemap: bool = True
    listing: bool = True
    page_size: int = 20
    robots_txt: str = "User-agent: *\nAllow: /\n"
    date_in_meta: bool = True
    feed_size: int = 50  # the feed carries the newest N articles
    # "browser": listings and articles are empty shells that scripts fill from a JSON API
    # after `script_delay_ms`; a listing shows `page_size` links, then more per click on
    # its "load more" button (see BROWSER_READY)
    render: Literal["http", "browser"] = "http"
    script_delay_ms: int = 300


# --- generated articles -------------------------------------------------------------------

_WORDS = [
    "правительство",
    "министерство",
    "республика",
    "казахстан",
    "развитие",
    "программа",
    "проект",
    "экономика",
    "регион",
    "область",
    "город",
    "строительство",
    "инвестиции",
    "бюджет",
    "реформа",
    "сотрудничество",
    "совещание",
    "заседание",
    "решение",
    "поручение",
    "глава",
    "государство",
    "президент",
    "премьер-министр",
    "аким",
    "отрасль",
    "предприятие",
    "производство",
    "транспорт",
    "энергетика",
    "сельское",
    "хозяйство",
    "образование",
    "здравоохранение",
    "цифровизация",
    "космодром",
    "байконур",
    "холдинг",
    "байтерек",
    "финансирование",
    "поддержка",
    "бизнес",
    "население",
    "граждане",
    "услуги",
    "качество",
    "рост",
    "показатель",
    "итоги",
    "год",
    "квартал",
    "месяц",
    "неделя",
    "планы",
    "задачи",
    "меры",
    "контроль",
    "исполнение",
    "документ",
    "закон",
    "кодекс",
    "парламент",
    "мажилис",
    "сенат",
    "депутаты",
    "встреча",
    "делегация",
    "визит",
    "соглашение",
    "меморандум",
    "партнеры",
    "экспорт",
    "импорт",
    "товары",
    "рынок",
    "цены",
    "тенге",
    "миллиард",
    "миллион",
    "процент",
]
_VERBS = [
    "обсудили",
    "рассмотрели",
    "отметили",
    "подчеркнули",
    "поручил",
    "сообщил",
    "заявил",
    "утвердили",
    "подписали",
    "представили",
    "провели",
    "увеличили",
    "снизили",
    "запустили",
    "завершили",
]
_TITLES = (
    "В {0} обсудили вопросы {1}",
    "Правительство утвердило план по {1}",
    "Премьер-министр провел совещание по {1} в {0}",
    "Аким {0} рассказал о ходе {1}",
    "Министерство сообщило о {1}",
)
_PLACES = [
    "Астане",
    "Алматы",
    "Шымкенте",
    "Караганде",
    "Актобе",
    "Павлодаре",
    "Костанае",
    "Атырау",
    "Кызылорде",
]


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(8, 16))
    words.insert(rng.randint(1, len(words) - 1), rng.choice(_VERBS))
    return " ".join(words).capitalize() + "."


def generate_articles(
    count: int,
    *,
    seed: int = 0,
    paragraphs: int = 5,
    start: datetime | None = None,
    section: str = "news",
) -> list[ReplayArticle]:
    """`count` distinct Russian articles, newest first, one every 7 minutes back from `start`.

    About 0.45 KB of HTML text per paragraph of 3 sentences; 40 paragraphs make a ~40 KB page.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible test text, not secrets
    tz = timezone(timedelta(hours=6))
    start = start or datetime(2019, 11, 18, 18, 0, tzinfo=tz)
    articles = []
    for index in range(count):
        title = rng.choice(_TITLES).format(rng.choice(_PLACES), " ".join(rng.sample(_WORDS, 2)))
        title = f"{title} ({index + 1})"
        body = [" ".join(_sentence(rng) for _ in range(3)) for _ in range(paragraphs)]
        when = start - timedelta(minutes=7 * index)
        articles.append(
            ReplayArticle(
                slug=f"{when:%Y%m%d}-{index + 1:05d}",
                title=title,
                text="\n\n".join(body),
                published_at=when.isoformat(),
                lead=body[0].split(".")[0] + ".",
                authors=[rng.choice(["Айгерим Сапарова", "Дмитрий Ким", "Асель Нурланова"])],
                section=section,
            )
        )
    return articles


# --- rendering ----------------------------------------------------------------------------


def russian_date(iso: str) -> str:
    when = datetime.fromisoformat(iso)
    return f"{when.day} {RU_MONTHS_GENITIVE[when.month - 1]} {when.year}, {when:%H:%M}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _article_head(portal: ReplayPortal, article: ReplayArticle) -> str:
    meta = (
        f'<meta property="article:published_time" content="{_e(article.published_at)}">'
        if portal.date_in_meta
        else ""
    )
    return (
        f'<meta property="og:title" content="{_e(article.title)}">\n'
        f'<meta property="og:site_name" content="{_e(portal.title)}">\n{meta}'
    )


def _article_main(article: ReplayArticle, related: list[ReplayArticle]) -> str:
    body = "\n".join(f"<p>{_e(p)}</p>" for p in article.paragraphs)
    links = "".join(f'<p>Источник: <a href="{_e(u)}">{_e(u)}</a></p>' for u in article.links)
    related_html = "".join(f'<li><a href="{r.path}">{_e(r.title)}</a></li>' for r in related)
    authors = ", ".join(article.authors)
    return f"""<ol class="breadcrumbs"><li><a href="/">Главная</a></li>
<li><a href="/{article.section}/">Новости</a></li></ol>
<article class="article">
<h1 class="article-title">{_e(article.title)}</h1>
<div class="byline"><span class="author">{_e(authors)}</span>
<time class="date">{russian_date(article.published_at)}</time></div>
<div class="lead"><strong>{_e(article.lead)}</strong></div>
<div class="article-body">
{body}
{links}
</div>
</article>
<div class="share-bar">Поделиться: <a href="#">ВКонтакте</a> <a href="#">Telegram</a>
<a href="#">WhatsApp</a> <a href="#">Facebook</a></div>
<aside class="related"><h3>Читайте также</h3><ul>{related_html}</ul></aside>
<section class="comments"><h3>Оставить комментарий</h3>
<form><textarea placeholder="Ваш комментарий"></textarea>
<button>Отправить</button></form><p>Комментариев пока нет. Будьте первым!</p></section>"""


def _page(
    portal: ReplayPortal, lang: str, title: str, head: str, main: str, *, tail: str = ""
) -> str:
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8">
<title>{_e(title)}</title>
{head}
</head><body>
<header class="site-header"><a class="logo" href="/">{_e(portal.title)}</a>
<nav><ul><li><a href="/news/">Новости</a></li><li><a href="/politics/">Политика</a></li>
<li><a href="/economy/">Экономика</a></li><li><a href="/society/">Общество</a></li></ul></nav>
<form class="search" action="/search"><input name="q" placeholder="Поиск по сайту"></form>
</header>
<main>
{main}
</main>
<footer class="site-footer"><p>© 2019 {_e(portal.title)}. Все права защищены.
При использовании материалов ссылка на источник обязательна.</p>
<p><a href="/about">О нас</a> · <a href="/ads">Реклама</a> · <a href="/contacts">Контакты</a></p>
</footer>{tail}</body></html>"""


def _article_title(portal: ReplayPortal, article: ReplayArticle) -> str:
    return f"{article.title} — {portal.title}"


def render_article(portal: ReplayPortal, article: ReplayArticle, related: list[ReplayArticle]):
    return _page(
        portal,
        article.lang,
        _article_title(portal, article),
        _article_head(portal, article),
        _article_main(article, related),
    )


# The browser-rendered portal: shells whose scripts fetch the content from /api/ after a delay.
BROWSER_READY = {
    "listing": "main.listing .card a",
    "article": "article.article .article-body p",
    "load_more": "button.load-more",
}

_ARTICLE_SCRIPT = """<script>
setTimeout(async () => {
  const reply = await fetch("/api/article?path=" + encodeURIComponent(location.pathname));
  const data = await reply.json();
  document.title = data.title;
  document.head.insertAdjacentHTML("beforeend", data.head);
  document.querySelector("main").innerHTML = data.main;
}, %d);
</script>"""

_LISTING_SCRIPT = """<script>
const list = document.querySelector("main.listing");
const button = document.querySelector("button.load-more");
let page = 0;
async function more() {
  page += 1;
  const reply = await fetch("/api/listing?section=%s&page=" + page);
  const data = await reply.json();
  list.insertAdjacentHTML("beforeend", data.cards);
  button.hidden = !data.more;
}
button.addEventListener("click", () => setTimeout(more, %d));
setTimeout(more, %d);
</script>"""


def render_article_shell(portal: ReplayPortal, article: ReplayArticle) -> str:
    """The article page of a browser-rendered portal: no text until its script runs."""
    main = '<p class="loading">Загрузка…</p>'
    script = _ARTICLE_SCRIPT % portal.script_delay_ms
    return _page(portal, article.lang, portal.title, "", main, tail=script)


def render_listing_shell(portal: ReplayPortal, section: str) -> str:
    """The listing of a browser-rendered portal: no link until its script runs."""
    delay = portal.script_delay_ms
    return (
        f'<!DOCTYPE html><html lang="ru"><head><meta charset="utf-8">'
        f"<title>Новости — {_e(portal.title)}</title></head><body>"
        f'<nav><a href="/">Главная</a> <a href="/about">О нас</a></nav>'
        f'<main class="listing"></main><div class="pager">'
        f'<button class="load-more" hidden>Показать ещё</button></div>'
        f"{_LISTING_SCRIPT % (section, delay, delay)}</body></html>"
    )


def render_rss(portal: ReplayPortal, base: str, articles: list[ReplayArticle]) -> str:
    items = "".join(
        f"<item><title>{_e(a.title)}</title><link>{base}{a.path}</link>"
        f"<guid>{base}{a.path}</guid>"
        f"<pubDate>{format_datetime(datetime.fromisoformat(a.published_at))}</pubDate>"
        f"<description>{_e(a.lead)}</description></item>"
        for a in articles
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{_e(portal.title)}</title><link>{base}/</link>"
        f"<description>{_e(portal.title)}</description>{items}</channel></rss>"
    )


def render_atom(portal: ReplayPortal, base: str, articles: list[ReplayArticle]) -> str:
    updated = articles[0].published_at if articles else "2019-01-01T00:00:00+00:00"
    entries = "".join(
        f'<entry><title>{_e(a.title)}</title><link rel="alternate" href="{base}{a.path}"/>'
        f"<id>{base}{a.path}</id><published>{a.published_at}</published>"
        f"<updated>{a.published_at}</updated><summary>{_e(a.lead)}</summary></entry>"
        for a in articles
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{_e(portal.title)}</title><id>{base}/</id><updated>{updated}</updated>"
        f"{entries}</feed>"
    )


def render_sitemap_index(base: str, lastmod: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<sitemap><loc>{base}/sitemap-articles.xml.gz</loc><lastmod>{lastmod}</lastmod></sitemap>"
        f"<sitemap><loc>{base}/sitemap-news.xml</loc><lastmod>{lastmod}</lastmod></sitemap>"
        "</sitemapindex>"
    )


def render_sitemap(base: str, articles: list[ReplayArticle]) -> str:
    urls = "".join(
        f"<url><loc>{base}{a.path}</loc><lastmod>{a.published_at}</lastmod></url>" for a in articles
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
    )


def render_news_sitemap(portal: ReplayPortal, base: str, articles: list[ReplayArticle]) -> str:
    urls = "".join(
        f"<url><loc>{base}{a.path}</loc><news:news><news:publication>"
        f"<news:name>{_e(portal.title)}</news:name><news:language>{a.lang}</news:language>"
        f"</news:publication><news:publication_date>{a.published_at}</news:publication_date>"
        f"<news:title>{_e(a.title)}</news:title></news:news></url>"
        for a in articles
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">'
        f"{urls}</urlset>"
    )


def render_cards(articles: list[ReplayArticle]) -> str:
    return "".join(
        f'<div class="card"><a class="card-title" href="{a.path}">{_e(a.title)}</a>'
        f'<span class="card-date">{russian_date(a.published_at)}</span></div>'
        for a in articles
    )


def render_listing(
    portal: ReplayPortal, section: str, page: int, articles: list[ReplayArticle], more: bool
) -> str:
    cards = render_cards(articles)
    next_link = f'<a class="next" href="/{section}/?page={page + 1}">Далее</a>' if more else ""
    return (
        f'<!DOCTYPE html><html lang="ru"><head><meta charset="utf-8">'
        f"<title>Новости — {_e(portal.title)}</title></head><body>"
        f'<nav><a href="/">Главная</a> <a href="/about">О нас</a></nav>'
        f'<main class="listing">{cards}</main><div class="pager">{next_link}</div></body></html>'
    )


# --- serving ------------------------------------------------------------------------------


@dataclass
class _Page:
    body: bytes
    content_type: str
    kind: str
    etag: str | None = None
    last_modified: datetime | None = None


class _PortalSite:
    """Every page of one portal, rendered once on first use."""

    def __init__(self, portal: ReplayPortal) -> None:
        self.portal = portal
        self.base = ""
        # newest first, whatever order the caller gave
        self.articles = sorted(
            portal.articles, key=lambda a: datetime.fromisoformat(a.published_at), reverse=True
        )
        self.by_path = {a.path: a for a in self.articles}
        self.sections = sorted({a.section for a in self.articles})
        self.cache: dict[str, _Page] = {}
        self.lock = threading.Lock()
        self.log: list[dict[str, Any]] = []

    def _validated(self, body: bytes, content_type: str, kind: str) -> _Page:
        newest = (
            datetime.fromisoformat(self.articles[0].published_at)
            if self.articles
            else datetime(2019, 1, 1, tzinfo=UTC)
        )
        etag = '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest()[:20] + '"'
        return _Page(body, content_type, kind, etag, newest)

    # a router: one return per route reads better than a table of lambdas
    def render(self, path: str, query: dict[str, list[str]]) -> _Page | None:  # noqa: PLR0911
        portal, base = self.portal, self.base
        if path == "/robots.txt":
            return _Page(portal.robots_txt.encode(), "text/plain; charset=utf-8", "robots")
        if path in self.by_path:
            return self.article_page(self.by_path[path])
        if path.startswith("/api/"):
            return self.api(path, query)
        if portal.feed == "rss" and path == "/rss.xml":
            text = render_rss(portal, base, self.articles[: portal.feed_size])
            return self._validated(text.encode(), "application/rss+xml; charset=utf-8", "feed")
        if portal.feed == "atom" and path == "/atom.xml":
            text = render_atom(portal, base, self.articles[: portal.feed_size])
            return self._validated(text.encode(), "application/atom+xml; charset=utf-8", "feed")
        if portal.sitemap:
            lastmod = self.articles[0].published_at if self.articles else "2019-01-01"
            if path == "/sitemap.xml":
                body = render_sitemap_index(base, lastmod).encode()
                return self._validated(body, "application/xml", "sitemap")
            if path == "/sitemap-articles.xml.gz":
                raw = render_sitemap(base, self.articles).encode()
                return self._validated(gzip.compress(raw, mtime=0), "application/gzip", "sitemap")
            if path == "/sitemap-news.xml":
                body = render_news_sitemap(portal, base, self.articles[:1000]).encode()
                return self._validated(body, "application/xml", "sitemap")
        section = path.strip("/")
        if path.endswith("/") and section in self.sections:
            return self.listing_page(section, query)
        return None

    def article_page(self, article: ReplayArticle) -> _Page:
        if self.portal.render == "browser":
            page = render_article_shell(self.portal, article)
        else:
            page = render_article(self.portal, article, self.related(article))
        return _Page(page.encode("utf-8"), "text/html; charset=utf-8", "article")

    def listing_page(self, section: str, query: dict[str, list[str]]) -> _Page | None:
        portal = self.portal
        if portal.render == "browser":
            text = render_listing_shell(portal, section)
            return _Page(text.encode(), "text/html; charset=utf-8", "listing")
        if not portal.listing:
            return None
        try:
            page_no = max(1, int(query.get("page", ["1"])[0]))
        except ValueError:
            return None
        in_section = [a for a in self.articles if a.section == section]
        start = (page_no - 1) * portal.page_size
        chunk = in_section[start : start + portal.page_size]
        if not chunk:
            return None
        more = start + portal.page_size < len(in_section)
        text = render_listing(portal, section, page_no, chunk, more)
        return self._validated(text.encode(), "text/html; charset=utf-8", "listing")

    def related(self, article: ReplayArticle) -> list[ReplayArticle]:
        index = self.articles.index(article)
        return self.articles[index + 1 : index + 4]

    def api(self, path: str, query: dict[str, list[str]]) -> _Page | None:
        """The JSON the browser-rendered pages fetch: one article's markup, or a page of
        the listing (its cards' markup and its items as data, as a site's API gives)."""
        if path == "/api/article":
            article = self.by_path.get(query.get("path", [""])[0])
            if article is None:
                return None
            data: dict[str, Any] = {
                "title": _article_title(self.portal, article),
                "head": _article_head(self.portal, article),
                "main": _article_main(article, self.related(article)),
            }
        elif path == "/api/listing":
            section = query.get("section", [""])[0]
            try:
                page_no = max(1, int(query.get("page", ["1"])[0]))
            except ValueError:
                return None
            in_section = [a for a in self.articles if a.section == section]
            start = (page_no - 1) * self.portal.page_size
            chunk = in_section[start : start + self.portal.page_size]
            data = {
                "items": [
                    {"url": a.path, "title": a.title, "published_at": a.published_at} for a in chunk
                ],
                "cards": render_cards(chunk),
                "more": start + self.portal.page_size < len(in_section),
            }
        else:
            return None
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        return _Page(body, "application/json; charset=utf-8", "api")

    def page(self, path: str, query_string: str) -> _Page | None:
        key = f"{path}?{query_string}"
        with self.lock:
            cached = self.cache.get(key)
        if cached is None:
            cached = self.render(path, parse_qs(query_string))
            if cached is not None:
                with self.lock:
                    self.cache[key] = cached
        return cached


def _not_modified(page: _Page, headers: Any) -> bool:
    if page.etag is None:
        return False
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        return page.etag in [tag.strip() for tag in if_none_match.split(",")]
    if_modified_since = headers.get("If-Modified-Since")
    if if_modified_since and page.last_modified is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return page.last_modified.replace(microsecond=0) <= since
    return False


def _handler_for(site: _PortalSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real portals and Scrapy use

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == LOG_PATH:
                with site.lock:
                    body = json.dumps(site.log).encode()
                self._send(200, body, "application/json")
                return
            page = site.page(parts.path, parts.query)
            kind = page.kind if page else "other"
            if page is None:
                status = 404
                self._send(404, b"<html><body>Not found</body></html>", "text/html")
            elif _not_modified(page, self.headers):
                status = 304
                self._send(304, b"", page.content_type, page)
            else:
                status = 200
                self._send(200, page.body, page.content_type, page)
            entry = {
                "path": self.path,
                "kind": kind,
                "status": status,
                "headers": dict(self.headers.items()),
                "time": time.time(),
            }
            with site.lock:
                site.log.append(entry)

        def _send(self, status: int, body: bytes, ctype: str, page: _Page | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            if page is not None and page.etag:
                self.send_header("ETag", page.etag)
            if page is not None and page.last_modified is not None:
                modified = page.last_modified.astimezone(UTC)
                self.send_header("Last-Modified", format_datetime(modified, usegmt=True))
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the request log is the record, not stderr."""

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that hang up (a browser closing a page), loud otherwise."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _serve(portals: list[ReplayPortal]) -> tuple[dict[str, _PortalSite], list[_Server]]:
    sites, servers = {}, []
    for portal in portals:
        site = _PortalSite(portal)
        server = _Server(("127.0.0.1", 0), _handler_for(site))
        site.base = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sites[portal.name] = site
        servers.append(server)
    return sites, servers


class ReplayServer:
    """Serve `portals` on 127.0.0.1, one port each, as a context manager.

    ``subprocess=True`` serves from a child process, so that the server's threads do not
    compete with the crawler for the GIL (benchmarks).
    """

    def __init__(self, portals: list[ReplayPortal], *, subprocess: bool = False) -> None:
        self.portals = {p.name: p for p in portals}
        self.subprocess = subprocess
        self._sites: dict[str, _PortalSite] = {}
        self._servers: list[_Server] = []
        self._child: sp.Popen[str] | None = None
        self._bases: dict[str, str] = {}

    def __enter__(self) -> ReplayServer:
        if self.subprocess:
            self._child = sp.Popen(
                [sys.executable, "-m", "scheduler.replay"],
                stdin=sp.PIPE,
                stdout=sp.PIPE,
                encoding="utf-8",
            )
            assert self._child.stdin
            assert self._child.stdout
            portals = [asdict(p) for p in self.portals.values()]
            self._child.stdin.write(json.dumps(portals, ensure_ascii=False) + "\n")
            self._child.stdin.flush()
            self._bases = json.loads(self._child.stdout.readline())
        else:
            self._sites, self._servers = _serve(list(self.portals.values()))
            self._bases = {name: site.base for name, site in self._sites.items()}
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []
        if self._child is not None:
            assert self._child.stdin
            self._child.stdin.close()  # the child serves until its stdin closes
            self._child.wait(timeout=10)
            self._child = None

    def base_url(self, portal: str) -> str:
        return self._bases[portal]

    @property
    def pid(self) -> int:
        """The process that serves: the child with ``subprocess=True``, else this one."""
        return self._child.pid if self._child is not None else os.getpid()

    def source_config(self, portal: str, **overrides: Any) -> dict[str, Any]:
        """A sources.yaml entry that discovers this portal through its feed, sitemap and
        listing (whichever it has); for a browser-rendered portal, rendered in Chromium
        with the listing's "load more" button clicked until every link shows."""
        spec, base = self.portals[portal], self.base_url(portal)
        discovery: dict[str, Any] = {"feeds": [], "sitemaps": [], "listings": []}
        if spec.feed:
            discovery["feeds"].append(f"{base}/{'rss' if spec.feed == 'rss' else 'atom'}.xml")
        if spec.sitemap:
            discovery["sitemaps"].append(f"{base}/sitemap.xml")
        if spec.render == "browser":
            for section in sorted({a.section for a in spec.articles}):
                in_section = sum(1 for a in spec.articles if a.section == section)
                load_more = {"click": BROWSER_READY["load_more"], "until_links": in_section}
                discovery["listings"].append(
                    {
                        "url": f"{base}/{section}/",
                        "link_pattern": rf"/{section}/[\w-]+\.html$",
                        "wait_for": BROWSER_READY["listing"],
                        "load_more": {**load_more, "max_rounds": 100},
                    }
                )
        elif spec.listing:
            sections = sorted({a.section for a in spec.articles})
            pages = max(1, -(-len(spec.articles) // spec.page_size))
            for section in sections:
                discovery["listings"].append(
                    {
                        "url": f"{base}/{section}/",
                        "link_pattern": rf"/{section}/[\w-]+\.html$",
                        "next_pattern": rf"/{section}/\?page=\d+$",
                        "pages": min(50, pages),
                    }
                )
        config: dict[str, Any] = {
            "name": spec.name,
            "title": spec.title,
            "kind": "media",
            "domains": ["127.0.0.1"],
            "languages": ["ru"],
            "discovery": {k: v for k, v in discovery.items() if v},
            "max_items": max(1, len(spec.articles)),
        }
        if spec.render == "browser":
            config["render"] = "browser"
            config["article_wait_for"] = BROWSER_READY["article"]
        config.update(overrides)
        return config

    def requests(self, portal: str | None = None) -> list[dict[str, Any]]:
        """The request log (oldest first) of one portal, or of all of them."""
        names = [portal] if portal else list(self.portals)
        log: list[dict[str, Any]] = []
        for name in names:
            if self._child is not None:
                with urlopen(self.base_url(name) + LOG_PATH, timeout=10) as reply:  # noqa: S310
                    log.extend(json.loads(reply.read()))
            else:
                with self._sites[name].lock:
                    log.extend(self._sites[name].log)
        return sorted(log, key=lambda entry: entry["time"])


def _portal_from_dict(data: dict[str, Any]) -> ReplayPortal:
    articles = [ReplayArticle(**a) for a in data.pop("articles")]
    return ReplayPortal(articles=articles, **data)


def main() -> None:
    """Child process: read portals (JSON) from stdin, print their base URLs, serve until
    stdin closes."""
    line = sys.stdin.buffer.readline().decode("utf-8")
    portals = [_portal_from_dict(p) for p in json.loads(line)]
    sites, servers = _serve(portals)
    print(json.dumps({name: site.base for name, site in sites.items()}), flush=True)
    sys.stdin.buffer.read()
    for server in servers:
        server.shutdown()


if __name__ == "__main__":
    main()
