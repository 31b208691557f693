"""A colorizer on a chosen runtime: PyTorch itself, or its exported graph on ONNX Runtime / OpenVINO.

``on_runtime(model, "openvino")`` gives a module that takes and returns what the PyTorch
colorizer does ((B, 4, H, W) -> ab (B, 2, H, W)), computed by the exported graph
(``adacolor.export``): the same decisions, made inside the graph. The graph is exported once per
model and kept in a cache folder (``$ADAPRUNE_CACHE``, default ``~/.cache/adaprune``), keyed by
the model's weights, so a second use loads it in a second; an adaptive graph takes about two
minutes to export on 2 cores, a dense one seconds.

``fastest_runtime(model)`` times torch and every installed runtime on one input, interleaved,
in this process, and says which is fastest here.

    >>> model = load_shipped("adacolvit-t-224")
    >>> fast = on_runtime(model, "onnxruntime", threads=1)
    >>> ab = fast(x)                               # x: (1, 4, 224, 224)
    >>> colorizer_gflops(fast), model_compute_map(fast)   # what that forward decided
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from adaprune.bench import sample_many
from adaprune.runtimes import RUNTIMES, ExportedModel, installed_runtimes, require_runtime

__all__ = ["RUNTIME_CHOICES", "ExportedColorizer", "cache_dir", "model_digest", "cached_graph", "export_cached",
           "on_runtime", "runtime_of", "fastest_runtime", "select_runtime", "check_runtime"]

RUNTIME_CHOICES = ("torch",) + RUNTIMES  # what --runtime accepts (besides "auto")


def check_runtime(runtime: str, auto: bool = False) -> None:
    """ValueError naming the accepted runtimes unless ``runtime`` is one (``auto`` too when allowed)."""
    accepted = RUNTIME_CHOICES + (("auto",) if auto else ())
    if runtime not in accepted:
        raise ValueError(f"unknown runtime {runtime!r}; accepted: {', '.join(accepted)}")


def cache_dir() -> Path:
    """Where exported graphs are kept: ``$ADAPRUNE_CACHE`` or ``~/.cache/adaprune``, + ``exported``."""
    root = os.environ.get("ADAPRUNE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "adaprune")
    return Path(root) / "exported"


def model_digest(model: nn.Module) -> str:
    """A short SHA-256 of a colorizer's build arguments and weights: the cache key of its graph."""
    digest = hashlib.sha256()
    args = getattr(model, "build_args", None) or {}
    digest.update(json.dumps(args, sort_keys=True, default=str).encode())
    digest.update(torch.__version__.encode())
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _label(model: nn.Module) -> str:
    args = getattr(model, "build_args", None) or {}
    return str(args.get("name") or type(model).__name__)


def cached_graph(model: nn.Module) -> Optional[Path]:
    """The cached exported graph of ``model``, or None when it was not exported yet."""
    path = cache_dir() / f"{_label(model)}-{model_digest(model)}.onnx"
    return path if path.is_file() else None


