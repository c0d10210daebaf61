"""Run records: the status a crawl ends with, from its stats."""

from __future__ import annotations

import pytest

from scheduler.runs import run_record


@pytest.mark.parametrize(
    ("stats", "status"),
    [
        ({"finish_reason": "finished", "downloader/response_count": 5}, "ok"),
        (
            {
                "finish_reason": "finished",
                "downloader/response_count": 5,
                "downloader/response_status_count/503": 1,
            },
            "partial",
        ),
        ({"finish_reason": "finished", "robotstxt/blocked_unreachable": 1}, "failed"),
        ({"finish_reason": "closespider_timeout", "downloader/response_count": 5}, "failed"),
    ],
)
def test_run_status_follows_the_stats(stats: dict, status: str) -> None:
    record = run_record("zakon", {"start_time": "2026-01-01T00:00:00+00:00", **stats})
    assert record["status"] == status
    assert record["source"] == "zakon"
    assert record["started_at"] == "2026-01-01T00:00:00+00:00"
