"""RELIABILITY S1, S4, S5: the store goes away mid-crawl and no item is lost or stored twice.

Real parts only: a redis-server of the test's own (killed with SIGKILL and restarted on
its port, or starved with ``CONFIG SET maxmemory``), a SQLite file made read-only with
the immutable attribute (root ignores file modes) or put on a full tmpfs, and the replay
portal. Crawls run as ``python -m crawler.run`` subprocesses, the CLI as the installed
``presswatch`` script. Each scenario prints its figures (expected / stored / spooled /
replayed) for the reliability report.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from scrapy.settings import Settings

from crawler.items import PressItem, item_id
from crawler.urls import canonical_url
from pipelines.outage import RetryPolicy, lasting
from pipelines.spool import Spool
from pipelines.store import ItemQuery, open_store
from pipelines.store.base import StoreError
from scheduler.replay import ReplayPortal, ReplayServer, generate_articles
from tests.fixtures.redis_server import start_redis_server
from tests.test_crawl import REPO, TEST_SETTINGS, write_sources
from tests.waiting import wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.fixtures.redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)
slow = pytest.mark.slow

PORTAL = "outage"
ARTICLES = 40
# Slow enough that the store can be broken while articles are still coming in.
OUTAGE_SETTINGS = {
    **TEST_SETTINGS,
    "CONCURRENT_REQUESTS": 8,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
    "DOWNLOAD_DELAY": 0.05,
    "STORE_RETRY_BASE_DELAY": 0.2,
    "STORE_RETRY_MAX_DELAY": 1.0,
}
# A crawl that gives up still downloads what its downloader holds (CONCURRENT_REQUESTS),
# and the first pages the item went with: no more.
STOPPED_WITHIN = 8 + 2
PRESSWATCH = str(Path(sys.executable).with_name("presswatch"))


@pytest.fixture
def outage_portal() -> Iterator[ReplayServer]:
    spec = ReplayPortal(
        name=PORTAL, title="Портал", articles=generate_articles(ARTICLES, seed=12), page_size=20
    )
    with ReplayServer([spec]) as server:
        yield server


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for this test alone, since it is killed. ``appendfsync always``:
    what Redis itself loses to a SIGKILL under ``everysec`` is row S3's subject, not ours."""
    server = start_redis_server(tmp_path / "redis", "--appendfsync", "always")
    try:
        yield server
    finally:
        server.stop()


