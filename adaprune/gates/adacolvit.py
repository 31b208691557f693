"""AdaColViT (WACV 2024): grouped patch selection plus attention / FFN skip, per block."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from adaprune.config import AdaColViTConfig, TokenLayout
from adaprune.flops import attention_flops, layer_norm_flops, mlp_flops
from adaprune.gates._registry import register_gate
from adaprune.gates.base import BlockGate, decide
from adaprune.gates.grouped_patch import GroupedPatchGate
from adaprune.gates.layer_skip import LayerSkipGate, PolicyToken
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

    def __init__(self, block: nn.Module, config: AdaColViTConfig, layout: TokenLayout) -> None:
        super().__init__(block, config, layout)
        dim = block.norm1.normalized_shape[0] if hasattr(block.norm1, "normalized_shape") else block.attn.qkv.in_features
        self.config = config
        self.patch = GroupedPatchGate(dim, config.patch_groups, config.init_keep_logit) if config.patch_groups > 1 else None
        self.layer = LayerSkipGate(dim, config.init_keep_logit) if config.layer_skip else None
        attn = block.attn
        self._dims = (dim, attn.num_heads * attn.head_dim, block.mlp.fc1.out_features)

    @classmethod
    def check(cls, block: nn.Module, config: AdaColViTConfig) -> None:
        if config.patch_groups > 1:
            GroupedPatchGate.check(block, config.patch_groups)

    @classmethod
    def make_method_tokens(cls, embed_dim: int, config: AdaColViTConfig) -> Optional[nn.Module]:
        return PolicyToken(embed_dim)

    def forward(self, block: nn.Module, x: Tensor, policy: Policy) -> tuple[Tensor, BlockDecision]:
        B = x.shape[0]
        temperature = self.config.temperature
        if self.layer is not None:
            run = decide(lambda: self.layer(x[:, 0]), B, 2, x, policy, "layer", self.training, temperature)
        else:
            run = x.new_ones(B, 2)
        x, keep_a, mask_a = self._sublayer(0, block, x, run[:, 0], policy)
        x, keep_f, mask_f = self._sublayer(1, block, x, run[:, 1], policy)
        token_keep = torch.stack([keep_a, keep_f], dim=1)
        masks = None if self.patch is None else torch.stack([mask_a, mask_f], dim=1)
        return x, BlockDecision(token_keep, run, self._gflops(x.shape[1], token_keep, run, policy), masks)

    def _sublayer(self, which: int, block: nn.Module, x: Tensor, run: Tensor,
                  policy: Policy) -> tuple[Tensor, Tensor, Tensor]:
        """Runs the attention (0) or FFN (1) sub-layer of ``block`` where ``run`` says.

        Returns the new x, the (B,) fraction of patch tokens kept at full width and the
        (B, Np) token mask (zeros where the sub-layer did not run).
        """
        norm, fn, scale, drop_path = ((block.norm1, block.attn, block.ls1, block.drop_path1) if which == 0
                                      else (block.norm2, block.mlp, block.ls2, block.drop_path2))
        B, N, _ = x.shape
        P = self.layout.num_prefix
        gathered = not self.training
        drawn = None
        if self.patch is not None and policy.mode != "learned":
            # controls draw for the whole batch first: train and eval use the same random numbers
            drawn = decide(None, B, N - P, x, policy, "patch", self.training, self.config.temperature)
        rows = None
        xs = x
        if gathered:
            ran = run.bool()
            if not bool(ran.any()):
                return x, x.new_zeros(B), x.new_zeros(B, N - P)
            if not bool(ran.all()):
                rows = ran.nonzero().view(-1)
                xs = x[rows]
        h = norm(xs)
        if self.patch is None:
            y = fn(h)
            keep = h.new_ones(h.shape[0], N - P)
        else:
            if drawn is None:
                logits = self.patch.attn_logits if which == 0 else self.patch.mlp_logits
                keep = decide(lambda: logits(h[:, P:]).squeeze(-1), B, N - P, h, policy, "patch",
                              self.training, self.config.temperature)
            else:
                keep = drawn if rows is None else drawn[rows]
            full = torch.cat([keep.new_ones(keep.shape[0], P), keep], dim=1)
            if gathered:
                full = full.bool()
                y = self.patch.attention_gathered(fn, h, full) if which == 0 else self.patch.mlp_gathered(fn, h, full)
            else:
                y = self.patch.attention_masked(fn, h, full) if which == 0 else self.patch.mlp_masked(fn, h, full)
        y = drop_path(scale(y))
        if not gathered:
            return x + run[:, None, None].to(y.dtype) * y, keep.mean(dim=1) * run, keep * run[:, None]
        if rows is None:
            return x + y, keep.mean(dim=1), keep
        full_keep = x.new_zeros(B, N - P).index_copy(0, rows, keep)
        return x.index_add(0, rows, y), full_keep.mean(dim=1), full_keep

    def _gflops(self, n: int, token_keep: Tensor, run: Tensor, policy: Policy) -> Tensor:
        """(B,) GFLOPs of this block per sample under the decisions taken."""
        dim, attn_dim, hidden = self._dims
        P = self.layout.num_prefix
        groups = self.config.patch_groups
        learned = policy.mode == "learned"
        token_keep, run = token_keep.detach(), run.detach()
        kept = P + token_keep * (n - P)  # (B, 2) tokens at full width per sub-layer
        gate = (n - P) * dim if (self.patch is not None and learned) else 0
        attn = attention_flops(n, kept[:, 0], dim, attn_dim, groups) + layer_norm_flops(n, dim) + gate
        mlp = mlp_flops(n, kept[:, 1], dim, hidden, groups) + layer_norm_flops(n, dim) + gate
        total = run[:, 0] * attn + run[:, 1] * mlp
        if self.layer is not None and learned:
            total = total + 2 * dim
        return total / 1e9
