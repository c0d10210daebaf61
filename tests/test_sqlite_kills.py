"""A SQLite store killed (SIGKILL) during heavy writes: intact, and every committed item kept.

RELIABILITY.md S5. The writer is a real process that writes as a crawl's store thread does
(an item entered in the story index, then stored), with the store's WAL checkpointers
running (and one more, busier, beside them), so that kills land mid-transaction,
mid-checkpoint and mid-truncation.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
from typing import TYPE_CHECKING

from pipelines.store import open_store
from pipelines.store.base import ItemQuery

if TYPE_CHECKING:
    from pathlib import Path

KILLS = 20
WRITER = """
import random
import sys
from pipelines.store import open_store
from pipelines.store import sqlite as sqlite_store
from pipelines.story_index import ItemSummary, Lookup

sqlite_store.WAL_TRUNCATE_BYTES = 64 * 1024  # empty the WAL often, to be killed doing it
store = open_store(sys.argv[1])
busier = sqlite_store.WalCheckpointer(store.path, every=0.002)
index = store.story_index()
round, rng = sys.argv[2], random.Random(sys.argv[2])
for n in range(100_000):
    item = {
        "id": f"{round}-{n:06d}",
        "url": f"https://example.kz/{round}/{n}",
        "source": "example",
        "title": f"Новость {n} из раунда {round}",
        "text": "Министерство финансов сообщило о бюджете. " * 40,
        "lang": "ru",
    }
    # as a link writes: its summary, story and 95 candidate keys in random places
    keys = [f"{band:02d}:{rng.getrandbits(64):016x}" for band in range(95)]
    index.enter(ItemSummary.from_dict(item), keys, [Lookup(keys, 1)], again=False)
    store.add_item(item)
    index.item_stored(item)
    print(item["id"], flush=True)  # committed: the store must keep it
"""


def test_kill_9_during_heavy_writes_keeps_every_committed_item(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/pw.db"
    open_store(url).close()
    rng = random.Random(5)  # noqa: S311 -- when to kill, not a secret
    committed: list[str] = []
    for kill in range(KILLS):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(kill)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        wanted = rng.randint(1, 40)
        for _ in range(wanted):
            committed.append(writer.stdout.readline().strip())
        writer.send_signal(signal.SIGKILL)
        writer.communicate()
        with sqlite3.connect(tmp_path / "pw.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        db.close()
    store = open_store(url)
    try:
        stored = {item["id"] for item in store.items(ItemQuery(limit=100_000))}
        index = store.story_index()
        linked = index.stories_of(committed)
        index.close()
    finally:
        store.close()
    assert set(committed) <= stored
    assert set(linked) == set(committed)  # entered before stored: every one is in a story
