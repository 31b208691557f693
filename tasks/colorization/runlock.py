"""One holder per run: an advisory lock file, so that two suites on one DIR never do the same run.

    with claim(out / "locks" / "icolorit-t.lock") as holder:
        if holder is None:
            ...   # this process holds it: do the run
        else:
            ...   # another live process does it; ``holder`` says which

The lock is ``flock`` on the file (POSIX), so the kernel lets go of it when its process ends,
however it ends: a killed suite leaves no stale lock behind, and the file itself may stay.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator, Optional


__all__ = ["claim"]


@contextlib.contextmanager
def claim(path: Path) -> Iterator[Optional[dict]]:
    """Takes the lock ``path`` for the ``with`` block without waiting.

    Yields None when this process holds it (``path`` then names this process: pid, host, since),
    or, when another process holds it, what that process wrote there (``{}`` if unreadable).
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield _holder(path)
            return
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        try:
            yield None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(path: Path) -> dict:
    """What the process holding ``path`` wrote there; ``{}`` when it has not yet or it is not JSON."""
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
