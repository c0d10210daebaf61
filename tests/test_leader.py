"""One scheduler leads a store: a standby waits, takes over when the leader dies, and a leader
that loses its Redis lease is told at once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest

from pipelines.store import open_store
from scheduler.leader import FileLock, RedisLease, leader_info, leadership_for

if TYPE_CHECKING:
    from pathlib import Path

    from pipelines.store import Store

LEASE_S = 0.6  # short, so a dead leader's lease lapses quickly
TAKEOVER_LIMIT_S = 20.0  # generous: a wait bound on a shared machine, not a speed claim

HOLDER = """
import sys, threading
from pipelines.store import open_store
from scheduler.leader import leadership_for
store = open_store(sys.argv[1])
leadership = leadership_for(store, lease_seconds=float(sys.argv[2]))
assert leadership.wait_to_lead(threading.Event())
print("leading", flush=True)
threading.Event().wait()
"""


def test_the_leader_is_alone_and_a_standby_follows_a_release(store: Store) -> None:
    first = leadership_for(store, lease_seconds=LEASE_S)
    second = leadership_for(store, lease_seconds=LEASE_S)
    assert first.wait_to_lead(threading.Event())
    assert not second.try_acquire()
    info = leader_info(store)
    assert info is not None
    assert info["alive"]
    assert {"host", "pid", "since", "kind"} <= set(info)

    first.release()
    assert second.wait_to_lead(threading.Event())
    assert not first.try_acquire()
    second.release()
    info = leader_info(store)
    assert info is not None
    assert not info["alive"]


def test_a_standby_takes_over_when_the_leader_is_killed(store_url: str, store: Store) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, store_url, str(LEASE_S)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "leading"
        standby = leadership_for(store, lease_seconds=LEASE_S)
        assert not standby.try_acquire()
        info = leader_info(store)
        assert info is not None
        assert info["pid"] == holder.pid

        holder.kill()
        holder.wait(timeout=10)
        stop = threading.Event()
        timer = threading.Timer(TAKEOVER_LIMIT_S, stop.set)
        timer.start()
        try:
            assert standby.wait_to_lead(stop), "the standby did not take over"
        finally:
            timer.cancel()
        standby.release()
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()


@pytest.mark.redis
def test_the_lease_is_renewed_while_the_leader_lives(redis_url: str) -> None:
    store = open_store(redis_url)
    try:
        leader = leadership_for(store, lease_seconds=LEASE_S)
        assert isinstance(leader, RedisLease)
        assert leader.wait_to_lead(threading.Event())
        standby = leadership_for(store, lease_seconds=LEASE_S)
        # Several lease lengths pass; the renewals keep the standby out all along.
        deadline = time.monotonic() + 4 * LEASE_S
        while time.monotonic() < deadline:
            assert not standby.try_acquire()
            time.sleep(LEASE_S / 4)
        leader.release()
        assert standby.try_acquire()
        standby.leading = True
        standby.release()
    finally:
        store.close()


@pytest.mark.redis
def test_a_leader_that_loses_its_lease_is_told_at_once(redis_url: str) -> None:
    store = open_store(redis_url)
    lost: list[str] = []
    told = threading.Event()

    def on_lost(why: str) -> None:
        lost.append(why)
        told.set()

    try:
        leader = leadership_for(store, lease_seconds=LEASE_S, on_lost=on_lost)
        assert isinstance(leader, RedisLease)
        assert leader.wait_to_lead(threading.Event())
        # Another scheduler holds the key now (the lease lapsed while we were stopped).
        store.link.client.set(leader.key, "elsewhere:1:x", px=60_000)  # type: ignore[attr-defined]
        assert told.wait(TAKEOVER_LIMIT_S)
        assert "no longer ours" in lost[0]
        leader.release()  # not leading any more: must not delete the other's lease
        assert store.link.client.get(leader.key) == "elsewhere:1:x"  # type: ignore[attr-defined]
    finally:
        store.close()


def test_the_sqlite_lock_lives_beside_the_database(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    try:
        leader = leadership_for(store)
        assert isinstance(leader, FileLock)
        assert leader.path == str(tmp_path / "pw.db.scheduler.lock")
    finally:
        store.close()
