"""Latency / throughput harness: the dense model against the wrapped one, in one process.

Speed is a ratio: both models run on the same input with the same threads, their runs
interleaved so that drift of the machine hits both alike, and the medians are compared.

    adaprune-bench                      # ViT-Tiny/16, 224 px, 4 channels, G=2, random 50% tokens
    adaprune-bench --policy learned --layer-keep 0.75 --json bench.json
    adaprune-bench --method dynamicvit --option keep_rate=0.7   # any registered method
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import json
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Optional, Sequence

import timm
import torch
from torch import Tensor, nn

from adaprune._patch import wrap
from adaprune.flops import vit_gflops
from adaprune.policy import PolicyMode, policy
from adaprune.record import last_record

__all__ = ["latency_ms", "time_pair", "BenchResult", "compare", "format_result", "parse_options", "run", "main"]


@contextlib.contextmanager
def num_threads(threads: int) -> Iterator[None]:
    """Runs torch with ``threads`` intra-op threads inside the block."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _once(fn: Callable[[Tensor], object], x: Tensor) -> float:
    start = time.perf_counter()
    fn(x)
    return (time.perf_counter() - start) * 1e3


def latency_ms(fn: Callable[[Tensor], object], x: Tensor, threads: int = 1, warmup: int = 10,
               runs: int = 50) -> float:
    """Median wall time of ``fn(x)`` in milliseconds, under ``inference_mode`` after warm-up."""
    with num_threads(threads), torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        return statistics.median(_once(fn, x) for _ in range(runs))


def time_pair(first: Callable[[Tensor], object], second: Callable[[Tensor], object], x: Tensor,
              threads: int = 1, warmup: int = 10, runs: int = 50) -> tuple[float, float]:
    """Medians (ms) of two functions on one input, their runs interleaved."""
    with num_threads(threads), torch.inference_mode():
        for _ in range(warmup):
            first(x)
            second(x)
        a, b = [], []
        for _ in range(runs):
            a.append(_once(first, x))
            b.append(_once(second, x))
    return statistics.median(a), statistics.median(b)


@dataclass(frozen=True)
class BenchResult:
    """Dense against wrapped: latencies (batch 1), throughputs (batch ``batch``) and GFLOPs."""

    model: str
    policy: str
    threads: int
    batch: int
    dense_ms: float
    wrapped_ms: float
    dense_img_s: float
    wrapped_img_s: float
    dense_gflops: float
    wrapped_gflops: float

    @property
    def speedup(self) -> float:
        return self.dense_ms / self.wrapped_ms

    @property
    def throughput_speedup(self) -> float:
        return self.wrapped_img_s / self.dense_img_s

    @property
    def flops_ratio(self) -> float:
        return self.dense_gflops / self.wrapped_gflops

    def as_dict(self) -> dict:
        return {**asdict(self), "speedup": self.speedup, "throughput_speedup": self.throughput_speedup,
                "flops_ratio": self.flops_ratio, "speedup_over_flops_ratio": self.speedup / self.flops_ratio}


