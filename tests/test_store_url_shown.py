"""A Redis password in the store URL is never printed: demo, status, errors (RELIABILITY X5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pipelines.store.urls import redact_password
from scheduler.demo import DemoResult, closing_line
from tests.fixtures.redis_server import running_redis_server

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.fixtures.redis_server import RedisServer

PRESSWATCH = str(Path(sys.executable).with_name("presswatch"))
CANARY = f"CANARY-REDIS-{uuid.uuid4().hex}"

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis_server(tmp_path_factory.mktemp("auth"), password=CANARY) as server:
        yield server


def presswatch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100"}
    env.pop("PRESSWATCH_STORE", None)
    return subprocess.run(
        [PRESSWATCH, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_no_canary(done: subprocess.CompletedProcess[str]) -> None:
    assert CANARY not in done.stdout
    assert CANARY not in done.stderr
    assert "Traceback" not in done.stderr


def test_the_demo_closing_line_hides_the_password() -> None:
    result = DemoResult(f"redis://:{CANARY}@127.0.0.1:6390/0", {}, {"a": 3}, 1.5, [])
    line = closing_line(result)
    assert line.startswith("3 items in redis://:***@127.0.0.1:6390/0 after 1.5 s.")
    assert CANARY not in line


def test_redact_password_in_text_that_quotes_the_url() -> None:
    url = f"redis://pw:{CANARY}%21@127.0.0.1:6390/0?password={CANARY}x"
    text = f"could not open {url}; AUTH {CANARY}! and {CANARY}%21 failed"
    assert CANARY not in redact_password(text, url)
    assert "redis://pw:***@127.0.0.1:6390/0?password=***" in redact_password(text, url)


def test_status_hides_the_password(guarded: RedisServer) -> None:
    shown = presswatch("status", "--store", guarded.url, "--json")
    assert shown.returncode == 0, shown.stderr
    assert_no_canary(shown)
    assert json.loads(shown.stdout)["store"] == f"redis://:***@127.0.0.1:{guarded.port}/0"
    table = presswatch("status", "--store", guarded.url)
    assert table.returncode == 0, table.stderr
    assert_no_canary(table)


def test_a_wrong_password_is_refused_without_echoing_it(guarded: RedisServer) -> None:
    wrong = f"redis://:{CANARY}-wrong@127.0.0.1:{guarded.port}/0"
    done = presswatch("items", "--store", wrong)
    assert done.returncode == 2
    assert_no_canary(done)
    assert "refused the password" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_demo_hides_the_password(guarded: RedisServer) -> None:
    with guarded.client() as client:
        client.flushall()
    done = presswatch("demo", "--store", guarded.url, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_no_canary(done)
    assert f"in redis://:***@127.0.0.1:{guarded.port}/0 after" in " ".join(done.stdout.split())
