"""Run a graph exported by adaprune (``adaprune.export_onnx``, ``adacolor export``) with ONNX Runtime
or OpenVINO.

The runtime is a choice of how to run, never of what is computed: both run in float32
(OpenVINO's CPU plugin would otherwise pick bfloat16 on CPUs that have it), and an exported
graph takes the same decisions as the PyTorch model it came from.

    >>> model = load_exported("adacolvit-t.onnx", runtime="openvino", threads=1)
    >>> out = model(x)            # x: (1, 4, H, W) float32
    >>> out["ab"], out["layer_keep"], out["token_keep"], out["gflops"]

This module imports neither torch nor the runtimes until they are used.

Both runtimes are optional: ``pip install 'adaprune[runtimes]'``.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

__all__ = ["RUNTIMES", "EXTRA", "RuntimeNotInstalled", "ExportedModel", "keep_signal_stack", "installed_runtimes", "require_runtime",
           "read_info", "load_exported", "measure_runtimes", "fastest_runtime"]

RUNTIMES = ("onnxruntime", "openvino")
EXTRA = "runtimes"  # pip install 'adaprune[runtimes]'
_METADATA_KEY = "adaprune"  # adaprune.export.METADATA_KEY


class RuntimeNotInstalled(ImportError, ValueError):
    """A runtime (or the ``onnx`` package) that is not installed; a ValueError too, so that the
    CLI reports it in one line."""


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise RuntimeNotInstalled(f"{module} is not installed; install the optional runtimes with "
                                  f"pip install 'adaprune[{EXTRA}]'") from None


class _StackT(ctypes.Structure):
    """``stack_t`` of ``sigaltstack(2)``."""

    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _sigaltstack() -> Optional[Any]:
    """libc's ``sigaltstack``, or None where there is none (not Linux / macOS)."""
    if not sys.platform.startswith(("linux", "darwin")):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).sigaltstack
    except (OSError, AttributeError):
        return None


@contextmanager
def keep_signal_stack() -> Iterator[None]:
    """Puts the calling thread's alternate signal stack back as it was after the block.

    OpenVINO's CPU plugin gives the thread that compiles or runs a model an alternate signal
    stack of its own, and a compiled model freed later hands the thread back the stack it found,
    which is another model's, already freed, when models are freed in another order than they
    were made. The next signal handled on that thread (Python runs its handlers on the alternate
    stack: a ``SIGCHLD`` handler, as a DataLoader with workers installs) then kills the process
    with SIGSEGV. Every OpenVINO call here runs inside this block, so no thread is left on a
    stack that OpenVINO owns."""
    call = _sigaltstack()
    if call is None:
        yield
        return
    before = _StackT()
    kept = call(None, ctypes.byref(before)) == 0
    try:
        yield
    finally:
        if kept:
            now = _StackT()
            if call(None, ctypes.byref(now)) == 0 and (now.ss_sp, now.ss_size) != (before.ss_sp, before.ss_size):
                before.ss_flags &= ~1  # SS_ONSTACK is reported, never set
                call(ctypes.byref(before), None)


def require_runtime(runtime: str) -> None:
    """Raises RuntimeNotInstalled (one line, naming the extra) unless ``runtime`` and ``onnx``
    import here; ValueError for a name that is not a runtime."""
    _check_runtime(runtime)
    _require(runtime)
    _require("onnx")


def _check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; accepted: {', '.join(RUNTIMES)}")


def installed_runtimes() -> list[str]:
    """The runtimes of ``RUNTIMES`` that import here, in that order."""
    found = []
    for runtime in RUNTIMES:
        try:
            importlib.import_module(runtime)
        except ImportError:
            continue
        found.append(runtime)
    return found


def read_info(path: Union[str, os.PathLike], kind: Optional[str] = None) -> dict[str, Any]:
    """The adaprune metadata of an exported graph, with its ONNX ``opset`` added.

    Args:
        path: an ``.onnx`` file written by ``adaprune.export_onnx`` / ``adacolor export``.
        kind: the kind it must be (``"colorizer"``), or None for any.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an ONNX model, a corrupt one, one not exported by adaprune, or of
            another kind.
    """
    onnx = _require("onnx")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported model at {path}; write one with `adacolor export --out {path}`")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf's errors vary by version
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{path} is not a valid ONNX model (corrupt, truncated or another format): {first}") from None
    entries = {p.key: p.value for p in proto.metadata_props}
    if _METADATA_KEY not in entries:
        raise ValueError(f"{path} is an ONNX model but not one exported by adaprune (no {_METADATA_KEY!r} metadata); "
                         f"export one with `adacolor export` or adaprune.export_onnx")
    try:
        info = json.loads(entries[_METADATA_KEY])
    except json.JSONDecodeError:
        raise ValueError(f"{path}: its {_METADATA_KEY!r} metadata is not valid JSON (the file was altered)") from None
    outputs = [o.name for o in proto.graph.output]
    if not isinstance(info, dict) or info.get("outputs") != outputs:
        raise ValueError(f"{path}: its outputs {outputs} are not those its metadata names (the file was altered)")
    if kind is not None and info.get("kind", "vit") != kind:
        raise ValueError(f"{path} is an exported {info.get('kind', 'vit')}, not a {kind}")
    info["opset"] = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return info


