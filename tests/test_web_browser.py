"""The dashboard in the real Chromium (Playwright): click from the story list to a story to
a source; hostile titles shown as text with no script run; the token asked for when the
dashboard is served off 127.0.0.1. `presswatch web` runs through the installed entry point."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from crawler.browser import SYSTEM_CHROMIUM
from crawler.settings import BROWSER_ARGS
from tests.entry_point import kill_group, start_presswatch
from tests.stories_data import CARAVAN
from tests.test_web import served_url
from tests.web_data import IMG_TITLE, JS_URL, SCRIPT_TITLE, TOKEN, fill_web_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=SYSTEM_CHROMIUM, args=BROWSER_ARGS)
        yield launched
        launched.close()


def serve(
    tmp_path: Path, store_url: str, *args: str, env: dict[str, str] | None = None
) -> Iterator[str]:
    log = tmp_path / "web.log"
    process = start_presswatch("web", "--port", "0", "--store", store_url, *args, log=log, env=env)
    try:
        yield served_url(log)
    finally:
        kill_group(process)
    assert "Traceback" not in log.read_text()


@pytest.fixture
def dashboard(tmp_path: Path, store_url: str) -> Iterator[str]:
    fill_web_store(store_url)
    yield from serve(tmp_path, store_url, env={"PRESSWATCH_WEB_TOKEN": ""})


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page that records every dialog and every script error (none may happen)."""
    context = browser.new_context()
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield opened
    context.close()
    assert dialogs == []


def no_script_ran(page: Page) -> None:
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_click_through_stories_story_and_source(page: Page, dashboard: str) -> None:
    page.goto(dashboard)
    assert page.url == dashboard + "stories"
    page.locator("table.stories a[href^='/stories/']", has_text="Рогозиным").click()
    page.wait_for_url("**/stories/**")
    assert "Рогозиным" in page.inner_text("h1")
    assert page.locator(f'a[href="/items/{CARAVAN}"]').count() == 1
    assert page.locator("svg.timeline circle").count() == 4
    assert page.locator(".member-unattributed").count() == 1
    page.click('tr.member-unattributed a.source[href="/sources/aqsu"]')
    page.wait_for_url("**/sources/aqsu")
    assert page.inner_text("h1").startswith("aqsu")
    assert page.locator("svg.bars rect.bar").count() == 30
    # the stylesheet loaded under the CSP: the nav is a flex row
    assert page.evaluate("getComputedStyle(document.querySelector('header nav')).display") == "flex"
    no_script_ran(page)


def test_hostile_titles_are_text_and_run_nothing(page: Page, dashboard: str) -> None:
    page.goto(dashboard + "stories")
    titles = page.locator("table.stories td a[href^='/stories/']").all_inner_texts()
    assert SCRIPT_TITLE in titles
    assert IMG_TITLE in titles
    assert page.locator("main img").count() == 0
    assert page.locator("main script").count() == 0
    page.get_by_text(SCRIPT_TITLE).first.click()
    page.wait_for_url("**/stories/**")
    assert page.inner_text("h1") == SCRIPT_TITLE
    no_script_ran(page)
    page.goto(dashboard + "items")
    page.get_by_text(IMG_TITLE).click()
    page.wait_for_url("**/items/**")
    assert page.inner_text("h1") == IMG_TITLE
    assert page.locator(f'a[href="{JS_URL}"]').count() == 0
    assert page.locator(".unsafe-url").inner_text() == JS_URL
    page.goto(dashboard + "items?q=" + "Хроника")
    assert page.locator("table.items").inner_text().count(SCRIPT_TITLE) == 1
    no_script_ran(page)


def test_off_loopback_asks_for_the_token(tmp_path: Path, browser: Browser) -> None:
    (tmp_path / "store").mkdir()
    store_url = fill_web_store(f"sqlite:///{tmp_path}/store/pw.db").url
    env = {"PRESSWATCH_WEB_TOKEN": TOKEN}
    for url in serve(tmp_path, store_url, "--host", "127.0.0.2", env=env):
        anonymous = browser.new_context()
        # Headless Chromium cannot show the password prompt: the 401 ends the navigation.
        with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
            anonymous.new_page().goto(url + "stories")
        assert anonymous.request.get(url + "stories").status == 401
        anonymous.close()
        reviewer = browser.new_context(http_credentials={"username": "reviewer", "password": TOKEN})
        shown = reviewer.new_page()
        response = shown.goto(url + "stories")
        assert response is not None
        assert response.status == 200
        assert shown.locator("table.stories").count() == 1
        reviewer.close()