def export_cached(model: nn.Module, say: Callable[[str], object] = lambda text: None) -> Path:
    """The exported graph of ``model`` from the cache, exported into it first when missing
    (written to a temporary file and renamed, so a killed export leaves no broken graph).
    ``say`` is told one line before a slow export."""
    from adacolor.export import export_colorizer

    folder = cache_dir()
    path = folder / f"{_label(model)}-{model_digest(model)}.onnx"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    say(f"exporting {_label(model)} to ONNX once, into {folder} "
        f"(once; {'an adaptive ViT-Tiny takes about 2 minutes' if getattr(model, 'adaptive', False) else 'seconds'} on 2 cores)")
    handle, temporary = tempfile.mkstemp(suffix=".onnx", dir=folder)
    os.close(handle)
    try:
        export_colorizer(model, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


class ExportedColorizer(nn.Module):
    """A colorizer computed by its exported graph on ONNX Runtime or OpenVINO.

    It answers as the PyTorch colorizer does: ``forward`` (B, 4, H, W) -> ab (B, 2, H, W), and
    ``image_size``, ``grid_size``, ``adaptive``, ``spec``, ``build_args``, ``patch_size``, ``depth``. The graph runs one
    image at a time (it is exported at batch 1). What the last forward decided is
    ``spent_gflops()`` and ``decisions()``; ``colorizer_gflops`` and ``model_compute_map`` read
    them.

    Args:
        source: the PyTorch colorizer the graph was exported from (for its attributes and the
            head's GFLOPs; its weights are not used).
        path: the exported graph (``adacolor export`` / ``export_cached``).
        runtime: ``"onnxruntime"`` or ``"openvino"``.
        threads: the runtime's CPU threads (None: its default).
    """

    def __init__(self, source: nn.Module, path: Union[str, os.PathLike], runtime: str,
                 threads: Optional[int] = None) -> None:
        super().__init__()
        from adacolor.model import colorizer_gflops, head_gflops

        self.graph = ExportedModel(path, runtime, threads, kind="colorizer")
        self.runtime = runtime
        self.path = Path(path)
        self.spec = getattr(source, "spec", None)
        self.build_args = dict(getattr(source, "build_args", None) or {})
        self.patch_size = int(getattr(source, "patch_size", 16))
        self._size = tuple(int(s) for s in source.image_size)
        if self.graph.image_size != self._size:
            raise ValueError(f"{self.path} takes {self.graph.image_size} images, not the model's {self._size}: "
                             f"it was exported from another model")
        self._adaptive = bool(source.adaptive)
        if self._adaptive != self.graph.adaptive:
            raise ValueError(f"{self.path} is {'an adaptive' if self.graph.adaptive else 'a dense'} graph, "
                             f"the model is {'adaptive' if self._adaptive else 'dense'}: it was exported from "
                             f"another model")
        self._grid = tuple(int(s) for s in source.grid_size)
        self.depth = len(source.backbone.blocks)
        self._head_gflops = head_gflops(source)
        # a dense model spends the same on every image: counted once here, from the PyTorch model
        self._dense_gflops = None if self._adaptive else float(colorizer_gflops(source, 1)[0])
        self._last: list[dict[str, Any]] = []

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) the model takes."""
        return self._size

    @property
    def grid_size(self) -> tuple[int, int]:
        """(h, w) tokens."""
        return self._grid

    @property
    def adaptive(self) -> bool:
        """Whether the graph decides per image."""
        return self._adaptive

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, 4, H, W) = [L_norm, hint a, hint b, hint mask] -> ab_norm (B, 2, H, W) in (-1, 1)."""
        from adacolor.model import check_input

        check_input(x, self.image_size)
        outputs = [self.graph(x[i:i + 1].detach().cpu()) for i in range(x.shape[0])]
        self._last = outputs
        return torch.cat([torch.from_numpy(out["ab"]) for out in outputs]).to(x.device)

    def spent_gflops(self) -> Tensor:
        """(B,) GFLOPs of the last forward per image: the graph's own count plus the head's."""
        if not self._last:
            raise RuntimeError("this exported colorizer has not run a forward yet: call it on an input first")
        if self._dense_gflops is not None:
            return torch.full((len(self._last),), self._dense_gflops)
        return torch.tensor([float(out["gflops"][0]) + self._head_gflops for out in self._last])

    def decisions(self, index: int = 0) -> tuple[Tensor, Optional[Tensor]]:
        """Image ``index`` of the last forward: ``layer_keep`` (L, 2) bool and ``token_keep``
        (L, 2, Np) bool (None for a method without token decisions)."""
        if not self._last:
            raise RuntimeError("this exported colorizer has not run a forward yet: call it on an input first")
        if not self._adaptive:
            raise TypeError("a dense graph makes no decisions")
        out = self._last[index]
        tokens = out.get("token_keep")
        return torch.from_numpy(out["layer_keep"]).bool(), None if tokens is None else torch.from_numpy(tokens).bool()

    def extra_repr(self) -> str:
        return f"{_label(self)} on {self.runtime}, {self.path.name}"


def on_runtime(model: nn.Module, runtime: str, threads: Optional[int] = None,
               say: Callable[[str], object] = lambda text: None) -> nn.Module:
    """``model`` itself for ``"torch"``; else an ``ExportedColorizer`` of its cached graph
    (exported first when missing, see ``export_cached``).

    Raises:
        ValueError: an unknown runtime. RuntimeNotInstalled (a ValueError): that runtime, or
            ``onnx``, is not installed. TypeError: a model that does not export (SwinIR,
            Uformer, a gate method without an exporter).
    """
    check_runtime(runtime)
    if runtime == "torch":
        return model
    require_runtime(runtime)  # before a two-minute export, not after
    return ExportedColorizer(model, export_cached(model, say), runtime, threads)


def runtime_of(model: nn.Module) -> str:
    """``"torch"``, ``"onnxruntime"`` or ``"openvino"``: what runs ``model``."""
    return str(getattr(model, "runtime", "torch"))


