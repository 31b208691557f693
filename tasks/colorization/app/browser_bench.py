"""The app as a person feels it: click to result drawn, in a real browser, and 8 clients at once.

    python -m adacolor.app.browser_bench --out runs/app-browser

Two parts, each against the real server (uvicorn, in its own process, on 127.0.0.1):

- **browser**: Chromium (Playwright, ``/usr/bin/chromium``) opens the page, uploads a
  4000x3000 photo and a 500-pixel one (scikit-image's astronaut and cat, resized up), and clicks
  hints onto the grey photo, one at a time (1 to 10 hints, then *Clear all*). The page times
  each click itself: from the click event to the preview drawn into the result canvas
  (``performance.now()``, ``state.timings`` in ``app.js``); p50 / p95 per photo size.
- **load**: ``clients`` HTTP clients (threads) each upload their own 4000x3000 photo and send
  ``clicks`` edits at once, then download the full-resolution PNG; every answer is checked, and
  the server process' peak resident memory (``VmHWM`` of ``/proc/PID/status``) is compared
  with :func:`rss_bound_mb`, the bound the photo store's size gives.

It writes ``app_browser_bench.json`` (every figure and the set-up) and ``app_browser_bench.md``
(the tables it prints). Timings are reported, never asserted: a 2-core machine shared with
other work gives other figures on another day.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from adacolor.app.screenshots import VIEWPORT

__all__ = ["photo_jpeg", "server_process", "peak_rss_mb", "rss_bound_mb", "browser_timings", "load_test",
           "markdown_tables", "run_browser_bench", "main"]

LARGE = (4000, 3000)  # (width, height) of the large photo: a 12-megapixel camera's
SMALL = (500, 333)    # and of the small one
LOAD_DISPLAY = (960, 720)  # the display size the load test's clients ask previews at
# allocator slack, thread stacks, request and response buffers, the compute maps: what the
# server holds besides the photos and the transients counted in rss_bound_mb
RSS_SLACK_MB = 160.0
# transients per photo pixel, measured on a 4000x3000 photo (RSS high-water mark of one request
# alone): the first preview of a photo reads it whole (the model's input and the lightness at the
# display size, resized band by band: 137 MB, 11.4 B/px); a decode holds the file decoded, its
# copy and the array (7-10 B/px); a download the float temporaries of a band of rows, the 8-bit
# result, PIL's copy of it and the PNG (224 MB, 18.7 B/px)
FIRST_VIEW_BYTES_PER_PIXEL = 12
FULL_SIZE_BYTES_PER_PIXEL = 20
# the page times each click itself (state.timings), so the bench polls for the end every 20 ms
# instead of Playwright's default of every frame, which would compete with the server for the cores
_POLL_MS = 20
_IDLE = "n => state.timings.length >= n && !state.inFlight && document.getElementById('busy').hidden"


def photo_jpeg(size: tuple[int, int], sample: str = "astronaut", quality: int = 92) -> bytes:
    """A real photograph at ``size`` (width, height) as JPEG bytes: scikit-image's ``sample``
    cropped to that aspect and resized (bicubic).

    Args:
        size: (width, height) in pixels.
        sample: a name of ``adacolor.data.sample_photos`` (astronaut, camera, chelsea, coffee...).
        quality: JPEG quality.
    """
    import numpy as np
    from PIL import Image

    from adacolor.data import sample_photos

    photos = sample_photos(None)
    rgb = photos[photos.names.index(sample)]["rgb"]
    image = Image.fromarray((rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    width, height = size
    crop_w = min(image.width, round(image.height * width / height))
    crop_h = min(image.height, round(image.width * height / width))
    left, top = (image.width - crop_w) // 2, (image.height - crop_h) // 2
    image = image.crop((left, top, left + crop_w, top + crop_h)).resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# -- the server, in its own process ------------------------------------------------------------

def _load(names: Sequence[str], image_size: int) -> dict[str, Any]:
    """Shipped models by name; a registered name that is not shipped: untrained at ``image_size``."""
    import torch

    from adacolor.model import create_colorizer
    from adacolor.weights import list_shipped, load_shipped

    shipped = {card["name"] for card in list_shipped()}
    torch.manual_seed(0)
    return {name: (load_shipped(name) if name in shipped else create_colorizer(name, image_size=image_size)).eval()
            for name in names}


def _serve(names: Sequence[str], image_size: int, threads: Optional[int], max_images: int, connection: Any,
           runtime: str = "torch") -> None:
    """The server process: load the models, put each on ``runtime`` as ``adacolor app --runtime``
    does (auto: the fastest measured here among those whose graph is cached), bind a free port,
    report it and this pid, serve."""
    import torch

    from adacolor.app.serve import bind, serve, url_of
    from adacolor.app.server import create_app
    from adacolor.exported import runtime_of, select_runtime

    if threads is not None:
        torch.set_num_threads(threads)
    try:
        models = {name: select_runtime(model, runtime, threads)[0] for name, model in _load(names, image_size).items()}
        app = create_app(models, max_images=max_images)
        sock = bind("127.0.0.1", 0)
    except Exception as error:  # reported to the parent, which says what went wrong
        connection.send({"error": f"{type(error).__name__}: {error}"})
        return
    connection.send({"url": url_of(sock), "pid": os.getpid(), "threads": torch.get_num_threads(),
                     "models": {name: {"image_size": list(m.image_size), "adaptive": bool(m.adaptive),
                                       "runtime": runtime_of(m)} for name, m in models.items()}})
    serve(app, sock, log_level="error")


@contextmanager
def server_process(names: Sequence[str], image_size: int = 224, threads: Optional[int] = None,
                   max_images: int = 16, runtime: str = "torch") -> Iterator[dict[str, Any]]:
    """Runs the app's real server (uvicorn) in its own process for the ``with`` block.

    Args:
        names: the models to serve, the first the default (shipped names, or registered ones
            created untrained at ``image_size``).
        image_size: input size of untrained models.
        threads: torch threads of the server (None: torch's default).
        max_images: photos the server keeps.
        runtime: what runs the models (``adacolor app --runtime``: torch, onnxruntime, openvino or
            auto); a runtime whose graph is not cached is exported first (minutes).

    Yields:
        ``{"url", "pid", "threads", "models"}`` of the running server.
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    server = context.Process(target=_serve, args=(list(names), image_size, threads, max_images, send, runtime),
                             daemon=True)
    server.start()
    try:
        waited = 0.0
        while not receive.poll(0.5):
            waited += 0.5
            if not server.is_alive():
                raise RuntimeError(f"the app's server exited while starting (exit code {server.exitcode})")
            if waited > 300:
                raise RuntimeError("the app's server did not start within 300 s")
        info = receive.recv()
        if "error" in info:
            raise RuntimeError(f"the app's server could not start: {info['error']}")
        yield info
    finally:
        server.terminate()
        server.join(10)


def _status_kb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory of a process so far (``VmHWM``), in MiB (Linux)."""
    return _status_kb(pid, "VmHWM") / 1024.0


def rss_mb(pid: int) -> float:
    """The resident memory of a process now (``VmRSS``), in MiB (Linux)."""
    return _status_kb(pid, "VmRSS") / 1024.0


def rss_bound_mb(baseline_mb: float, clients: int, photo: tuple[int, int], display: tuple[int, int]) -> float:
    """The most the server should hold with ``clients`` photos of ``photo`` (width, height) in it.

    ``baseline_mb`` (the server with its models, before any photo) + per photo its 8-bit pixels
    (3 bytes a pixel) and what clicks reuse (its lightness at the ``display`` size, 4 bytes a
    pixel, a grey PNG at most 3) + the transients of the work the server bounds: at most
    ``PREVIEW_SLOTS`` first views of a photo and ``FULL_SIZE_SLOTS`` decodes or downloads at
    once (``FIRST_VIEW_BYTES_PER_PIXEL`` and ``FULL_SIZE_BYTES_PER_PIXEL`` each) +
    ``RSS_SLACK_MB``. Nothing else grows with the clients: a click works at the display size.
    """
    from adacolor.app.server import FULL_SIZE_SLOTS, PREVIEW_SLOTS

    mib = 1024.0 * 1024.0
    pixels = photo[0] * photo[1]
    shown = display[0] * display[1]
    return (baseline_mb + clients * (3 * pixels + 7 * shown) / mib
            + (PREVIEW_SLOTS * FIRST_VIEW_BYTES_PER_PIXEL + FULL_SIZE_SLOTS * FULL_SIZE_BYTES_PER_PIXEL) * pixels / mib
            + RSS_SLACK_MB)


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    import numpy as np

    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
            "mean": float(statistics.fmean(values))}


# -- the browser part ------------------------------------------------------------------------------

def browser_timings(url: str, photos: Sequence[tuple[str, bytes]], clicks: int = 30, warmup: int = 3,
                    chromium: Optional[str] = None, screenshots: Optional[Path] = None) -> list[dict[str, Any]]:
    """Clicks hints onto each photo in Chromium and reads the page's own timings.

    Args:
        url: the app's URL.
        photos: (label, file bytes) per photo.
        clicks: timed clicks per photo; the hints cycle 1..10 (then *Clear all*).
        warmup: untimed clicks per photo before them.
        chromium: the browser binary (default ``/usr/bin/chromium``, or ``ADAPRUNE_CHROMIUM``).
        screenshots: a folder for one screenshot of the page per photo, after its clicks.

    Returns:
        Per photo: its size, the display size the page asked, and the click -> drawn,
        server and round-trip times (p50, p95, mean, every sample) and the preview's bytes.

    Raises:
        RuntimeError: no Playwright or Chromium, or the page reported an error.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise RuntimeError("Playwright is not installed: pip install playwright (Chromium comes from the "
                           "system: apt-get install chromium)") from None
    from adacolor.app.screenshots import CHROMIUM, CHROMIUM_ARGS, open_page

    binary = shutil.which(chromium or CHROMIUM)
    if binary is None:
        raise RuntimeError(f"no Chromium at {chromium or CHROMIUM}: apt-get install chromium, or set ADAPRUNE_CHROMIUM")
    import random

    rows = []
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as scratch:
        browser = playwright.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS)
        try:
            for label, data in photos:
                path = Path(scratch) / f"{label}.jpg"
                path.write_bytes(data)
                page, problems = open_page(browser, url)
                page.wait_for_function("() => document.getElementById('model').options.length > 0")
                page.set_input_files("#file", str(path))
                page.wait_for_function(_IDLE, arg=1, polling=_POLL_MS)
                box = page.locator("#gray").bounding_box()
                rng = random.Random(0)
                samples, placed = [], []
                for k in range(warmup + clicks):
                    if len(placed) == 10:
                        page.click("#clear")
                        page.wait_for_function("() => state.hints.length === 0 && !state.inFlight")
                        placed.clear()
                    page.keyboard.press("Escape")  # a selected hint would take the new colour
                    page.evaluate("c => { document.getElementById('color').value = c; }",
                                  "#%02x%02x%02x" % (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
                    done = page.evaluate("() => state.timings.length")
                    while True:  # not on a marker already there: that would start a drag, not add a hint
                        x = box["x"] + rng.uniform(0.05, 0.95) * box["width"]
                        y = box["y"] + rng.uniform(0.05, 0.95) * box["height"]
                        if all(abs(x - px) > 24 or abs(y - py) > 24 for px, py in placed):
                            break
                    placed.append((x, y))
                    page.mouse.click(x, y)
                    page.wait_for_function(_IDLE, arg=done + 1, polling=_POLL_MS)
                    if k >= warmup:
                        samples.append(page.evaluate("() => state.timings[state.timings.length - 1]"))
                if problems or "failed" in page.inner_text("#status"):
                    raise RuntimeError(f"{label}: the page reported {problems or page.inner_text('#status')!r}")
                photo = page.evaluate("() => [state.photo.width, state.photo.height]")
                display = page.evaluate("() => state.display")
                if screenshots is not None:
                    screenshots.mkdir(parents=True, exist_ok=True)
                    page.keyboard.press("Escape")
                    page.screenshot(path=str(screenshots / f"page-{label}.png"))
                page.close()
                rows.append({"photo": label, "photo_size": photo, "display": display,
                             "preview_size": [samples[-1]["width"], samples[-1]["height"]], "clicks": len(samples),
                             "click_to_drawn_ms": _percentiles([s["ms"] for s in samples]),
                             "server_ms": _percentiles([s["server_ms"] for s in samples]),
                             "round_trip_ms": _percentiles([s["round_trip_ms"] for s in samples]),
                             "preview_bytes_mean": statistics.fmean(s["bytes"] for s in samples),
                             "samples": samples})
        finally:
            browser.close()
    return rows


# -- the load part ------------------------------------------------------------------------------------

def load_test(url: str, pid: int, photo: bytes, clients: int = 8, clicks: int = 5,
              display: tuple[int, int] = LOAD_DISPLAY, downloads: Optional[int] = None) -> dict[str, Any]:
    """``clients`` threads each upload ``photo`` (their own copy on the server) and send ``clicks``
    edits at once at ``display``, then ``downloads`` of them (default: all) fetch the full PNG.

    Every answer is checked (status, format, size); the server's resident memory is sampled
    throughout, and its peak read at the end.

    Returns:
        ``{"clients", "clicks", "errors": [...], "requests", "edit_ms": {p50, p95, mean},
        "download_ms", "peak_rss_mb", "baseline_rss_mb", "rss_bound_mb", "photo_size", "display"}``.
    """
    import httpx
    from PIL import Image

    from adacolor.app.server import preview_size

    with Image.open(io.BytesIO(photo)) as probe:
        size = probe.size
    preview_h, preview_w = preview_size(display, (size[1], size[0]))
    downloads = clients if downloads is None else downloads
    baseline = rss_mb(pid)
    errors: list[str] = []
    edits: list[float] = []
    fetches: list[float] = []
    ids: list[str] = []
    start = threading.Barrier(clients)
    lock = threading.Lock()

    def check(response: Any, kind: str, want: tuple[int, int], what: str) -> None:
        if response.status_code != 200:
            raise RuntimeError(f"{what}: {response.status_code} {response.text[:200]}")
        with Image.open(io.BytesIO(response.content)) as image:
            if image.format != kind or image.size != want:
                raise RuntimeError(f"{what}: got a {image.format} of {image.size}, expected {kind} of {want}")

    def client(index: int) -> None:
        try:
            with httpx.Client(base_url=url, timeout=600) as http:
                answer = http.post("/api/images", files={"image": (f"photo-{index}.jpg", photo, "image/jpeg")})
                if answer.status_code != 200:
                    raise RuntimeError(f"upload: {answer.status_code} {answer.text[:200]}")
                photo_id = answer.json()["id"]
                with lock:
                    ids.append(photo_id)
                start.wait()
                hints: list[dict[str, Any]] = []
                for k in range(clicks):
                    hints.append({"x": (997 * k + 131 * index) % size[0], "y": (613 * k + 71 * index) % size[1],
                                  "size": 2 + k % 6, "rgb": [(53 * k) % 256, (101 * index + 60) % 256, 200]})
                    began = time.perf_counter()
                    answer = http.post(f"/api/images/{photo_id}/colorize",
                                       json={"hints": hints, "display": list(display), "format": "jpeg"})
                    check(answer, "JPEG", (preview_w, preview_h), f"client {index} edit {k}")
                    with lock:
                        edits.append((time.perf_counter() - began) * 1000.0)
                if index < downloads:
                    began = time.perf_counter()
                    answer = http.post(f"/api/images/{photo_id}/download", json={"hints": hints})
                    check(answer, "PNG", size, f"client {index} download")
                    with lock:
                        fetches.append((time.perf_counter() - began) * 1000.0)
        except Exception as error:  # every failure is reported, none stops the others
            with lock:
                errors.append(f"client {index}: {type(error).__name__}: {error}")
            start.abort()

    samples: list[float] = []
    running = threading.Event()

    def sample() -> None:
        while not running.wait(0.02):
            samples.append(rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    running.set()
    sampler.join()
    with httpx.Client(base_url=url, timeout=60) as http:  # still up, and still answering
        if http.get("/api/models").status_code != 200:
            errors.append("the server stopped answering after the load")
    return {"clients": clients, "clicks": clicks, "downloads": downloads, "photo_size": list(size),
            "display": list(display), "errors": errors, "distinct_photos": len(set(ids)),
            "requests": len(edits) + len(fetches), "seconds": elapsed,
            "edit_ms": _percentiles(edits) if edits else None,
            "download_ms": _percentiles(fetches) if fetches else None,
            "baseline_rss_mb": baseline, "peak_rss_mb": peak_rss_mb(pid),
            "peak_sampled_rss_mb": max(samples, default=baseline),
            "rss_bound_mb": rss_bound_mb(baseline, clients, size, (preview_w, preview_h))}


# -- the command ---------------------------------------------------------------------------------------

def markdown_tables(report: dict[str, Any]) -> str:
    """The results as Markdown: one row per photo size, then the load test."""
    lines = []
    server = report.get("setup", {}).get("server")
    if server:
        served = ", ".join(f"{name} on {info.get('runtime', 'torch')}" for name, info in server["models"].items())
        lines += [f"Server: {served}, {server['threads']} torch threads.", ""]
    if report.get("browser"):
        lines += ["| photo | shown at | preview | click to drawn p50 | p95 | server p50 | round trip p50 "
                  "| preview bytes |", "|---|---|---|---|---|---|---|---|"]
        for row in report["browser"]:
            lines.append(f"| {'x'.join(map(str, row['photo_size']))} | {'x'.join(map(str, row['display']))} "
                         f"| {'x'.join(map(str, row['preview_size']))} "
                         f"| {row['click_to_drawn_ms']['p50']:.1f} ms | {row['click_to_drawn_ms']['p95']:.1f} ms "
                         f"| {row['server_ms']['p50']:.1f} ms | {row['round_trip_ms']['p50']:.1f} ms "
                         f"| {row['preview_bytes_mean'] / 1024:.0f} KiB |")
    load = report.get("load")
    if load:
        if lines:
            lines.append("")
        edit, fetch = load["edit_ms"] or {}, load["download_ms"] or {}
        lines += ["| clients x edits | photo | errors | edit p50 | edit p95 | download p50 | server RSS before "
                  "| peak RSS | bound |", "|---|---|---|---|---|---|---|---|---|"]
        lines.append(f"| {load['clients']} x {load['clicks']} | {'x'.join(map(str, load['photo_size']))} "
                     f"| {len(load['errors'])} | {edit.get('p50', float('nan')):.0f} ms "
                     f"| {edit.get('p95', float('nan')):.0f} ms | {fetch.get('p50', float('nan')):.0f} ms "
                     f"| {load['baseline_rss_mb']:.0f} MiB | {load['peak_rss_mb']:.0f} MiB "
                     f"| {load['rss_bound_mb']:.0f} MiB |")
    return "\n".join(lines) + "\n"


def run_browser_bench(names: Optional[Sequence[str]] = None, out: Optional[str] = None, clicks: int = 30,
                      warmup: int = 3, load_clients: int = 8, load_clicks: int = 5, browser: bool = True,
                      load: bool = True, image_size: int = 224, threads: Optional[int] = None,
                      chromium: Optional[str] = None, runtime: str = "auto") -> dict[str, Any]:
    """Both parts, each on a fresh server process; prints the tables, writes them under ``out``.

    Args:
        names: models to serve (default: the shipped default model, else an untrained
            adacolvit-t at ``image_size``); the page and the clients use the first.
        out: a folder for ``app_browser_bench.json``, ``.md`` and the page's screenshots.
        clicks: timed clicks per photo in the browser.
        warmup: untimed clicks per photo before them.
        load_clients: the load test's clients.
        load_clicks: its edits per client.
        browser: run the browser part.
        load: run the load test.
        image_size: input size of untrained models.
        threads: torch threads of the server (None: torch's default).
        chromium: the browser binary.
        runtime: what the server runs the models on, as ``adacolor app --runtime`` (default auto,
            the app's: the fastest here among torch and the runtimes whose graph is cached).
    """
    if names is None:
        from adacolor.weights import DEFAULT_MODEL, list_shipped

        names = [DEFAULT_MODEL] if any(c["name"] == DEFAULT_MODEL for c in list_shipped()) else ["adacolvit-t"]
    folder = Path(out) if out is not None else None
    report: dict[str, Any] = {"setup": {"models": list(names), "cpu_count": os.cpu_count(),
                                        "machine": platform.machine(), "python": platform.python_version(),
                                        "viewport": VIEWPORT, "load_before": os.getloadavg()[0]}}
    large = photo_jpeg(LARGE, "astronaut")
    if browser:
        with server_process(names, image_size, threads, runtime=runtime) as info:
            report["setup"]["server"] = {k: info[k] for k in ("threads", "models")}
            photos = [("x".join(map(str, LARGE)), large), ("x".join(map(str, SMALL)), photo_jpeg(SMALL, "chelsea"))]
            report["browser"] = browser_timings(info["url"], photos, clicks, warmup, chromium, folder)
        for row in report["browser"]:
            print(f"browser  photo {row['photo']:>9}  shown {'x'.join(map(str, row['display'])):>9}  click to drawn "
                  f"p50 {row['click_to_drawn_ms']['p50']:6.1f} ms  p95 {row['click_to_drawn_ms']['p95']:6.1f} ms  "
                  f"(server p50 {row['server_ms']['p50']:.1f} ms, {row['preview_bytes_mean'] / 1024:.0f} KiB)",
                  flush=True)
    if load:
        with server_process(names, image_size, threads, runtime=runtime) as info:
            report["setup"].setdefault("server", {k: info[k] for k in ("threads", "models")})
            report["load"] = load_test(info["url"], info["pid"], large, load_clients, load_clicks)
        row = report["load"]
        print(f"load     {row['clients']} clients x {row['clicks']} edits + a download each on "
              f"{'x'.join(map(str, row['photo_size']))} photos: {len(row['errors'])} errors, edit p50 "
              f"{row['edit_ms']['p50'] if row['edit_ms'] else float('nan'):.0f} ms, peak server RSS "
              f"{row['peak_rss_mb']:.0f} MiB (before {row['baseline_rss_mb']:.0f} MiB, bound "
              f"{row['rss_bound_mb']:.0f} MiB)", flush=True)
        for error in row["errors"]:
            print(f"  error: {error}", flush=True)
    report["setup"]["load_after"] = os.getloadavg()[0]
    table = markdown_tables(report)
    print(table, end="")
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "app_browser_bench.json").write_text(json.dumps(report, indent=2) + "\n")
        (folder / "app_browser_bench.md").write_text(table)
        print(f"wrote {folder / 'app_browser_bench.json'} and {folder / 'app_browser_bench.md'}")
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m adacolor.app.browser_bench``."""
    parser = argparse.ArgumentParser(prog="python -m adacolor.app.browser_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=None,
                        help="comma-separated shipped or registered names, the first used (default: the shipped "
                             "default model)")
    parser.add_argument("--out", default=None, help="folder for app_browser_bench.json, .md and screenshots")
    parser.add_argument("--clicks", type=int, default=30, help="timed clicks per photo in the browser")
    parser.add_argument("--warmup", type=int, default=3, help="untimed clicks per photo first")
    parser.add_argument("--load-clients", type=int, default=8)
    parser.add_argument("--load-clicks", type=int, default=5, help="edits per client in the load test")
    parser.add_argument("--no-browser", action="store_true", help="skip the browser part")
    parser.add_argument("--no-load", action="store_true", help="skip the load test")
    parser.add_argument("--image-size", type=int, default=224, help="input size of untrained models")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the server")
    parser.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnxruntime", "openvino"),
                        help="what the server runs the models on, as adacolor app --runtime (default: auto, the "
                             "fastest measured here among torch and the runtimes whose graph is cached)")
    args = parser.parse_args(argv)
    try:
        names = None if args.models is None else [n.strip() for n in args.models.split(",") if n.strip()]
        report = run_browser_bench(names, args.out, args.clicks, args.warmup, args.load_clients, args.load_clicks,
                                   not args.no_browser, not args.no_load, args.image_size, args.threads,
                                   runtime=args.runtime)
    except (ValueError, RuntimeError) as error:
        print(f"browser bench: error: {error}", file=sys.stderr)
        return 2
    return 1 if report.get("load", {}).get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
