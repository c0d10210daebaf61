"""`presswatch web`: a read-only review dashboard of stories, copies, alerts and source health,
served from the store by Starlette and Jinja2 (`create_app`)."""

from __future__ import annotations

from scheduler.web.app import create_app

__all__ = ["create_app"]
