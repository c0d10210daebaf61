"""Storage for items, stories, alerts and runs: one contract, SQLite and Redis behind it."""

from __future__ import annotations

import os

from pipelines.store.base import ItemQuery, Store

DEFAULT_STORE_URL = "sqlite:///presswatch.db"

__all__ = ["DEFAULT_STORE_URL", "ItemQuery", "Store", "open_store", "store_url_from_env"]


def store_url_from_env() -> str:
    return os.environ.get("PRESSWATCH_STORE") or DEFAULT_STORE_URL


def open_store(url: str | None = None) -> Store:
    """Open the store named by `url` (``sqlite:///path.db`` or ``redis://...``)."""
    url = url or store_url_from_env()
    if url.startswith("sqlite:///"):
        from pipelines.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from pipelines.store.redis import RedisStore

        return RedisStore(url)
    scheme = url.split(":", 1)[0]
    msg = f"unknown store {scheme!r}: use sqlite:///path.db or redis://host:port/db"
    raise ValueError(msg)
