"""Item pipelines (clean, dedup, store) and the incremental middleware, built from settings."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem, IgnoreRequest, NotConfigured
from scrapy.http import Request, Response
from scrapy.utils.test import get_crawler
from twisted.python.failure import Failure

from crawler.items import PressItem, content_hash, item_id
from crawler.urls import canonical_url
from pipelines.clean import (
    CleanPipeline,
    clean_item,
    clean_text,
    clean_texts,
    detect_language,
    drop_repeated_title,
    is_clean,
    localize_date,
)
from pipelines.dedup import DedupPipeline, SeenInRun, seen_before, stored_before
from pipelines.incremental import IncrementalMiddleware, KnownItems
from pipelines.store import open_store
from pipelines.store.base import StoreError
from pipelines.storing import StorePipeline, StoreThread, close_crawler_store, crawler_store

TEXT = "Премьер-министр провёл совещание по развитию Байконура.\nСтороны обсудили планы."


def press_item(url: str = "https://portal.test/news/a.html", text: str = TEXT, **kw: Any):
    return PressItem(url=url, source="vestnik", title="Совещание", text=text, **kw)


@pytest.fixture
def crawler(tmp_path: Path) -> Iterator[Crawler]:
    crawler = get_crawler(settings_dict={"PRESSWATCH_STORE": f"sqlite:///{tmp_path}/pw.db"})
    yield crawler
    close_crawler_store(crawler)


def stat(crawler: Crawler, key: str) -> Any:
    assert crawler.stats is not None
    return crawler.stats.get_value(key)


# --- clean ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Мини\u0306стр", "Минийстр".replace("ий", "й")),  # и + combining breve -> й (NFC)
        ("Мин\u200bфин", "Минфин"),  # zero-width space
        ("Мин\u00adфин\u2060", "Минфин"),  # soft hyphen, word joiner
        ("\ufeffБюджет", "Бюджет"),  # byte order mark
        ("слово\u00a0 \t слово  ", "слово слово"),  # no-break space and runs of spaces
        ("абзац\r\n\r\n\r\n\r\nабзац", "абзац\n\nабзац"),
        ("строка\nстрока", "строка\nстрока"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean
    assert is_clean(clean)
    assert clean_text(clean) == clean


def test_is_clean_says_yes_only_for_what_clean_text_leaves_unchanged() -> None:
    """Random texts over an alphabet of every kind of character `clean_text` treats."""
    alphabet = [
        "а",
        "b",
        "1",
        " ",
        " ",
        "\n",
        "\n",
        "\r",
        "\t",
        "\u00a0",
        "\u200b",
        "\u00ad",
        "\u0306",
        "\ufeff",
        "\x85",
        "\u2028",
        "ё",
    ]
    rng = random.Random(20191118)  # noqa: S311 - test data, not secrets
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        cleaned = clean_text(text)
        assert is_clean(text) == (cleaned == text), repr(text)
        assert is_clean(cleaned), repr(text)


@pytest.mark.parametrize(
    ("title", "text", "expected"),
    [
        ("Совещание в Астане", "Совещание в Астане\nТекст.", "Текст."),
        ("Совещание в Астане", "СОВЕЩАНИЕ в Астане.\n\nТекст.", "Текст."),
        ("Совещание в Астане", "Совещание в Астане прошло вчера.\nТекст.", None),
        ("", "Текст.", None),
    ],
)
def test_title_is_not_repeated_at_the_start(title: str, text: str, expected: str | None) -> None:
    assert drop_repeated_title(title, text) == (expected if expected is not None else text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019-11-18T10:05:00", "2019-11-18T10:05:00+06:00"),  # naive: read in Asia/Almaty
        ("2019-11-18T10:05:00+03:00", "2019-11-18T10:05:00+03:00"),  # the page's offset wins
        ("2019-11-18T04:05:00Z", "2019-11-18T04:05:00+00:00"),
        ("вчера", None),
        (None, None),
    ],
)
def test_localize_date(value: str | None, expected: str | None) -> None:
    assert localize_date(value, "Asia/Almaty") == expected


def test_language_is_detected_among_the_source_languages() -> None:
    kazakh = "Үкімет Байқоңыр ғарыш айлағын дамыту жоспарын бекітті, деп хабарлады министрлік."
    assert detect_language(kazakh, ["ru", "kk"]) == "kk"
    assert detect_language(TEXT, ["ru", "kk"]) == "ru"
    assert detect_language("anything", ["ru"]) == "ru"


def test_clean_item_reports_its_repairs() -> None:
    item = press_item(text="Совещание\n" + TEXT, published_at="2019-11-18T10:05:00")
    cleaned, repairs = clean_item(item.to_dict(), timezone="Asia/Almaty", languages=["ru", "kk"])
    assert cleaned["text"] == TEXT
    assert cleaned["published_at"] == "2019-11-18T10:05:00+06:00"
    assert cleaned["lang"] == "ru"
    assert cleaned["content_hash"] == content_hash(TEXT)
    assert sorted(repairs) == ["date_localized", "lang_detected", "title_removed"]


def test_clean_pipeline_updates_the_item_in_place(crawler: Crawler) -> None:
    pipeline = CleanPipeline.from_crawler(crawler)
    item = press_item(text=f"Совещание\n{TEXT}\u200b ", lang="ru")
    assert pipeline.process_item(item) is item
    assert item.text == TEXT
    assert item.content_hash == content_hash(TEXT)
    assert stat(crawler, "clean/items") == 1
    assert stat(crawler, "clean/title_removed") == 1


def test_clean_pipeline_flags_an_unreadable_date(crawler: Crawler) -> None:
    item = press_item(published_at="18 ноября")
    CleanPipeline.from_crawler(crawler).process_item(item)
    assert item.published_at is None
    assert "bad_date" in item.flags


@pytest.mark.parametrize(
    ("component", "setting"),
    [
        (CleanPipeline, "CLEAN_ENABLED"),
        (DedupPipeline, "DEDUP_ENABLED"),
        (StorePipeline, "STORE_ENABLED"),
        (IncrementalMiddleware, "INCREMENTAL_ENABLED"),
    ],
)
def test_components_can_be_switched_off(component: Any, setting: str) -> None:
    with pytest.raises(NotConfigured):
        component.from_crawler(get_crawler(settings_dict={setting: False}))


# --- dedup and store ---------------------------------------------------------------------


def test_seen_before_in_the_run() -> None:
    seen = SeenInRun()
    first = press_item().to_dict() | {"content_hash": content_hash(TEXT)}
    assert seen_before(first, seen) == "new"
    assert seen_before(first, seen) == "url"
    elsewhere = first | {"url": "https://other.test/copy", "id": ""}
    assert seen_before(elsewhere, seen) == "text"
    syndicated = first | {"url": "https://copier.test/copy", "id": "", "source": "copier"}
    assert seen_before(syndicated, seen) == "new"  # another site's copy is for stories
    different = elsewhere | {"text": "Другой текст.", "content_hash": content_hash("Другой текст.")}
    assert seen_before(different, seen) == "new"
    empty = press_item("https://other.test/empty", text="").to_dict()
    assert seen_before(empty, seen) == "new"
    assert seen_before(empty | {"url": "https://other.test/empty2", "id": ""}, seen) == "new"


def test_stored_before(crawler: Crawler) -> None:
    store = crawler_store(crawler)
    stored = press_item().to_dict() | {"content_hash": content_hash(TEXT)}
    store.add_item(stored)
    assert stored_before(stored, store) == "url"
    assert stored_before(stored | {"url": "https://b.test/x", "id": ""}, store) == "text"
    copied = stored | {"url": "https://b.test/x", "id": "", "source": "copier"}
    assert stored_before(copied, store) == "new"
    other = press_item("https://b.test/y", text="Иное.").to_dict()
    assert stored_before(other, store) == "new"


def test_dedup_drops_items_seen_in_the_run_or_stored(crawler: Crawler) -> None:
    store = crawler_store(crawler)
    stored = press_item("https://portal.test/news/stored.html", text="Уже сохранено.")
    stored.content_hash = content_hash(stored.text)
    store.add_item(stored.to_dict())
    dedup = DedupPipeline.from_crawler(crawler)

    fresh = press_item()
    fresh.content_hash = content_hash(fresh.text)
    assert asyncio.run(dedup.process_item(fresh)) is fresh
    with pytest.raises(DropItem, match="same URL") as dropped:
        asyncio.run(dedup.process_item(press_item()))
    assert dropped.value.log_level == "INFO"
    stored_again = press_item("https://portal.test/news/stored.html", text="Уже сохранено.")
    with pytest.raises(DropItem, match="same URL"):  # stored before this run
        asyncio.run(dedup.process_item(stored_again))
    copy = press_item("https://mirror.test/copy.html", text="Уже сохранено.")
    copy.content_hash = content_hash(copy.text)
    with pytest.raises(DropItem, match="same text"):
        asyncio.run(dedup.process_item(copy))
    assert (stat(crawler, "dedup/passed"), stat(crawler, "dedup/url")) == (1, 2)
    assert stat(crawler, "dedup/text") == 1


def test_store_pipeline_counts_new_and_existing(crawler: Crawler, tmp_path: Path) -> None:
    pipeline = StorePipeline.from_crawler(crawler)
    item = press_item()
    assert asyncio.run(pipeline.process_item(item)) is item
    asyncio.run(pipeline.process_item(press_item()))
    assert (stat(crawler, "store/new"), stat(crawler, "store/existing")) == (1, 1)
    close_crawler_store(crawler)
    store = open_store(f"sqlite:///{tmp_path}/pw.db")
    try:
        assert store.get_item(press_item().id)["title"] == "Совещание"
    finally:
        store.close()


# --- incremental ---------------------------------------------------------------------------


class CountingStore:
    """Counts known_ids round trips of a real store."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls = 0

    def known_ids(self, ids: Any) -> set[str]:
        self.calls += 1
        return self.store.known_ids(ids)


