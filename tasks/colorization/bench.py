"""Speed of colorizers: single-thread batch-1 latency (median) and GFLOPs, in one process.

    adacolor bench --models icolorit-t,adacolvit-t --out runs/bench
    adacolor bench --checkpoint runs/ada/checkpoint.pt --models icolorit-t --out runs/bench
    adacolor bench --models icolorit-t-224,adacolvit-t-224 --runtimes torch,onnxruntime,openvino --json b.json

Every model runs on the same input: a photo at the model's size with 10 hints drawn from
the seed (learned gates decide on real content, not noise). ``--models`` takes shipped trained
models and registered (untrained) names. On torch alone the models are timed one after another;
with ``--runtimes`` every (model, runtime) pair of one image size is timed interleaved, run by
run. Compare figures from one run only.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor
from tqdm import tqdm

import adaprune
from adaprune.bench import sample_many
from adacolor.model import Colorizer, colorizer_gflops, create_colorizer, load_colorizer

__all__ = ["bench_input", "bench_photos", "bench_model", "format_table", "format_rows", "run_bench"]


def bench_input(size: int, hints: int = 10, seed: int = 0) -> Tensor:
    """(1, 4, size, size): scikit-image's astronaut with ``hints`` hints drawn from ``seed``."""
    from adacolor.color import lab_split
    from adacolor.data import sample_photos
    from adacolor.hints import make_eval_hint_sets, model_input, render_hints

    rgb = sample_photos(size)[0]["rgb"][None]
    l_norm, ab = lab_split(rgb)
    sets = make_eval_hint_sets(1, size, size, (hints,), seed=seed)
    hint_ab, hint_mask = render_hints(ab, [sets[hints][0]])
    return model_input(l_norm, hint_ab, hint_mask)


def bench_photos(size: int, data: str, images: int, hints: int = 10, seed: int = 0) -> list[Tensor]:
    """``images`` inputs (1, 4, size, size) from a data spec (an image folder, ``shared:REL`` or
    ``samples``), spread evenly over it, each with ``hints`` hints drawn from ``seed``: an
    adaptive model spends what each photo asks, so its speed is a mean over photos."""
    from adacolor.color import lab_split
    from adacolor.data import evenly_spaced, image_dataset
    from adacolor.hints import make_eval_hint_sets, model_input, render_hints

    dataset = evenly_spaced(image_dataset(data, size, train=False), images)
    sets = make_eval_hint_sets(len(dataset), size, size, (hints,), seed=seed)
    inputs = []
    for i in range(len(dataset)):
        l_norm, ab = lab_split(dataset[i]["rgb"][None])
        inputs.append(model_input(l_norm, *render_hints(ab, [sets[hints][i]])))
    return inputs


def bench_model(model: Colorizer, x: Tensor, threads: int = 1, warmup: int = 10, runs: int = 50,
                policy: str = "learned", patch_keep: float = 0.5, layer_keep: float = 1.0,
                on_call: Callable[[], object] = lambda: None) -> dict[str, Any]:
    """``{"gflops", "latency_ms", ...}`` of one colorizer on ``x`` (batch 1), in eval mode.

    ``policy`` (``learned``, ``keep_all``, ``drop_all``, ``random``) applies to adaptive models;
    ``random`` keeps ``patch_keep`` of the tokens and runs each sub-layer with probability
    ``layer_keep`` (a stand-in for trained gates). ``on_call`` runs after each of the
    ``1 + warmup + runs`` forwards, outside the timed span (a progress bar's ``update``).
    """
    model.eval()
    if model.adaptive:
        options = dict(patch_keep=patch_keep, layer_keep=layer_keep) if policy == "random" else {}
        with adaprune.policy(model.backbone, policy, **options):
            return _measure(model, x, threads, warmup, runs, on_call) | {"policy": policy}
    return _measure(model, x, threads, warmup, runs, on_call) | {"policy": "dense"}