class Crawl:
    """One ``python -m crawler.run`` in the background, its stderr in a file."""

    def __init__(self, tmp_path: Path, sources: Path, store_url: str, **overrides: Any) -> None:
        settings = {**OUTAGE_SETTINGS, **overrides}
        command = [sys.executable, "-m", "crawler.run", "--sources", str(sources)]
        command += [f"--set={key}={json.dumps(value)}" for key, value in settings.items()]
        self.log = tmp_path / f"crawl-{len(list(tmp_path.glob('crawl-*.log')))}.log"
        self._stderr = self.log.open("w")
        self.process = subprocess.Popen(
            [*command, "--store", store_url, PORTAL],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def said(self, text: str) -> bool:
        return text in self.log.read_text()

    def finish(self) -> tuple[int, dict[str, Any], str]:
        """Exit code, the source's stats and the stderr of the crawl, once it ends."""
        try:
            out, _ = self.process.communicate(timeout=50)
        finally:
            self.process.kill()
            self._stderr.close()
        stats = json.loads(out)[PORTAL] if out.strip() else {}
        return self.process.returncode, stats, self.log.read_text()


def article_hits(portal: ReplayServer) -> int:
    return sum(1 for hit in portal.requests(PORTAL) if hit["kind"] == "article")


def expected_ids(portal: ReplayServer) -> set[str]:
    base = portal.base_url(PORTAL)
    return {item_id(canonical_url(base + a.path)) for a in portal.portals[PORTAL].articles}


def stored_ids(store_url: str) -> list[str]:
    store = open_store(store_url)
    try:
        return [item["id"] for item in store.items(ItemQuery(source=PORTAL, limit=1000))]
    finally:
        store.close()


def assert_stored_once(portal: ReplayServer, store_url: str, figures: dict[str, int]) -> None:
    ids = stored_ids(store_url)
    expected = expected_ids(portal)
    lost, duplicated = len(expected - set(ids)), len(ids) - len(set(ids))
    print(  # the figures of the reliability report (pytest -s, or -rP)
        f"\n{figures} expected={len(expected)} stored={len(set(ids))}"
        f" lost={lost} duplicated={duplicated}"
    )
    assert set(ids) == expected
    assert duplicated == 0


def spooled(spool_dir: Path) -> int:
    return sum(len(path.read_text().splitlines()) for path in spool_dir.glob("*") if path.is_file())


# --- Redis: killed and back ---------------------------------------------------------------


@slow
@pytest.mark.redis
def test_redis_killed_and_restarted_mid_crawl_loses_nothing(
    outage_portal: ReplayServer, own_redis: RedisServer, tmp_path: Path
) -> None:
    """Back within the retry budget: the items wait (fetching paused) and all are stored."""
    sources = write_sources(tmp_path / "s.yaml", outage_portal.source_config(PORTAL))
    crawl = Crawl(tmp_path, sources, own_redis.url)
    wait_for(lambda: article_hits(outage_portal) >= 8, "the crawl to fetch some articles")
    own_redis.process.kill()
    own_redis.process.wait()
    wait_for(lambda: crawl.said("the store failed"), "the crawl to notice the dead store")
    own_redis.restart()
    code, stats, log = crawl.finish()
    assert code == 0, log[-3000:]
    assert stats["finish_reason"] == "finished"
    assert stats["store/outages"] >= 1
    assert stats["store/retries"] >= 1
    assert "store/spooled" not in stats
    assert "the store is back" in log
    assert_stored_once(
        outage_portal,
        own_redis.url,
        {"scenario": "redis SIGKILL, back in budget", "retries": stats["store/retries"],
         "spooled": 0, "replayed": 0},
    )  # fmt: skip


@slow
@pytest.mark.redis
def test_redis_down_past_the_budget_spools_fails_the_run_and_the_next_crawl_replays(
    outage_portal: ReplayServer, own_redis: RedisServer, tmp_path: Path, spool_dir: Path
) -> None:
    """Down longer than STORE_RETRY_MAX_TIME: the crawl stops fetching, spools what it
    holds, exits non-zero and saves no feed validators; the next one replays the spool
    first and fetches the feeds again, and every article ends up stored once."""
    config = outage_portal.source_config(PORTAL)
    sources = write_sources(tmp_path / "s.yaml", config)
    crawl = Crawl(tmp_path, sources, own_redis.url, STORE_RETRY_MAX_TIME=1.0)
    wait_for(lambda: article_hits(outage_portal) >= 8, "the crawl to fetch some articles")
    own_redis.process.kill()
    own_redis.process.wait()
    code, stats, log = crawl.finish()
    fetched = article_hits(outage_portal)
    assert code == 3, log[-3000:]
    assert stats["finish_reason"] == "store_unavailable"
    reasons = [line for line in log.splitlines() if line.startswith("crawl failed: ")]
    assert len(reasons) == 1
    assert reasons[0].startswith(f"crawl failed: {PORTAL}: stopped, the store is unavailable (")
    assert "Traceback" not in reasons[0]
    assert stats["store/spooled"] >= 1
    assert spooled(spool_dir) == stats["store/spooled"]
    assert fetched < ARTICLES  # it stopped fetching

    own_redis.restart()
    store = open_store(own_redis.url)
    try:  # the failed run kept none of the feed's validators: the next one fetches it whole
        assert store.get_validators(config["discovery"]["feeds"][0]) == {}
    finally:
        store.close()
    seen = len(outage_portal.requests(PORTAL))
    again = Crawl(tmp_path, sources, own_redis.url)
    code, second, log = again.finish()
    assert code == 0, log[-3000:]
    assert second["store/replayed"] == stats["store/spooled"]
    assert ("feed", 200) in {
        (h["kind"], h["status"]) for h in outage_portal.requests(PORTAL)[seen:]
    }
    assert spooled(spool_dir) == 0
    assert_stored_once(
        outage_portal,
        own_redis.url,
        {"scenario": "redis SIGKILL past budget", "spooled": stats["store/spooled"],
         "replayed": second["store/replayed"]},
    )  # fmt: skip


@slow
@pytest.mark.redis
def test_redis_out_of_memory_mid_crawl_loses_nothing(
    outage_portal: ReplayServer, own_redis: RedisServer, tmp_path: Path
) -> None:
    """S4: Redis refuses writes (maxmemory reached, noeviction); once raised, all are kept."""
    sources = write_sources(tmp_path / "s.yaml", outage_portal.source_config(PORTAL))
    crawl = Crawl(tmp_path, sources, own_redis.url)
    wait_for(lambda: article_hits(outage_portal) >= 8, "the crawl to fetch some articles")
    with own_redis.client() as client:
        client.config_set("maxmemory", "1")
        wait_for(lambda: crawl.said("OutOfMemoryError"), "the crawl to hit the memory limit")
        client.config_set("maxmemory", "0")
    code, stats, log = crawl.finish()
    assert code == 0, log[-3000:]
    assert stats["finish_reason"] == "finished"
    assert stats["store/retries"] >= 1
    assert_stored_once(
        outage_portal,
        own_redis.url,
        {"scenario": "redis OOM", "retries": stats["store/retries"], "spooled": 0,
         "replayed": 0},
    )  # fmt: skip


# --- SQLite: read-only, full ----------------------------------------------------------------


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """`path` read-only even for root (chattr +i), while the block runs."""
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr not found (e2fsprogs)")
    done = subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot make a file immutable here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def fresh_sqlite(path: Path) -> str:
    url = f"sqlite:///{path}"
    path.parent.mkdir(parents=True, exist_ok=True)
    open_store(url).close()  # the schema exists: only item writes can fail
    return url


@slow
def test_a_read_only_sqlite_store_stops_the_crawl_with_one_line(
    outage_portal: ReplayServer, tmp_path: Path
) -> None:
    sources = write_sources(tmp_path / "s.yaml", outage_portal.source_config(PORTAL))
    db = tmp_path / "ro" / "pw.db"
    store_url = fresh_sqlite(db)
    with immutable(db):
        crawl = Crawl(tmp_path, sources, store_url)
        code, stats, log = crawl.finish()
    assert code == 3, log[-3000:]
    assert stats["finish_reason"] == "store_unavailable"
    assert "readonly database" in stats["store/error"]
    assert "retrying" not in log  # waiting cannot mend a read-only file
    assert article_hits(outage_portal) <= STOPPED_WITHIN  # it stopped fetching at once
    assert stored_ids(store_url) == []


def presswatch_crawl(tmp_path: Path, store_url: str, sources: Path) -> list[str]:
    """`presswatch crawl` expected to fail: its stderr lines, checked for no traceback."""
    done = subprocess.run(
        [
            PRESSWATCH,
            "crawl",
            "--store",
            store_url,
            "--sources",
            str(sources),
            "--allow-net",
            "127.0.0.0/8",
        ],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()


@slow
def test_presswatch_crawl_on_a_read_only_store_says_so_in_one_line(
    outage_portal: ReplayServer, tmp_path: Path
) -> None:
    sources = write_sources(tmp_path / "s.yaml", outage_portal.source_config(PORTAL))
    db = tmp_path / "ro" / "pw.db"
    store_url = fresh_sqlite(db)
    with immutable(db):
        (line,) = presswatch_crawl(tmp_path, store_url, sources)
    assert line.startswith(f"error: {PORTAL}: stopped, the store is unavailable")
    assert "items spooled for the next crawl" in line


@slow
@pytest.mark.redis
def test_presswatch_crawl_on_an_unreachable_store_says_so_in_one_line(
    outage_portal: ReplayServer, own_redis: RedisServer, tmp_path: Path
) -> None:
    sources = write_sources(tmp_path / "s.yaml", outage_portal.source_config(PORTAL))
    own_redis.stop()
    (line,) = presswatch_crawl(tmp_path, own_redis.url, sources)
    assert line.startswith(f"error: Redis at 127.0.0.1:{own_redis.port} failed (ConnectionError")
    assert outage_portal.requests(PORTAL) == []


@contextlib.contextmanager
def full_tmpfs(directory: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs at `directory` (root only); the caller fills it."""
    directory.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True)


def fill(directory: Path) -> Path:
    """Fill the file system of `directory` to the last byte; returns the filler file."""
    filler = directory / "filler"
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as out:
        while True:
            out.write(b"\0" * 4096)
    return filler


@slow
def test_a_full_disk_stops_the_crawl_and_the_next_one_stores_everything(
    outage_portal: ReplayServer, tmp_path: Path, spool_dir: Path
) -> None:
    """S5: SQLite's disk fills up. The crawl pauses, retries, gives up, spools (the spool
    is elsewhere) and exits non-zero; once space is freed the next crawl stores all."""
    sources = write_sources(tmp_path / "s.yaml", outage_portal.source_config(PORTAL))
    with full_tmpfs(tmp_path / "disk") as disk:
        store_url = fresh_sqlite(disk / "pw.db")
        crawl = Crawl(tmp_path, sources, store_url, STORE_RETRY_MAX_TIME=1.0)
        wait_for(lambda: article_hits(outage_portal) >= 8, "the crawl to fetch some articles")
        filler = fill(disk)
        code, stats, log = crawl.finish()
        assert code == 3, log[-3000:]
        assert stats["finish_reason"] == "store_unavailable"
        assert "full" in stats["store/error"]
        assert article_hits(outage_portal) < ARTICLES
        assert spooled(spool_dir) == stats["store/spooled"] >= 1
        filler.unlink()
        code, second, log = Crawl(tmp_path, sources, store_url).finish()
        assert code == 0, log[-3000:]
        assert second["store/replayed"] == stats["store/spooled"]
        assert_stored_once(
            outage_portal,
            store_url,
            {"scenario": "sqlite disk full", "spooled": stats["store/spooled"],
             "replayed": second["store/replayed"]},
        )  # fmt: skip


# --- the parts, without a crawl ----------------------------------------------------------------


def test_the_spool_keeps_items_across_a_replay_that_did_not_settle(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", "vestnik", "sqlite:///pw.db")
    first = PressItem(url="https://v.kz/1", source="vestnik", title="Один", text="Текст").to_dict()
    second = {**first, "url": "https://v.kz/2", "id": ""}
    spool.add(first, "down")
    spool.add(first, "down again")  # one item, twice: replayed once
    spool.add(second, "down")
    with spool.path.open("a") as torn:  # a crash in the middle of a line
        torn.write('{"v": 1, "item": {"url": "https://v.kz/3"')
    taken = spool.begin_replay()
    assert [item["url"] for item in taken] == ["https://v.kz/1", "https://v.kz/2"]
    assert not spool.path.exists()
    # a crash before the replay settled: the next replay takes the same items
    assert [item["url"] for item in spool.begin_replay()] == ["https://v.kz/1", "https://v.kz/2"]
    spool.end_replay([second], "still down")
    assert not spool.replaying.exists()
    assert [json.loads(line)["item"]["url"] for line in spool.path.read_text().splitlines()] == [
        "https://v.kz/2"
    ]
    assert spool.count() == 1


def test_a_spool_belongs_to_one_source_and_store(tmp_path: Path) -> None:
    paths = {
        Spool(tmp_path, source, store).path
        for source in ("a", "b")
        for store in ("sqlite:///one.db", "redis://127.0.0.1:6379/0")
    }
    assert len(paths) == 4


def test_retry_policy_backs_off_within_its_bounds() -> None:
    policy = RetryPolicy(max_time=60, base_delay=0.5, max_delay=8)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (10, 8.0)]:
        assert ceiling / 2 <= policy.delay(attempt) <= ceiling
    with pytest.raises(ValueError, match="STORE_RETRY_"):
        RetryPolicy.from_settings(Settings({"STORE_RETRY_BASE_DELAY": 0}))
    assert RetryPolicy.from_settings(Settings({"STORE_RETRY_ENABLED": False})).max_time == 0


def test_only_errors_that_waiting_cannot_mend_are_lasting() -> None:
    def store_error(cause: BaseException) -> StoreError:
        error = StoreError(str(cause))
        error.__cause__ = cause
        return error

    assert lasting(store_error(sqlite3.OperationalError("attempt to write a readonly database")))
    assert lasting(store_error(redis.AuthenticationError("WRONGPASS")))
    assert not lasting(store_error(sqlite3.OperationalError("database or disk is full")))
    assert not lasting(store_error(redis.ConnectionError("refused")))
    assert not lasting(store_error(redis.exceptions.OutOfMemoryError("OOM")))
