"""`presswatch run` and `presswatch status`: the scheduling service and what it is doing."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from scheduler.cli_support import (
    AllowNetOption,
    JsonOption,
    RulesOption,
    SettingOption,
    SourcesOption,
    StoreOption,
    app,
    configured_sources,
    console,
    crawl_settings_from,
    fail,
    opened_store,
    refusing_bad_input,
)
from scheduler.display import (
    SOURCE_WIDTH,
    compact_table,
    display_zone,
    shown_time,
    time_header,
)
from scheduler.jobs import DEFAULT_CRAWL_TIMEOUT_S
from scheduler.leader import DEFAULT_LEASE_SECONDS

if TYPE_CHECKING:
    from crawler.config import Source
    from pipelines.store import Store


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@app.command()
def run(
    store: StoreOption = None,
    sources_file: SourcesOption = None,
    rules_file: RulesOption = None,
    max_crawls: Annotated[int, typer.Option(min=1, help="crawls at once, over all sources")] = 2,
    crawl_timeout: Annotated[
        float, typer.Option(min=1, help="seconds before a crawl is stopped")
    ] = DEFAULT_CRAWL_TIMEOUT_S,
    stop_timeout: Annotated[
        float, typer.Option(min=0, help="SIGTERM: seconds running crawls get to finish")
    ] = 30.0,
    health_interval: Annotated[
        float, typer.Option(min=1, help="seconds between health checks of the sources")
    ] = 300.0,
    alerts_interval: Annotated[
        float, typer.Option(min=1, help="seconds between alert runs (match, deliver)")
    ] = 60.0,
    lease_seconds: Annotated[
        float, typer.Option(min=1, help="how long the leader's lease lasts unrenewed")
    ] = DEFAULT_LEASE_SECONDS,
    settings: SettingOption = None,
    allow_nets: AllowNetOption = None,
) -> None:
    """Run the monitoring service: scheduled crawls, alerts and source health, one leader
    per store (a second `run` waits as a standby). SIGHUP reloads the sources file;
    SIGTERM starts no new crawl and stops within --stop-timeout plus a few seconds."""
    from pipelines.store import store_url_from_env
    from scheduler.service import ServiceConfig, run_service

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    config = ServiceConfig(
        store_url=store or store_url_from_env(),
        sources_file=sources_file,
        rules_file=rules_file,
        max_crawls=max_crawls,
        crawl_timeout=crawl_timeout,
        crawl_settings=crawl_settings_from(settings, allow_nets),
        health_interval=health_interval,
        alerts_interval=alerts_interval,
        lease_seconds=lease_seconds,
        stop_timeout=stop_timeout,
    )
    with refusing_bad_input():
        code = run_service(config)
    if code:
        fail("lost the lead of the store; exiting so a supervisor restarts us as a standby", code)


def service_status(store: Store, sources: list[Source]) -> dict[str, Any]:
    """The leader, every stored job and every source's last run and health, as JSON."""
    from scheduler.leader import leader_info
    from scheduler.service import crawl_job_id, jobstore_for

    jobstore = jobstore_for(store)
    try:
        jobs = [
            {
                "id": record.id,
                "func": record.func,
                "trigger": record.trigger,
                "next_run_time": record.next_run_time,
                "problem": record.problem,
            }
            for record in jobstore.records()
        ]
    finally:
        jobstore.close()
    scheduled = {job["id"]: job for job in jobs}
    rows = []
    for source in sources:
        last = store.runs(source.name, 1)
        health = store.get_state(f"health/{source.name}") or {}
        job = scheduled.get(crawl_job_id(source.name))
        rows.append(
            {
                "source": source.name,
                "enabled": source.enabled,
                "next_run_time": job["next_run_time"] if job else None,
                "last_run": (
                    {
                        key: last[0].get(key)
                        for key in ("status", "started_at", "ended_at", "problems", "error")
                    }
                    if last
                    else None
                ),
                "last_new_items": last[0].get("stats", {}).get("store/new", 0) if last else None,
                "health": health.get("state"),
                "health_verdict": (health.get("verdict") or {}).get("state"),
                "health_reasons": (health.get("verdict") or {}).get("reasons", []),
            }
        )
    return {"store": store.url, "leader": leader_info(store), "jobs": jobs, "sources": rows}


@app.command()
def status(
    store: StoreOption = None, sources_file: SourcesOption = None, as_json: JsonOption = False
) -> None:
    """Show who leads the scheduler, every job with its next run, and each source's last
    run and health."""
    sources = configured_sources(sources_file)
    with opened_store(store) as st, refusing_bad_input():
        report = service_status(st, sources)
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
        return
    zone = display_zone()
    leader = report["leader"]
    if leader is None:
        console.print("leader: [yellow]none has run against this store[/yellow]")
    else:
        state = "[green]running[/green]" if leader["alive"] else "[red]not running[/red]"
        since = shown_time(leader.get("since"), zone, missing="?")
        console.print(
            f"leader: {leader.get('host', '?')} pid {leader.get('pid', '?')}"
            f" since {since} {zone.key} ({leader.get('kind', '?')}), {state}"
        )
    jobs = compact_table("jobs", expand=True)
    jobs.add_column("job", no_wrap=True, overflow="ellipsis", max_width=30)
    jobs.add_column(time_header("next run", zone), no_wrap=True, width=16)
    jobs.add_column("problem", ratio=1)
    for job in report["jobs"]:
        jobs.add_row(
            escape(job["id"]),
            shown_time(job["next_run_time"], zone, missing="[dim]paused[/dim]"),
            escape(job["problem"] or ""),
        )
    console.print(jobs if report["jobs"] else "jobs: none stored (presswatch run adds them)")
    table = compact_table("sources", expand=True)
    table.add_column("source", no_wrap=True, overflow="ellipsis", max_width=SOURCE_WIDTH)
    table.add_column(time_header("next run", zone), no_wrap=True, width=16)
    # The last run's status and new items under its time: room for the health reasons.
    table.add_column(time_header("last run", zone), no_wrap=True, width=16)
    table.add_column("health", ratio=1)  # reasons wrap: they are sentences
    for row in report["sources"]:
        last = row["last_run"] or {}
        health = row["health_verdict"] or row["health"] or "-"
        if row["health_reasons"]:
            health += ": " + "; ".join(row["health_reasons"])
        name = escape(row["source"])
        outcome = f"{escape(last.get('status') or '?')}, {row['last_new_items']} new"
        table.add_row(
            name if row["enabled"] else f"[dim]{name} (off)[/dim]",
            shown_time(row["next_run_time"], zone),
            f"{shown_time(last.get('started_at'), zone)}\n{outcome}" if last else "never",
            escape(health),
        )
    console.print(table)
