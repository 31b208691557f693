"""Frozen dataclasses describing what was wrapped and how."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

__all__ = ["AdaColViTConfig", "TokenLayout", "WrapInfo", "is_wrapped", "wrap_info"]


@dataclass(frozen=True)
class AdaColViTConfig:
    """Options of AdaColViT's gates (WACV 2024, section 3.2)."""

    patch_groups: int = 2         # G: channel groups; uninformative tokens get 1/G width. 1: off
    layer_skip: bool = True       # learn per sample whether to run each attention / FFN sub-layer
    temperature: float = 1.0      # Gumbel-sigmoid temperature of the training-time decisions
    init_keep_logit: float = 2.0  # decision bias at init: start near dense (sigmoid(2) = 0.88)

    def __post_init__(self) -> None:
        if not isinstance(self.patch_groups, int) or self.patch_groups < 1:
            raise ValueError(f"patch_groups must be a positive integer, got {self.patch_groups!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        if self.patch_groups == 1 and not self.layer_skip:
            raise ValueError("patch_groups=1 with layer_skip=False leaves nothing to decide: "
                             "use patch_groups >= 2, layer_skip=True, or both")


@dataclass(frozen=True)
class TokenLayout:
    """Where the tokens sit in the sequence a wrapped block sees.

    ``[method tokens (e.g. the policy token); class / register tokens; patches]``; the first
    ``num_prefix`` tokens are never dropped.
    """

    num_method_tokens: int  # tokens the method prepends (1 for AdaColViT's policy token)
    num_model_prefix: int   # the model's own class / register tokens
    num_patches: int        # patch tokens at the model's image size

    @property
    def num_prefix(self) -> int:
        return self.num_method_tokens + self.num_model_prefix


@dataclass(frozen=True)
class WrapInfo:
    """What ``wrap`` did to a model, kept on it so that ``unwrap`` can undo it."""

    method: str
    config: Any
    layout: TokenLayout
    vit_class: type
    block_class: type


def is_wrapped(vit: nn.Module) -> bool:
    """Whether ``vit`` is currently wrapped by ``wrap``."""
    return "_adaprune_info" in vit.__dict__


def wrap_info(vit: nn.Module) -> WrapInfo:
    """What ``wrap`` did to ``vit``; TypeError if it is not wrapped."""
    info = vit.__dict__.get("_adaprune_info")
    if info is None:
        raise TypeError(f"{type(vit).__name__} is not wrapped: call adaprune.wrap(model) first")
    return info
