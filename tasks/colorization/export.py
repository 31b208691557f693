"""One exported graph (ONNX) per colorizer, with its decisions inside.

The whole colorizer is exported: (1, 4, H, W) = [L, hint a, hint b, hint mask] at the model's
size -> normalised ab (1, 2, H, W), as ``Colorizer.forward`` computes it (backbone, head,
tanh). An adaptive colorizer's graph decides per image as the PyTorch model does (a skipped
sub-layer is an ``If`` branch not taken, kept tokens are selected in the graph) and also
outputs its decisions: ``layer_keep`` (L, 2), ``token_keep`` (L, 2, Np) and ``gflops`` (1,).

    adacolor export --model adacolvit-t-cpu --format onnx --out adacolvit-t.onnx
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from adaprune.export import DEFAULT_OPSET, export_onnx

__all__ = ["FORMATS", "KIND", "export_colorizer"]

FORMATS = ("onnx",)
KIND = "colorizer"  # the ``kind`` in the graph's adaprune metadata, checked by adaprune.runtimes


def export_colorizer(model: nn.Module, path: Union[str, os.PathLike], opset: int = DEFAULT_OPSET,
                     name: Optional[str] = None) -> Path:
    """Writes a colorizer as one ONNX graph at batch 1 and the model's image size.

    Args:
        model: a ``Colorizer`` (its backbone dense or wrapped by a method that exports).
        path: the ``.onnx`` file to write.
        opset: the ONNX opset (18 or later).
        name: the model's name for the graph's metadata (default: its ``build_args`` name).

    Returns:
        The path written. Input ``input`` (1, 4, H, W); outputs ``ab`` (1, 2, H, W) in
        (-1, 1), then for an adaptive model ``layer_keep``, ``token_keep`` and ``gflops``
        (``adaprune.export_onnx``).

    Raises:
        TypeError: a colorizer that is not a ViT and a head (SwinIR, Uformer), or whose gate
            method cannot be exported.
        ValueError / FileNotFoundError / PermissionError: a bad opset or path.
    """
    from adacolor.model import Colorizer

    args: dict[str, Any] = dict(getattr(model, "build_args", {}) or {})
    label = name or args.get("name") or type(model).__name__
    if not isinstance(model, Colorizer):
        raise TypeError(f"{label}: only ViT colorizers (a timm ViT and a head) export to ONNX; "
                        f"{type(model).__name__} models (SwinIR, Uformer) do not")
    height, width = model.image_size
    reference = next(model.parameters())
    example = torch.zeros(1, 4, height, width, dtype=reference.dtype, device=reference.device)
    example[:, 0] = torch.linspace(-1, 1, width, dtype=reference.dtype)  # a grey ramp: decisions vary
    metadata = {"kind": KIND, "name": label, "image_size": [height, width],
                "build_args": {k: v for k, v in args.items() if isinstance(v, (str, int, float, bool, type(None)))}}
    return export_onnx(model.backbone, path, example, opset=opset, model=model, output_name="ab", metadata=metadata)
