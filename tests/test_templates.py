"""Learned body templates: found where trafilatura's text lies, read back to the same text,
learned after agreeing pages, checked and dropped when a page disagrees."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from scrapy.utils.test import get_crawler

from crawler.config import Source
from crawler.extract import Article, extract_article
from crawler.spiders.portal import PortalSpider
from crawler.template_memory import TemplateMemory
from crawler.templates import AGREEMENT, TemplateLearner, text_agreement
from pipelines.clean import clean_texts
from pipelines.storing import close_crawler_store
from scheduler.demo import load_corpus
from scheduler.replay import ReplayPortal, generate_articles, render_article

GOLDEN = Path(__file__).parent / "data" / "golden"
URL = "http://127.0.0.1/news/1"


def portal_pages(count: int, paragraphs: int = 8, seed: int = 3) -> list[str]:
    articles = generate_articles(count, seed=seed, paragraphs=paragraphs)
    portal = ReplayPortal(name="vestnik", title="Вестник", articles=articles)
    return [render_article(portal, a, articles[:3]) for a in articles]


PROMO = (
    '<aside class="promo"><div class="article-body"><p>'
    + "Подпишитесь на рассылку редакции: главные новости дня каждое утро в вашей почте. " * 4
    + "</p></div></aside>"
)


def redesign(html: str) -> str:
    """The same article after a redesign: the body moved to a new container, and the old
    container's class now marks a promotion box, which the old template would read."""
    html = html.replace('<div class="article-body">', '<div class="story-text">')
    return html.replace('<aside class="related">', f'{PROMO}<aside class="related">')


def test_the_template_of_a_portal_page_reads_back_trafilaturas_text() -> None:
    html = portal_pages(1)[0]
    generic = extract_article(html, URL, find_template=True)
    assert generic.body_from == "trafilatura"
    assert generic.body_template == '//div[@class="article-body"]'

    templated = extract_article(html, URL, body_template=generic.body_template)
    assert templated.body_from == "template"
    assert templated.text == generic.text
    assert templated.title == generic.title
    assert templated.published_at == generic.published_at


def test_a_template_names_tags_ids_and_classes_never_positions_or_article_ids() -> None:
    html = portal_pages(1)[0].replace('<article class="article">', '<article id="post-4711">')
    template = extract_article(html, URL, find_template=True).body_template
    assert template is not None
    assert not re.search(r"\[\d", template)
    assert "4711" not in template


@pytest.mark.parametrize("page", sorted(GOLDEN.glob("*.html.gz")), ids=lambda p: p.stem)
def test_on_real_pages_a_template_found_gives_trafilaturas_text(page: Path) -> None:
    html = gzip.decompress(page.read_bytes()).decode("utf-8")
    generic = extract_article(html, "")
    found = extract_article(html, "", find_template=True)
    assert found.text == generic.text  # looking changes nothing about the page's item
    if found.body_template is None:
        return  # no container can be named: every page of such a source goes to trafilatura
    templated = extract_article(html, "", body_template=found.body_template)
    assert templated.body_from == "template"
    assert text_agreement(templated.text, generic.text) >= AGREEMENT


def test_a_page_the_template_finds_nothing_on_is_read_by_trafilatura() -> None:
    html = portal_pages(1)[0]
    template = extract_article(html, URL, find_template=True).body_template
    other = html.replace("article-body", "story-text")
    article = extract_article(other, URL, body_template=template)
    assert article.body_from == "trafilatura"
    assert article.text == extract_article(other, URL).text


def read(learner: TemplateLearner, html: str) -> tuple[str, str]:
    """One page through the learner, as the spider and a worker do it."""
    template, find = learner.plan()
    article = extract_article(html, URL, body_template=template, find_template=find)
    event = learner.observe(template, article.body_template) if find else None
    return article.body_from, event or ""


