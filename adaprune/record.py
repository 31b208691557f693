"""What one forward decided: per-block decisions collected into one record per call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from adaprune.config import wrap_info

__all__ = ["BlockDecision", "Record", "last_record"]


@dataclass(frozen=True)
class BlockDecision:
    """The decisions of one block for one batch; returned by every gate's block forward.

    Derived figures (keep fractions, GFLOPs) are computed when asked for, not in the forward.

    Attributes:
        layer_keep: (B, 2) whether the attention and FFN sub-layers ran (0/1; in training the
            straight-through values carry the gradient).
        token_masks: (B, 2, Np) per-token keep masks of the two sub-layers (0 where a
            sub-layer did not run; float and differentiable in training, a method may give
            bool in eval), or None when the method makes no token decisions (every token at
            full width).
        gflops_fn: maps (token kept counts (B, 2), layer_keep (B, 2)) to (B,) GFLOPs of the
            block; the method's cost model.
        state: the method's running state for the next block's gate (e.g. DynamicViT's
            cumulative keep mask, A-ViT's accumulated halting scores); None for methods whose
            blocks decide independently.
    """

    layer_keep: Tensor
    token_masks: Optional[Tensor]
    gflops_fn: Callable[[Tensor, Tensor], Tensor]
    state: Any = None

    @property
    def token_keep(self) -> Tensor:
        """(B, 2) fraction of patch tokens kept at full width per sub-layer (1 without token
        decisions; a skipped sub-layer keeps none in eval)."""
        if self.token_masks is None:
            return torch.ones_like(self.layer_keep)
        return self.token_masks.to(self.layer_keep.dtype).mean(dim=-1)

    @property
    def gflops(self) -> Tensor:
        """(B,) GFLOPs this block spent on each sample."""
        kept = None if self.token_masks is None else self.token_masks.detach().to(self.layer_keep.dtype).sum(dim=-1)
        return self.gflops_fn(kept, self.layer_keep.detach())


@dataclass(frozen=True)
class Record:
    """Decisions of the last forward of a wrapped ViT.

    Attributes:
        blocks: one ``BlockDecision`` per block, in depth order.
        base_gflops: (B,) GFLOPs spent outside the blocks (patch embedding, final norm).
        grid_size: the patch grid (rows, cols), to lay token maps out as images.
    """

    blocks: tuple[BlockDecision, ...]
    base_gflops: Tensor
    grid_size: tuple[int, int]

    @property
    def layer_keep(self) -> Tensor:
        """(B,) fraction of the attention / FFN sub-layers that ran."""
        return torch.stack([b.layer_keep for b in self.blocks], dim=1).mean(dim=(1, 2))

    @property
    def patch_keep(self) -> Tensor:
        """(B,) fraction of tokens computed at full width, mean over the sub-layers that ran."""
        token = torch.stack([b.token_keep for b in self.blocks], dim=1)  # (B, L, 2)
        ran = torch.stack([b.layer_keep for b in self.blocks], dim=1)
        total = ran.sum(dim=(1, 2))
        return torch.where(total > 0, (token * ran).sum(dim=(1, 2)) / total.clamp_min(1e-12),
                           torch.zeros_like(total))

    @property
    def gflops(self) -> Tensor:
        """(B,) GFLOPs actually spent by each sample (one multiply-add counts as one FLOP)."""
        return self.base_gflops + torch.stack([b.gflops for b in self.blocks], dim=1).sum(dim=1)

    def token_map(self) -> Optional[Tensor]:
        """(B, rows, cols) fraction of all sub-layers in which each patch token ran at full
        width; None when the method makes no token decisions."""
        masks = [b.token_masks for b in self.blocks]
        if any(m is None for m in masks):
            return None
        stacked = torch.stack([m.to(self.base_gflops.dtype) for m in masks], dim=1)  # (B, L, 2, Np)
        return stacked.mean(dim=(1, 2)).unflatten(1, self.grid_size)


def last_record(vit: nn.Module) -> Record:
    """The record of the last forward of a wrapped ViT.

    Raises:
        TypeError: the model is not wrapped.
        RuntimeError: the wrapped model has not run a forward yet.
    """
    wrap_info(vit)  # raises TypeError when not wrapped
    record = vit.__dict__.get("_adaprune_record")
    if record is None:
        raise RuntimeError("this wrapped model has not run a forward yet: call it on an input first")
    return record
