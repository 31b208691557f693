"""Running the app with uvicorn: in the foreground (``adacolor app``) or in a background thread.

The socket is bound before uvicorn starts, so the URL printed is one that already accepts
connections, and port 0 picks a free port (tests, benchmarks). A server process started by
:func:`serve` also tells its allocator to give freed buffers back (:func:`limit_retained_memory`),
so its memory follows the photos it holds.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

__all__ = ["bind", "url_of", "serve", "background", "limit_retained_memory", "LARGE_BLOCK"]

# glibc serves blocks under its mmap threshold (dynamic, up to 32 MiB) from per-thread arenas (up
# to 8 per core) and keeps them when freed: a server whose worker threads each handle a full-size
# photo now and then keeps the peak of every thread. Measured with 8 clients clicking on their own
# 4000x3000 photos: 2.2 GB resident where 1.35 GB was in use; with downloads, 3.9 GB. Blocks from
# LARGE_BLOCK up are mapped on their own and unmapped when freed (a preview's buffers, a few MB,
# stay below it, so clicks pay no page faults), and one arena per core: 1.35 and 1.8 GB.
LARGE_BLOCK = 4 << 20
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # mallopt's parameter numbers (malloc.h)


def bind(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port).

    Raises:
        OSError: the address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it a response's body waits ~40 ms for the ACK of its headers (Nagle vs delayed ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port/`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _server(app: Any, log_level: str) -> Any:
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off"))


def limit_retained_memory(large_block: int = LARGE_BLOCK, arenas: Optional[int] = None) -> bool:
    """Makes this process' allocator give freed memory back: blocks of ``large_block`` bytes or
    more are mapped on their own and unmapped when freed (glibc's ``mallopt(M_MMAP_THRESHOLD)``,
    which also stops glibc raising that threshold by itself), and threads share ``arenas`` heaps
    (``M_ARENA_MAX``; default one per core, at least 2). Call it before the threads start.

    Returns:
        Whether it applied: False where the C library is not glibc (nothing changes there).
    """
    count = max(2, os.cpu_count() or 2) if arenas is None else arenas
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(large_block))) and bool(libc.mallopt(_M_ARENA_MAX, count))
    except (OSError, AttributeError):
        return False


def serve(app: Any, sock: socket.socket, log_level: str = "warning") -> None:
    """Serves ``app`` on ``sock`` until interrupted (Ctrl+C), in this process, whose freed
    buffers are returned to the system (:func:`limit_retained_memory`)."""
    limit_retained_memory()
    _server(app, log_level).run(sockets=[sock])


@contextmanager
def background(app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> Iterator[str]:
    """Serves ``app`` from a daemon thread for the ``with`` block; yields its URL.

    Example:
        >>> with background(create_app(models)) as url:
        ...     httpx.get(url + "api/models")
    """
    sock = bind(host, port)
    server = _server(app, log_level)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="adacolor-app")
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the app's server stopped while starting; see its log above")
            thread.join(0.02)
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