def article_request(url: str, batch: tuple[str, ...] = ()) -> Request:
    meta = {"presswatch_kind": "article", "presswatch_item_id": item_id(canonical_url(url))}
    return Request(url, meta=meta | {"presswatch_batch": batch})


def test_known_items_ask_once_per_batch(crawler: Crawler) -> None:
    store = crawler_store(crawler)
    store.add_item(press_item("https://portal.test/1").to_dict())
    counting = CountingStore(store)
    known = KnownItems(counting)  # type: ignore[arg-type]
    batch = [press_item(f"https://portal.test/{n}").id for n in range(1, 6)]
    assert [known.is_known(i, batch) for i in batch] == [True, False, False, False, False]
    assert counting.calls == 1


def test_stored_articles_are_not_fetched(crawler: Crawler) -> None:
    crawler_store(crawler).add_item(press_item("https://portal.test/news/1.html").to_dict())
    middleware = IncrementalMiddleware.from_crawler(crawler)
    urls = [f"https://portal.test/news/{n}.html" for n in (1, 2, 3)]
    batch = tuple(article_request(u).meta["presswatch_item_id"] for u in urls)
    with pytest.raises(IgnoreRequest):
        middleware.process_request(article_request(urls[0], batch))
    assert middleware.process_request(article_request(urls[1], batch)) is None
    assert middleware.process_request(article_request(urls[2], batch)) is None
    assert stat(crawler, "incremental/skipped") == 1
    assert stat(crawler, "incremental/lookups") == 1


