"""wrap / unwrap: make a timm VisionTransformer input-adaptive in place, by class swap.

The model's class becomes a subclass of its own (``AdaptiveVisionTransformer`` for a
``VisionTransformer``) and so does each block's; the originals' submodules and parameters stay
where they are, and the method's modules are added beside them (``adaprune_tokens`` on the
model, ``adaprune_gate`` on each block). Decisions travel with the forward: each block returns
its ``BlockDecision`` and the model's loop collects them into one ``Record`` per call.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import fields
from typing import Any, List, Optional, Tuple, Union

import torch
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint
from timm.models.vision_transformer import Block, VisionTransformer
from torch import Tensor, nn

from adaprune.config import TokenLayout, WrapInfo, is_wrapped, wrap_info
from adaprune.flops import layer_norm_flops
from adaprune.gates._registry import get_gate
from adaprune.policy import LEARNED, Policy, get_policy
from adaprune.record import BlockDecision, Record

__all__ = ["wrap", "unwrap"]


class AdaptiveBlockMixin:
    """Forward of a wrapped block: its gate decides and runs the block's own submodules."""

    adaprune_gate: nn.Module

    def forward_gated(self, x: Tensor, policy: Policy = LEARNED,
                      previous: Optional[BlockDecision] = None) -> tuple[Tensor, BlockDecision]:
        """x: (B, N, C) with the method's tokens in front -> (B, N, C) and the decisions.

        ``previous`` is the decision of the block before (None for the first): methods whose
        decisions accumulate over depth (DynamicViT's kept set, A-ViT's halting) read their
        running state from its ``state``; nothing shared between blocks is mutated."""
        return self.adaprune_gate(self, x, policy, previous)

    def forward(self, x: Tensor, attn_mask: Optional[Tensor] = None, is_causal: bool = False) -> Tensor:
        """A block called on its own decides with the learned policy; decisions are dropped."""
        if attn_mask is not None or is_causal:
            raise ValueError("a wrapped block takes no attn_mask / is_causal: its gates decide the attention")
        return self.forward_gated(x)[0]


