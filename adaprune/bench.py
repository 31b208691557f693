"""Latency / throughput harness: the dense model against the wrapped one, in one process.

Speed is a ratio: both models run on the same input with the same threads, their runs
interleaved so that drift of the machine hits both alike, and the medians are compared.

    adaprune-bench                      # ViT-Tiny/16, 224 px, 4 channels, G=2, random 50% tokens
    adaprune-bench --policy learned --layer-keep 0.75 --json bench.json
    adaprune-bench --method dynamicvit --option keep_rate=0.7   # any registered method
    adaprune-bench --runtime openvino   # both exported to ONNX, run by OpenVINO (random stand-in gates)
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
from tqdm import tqdm

from adaprune._patch import wrap
from adaprune.flops import vit_gflops
from adaprune.policy import PolicyMode, policy
from adaprune.record import last_record

__all__ = ["latency_ms", "time_many", "sample_many", "time_pair", "BenchResult", "compare", "format_result", "sublayer_breakdown",
           "prepared_steps_ms", "format_breakdown", "parse_options", "random_gates", "compare_on_runtime", "run", "main"]


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


def _no_progress() -> None:
    pass


def latency_ms(fn: Callable[[Tensor], object], x: Tensor, threads: int = 1, warmup: int = 10,
               runs: int = 50, on_call: Callable[[], object] = _no_progress) -> float:
    """Median wall time of ``fn(x)`` in milliseconds, under ``inference_mode`` after warm-up.

    ``on_call`` runs after each call (warm-up included), outside the timed span: e.g. a
    progress bar's ``update``.
    """
    with num_threads(threads), torch.inference_mode():
        for _ in range(warmup):
            fn(x)
            on_call()
        samples = []
        for _ in range(runs):
            samples.append(_once(fn, x))
            on_call()
        return statistics.median(samples)


def time_many(fns: Sequence[Callable[[Tensor], object]], x: Tensor, threads: int = 1, warmup: int = 10,
              runs: int = 50, on_call: Callable[[], object] = _no_progress) -> list[float]:
    """Medians (ms) of several functions on one input, their runs interleaved (``on_call``: as
    in ``latency_ms``, after each call of each function)."""
    return [statistics.median(samples) for samples in sample_many(fns, x, threads, warmup, runs, on_call)]


def sample_many(fns: Sequence[Callable[[Tensor], object]], x: Tensor, threads: int = 1, warmup: int = 10,
                runs: int = 50, on_call: Callable[[], object] = _no_progress) -> list[list[float]]:
    """Every timed run (ms) of several functions on one input, under ``inference_mode`` with
    ``threads`` torch threads, after ``warmup`` untimed calls each; their runs interleaved, so
    that the machine's drift hits all alike."""
    with num_threads(threads), torch.inference_mode():
        for _ in range(warmup):
            for fn in fns:
                fn(x)
                on_call()
        times: list[list[float]] = [[] for _ in fns]
        for _ in range(runs):
            for fn, samples in zip(fns, times):
                samples.append(_once(fn, x))
                on_call()
    return times


