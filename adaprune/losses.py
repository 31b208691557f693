"""Sparsity (budget) losses on the decisions of the last forward."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from adaprune.config import wrap_info
from adaprune.record import last_record

__all__ = ["sparsity_loss", "budget_loss", "spread_quantiles", "BUDGET_REDUCTIONS", "DEFAULT_SPREAD"]

BudgetReduction = Literal["sample", "batch", "spread"]
BUDGET_REDUCTIONS: tuple[str, ...] = ("sample", "batch", "spread")
DEFAULT_SPREAD = 0.2   # half-width of the "spread" budget's target keep ratios


def spread_quantiles(batch: int, beta: float, spread: float, like: Tensor) -> Tensor:
    """The ``batch`` mid-quantiles ``(i + 1/2) / batch`` of the uniform distribution on
    ``[beta - w, beta + w]``, ``w = min(spread, beta, 1 - beta)`` (clipped so that the target
    stays in [0, 1] and its mean stays ``beta``).

    Returns:
        (batch,) ascending targets, of ``like``'s dtype and device.
    """
    w = min(spread, beta, 1.0 - beta)
    u = (torch.arange(batch, dtype=like.dtype, device=like.device) + 0.5) / batch
    return beta - w + 2.0 * w * u


def budget_loss(patch_keep: Tensor, layer_keep: Tensor, beta_patch: float, beta_layer: float,
                reduction: BudgetReduction = "sample", spread: float = DEFAULT_SPREAD) -> Tensor:
    """AdaColViT's sparsity loss (eq. 13) from per-sample keep ratios.

    ``reduction="sample"`` holds every sample to the budget,
    ``mean_b[(patch_keep_b - beta_patch)^2 + (layer_keep_b - beta_layer)^2]``;
    ``reduction="batch"`` holds only the batch mean to it,
    ``(mean_b patch_keep_b - beta_patch)^2 + (mean_b layer_keep_b - beta_layer)^2``, so an easy
    image may spend less than the budget and a hard one more (AdaViT / A-ViT practice; the
    paper's eq. 13 does not say which of the two it means). ``reduction="spread"`` holds the
    batch's distribution of keep ratios to a uniform one of mean ``beta`` and half-width
    ``spread`` (``spread_quantiles``): the squared 1-D Wasserstein distance
    ``mean_b (sort(keep)_b - q_b)^2``, a distributional prior in the spirit of A-ViT's on
    halting depths. Its mean is the budget's, and it asks for compute to differ between images
    while leaving to the task loss which images get more.

    Args:
        patch_keep: (B,) fraction of tokens computed at full width, over the sub-layers run.
        layer_keep: (B,) fraction of sub-layers run.
        beta_patch: target fraction of tokens at full width, in [0, 1].
        beta_layer: target fraction of sub-layers run, in [0, 1].
        reduction: ``"sample"`` (each sample meets the budget), ``"batch"`` (their mean does) or
            ``"spread"`` (their distribution is uniform around it).
        spread: ``"spread"`` only: the target's half-width, in keep-ratio units (>= 0).

    Returns:
        Scalar loss.
    """
    for name, beta in (("beta_patch", beta_patch), ("beta_layer", beta_layer)):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {beta!r}")
    if reduction == "sample":
        return ((patch_keep - beta_patch) ** 2 + (layer_keep - beta_layer) ** 2).mean()
    if reduction == "batch":
        return (patch_keep.mean() - beta_patch) ** 2 + (layer_keep.mean() - beta_layer) ** 2
    if reduction == "spread":
        if not spread >= 0.0:
            raise ValueError(f"spread must be >= 0, got {spread!r}")
        batch = patch_keep.shape[0]
        return sum(((keep.sort().values - spread_quantiles(batch, beta, spread, keep)) ** 2).mean()
                   for keep, beta in ((patch_keep, beta_patch), (layer_keep, beta_layer)))
    raise ValueError(f"reduction must be one of {', '.join(BUDGET_REDUCTIONS)}, got {reduction!r}")


def sparsity_loss(vit: nn.Module, beta_patch: float = 0.5, beta_layer: float = 0.8,
                  reduction: BudgetReduction = "sample", spread: float = DEFAULT_SPREAD) -> Tensor:
    """Sparsity loss of the last forward of a wrapped ViT (paper eq. 13), on the keep ratios
    its record reports; call it after a training-mode forward so that gradients flow.

    A term whose gate is off (``patch_groups=1`` or ``layer_skip=False``) is constant 0.
    ``reduction`` and ``spread`` are ``budget_loss``'s: per sample (``"sample"``), on the batch
    mean (``"batch"``, which lets compute differ between images) or on the batch's distribution
    (``"spread"``, which asks it to).
    """
    record = last_record(vit)
    config = wrap_info(vit).config
    patch, layer = record.patch_keep, record.layer_keep
    if getattr(config, "patch_groups", 2) == 1:
        beta_patch = 1.0  # no token decisions: nothing to push
    if not getattr(config, "layer_skip", True):
        beta_layer = 1.0
    return budget_loss(patch, layer, beta_patch, beta_layer, reduction, spread)
