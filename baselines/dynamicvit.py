"""DynamicViT (Rao et al., NeurIPS 2021): hierarchical token sparsification, as an adaprune gate.

Prediction modules before a few blocks (``prune_layers``) score the patch tokens still kept;
stage s keeps ``round(keep_rate**s * Np)`` of them. Training multiplies hard Gumbel-softmax
decisions into a running keep mask (carried block to block in ``BlockDecision.state``) and
masks attention so that a dropped token is no key or value; inference keeps the top-k scores,
gathers those tokens, runs the remaining blocks on them alone and scatters them back. A dropped
token keeps its last representation at its position (dense output for pixel prediction).

    >>> import adaprune_baselines.dynamicvit  # registers the method
    >>> adaprune.wrap(vit, method="dynamicvit", keep_rate=0.7)
    >>> loss = task_loss + adaprune_baselines.dynamicvit.dynamicvit_loss(vit)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from timm.layers import Attention
from torch import Tensor, nn

from adaprune import BlockDecision, BlockGate, Policy, TokenLayout, last_record, register_gate, wrap_info
from adaprune.flops import attention_flops, layer_norm_flops, mlp_flops
from adaprune.gates.token_removal import block_forward, gathered_block
from adaprune.ops import gather_tokens, masked_softmax_attention

__all__ = [
    "DynamicViT",
    "DynamicViTConfig",
    "KeepState",
    "PredictionModule",
    "default_prune_layers",
    "dynamicvit_loss",
    "keep_count",
    "keep_ratio_loss",
    "prediction_flops",
]


@dataclass(frozen=True)
class DynamicViTConfig:
    """Options of DynamicViT's gates (paper section 3)."""

    keep_rate: float = 0.7                           # rho: stage s keeps round(rho**s * Np) patch tokens
    prune_layers: Optional[tuple[int, ...]] = None   # blocks with a prediction module before them;
                                                     # None: depth * (1/4, 2/4, 3/4), (3, 6, 9) at depth 12
    temperature: float = 1.0                         # Gumbel-softmax temperature of training decisions

    def __post_init__(self) -> None:
        if isinstance(self.keep_rate, bool) or not isinstance(self.keep_rate, (int, float)) \
                or not 0.0 < self.keep_rate <= 1.0:
            raise ValueError(f"keep_rate must be in (0, 1], got {self.keep_rate!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        if self.prune_layers is not None:
            layers = self.prune_layers
            if isinstance(layers, int) or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers):
                raise ValueError(f"prune_layers must be a sequence of block indices, got {layers!r}")
            layers = tuple(layers)
            if not layers or min(layers) < 0 or any(b <= a for a, b in zip(layers, layers[1:])):
                raise ValueError(f"prune_layers must be non-empty, >= 0 and strictly increasing, got {layers!r}")
            object.__setattr__(self, "prune_layers", layers)


# -- pure maths ---------------------------------------------------------------------------------


