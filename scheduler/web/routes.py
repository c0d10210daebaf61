"""The dashboard's pages: stories, a story's timeline, sources, alerts, items and exports.

Every route is a GET that reads the store through its verbs, a page (`PAGE_SIZE` rows) at a
time; the templates beside this module render what each returns, escaped.
"""

from __future__ import annotations

import functools
import io
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from pipelines.store import ItemQuery
from pipelines.store.base import StoreError
from pipelines.store.keys import sort_instant
from scheduler.export import WRITERS, ProvenanceLookup
from scheduler.story_view import StoryView, copies, find_story, first_seen, human_lag, sources_of
from scheduler.web.app import dashboard_of
from scheduler.web.views import (
    PAGE_SIZE,
    BadRequestError,
    Filters,
    day_bars,
    day_windows,
    member_kind,
    read_filters,
    safe_href,
    timeline,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from starlette.requests import Request

    from pipelines.story_index import StoryIndex
    from scheduler.matcher import TextSearch
    from scheduler.web.app import Dashboard

LANGUAGES = ("ru", "kk", "en")
STORY_FILTERS = ("source", "lang", "rule", "q", "since", "until")
ITEM_FILTERS = ("source", "lang", "q", "since", "until")
# A filtered story list reads matching items newest first and shows their stories: it
# stops after this many items, so a filter that matches most of the store stays quick.
SCAN_ITEMS = 5000
SCAN_BATCH = 200
SOURCE_DAYS = 30
SOURCE_RECENT = 200  # the newest items of a source whose copies and credits are counted
EXPORT_BATCH = 500
EXCERPT = 1500  # characters of the original's text shown on a story page

Context = dict[str, Any]


def render(request: Request, template: str, context: Context, status: int = 200) -> Response:
    templates = request.app.state.templates
    return templates.TemplateResponse(request, template, context, status_code=status)


def page(template: str) -> Callable[[Callable[[Request, Dashboard], Context]], Callable]:
    """A route that reads the store, one request at a time, and renders `template`."""

    def wrap(read: Callable[[Request, Dashboard], Context]) -> Callable[[Request], Response]:
        @functools.wraps(read)
        def endpoint(request: Request) -> Response:
            dashboard = dashboard_of(request.app)
            with dashboard.lock:
                context = read(request, dashboard)
            return render(request, template, context)

        return endpoint

    return wrap


# --- filters -------------------------------------------------------------------------------


def words_search(filters: Filters) -> TextSearch | None:
    """The search for the words (`q`, inflected forms), or None; 400 if they cannot be."""
    from scheduler.matcher import text_search

    if not filters.q:
        return None
    try:
        return text_search(filters.q)
    except ValueError as exc:
        raise BadRequestError(str(exc).replace("--text", "q")) from None


def item_test(
    dashboard: Dashboard, filters: Filters, search: TextSearch | None
) -> Callable[[dict[str, Any]], bool] | None:
    """The test of an item for the words (`search`) and the rule, or None."""
    from scheduler.matcher import compile_rules, match_item

    tests: list[Callable[[dict[str, Any]], bool]] = [search] if search else []
    if filters.rule:
        rules = dashboard.rules.rules if dashboard.rules else []
        rule = next((r for r in rules if r.name == filters.rule), None)
        if rule is None:
            known = ", ".join(r.name for r in rules) or "none: no rules file is loaded"
            raise BadRequestError(f"no rule named {filters.rule!r} (rules: {known})")
        compiled = compile_rules([rule])
        tests.append(lambda item: bool(match_item(compiled, item)["rules"]))
    if not tests:
        return None
    return lambda item: all(test(item) for test in tests)


def item_query(dashboard: Dashboard, filters: Filters) -> ItemQuery:
    search = words_search(filters)
    return ItemQuery(
        source=filters.source,
        lang=filters.lang,
        since=filters.since,
        until=filters.until,
        keep=item_test(dashboard, filters, search),
        word_prefixes=search.prefixes if search else (),
    )


def choices(dashboard: Dashboard) -> Context:
    """What the filter forms offer."""
    return {
        "source_names": [s.name for s in dashboard.sources],
        "languages": LANGUAGES,
        "rule_names": [r.name for r in dashboard.rules.rules] if dashboard.rules else [],
    }


# --- stories -------------------------------------------------------------------------------


def views_of(index: StoryIndex, records: list[dict[str, Any]]) -> list[StoryView]:
    """Views of `records` with every member's summary fetched in one round trip."""
    ids = [member["item"] for record in records for member in record["members"]]
    summaries = index.get_items(ids) if ids else {}
    return [StoryView(record, summaries) for record in records]


def story_row(view: StoryView, dashboard: Dashboard) -> Context:
    record = view.record
    kinds = Counter(member_kind(m) for m in record["members"])
    return {
        "id": record["id"],
        "title": view.title(),
        "first_seen": first_seen(record, dashboard.zone),
        "original": view.original_label(),
        "original_source": record["original"]["source"],
        "copies": copies(record),
        "others": [s for s in sources_of(record) if s != record["original"]["source"]],
        "unattributed": kinds["unattributed"],
        "uncredited": kinds["uncredited"],
    }


def stories_of_items(dashboard: Dashboard, filters: Filters) -> tuple[list[dict], bool, bool]:
    """The page of stories that hold an item matching `filters`, ordered by their newest
    matching item; whether more follow; whether the scan stopped at `SCAN_ITEMS`."""
    query = item_query(dashboard, filters)
    wanted = filters.offset + PAGE_SIZE + 1
    order: list[str] = []
    offset = 0
    while len(order) < wanted and offset < SCAN_ITEMS:
        batch = dashboard.store.items(replace(query, limit=SCAN_BATCH, offset=offset))
        stories_of = dashboard.index.stories_of(item["id"] for item in batch)
        for item in batch:
            story_id = stories_of.get(item["id"])
            if story_id is not None and story_id not in order:
                order.append(story_id)
        if len(batch) < SCAN_BATCH:
            break
        offset += SCAN_BATCH
    shown = order[filters.offset : filters.offset + PAGE_SIZE]
    found = dashboard.index.get_stories(shown)
    records: list[dict[str, Any]] = []
    for story_id in shown:
        record = found.get(story_id)
        if record is not None and all(r["id"] != record["id"] for r in records):
            records.append(record)
    return records, len(order) > filters.offset + PAGE_SIZE, offset >= SCAN_ITEMS


@page("stories.html")
def stories(request: Request, dashboard: Dashboard) -> Context:
    filters = read_filters(request.query_params, STORY_FILTERS)
    capped = False
    if filters.any:
        records, more, capped = stories_of_items(dashboard, filters)
    else:
        records = dashboard.index.latest_stories(limit=PAGE_SIZE + 1, offset=filters.offset)
        more = len(records) > PAGE_SIZE
        records = records[:PAGE_SIZE]
    rows = [story_row(view, dashboard) for view in views_of(dashboard.index, records)]
    return {
        "nav": "stories",
        "filters": filters,
        "rows": rows,
        "more": more,
        "capped": capped,
        "scan_items": SCAN_ITEMS,
        **choices(dashboard),
    }


def credits(member: dict[str, Any]) -> list[Context]:
    """Whom a member credits: each cited source (or the name it uses) with the phrase."""
    return [
        {"source": cite.get("source"), "name": cite.get("name"), "phrase": cite.get("phrase")}
        for cite in member.get("cites") or []
    ]


@page("story.html")
def story(request: Request, dashboard: Dashboard) -> Context:
    wanted = request.path_params["story_id"]
    record = find_story(dashboard.index, wanted)
    if record is None:
        raise HTTPException(404, f"no story or item {wanted!r} is linked")
    view = StoryView.load(dashboard.index, record)
    original = record["original"]
    original_item = dashboard.store.get_item(original["item"]) if original["item"] else None
    members = []
    for member in record["members"]:
        is_original = member["role"] == "original"
        members.append(
            {
                "item": member["item"],
                "title": view.title(member["item"]),
                "href": safe_href(view.url(member["item"])),
                "url": view.url(member["item"]),
                "source": member["source"],
                "published_at": member.get("published_at"),
                "lag": "original" if is_original else human_lag(member.get("lag_seconds")),
                "similarity": None if is_original else member.get("similarity"),
                "kind": member_kind(member),
                "credits": credits(member),
            }
        )
    text = (original_item or {}).get("text") or ""
    return {
        "nav": "stories",
        "record": record,
        "title": view.title(),
        "original": original,
        "original_label": view.original_label(full=True),
        "original_item": original_item,
        "original_href": safe_href((original_item or {}).get("url")),
        "excerpt": text[:EXCERPT],
        "cut": len(text) > EXCERPT,
        "members": members,
        "chart": timeline(record),
        "first_seen": first_seen(record, dashboard.zone),
    }


# --- sources -------------------------------------------------------------------------------


def health_of(dashboard: Dashboard, name: str) -> Context:
    state = dashboard.store.get_state(f"health/{name}") or {}
    verdict = state.get("verdict") or {}
    return {
        "state": verdict.get("state") or state.get("state") or "unknown",
        "since": state.get("since"),
        "reasons": verdict.get("reasons") or state.get("reasons") or [],
        "checked_at": verdict.get("checked_at"),
    }


@page("sources.html")
def sources(_request: Request, dashboard: Dashboard) -> Context:
    """Every configured source, and every other source the store has items of (a store
    filled by another sources file, or by `presswatch demo`)."""
    configured = {source.name: source for source in dashboard.sources}
    unconfigured = [name for name in dashboard.store.item_sources() if name not in configured]
    rows = []
    for name in [*configured, *unconfigured]:
        source = configured.get(name)
        last = dashboard.store.runs(name, 1)
        rows.append(
            {
                "name": name,
                "title": source.title if source else "not in the sources file",
                "enabled": source.enabled if source else True,
                "item_count": dashboard.store.count_items(name),
                "health": health_of(dashboard, name),
                "last_run": last[0] if last else None,
            }
        )
    return {"nav": "sources", "rows": rows}


def provenance_counts(dashboard: Dashboard, items: list[dict[str, Any]]) -> Context:
    """How the items stand in their stories: originals, copies credited or not, unattributed
    ones, items not linked yet, and whom the copies credit most."""
    lookup = ProvenanceLookup(dashboard.index)
    lookup.prefetch(items)
    tally: Counter[str] = Counter()
    cited: Counter[str] = Counter()
    for item in items:
        found = lookup(item)
        if found["role"] is None:
            tally["unlinked"] += 1
        elif found["role"] == "original":
            tally["originals"] += 1
        else:
            tally["copies"] += 1
            if found["unattributed"]:
                tally["unattributed"] += 1
            elif found["cited_sources"]:
                tally["credited"] += 1
                cited.update(found["cited_sources"])
            else:
                tally["uncredited"] += 1
    return {"of": len(items), **tally, "cited": cited.most_common(5)}


@page("source.html")
def source(request: Request, dashboard: Dashboard) -> Context:
    name = request.path_params["name"]
    configured = dashboard.source(name)
    recent = dashboard.store.items(ItemQuery(source=name, limit=SOURCE_RECENT))
    if configured is None and not recent:
        raise HTTPException(404, f"no source {name!r} is configured or has items")
    bars = []
    if recent:
        windows = day_windows(sort_instant(recent[0]), SOURCE_DAYS, dashboard.zone)
        counts = dashboard.store.count_items_in([(s, u) for _, s, u in windows], source=name)
        bars = day_bars([day for day, _, _ in windows], counts)
    runs = dashboard.store.runs(name, 20)
    return {
        "nav": "sources",
        "name": name,
        "configured": configured,
        "total": dashboard.store.count_items(name),
        "health": health_of(dashboard, name),
        "bars": bars,
        "days": SOURCE_DAYS,
        "provenance": provenance_counts(dashboard, recent),
        "runs": runs,
        "errors": [r for r in runs if r.get("status") != "ok" or r.get("error")][:10],
        "latest": recent[:10],
    }


# --- alerts --------------------------------------------------------------------------------


@page("alerts.html")
def alerts(request: Request, dashboard: Dashboard) -> Context:
    filters = read_filters(request.query_params, ())
    found = dashboard.outbox.alerts(limit=PAGE_SIZE + 1, offset=filters.offset)
    return {
        "nav": "alerts",
        "filters": filters,
        "alerts": found[:PAGE_SIZE],
        "more": len(found) > PAGE_SIZE,
    }


# --- items and exports -----------------------------------------------------------------------


@page("items.html")
def items(request: Request, dashboard: Dashboard) -> Context:
    filters = read_filters(request.query_params, ITEM_FILTERS)
    query = replace(item_query(dashboard, filters), limit=PAGE_SIZE + 1, offset=filters.offset)
    found = dashboard.store.items(query)
    stories_of = dashboard.index.stories_of(item["id"] for item in found[:PAGE_SIZE])
    rows = [{**item, "story": stories_of.get(item["id"])} for item in found[:PAGE_SIZE]]
    return {
        "nav": "items",
        "filters": filters,
        "rows": rows,
        "more": len(found) > PAGE_SIZE,
        "export": filters.params(page=None),
        **choices(dashboard),
    }


@page("item.html")
def item(request: Request, dashboard: Dashboard) -> Context:
    item_id = request.path_params["item_id"]
    found = dashboard.store.get_item(item_id)
    if found is None:
        raise HTTPException(404, f"no item {item_id!r}")
    return {
        "nav": "items",
        "item": found,
        "href": safe_href(found.get("url")),
        "provenance": ProvenanceLookup(dashboard.index)(found),
    }


def export(request: Request) -> Response:
    """The items that the items page's filters select, with their story provenance, as
    JSON lines or formula-safe CSV (`scheduler.export`), read a batch at a time."""
    fmt = request.path_params["fmt"]
    if fmt not in WRITERS:
        raise HTTPException(404, f"no export format {fmt!r} (jsonl or csv)")
    dashboard = dashboard_of(request.app)
    filters = read_filters(request.query_params, ITEM_FILTERS)
    query = item_query(dashboard, filters)
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    return StreamingResponse(
        exported(dashboard, query, fmt),
        media_type=media,
        headers={"content-disposition": f'attachment; filename="presswatch-items.{fmt}"'},
    )


def exported(dashboard: Dashboard, query: ItemQuery, fmt: str) -> Iterator[str]:
    lookup = ProvenanceLookup(dashboard.index)

    def rows() -> Iterator[dict[str, Any]]:
        offset = 0
        # A caller's test is applied by scanning: one pass for all, not a scan per batch.
        batch_size = EXPORT_BATCH if query.keep is None else None
        while True:
            with dashboard.lock:
                limit = batch_size or max(dashboard.store.count_items(query.source), 1)
                batch = dashboard.store.items(replace(query, limit=limit, offset=offset))
                lookup.prefetch(batch)
                provenance = [lookup(found) for found in batch]
            for found, extra in zip(batch, provenance, strict=True):
                yield {**found, **extra}
            if batch_size is None or len(batch) < batch_size:
                return
            offset += batch_size

    buffer = io.StringIO()
    for _ in WRITERS[fmt](rows(), buffer):
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def home(_request: Request) -> Response:
    return RedirectResponse("/stories", 302)


# --- errors --------------------------------------------------------------------------------


def error_handlers() -> dict[Any, Callable]:
    def problem(request: Request, status: int, title: str, detail: str) -> Response:
        context = {"nav": None, "status": status, "title": title, "detail": detail}
        return render(request, "error.html", context, status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return Response("this dashboard only reads: GET only", 405, {"allow": "GET, HEAD"})
        title = "not found" if exc.status_code == 404 else "error"
        return problem(request, exc.status_code, title, str(exc.detail))

    async def bad_request(request: Request, exc: Exception) -> Response:
        return problem(request, 400, "bad request", str(exc))

    async def store_error(request: Request, exc: Exception) -> Response:
        return problem(request, 503, "the store cannot be read", str(exc))

    return {HTTPException: http_error, BadRequestError: bad_request, StoreError: store_error}


ROUTES = [
    Route("/", home, name="home"),
    Route("/stories", stories, name="stories"),
    Route("/stories/{story_id:path}", story, name="story"),
    Route("/sources", sources, name="sources"),
    Route("/sources/{name}", source, name="source"),
    Route("/alerts", alerts, name="alerts"),
    Route("/items", items, name="items"),
    Route("/items/{item_id:path}", item, name="item"),
    Route("/export.{fmt}", export, name="export"),
]
