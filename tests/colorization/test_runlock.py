"""adacolor.runlock: one holder per run, released when its process ends however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from adacolor.runlock import claim


def test_a_held_lock_names_its_holder_and_is_free_once_released(tmp_path):
    path = tmp_path / "locks" / "icolorit-t.lock"
    with claim(path) as mine:
        assert mine is None
        with claim(path) as other:   # a second open file: what a second suite would see
            assert other is not None and other["pid"] == os.getpid()
    with claim(path) as again:
        assert again is None


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    path = tmp_path / "icolorit-t.lock"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from adacolor.runlock import claim
        with claim(Path({str(path)!r})) as held:
            print("held" if held is None else "not held", flush=True)
            time.sleep(120)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with claim(path) as other:
            assert other is not None and other["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert path.is_file()   # the file stays; the lock went with its process
    with claim(path) as mine:
        assert mine is None
