"""Bounded load tests: 8 concurrent clients x 20 edits against a real uvicorn server, and 8 clients
editing their own 4000x3000 photos against the server in its own process, whose memory is bounded."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from adacolor.app.browser_bench import LARGE, load_test, photo_jpeg, rss_bound_mb, server_process
from adacolor.app.serve import background
from adacolor.app.server import create_app
from adacolor.model import create_colorizer

CLIENTS, EDITS = 8, 20


def _photo(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _pixels(content: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(content)) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.slow
def test_eight_clients_editing_at_once_get_their_own_results_without_error() -> None:
    torch.manual_seed(0)
    models = {"adacolvit-t": create_colorizer("adacolvit-t", image_size=64).eval(),
              "icolorit-t": create_colorizer("icolorit-t", image_size=64).eval()}
    start = threading.Barrier(CLIENTS)

    def client(index: int, url: str) -> dict:
        width, height = 60 + 7 * index, 40 + 3 * index  # each client's photo has its own size
        model = "adacolvit-t" if index % 2 == 0 else "icolorit-t"
        hints, last = [], None
        with httpx.Client(base_url=url, timeout=120) as http:
            photo = http.post("/api/images", files={"image": ("p.png", _photo(width, height, index), "image/png")})
            assert photo.status_code == 200, photo.text
            photo_id = photo.json()["id"]
            start.wait()
            for edit in range(EDITS):
                hints.append({"x": (edit * 13 + index) % width, "y": (edit * 7) % height, "size": 2 + edit % 6,
                              "rgb": [(40 * edit) % 256, (90 + 11 * index) % 256, 200]})
                response = http.post(f"/api/images/{photo_id}/colorize", json={"hints": hints, "model": model})
                assert response.status_code == 200, response.text
                assert response.headers["X-Adaprune-Model"] == model
                last = _pixels(response.content)
                assert last.shape == (height, width, 3)  # its own photo, never another client's
                float(response.headers["X-Adaprune-Latency-Ms"])
            info = http.get(f"/api/images/{photo_id}/compute-map.json").json()
            assert info["model"] == model and info["adaptive"] == (model == "adacolvit-t")
        return {"id": photo_id, "hints": hints, "model": model, "last": last}

    with background(create_app(models)) as url:
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(client, range(CLIENTS), [url] * CLIENTS))
        # a result computed under load is the one the same request gets alone
        with httpx.Client(base_url=url, timeout=120) as http:
            # and the real server answers bad requests and stays up
            assert http.post("/api/images", files={"image": ("t.txt", b"text", "text/plain")}).status_code == 400
            cut = _photo(50, 50, 0)[:200]
            assert http.post("/api/images", files={"image": ("c.png", cut, "image/png")}).status_code == 400
            assert http.post(f"/api/images/{results[0]['id']}/colorize", content=b"{").status_code == 400
            for result in results:
                again = http.post(f"/api/images/{result['id']}/colorize",
                                  json={"hints": result["hints"], "model": result["model"]})
                np.testing.assert_array_equal(_pixels(again.content), result["last"])
            assert http.get("/api/models").status_code == 200
    assert len({r["id"] for r in results}) == CLIENTS


@pytest.mark.slow
def test_eight_clients_on_large_photos_stay_within_the_memory_the_photos_need() -> None:
    """8 clients each upload their own 4000x3000 photo and click 3 times at once, one downloads the
    full-resolution PNG: every answer is right (a preview at the size asked, the full photo for the
    download), and the server's peak resident memory is under ``rss_bound_mb``: its models, 36 MB
    of pixels and a display-sized lightness per photo, and the transients of the few previews,
    decodes and downloads it runs at once. Before, each click made full-size float copies of its
    photo (144 MB each for the input, the result and its grey), so memory grew with the clients."""
    photo = photo_jpeg(LARGE)
    with server_process(["adacolvit-t", "icolorit-t"], image_size=64, threads=2) as info:
        report = load_test(info["url"], info["pid"], photo, clients=CLIENTS, clicks=3, downloads=1)
    assert report["errors"] == [] and report["distinct_photos"] == CLIENTS
    assert report["requests"] == CLIENTS * 3 + 1
    assert report["peak_rss_mb"] <= report["rss_bound_mb"], report
    # the bound grows by the photos alone: 8 more clients cost their pixels, not their clicks
    more = rss_bound_mb(0.0, 2 * CLIENTS, LARGE, (960, 720)) - rss_bound_mb(0.0, CLIENTS, LARGE, (960, 720))
    assert more < CLIENTS * 4 * LARGE[0] * LARGE[1] / 2 ** 20


def test_served_connections_send_without_waiting_for_acks() -> None:
    """asyncio sets TCP_NODELAY only on sockets created as TCP; without it each keep-alive
    response waited ~40 ms for the ACK of its headers (Nagle's algorithm vs delayed ACKs)."""
    import asyncio
    import socket

    from adacolor.app.serve import bind

    listening = bind("127.0.0.1", 0)
    assert listening.proto == socket.IPPROTO_TCP

    async def accepted_nodelay() -> int:
        flags: list[int] = []

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                flags.append(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        server = await asyncio.get_running_loop().create_server(Probe, sock=listening)
        client = socket.create_connection(listening.getsockname()[:2])
        for _ in range(100):
            if flags:
                break
            await asyncio.sleep(0.01)
        client.close()
        server.close()
        return flags[0]

    assert asyncio.run(accepted_nodelay()) != 0
