"""Run `presswatch` as a user does: the installed console script, in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

# The script pip or uv installed beside this interpreter: what `presswatch` on PATH runs.
PRESSWATCH = str(Path(sys.executable).with_name("presswatch"))
REPO = Path(__file__).resolve().parents[1]


def presswatch(
    *args: str,
    cwd: Path = REPO,
    env: Mapping[str, str] | None = None,
    timeout: float = 150,
) -> subprocess.CompletedProcess[str]:
    """Run ``presswatch ARGS`` to the end; wide columns unless `env` says otherwise."""
    return subprocess.run(
        [PRESSWATCH, *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_presswatch(
    *args: str, log: Path, cwd: Path = REPO, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``presswatch ARGS`` in its own process group (a kill takes its crawls too),
    stdout and stderr appended to `log`."""
    with log.open("ab") as stream:
        return subprocess.Popen(
            [PRESSWATCH, *args],
            cwd=cwd,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
            stdout=stream,
            stderr=stream,
            start_new_session=True,
        )


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and everything it started."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