def time_pair(first: Callable[[Tensor], object], second: Callable[[Tensor], object], x: Tensor,
              threads: int = 1, warmup: int = 10, runs: int = 50,
              on_call: Callable[[], object] = _no_progress) -> tuple[float, float]:
    """Medians (ms) of two functions on one input, their runs interleaved."""
    first_ms, second_ms = time_many((first, second), x, threads, warmup, runs, on_call)
    return first_ms, second_ms


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
    runtime: str = "torch"

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
        progress: bool = False,
) -> BenchResult:
    """Times ``dense`` and ``wrapped`` (both in eval) on ``x[:1]`` and on a batch of ``batch``.

    The wrapped model decides under the given policy; its GFLOPs are the mean per sample of
    what it spent in the timed batch-1 runs' decisions (a fresh forward per figure).
    ``progress`` shows a bar on stderr (when it is a terminal), updated between timed calls.
    """
    dense.eval()
    wrapped.eval()
    single = x[:1]
    many = x[:1].expand(batch, *x.shape[1:]).contiguous() if x.shape[0] < batch else x[:batch]
    options = dict(patch_keep=patch_keep, layer_keep=layer_keep) if mode == "random" else {}
    batch_warmup, batch_runs = max(1, warmup // 5), max(3, runs // 5)
    calls = 2 * (warmup + runs) + 2 * (batch_warmup + batch_runs) + 10
    with policy(wrapped, mode, **options), \
            tqdm(total=calls, desc=name or "bench", unit="run", disable=None if progress else True,
                 dynamic_ncols=True) as bar:
        dense_ms, wrapped_ms = time_pair(dense.forward_features, wrapped.forward_features, single,
                                         threads, warmup, runs, bar.update)
        dense_batch, wrapped_batch = time_pair(dense.forward_features, wrapped.forward_features, many,
                                               threads, batch_warmup, batch_runs, bar.update)
        with torch.inference_mode():
            gflops = []
            for _ in range(10):
                wrapped.forward_features(single)
                gflops.append(float(last_record(wrapped).gflops.mean()))
                bar.update()
    label = mode if mode != "random" else f"random(patch_keep={patch_keep}, layer_keep={layer_keep})"
    return BenchResult(
        model=name, policy=label, threads=threads, batch=batch,
        dense_ms=dense_ms, wrapped_ms=wrapped_ms,
        dense_img_s=batch / dense_batch * 1e3, wrapped_img_s=batch / wrapped_batch * 1e3,
        dense_gflops=vit_gflops(dense), wrapped_gflops=statistics.mean(gflops),
    )


def random_gates(wrapped: nn.Module, patch_keep: float = 0.5, layer_keep: float = 1.0, seed: int = 0) -> nn.Module:
    """Gives an AdaColViT-wrapped ViT decision layers that stand in for trained ones under the
    learned policy (the one an exported graph decides with): random weights, so that decisions
    vary with the input, and biases at the normal quantile of ``patch_keep`` / ``layer_keep``,
    so that about that fraction of the patch tokens is kept / of the sub-layers runs (the
    logits of a LayerNorm-ed token against weights of std 1/sqrt(C) are about N(0, 1)). The
    fractions actually kept are what the GFLOPs count. Returns ``wrapped``.

    Raises:
        TypeError: a method other than ``adacolvit``.
    """
    from adaprune.config import wrap_info

    method = wrap_info(wrapped).method
    if method != "adacolvit":
        raise TypeError(f"random stand-in gates are made for adacolvit, not {method!r}; use --policy learned")
    generator = torch.Generator().manual_seed(seed)

    def stand_in(layer: nn.Linear, keep: float) -> None:
        with torch.no_grad():
            fan_in = layer.weight.shape[1]
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) / fan_in ** 0.5)
            # always / never: a bias far past any logit (still an input-dependent decision in the graph)
            layer.bias.fill_(20.0 if keep >= 1.0 else -20.0 if keep <= 0.0 else statistics.NormalDist().inv_cdf(keep))

    for block in wrapped.blocks:
        gate = block.adaprune_gate
        if gate.patch is not None:
            stand_in(gate.patch.attn_logits, patch_keep)
            stand_in(gate.patch.mlp_logits, patch_keep)
        if gate.layer is not None:
            stand_in(gate.layer.proj, layer_keep)
    return wrapped


def compare_on_runtime(dense: nn.Module, wrapped: nn.Module, x: Tensor, runtime: str, threads: int = 1,
                       warmup: int = 10, runs: int = 50, name: str = "", label: str = "learned",
                       progress: bool = False) -> BenchResult:
    """``compare`` with both models exported (``adaprune.export_onnx``, into a temporary folder)
    and run by ``runtime`` (``onnxruntime`` or ``openvino``) at batch 1, timed interleaved. The
    wrapped graph decides with the learned policy; its GFLOPs are the graph's own count.
    Throughput is batch 1 (the graphs are exported at batch 1)."""
    import tempfile
    from pathlib import Path

    from adaprune.export import export_onnx
    from adaprune.runtimes import load_exported, require_runtime

    require_runtime(runtime)
    single = x[:1]
    with tempfile.TemporaryDirectory() as folder:
        graphs = [load_exported(export_onnx(vit, Path(folder) / f"{kind}.onnx", single), runtime, threads)
                  for kind, vit in (("dense", dense), ("wrapped", wrapped))]
    array = single.numpy()
    with tqdm(total=2 * (warmup + runs), desc=name or "bench", unit="run", disable=None if progress else True,
              dynamic_ncols=True) as bar:
        dense_ms, wrapped_ms = (statistics.median(t) for t in sample_many(
            [lambda _, g=g: g(array) for g in graphs], single, threads, warmup, runs, bar.update))
    gflops = float(graphs[1](array)["gflops"][0])
    return BenchResult(model=name, policy=label, threads=threads, batch=1, dense_ms=dense_ms, wrapped_ms=wrapped_ms,
                       dense_img_s=1e3 / dense_ms, wrapped_img_s=1e3 / wrapped_ms, dense_gflops=vit_gflops(dense),
                       wrapped_gflops=gflops, runtime=runtime)