def test_the_learner_adopts_after_agreeing_pages_checks_and_drops_on_a_redesign() -> None:
    pages = portal_pages(40)
    learner = TemplateLearner(learn_after=3, check_every=10, max_check_every=20)
    first = [read(learner, html) for html in pages[:23]]
    assert [event for _, event in first[:3]] == ["", "", "learned"]
    # after that, every page through the template but the 10th, which is checked; the
    # check passed, so the next one comes 20 pages later
    assert [how for how, _ in first[3:]].count("template") == 19
    assert [event for _, event in first[3:]].count("checked") == 1

    redesigned = [redesign(html) for html in pages[23:]]
    after = [read(learner, html) for html in redesigned]
    events = [event for _, event in after]
    assert events.index("dropped") == 9  # the next check, the 30th page after learning
    assert events.index("learned") == 12  # three pages of the new layout later
    assert learner.template == '//div[@class="story-text"]'
    # once relearned, pages read through the template hold the whole article again
    last = redesigned[-1]
    assert extract_article(last, URL, body_template=learner.template).text == (
        extract_article(last, URL).text
    )


def test_a_source_whose_pages_teach_nothing_is_looked_at_every_tenth_page() -> None:
    learner = TemplateLearner(learn_after=3, check_every=10, patience=5)
    looked = []
    for _ in range(40):
        template, find = learner.plan()
        looked.append(find)
        if find:
            learner.observe(template, None)
    assert looked[:5] == [True] * 5
    assert sum(looked[5:]) == 4  # pages 10, 20, 30 and 40


def test_checks_grow_rarer_while_they_pass_and_frequent_again_after_a_drop() -> None:
    learner = TemplateLearner(learn_after=1, check_every=10, max_check_every=40)
    learner.observe(None, "//main")
    checks = []
    for page in range(1, 151):
        template, find = learner.plan()
        if find:
            checks.append(page)
            learner.observe(template, "//main")
    assert checks == [10, 30, 70, 110, 150]
    learner.observe("//main", "//other")  # a failed check
    learner.observe(None, "//main")
    assert [learner.plan()[1] for _ in range(10)] == [False] * 9 + [True]


def test_pages_planned_before_the_template_changed_do_not_count_against_it() -> None:
    learner = TemplateLearner(learn_after=1, check_every=2)
    assert learner.observe(None, "//main") == "learned"
    assert learner.observe("//old", None) is None
    assert learner.template == "//main"
    assert learner.observe("//main", "//main") == "checked"
    assert learner.observe("//main", "//div") == "dropped"
    assert learner.template is None


def test_the_template_a_crawl_ends_with_is_where_the_next_crawl_of_its_source_starts(
    tmp_path: Path,
) -> None:
    source = Source.model_validate(
        {"name": "vestnik", "kind": "media", "domains": ["vestnik.kz"],
         "discovery": {"feeds": ["https://vestnik.kz/rss.xml"]}}
    )  # fmt: skip
    settings = {"PRESSWATCH_STORE": f"sqlite:///{tmp_path}/pw.db"}

    def crawl(learned: str | None) -> TemplateLearner:
        """A crawl's opening and closing, with `learned` the template it ends with."""
        crawler = get_crawler(PortalSpider, settings_dict=settings)
        spider = PortalSpider.from_crawler(crawler, source=source)
        memory = TemplateMemory.from_crawler(crawler)
        try:
            memory.spider_opened(spider)
            started_from = TemplateLearner(**{**vars(spider.templates)})
            if learned is not None:
                spider.templates.template = learned
            memory.spider_closed(spider)
        finally:
            spider.release_pool()
            close_crawler_store(crawler)
        return started_from

    assert crawl(learned='//div[@class="article-body"]').template is None
    second = crawl(learned=None)
    assert second.template == '//div[@class="article-body"]'
    assert second.plan() == ('//div[@class="article-body"]', True)  # its first page checks it


def test_on_the_demo_corpus_a_template_reads_what_trafilatura_reads() -> None:
    """Real articles (the demo corpus: zero-width spaces, "Источник: <URL>" lines, Kazakh
    and Russian): each page through the template stores the text trafilatura's gives."""

    def stored(article: Article) -> str:
        fields = {"title": article.title, "text": article.text, "lead": article.lead}
        return clean_texts({**fields, "authors": []})[0]["text"]

    body = '//div[@class="article-body"]'
    for portal in load_corpus():
        for page in portal.articles:
            html = render_article(portal, page, portal.articles[:3])
            generic = extract_article(html, URL, find_template=True)
            assert generic.body_template in (body, None), page.path
            templated = extract_article(html, URL, body_template=body)
            assert templated.body_from == "template"
            assert stored(templated) == stored(generic), page.path