def fastest_runtime(model: nn.Module, threads: Optional[int] = None, runtimes: Optional[Sequence[str]] = None,
                    export: bool = True, say: Callable[[str], object] = lambda text: None,
                    runs: int = 15) -> tuple[str, dict[str, float]]:
    """The runtime that runs ``model`` fastest here, measured, and each one's median ms.

    Args:
        model: a PyTorch colorizer.
        threads: the threads each runtime gets (None: torch's current count).
        runtimes: the candidates (default: torch and every installed runtime).
        export: export the graph when it is not cached yet (about two minutes for an adaptive
            model); False: the runtimes that need an export are left out until it exists.
        say: told a line before a slow export.
        runs: timed runs per runtime, on a photo with 10 hints at the model's size.
    """
    from adacolor.bench import bench_input

    threads = threads or torch.get_num_threads()
    names = list(runtimes) if runtimes is not None else ["torch"] + installed_runtimes()
    for name in names:
        check_runtime(name)
    exportable = getattr(model, "backbone", None) is not None  # ViT colorizers export, SwinIR / Uformer not
    if any(name != "torch" for name in names) and (not exportable or (not export and cached_graph(model) is None)):
        names = [name for name in names if name == "torch"] or ["torch"]
    candidates = {name: on_runtime(model, name, threads, say) for name in names}
    if len(candidates) == 1:
        return names[0], {}
    for candidate in candidates.values():
        candidate.eval()
    times = sample_many(list(candidates.values()), bench_input(model.image_size[0]), threads, warmup=3, runs=runs)
    medians = {name: statistics.median(values) for name, values in zip(candidates, times)}
    return min(medians, key=medians.get), medians


def _measured_file(model: nn.Module) -> Path:
    return cache_dir() / f"{_label(model)}-{model_digest(model)}.runtimes.json"


def _machine_key(threads: int) -> str:
    """What a measurement of runtimes holds for: threads, this machine's CPUs and the versions."""
    import importlib.metadata as metadata

    versions = []
    for package in ("torch", "onnxruntime", "openvino"):
        try:
            versions.append(f"{package}={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return f"threads={threads};cpus={os.cpu_count()};{';'.join(versions)}"


def select_runtime(model: nn.Module, runtime: str = "auto", threads: Optional[int] = None, export: bool = False,
                   say: Callable[[str], object] = lambda text: None,
                   export_command: Optional[str] = None) -> tuple[nn.Module, str]:
    """``model`` on ``runtime``, and one line saying which runtime runs it and why.

    ``auto``: the fastest of torch and the installed runtimes, measured here once per model,
    thread count and machine (the medians are kept beside the cached graph). With ``export``
    False a runtime whose graph is not cached yet is left out, and the line says how to add it
    (``export_command``, default ``adacolor export --model NAME``); with True the graph is
    exported first.
    """
    check_runtime(runtime, auto=True)
    if runtime != "auto":
        return on_runtime(model, runtime, threads, say), f"runtime {runtime} (asked for)"
    threads = threads or torch.get_num_threads()
    installed = installed_runtimes()
    exportable = getattr(model, "backbone", None) is not None
    if not installed or not exportable:
        why = ("no ONNX runtime is installed: pip install 'adaprune[runtimes]'" if exportable
               else f"{_label(model)} does not export to ONNX")
        return model, f"runtime torch ({why})"
    if not export and cached_graph(model) is None:
        command = export_command or f"adacolor export --model {_label(model)}"
        return model, (f"runtime torch ({', '.join(installed)} need{'s' if len(installed) == 1 else ''} this model "
                       f"exported once: {command}; then the fastest is measured and used)")
    record = _measured_file(model)
    key = _machine_key(threads)
    try:
        kept = json.loads(record.read_text())
    except (OSError, ValueError):
        kept = {}
    medians = kept.get(key) if isinstance(kept, dict) else None
    if not isinstance(medians, dict) or set(medians) != {"torch", *installed}:
        _, medians = fastest_runtime(model, threads, ["torch", *installed], export=True, say=say)
        kept = (kept if isinstance(kept, dict) else {}) | {key: medians}
        record.parent.mkdir(parents=True, exist_ok=True)
        temporary = record.with_suffix(".tmp")
        temporary.write_text(json.dumps(kept, indent=1) + "\n")
        os.replace(temporary, record)
    best = min(medians, key=medians.get)
    timing = ", ".join(f"{name} {ms:.1f} ms" for name, ms in sorted(medians.items(), key=lambda item: item[1]))
    plural = "s" if threads > 1 else ""
    return on_runtime(model, best, threads, say), f"runtime {best} (the fastest here at {threads} thread{plural}: {timing})"
