"""One scheduler per store: a lease in Redis or a lock beside the SQLite file; standbys wait.

- Redis: ``SET key token NX PX ttl`` takes the lease; the holder renews it every third of
  the TTL (compare-and-PEXPIRE in Lua) and releases it by compare-and-delete, so it can
  never extend or drop a lease another scheduler holds. A dead leader's lease lapses after
  at most one TTL and a standby, asking every third of the TTL, takes over.
- SQLite: an exclusive ``flock`` on ``<db>.scheduler.lock``. The kernel releases it when
  the process dies, however it dies; a standby asks every `poll_seconds`.

A leader that cannot renew its lease before it lapses calls `on_lost` at once (the service
stops scheduling and exits), so two schedulers never run the same jobs. Who leads (host,
pid, since) is recorded in the store's state ``scheduler/leader`` for `presswatch status`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:
    from collections.abc import Callable

    from pipelines.store import Store
    from pipelines.store.redis import RedisLink

logger = logging.getLogger(__name__)

LEADER_STATE = "scheduler/leader"
DEFAULT_LEASE_SECONDS = 15.0
DEFAULT_POLL_SECONDS = 1.0
LOCK_SUFFIX = ".scheduler.lock"

# KEYS[1] lease; ARGV[1] our token, ARGV[2] TTL in ms. Touch the lease only while it is ours.
RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def identity() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


class Leadership(ABC):
    """Wait to lead (`wait_to_lead`), hold it, give it back (`release`)."""

    kind = ""

    def __init__(self, store: Store, *, on_lost: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.on_lost = on_lost
        self.leading = False

    @abstractmethod
    def try_acquire(self) -> bool:
        """Take the lead if nobody holds it; True when we lead now."""

    @abstractmethod
    def _give_back(self) -> None: ...

    @property
    @abstractmethod
    def poll_seconds(self) -> float: ...

    def wait_to_lead(self, stop: threading.Event) -> bool:
        """Block until we lead (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            if self.try_acquire():
                self.leading = True
                self._record()
                logger.info("leading the scheduler of %s (%s)", self.store.url, self.kind)
                return True
            if not announced:
                logger.info(
                    "another scheduler leads %s; standing by (asking every %.1f s)",
                    self.store.url,
                    self.poll_seconds,
                )
                announced = True
            stop.wait(self.poll_seconds)
        return False

    def _record(self) -> None:
        self.store.set_state(
            LEADER_STATE,
            {**identity(), "since": datetime.now(UTC).isoformat(timespec="seconds"),
             "kind": self.kind},
        )  # fmt: skip

    def release(self) -> None:
        if self.leading:
            self.leading = False
            self._give_back()
            logger.info("gave up the lead of %s", self.store.url)

    def _lost(self, why: str) -> None:
        if not self.leading:
            return
        self.leading = False
        logger.error("lost the lead of %s: %s; scheduling stops now", self.store.url, why)
        if self.on_lost is not None:
            self.on_lost(why)


class RedisLease(Leadership):
    """A lease in Redis (`Keys.scheduler_leader`), renewed by a thread while we lead."""

    kind = "redis lease"

    def __init__(
        self,
        store: Store,
        link: RedisLink,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(store, on_lost=on_lost)
        self.link = link
        self.lease_seconds = lease_seconds
        self.key = link.keys.scheduler_leader()
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self._renew = link.client.register_script(RENEW_LUA)
        self._release = link.client.register_script(RELEASE_LUA)
        self._stop_renewing = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def poll_seconds(self) -> float:
        return self.lease_seconds / 3

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.lease_seconds * 1000))

    def try_acquire(self) -> bool:
        with self.link.errors():
            taken = self.link.client.set(self.key, self.token, nx=True, px=self._ttl_ms)
        if not taken:
            return False
        self._stop_renewing.clear()
        self._renewer = threading.Thread(
            target=self._keep_renewing, args=(time.monotonic() + self.lease_seconds,),
            name="leader-lease", daemon=True,
        )  # fmt: skip
        self._renewer.start()
        return True

    def _keep_renewing(self, valid_until: float) -> None:
        while not self._stop_renewing.wait(self.poll_seconds):
            asked_at = time.monotonic()
            try:
                renewed = self._renew(keys=[self.key], args=[self.token, self._ttl_ms])
            except redis.RedisError as exc:
                # Unknown whether it was renewed: hold on only while the last lease lasts.
                if time.monotonic() >= valid_until:
                    self._lost(f"cannot reach Redis to renew the lease ({type(exc).__name__})")
                    return
                logger.warning("renewing the leader lease failed (%s); retrying", exc)
                continue
            if renewed != 1:
                self._lost("the lease lapsed and is no longer ours (paused or cut off too long?)")
                return
            valid_until = asked_at + self.lease_seconds

    def _give_back(self) -> None:
        self._stop_renewing.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=5)
        with contextlib.suppress(redis.RedisError):
            self._release(keys=[self.key], args=[self.token])


class FileLock(Leadership):
    """An exclusive ``flock`` on a file beside the SQLite store."""

    kind = "file lock"

    def __init__(
        self,
        store: Store,
        path: str,
        *,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(store, on_lost=on_lost)
        self.path = path
        self._poll_seconds = poll_seconds
        self._fd: int | None = None

    @property
    def poll_seconds(self) -> float:
        return self._poll_seconds

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _give_back(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_path(store_path: str) -> str:
    return store_path + LOCK_SUFFIX


def leadership_for(
    store: Store,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    on_lost: Callable[[str], None] | None = None,
) -> Leadership:
    """The leadership that fits `store`: a Redis lease, or a lock file beside SQLite."""
    link = getattr(store, "link", None)
    if link is not None:
        return RedisLease(store, link, lease_seconds=lease_seconds, on_lost=on_lost)
    path = getattr(store, "path", None)
    if path is None:
        msg = f"the store {store.url} offers neither a Redis link nor a file to lock"
        raise TypeError(msg)
    return FileLock(
        store, lock_path(path), poll_seconds=min(DEFAULT_POLL_SECONDS, lease_seconds),
        on_lost=on_lost,
    )  # fmt: skip


def leader_alive(store: Store) -> bool:
    """Whether some scheduler leads `store` right now (it holds the lease or the lock)."""
    link = getattr(store, "link", None)
    if link is not None:
        with link.errors():
            return bool(link.client.exists(link.keys.scheduler_leader()))
    path = lock_path(store.path)  # type: ignore[attr-defined]
    if not os.path.exists(path):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        # A shared probe: it fails while the leader holds its exclusive lock, and taken
        # for a moment it only delays a standby by one poll.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def leader_info(store: Store) -> dict[str, Any] | None:
    """Who leads or led (host, pid, since, kind) and whether it is alive now; None: never."""
    recorded = store.get_state(LEADER_STATE)
    alive = leader_alive(store)
    if recorded is None and not alive:
        return None
    return {**(recorded or {}), "alive": alive}
