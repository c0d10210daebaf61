"""Test fixtures live in tests/fixtures/, one module per kind of real server they start."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

pytest_plugins = [
    "tests.fixtures.redis_server",
    "tests.fixtures.stores",
    "tests.fixtures.portal",
    "tests.fixtures.faults",
    "tests.fixtures.browser_portal",
    "tests.fixtures.sinks",
    "tests.fixtures.sentry_ingest",
]


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own spool (pipelines.spool), for its crawls and their subprocesses: a
    spool left by one test must never be replayed into another's store."""
    directory = tmp_path / "spool"
    monkeypatch.setenv("PRESSWATCH_SPOOL_DIR", str(directory))
    return directory
