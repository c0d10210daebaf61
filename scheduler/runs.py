"""Run records: one crawl of one source, kept in the store for review and health checks."""

from __future__ import annotations

import uuid
from typing import Any

from scheduler.problems import crawl_problems


def run_record(source: str, stats: dict[str, Any]) -> dict[str, Any]:
    """The run of `source` that ended with these Scrapy stats, as the store keeps it.

    status: ``ok`` (finished, nothing went wrong), ``partial`` (finished with problems),
    ``failed`` (did not finish, or every request failed).
    """
    problems = crawl_problems(stats)
    finished = stats.get("finish_reason") == "finished"
    responses = stats.get("downloader/response_count", 0)
    if not finished or (problems and not responses):
        status = "failed"
    elif problems:
        status = "partial"
    else:
        status = "ok"
    return {
        "id": uuid.uuid4().hex,
        "source": source,
        "started_at": stats.get("start_time"),
        "ended_at": stats.get("finish_time"),
        "status": status,
        "problems": problems,
        "stats": stats,
    }