def default_prune_layers(depth: int) -> tuple[int, ...]:
    """The paper's stage placement for any depth: blocks ``depth * s // 4`` for s = 1, 2, 3
    ((3, 6, 9) at depth 12), duplicates removed (a depth below 4 gets fewer stages)."""
    return tuple(sorted({depth * s // 4 for s in (1, 2, 3)}))


def keep_count(num_patches: int, keep_rate: float, stage: int) -> int:
    """Patch tokens kept after stage ``stage`` (1-based): ``round(keep_rate**stage * Np)``,
    at least one (a stage never empties the sequence of a model without class token)."""
    return min(num_patches, max(1, int(round(keep_rate ** stage * num_patches))))


def prediction_flops(tokens: Tensor | float, dim: int) -> Tensor | float:
    """Multiply-adds of one prediction module over ``tokens`` tokens: LayerNorm, the C -> C
    feature layer and the C -> C/2 -> C/4 -> 2 score MLP (the global mean is not counted, as
    fvcore counts no reductions)."""
    half, quarter = max(1, dim // 2), max(1, dim // 4)
    per_token = 5 * dim + dim * dim + dim * half + half * quarter + quarter * 2
    return tokens * per_token


def keep_ratio_loss(masks: Sequence[Tensor], targets: Sequence[float]) -> Tensor:
    """DynamicViT's ratio loss (paper eq. 11): ``1/S sum_s mean_b (mean_j D^s_bj - rho^s)^2``.

    Args:
        masks: S running keep masks (B, Np), one per stage, differentiable in training.
        targets: S target kept fractions (``keep_rate**s``).
    """
    if len(masks) != len(targets) or not masks:
        raise ValueError(f"need one target per stage mask, got {len(masks)} masks and {len(targets)} targets")
    terms = [(m.mean(dim=1) - t).square().mean() for m, t in zip(masks, targets)]
    return torch.stack(terms).mean()


def _top_k_mask(scores: Tensor, k: int, allowed: Optional[Tensor]) -> Tensor:
    """(B, N) 0/1 mask of the ``k`` largest ``scores`` per row among the ``allowed`` ones."""
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    mask = torch.zeros_like(scores)
    if k > 0:
        mask.scatter_(1, scores.topk(k, dim=1).indices, 1.0)
    return mask


# -- modules ------------------------------------------------------------------------------------


class PredictionModule(nn.Module):
    """Keep / drop log-probabilities of tokens (paper section 3.2, eqs. 4-5).

    A LayerNorm and a C -> C layer give per-token features; their first C/2 channels are the
    local feature, the rest averaged over the kept tokens is the global feature; both
    concatenated go through a C -> C/2 -> C/4 -> 2 MLP and a log-softmax.

    Args:
        dim: model width C.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        half, quarter = max(1, dim // 2), max(1, dim // 4)
        self.split = dim // 2
        self.norm = nn.LayerNorm(dim)
        self.features = nn.Linear(dim, dim)
        self.fc1 = nn.Linear(dim, half)
        self.fc2 = nn.Linear(half, quarter)
        self.fc3 = nn.Linear(quarter, 2)
        for layer in (self.features, self.fc1, self.fc2, self.fc3):  # the paper's init
            nn.init.trunc_normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, keep: Optional[Tensor] = None) -> Tensor:
        """x: (B, N, C) tokens, keep: (B, N) running mask (None: all kept) -> (B, N, 2)
        log-probabilities of [keep, drop]."""
        z = F.gelu(self.features(self.norm(x)))
        local, pooled = z[..., :self.split], z[..., self.split:]
        if keep is None:
            glob = pooled.mean(dim=1, keepdim=True)
        else:
            w = keep.to(z.dtype)[..., None]
            glob = (pooled * w).sum(dim=1, keepdim=True) / w.sum(dim=1, keepdim=True).clamp_min(1e-6)
        z = torch.cat([local, glob.expand(-1, x.shape[1], -1)], dim=-1)
        z = F.gelu(self.fc2(F.gelu(self.fc1(z))))
        return F.log_softmax(self.fc3(z), dim=-1)


@dataclass(frozen=True)
class KeepState:
    """DynamicViT's running state, passed to the next block in ``BlockDecision.state``.

    Attributes:
        mask: (B, Np) running keep mask of the patch tokens (straight-through values in
            training), or None while every token is kept.
        index: (B, K) ascending positions of the kept patch tokens among the patches (eval
            only; None in training or while every token is kept). Every sample keeps the same K.
        rows: (B, P + K) positions in the sequence of the tokens computed: the P prefix tokens
            and the kept patches (eval only, with ``index``).
    """

    mask: Optional[Tensor] = None
    index: Optional[Tensor] = None
    rows: Optional[Tensor] = None


# -- the training path: every token computed, dropped ones masked ------------------------------


def _masked_attention(attn: Attention, h: Tensor, keep: Tensor) -> Tensor:
    """timm Attention in which tokens with ``keep`` 0 are no key or value, differentiably in
    ``keep``. h: (B, N, C), keep: (B, N) -> (B, N, C)."""
    B, N, _ = h.shape
    qkv = attn.qkv(h).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    out = masked_softmax_attention(q, k, v, keep, attn.attn_drop.p, attn.training)
    out = attn.norm(out.transpose(1, 2).reshape(B, N, -1))
    gate = getattr(attn, "gate", None)
    if gate is not None:
        out = out * gate(h).sigmoid()
    return attn.proj_drop(attn.proj(out))


def _masked_block(block: nn.Module, x: Tensor, keep: Tensor) -> Tensor:
    """Training path: every token computed, a dropped one (``keep`` 0) is no key or value and
    its update is multiplied out, so it keeps its representation. keep: (B, N)."""
    w = keep.to(x.dtype)[..., None]
    x = x + w * block.drop_path1(block.ls1(_masked_attention(block.attn, block.norm1(x), keep)))
    return x + w * block.drop_path2(block.ls2(block.mlp(block.norm2(x))))


# -- the gate -----------------------------------------------------------------------------------


@register_gate("dynamicvit")
class DynamicViT(BlockGate):
    """DynamicViT's gate of one block; blocks in ``prune_layers`` own a prediction module.

    Policies: ``learned`` uses the prediction modules (Gumbel-softmax in ``train()``, top-k in
    ``eval()``); ``random`` keeps ``round(keep_rate**s * Np)`` uniformly drawn tokens among the
    still-kept ones at each stage (the same schedule; ``patch_keep`` is ignored) in train and
    eval alike; ``keep_all`` prunes nothing (the unwrapped model); ``drop_all`` drops every
    patch token at the first stage, so later blocks compute only the class / register tokens
    (nothing without them).
    """

    config_class = DynamicViTConfig

    def __init__(self, block: nn.Module, config: DynamicViTConfig, layout: TokenLayout, index: int = 0,
                 depth: int = 1) -> None:
        super().__init__(block, config, layout, index, depth)
        layers = config.prune_layers if config.prune_layers is not None else default_prune_layers(depth)
        if layers[-1] >= depth:
            raise ValueError(f"prune_layers {layers} must be block indices below the depth {depth}")
        self.config = config
        self.stage: Optional[int] = layers.index(index) + 1 if index in layers else None
        dim = block.attn.qkv.in_features
        self.predictor = PredictionModule(dim) if self.stage is not None else None
        attn = block.attn
        self._dims = (dim, attn.num_heads * attn.head_dim, block.mlp.fc1.out_features, block.mlp.fc2.out_features)

    @classmethod
    def check(cls, block: nn.Module, config: DynamicViTConfig) -> None:
        attn = block.attn
        if not isinstance(attn, Attention):
            raise TypeError(f"dynamicvit needs timm.layers.Attention (its training path masks keys "
                            f"with the qkv / proj weights), got {type(attn).__name__}")
        if abs(attn.scale - attn.head_dim ** -0.5) > 1e-12:
            raise ValueError(f"dynamicvit needs the default attention scale head_dim**-0.5, got {attn.scale}")
        if not hasattr(block.mlp, "fc1") or not hasattr(block.mlp, "fc2"):
            raise TypeError(f"dynamicvit counts FLOPs of an FFN with fc1 / fc2, got {type(block.mlp).__name__}")

    def forward(self, block: nn.Module, x: Tensor, policy: Policy,
                previous: Optional[BlockDecision] = None) -> tuple[Tensor, BlockDecision]:
        B, N = int(x.shape[0]), int(x.shape[1])  # plain ints, also under jit tracing
        P = self.layout.num_prefix
        Np = N - P
        state = previous.state if previous is not None and isinstance(previous.state, KeepState) else KeepState()
        scored: Optional[Tensor] = None  # (B,) tokens the prediction module scored
        if self.stage is not None and policy.mode != "keep_all":
            if policy.mode == "learned":
                scored = (x.new_full((B,), float(Np)) if state.mask is None
                          else state.mask.detach().sum(dim=1))
            state = self._prune(x, state, policy, keep_count(Np, self.config.keep_rate, self.stage))

        if state.mask is None:
            x = block_forward(block, x)
            mask = x.new_ones(B, Np)
        elif self.training:
            x = _masked_block(block, x, torch.cat([state.mask.new_ones(B, P), state.mask], dim=1))
            mask = state.mask
        else:
            x = gathered_block(block, x, state.rows)
            mask = state.mask
        cost = functools.partial(self._gflops, P, scored)
        return x, BlockDecision(x.new_ones(B, 2), torch.stack([mask, mask], dim=1), cost, state)

    def _prune(self, x: Tensor, state: KeepState, policy: Policy, k: int) -> KeepState:
        """The running state after this block's stage keeps ``k`` patch tokens."""
        B, N = int(x.shape[0]), int(x.shape[1])  # plain ints, also under jit tracing
        P = self.layout.num_prefix
        Np = N - P
        if policy.mode == "drop_all":
            k = 0
        if policy.mode == "learned" and self.training:  # hard Gumbel-softmax, straight-through
            logits = self.predictor(x[:, P:], state.mask)
            keep = F.gumbel_softmax(logits, tau=self.config.temperature, hard=True)[..., 0]
            return KeepState(keep if state.mask is None else keep * state.mask)
        if policy.mode == "learned":
            tokens = x[:, P:] if state.index is None else gather_tokens(x[:, P:], state.index)
            scores = self.predictor(tokens)[..., 0]
        else:  # random control (drop_all keeps none): the same draw in train and eval
            scores = torch.rand(B, Np, device=x.device)
            if state.index is not None:
                scores = scores.gather(1, state.index)
        if self.training:  # controls while training: a hard mask over all tokens
            allowed = None if state.mask is None else state.mask > 0.5
            return KeepState(_top_k_mask(scores, k, allowed).to(x.dtype))
        top = scores.topk(min(k, scores.shape[1]), dim=1).indices
        index = top if state.index is None else state.index.gather(1, top)
        index = index.sort(dim=1).values
        mask = x.new_zeros(B, Np).scatter_(1, index, 1.0)
        rows = index + P
        if P:
            rows = torch.cat([torch.arange(P, device=x.device).expand(B, P), rows], dim=1)
        return KeepState(mask, index, rows)

    def _gflops(self, prefix: int, scored: Optional[Tensor], kept: Optional[Tensor], run: Tensor) -> Tensor:
        """(B,) GFLOPs of this block: the kept patch tokens ``kept`` (B, 2) plus the prefix
        tokens through attention and FFN, and the prediction module over ``scored`` tokens."""
        dim, attn_dim, hidden, out_dim = self._dims
        n = prefix + kept
        total = (attention_flops(n[:, 0], n[:, 0], dim, attn_dim) + layer_norm_flops(n[:, 0], dim)) * run[:, 0]
        total = total + (mlp_flops(n[:, 1], n[:, 1], dim, hidden, out_dim=out_dim)
                         + layer_norm_flops(n[:, 1], dim)) * run[:, 1]
        if scored is not None:
            total = total + prediction_flops(scored, dim)
        return total / 1e9


def dynamicvit_loss(vit: nn.Module, weight: float = 2.0) -> Tensor:
    """The keep-ratio loss of the last forward of a ``dynamicvit``-wrapped ViT.

    ``weight * keep_ratio_loss`` over the stages' running keep masks against ``keep_rate**s``
    (the paper weights it by 2). Call it after a train-mode forward with the learned policy, so
    that the masks carry gradients to the prediction modules. Distillation terms are not
    included.

    Raises:
        TypeError: the model is not wrapped.
        ValueError: the model is wrapped with another method.
        RuntimeError: no forward yet.
    """
    info = wrap_info(vit)
    if info.method != "dynamicvit":
        raise ValueError(f"dynamicvit_loss needs a model wrapped with method='dynamicvit', got {info.method!r}")
    record = last_record(vit)
    masks, targets = [], []
    for block, decision in zip(vit.blocks, record.blocks):
        stage = block.adaprune_gate.stage
        if stage is not None:
            masks.append(decision.token_masks[:, 0])
            targets.append(info.config.keep_rate ** stage)
    return weight * keep_ratio_loss(masks, targets)