def _measure(model: Colorizer, x: Tensor, threads: int, warmup: int, runs: int,
             on_call: Callable[[], object]) -> dict[str, Any]:
    with torch.inference_mode():
        model(x)
        gflops = float(colorizer_gflops(model, 1).mean())
    on_call()
    times = sample_many([model], x, threads=threads, warmup=warmup, runs=runs, on_call=on_call)[0]
    return {"gflops": gflops, "latency_ms": statistics.median(times),
            "latency_std_ms": statistics.stdev(times) if len(times) > 1 else 0.0,
            "image_size": model.image_size[0], "threads": threads, "adaptive": model.adaptive}


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: model, policy, GFLOPs, latency, and both relative to the first row."""
    rows = [("model", "policy", "GFLOPs", "latency (ms)", "FLOPs ratio", "speedup")]
    first = next(iter(results.values()), None)
    for name, r in results.items():
        rows.append((name, r["policy"], f"{r['gflops']:.3f}", f"{r['latency_ms']:.2f}",
                     f"{first['gflops'] / r['gflops']:.2f}x", f"{first['latency_ms'] / r['latency_ms']:.2f}x"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in rows)


def _load(name: str, image_size: int, seed: int) -> tuple[str, Colorizer]:
    """A shipped trained model by name, else a registered name built untrained at ``image_size``."""
    from adacolor.weights import list_shipped, load_shipped

    if name in {card["name"] for card in list_shipped()}:
        return name, load_shipped(name)
    torch.manual_seed(seed)
    return name, create_colorizer(name, image_size=image_size)


def _rows(entries: list[tuple[str, Colorizer]], runtimes: Sequence[str], threads: int, warmup: int, runs: int,
          seed: int, bar: tqdm, say: Callable[[str], object], data: Optional[str] = None,
          images: int = 1) -> list[dict[str, Any]]:
    """One row per model and runtime: each model on each runtime, timed interleaved with every
    other (model, runtime) of the same image size, on that size's photos (learned policy).

    Each photo (``bench_photos`` of ``data``, else the astronaut) gets ``runs`` timed runs; a
    row's latency is the mean over photos of each photo's median, its std the spread of all
    runs, its GFLOPs the mean over photos."""
    from adacolor.exported import on_runtime

    rows: list[dict[str, Any]] = []
    sizes = sorted({model.image_size[0] for _, model in entries})
    for size in sizes:
        photos = [bench_input(size, seed=seed)] if data is None else bench_photos(size, data, images, seed=seed)
        group = [(label, runtime, on_runtime(model, runtime, threads, say).eval())
                 for label, model in entries if model.image_size[0] == size for runtime in runtimes]
        bar.set_postfix_str(f"{size} px: {len(group)} model x runtime, {len(photos)} photo(s)")
        medians: list[list[float]] = [[] for _ in group]
        every: list[list[float]] = [[] for _ in group]
        spent: list[list[float]] = [[] for _ in group]
        for x in photos:
            with torch.inference_mode():
                for i, (_, _, module) in enumerate(group):
                    module(x)
                    spent[i].append(float(colorizer_gflops(module, 1).mean()))
            samples = sample_many([module for _, _, module in group], x, threads, warmup, runs, on_call=bar.update)
            for i, times in enumerate(samples):
                medians[i].append(statistics.median(times))
                every[i] += times
        for i, (label, runtime, module) in enumerate(group):
            rows.append({"model": label, "runtime": runtime, "threads": threads,
                         "latency_ms": statistics.mean(medians[i]), "latency_std_ms": statistics.stdev(every[i]),
                         "gflops": statistics.mean(spent[i]), "image_size": size, "adaptive": bool(module.adaptive),
                         "photos": len(photos)})
    return rows


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of ``run_bench``'s rows: latency per runtime, and speed relative to the
    first model on the same runtime."""
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(row["runtime"], row)
    table = [("model", "runtime", "GFLOPs", "latency (ms)", "FLOPs ratio", "speedup")]
    for row in rows:
        base = first[row["runtime"]]
        table.append((row["model"], row["runtime"], f"{row['gflops']:.3f}",
                      f"{row['latency_ms']:.2f} +- {row['latency_std_ms']:.2f}",
                      f"{base['gflops'] / row['gflops']:.2f}x", f"{base['latency_ms'] / row['latency_ms']:.2f}x"))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in table)


