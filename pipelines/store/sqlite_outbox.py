"""The alert outbox in the store's SQLite file: its own tables, committed with synchronous=FULL."""

from __future__ import annotations

import functools
import json
import sqlite3
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from pipelines.store.base import StoreError
from pipelines.store.outbox import PENDING, Claim, Recorded, absorbed_into, plan_record
from pipelines.store.sqlite import BUSY_TIMEOUT_S, cannot_open, connect

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# Own tables beside the store's (prefix outbox_), so the store's schema version is not ours
# to change. Deliveries keep their state as JSON; the columns are what queries select by.
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_alerts (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    data TEXT NOT NULL CHECK (json_valid(data))
);
CREATE INDEX IF NOT EXISTS outbox_alerts_by_time ON outbox_alerts (created, id);
CREATE TABLE IF NOT EXISTS outbox_keys (
    key TEXT PRIMARY KEY,
    alert TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_deliveries (
    id TEXT PRIMARY KEY,
    alert TEXT NOT NULL,
    status TEXT NOT NULL,
    next_attempt REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    data TEXT NOT NULL CHECK (json_valid(data))
);
CREATE INDEX IF NOT EXISTS outbox_deliveries_due ON outbox_deliveries (status, next_attempt);
CREATE INDEX IF NOT EXISTS outbox_deliveries_by_alert ON outbox_deliveries (alert);
"""
# Keys per lookup statement, under SQLite's lowest default limit of bound variables (999).
KEY_BATCH = 900

P = ParamSpec("P")
R = TypeVar("R")


def _translating_errors(
    method: Callable[Concatenate[SQLiteOutbox, P], R],
) -> Callable[Concatenate[SQLiteOutbox, P], R]:
    """Turn a locked, full or unwritable database into a `StoreError` naming the file."""

    @functools.wraps(method)
    def wrapper(self: SQLiteOutbox, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            msg = (
                f"the alert outbox in {self.path!r} failed: {exc} (a full disk, a read-only"
                f" file, or another process holding the write lock over {BUSY_TIMEOUT_S} s)"
            )
            raise StoreError(msg) from exc

    return wrapper


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


class SQLiteOutbox:
    """`Outbox` in tables ``outbox_alerts``, ``outbox_keys`` and ``outbox_deliveries``.

    Its own connection with ``synchronous=FULL``: a committed alert or delivery state
    survives a power cut, because losing one means a silent alert or a second message.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = connect(path, synchronous="FULL")
        try:
            self._db.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nCOMMIT;")
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(cannot_open(path, exc)) from exc

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock before reading, so a read-then-write step (find the
        # alert, then merge into it) cannot interleave with another process's.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @_translating_errors
    def record(self, alert: dict[str, Any], keys: list[str], *, now: float) -> Recorded:
        with self._writing() as db:
            found = self._alerts_for(db, alert["id"], keys)
            loaded = [self._load(db, alert_id) for alert_id in found]
            existing = loaded[0] if loaded else None
            written, deliveries = plan_record(existing, alert, now)
            for other in loaded[1:]:
                marked = absorbed_into(other, written["id"], now)
                if marked is not None:
                    db.execute(
                        "UPDATE outbox_alerts SET data = ? WHERE id = ?",
                        (_dumps(marked), marked["id"]),
                    )
            if existing is None:
                db.execute(
                    "INSERT INTO outbox_alerts (id, created, data) VALUES (?, ?, ?)",
                    (written["id"], written["created_at"], _dumps(written)),
                )
            elif written is not existing:
                db.execute(
                    "UPDATE outbox_alerts SET data = ? WHERE id = ?",
                    (_dumps(written), written["id"]),
                )
            db.executemany(
                "INSERT INTO outbox_keys (key, alert) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                [(key, written["id"]) for key in keys],
            )
            added = []
            for delivery in deliveries:
                cursor = db.execute(
                    "INSERT INTO outbox_deliveries (id, alert, status, next_attempt, data)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    (
                        delivery["id"],
                        delivery["alert"],
                        delivery["status"],
                        delivery["next_attempt_at"],
                        _dumps(delivery),
                    ),
                )
                if cursor.rowcount:
                    added.append(delivery["id"])
        return Recorded(written, existing is None, tuple(added))

    @staticmethod
    def _load(db: sqlite3.Connection, alert_id: str) -> dict[str, Any]:
        row = db.execute("SELECT data FROM outbox_alerts WHERE id = ?", (alert_id,)).fetchone()
        return json.loads(row[0])

    @staticmethod
    def _alerts_for(db: sqlite3.Connection, alert_id: str, keys: list[str]) -> list[str]:
        """The alerts `alert_id` and `keys` lead to, earliest created first."""
        found = {alert_id}
        for start in range(0, len(keys), KEY_BATCH):
            batch = keys[start : start + KEY_BATCH]
            marks = ",".join("?" * len(batch))
            rows = db.execute(f"SELECT alert FROM outbox_keys WHERE key IN ({marks})", batch)  # noqa: S608 -- only "?" marks are interpolated
            found.update(row[0] for row in rows)
        marks = ",".join("?" * len(found))
        rows = db.execute(
            f"SELECT id FROM outbox_alerts WHERE id IN ({marks}) ORDER BY created, id",  # noqa: S608 -- only "?" marks are interpolated
            sorted(found),
        )
        return [row[0] for row in rows]

    @_translating_errors
    def get(self, alert_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT data FROM outbox_alerts WHERE id = ?", (alert_id,)
        ).fetchone()
        if row is None:
            return None
        return self._with_deliveries([json.loads(row[0])])[0]

    @_translating_errors
    def alerts(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT data FROM outbox_alerts ORDER BY created DESC, id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return self._with_deliveries([json.loads(row[0]) for row in rows])

    def _with_deliveries(self, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        by_alert: dict[str, list[dict[str, Any]]] = {alert["id"]: [] for alert in alerts}
        if by_alert:
            marks = ",".join("?" * len(by_alert))
            rows = self._db.execute(
                f"SELECT data FROM outbox_deliveries WHERE alert IN ({marks}) ORDER BY id",  # noqa: S608 -- only "?" marks are interpolated
                list(by_alert),
            )
            for row in rows:
                delivery = json.loads(row[0])
                by_alert[delivery["alert"]].append(delivery)
        return [{**alert, "deliveries": by_alert[alert["id"]]} for alert in alerts]

    @_translating_errors
    def claim(self, owner: str, *, now: float, lease_s: float, limit: int) -> list[Claim]:
        with self._writing() as db:
            rows = db.execute(
                "SELECT d.id, d.data, a.data FROM outbox_deliveries d"
                " JOIN outbox_alerts a ON a.id = d.alert"
                " WHERE d.status = ? AND d.next_attempt <= ?"
                " AND (d.lease_until IS NULL OR d.lease_until <= ?)"
                " ORDER BY d.next_attempt, d.id LIMIT ?",
                (PENDING, now, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE outbox_deliveries SET lease_owner = ?, lease_until = ? WHERE id = ?",
                [(owner, now + lease_s, row[0]) for row in rows],
            )
        return [Claim(json.loads(row[1]), json.loads(row[2])) for row in rows]

    @_translating_errors
    def settle(self, delivery: dict[str, Any], owner: str) -> bool:
        # Our lease, or a lapsed one nobody took since: the state is ours to write.
        cursor = self._db.execute(
            "UPDATE outbox_deliveries SET status = ?, next_attempt = ?, data = ?,"
            " lease_owner = NULL, lease_until = NULL"
            " WHERE id = ? AND (lease_owner IS NULL OR lease_owner = ?)",
            (
                delivery["status"],
                delivery["next_attempt_at"],
                _dumps(delivery),
                delivery["id"],
                owner,
            ),
        )
        return cursor.rowcount == 1

    def close(self) -> None:
        self._db.close()
