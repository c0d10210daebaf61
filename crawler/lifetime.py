"""Processes that must not outlive the one they work for (Linux; nothing elsewhere)."""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where it cannot.

    The caller checks afterwards that its parent is still the one it expects: a parent
    that died before the request was made sends no signal.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0


def end_with(pid: int) -> None:
    """End this process as soon as process `pid` ends, whoever its parent is.

    For extraction workers: their parent is multiprocessing's fork server, which waits
    for them, while they wait on a task queue they hold both ends of. Neither would see
    a SIGKILLed crawl go, and both stayed behind. A thread waits on the crawl's pidfd.
    """
    try:
        watched = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(0)  # already gone
    except (AttributeError, OSError):
        return  # no pidfds here (not Linux 5.3+)

    def wait_and_end() -> None:
        select.select([watched], [], [])
        os._exit(0)

    threading.Thread(target=wait_and_end, name="end-with", daemon=True).start()