class _OpenVinoModel:
    """An OpenVINO compiled model and its request, freed inside ``keep_signal_stack``."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()

    def __del__(self) -> None:
        with keep_signal_stack():
            self.__dict__.clear()


class ExportedModel:
    """An exported graph loaded on one runtime, called on one input at a time.

    Args:
        path: the ``.onnx`` file.
        runtime: ``"onnxruntime"`` or ``"openvino"``.
        threads: CPU threads for the runtime (None: its default).
        kind: the kind of graph expected (``"colorizer"``), or None for any.

    Attributes:
        info: the graph's adaprune metadata (``read_info``).
        input_shape: the one input shape it takes, e.g. (1, 4, 224, 224).
        output_names: its outputs in order, e.g. ``ab``, ``layer_keep``, ``token_keep``, ``gflops``.
    """

    def __init__(self, path: Union[str, os.PathLike], runtime: str = "onnxruntime", threads: Optional[int] = None,
                 kind: Optional[str] = None) -> None:
        _check_runtime(runtime)
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads}")
        self.path = Path(path)
        self.runtime = runtime
        module = _require(runtime)
        self.info = read_info(path, kind)
        self.input_shape = tuple(self.info["input"]["shape"])
        self.output_names = list(self.info["outputs"])
        try:
            self._run = (self._onnxruntime(module, threads) if runtime == "onnxruntime"
                         else self._openvino(module, threads))
        except Exception as error:  # noqa: BLE001 - each runtime raises its own types
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            version = getattr(module, "__version__", "?")
            raise ValueError(f"{runtime} {version} cannot load {self.path} (ONNX opset {self.info['opset']}): "
                             f"{first[:300]}; re-export it with an opset this runtime supports "
                             f"(adacolor export --opset 18)") from None

    def _onnxruntime(self, ort: Any, threads: Optional[int]) -> Callable[[np.ndarray], list]:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})

    def _openvino(self, ov: Any, threads: Optional[int]) -> Callable[[np.ndarray], list]:
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}  # never bfloat16 behind the user's back
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        with keep_signal_stack():
            self._openvino_model = _OpenVinoModel(ov.Core().compile_model(str(self.path), "CPU", config))

        def run(x: np.ndarray) -> list:
            with keep_signal_stack():
                return [np.asarray(v) for v in self._openvino_model.request.infer([x]).to_tuple()]

        return run

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the input."""
        return int(self.input_shape[-2]), int(self.input_shape[-1])

    @property
    def adaptive(self) -> bool:
        """Whether the graph decides per image (and outputs its decisions)."""
        return bool(self.info.get("adaptive"))

    def __call__(self, x: Any) -> dict[str, np.ndarray]:
        """x: (1, C, H, W) (numpy or torch) at ``input_shape`` -> the outputs by name."""
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        x = np.ascontiguousarray(x, dtype=np.float32)
        if tuple(x.shape) != self.input_shape:
            raise ValueError(f"{self.path.name} takes one input of shape {self.input_shape}, got {tuple(x.shape)}")
        return dict(zip(self.output_names, self._run(x)))


def load_exported(path: Union[str, os.PathLike], runtime: str = "onnxruntime", threads: Optional[int] = None,
                  kind: Optional[str] = None) -> ExportedModel:
    """An exported graph on ``runtime`` (``kind``: the kind it must be, e.g. ``"colorizer"``; None:
    any adaprune graph); see ``ExportedModel``."""
    return ExportedModel(path, runtime, threads, kind)


def measure_runtimes(path: Union[str, os.PathLike], runtimes: Optional[Sequence[str]] = None, threads: int = 1,
                     warmup: int = 3, runs: int = 20, kind: Optional[str] = None) -> dict[str, float]:
    """Median latency (ms) of one call of an exported graph on each runtime, on a grey ramp.

    Runtimes are timed in turn, interleaved run by run, in one process, so that they share the
    machine's state. ``runtimes`` None: every installed one."""
    names = list(runtimes) if runtimes is not None else installed_runtimes()
    if not names:
        raise RuntimeNotInstalled(f"no runtime is installed; pip install 'adaprune[{EXTRA}]'")
    models = {name: ExportedModel(path, name, threads, kind) for name in names}
    shape = next(iter(models.values())).input_shape
    x = np.zeros(shape, dtype=np.float32)
    x[:, 0] = np.linspace(-1, 1, shape[-1], dtype=np.float32)
    for model in models.values():
        for _ in range(warmup):
            model(x)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(runs):
        for name, model in models.items():
            start = time.perf_counter()
            model(x)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def fastest_runtime(path: Union[str, os.PathLike], runtimes: Optional[Sequence[str]] = None, threads: int = 1,
                    runs: int = 20) -> tuple[str, dict[str, float]]:
    """The installed runtime that runs an exported graph fastest here, measured
    (``measure_runtimes``), and every runtime's median latency in ms."""
    latencies = measure_runtimes(path, runtimes, threads=threads, runs=runs)
    return min(latencies, key=latencies.get), latencies
