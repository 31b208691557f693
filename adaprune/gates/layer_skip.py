"""Attention / FFN skip (AdaColViT, eq. 11): per sample, from the policy token."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["LayerSkipGate", "PolicyToken"]


class LayerSkipGate(nn.Module):
    """Keep logits of a block's attention and FFN sub-layers, from the policy token.

    Args:
        dim: model width C.
        init_keep_logit: initial bias (positive: start by running every sub-layer).
    """

    def __init__(self, dim: int, init_keep_logit: float = 2.0) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2)
        nn.init.trunc_normal_(self.proj.weight, std=0.02)
        nn.init.constant_(self.proj.bias, init_keep_logit)

    def forward(self, policy_token: Tensor) -> Tensor:
        """policy_token: (B, C) -> logits (B, 2): [attention, FFN]."""
        return self.proj(policy_token)


class PolicyToken(nn.Module):
    """A learnable token, with its own position embedding, put at the front of the sequence.

    It attends to every other token but no token attends to it, itself included (a read-only
    token: a query, never a key or value), so it summarises the image for the layer-skip decisions without changing any other token's
    computation: a wrap whose gates keep everything computes what the original model did.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.token = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, 1, dim), std=0.02))
        self.pos_embed = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, 1, dim), std=0.02))

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, N, C) -> (B, 1 + N, C)."""
        token = (self.token + self.pos_embed).expand(x.shape[0], -1, -1).to(x.dtype)
        return torch.cat([token, x], dim=1)
