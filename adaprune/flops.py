"""FLOPs: analytic per-sample counts from the decisions taken, and the fvcore cross-check.

The convention is fvcore's (and the papers'): one multiply-add is one FLOP; a LayerNorm with
affine parameters costs 5 per element; activations, softmax and additions are not counted.
Attention matmuls (QK^T and AV) are counted, which fvcore does only when given a handle for
``scaled_dot_product_attention`` (``fvcore_gflops`` gives it one).
"""

from __future__ import annotations

from math import prod
from typing import Any, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "attention_flops",
    "mlp_flops",
    "layer_norm_flops",
    "vit_gflops",
    "fvcore_gflops",
    "sdpa_flop_handle",
]


def attention_flops(n: Tensor | float, kept: Tensor | float, dim: int, attn_dim: int,
                    groups: int = 1, unread: int = 0) -> Tensor | float:
    """Multiply-adds of one (grouped) attention sub-layer for one sample.

    Group 1 (``attn_dim / G`` channels) runs for all ``n`` tokens; groups 2..G only for the
    ``kept`` tokens, which attend among themselves.

    Args:
        n: tokens in the sequence.
        kept: tokens computed at full width (n when G == 1).
        dim: model width C.
        attn_dim: heads * head_dim.
        groups: G.
        unread: leading tokens that are queries but no key or value (a read-only policy
            token), always among the kept ones.
    """
    first = attn_dim / groups
    rest = attn_dim - first
    qkv = dim * 3 * (n * first + kept * rest)
    scores_and_values = 2 * (n * (n - unread) * first + kept * (kept - unread) * rest)
    proj = dim * (n * first + kept * rest)
    return qkv + scores_and_values + proj


def mlp_flops(n: Tensor | float, kept: Tensor | float, dim: int, hidden: int,
              groups: int = 1, out_dim: int | None = None) -> Tensor | float:
    """Multiply-adds of one (grouped) FFN for one sample: ``hidden / G`` channels for all
    ``n`` tokens, the rest for the ``kept`` ones."""
    first = hidden / groups
    width = n * first + kept * (hidden - first)
    return width * (dim + (out_dim or dim))


def layer_norm_flops(n: Tensor | float, dim: int) -> Tensor | float:
    """fvcore's estimate for an affine LayerNorm over ``n`` tokens of ``dim`` channels."""
    return 5 * n * dim


def _patch_embed_flops(vit: nn.Module) -> float:
    proj = vit.patch_embed.proj
    grid = vit.patch_embed.grid_size
    if isinstance(proj, nn.Conv2d):
        return prod(grid) * proj.out_channels * proj.in_channels * prod(proj.kernel_size) / proj.groups
    return 0.0


def vit_gflops(vit: nn.Module) -> float:
    """Dense GFLOPs of one image through a timm ViT's ``forward_features`` at its image size.

    For a wrapped model this is the dense model it came from (every gate keeping everything,
    no method tokens): the reference for FLOPs ratios.
    """
    n = vit.patch_embed.num_patches + vit.num_prefix_tokens
    dim = vit.embed_dim
    total = _patch_embed_flops(vit)
    for block in vit.blocks:
        attn = block.attn
        total += attention_flops(n, n, dim, attn.num_heads * attn.head_dim)
        total += mlp_flops(n, n, dim, block.mlp.fc1.out_features, out_dim=block.mlp.fc2.out_features)
        total += 2 * layer_norm_flops(n, dim)
    if isinstance(vit.norm, nn.LayerNorm):
        total += layer_norm_flops(n, dim)
    return float(total) / 1e9


def sdpa_flop_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle for ``aten::scaled_dot_product_attention``: QK^T and AV multiply-adds."""
    from fvcore.nn.jit_handles import get_shape

    q_shape = get_shape(inputs[0])
    k_shape = get_shape(inputs[1])
    v_shape = get_shape(inputs[2])
    batch = prod(q_shape[:-2])
    return int(batch * q_shape[-2] * k_shape[-2] * (q_shape[-1] + v_shape[-1]))


class _Entry(nn.Module):
    """Calls one method of a module as its forward, so that fvcore traces that method."""

    def __init__(self, model: nn.Module, entry: str) -> None:
        super().__init__()
        self.model = model
        self.entry = entry

    def forward(self, *inputs: Tensor) -> Any:
        return getattr(self.model, self.entry)(*inputs)


def fvcore_gflops(model: nn.Module, inputs: Tensor | Sequence[Tensor], entry: str = "forward") -> float:
    """GFLOPs of ``model.<entry>(*inputs)`` per sample, as fvcore counts them (with the SDPA
    handle).

    The model is traced as it is (train or eval); in eval a wrapped model traces its gathered
    path, so the count reflects the work the decisions of that input left to do.

    Args:
        model: any module.
        inputs: its input tensor(s); the first one's batch size divides the count.
        entry: the method to count, e.g. ``"forward_features"`` for a timm ViT's backbone.
    """
    from fvcore.nn import FlopCountAnalysis

    if not callable(getattr(model, entry, None)):
        raise ValueError(f"{type(model).__name__} has no method {entry!r} to count")
    if entry != "forward":
        model = _Entry(model, entry)
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    with torch.no_grad():
        analysis = FlopCountAnalysis(model, inputs)
        analysis.set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_handle)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        total = analysis.total()
    return total / inputs[0].shape[0] / 1e9
