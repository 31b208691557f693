"""ONNX export of a timm ViT, wrapped or dense, with the per-image decisions inside the graph.

A wrapped ViT is traced by ``torch.export`` at batch 1 in eval: each gate that exports gives a
step whose layer decisions are ``torch.cond`` (an ONNX ``If``: a skipped sub-layer's branch is
not run) and whose kept tokens are found in the graph (``NonZero``, ``Gather``, ``ScatterND``
over a count known only at run time), so the exported model does the work eager eval does, no
more. Its outputs are the model's and the decisions, so runtimes can be checked against
PyTorch token by token.

    >>> adaprune.export_onnx(vit, "vit.onnx", torch.randn(1, 3, 224, 224))
    >>> # outputs: features (1, N, C), layer_keep (L, 2) bool, token_keep (L, 2, Np) bool, gflops (1,)
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from adaprune.config import is_wrapped, wrap_info
from adaprune.policy import get_policy
from adaprune.record import last_record

__all__ = ["export_onnx", "DEFAULT_OPSET", "MIN_OPSET", "METADATA_KEY", "DECISION_OUTPUTS"]

DEFAULT_OPSET = 18
MIN_OPSET = 18  # torch's ONNX exporter (torch.export based) writes opset 18 and later
METADATA_KEY = "adaprune"  # the model's metadata_props entry: JSON saying what the graph is
DECISION_OUTPUTS = ("layer_keep", "token_keep", "gflops")


class _WithDecisions(nn.Module):
    """``entry(x)`` and the decisions of the wrapped ViT it runs, as one traceable forward.

    Outputs: the entry's tensor; then, for a wrapped ViT, ``layer_keep`` (L, 2) bool (the
    sub-layers run), ``token_keep`` (L, 2, Np) bool when the method decides per token, and
    ``gflops`` (1,) spent by this image."""

    def __init__(self, model: nn.Module, vit: nn.Module, entry: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.model = model
        self.__dict__["_vit"] = vit  # not a submodule twice: it is inside model
        self.__dict__["_entry"] = entry

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out = self._entry(x)
        if not is_wrapped(self._vit):
            return (out,)
        record = last_record(self._vit)
        outputs = [out, torch.cat([b.layer_keep for b in record.blocks]) > 0.5]
        if all(b.token_masks is not None for b in record.blocks):
            outputs.append(torch.cat([b.token_masks for b in record.blocks]).bool())
        outputs.append(record.gflops.to(torch.float32))
        return tuple(outputs)


def check_exportable(vit: nn.Module) -> None:
    """Raises TypeError / ValueError (one line) when ``vit`` cannot be exported with its
    decisions in the graph: not a timm ViT, a method or block the exporter cannot handle, or a
    control policy set."""
    if not isinstance(vit, VisionTransformer):
        raise TypeError(f"adaprune.export_onnx exports timm VisionTransformer models (wrapped or dense), "
                        f"got {type(vit).__name__}")
    if not is_wrapped(vit):
        return
    mode = get_policy(vit).mode
    if mode != "learned":
        raise ValueError(f"an exported model decides with the learned policy, but this one has policy {mode!r} "
                         f"set; export outside adaprune.policy(...) / after adaprune.set_policy(vit, 'learned')")
    method = wrap_info(vit).method
    for block in vit.blocks:
        reason = block.adaprune_gate.export_blocker(block)
        if reason is not None:
            raise TypeError(f"cannot export {method!r} to ONNX: {reason}")


def _check_input(vit: VisionTransformer, example_input: Tensor) -> None:
    in_chans = vit.patch_embed.proj.in_channels
    size = tuple(int(s) for s in vit.patch_embed.img_size)
    if (not isinstance(example_input, Tensor) or example_input.ndim != 4 or example_input.shape[0] != 1
            or example_input.shape[1] != in_chans or tuple(example_input.shape[-2:]) != size):
        shape = tuple(example_input.shape) if isinstance(example_input, Tensor) else type(example_input).__name__
        raise ValueError(f"example_input must be one image (1, {in_chans}, {size[0]}, {size[1]}) at the model's "
                         f"size (the graph is exported at batch 1), got {shape}")


def _check_output_path(path: Path) -> None:
    """ValueError / PermissionError naming ``path`` when the file cannot be written there."""
    if path.is_dir():
        raise IsADirectoryError(f"cannot write the ONNX model to {path}: it is a folder; give a file path (.onnx)")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write the ONNX model to {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PermissionError(f"cannot write the ONNX model to {path}: permission denied")


@contextlib.contextmanager
def _eval_without_grad(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No warnings, log lines or printed graphs from the exporter (it logs traced graphs at
    warning level, and prints some of a bare ViT's on standard error); its errors still raise."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _drop_unused_initializers(graph: Any) -> None:
    """Removes the initializers of an ONNX graph that no node reads (in any branch), which
    runtimes otherwise warn about at every load."""
    used: set[str] = set()

    def collect(g: Any) -> None:
        for node in g.node:
            used.update(node.input)
            for attribute in node.attribute:
                for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                    collect(sub)

    collect(graph)
    used.update(o.name for o in graph.output)
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def export_onnx(
        vit: nn.Module,
        path: Union[str, os.PathLike],
        example_input: Tensor,
        opset: int = DEFAULT_OPSET,
        model: Optional[nn.Module] = None,
        output_name: str = "features",
        metadata: Optional[dict[str, Any]] = None,
) -> Path:
    """Writes an ONNX model of a timm ViT (wrapped or dense) with its decisions in the graph.

    Exported at batch 1 and at the model's image size, in eval mode (the model's mode is
    restored after). In the graph a skippable sub-layer is an ``If`` on its decision and the
    tokens a gate keeps are selected by ``NonZero`` / ``Gather`` and added back by
    ``ScatterND``: the work a gate drops is not done by the runtime either.

    Args:
        vit: a timm ``VisionTransformer``, dense or wrapped by a method that exports
            (``adacolvit``); the others raise TypeError naming the method.
        path: the ``.onnx`` file to write (one file, weights inside).
        example_input: (1, in_chans, H, W) at the model's image size.
        opset: the ONNX opset (18 or later).
        model: a module whose forward calls ``vit.forward_features`` once (e.g. a colorizer
            with ``vit`` as its backbone), exported instead of ``vit.forward_features``; its
            output must be one tensor.
        output_name: the name of the first output (``model``'s or the features).
        metadata: extra entries for the ``adaprune`` metadata (JSON-serialisable).

    Returns:
        The path written. Outputs, in order: ``output_name`` (the features (1, N, C), or
        ``model``'s output); for a wrapped ViT also ``layer_keep`` (L, 2) bool, ``token_keep``
        (L, 2, Np) bool when the method decides per token (False where a sub-layer was
        skipped) and ``gflops`` (1,) float, as ``adaprune.last_record`` gives them.

    Raises:
        TypeError: not a timm ViT, or a method / block that cannot be exported.
        ValueError: an example input of the wrong shape, an opset below 18, a control policy set.
        FileNotFoundError / IsADirectoryError / PermissionError: the path cannot be written.
    """
    check_exportable(vit)
    _check_input(vit, example_input)
    try:
        import onnx  # torch's exporter needs both
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ImportError(f"exporting to ONNX needs the onnx and onnxscript packages ({error.name} is missing): "
                          f"pip install 'adaprune[runtimes]'") from None
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(f"opset must be an integer >= {MIN_OPSET} (torch's ONNX exporter), got {opset!r}")
    path = Path(path)
    _check_output_path(path)
    target = vit if model is None else model
    graph = _WithDecisions(target, vit, vit.forward_features if model is None else model)
    names = [output_name]
    with _eval_without_grad(target):
        reference = graph(example_input)
        if is_wrapped(vit):
            names += ["layer_keep", "token_keep", "gflops"] if len(reference) == 4 else ["layer_keep", "gflops"]
        with _quiet():
            program = torch.onnx.export(graph, (example_input,), dynamo=True, opset_version=opset, verbose=False,
                                        input_names=["input"], output_names=names, external_data=False,
                                        optimize=True)
    info: dict[str, Any] = {
        "format": 1,
        "adaptive": is_wrapped(vit),
        "method": wrap_info(vit).method if is_wrapped(vit) else None,
        "input": {"name": "input", "shape": list(example_input.shape)},
        "outputs": names,
        "depth": len(vit.blocks),
        "torch": torch.__version__,
    }
    info.update(metadata or {})
    proto = program.model_proto
    _drop_unused_initializers(proto.graph)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info, sort_keys=True)
    try:
        onnx.save_model(proto, str(path))
    except OSError as error:
        raise PermissionError(f"cannot write the ONNX model to {path}: {error.strerror or error}") from error
    return path
