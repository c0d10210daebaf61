"""`presswatch web` through Starlette's TestClient: pages, filters, exports, and the guards
(escaping, CSP and other headers, Host allowlist, read-only methods, the token on every
route), on SQLite and Redis; the command itself through the installed entry point."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from contextlib import closing
from typing import TYPE_CHECKING
from urllib.request import Request, urlopen

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from pipelines.store import open_store
from scheduler.rules import load_rules
from scheduler.web import create_app
from scheduler.web.app import FAILED_TRIES, SECURITY_HEADERS
from scheduler.web.views import day_windows, safe_href, timeline
from tests.entry_point import kill_group, presswatch, start_presswatch
from tests.stories_data import AQSU, CARAVAN, PRIME, demo_sources
from tests.waiting import wait_for
from tests.web_data import IMG_TITLE, JS_URL, SCRIPT_TITLE, TOKEN, WebStore, fill_web_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from starlette.applications import Starlette

PAYLOAD_MARKERS = ("<script>window.__xss", "<img src=x", 'href="javascript:', "<b>")
CSP = "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'"
OPEN_ROUTES = ("/static",)  # the allowlist: served without the token


@pytest.fixture
def web_store(store_url: str) -> WebStore:
    return fill_web_store(store_url)


def build_app(web_store: WebStore, token: str | None = None) -> Iterator[Starlette]:
    store = open_store(web_store.url, create=False)
    try:
        yield create_app(
            store,
            token=token,
            allowed_hosts=["testserver"],
            sources=demo_sources(),
            rules=load_rules(None, resolve_secrets=False),
        )
    finally:
        store.close()


@pytest.fixture
def client(web_store: WebStore) -> Iterator[TestClient]:
    for app in build_app(web_store):
        with TestClient(app) as test_client:
            yield test_client


@pytest.fixture
def guarded(web_store: WebStore) -> Iterator[TestClient]:
    for app in build_app(web_store, token=TOKEN):
        with TestClient(app) as test_client:
            yield test_client


def basic(token: str, user: str = "reviewer") -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


def route_paths(app: Starlette, web_store: WebStore) -> list[str]:
    """One concrete path for every route of the app (and its mounts), real ids filled in."""
    samples = {
        "story_id": CARAVAN,
        "item_id": web_store.script_item,
        "name": "caravan",
        "fmt": "csv",
        "path": "style.css",
    }
    paths = []
    for route in app.routes:
        assert isinstance(route, Route | Mount), f"unexpected route type {route!r}"
        template = route.path if isinstance(route, Route) else route.path + "/{path}"
        paths.append(re.sub(r"{(\w+)(:\w+)?}", lambda m: samples[m.group(1)], template))
    return paths


def assert_no_payload(body: str) -> None:
    for marker in PAYLOAD_MARKERS:
        assert marker not in body, f"unescaped {marker!r} in the page"


# --- the guards ----------------------------------------------------------------------------


def test_every_route_but_the_allowlist_needs_the_token(
    guarded: TestClient, web_store: WebStore
) -> None:
    paths = route_paths(guarded.app, web_store)
    assert len(paths) >= 10
    for path in paths:
        if path.startswith(OPEN_ROUTES):
            assert guarded.get(path).status_code == 200, path
            continue
        for headers in ({}, basic("wrong-token-0123456789"), {"authorization": "Bearer nope"}):
            refused = guarded.get(path, headers=headers, follow_redirects=False)
            assert refused.status_code == 401, (path, headers)
            assert "Basic" in refused.headers["www-authenticate"]
            assert "Хроника" not in refused.text
        guarded.cookies.clear()
        allowed = guarded.get(path, headers=basic(TOKEN), follow_redirects=False)
        assert allowed.status_code in {200, 302}, path
        bearer = guarded.get(path, headers={"authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200, path


def test_wrong_tokens_are_limited_per_client(guarded: TestClient) -> None:
    for _ in range(FAILED_TRIES):
        assert guarded.get("/stories", headers=basic("wrong-token-0123456789")).status_code == 401
    assert guarded.get("/stories", headers=basic(TOKEN)).status_code == 429
    assert guarded.get("/static/style.css").status_code == 200


def test_security_headers_on_every_kind_of_response(client: TestClient) -> None:
    responses = {
        "page": client.get("/stories"),
        "not found": client.get("/stories/no-such-story"),
        "bad request": client.get("/items?since=yesterday"),
        "static": client.get("/static/style.css"),
        "method": client.post("/stories"),
    }
    for kind, response in responses.items():
        assert response.headers["content-security-policy"] == CSP, kind
        assert response.headers["x-content-type-options"] == "nosniff", kind
        assert response.headers["x-frame-options"] == "DENY", kind
        assert "server" not in response.headers, kind
    assert set(SECURITY_HEADERS) <= set(responses["page"].headers)


def test_read_only_every_route_refuses_other_methods(
    client: TestClient, web_store: WebStore
) -> None:
    for path in route_paths(client.app, web_store):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            response = client.request(method, path)
            assert response.status_code == 405, (method, path)


def test_an_unknown_host_header_is_refused(client: TestClient) -> None:
    rebinding = client.get("/stories", headers={"host": "attacker.example"})
    assert rebinding.status_code == 400
    assert client.get("/stories").status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/static/..%2f..%2fapp.py", "/static/../app.py", "/static/%2e%2e/templates/base.html"],
)
def test_static_files_do_not_reach_outside_their_folder(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "create_app" not in response.text


def test_hostile_titles_are_shown_as_text_everywhere(
    client: TestClient, web_store: WebStore
) -> None:
    story_of_script = client.get(f"/stories/{web_store.script_item}")
    pages = {
        "list": client.get("/stories"),
        "story": story_of_script,
        "items": client.get("/items"),
        "search": client.get("/items", params={"q": "Хроника"}),
        "item": client.get(f"/items/{web_store.script_item}"),
        "img item": client.get(f"/items/{web_store.img_item}"),
        "source": client.get("/sources/hostile"),
        "alerts": client.get("/alerts"),
        "error": client.get("/items/<script>window.__xss=1</script>"),
    }
    for name, response in pages.items():
        assert response.status_code in {200, 404}, name
        assert_no_payload(response.text)
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt; Хроника" in pages["list"].text
    assert "&#34;&gt;&lt;img src=x onerror=window.__xss=1&gt;" in pages["items"].text
    assert "&lt;script&gt;" in pages["error"].text
    # The javascript: URL is shown, never a link.
    assert JS_URL in pages["img item"].text
    assert "Байтерек &lt;b&gt;на&lt;/b&gt; Байконуре" in pages["alerts"].text


def test_only_http_urls_become_links() -> None:
    assert safe_href("https://primeminister.kz/ru/news/1") == "https://primeminister.kz/ru/news/1"
    assert safe_href("HTTP://example.kz/") == "HTTP://example.kz/"
    for bad in (JS_URL, " javascript:x", "data:text/html,<b>", "//evil.example/", "/relative", ""):
        assert safe_href(bad) is None, bad


# --- the pages -----------------------------------------------------------------------------


def test_home_leads_to_the_stories(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "/stories"


def test_stories_list_newest_first_with_links(client: TestClient) -> None:
    page = client.get("/stories").text
    hostile = page.index("Хроника")
    baikonur = page.index(f'href="/stories/{CARAVAN}"') if CARAVAN in page else None
    story_ids = re.findall(r'href="/stories/([^"]+)"', page)
    assert story_ids, page
    assert baikonur is None or hostile < baikonur  # 2019-11-20 before 2019-07-09
    assert 'href="/sources/primeminister"' in page
    assert "unattributed" in page  # the aqsu copy


@pytest.mark.parametrize(
    ("params", "present", "absent"),
    [
        ({"source": "aqsu"}, ["Рогозин"], ["Хроника"]),
        ({"lang": "ru", "source": "hostile"}, ["Хроника", "Сводка"], ["Рогозин"]),
        # an inflected form: "Байконуре" in a title, "Байконыра" in another
        ({"q": "Байконур"}, ["Рогозин"], ["Хроника"]),
        ({"until": "2019-08-01"}, ["Рогозин"], ["Хроника"]),
        ({"since": "2019-11-19"}, ["Хроника"], ["Рогозин"]),
    ],
)
def test_stories_filters(
    client: TestClient, params: dict[str, str], present: list[str], absent: list[str]
) -> None:
    response = client.get("/stories", params=params)
    assert response.status_code == 200
    for text in present:
        assert text in response.text, (params, text)
    for text in absent:
        assert text not in response.text, (params, text)


def test_stories_filter_by_rule_uses_the_rules_file(client: TestClient) -> None:
    rules = load_rules(None, resolve_secrets=False).rules
    response = client.get("/stories", params={"rule": rules[0].name})
    assert response.status_code == 200
    unknown = client.get("/stories", params={"rule": "no-such-rule"})
    assert unknown.status_code == 400
    assert "no rule named &#39;no-such-rule&#39;" in unknown.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "yesterday"}, "since &#39;yesterday&#39; is not an ISO 8601 date"),
        ({"page": "0"}, "page &#39;0&#39; should be a number"),
        ({"page": "-1"}, "should be a number from 1"),
        ({"q": "!!!"}, "has no letter or digit"),
    ],
)
def test_bad_filters_say_what_is_wrong(
    client: TestClient, query: dict[str, str], message: str
) -> None:
    response = client.get("/stories", params=query)
    assert response.status_code == 400
    assert message in response.text


def test_story_page_timeline_credits_and_flags(client: TestClient) -> None:
    response = client.get(f"/stories/{AQSU}")  # any member's id finds its story
    assert response.status_code == 200
    page = response.text
    assert '<svg class="timeline"' in page
    assert page.count("<circle") == 4  # the original and three copies
    assert "dot-original" in page
    assert "dot-unattributed" in page
    assert re.search(r"credits <a[^>]*>primeminister</a>: «со\sссылкой на\sпресс-службу", page)
    assert "+1 h 15 min" in page  # caravan, 75 minutes after the original
    assert f'href="/items/{PRIME}"' in page
    assert 'href="https://primeminister.kz/ru/news/' in page


def test_story_page_of_an_unknown_id_is_404(client: TestClient) -> None:
    response = client.get("/stories/nothing/here")
    assert response.status_code == 404
    assert "no story or item &#39;nothing/here&#39; is linked" in response.text


def test_source_page_items_per_day_credit_runs_and_health(client: TestClient) -> None:
    page = client.get("/sources/caravan").text
    assert page.count('<rect class="bar"') == 30
    assert "<title>2019-07-09: 1</title>" in page
    assert "failing" in page
    assert "3 requests failed: &lt;timeout&gt;" in page
    assert "Caravan" in page or "caravan" in page
    assert "Credits most: primeminister.kz (1)" in page  # sources as domains (issue 13)
    assert client.get("/sources/nobody").status_code == 404
    listing = client.get("/sources").text
    assert 'href="/sources/caravan"' in listing


def test_sources_page_lists_configured_sources_and_every_source_with_items(
    client: TestClient, web_store: WebStore
) -> None:
    listing = client.get("/sources").text
    rows = re.findall(r'<tr[^>]*>\s*<td><a class="source" href="/sources/([^"]+)"', listing)
    # Configured ones first, in the sources file's order, items or not (ria has none).
    assert rows[: len(demo_sources())] == [source.name for source in demo_sources()]
    # Then the store's other sources: the hostile items' source is in no sources file.
    assert rows[len(demo_sources()) :] == ["hostile"]
    assert "not in the sources file" in listing
    assert client.get("/sources/hostile").status_code == 200
    # Each row shows its item count, as the store counts them.
    counts = dict(
        re.findall(r'href="/sources/([^"]+)".*?<td class="num">(\d+)</td>', listing, re.S)
    )
    with closing(open_store(web_store.url, create=False)) as store:
        assert counts == {name: str(store.count_items(name)) for name in rows}
    assert sum(map(int, counts.values())) > 0


def test_alerts_page_shows_each_channel_delivery(client: TestClient, web_store: WebStore) -> None:
    page = client.get("/alerts").text
    mail = re.search(r"mail[^<]*:\s*<strong>(\w+)</strong>", page)
    hook = re.search(r"hook[^<]*:\s*<strong>(\w+)</strong>", page)
    assert mail
    assert mail.group(1) == "sent"
    assert hook
    assert hook.group(1) == "failed"
    assert "&lt;b&gt;HTTP 500&lt;/b&gt;" in page
    assert f'href="/stories/{CARAVAN}"' in page or 'href="/stories/' in page


def test_items_search_and_item_page(client: TestClient, web_store: WebStore) -> None:
    found = client.get("/items", params={"q": "Рогозиным"}).text  # an inflected form
    assert 'href="/items/' in found
    assert "Рогозин" in found
    assert "Хроника" not in found
    item = client.get(f"/items/{CARAVAN}").text
    assert "crediting primeminister" in item
    assert "https://caravan.kz/" in item or "caravan" in item


def test_exports_carry_provenance(client: TestClient) -> None:
    jsonl = client.get("/export.jsonl", params={"source": "caravan"})
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in jsonl.headers["content-disposition"]
    rows = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [row["id"] for row in rows] == [CARAVAN]
    assert rows[0]["role"] == "copy"
    assert rows[0]["original_source"] == "primeminister.kz"
    table = client.get("/export.csv", params={"q": "Хроника"})
    records = list(csv.DictReader(io.StringIO(table.text)))
    assert [r["title"] for r in records] == [SCRIPT_TITLE]
    assert client.get("/export.xml").status_code == 404
    everything = client.get("/export.csv").text
    assert len(list(csv.DictReader(io.StringIO(everything)))) == 8
    assert IMG_TITLE in everything  # a data file, not a page: the title as it is


def test_views_timeline_and_days() -> None:
    from zoneinfo import ZoneInfo

    from pipelines.store.keys import parse_instant

    record = {
        "members": [
            {"source": "a", "item": "1", "role": "original", "lag_seconds": 0.0, "cites": []},
            {"source": "b", "item": "2", "role": "copy", "lag_seconds": 600.0, "cites": [{}]},
            {"source": "c", "item": "3", "role": "copy", "lag_seconds": None, "cites": []},
        ]
    }
    chart = timeline(record)
    assert [row.kind for row in chart.rows] == ["original", "credited", "unknown"]
    assert chart.rows[0].x == chart.left
    assert chart.rows[1].x > chart.rows[0].x
    assert [label for _, label in chart.ticks] == ["+0 s", "+5 min", "+10 min"]
    days = day_windows(parse_instant("2019-11-18T20:00:00Z"), 2, ZoneInfo("Asia/Almaty"))
    # 20:00 UTC is already the 19th in Almaty
    assert days == [
        ("2019-11-18", "2019-11-18T00:00:00+06:00", "2019-11-19T00:00:00+06:00"),
        ("2019-11-19", "2019-11-19T00:00:00+06:00", "2019-11-20T00:00:00+06:00"),
    ]


# --- the command ---------------------------------------------------------------------------


def served_url(log: Path) -> str:
    def url() -> str | None:
        found = re.search(r"http://[\d.]+:\d+/", log.read_text("utf-8", "replace"))
        return found.group(0) if found else None

    return wait_for(url, lambda: f"the dashboard's URL in its output: {log.read_text()!r}")


def fetch(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urlopen(Request(url, headers=headers or {}), timeout=30) as response:  # noqa: S310 -- our own server on loopback
            return response.status
    except OSError as exc:
        return getattr(exc, "code", 0)


@pytest.mark.parametrize("env", [{}, {"PRESSWATCH_WEB_TOKEN": ""}])
def test_command_refuses_another_address_without_a_token(
    tmp_path: Path, env: dict[str, str]
) -> None:
    (tmp_path / "pw.db").touch()
    result = presswatch(
        "web", "--host", "127.0.0.2", "--port", "0", "--store", f"sqlite:///{tmp_path}/pw.db",
        env={"PRESSWATCH_WEB_TOKEN": "", **env},
    )  # fmt: skip
    assert result.returncode == 2
    assert "refusing to serve the dashboard on 127.0.0.2 without a token" in result.stderr
    assert "PRESSWATCH_WEB_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_command_refuses_a_short_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("short\n")
    result = presswatch("web", "--host", "127.0.0.2", "--token-file", str(token_file))
    assert result.returncode == 2
    assert "the token has 5 characters; use at least 16" in result.stderr
    assert "Traceback" not in result.stderr


def test_command_says_it_indexes_words_before_it_listens(tmp_path: Path) -> None:
    # SQLite's word index takes in the items written since its last search at the next one,
    # which `presswatch web` runs before it listens: it says so, not a silent wait.
    store_url = fill_web_store(f"sqlite:///{tmp_path}/pw.db").url
    log = tmp_path / "web.log"
    process = start_presswatch(
        "web", "--port", "0", "--store", store_url, log=log, env={"PRESSWATCH_WEB_TOKEN": ""}
    )
    try:
        served_url(log)
    finally:
        kill_group(process)
    said = log.read_text()
    assert re.search(r"Indexing the words of \d+ items for searches", said)
    assert said.index("Indexing the words") < said.index("Presswatch web on")


def test_command_refuses_a_missing_store(tmp_path: Path) -> None:
    result = presswatch("web", "--port", "0", "--store", f"sqlite:///{tmp_path}/none.db")
    assert result.returncode == 2
    assert "no SQLite store at" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("source", ["env", "file"])
def test_command_on_another_address_asks_for_the_token(tmp_path: Path, source: str) -> None:
    (tmp_path / "store").mkdir()
    url = fill_web_store(f"sqlite:///{tmp_path}/store/pw.db").url
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    args = ["web", "--host", "127.0.0.2", "--port", "0", "--store", url]
    env = {"PRESSWATCH_WEB_TOKEN": TOKEN if source == "env" else ""}
    if source == "file":
        args += ["--token-file", str(token_file)]
    log = tmp_path / "web.log"
    process = start_presswatch(*args, log=log, env=env)
    try:
        base = served_url(log)
        assert base.startswith("http://127.0.0.2:")
        assert "(token required)" in log.read_text()
        assert fetch(base + "stories") == 401
        assert fetch(base + "stories", basic("wrong-token-0123456789")) == 401
        assert fetch(base + "stories", basic(TOKEN)) == 200
        assert fetch(base + "static/style.css") == 200
    finally:
        kill_group(process)
    assert "Traceback" not in log.read_text()