def feed_request(url: str = "https://portal.test/rss.xml") -> Request:
    return Request(url, meta={"presswatch_kind": "feed"})


def test_feed_validators_are_sent_and_saved_after_a_clean_finish(crawler: Crawler) -> None:
    store = crawler_store(crawler)
    middleware = IncrementalMiddleware.from_crawler(crawler)
    first = feed_request()
    middleware.process_request(first)
    assert b"If-None-Match" not in first.headers
    headers = {"ETag": '"v1"', "Last-Modified": "Mon, 18 Nov 2019 04:05:00 GMT"}
    response = Response(first.url, status=200, headers=headers, request=first)
    assert middleware.process_response(first, response) is response
    assert store.get_validators(first.url) == {}  # not before the crawl finishes
    crawler.signals.send_catch_log(signals.spider_closed, spider=None, reason="finished")
    assert store.get_validators(first.url) == {
        "etag": '"v1"',
        "last_modified": "Mon, 18 Nov 2019 04:05:00 GMT",
    }

    again = IncrementalMiddleware(crawler, store)
    second = feed_request()
    again.process_request(second)
    assert second.headers[b"If-None-Match"] == b'"v1"'
    assert second.headers[b"If-Modified-Since"] == b"Mon, 18 Nov 2019 04:05:00 GMT"
    with pytest.raises(IgnoreRequest, match="not modified"):
        again.process_response(second, Response(second.url, status=304, request=second))
    assert stat(crawler, "incremental/not_modified") == 1