def sublayer_breakdown(dense: nn.Module, wrapped: nn.Module, patch_keep: float = 0.5, threads: int = 1,
                       warmup: int = 20, runs: int = 200) -> list[tuple[str, float, float, float]]:
    """Where an AdaColViT wrap's time goes at batch 1: each sub-layer of the first block, and
    its attention kernel alone, dense against grouped, timed interleaved in one process.

    Both sides run the inference kernels of ``adaprune.gates.grouped_patch`` (the dense side
    with ``groups=1``), so the rows compare the grouped computation with the dense one and
    nothing else. The grouped rows keep ``round(patch_keep * Np)`` random patch tokens at full
    width. Scaled dot-product attention does softmax work per score that FLOPs do not count,
    so its time shrinks less than its FLOPs when a head's channels are split into groups.

    Returns:
        ``(what, dense ms, grouped ms, grouped FLOPs / dense FLOPs)`` rows.
    """
    from adaprune.config import wrap_info
    from adaprune.flops import attention_flops, mlp_flops
    from adaprune.gates.grouped_patch import attention_inference, inference_weights, mlp_inference
    from adaprune.ops import prefixed_kept_index, random_keep

    info = wrap_info(wrapped)
    if info.method != "adacolvit" or info.config.patch_groups < 2:
        raise ValueError("the breakdown explains AdaColViT's grouped sub-layers: wrap with patch_groups >= 2")
    dense, wrapped = dense.eval(), wrapped.eval()
    block = wrapped.blocks[0]
    r, P, G = info.layout.num_method_tokens, info.layout.num_prefix, info.config.patch_groups
    n = info.layout.num_patches + info.layout.num_model_prefix  # the dense model's tokens
    dim, heads, head_dim = dense.embed_dim, block.attn.num_heads, block.attn.head_dim
    with torch.no_grad():
        flat = inference_weights(block.attn, block.mlp, 1)
        grouped = inference_weights(block.attn, block.mlp, G)
    h_dense = torch.randn(1, n, dim)
    h = torch.randn(1, n + r, dim)
    index, _ = prefixed_kept_index(random_keep(1, n + r - P, patch_keep, h.device, torch.bool), P)
    kept = index.shape[1]

    q64 = [torch.randn(1, heads, n, head_dim) for _ in range(3)]
    q32 = [torch.randn(1, heads, n, head_dim // G) for _ in range(3)]
    qk = [torch.randn(1, heads * (G - 1), kept, head_dim // G) for _ in range(3)]
    sdpa = torch.nn.functional.scaled_dot_product_attention
    fns = [
        lambda _: attention_inference(h_dense, flat),
        lambda _: attention_inference(h, grouped, index, None, r),
        lambda _: mlp_inference(h_dense, flat),
        lambda _: mlp_inference(h, grouped, index),
        lambda _: sdpa(*q64),
        lambda _: (sdpa(*q32), sdpa(*qk)),
    ]
    t = time_many(fns, h, threads, warmup, runs)
    attn_dim, hidden = heads * head_dim, block.mlp.fc1.out_features
    scores = 2 * n * n * attn_dim
    scores_grouped = 2 * (n * n * attn_dim / G + kept * kept * attn_dim * (G - 1) / G)
    return [
        ("attention sub-layer", t[0], t[1], attention_flops(n + r, kept, dim, attn_dim, G, r) / attention_flops(n, n, dim, attn_dim)),
        ("FFN sub-layer", t[2], t[3], mlp_flops(n + r, kept, dim, hidden, G) / mlp_flops(n, n, dim, hidden)),
        ("attention kernel (QK^T, softmax, AV)", t[4], t[5], scores_grouped / scores),
    ]


def prepared_steps_ms(dense: nn.Module, wrapped: nn.Module, x: Tensor, threads: int = 1, warmup: int = 10,
                      runs: int = 50) -> tuple[float, float]:
    """Dense latency against the wrapped model's prepared block steps run back to back.

    The steps (``BlockGate.prepare_inference``) are prepared once, outside the timing, and run
    with the embedding and final norm around them: what a forward costs without preparing the
    steps, collecting the decisions or writing the record. The gap to the full forward is the
    Python work per forward; the ratio to dense is the most the kernels can give.

    Returns:
        (dense ms, steps ms), medians of interleaved runs on ``x[:1]``.
    """
    from adaprune.policy import get_policy

    dense, wrapped = dense.eval(), wrapped.eval()
    single = x[:1]
    with torch.inference_mode():
        tokens = wrapped._embed_tokens(single)
        steps = [b.adaprune_gate.prepare_inference(b, tokens, get_policy(wrapped)) for b in wrapped.blocks]
    if any(step is None for step in steps):
        raise ValueError("this wrapped model's gates prepare no inference steps at batch 1")

    def run_steps(images: Tensor) -> Tensor:
        t = wrapped._embed_tokens(images)
        for step in steps:
            t = step(t)[0]
        return wrapped.norm(t)

    return time_pair(dense.forward_features, run_steps, single, threads, warmup, runs)


def format_breakdown(rows: Sequence[tuple[str, float, float, float]]) -> str:
    """The breakdown as a small table: time ratio beside FLOPs ratio per row."""
    lines = [f"{'batch 1, first block':<38}{'dense ms':>9}{'grouped ms':>11}{'time':>7}{'FLOPs':>7}"]
    for what, dense_ms, grouped_ms, flops in rows:
        lines.append(f"{what:<38}{dense_ms:>9.3f}{grouped_ms:>11.3f}{grouped_ms / dense_ms:>7.2f}{flops:>7.2f}")
    return "\n".join(lines)


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
    lines = [f"{result.model}  policy={result.policy}  threads={result.threads}  runtime={result.runtime}"]
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
    parser.add_argument("--runtime", default="torch", choices=["torch", "onnxruntime", "openvino"],
                        help="what runs both models: torch eager, or their exported ONNX graphs (batch 1; "
                             "pip install 'adaprune[runtimes]'); on a runtime --policy random gives the gates "
                             "random weights that keep about --patch-keep / --layer-keep (adaprune.bench.random_gates)")
    parser.add_argument("--batch", type=int, default=16, help="batch size of the throughput figure")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the result to this JSON file")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the first block's sub-layers and attention kernel, dense vs grouped")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (none is shown off a terminal)")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    dense = timm.create_model(args.model, pretrained=False, img_size=args.img_size, in_chans=args.in_chans,
                              num_classes=0, global_pool="").eval()
    options = dict(patch_groups=args.patch_groups, layer_skip=not args.no_layer_skip) if args.method == "adacolvit" else {}
    options.update(parse_options(args.options))
    wrapped = wrap(copy.deepcopy(dense), method=args.method, **options)
    x = torch.randn(args.batch, args.in_chans, args.img_size, args.img_size)
    if args.runtime != "torch":
        if args.policy not in ("learned", "random"):
            parser.error(f"--policy {args.policy}: an exported graph decides with its gates (learned); "
                         f"use --policy learned or random (random stand-in gates), or --runtime torch")
        if args.breakdown:
            parser.error("--breakdown times PyTorch kernels; use it with --runtime torch")
        label = "learned"
        if args.policy == "random":
            random_gates(wrapped, args.patch_keep, args.layer_keep, args.seed)
            label = f"random gates(patch_keep={args.patch_keep}, layer_keep={args.layer_keep})"
        result = compare_on_runtime(dense, wrapped, x, args.runtime, args.threads, args.warmup, args.runs,
                                    name=args.model, label=label, progress=not args.quiet)
    else:
        result = compare(dense, wrapped, x, args.policy, args.patch_keep, args.layer_keep, args.threads,
                         args.batch, args.warmup, args.runs, name=args.model, progress=not args.quiet)
    print(format_result(result))
    if args.breakdown and args.runtime == "torch":
        print(format_breakdown(sublayer_breakdown(dense, wrapped, args.patch_keep, args.threads)))
        with policy(wrapped, args.policy, **({"patch_keep": args.patch_keep, "layer_keep": args.layer_keep}
                                              if args.policy == "random" else {})):
            dense_ms, steps_ms = prepared_steps_ms(dense, wrapped, x, args.threads, args.warmup, args.runs)
        print(f"prepared block steps alone, batch 1: {dense_ms:.2f} ms dense, {steps_ms:.2f} ms wrapped, "
              f"{dense_ms / steps_ms:.2f}x")
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
