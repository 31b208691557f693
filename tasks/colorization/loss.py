"""Training loss: Huber on normalised ab, plus AdaColViT's sparsity loss for wrapped models.

The Huber term follows iColoriT's code (``losses.HuberLoss``): the smooth-L1 form
``0.5 x^2 / delta`` for ``|x| < delta``, ``|x| - 0.5 delta`` beyond, with ``delta = 0.01`` on
ab / 110, summed over the two ab channels and averaged over pixels and samples.
"""

from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor

import adaprune
from adacolor.model import Colorizer

__all__ = ["huber_loss", "colorization_loss"]


def huber_loss(pred_ab: Tensor, target_ab: Tensor, delta: float = 0.01) -> Tensor:
    """Smooth-L1 (Huber / delta) between normalised ab maps.

    Args:
        pred_ab: (B, 2, H, W) in [-1, 1] (ab / 110).
        target_ab: (B, 2, H, W) in [-1, 1] (ab / 110).
        delta: where the quadratic part ends (iColoriT: 0.01, about 1.1 ab units).

    Returns:
        Scalar: summed over channels, mean over batch and pixels.
    """
    if pred_ab.shape != target_ab.shape or pred_ab.ndim != 4:
        raise ValueError(f"pred_ab and target_ab must both be (B, C, H, W) of one shape, got "
                         f"{tuple(pred_ab.shape)} and {tuple(target_ab.shape)}")
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta!r}")
    per_element = F.smooth_l1_loss(pred_ab, target_ab, reduction="none", beta=delta)
    return per_element.sum(dim=1).mean()


def colorization_loss(
        model: Colorizer,
        pred_ab: Tensor,
        target_ab: Tensor,
        delta: float = 0.01,
        sparsity_weight: float = 1.0,
        beta_patch: Optional[float] = None,
        beta_layer: Optional[float] = None,
        budget: str = "sample",
        budget_spread: float = adaprune.DEFAULT_SPREAD,
) -> dict[str, Tensor]:
    """The named loss terms of one forward and their total.

    Call right after ``pred_ab = model(x)``: the sparsity term reads the decisions of that
    forward (adaprune's record).

    Args:
        model: the colorizer that produced ``pred_ab`` (not a DDP wrapper: pass ``.module``).
        pred_ab: (B, 2, H, W) normalised ab.
        target_ab: (B, 2, H, W) normalised ab.
        delta: Huber delta.
        sparsity_weight: weight of the sparsity term (paper: summed with weight 1).
        beta_patch: target keep ratios; None takes the model spec's (0.5, 0.8).
        beta_layer: target keep ratios; None takes the model spec's (0.5, 0.8).
        budget: AdaColViT's budget per ``"sample"``, on the ``"batch"`` mean or on the batch's
            ``"spread"`` (``adaprune.budget_loss``).
        budget_spread: the ``"spread"`` budget's half-width.

    Returns:
        ``{"huber": ..., "loss": total}`` and, for a wrapped backbone, ``"sparsity"``: AdaColViT's
        sparsity loss, or another method's own loss (``ColorizerSpec.method_loss``).
    """
    terms = {"huber": huber_loss(pred_ab, target_ab, delta)}
    total = terms["huber"]
    if model.adaptive and model.spec is not None and model.spec.method != "adacolvit":
        if model.spec.method_loss is not None:  # the baseline's own budget loss
            terms["sparsity"] = model.spec.method_loss(model.backbone)
            total = total + sparsity_weight * terms["sparsity"]
    elif model.adaptive:
        spec = model.spec
        beta_patch = beta_patch if beta_patch is not None else (spec.beta_patch if spec else 0.5)
        beta_layer = beta_layer if beta_layer is not None else (spec.beta_layer if spec else 0.8)
        terms["sparsity"] = adaprune.sparsity_loss(model.backbone, beta_patch, beta_layer, budget,
                                                   budget_spread)
        total = total + sparsity_weight * terms["sparsity"]
    terms["loss"] = total
    return terms
