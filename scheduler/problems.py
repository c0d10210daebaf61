"""What went wrong in one crawl, said in words, from its Scrapy stats."""

from __future__ import annotations

from typing import Any


def crawl_problems(stats: dict[str, Any]) -> list[str]:
    """What went wrong in one crawl: one short phrase a problem."""
    from crawler.browser import FIX, UNAVAILABLE

    problems = []
    if stats.get("finish_reason") == UNAVAILABLE:
        problems.append(f"Chromium could not be started: {FIX}")
    if stats.get("robotstxt/blocked_unreachable"):
        problems.append("robots.txt unreachable: nothing fetched")
    for key, label in (
        ("robotstxt/forbidden", "disallowed by robots.txt"),
        (
            "egress/blocked",
            "blocked by the egress policy (private or loopback address; "
            "--allow-net CIDR lets a crawl reach one)",
        ),
        ("retry/max_reached", "gave up after retries"),
        ("retry/deferred_requests", "deferred (Retry-After beyond the cap)"),
    ):
        if stats.get(key):
            problems.append(f"{stats[key]} {label}")
    prefix = "downloader/exception_type_count/"
    for key, count in stats.items():
        if key.startswith(prefix) and not key.endswith("IgnoreRequest"):
            problems.append(f"{count}× {key.removeprefix(prefix).rsplit('.', 1)[-1]}")
        elif key.startswith("downloader/response_status_count/") and key[-3:] >= "400":
            problems.append(f"{count}× HTTP {key[-3:]}")
    return problems
