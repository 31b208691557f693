"""Running the app with uvicorn: in the foreground (``adacolor app``) or in a background thread.

The socket is bound before uvicorn starts, so the URL printed is one that already accepts
connections, and port 0 picks a free port (tests, benchmarks).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["bind", "url_of", "serve", "background"]


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


def serve(app: Any, sock: socket.socket, log_level: str = "warning") -> None:
    """Serves ``app`` on ``sock`` until interrupted (Ctrl+C)."""
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
