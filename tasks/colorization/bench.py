"""Speed of colorizers: single-thread batch-1 latency (median) and GFLOPs, in one process.

    adacolor bench --models icolorit-t,adacolvit-t --out runs/bench
    adacolor bench --checkpoint runs/ada/checkpoint.pt --models icolorit-t --out runs/bench

Every model runs on the same input: a photo at the model's size with 10 hints drawn from
the seed (learned gates decide on real content, not noise). The models are timed one after
another, each with warm-up; compare figures from one run only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor
from tqdm import tqdm

import adaprune
from adaprune.bench import latency_ms
from adacolor.model import Colorizer, colorizer_gflops, create_colorizer, load_colorizer

__all__ = ["bench_input", "bench_model", "format_table", "run_bench"]


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
    ms = latency_ms(model, x, threads=threads, warmup=warmup, runs=runs, on_call=on_call)
    return {"gflops": gflops, "latency_ms": ms, "image_size": model.image_size[0], "threads": threads,
            "adaptive": model.adaptive}


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
) -> dict[str, dict[str, Any]]:
    """Benchmarks registered names (randomly initialised, at ``image_size``) and checkpoints
    (at their trained size); prints a table and writes ``out_dir/bench.json``. ``progress``
    shows a bar on stderr (when it is a terminal).

    Returns:
        ``{label: {"gflops", "latency_ms", "policy", "image_size", "threads", "adaptive"}}``.
    """
    if not models and not checkpoints:
        raise ValueError("nothing to benchmark: give --models NAME[,NAME...] and/or --checkpoint PATH")
    entries: list[tuple[str, Colorizer]] = []
    for name in models:
        torch.manual_seed(seed)
        entries.append((name, create_colorizer(name, image_size=image_size)))
    for path in checkpoints:
        model = load_colorizer(path)
        entries.append((f"{model.build_args['name']} ({Path(path).parent.name or Path(path).name})", model))
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
    print(format_table(results))
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        settings = dict(threads=threads, warmup=warmup, runs=runs, batch=1, seed=seed,
                        torch=torch.__version__, num_threads_default=torch.get_num_threads())
        (out / "bench.json").write_text(json.dumps({"settings": settings, "models": results}, indent=2) + "\n")
        print(f"wrote {out / 'bench.json'}")
    return results
