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
from adaprune.gates.grouped_patch import (
    GroupedPatchGate,
    InferenceWeightCache,
    InferenceWeights,
    attention_inference,
    is_plain_attention,
    is_plain_mlp,
    mlp_inference,
)
from adaprune.gates.layer_skip import LayerSkipGate, PolicyToken
from adaprune.ops import prefixed_kept_index, random_keep, read_only_mask
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
        # eval runs plain blocks from split, transposed weight copies (grouped_patch.InferenceWeights)
        plain = self._plain_attention and is_plain_mlp(block.mlp)
        self._inference = InferenceWeightCache(config.patch_groups) if plain else None

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
        if self.training:
            x, mask_attn = self._masked(0, block, x, run[:, 0], policy)
            x, mask_mlp = self._masked(1, block, x, run[:, 1], policy)
            masks = None if self.patch is None else torch.stack([mask_attn, mask_mlp], dim=1)
        else:  # the run decisions are read on the host once per block (one small copy)
            ran = [[r > 0.5 for r in sample] for sample in run.tolist()]
            weights = None if self._inference is None else self._inference.get(block.attn, block.mlp)
            # the sub-layers write their decisions into one buffer: no stack, no cast per block
            masks = None if self.patch is None else torch.zeros(B, 2, x.shape[1] - self.layout.num_prefix,
                                                                dtype=torch.bool, device=x.device)
            x = self._gathered(0, block, x, [r[0] for r in ran], policy, weights, masks)
            x = self._gathered(1, block, x, [r[1] for r in ran], policy, weights, masks)
        cost = functools.partial(self._gflops, x.shape[1], policy.mode == "learned")
        return x, BlockDecision(run, masks, cost)

    @staticmethod
    def _parts(which: int, block: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        """(norm, attention or FFN, layer scale, drop path) of sub-layer ``which`` (0 or 1)."""
        if which == 0:
            return block.norm1, block.attn, block.ls1, block.drop_path1
        return block.norm2, block.mlp, block.ls2, block.drop_path2

    def _drawn(self, x: Tensor, policy: Policy, out: Optional[Tensor] = None) -> Optional[Tensor]:
        """(B, Np) patch decisions of a control policy, drawn for the whole batch first so that
        train and eval use the same random numbers; None for the learned policy. Float 0/1 in
        training; in eval bool, written into ``out`` (B, Np), zeros on entry."""
        if self.patch is None or policy.mode == "learned":
            return None
        B, N, _ = x.shape
        n = N - self.layout.num_prefix
        if self.training:
            return decide(None, B, n, x, policy, "patch", True, self.config.temperature)
        if policy.mode == "random":
            return random_keep(B, n, policy.patch_keep, x.device, torch.bool, out=out)
        return out.fill_(1) if policy.mode == "keep_all" else out

    def _masked(self, which: int, block: nn.Module, x: Tensor, run: Tensor,
                policy: Policy) -> tuple[Tensor, Optional[Tensor]]:
        """Training: sub-layer ``which`` for every sample and token, the dropped work multiplied
        by 0 (so gradients reach every decision). Returns the new x and the (B, Np) patch keep
        mask (None without token decisions)."""
        norm, fn, scale, drop_path = self._parts(which, block)
        B = x.shape[0]
        P = self.layout.num_prefix
        drawn = self._drawn(x, policy)
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

    def _gathered(self, which: int, block: nn.Module, x: Tensor, ran: list[bool], policy: Policy,
                  weights: Optional[InferenceWeights], masks: Optional[Tensor]) -> Tensor:
        """Eval: sub-layer ``which`` for the samples that run it (``ran``), groups 2..G for the
        kept tokens only; returns the new x. The patch decisions go into ``masks[:, which]``
        (bool, False for samples that skip the sub-layer).

        At batch 1 each tensor op costs microseconds of dispatch, as much as some of the
        arithmetic a gate saves, so decisions go straight from logits or draws to positions:
        no float masks, no checks on the device."""
        norm, fn, scale, _ = self._parts(which, block)  # drop path is the identity in eval
        B = x.shape[0]
        P = self.layout.num_prefix
        out = None if masks is None else masks[:, which]
        drawn = self._drawn(x, policy, out)
        running = sum(ran)
        if running == 0:
            if drawn is not None:
                out.fill_(0)
            return x
        rows = None
        if running < B:
            rows = torch.tensor([i for i, r in enumerate(ran) if r], device=x.device)
            if drawn is not None:  # drawn for every sample (same random numbers as training)
                drawn = drawn.index_select(0, rows)
                out.fill_(0).index_copy_(0, rows, drawn)
        h = norm(x if rows is None else x.index_select(0, rows))
        keep = drawn
        if keep is None and self.patch is not None:
            logits = (self.patch.attn_logits if which == 0 else self.patch.mlp_logits)(h[:, P:]).squeeze(-1)
            if rows is None:
                keep = torch.gt(logits, 0, out=out)  # sigmoid > 0.5
            else:
                keep = logits > 0
                out.index_copy_(0, rows, keep)
        if weights is None:  # a block the inference kernels do not cover: its own modules
            y = self._dense(which, fn, h)
        else:
            index, valid = ((None, None) if keep is None or policy.mode == "keep_all"
                            else prefixed_kept_index(keep, P))
            y = (attention_inference(h, weights, index, valid, self.layout.num_method_tokens) if which == 0
                 else mlp_inference(h, weights, index, valid))
        if not isinstance(scale, nn.Identity):
            y = scale(y)
        return x + y if rows is None else x.index_add(0, rows, y)

    def _dense(self, which: int, fn: nn.Module, h: Tensor) -> Tensor:
        """The block's own attention / FFN module; the policy token reads but is not read (a
        mask hides it from the keys)."""
        if which == 1:
            return fn(h)
        return fn(h, attn_mask=read_only_mask(h.shape[1], self.layout.num_method_tokens, h.device))

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
