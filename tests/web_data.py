"""A store for the dashboard tests: the Baikonur story and two lone demo articles linked as a
crawl would, two items with hostile titles, an alert with a sent and a failed delivery, a
crawl run and a health state."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass

from crawler.items import PressItem
from pipelines.store import open_store
from pipelines.store.outbox import Outcome, after_attempt
from pipelines.stories import StoryLinker
from tests.stories_data import AQSU, CARAVAN, PRIME, STEPPE, demo_sources
from tests.test_cli_stories import fill_store, lone_keys

SCRIPT_TITLE = "<script>window.__xss=1</script> Хроника"
IMG_TITLE = '"><img src=x onerror=window.__xss=1> Сводка'
JS_URL = "javascript:window.__xss=1"
TOKEN = "test-token-0123456789abcdef"  # noqa: S105 -- the tests' own token


@dataclass(frozen=True)
class WebStore:
    url: str
    script_item: str
    img_item: str
    alert: str


def hostile_item(slug: str, title: str, url: str | None = None) -> dict:
    item = PressItem(
        url=f"https://hostile.example/news/{slug}",
        source="hostile",
        title=title,
        text=f"{title}\n\nТекст о погоде в Актобе, {slug}: ветер и снег до вечера.",
        published_at="2019-11-20T09:00:00+06:00",
        fetched_at="2019-11-20T09:05:00+06:00",
        lang="ru",
    ).to_dict()
    # A URL no crawl would keep, but a store written by anything else might hold.
    return {**item, "url": url} if url else item


def fill_web_store(store_url: str) -> WebStore:
    fill_store(store_url, (CARAVAN, AQSU, PRIME, STEPPE, *lone_keys()))
    script_item = hostile_item("script", SCRIPT_TITLE)
    img_item = hostile_item("img", IMG_TITLE, url=JS_URL)
    store = open_store(store_url)
    try:
        with closing(store.story_index()) as index:
            linker = StoryLinker(index, demo_sources())
            for item in (script_item, img_item):
                store.add_item(item)
                linker.link(item)
            story = index.story_of(CARAVAN)
        alert = {
            "id": "baikonur-1",
            "kind": "rule",
            "rule": "baikonur",
            "story": story,
            "channels": ["mail", "hook"],
            "copies": 3,
            "items": [CARAVAN],
            "message": {"title": "Байтерек <b>на</b> Байконуре", "terms": ["байконур"]},
            "digest": None,
            "created_at": "2019-07-09T12:00:00+00:00",
            "updated_at": "2019-07-09T12:00:00+00:00",
        }
        with closing(store.outbox()) as outbox:
            outbox.record(alert, [f"baikonur|{CARAVAN}"], now=1562673600.0)
            for claim in outbox.claim("test", now=1562673601.0, lease_s=60, limit=10):
                ok = claim.delivery["channel"] == "mail"
                outcome = Outcome(ok=ok, error=None if ok else "<b>HTTP 500</b>", permanent=True)
                outbox.settle(after_attempt(claim.delivery, outcome, 1562673602.0), "test")
        store.add_run(
            {
                "id": "run-1",
                "source": "caravan",
                "started_at": "2019-07-09T12:00:00+00:00",
                "ended_at": "2019-07-09T12:01:00+00:00",
                "status": "partial",
                "problems": ["3 requests failed: <timeout>"],
                "stats": {"store/new": 1},
            }
        )
        store.set_state(
            "health/caravan",
            {"state": "failing", "since": "2019-07-09T12:00:00+00:00", "reasons": ["5xx"]},
        )
    finally:
        store.close()
    return WebStore(store_url, script_item["id"], img_item["id"], alert["id"])
