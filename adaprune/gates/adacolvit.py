"""AdaColViT (WACV 2024): grouped patch selection plus attention / FFN skip, per block."""

from __future__ import annotations

import functools
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adaprune.config import AdaColViTConfig, TokenLayout
from adaprune.flops import attention_flops, layer_norm_flops, mlp_flops
from adaprune.gates._registry import register_gate
from adaprune.gates.base import BlockGate, decide
from adaprune.gates.grouped_patch import GroupedPatchGate, grouped_attention, is_plain_attention
from adaprune.gates.layer_skip import LayerSkipGate, PolicyToken
from adaprune.ops import read_only_mask
from adaprune.policy import Policy
from adaprune.record import BlockDecision

__all__ = ["AdaColViT"]


@register_gate("adacolvit")
class AdaColViT(BlockGate):
    """AdaColViT's gates for one block.

    In ``train()`` decisions are Gumbel-sigmoid samples with straight-through hard values and
    the work is masked (everything computed, so gradients reach every decision layer); in
    ``eval()`` decisions are ``sigmoid > 0.5`` and the dropped work is not done.
    """

    config_class = AdaColViTConfig
    num_method_tokens = 1  # the policy token

    def __init__(self, block: nn.Module, config: AdaColViTConfig, layout: TokenLayout, index: int = 0,
                 depth: int = 1) -> None:
        super().__init__(block, config, layout, index, depth)
        dim = block.norm1.normalized_shape[0] if hasattr(block.norm1, "normalized_shape") else block.attn.qkv.in_features
        self.config = config
        self.patch = GroupedPatchGate(dim, config.patch_groups, config.init_keep_logit) if config.patch_groups > 1 else None
        self.layer = LayerSkipGate(dim, config.init_keep_logit) if config.layer_skip else None
        attn = block.attn
        self._dims = (dim, attn.num_heads * attn.head_dim, block.mlp.fc1.out_features)
        self._plain_attention = is_plain_attention(attn)

    @classmethod
    def check(cls, block: nn.Module, config: AdaColViTConfig) -> None:
        if config.patch_groups > 1:
            GroupedPatchGate.check(block, config.patch_groups)

    @classmethod
    def make_method_tokens(cls, embed_dim: int, config: AdaColViTConfig) -> Optional[nn.Module]:
        return PolicyToken(embed_dim)

    def forward(self, block: nn.Module, x: Tensor, policy: Policy,
                previous: Optional[BlockDecision] = None) -> tuple[Tensor, BlockDecision]:
        B = x.shape[0]
        temperature = self.config.temperature
        if self.layer is not None:
            run = decide(lambda: self.layer(x[:, 0]), B, 2, x, policy, "layer", self.training, temperature)
        else:
            run = x.new_ones(B, 2)
        x, mask_attn = self._sublayer(0, block, x, run[:, 0], policy)
        x, mask_mlp = self._sublayer(1, block, x, run[:, 1], policy)
        masks = None if self.patch is None else torch.stack([mask_attn, mask_mlp], dim=1)
        cost = functools.partial(self._gflops, x.shape[1], policy.mode == "learned")
        return x, BlockDecision(run, masks, cost)

    def _sublayer(self, which: int, block: nn.Module, x: Tensor, run: Tensor,
                  policy: Policy) -> tuple[Tensor, Optional[Tensor]]:
        """Runs the attention (0) or FFN (1) sub-layer of ``block`` where ``run`` says.

        Returns the new x and the (B, Np) patch-token keep mask (zeros where the sub-layer
        did not run in eval; None without token decisions).
        """
        norm, fn, scale, drop_path = ((block.norm1, block.attn, block.ls1, block.drop_path1) if which == 0
                                      else (block.norm2, block.mlp, block.ls2, block.drop_path2))
        B, N, _ = x.shape
        P = self.layout.num_prefix
        drawn = None
        if self.patch is not None and policy.mode != "learned":
            # controls draw for the whole batch first: train and eval use the same random numbers
            drawn = decide(None, B, N - P, x, policy, "patch", self.training, self.config.temperature)
        if self.training:  # masked: everything computed, dropped work multiplied by 0
            h = norm(x)
            keep = drawn if drawn is not None or self.patch is None else self._learned(which, h, policy)
            if keep is None:
                y = self._dense(which, fn, h)
            else:
                full = torch.cat([keep.new_ones(B, P), keep], dim=1)
                y = (self.patch.attention_masked(fn, h, full, self.layout.num_method_tokens) if which == 0
                     else self.patch.mlp_masked(fn, h, full))
            x = x + run[:, None, None] * drop_path(scale(y))
            return x, None if keep is None else keep * run[:, None]

        # gathered: only the samples that run, only the kept tokens at full width. The run
        # decisions are read on the host once (one small copy) instead of by tensor ops.
        ran = [r > 0.5 for r in run.tolist()]
        running = sum(ran)
        if running == 0:
            return x, None if self.patch is None else x.new_zeros(B, N - P)
        rows = None if running == B else torch.tensor([i for i, r in enumerate(ran) if r], device=x.device)
        h = norm(x if rows is None else x.index_select(0, rows))
        keep = drawn if rows is None or drawn is None else drawn.index_select(0, rows)
        if keep is None and self.patch is not None:
            keep = self._learned(which, h, policy)
        if keep is None:
            y = self._dense(which, fn, h)
        else:
            full = F.pad(keep > 0.5, (P, 0), value=True)  # prefix tokens are always kept
            if bool(full.all()):
                full = None  # every token kept: no gather
            y = (self.patch.attention_gathered(fn, h, full, block.mlp, self.layout.num_method_tokens) if which == 0
                 else self.patch.mlp_gathered(fn, h, full, block.attn))
        y = drop_path(scale(y))
        if rows is None:
            return x + y, keep
        return x.index_add(0, rows, y), None if keep is None else x.new_zeros(B, N - P).index_copy(0, rows, keep)

    def _dense(self, which: int, fn: nn.Module, h: Tensor) -> Tensor:
        """The block's own attention / FFN; the policy token reads but is not read.

        In eval a plain timm attention runs from its weights with the policy token sliced out
        of the keys (exactly ``attn`` on the other tokens, no mask); otherwise the module
        itself runs with a mask that hides the policy token."""
        if which == 1:
            return fn(h)
        r = self.layout.num_method_tokens
        if not self.training and self._plain_attention:
            return grouped_attention(fn, h, 1, r)
        return fn(h, attn_mask=read_only_mask(h.shape[1], r, h.device))

    def _learned(self, which: int, h: Tensor, policy: Policy) -> Tensor:
        """Token keep decisions (B, Np) of the decision layer of sub-layer ``which``."""
        P = self.layout.num_prefix
        logits = self.patch.attn_logits if which == 0 else self.patch.mlp_logits
        return decide(lambda: logits(h[:, P:]).squeeze(-1), h.shape[0], h.shape[1] - P, h, policy, "patch",
                      self.training, self.config.temperature)

    def _gflops(self, n: int, learned: bool, kept: Optional[Tensor], run: Tensor) -> Tensor:
        """(B,) GFLOPs of this block per sample: ``kept`` (B, 2) patch tokens at full width per
        sub-layer (None: all), ``run`` (B, 2) sub-layers run."""
        dim, attn_dim, hidden = self._dims
        P = self.layout.num_prefix
        groups = self.config.patch_groups
        full = run.new_full(run.shape, float(n)) if kept is None else P + kept
        gate = (n - P) * dim if (self.patch is not None and learned) else 0
        attn = (attention_flops(n, full[:, 0], dim, attn_dim, groups, self.layout.num_method_tokens)
                + layer_norm_flops(n, dim) + gate)
        mlp = mlp_flops(n, full[:, 1], dim, hidden, groups) + layer_norm_flops(n, dim) + gate
        total = run[:, 0] * attn + run[:, 1] * mlp
        if self.layer is not None and learned:
            total = total + 2 * dim
        return total / 1e9
