"""Storage for items, stories, alerts and runs: one contract, SQLite and Redis behind it."""

from __future__ import annotations

import os

from pipelines.store.base import ItemQuery, Store

DEFAULT_STORE_URL = "sqlite:///presswatch.db"

__all__ = ["DEFAULT_STORE_URL", "ItemQuery", "Store", "open_store", "store_url_from_env"]


def store_url_from_env() -> str:
    return os.environ.get("PRESSWATCH_STORE") or DEFAULT_STORE_URL


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """Open the store named by `url` (``sqlite:///path.db`` or ``redis://...``).

    A SQLite store's directory must exist: it is never created, so a mistyped path is an
    error (`StoreError`), not a new empty store. `create` says whether a missing SQLite file
    may be created: True for what writes (crawls, the service, the demo), False for what
    only reads (listing, showing, exporting), where a missing file means a wrong path.
    """
    url = url or store_url_from_env()
    if url.startswith("sqlite:///"):
        from pipelines.store.sqlite import SQLiteStore

        return SQLiteStore(url, create=create)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from pipelines.store.redis import RedisStore

        return RedisStore(url)
    scheme = url.split(":", 1)[0]
    msg = f"unknown store {scheme!r}: use sqlite:///path.db or redis://host:port/db"
    raise ValueError(msg)
