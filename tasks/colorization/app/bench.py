"""The app's round-trip benchmark: hints in, PNG out, against a real uvicorn server.

    python -m adacolor.app.bench --out runs/app-bench            # shipped models, else untrained
    python -m adacolor.app.bench --checkpoint runs/ada/checkpoint.pt --checkpoint runs/dense/checkpoint.pt

The server runs in its own process (as ``adacolor app`` would) on 127.0.0.1 and serves every
model compared; clients are threads of this process, each with its own connection and its own
upload of scikit-image's astronaut, square at each ``--photo-sizes`` (224: the model's own
size; 512: the photo's, so the full-resolution Lab recombination and PNG cost show). Each request sends
all the hints placed so far (1, 2, ... up to 10, then again from 1), as the page does after an
edit. Reported per model and number of concurrent clients: p50 / p95 of the server's latency
(``X-Adaprune-Latency-Ms``: from the request's arrival to the PNG, queueing for the model's lock
included) and of the client's round trip, the GFLOPs spent and the requests per second.

The models compared are, in order of preference: the given ``--checkpoint`` files, the shipped
trained models of ``--models``, or untrained models of those names at ``--image-size`` (said so
in the output: an untrained adaptive model's gates keep almost everything, so its latency is
not what a trained one spends).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["run_app_bench", "markdown_table", "main"]


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def _load(source: dict[str, Any]) -> dict[str, Any]:
    """The models a source describes (runs in the server's process)."""
    if source["kind"] == "checkpoint":
        from adacolor.model import load_colorizer

        models = {}
        for path in source["paths"]:
            model = load_colorizer(path)
            models[model.build_args["name"]] = model
        return models
    if source["kind"] == "shipped":
        from adacolor.weights import load_shipped

        return {name: load_shipped(name) for name in source["names"]}
    from adacolor.model import create_colorizer

    return {name: create_colorizer(name, image_size=source["image_size"]) for name in source["names"]}


def _serve(source: dict[str, Any], threads: Optional[int], policy: dict[str, Any], connection: Any) -> None:
    """The server process: load the models, set their policy, bind a free port, report it, serve."""
    import torch

    import adaprune

    from adacolor.app.serve import bind, serve, url_of
    from adacolor.app.server import create_app

    if threads is not None:
        torch.set_num_threads(threads)
    try:
        models = {name: model.eval() for name, model in _load(source).items()}
        for model in models.values():
            if policy["mode"] != "learned" and model.adaptive:
                adaprune.set_policy(model.backbone, policy["mode"], **policy["options"])
        app = create_app(models)
        sock = bind("127.0.0.1", 0)
    except Exception as error:  # reported to the parent, which says what went wrong
        connection.send({"error": f"{type(error).__name__}: {error}"})
        return
    connection.send({"url": url_of(sock), "threads": torch.get_num_threads(),
                     "models": {name: {"image_size": list(m.image_size), "adaptive": bool(m.adaptive)}
                                for name, m in models.items()}})
    serve(app, sock, log_level="error")


def _choose_source(names: Optional[list[str]], checkpoints: list[str], image_size: int) -> dict[str, Any]:
    """Checkpoints when given; else the named (default: all) shipped models; else untrained ones."""
    if checkpoints:
        return {"kind": "checkpoint", "paths": checkpoints}
    from adacolor.model import list_colorizers
    from adacolor.weights import list_shipped

    shipped = [card["name"] for card in list_shipped()]
    if names is None:
        if shipped:
            return {"kind": "shipped", "names": shipped}
        names = ["adacolvit-t", "icolorit-t"]
    if set(names) <= set(shipped):
        return {"kind": "shipped", "names": names}
    unknown = sorted(set(names) - set(list_colorizers()))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: neither shipped ({', '.join(shipped) or 'none'}) nor registered "
                         f"(adacolor list)")
    return {"kind": "untrained", "names": names, "image_size": image_size}


