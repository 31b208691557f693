"""How decisions are taken: learned (default), or fixed controls for ablations and benchmarks."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Literal, get_args

from torch import nn

from adaprune.config import wrap_info

__all__ = ["Policy", "PolicyMode", "policy", "set_policy", "get_policy"]

PolicyMode = Literal["learned", "keep_all", "drop_all", "random"]


@dataclass(frozen=True)
class Policy:
    """A decision policy.

    Attributes:
        mode: ``learned`` uses the decision networks; ``keep_all`` keeps every token at full
            width and runs every sub-layer; ``drop_all`` computes every token at 1/G width and
            skips every sub-layer the method may skip; ``random`` keeps ``round(patch_keep * N)``
            uniformly drawn patch tokens per sub-layer and runs each sub-layer with probability
            ``layer_keep`` (a control with no learned decisions).
        patch_keep: fraction of patch tokens kept, ``random`` only.
        layer_keep: probability that a sub-layer runs, ``random`` only.
    """

    mode: PolicyMode = "learned"
    patch_keep: float = 0.5
    layer_keep: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in get_args(PolicyMode):
            raise ValueError(f"unknown policy {self.mode!r}; accepted: {', '.join(get_args(PolicyMode))}")
        for name in ("patch_keep", "layer_keep"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")


LEARNED = Policy()


def get_policy(vit: nn.Module) -> Policy:
    """The policy a wrapped ViT decides with now."""
    return vit.__dict__.get("_adaprune_policy", LEARNED)


def set_policy(vit: nn.Module, mode: PolicyMode | Policy = "learned", **options: float) -> Policy:
    """Sets the policy of a wrapped ViT until changed; returns the previous one."""
    wrap_info(vit)
    previous = get_policy(vit)
    vit.__dict__["_adaprune_policy"] = mode if isinstance(mode, Policy) else Policy(mode, **options)
    return previous


@contextlib.contextmanager
def policy(vit: nn.Module, mode: PolicyMode = "learned", **options: float) -> Iterator[Policy]:
    """Decide with a given policy inside a ``with`` block.

    Example:
        >>> with adaprune.policy(vit, "random", patch_keep=0.5, layer_keep=0.75):
        ...     feats = vit.forward_features(x)
    """
    previous = set_policy(vit, mode, **options)
    try:
        yield get_policy(vit)
    finally:
        vit.__dict__["_adaprune_policy"] = previous
