"""The contract between ``wrap`` and a method: a per-block gate module."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Literal, Optional

import torch
from torch import Tensor, nn

from adaprune.config import TokenLayout
from adaprune.ops import gumbel_sigmoid, hard_decision, random_keep
from adaprune.policy import Policy
from adaprune.record import BlockDecision

__all__ = ["BlockGate", "decide"]


class BlockGate(nn.Module, ABC):
    """Decision networks of one transformer block and the block's adaptive forward.

    ``wrap`` builds one gate per block (stored as ``block.adaprune_gate``) and, when the method
    has ``num_method_tokens > 0``, the module of ``make_method_tokens`` on the ViT (it prepends
    those tokens). A wrapped block's forward calls ``gate(block, x, policy)``: the gate reads
    the block's own submodules (``norm1``, ``attn``, ``ls1``, ``drop_path1`` ...) and decides.
    A subclass is registered with ``@register_gate(name)``.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type]
    num_method_tokens: ClassVar[int] = 0

    def __init__(self, block: nn.Module, config: Any, layout: TokenLayout, index: int = 0, depth: int = 1) -> None:
        """Args: the block it gates, the method's config, the token layout, and where the block
        sits: ``index`` among the model's ``depth`` blocks (methods that act at chosen depths,
        or must halt every token at the last block, read them)."""
        super().__init__()
        if not 0 <= index < depth:
            raise ValueError(f"block index {index} is out of range for depth {depth}")
        self.layout = layout
        self.index = index
        self.depth = depth

    @classmethod
    def check(cls, block: nn.Module, config: Any) -> None:
        """Raises TypeError / ValueError when this method cannot gate ``block``."""

    @classmethod
    def make_method_tokens(cls, embed_dim: int, config: Any) -> Optional[nn.Module]:
        """A module mapping (B, N, C) to (B, num_method_tokens + N, C), or None."""
        return None

    def prepare_inference(self, block: nn.Module, x: Tensor,
                          policy: Policy) -> Optional[Callable[[Tensor], tuple[Tensor, BlockDecision]]]:
        """A step that computes this block in eval, prepared before any block runs; or None to
        run ``forward``.

        ``wrap``'s loop calls this for every block ahead of an ``eval`` forward without
        gradients, with the tokens the first block gets (x: (B, N, C)), then runs the steps
        one after the other. A method whose block is one compiled call returns that call
        here: at batch 1 the Python work between the blocks' kernels, run cold, is otherwise
        a noticeable part of the latency. The step gets no ``previous`` decision, so methods
        whose decisions accumulate over depth keep the default."""
        return None

    def export_blocker(self, block: nn.Module) -> Optional[str]:
        """Why ``adaprune.export_onnx`` cannot export this block with its decisions inside the
        graph (one line), or None when it can. A method that exports returns, from
        ``prepare_inference`` while ``torch.compiler.is_exporting()``, a step whose decisions
        are graph control flow (``torch.cond``) and whose kept tokens are found in the graph;
        the default says that this method does not."""
        return (f"method {self.name!r} decides with Python control flow on tensor values, which an ONNX graph "
                f"cannot hold; exportable methods: adacolvit")

    @abstractmethod
    def forward(self, block: nn.Module, x: Tensor, policy: Policy,
                previous: Optional[BlockDecision] = None) -> tuple[Tensor, BlockDecision]:
        """One block. x: (B, N, C) -> (B, N, C) and the block's decisions.

        ``previous``: the decision of the block before (None for the first block); a method
        whose decisions accumulate over depth reads its running state from ``previous.state``
        and returns the updated state in its own ``BlockDecision``."""


def decide(logits: Optional[Callable[[], Tensor]], batch: int, n: int, like: Tensor, policy: Policy,
           kind: Literal["patch", "layer"], training: bool, temperature: float) -> Tensor:
    """Keep decisions (batch, n) under a policy; ``logits`` is only called for ``learned``.

    Training uses Gumbel-sigmoid with straight-through hard values; eval thresholds the
    logits at 0 (sigmoid > 0.5), deterministically. Returns 0/1 values of ``like``'s dtype.
    """
    if policy.mode == "learned":
        value = logits()
        return gumbel_sigmoid(value, temperature) if training else hard_decision(value)
    if policy.mode == "keep_all":
        return like.new_ones(batch, n)
    if policy.mode == "drop_all":
        return like.new_zeros(batch, n)
    if kind == "patch":
        return random_keep(batch, n, policy.patch_keep, like.device, like.dtype)
    return torch.bernoulli(like.new_full((batch, n), policy.layer_keep))
