"""The alert outbox in Redis: readable keys (`Keys.outbox_*`), JSON values, atomic steps."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipelines.store.outbox import PENDING, Claim, Recorded, absorbed_into, plan_record
from pipelines.store.redis import translating_errors

if TYPE_CHECKING:
    import redis

    from pipelines.store.redis import RedisLink

# Lease up to ARGV[4] due deliveries whose lease is free or lapsed.
# KEYS: due, leases, lease owners. ARGV: now, owner, lease end, limit.
CLAIM_LUA = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[4])
local scan = limit + redis.call('ZCARD', KEYS[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, scan)
local claimed = {}
for _, id in ipairs(due) do
    if #claimed >= limit then break end
    local lapse = redis.call('ZSCORE', KEYS[2], id)
    if (not lapse) or tonumber(lapse) <= now then
        redis.call('ZADD', KEYS[2], ARGV[3], id)
        redis.call('HSET', KEYS[3], id, ARGV[2])
        table.insert(claimed, id)
    end
end
return claimed
"""

# Write a delivery's new state unless another sender holds it now; end the lease.
# KEYS: delivery, due, leases, lease owners. ARGV: owner, delivery JSON, id, still
# pending ("1" / "0"), next attempt.
SETTLE_LUA = """
local holder = redis.call('HGET', KEYS[4], ARGV[3])
if holder and holder ~= ARGV[1] then
    return 0
end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[4] == '1' then
    redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3])
else
    redis.call('ZREM', KEYS[2], ARGV[3])
end
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('HDEL', KEYS[4], ARGV[3])
return 1
"""


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class RedisOutbox:
    """`Outbox` in Redis keys ``<prefix>outbox:*`` (see `pipelines.store.keys`).

    `record` reads and writes under WATCH (an optimistic transaction that redis-py retries
    when another writer touched the watched keys), so the merge logic is the same Python as
    SQLite's; `claim` and `settle` are single Lua calls.
    """

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.keys = link.keys
        self._redis = link.client
        self._claim = self._redis.register_script(CLAIM_LUA)
        self._settle = self._redis.register_script(SETTLE_LUA)

    @translating_errors
    def record(self, alert: dict[str, Any], keys: list[str], *, now: float) -> Recorded:
        k = self.keys

        def attempt(pipe: redis.client.Pipeline) -> Recorded:
            found = self._alerts_for(pipe, alert["id"], keys)
            if found:
                pipe.watch(*(k.outbox_alert(alert_id) for alert_id in found))
            loaded = (
                [json.loads(value) for value in pipe.mget([k.outbox_alert(i) for i in found])]
                if found
                else []
            )
            existing = loaded[0] if loaded else None
            written, deliveries = plan_record(existing, alert, now)
            absorbed = [a for a in (absorbed_into(o, written["id"], now) for o in loaded[1:]) if a]
            delivery_keys = [k.outbox_delivery(d["id"]) for d in deliveries]
            if delivery_keys:
                pipe.watch(*delivery_keys)
                known = pipe.mget(delivery_keys)
            else:
                known = []
            added = [d for d, value in zip(deliveries, known, strict=True) if value is None]
            pipe.multi()
            if existing is None:
                pipe.set(k.outbox_alert(written["id"]), _dumps(written))
                pipe.zadd(k.outbox_alerts(), {written["id"]: _epoch(written["created_at"])})
            elif written is not existing:
                pipe.set(k.outbox_alert(written["id"]), _dumps(written))
            for other in absorbed:
                pipe.set(k.outbox_alert(other["id"]), _dumps(other))
            for key in keys:
                pipe.hsetnx(k.outbox_keys(), key, written["id"])
            for delivery in added:
                pipe.set(k.outbox_delivery(delivery["id"]), _dumps(delivery))
                pipe.sadd(k.outbox_alert_deliveries(written["id"]), delivery["id"])
                pipe.zadd(k.outbox_due(), {delivery["id"]: delivery["next_attempt_at"]})
            return Recorded(written, existing is None, tuple(d["id"] for d in added))

        return self._redis.transaction(
            attempt, k.outbox_keys(), k.outbox_alert(alert["id"]), value_from_callable=True
        )

    def _alerts_for(self, pipe: redis.client.Pipeline, alert_id: str, keys: list[str]) -> list[str]:
        """The alerts `alert_id` and `keys` lead to, earliest created first."""
        k = self.keys
        found = {value for value in pipe.hmget(k.outbox_keys(), keys) if value} if keys else set()
        found.add(alert_id)
        ordered = sorted(found)
        # The score is the creation second, as SQLite orders by its created text.
        scores = [pipe.zscore(k.outbox_alerts(), alert) for alert in ordered]
        known = sorted(
            (score, alert)
            for score, alert in zip(scores, ordered, strict=True)
            if score is not None
        )
        return [alert for _, alert in known]

    @translating_errors
    def get(self, alert_id: str) -> dict[str, Any] | None:
        value = self._redis.get(self.keys.outbox_alert(alert_id))
        if value is None:
            return None
        return self._with_deliveries([json.loads(value)])[0]

    @translating_errors
    def alerts(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        ids = self._redis.zrevrange(self.keys.outbox_alerts(), offset, offset + limit - 1)
        if not ids:
            return []
        values = self._redis.mget([self.keys.outbox_alert(i) for i in ids])
        return self._with_deliveries([json.loads(v) for v in values if v is not None])

    def _with_deliveries(self, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        pipe = self._redis.pipeline(transaction=False)
        for alert in alerts:
            pipe.smembers(self.keys.outbox_alert_deliveries(alert["id"]))
        id_sets = pipe.execute()
        every_id = sorted({i for ids in id_sets for i in ids})
        values = (
            self._redis.mget([self.keys.outbox_delivery(i) for i in every_id]) if every_id else []
        )
        deliveries = {i: json.loads(v) for i, v in zip(every_id, values, strict=True) if v}
        return [
            {**alert, "deliveries": [deliveries[i] for i in sorted(ids) if i in deliveries]}
            for alert, ids in zip(alerts, id_sets, strict=True)
        ]

    @translating_errors
    def claim(self, owner: str, *, now: float, lease_s: float, limit: int) -> list[Claim]:
        k = self.keys
        ids = self._claim(
            keys=[k.outbox_due(), k.outbox_leases(), k.outbox_lease_owners()],
            args=[now, owner, now + lease_s, limit],
        )
        if not ids:
            return []
        deliveries = [json.loads(v) for v in self._redis.mget([k.outbox_delivery(i) for i in ids])]
        alert_ids = sorted({d["alert"] for d in deliveries})
        values = self._redis.mget([k.outbox_alert(i) for i in alert_ids])
        alerts = {i: json.loads(v) for i, v in zip(alert_ids, values, strict=True)}
        return [Claim(d, alerts[d["alert"]]) for d in deliveries]

    @translating_errors
    def settle(self, delivery: dict[str, Any], owner: str) -> bool:
        k = self.keys
        written = self._settle(
            keys=[
                k.outbox_delivery(delivery["id"]),
                k.outbox_due(),
                k.outbox_leases(),
                k.outbox_lease_owners(),
            ],
            args=[
                owner,
                _dumps(delivery),
                delivery["id"],
                "1" if delivery["status"] == PENDING else "0",
                delivery["next_attempt_at"],
            ],
        )
        return bool(written)

    def close(self) -> None:
        """Nothing of its own to close: the connection is the store's."""