class AdaptiveViTMixin:
    """forward_features / forward_intermediates of a wrapped ViT; everything else is timm's."""

    def _adaptive_forward(
            self,
            x: Tensor,
            take_indices: Tuple[int, ...] = (),
            stop_index: Optional[int] = None,
            norm: bool = False,
    ) -> tuple[Tensor, List[Tensor]]:
        """Runs the blocks with their gates, stores the record; returns the final (normed)
        tokens and the intermediates asked for, both without the method's tokens."""
        info = wrap_info(self)
        in_chans = self.patch_embed.proj.in_channels if hasattr(self.patch_embed, "proj") else None
        if x.ndim != 4 or (in_chans is not None and x.shape[1] != in_chans):
            raise ValueError(f"expected images (B, {in_chans or 'C'}, H, W), got a tensor of shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        x = self._embed_tokens(x)
        skip = info.layout.num_method_tokens
        policy = get_policy(self)
        blocks = self.blocks if stop_index is None else self.blocks[:stop_index + 1]
        decisions, intermediates = [], []
        decision: Optional[BlockDecision] = None
        steps = [None] * len(blocks)
        if not self.training and not torch.is_grad_enabled():  # all Python work first, then the kernels
            steps = [block.adaprune_gate.prepare_inference(block, x, policy) for block in blocks]
        for i, block in enumerate(blocks):
            if steps[i] is not None:
                x, decision = steps[i](x)
            elif self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
                x, decision = checkpoint(block.forward_gated, x, policy, decision)
            else:
                x, decision = block.forward_gated(x, policy, decision)
            decisions.append(decision)
            if i in take_indices:
                intermediates.append((self.norm(x) if norm else x)[:, skip:])
        x = self.norm(x)
        self.__dict__["_adaprune_record"] = Record(
            blocks=tuple(decisions),
            base_gflops=x.new_full((x.shape[0],), self._base_flops(x.shape[1], (height, width)) / 1e9),
            grid_size=self._grid((height, width)),
        )
        return x[:, skip:], intermediates

    def _embed_tokens(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> the first block's tokens (B, N, C), the method's in front."""
        x = self.norm_pre(self.patch_drop(self._pos_embed(self.patch_embed(x))))
        return x if self.adaprune_tokens is None else self.adaprune_tokens(x)

    def _grid(self, size: tuple[int, int]) -> tuple[int, int]:
        if hasattr(self.patch_embed, "dynamic_feat_size"):
            return tuple(self.patch_embed.dynamic_feat_size(size))
        return tuple(self.patch_embed.grid_size)

    def _base_flops(self, n: int, size: tuple[int, int]) -> float:
        """Multiply-adds outside the blocks for one sample: patch embedding and final norm."""
        proj = self.patch_embed.proj
        total = 0.0
        if isinstance(proj, nn.Conv2d):
            grid = self._grid(size)
            total += grid[0] * grid[1] * proj.out_channels * proj.in_channels * proj.kernel_size[0] * proj.kernel_size[1]
        if isinstance(self.norm, nn.LayerNorm):
            total += layer_norm_flops(n, self.embed_dim)
        return total

    def forward_features(self, x: Tensor, attn_mask: Optional[Tensor] = None, is_causal: bool = False) -> Tensor:
        """x: (B, in_chans, H, W) -> (B, prefix + patches, C), as the unwrapped model."""
        if attn_mask is not None or is_causal:
            raise ValueError("a wrapped ViT takes no attn_mask / is_causal: its gates decide the attention")
        return self._adaptive_forward(x)[0]

    def forward_intermediates(
            self,
            x: Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            return_prefix_tokens: bool = False,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
            output_dict: bool = False,
            attn_mask: Optional[Tensor] = None,
            is_causal: bool = False,
    ) -> Union[List[Tensor], Tuple[Tensor, List[Tensor]], dict[str, Any]]:
        """timm's ``forward_intermediates`` with the gates deciding; same arguments and outputs."""
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        if attn_mask is not None or is_causal:
            raise ValueError("a wrapped ViT takes no attn_mask / is_causal: its gates decide the attention")
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        B, _, height, width = x.shape
        final, intermediates = self._adaptive_forward(
            x, tuple(take_indices), max_index if stop_early else None, norm)
        n_prefix = self.num_prefix_tokens
        prefix = [y[:, :n_prefix] for y in intermediates] if n_prefix else None
        intermediates = [y[:, n_prefix:] for y in intermediates]
        if output_fmt == "NCHW":
            rows, cols = self._grid((height, width))
            intermediates = [y.reshape(B, rows, cols, -1).permute(0, 3, 1, 2).contiguous() for y in intermediates]
        if output_dict:
            result: dict[str, Any] = {"image_intermediates": intermediates}
            if prefix is not None and return_prefix_tokens:
                result["image_intermediates_prefix"] = prefix
            if not intermediates_only:
                result["image_features"] = final
            return result
        if return_prefix_tokens and prefix is not None:
            intermediates = list(zip(intermediates, prefix))
        return intermediates if intermediates_only else (final, intermediates)


@functools.lru_cache(maxsize=None)
def _adaptive_class(cls: type, mixin: type) -> type:
    """The adaptive subclass of ``cls``; made once, and importable by name so it pickles."""
    name = f"Adaptive{cls.__name__}"
    sub = type(name, (mixin, cls), {"__module__": __name__, "__qualname__": name})
    setattr(sys.modules[__name__], name, sub)
    return sub


def _check_supported(vit: nn.Module) -> None:
    if is_wrapped(vit):
        raise ValueError("this model is already wrapped; call adaprune.unwrap(model) first to re-wrap it")
    if not isinstance(vit, VisionTransformer):
        raise TypeError(f"adaprune.wrap supports timm VisionTransformer models (vit_*, deit_*, deit3_*, "
                        f"vit_*_reg*, ...), got {type(vit).__name__}")
    for i, block in enumerate(vit.blocks):
        if type(block) is not Block:
            raise TypeError(f"adaprune.wrap supports timm's pre-norm Block; block {i} is "
                            f"{type(block).__name__} (ResPostBlock, parallel blocks ... are not supported)")


def wrap(vit: nn.Module, method: str = "adacolvit", **options: Any) -> nn.Module:
    """Makes a timm ViT input-adaptive, in place.

    Args:
        vit: a ``timm.models.vision_transformer.VisionTransformer`` (any depth, width, patch and
            image size; with or without class token, register tokens, LayerScale, qk_norm).
        method: a registered method (``adaprune.list_gates()``); default AdaColViT's gates.
        **options: the method's options, e.g. for ``adacolvit``: ``patch_groups`` (2),
            ``layer_skip`` (True), ``temperature`` (1.0), ``init_keep_logit`` (2.0).

    Returns:
        ``vit`` itself, now adaptive: ``forward_features`` keeps its output shape and
        ``adaprune.last_record(vit)`` says what the last forward decided.

    Raises:
        TypeError: unsupported model, block or sub-module, or an unknown option.
        ValueError: an unknown method, or options out of range (``patch_groups`` that does
            not divide the head or FFN widths).
    """
    _check_supported(vit)
    gate_class = get_gate(method)
    known = {f.name for f in fields(gate_class.config_class)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)} for method {method!r}; "
                        f"accepted: {', '.join(sorted(known))}")
    config = gate_class.config_class(**options)
    for block in vit.blocks:
        gate_class.check(block, config)

    layout = TokenLayout(gate_class.num_method_tokens, vit.num_prefix_tokens, vit.patch_embed.num_patches)
    reference = next(vit.parameters())
    to = dict(device=reference.device, dtype=reference.dtype)
    block_class = type(vit.blocks[0])
    depth = len(vit.blocks)
    for index, block in enumerate(vit.blocks):
        gate = gate_class(block, config, layout, index=index, depth=depth)
        block.adaprune_gate = gate.to(**to).train(vit.training)
        block.__class__ = _adaptive_class(block_class, AdaptiveBlockMixin)
    tokens = gate_class.make_method_tokens(vit.embed_dim, config) if layout.num_method_tokens else None
    vit.adaprune_tokens = None if tokens is None else tokens.to(**to).train(vit.training)
    vit.__dict__["_adaprune_info"] = WrapInfo(method, config, layout, type(vit), block_class)
    vit.__class__ = _adaptive_class(type(vit), AdaptiveViTMixin)
    return vit


def unwrap(vit: nn.Module) -> nn.Module:
    """Undoes ``wrap``: original classes, outputs and state_dict keys. Returns ``vit``."""
    info = wrap_info(vit)
    for block in vit.blocks:
        del block.adaprune_gate
        block.__class__ = info.block_class
    del vit.adaprune_tokens
    for key in ("_adaprune_info", "_adaprune_policy", "_adaprune_record"):
        vit.__dict__.pop(key, None)
    vit.__class__ = info.vit_class
    return vit
