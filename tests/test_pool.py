"""The extraction pool: one per process, shared by every crawler in it."""

from __future__ import annotations

import asyncio

import pytest

from crawler.pool import ExtractionPool, ParseOptions

PAGE = (
    "<html><head><title>Минфин</title></head><body><article><h1>Минфин</h1>"
    + "<p>Министерство финансов сообщило о новом плане развития отрасли.</p>" * 5
    + "</article></body></html>"
).encode()


@pytest.fixture(autouse=True)
def no_pool_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    # Spiders built by other tests in this worker may still hold the process's pool.
    monkeypatch.setattr(ExtractionPool, "_shared", None)
    monkeypatch.setattr(ExtractionPool, "_users", 0)


def test_crawlers_in_one_process_share_one_pool() -> None:
    first = ExtractionPool.acquire(1)
    second = ExtractionPool.acquire(4)
    assert first is second
    page = asyncio.run(first.parse(PAGE, "utf-8", "https://minfin.example/a", ParseOptions()))
    assert page.title == "Минфин"
    first.release()
    assert ExtractionPool.acquire(1) is second, "still in use by the second crawler"
    second.release()
    second.release()
    assert not second.started, "the last user shuts the workers down"
    assert ExtractionPool.acquire(1) is not second
    ExtractionPool._shared.release()  # type: ignore[union-attr]
