"""`presswatch alerts`: the alert outbox and the delivery status of every channel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from scheduler.cli_support import (
    JsonOption,
    StoreOption,
    app,
    console,
    opened_store,
    refusing_bad_input,
)
from scheduler.display import compact_table, display_zone, id_width, shown_time, time_header

if TYPE_CHECKING:
    from pipelines.store import Store
    from scheduler.alerts import AlertJobResult


def alert_after_crawl(store: Store, rules_file: Path | None) -> AlertJobResult:
    """Run the alert job once, as `crawl` and `demo` do after their crawl, and say what it
    did (a console channel prints each alert itself)."""
    from scheduler.alerts import run_alert_job
    from scheduler.rules import load_rules

    with refusing_bad_input():
        result = run_alert_job(store, load_rules(rules_file))
    sent = result.delivery
    console.print(
        f"alerts: {result.created} new, {result.updated} updated; deliveries: {sent.sent} sent,"
        f" {sent.retrying} to retry, {sent.failed} failed (presswatch alerts shows them)"
    )
    return result


def delivery_status(delivery: dict[str, Any]) -> str:
    """``hook: sent``, ``mail: pending (2 tries)``, ``tg: failed (24 tries)``; an update
    delivery is named by the copies count it announces, a possible duplicate is flagged."""
    name = delivery["channel"]
    if delivery.get("kind") == "update":
        name += f" @{delivery.get('copies')}"
    status = delivery["status"]
    attempts = delivery.get("attempts", 0)
    if status != "sent" and attempts:
        status += f" ({attempts} {'try' if attempts == 1 else 'tries'})"
    if delivery.get("ambiguous"):
        status += " ?dup"
    return f"{name}: {status}"


def alert_title(alert: dict[str, Any]) -> str:
    facts = alert.get("message") or {}
    return facts.get("title") or facts.get("subject") or ""


@app.command()
def alerts(
    store_url: StoreOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="how many, newest first")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Alerts newest first: rule, story, copies so far, and each channel's delivery status."""
    with opened_store(store_url) as store, refusing_bad_input():
        outbox = store.outbox()
        try:
            found = outbox.alerts(limit=limit)
        finally:
            outbox.close()
    if as_json:
        for alert in found:
            print(json.dumps(alert, ensure_ascii=False))
        return
    if not found:
        console.print("no alerts yet")
        return
    zone = display_zone()
    table = compact_table(expand=True, leading=1)
    table.add_column(time_header("created", zone), no_wrap=True, width=16)
    table.add_column("rule", no_wrap=True, overflow="ellipsis", max_width=12)
    table.add_column("copies", justify="right", no_wrap=True, width=6)
    table.add_column("deliveries", overflow="fold", max_width=22)
    # The story's id (for `presswatch story ID`) over its title, one line each.
    story_width = id_width(a.get("story") for a in found)
    table.add_column(
        "story · title", no_wrap=True, overflow="ellipsis", ratio=1, min_width=story_width
    )
    for alert in found:
        table.add_row(
            shown_time(alert["created_at"], zone),
            escape(alert.get("rule") or alert.get("kind", "")),
            str(alert.get("copies", "")),
            escape("\n".join(delivery_status(d) for d in alert["deliveries"]) or "in digest"),
            f"{escape(alert.get('story') or alert.get('kind', ''))}\n"
            f"[dim]{escape(alert_title(alert))}[/dim]",
        )
    console.print(table)