def run_bench(
        models: Sequence[str] = (),
        checkpoints: Sequence[Union[str, Path]] = (),
        out_dir: Optional[Union[str, Path]] = None,
        image_size: int = 224,
        threads: int = 1,
        warmup: int = 10,
        runs: int = 50,
        policy: str = "learned",
        patch_keep: float = 0.5,
        layer_keep: float = 1.0,
        seed: int = 0,
        progress: bool = False,
        runtimes: Sequence[str] = ("torch",),
        json_path: Optional[Union[str, Path]] = None,
        say: Callable[[str], object] = lambda text: None,
        data: Optional[str] = None,
        images: int = 1,
) -> dict[str, dict[str, Any]]:
    """Benchmarks shipped trained models and registered names (randomly initialised, at
    ``image_size``) and checkpoints (at their trained size); prints a table, writes
    ``out_dir/bench.json`` and, with ``json_path``, ``{"settings", "rows"}`` there.

    ``runtimes`` other than ``["torch"]``: every model runs on each, its exported graph on ONNX
    Runtime / OpenVINO (``adacolor.exported``), all of one image size interleaved run by run in
    this process, with the learned policy (the one a graph decides with); ``data`` / ``images``:
    time them on that many photos of a data spec instead of the astronaut (``bench_photos``).
    ``progress`` shows a bar on stderr (when it is a terminal); ``say`` is told a line before a
    slow export.

    Returns:
        ``{label: {"gflops", "latency_ms", "policy", "image_size", "threads", "adaptive"}}``
        (with several runtimes, the label is ``model (runtime)`` and each entry also has
        ``runtime`` and ``latency_std_ms``).
    """
    if not models and not checkpoints:
        raise ValueError("nothing to benchmark: give --models NAME[,NAME...] and/or --checkpoint PATH")
    from adacolor.exported import check_runtime

    runtimes = list(runtimes)
    for runtime in runtimes:
        check_runtime(runtime)
    if not runtimes:
        raise ValueError("no runtime to time on; accepted: torch, onnxruntime, openvino")
    if data is not None and runtimes == ["torch"] and policy != "learned":
        raise ValueError("--data times the learned policy (rows per runtime); drop --policy or --data")
    if runtimes != ["torch"] and policy != "learned":
        raise ValueError(f"--policy {policy}: an exported graph decides with the learned policy only; "
                         f"use --runtimes torch for control policies")
    entries: list[tuple[str, Colorizer]] = [_load(name, image_size, seed) for name in models]
    for path in checkpoints:
        model = load_colorizer(path)
        entries.append((f"{model.build_args['name']} ({Path(path).parent.name or Path(path).name})", model))
    settings = dict(threads=threads, warmup=warmup, runs=runs, batch=1, seed=seed, policy=policy,
                    runtimes=runtimes, torch=torch.__version__, num_threads_default=torch.get_num_threads())
    if data is not None:
        settings |= {"data": data, "images": images}
    if runtimes == ["torch"] and data is None:
        results = _torch_only(entries, threads, warmup, runs, policy, patch_keep, layer_keep, seed, progress)
        rows = [{"model": label, "runtime": "torch", "threads": threads, "latency_ms": r["latency_ms"],
                 "latency_std_ms": r["latency_std_ms"], "gflops": r["gflops"], "image_size": r["image_size"],
                 "adaptive": r["adaptive"]} for label, r in results.items()]
        print(format_table(results))
    else:
        with tqdm(total=len(entries) * len(runtimes) * (warmup + runs) * (1 if data is None else images),
                  desc="bench", unit="run", disable=None if progress else True, dynamic_ncols=True) as bar:
            rows = _rows(entries, runtimes, threads, warmup, runs, seed, bar, say, data, images)
        results = {f"{row['model']} ({row['runtime']})": {**row, "policy": "learned" if row["adaptive"] else "dense"}
                   for row in rows}
        print(format_rows(rows))
    settings |= _versions(runtimes)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(json.dumps({"settings": settings, "models": results}, indent=2) + "\n")
        print(f"wrote {out / 'bench.json'}")
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
        print(f"wrote {path}")
    return results


def _versions(runtimes: Sequence[str]) -> dict[str, str]:
    """The version of each runtime timed, e.g. ``{"onnxruntime": "1.32.0"}``."""
    from importlib.metadata import version

    return {runtime: version(runtime) for runtime in runtimes if runtime != "torch"}


def _torch_only(entries: list[tuple[str, Colorizer]], threads: int, warmup: int, runs: int, policy: str,
                patch_keep: float, layer_keep: float, seed: int, progress: bool) -> dict[str, dict[str, Any]]:
    """Each model in PyTorch, one after another, under ``policy`` (``bench_model``)."""
    inputs: dict[int, Tensor] = {}
    results: dict[str, dict[str, Any]] = {}
    with tqdm(total=len(entries) * (1 + warmup + runs), desc="bench", unit="run",
              disable=None if progress else True, dynamic_ncols=True) as bar:
        for label, model in entries:
            bar.set_postfix_str(label)
            size = model.image_size[0]
            if size not in inputs:
                inputs[size] = bench_input(size, seed=seed)
            results[label] = bench_model(model, inputs[size], threads, warmup, runs, policy, patch_keep,
                                         layer_keep, on_call=bar.update)
    return results