@pytest.mark.parametrize("failure", ["shutdown", "article_404", "item_not_stored"])
def test_validators_are_not_saved_after_a_broken_crawl(crawler: Crawler, failure: str) -> None:
    store = crawler_store(crawler)
    middleware = IncrementalMiddleware.from_crawler(crawler)
    request = feed_request()
    middleware.process_response(
        request, Response(request.url, status=200, headers={"ETag": '"v1"'}, request=request)
    )
    reason = "shutdown" if failure == "shutdown" else "finished"
    if failure == "article_404":
        article = article_request("https://portal.test/news/gone.html")
        middleware.process_response(article, Response(article.url, status=404, request=article))
    if failure == "item_not_stored":  # a pipeline raised: the store was down, say
        failure_info = Failure(StoreError("the store went away"))
        crawler.signals.send_catch_log(
            signals.item_error, item={}, response=None, spider=None, failure=failure_info
        )
    crawler.signals.send_catch_log(signals.spider_closed, spider=None, reason=reason)
    assert store.get_validators(request.url) == {}


def test_the_store_thread_runs_calls_in_order_and_hands_back_results_and_errors() -> None:
    thread = StoreThread()
    ran: list[int] = []

    def record(value: int) -> int:
        ran.append(value)
        if value == 3:
            raise ValueError("three")
        return value * 10

    async def main() -> list[Any]:
        futures = [thread.call(record, value) for value in range(6)]
        futures[4].cancel()  # its call still runs; nobody hears of it
        return await asyncio.gather(*futures, return_exceptions=True)

    results = asyncio.run(main())
    thread.shutdown()
    assert ran == [0, 1, 2, 3, 4, 5]
    assert results[:3] == [0, 10, 20]
    assert isinstance(results[3], ValueError)
    assert isinstance(results[4], asyncio.CancelledError)
    assert results[5] == 50


def test_text_cleaned_where_it_was_parsed_is_taken_as_it_is_and_a_stale_hash_is_not() -> None:
    raw = {
        "title": "Заголовок",
        "text": "Заголовок\nПервый  абзац.\u00ad",
        "lead": " Лид ",
        "authors": [],
    }
    cleaned, repairs = clean_texts(raw)
    assert cleaned["text"] == "Первый абзац."
    assert repairs == ["title_removed"]
    assert clean_texts(cleaned) == (cleaned, [])  # the worker's output, its hash matching

    edited = {**cleaned, "text": cleaned["text"] + "  Дописано."}  # changed after hashing
    again, _ = clean_texts(edited)
    assert again["text"] == "Первый абзац. Дописано."
    assert again["content_hash"] == content_hash(again["text"])
