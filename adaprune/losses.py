"""Sparsity (budget) losses on the decisions of the last forward."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from adaprune.record import last_record

__all__ = ["sparsity_loss", "budget_loss"]


def budget_loss(token_keep: Tensor, layer_keep: Tensor, beta_patch: float, beta_layer: float) -> Tensor:
    """AdaColViT's sparsity loss (eq. 13) from the decisions' keep values.

    ``(mean token keep - beta_patch)^2 + (mean layer keep - beta_layer)^2``, the means taken
    over a sample's sub-layers, then averaged over the batch.

    Args:
        token_keep: (B, S) fraction of patch tokens kept at full width per gated sub-layer.
        layer_keep: (B, S) keep value of each sub-layer.
        beta_patch, beta_layer: target keep ratios in [0, 1].
    """
    for name, beta in (("beta_patch", beta_patch), ("beta_layer", beta_layer)):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {beta!r}")
    patch = (token_keep.mean(dim=1) - beta_patch) ** 2
    layer = (layer_keep.mean(dim=1) - beta_layer) ** 2
    return (patch + layer).mean()


def sparsity_loss(vit: nn.Module, beta_patch: float = 0.5, beta_layer: float = 0.8) -> Tensor:
    """Sparsity loss of the last forward of a wrapped ViT (paper eq. 13).

    A term whose gate is off (``patch_groups=1`` or ``layer_skip=False``) is constant and adds
    no gradient. Token keep ratios count every sub-layer, run or skipped, so the two budgets
    are independent; call it after a training-mode forward.
    """
    record = last_record(vit)
    token = torch.cat([b.token_keep for b in record.blocks], dim=1)
    layer = torch.cat([b.layer_keep for b in record.blocks], dim=1)
    info = vit.__dict__["_adaprune_info"]
    if getattr(info.config, "patch_groups", 2) == 1:
        beta_patch = 1.0  # no token decisions: nothing to push
    if not getattr(info.config, "layer_skip", True):
        beta_layer = 1.0
    return budget_loss(token, layer, beta_patch, beta_layer)