def _photo_png(size: int) -> bytes:
    """scikit-image's astronaut resized to size x size, as PNG bytes (what a client uploads)."""
    import io

    import numpy as np
    from PIL import Image

    from adacolor.data import sample_photos

    rgb = sample_photos(None)[0]["rgb"]
    image = Image.fromarray((rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    buffer = io.BytesIO()
    image.resize((size, size), Image.Resampling.BICUBIC).save(buffer, format="PNG")
    return buffer.getvalue()


def _client_loop(url: str, model: str, photo_png: bytes, requests: int, warmup: int, start: threading.Barrier,
                 out: list[dict[str, float]]) -> None:
    import httpx

    with httpx.Client(base_url=url, timeout=300) as http:
        photo = http.post("/api/images", files={"image": ("astronaut.png", photo_png, "image/png")})
        photo.raise_for_status()
        photo_id, width, height = photo.json()["id"], photo.json()["width"], photo.json()["height"]
        hints: list[dict[str, Any]] = []

        def one() -> dict[str, float]:
            if len(hints) == 10:
                hints.clear()
            k = len(hints)
            hints.append({"x": (97 * k + 31) % width, "y": (61 * k + 17) % height, "size": 2 + k % 4,
                          "rgb": [(53 * k) % 256, (101 * k + 60) % 256, (29 * k + 120) % 256]})
            begin = time.perf_counter()
            response = http.post(f"/api/images/{photo_id}/colorize", json={"hints": hints, "model": model})
            round_trip = (time.perf_counter() - begin) * 1000.0
            response.raise_for_status()
            return {"server_ms": float(response.headers["X-Adaprune-Latency-Ms"]), "round_trip_ms": round_trip,
                    "gflops": float(response.headers["X-Adaprune-GFLOPs"]), "bytes": len(response.content)}

        for _ in range(warmup):
            one()
        start.wait()
        for _ in range(requests):
            out.append(one())


def _measure(url: str, model: str, photo_size: int, clients: int, requests: int, warmup: int) -> dict[str, Any]:
    samples: list[dict[str, float]] = []
    start = threading.Barrier(clients + 1)
    photo_png = _photo_png(photo_size)
    threads = [threading.Thread(target=_client_loop, args=(url, model, photo_png, requests, warmup, start, samples))
               for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if len(samples) != clients * requests:
        raise RuntimeError(f"{model} at {clients} clients: {clients * requests - len(samples)} requests failed")
    server = [s["server_ms"] for s in samples]
    trip = [s["round_trip_ms"] for s in samples]
    return {"model": model, "photo_size": photo_size, "clients": clients, "requests": len(samples),
            "server_ms_p50": _percentile(server, 0.5), "server_ms_p95": _percentile(server, 0.95),
            "round_trip_ms_p50": _percentile(trip, 0.5), "round_trip_ms_p95": _percentile(trip, 0.95),
            "gflops_mean": statistics.fmean(s["gflops"] for s in samples),
            "requests_per_s": len(samples) / elapsed, "png_bytes_mean": statistics.fmean(s["bytes"] for s in samples)}


def markdown_table(report: dict[str, Any]) -> str:
    """The results as a Markdown table (one row per model, photo size and client count)."""
    lines = ["| model | input | photo | clients | server p50 | server p95 | round trip p50 | round trip p95 "
             "| GFLOPs | req/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["results"]:
        size = "x".join(str(s) for s in report["setup"]["models"][row["model"]]["image_size"])
        lines.append(f"| {row['model']} | {size} | {row['photo_size']} px | {row['clients']} "
                     f"| {row['server_ms_p50']:.1f} ms | {row['server_ms_p95']:.1f} ms "
                     f"| {row['round_trip_ms_p50']:.1f} ms | {row['round_trip_ms_p95']:.1f} ms "
                     f"| {row['gflops_mean']:.3f} | {row['requests_per_s']:.1f} |")
    return "\n".join(lines) + "\n"


def run_app_bench(names: Optional[Sequence[str]] = None, checkpoints: Sequence[str] = (),
                  out: Optional[str] = None, image_size: int = 224, photo_sizes: Sequence[int] = (224, 512),
                  clients: Sequence[int] = (1, 8),
                  requests: int = 80, warmup: int = 5, threads: Optional[int] = None, policy: str = "learned",
                  patch_keep: float = 0.5, layer_keep: float = 1.0) -> dict[str, Any]:
    """Measures the colorize round trip of each model at each client count.

    Args:
        names: shipped model names (None: all shipped, or when none is, untrained
            adacolvit-t and icolorit-t), or registered names for untrained models; ignored when
            ``checkpoints`` are given.
        checkpoints: training checkpoints to compare instead.
        out: a folder for ``app_bench.json`` and ``app_bench.md`` (None: no files).
        image_size: the input size of untrained models (shipped and checkpoints keep theirs).
        photo_sizes: sides of the square photos uploaded (the PNG comes back at that size).
        clients: the numbers of concurrent clients.
        requests: timed requests per model and client count, split over the clients (each
            client first sends ``warmup`` untimed ones).
        threads: torch threads of the server (None: torch's default).
        policy: the adaptive models' decisions: ``learned`` (their gates), or ``random`` keeping
            ``patch_keep`` of the tokens and ``layer_keep`` of the sub-layers (a stand-in for
            trained gates on untrained models).

    Returns:
        ``{"setup": {...}, "results": [one dict per model and client count]}``.
    """
    source = _choose_source(None if names is None else list(names), list(checkpoints), image_size)
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    decisions = {"mode": policy, "options": {} if policy == "learned" else
                 {"patch_keep": patch_keep, "layer_keep": layer_keep}}
    server = context.Process(target=_serve, args=(source, threads, decisions, send), daemon=True)
    server.start()
    load_before = os.getloadavg()
    try:
        if not receive.poll(300):
            raise RuntimeError("the benchmark's server did not start within 300 s")
        info = receive.recv()
        if "error" in info:
            raise RuntimeError(f"the benchmark's server could not start: {info['error']}")
        results = []
        for model in info["models"]:
            for size, count in [(size, count) for size in photo_sizes for count in clients]:
                row = _measure(info["url"], model, size, count, max(1, requests // count), warmup)
                results.append(row)
                print(f"{model:<14} photo {size:>4} px  {count} client{'s' if count > 1 else ' '}  server p50 {row['server_ms_p50']:7.1f} ms"
                      f"  p95 {row['server_ms_p95']:7.1f} ms   round trip p50 {row['round_trip_ms_p50']:7.1f} ms"
                      f"  p95 {row['round_trip_ms_p95']:7.1f} ms   {row['gflops_mean']:.3f} GFLOPs"
                      f"  {row['requests_per_s']:5.1f} req/s", flush=True)
    finally:
        server.terminate()
        server.join(10)
    setup = {"source": source["kind"], "policy": decisions, "models": info["models"], "server_threads": info["threads"],
             "cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
             "photo": "skimage astronaut, square at photo_size, PNG out at that size", "timed_requests_per_setting": requests,
             "hints_per_request": "1..10, cycling", "warmup_per_client": warmup,
             "torch_threads_env": os.environ.get("OMP_NUM_THREADS"),
             "load_average_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)}}
    if source["kind"] == "untrained" and policy == "learned":
        setup["note"] = ("untrained models: an untrained adaptive model's gates keep almost everything, so these "
                         "figures are the app's overhead and the dense cost, not a trained AdaColViT's savings")
        print(f"note: {setup['note']}", flush=True)
    report = {"setup": setup, "results": results}
    if out is not None:
        path = Path(out) / "app_bench.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        path.with_suffix(".md").write_text(markdown_table(report))
        print(f"wrote {path} and {path.with_suffix('.md')}")
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m adacolor.app.bench``."""
    parser = argparse.ArgumentParser(prog="python -m adacolor.app.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=None,
                        help="comma-separated shipped or registered names (default: every shipped model, "
                             "else untrained adacolvit-t,icolorit-t)")
    parser.add_argument("--checkpoint", action="append", default=[], help="compare checkpoints instead (repeatable)")
    parser.add_argument("--out", default=None, help="folder for app_bench.json and app_bench.md")
    parser.add_argument("--image-size", type=int, default=224, help="input size of untrained models")
    parser.add_argument("--photo-sizes", default="224,512", help="comma-separated square photo sides")
    parser.add_argument("--clients", default="1,8", help="comma-separated client counts")
    parser.add_argument("--requests", type=int, default=80,
                        help="timed requests per model and client count, split over the clients")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the server")
    parser.add_argument("--policy", default="learned", choices=["learned", "random"],
                        help="adaptive models' decisions (random: a stand-in for trained gates)")
    parser.add_argument("--patch-keep", type=float, default=0.5, help="random policy: tokens at full width")
    parser.add_argument("--layer-keep", type=float, default=1.0, help="random policy: sub-layers run")
    args = parser.parse_args(argv)
    try:
        names = None if args.models is None else [n.strip() for n in args.models.split(",") if n.strip()]
        run_app_bench(names, args.checkpoint, args.out,
                      args.image_size, [int(p) for p in args.photo_sizes.split(",")],
                      [int(c) for c in args.clients.split(",")], args.requests, args.warmup,
                      args.threads, args.policy, args.patch_keep, args.layer_keep)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"app bench: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
