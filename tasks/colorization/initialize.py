"""Start a colorizer from trained weights (``adacolor train --init``).

    >>> source = read_init_source("shipped:icolorit-t-cpu")       # or a checkpoint.pt path
    >>> report = initialize_from(model, source)                  # in place
    >>> report.summary()
    'loaded 152 tensors from shipped weights icolorit-t-cpu ...; resampled backbone.pos_embed 7x7 -> 14x14; new: ...'

Every adaptive-ViT method starts from a trained dense model: the backbone's weights are the same
tensors under the same names once wrapped (``adaprune.wrap`` only adds gate parameters), so a
dense checkpoint loads into an adaptive colorizer key by key, and only the gates start new (near
"keep everything": ``init_keep_logit``). What fits is loaded; absolute position embeddings of
another grid are resampled (timm's ``resample_abs_pos_embed``, bicubic); what the source lacks
(gates, a head of another kind) keeps its fresh initialisation. A source of another width,
depth, patch size or input channels does not fit at all: that is a one-line error naming each
difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
from timm.layers import resample_abs_pos_embed
from torch import Tensor

from adacolor.model import Colorizer, read_checkpoint, with_head
from adacolor.weights import SHIPPED_PREFIX

__all__ = ["InitSource", "InitReport", "read_init_source", "architecture", "fit_state", "initialize_from"]

POS_EMBED = "backbone.pos_embed"


@dataclass(frozen=True)
class InitSource:
    """Trained weights to start from: the colorizer's ``model_args``, its ``state`` (name ->
    tensor) and where they came from (``origin``, for the log)."""

    model_args: dict[str, Any]
    state: dict[str, Tensor]
    origin: str


@dataclass
class InitReport:
    """What ``initialize_from`` did, key by key (state_dict names of the target model)."""

    origin: str
    loaded: list[str] = field(default_factory=list)
    resampled: dict[str, str] = field(default_factory=dict)   # key -> "7x7 -> 14x14"
    new: list[str] = field(default_factory=list)              # target keys the source lacks
    dropped: list[str] = field(default_factory=list)          # source keys the target lacks

    def as_dict(self) -> dict[str, Any]:
        """Counts and key groups, for log.jsonl and config.yaml."""
        return {"origin": self.origin, "loaded": len(self.loaded), "resampled": dict(self.resampled),
                "new": _groups(self.new), "dropped": _groups(self.dropped)}

    def summary(self) -> str:
        """One line: loaded, resampled, newly initialised, dropped."""
        parts = [f"loaded {len(self.loaded)} tensors from {self.origin}"]
        parts += [f"resampled {key} {how}" for key, how in self.resampled.items()]
        for word, keys in (("new", self.new), ("dropped", self.dropped)):
            if keys:
                parts.append(f"{word}: " + ", ".join(f"{g} ({n})" for g, n in _groups(keys).items()))
        return "; ".join(parts)


def _group(key: str) -> str:
    """A readable group for a state_dict key: gates, head, or the module path without indices."""
    if "adaprune" in key:
        return "gates"
    if key.startswith(("head.", "stabilizer.")):
        return "head"
    return ".".join(part for part in key.split(".")[:-1] if not part.isdigit()) or key


def _groups(keys: list[str]) -> dict[str, int]:
    groups: dict[str, int] = {}
    for key in keys:
        groups[_group(key)] = groups.get(_group(key), 0) + 1
    return groups


def read_init_source(source: str) -> InitSource:
    """Trained weights by name: ``shipped:NAME`` (``adacolor list``) or a ``checkpoint.pt`` path.

    Raises:
        FileNotFoundError: no checkpoint at the path.
        ValueError: an unknown shipped name, or a file that is not a colorizer checkpoint.
    """
    if source.startswith(SHIPPED_PREFIX):
        from adacolor.weights import shipped_checkpoint

        state = shipped_checkpoint(source[len(SHIPPED_PREFIX):])
        return InitSource(with_head(state["model_args"], state["model"]), state["model"], state["origin"])
    state = read_checkpoint(source)
    if "model_args" not in state or "model" not in state:
        raise ValueError(f"--init {source} is not a colorizer checkpoint (it needs 'model_args' and 'model'); "
                         f"expected a checkpoint.pt written by `adacolor train`, or shipped:NAME")
    return InitSource(with_head(dict(state["model_args"]), state["model"]), state["model"],
                      f"checkpoint {Path(source)} (step {state.get('step', '?')})")


def architecture(state: dict[str, Tensor]) -> dict[str, Any]:
    """What must match for weights to transfer, read from a ViT colorizer's state dict:
    ``width``, ``depth``, ``patch size``, ``input channels`` and ``mlp width``."""
    proj = state.get("backbone.patch_embed.proj.weight")
    if proj is None:
        return {"network": "not a ViT colorizer (no backbone.patch_embed)"}
    blocks = {int(k.split(".")[2]) for k in state if k.startswith("backbone.blocks.")}
    fc1 = state.get("backbone.blocks.0.mlp.fc1.weight")
    return {"width": int(proj.shape[0]), "depth": len(blocks), "patch size": int(proj.shape[-1]),
            "input channels": int(proj.shape[1]), "mlp width": None if fc1 is None else int(fc1.shape[0])}


def _grid(tokens: int, what: str) -> tuple[int, int]:
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"{what} has {tokens} position embeddings, not a square grid")
    return side, side


def fit_state(model: Colorizer, source: InitSource) -> tuple[dict[str, Tensor], InitReport]:
    """The source's tensors fitted to ``model``: a complete state dict for it and the report.

    Raises:
        ValueError: one line naming every difference of width, depth, patch size, input channels
            or MLP width between the source and the model (these cannot be fitted).
    """
    target = model.state_dict()
    have, want = architecture(source.state), architecture(target)
    differ = [f"{name} {have.get(name)} vs {value}" for name, value in want.items() if have.get(name) != value]
    if differ:
        name = source.model_args.get("name", "?")
        raise ValueError(f"--init {source.origin} ({name}) does not fit {model.build_args.get('name', 'this model')}: "
                         + "; ".join(differ) + " (source vs model)")
    report = InitReport(source.origin)
    same_head = source.model_args.get("head", "conv") == model.head_kind
    state: dict[str, Tensor] = {}
    for key, value in target.items():
        theirs = source.state.get(key)
        if theirs is None or (_group(key) == "head" and not same_head):
            state[key] = value
            report.new.append(key)
        elif theirs.shape == value.shape:
            state[key] = theirs.to(value.dtype)
            report.loaded.append(key)
        elif key == POS_EMBED:
            prefix = 0 if model.backbone.no_embed_class else model.backbone.num_prefix_tokens
            old = _grid(theirs.shape[1] - prefix, "the source")
            new = model.grid_size
            state[key] = resample_abs_pos_embed(theirs.to(value.dtype), new_size=list(new), old_size=list(old),
                                                num_prefix_tokens=prefix, verbose=False)
            report.resampled[key] = f"{old[0]}x{old[1]} -> {new[0]}x{new[1]}"
            report.loaded.append(key)
        else:
            raise ValueError(f"--init {source.origin}: {key} has shape {tuple(theirs.shape)}, the model needs "
                             f"{tuple(value.shape)}")
    unused = set(source.state) - set(target)
    if not same_head:
        unused |= {k for k in source.state if _group(k) == "head"}
    report.dropped = sorted(unused)
    return state, report


def initialize_from(model: Colorizer, source: Union[str, InitSource]) -> InitReport:
    """Loads trained weights into ``model`` in place (``fit_state``) and says what it did.

    Args:
        model: a ViT colorizer from ``create_colorizer`` (dense or adaptive, any image size).
        source: ``shipped:NAME``, a checkpoint path, or an ``InitSource``.
    """
    if not isinstance(model, Colorizer):
        raise ValueError(f"--init needs a ViT colorizer; {type(model).__name__} (SwinIR, Uformer) starts from scratch")
    source = read_init_source(source) if isinstance(source, str) else source
    state, report = fit_state(model, source)
    with torch.no_grad():
        model.load_state_dict(state)
    return report