def compare(
        dense: nn.Module,
        wrapped: nn.Module,
        x: Tensor,
        mode: PolicyMode = "random",
        patch_keep: float = 0.5,
        layer_keep: float = 1.0,
        threads: int = 1,
        batch: int = 16,
        warmup: int = 10,
        runs: int = 50,
        name: str = "",
) -> BenchResult:
    """Times ``dense`` and ``wrapped`` (both in eval) on ``x[:1]`` and on a batch of ``batch``.

    The wrapped model decides under the given policy; its GFLOPs are the mean per sample of
    what it spent in the timed batch-1 runs' decisions (a fresh forward per figure).
    """
    dense.eval()
    wrapped.eval()
    single = x[:1]
    many = x[:1].expand(batch, *x.shape[1:]).contiguous() if x.shape[0] < batch else x[:batch]
    options = dict(patch_keep=patch_keep, layer_keep=layer_keep) if mode == "random" else {}
    with policy(wrapped, mode, **options):
        dense_ms, wrapped_ms = time_pair(dense.forward_features, wrapped.forward_features, single,
                                         threads, warmup, runs)
        dense_batch, wrapped_batch = time_pair(dense.forward_features, wrapped.forward_features, many,
                                               threads, max(1, warmup // 5), max(3, runs // 5))
        with torch.inference_mode():
            gflops = []
            for _ in range(10):
                wrapped.forward_features(single)
                gflops.append(float(last_record(wrapped).gflops.mean()))
    label = mode if mode != "random" else f"random(patch_keep={patch_keep}, layer_keep={layer_keep})"
    return BenchResult(
        model=name, policy=label, threads=threads, batch=batch,
        dense_ms=dense_ms, wrapped_ms=wrapped_ms,
        dense_img_s=batch / dense_batch * 1e3, wrapped_img_s=batch / wrapped_batch * 1e3,
        dense_gflops=vit_gflops(dense), wrapped_gflops=statistics.mean(gflops),
    )


def format_result(result: BenchResult) -> str:
    """A small table of one comparison, for the terminal."""
    rows = [
        ("", "dense", "wrapped", "ratio"),
        ("latency, batch 1 (ms)", f"{result.dense_ms:.2f}", f"{result.wrapped_ms:.2f}", f"{result.speedup:.2f}x"),
        (f"throughput, batch {result.batch} (img/s)", f"{result.dense_img_s:.1f}", f"{result.wrapped_img_s:.1f}",
         f"{result.throughput_speedup:.2f}x"),
        ("GFLOPs per image", f"{result.dense_gflops:.3f}", f"{result.wrapped_gflops:.3f}", f"{result.flops_ratio:.2f}x"),
    ]
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"{result.model}  policy={result.policy}  threads={result.threads}"]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, width))) for r in rows]
    lines.append(f"speedup / FLOPs ratio = {result.speedup / result.flops_ratio:.2f} (batch 1), "
                 f"{result.throughput_speedup / result.flops_ratio:.2f} (batch {result.batch})")
    return "\n".join(lines)


def run(argv: Optional[Sequence[str]] = None) -> BenchResult:
    """Parses ``adaprune-bench`` arguments, runs the comparison, prints it; returns the result."""
    parser = argparse.ArgumentParser(prog="adaprune-bench", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vit_tiny_patch16_224", help="any timm VisionTransformer name")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--in-chans", type=int, default=4, help="4: the colorization input (L, ab hints, mask)")
    parser.add_argument("--method", default="adacolvit", help="a registered method (adaprune.list_gates())")
    parser.add_argument("--patch-groups", type=int, default=2, help="adacolvit's G")
    parser.add_argument("--no-layer-skip", action="store_true", help="adacolvit without layer skip")
    parser.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                        help="an option of the method (repeatable), e.g. --option keep_rate=0.7")
    parser.add_argument("--policy", default="random", choices=["random", "learned", "keep_all", "drop_all"])
    parser.add_argument("--patch-keep", type=float, default=0.5)
    parser.add_argument("--layer-keep", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16, help="batch size of the throughput figure")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the result to this JSON file")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    dense = timm.create_model(args.model, pretrained=False, img_size=args.img_size, in_chans=args.in_chans,
                              num_classes=0, global_pool="").eval()
    options = dict(patch_groups=args.patch_groups, layer_skip=not args.no_layer_skip) if args.method == "adacolvit" else {}
    options.update(parse_options(args.options))
    wrapped = wrap(copy.deepcopy(dense), method=args.method, **options)
    x = torch.randn(args.batch, args.in_chans, args.img_size, args.img_size)
    result = compare(dense, wrapped, x, args.policy, args.patch_keep, args.layer_keep, args.threads,
                     args.batch, args.warmup, args.runs, name=args.model)
    print(format_result(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.as_dict(), f, indent=2)
    return result


def parse_options(items: Sequence[str]) -> dict[str, object]:
    """``["keep_rate=0.7", "layers=(3, 6, 9)"]`` -> ``{"keep_rate": 0.7, "layers": (3, 6, 9)}``;
    values are Python literals, anything else is kept as a string."""
    options: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"an option is KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            options[key.strip()] = text.strip()
    return options


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``adaprune-bench``: dense against wrapped timm ViT, printed and optionally saved as JSON."""
    run(argv)


if __name__ == "__main__":
    main()
