"""A-ViT (Yin et al., CVPR 2022): adaptive token halting, as an adaprune gate.

Each patch token carries a halting score read from its own representation, with no extra
parameters: after block l, ``h_k^l = sigmoid(gamma * t_{k,e}^l + beta)`` from channel ``e`` of
token k's output. Scores accumulate over depth; a token halts at the first block where its
cumulative score reaches ``1 - eps`` (every token still running halts at the last block). A
halted token is no longer computed, nor a key or value for the others; it keeps its
representation at its position (dense output for pixel prediction): with ``output="weighted"``
(the paper's) that representation is the halting-weighted mean of its block outputs,
``sum_{l<L_k} h_k^l t_k^l + R_k t_k^{L_k}`` with the remainder ``R_k = 1 - sum_{l<L_k} h_k^l``;
with ``output="last"`` it is its last block output. The ponder cost ``rho_k = L_k + R_k``
(blocks run plus remainder) and the per-block halting scores travel block to block in
``BlockDecision.state`` and feed the two losses of the paper.

    >>> import adaprune_baselines.avit  # registers the method
    >>> adaprune.wrap(vit, method="avit", beta=-10.0)
    >>> loss = task_loss + adaprune_baselines.avit.ponder_loss(vit) + adaprune_baselines.avit.distribution_prior_loss(vit)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal, Optional, get_args

import torch
from torch import Tensor, nn

from adaprune import BlockDecision, BlockGate, Policy, TokenLayout, last_record, register_gate
from adaprune.flops import attention_flops, layer_norm_flops, mlp_flops
from adaprune.gates.token_removal import block_forward, gathered_block
from adaprune.ops import kept_index

__all__ = [
    "AViT",
    "AViTConfig",
    "HaltingState",
    "OutputMode",
    "depth_prior",
    "distribution_prior_loss",
    "halting_scores",
    "halting_step",
    "initial_state",
    "mean_depth",
    "ponder_loss",
    "random_halting",
]

OutputMode = Literal["weighted", "last"]


@dataclass(frozen=True)
class AViTConfig:
    """Options of A-ViT's halting (paper section 3.1 and 4)."""

    gamma: float = 5.0                 # scale of the halting score, sigmoid(gamma * t + beta)
    beta: float = -10.0                # its shift; higher halts earlier (the knob of an untrained budget)
    eps: float = 0.01                  # a token halts once its cumulative score reaches 1 - eps
    channel: int = 0                   # embedding channel e the score reads (the paper's first)
    output: OutputMode = "weighted"    # halted token's representation: ACT's weighted mean or its last

    def __post_init__(self) -> None:
        for name in ("gamma", "beta", "eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not self.gamma > 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma!r}")
        if not 0.0 < self.eps < 1.0:
            raise ValueError(f"eps must be in (0, 1), got {self.eps!r}")
        if isinstance(self.channel, bool) or not isinstance(self.channel, int) or self.channel < 0:
            raise ValueError(f"channel must be a non-negative integer, got {self.channel!r}")
        if self.output not in get_args(OutputMode):
            raise ValueError(f"output must be one of {', '.join(get_args(OutputMode))}, got {self.output!r}")


@dataclass(frozen=True)
class HaltingState:
    """Running halting state of the patch tokens after one block (B batch, Np patch tokens).

    Attributes:
        active: (B, Np) bool, tokens still running (computed by the next block).
        cumulative: (B, Np) accumulated halting scores ``c_k``.
        remainder: (B, Np) ``R_k = 1 - sum h_k`` over the blocks where the token went on.
        depth: (B, Np) blocks each token has run.
        ponder: (B, Np) ponder cost ``rho_k = L_k + R_k``; for a token still running, as if
            this block were its last (the value the paper's forced halting gives at the end).
        scores: (B, Np) this block's raw halting scores of the tokens it computed, 0 elsewhere
            (the distributional prior's input; not forced to 1 at the last block).
        weighted: whether halted tokens get their halting-weighted mean (``output="weighted"``).
        accumulated: (B, Np, C) ``sum h_k^l t_k^l`` over the blocks where the token went on
            (``weighted`` only); None while it is zero.
    """

    active: Tensor
    cumulative: Tensor
    remainder: Tensor
    depth: Tensor
    ponder: Tensor
    scores: Tensor
    weighted: bool = True
    accumulated: Optional[Tensor] = None


# -- the maths --------------------------------------------------------------------------------


def halting_scores(tokens: Tensor, gamma: float, beta: float, channel: int = 0) -> Tensor:
    """A-ViT's parameter-free halting score. tokens: (B, Np, C) -> (B, Np) in (0, 1)."""
    return torch.sigmoid(gamma * tokens[..., channel] + beta)


def initial_state(batch: int, num_patches: int, like: Tensor, weighted: bool) -> HaltingState:
    """The state before the first block: every token running, nothing accumulated."""
    zeros = like.new_zeros(batch, num_patches)
    return HaltingState(
        active=torch.ones(batch, num_patches, dtype=torch.bool, device=like.device),
        cumulative=zeros, remainder=torch.ones_like(zeros), depth=zeros, ponder=zeros, scores=zeros,
        weighted=weighted,
    )


def halting_step(state: HaltingState, tokens: Tensor, scores: Tensor, eps: float,
                 last: bool = False) -> tuple[HaltingState, Tensor]:
    """One block of adaptive halting (ACT over tokens).

    Args:
        state: the state before the block.
        tokens: (B, Np, C) the block's output for the patch tokens (unchanged where halted).
        scores: (B, Np) halting scores ``h`` of this block (values where halted are ignored).
        eps: a token halts once its cumulative score reaches ``1 - eps``.
        last: the last block: every running token halts (``h = 1``, as in the paper).

    Returns:
        The state after the block, and the patch tokens to pass on (B, Np, C): a token that
        halts here gets its halting-weighted mean ``accumulated + R * t`` when the state is
        ``weighted``, its output ``t`` otherwise. ``tokens`` itself when nothing changes.
    """
    running = state.active
    run = running.to(tokens.dtype)
    scores = scores * run
    used = run if last else scores
    depth = state.depth + run
    cumulative = state.cumulative + used
    halts = running & (cumulative >= 1.0 - eps)
    goes_on = running & ~halts
    ponder = torch.where(running, depth + state.remainder, state.ponder)
    step = used * goes_on
    out, accumulated = tokens, state.accumulated
    if state.weighted:  # the full-size work only where it changes something (exact either way)
        if bool(halts.any()):
            weighted = (state.remainder[..., None] * tokens if accumulated is None
                        else torch.addcmul(accumulated, state.remainder[..., None], tokens))
            out = torch.where(halts[..., None], weighted, tokens)
        if bool(step.any()):
            accumulated = (step[..., None] * tokens if accumulated is None
                           else torch.addcmul(accumulated, step[..., None], tokens))
    remainder = state.remainder - step
    return HaltingState(goes_on, cumulative, remainder, depth, ponder, scores, state.weighted, accumulated), out


def random_halting(active: Tensor, keep: float, dtype: torch.dtype) -> Tensor:
    """Control scores: of the ``n_b`` running tokens of sample b, ``round(keep * n_b)`` drawn
    uniformly go on (score 0) and the others halt (score 1). active: (B, Np) bool -> (B, Np)."""
    draw = torch.rand(active.shape, device=active.device).masked_fill(~active, 2.0)
    rank = draw.argsort(dim=1).argsort(dim=1)
    goes_on = rank < torch.round(keep * active.sum(dim=1, keepdim=True))
    return (active & ~goes_on).to(dtype)


def depth_prior(num_blocks: int, target_depth: float, std: float = 1.0, buffer: float = 0.02) -> Tensor:
    """The reference code's Gaussian halting-depth prior over blocks 0..L-1.

    A Gaussian density at ``target_depth`` (in blocks, 0-based as the reference), scaled so
    that its first ``floor(target_depth)`` entries sum to ``1 - buffer``. Returns (L,).
    """
    if not num_blocks >= 1:
        raise ValueError(f"num_blocks must be >= 1, got {num_blocks!r}")
    if not 1 <= target_depth <= num_blocks - 1:
        raise ValueError(f"target_depth must be in [1, {num_blocks - 1}] for {num_blocks} blocks, "
                         f"got {target_depth!r}")
    if not std > 0:
        raise ValueError(f"std must be > 0, got {std!r}")
    if not 0.0 <= buffer < 1.0:
        raise ValueError(f"buffer must be in [0, 1), got {buffer!r}")
    blocks = torch.arange(num_blocks, dtype=torch.float64)
    density = torch.exp(-0.5 * ((blocks - target_depth) / std) ** 2) / (std * math.sqrt(2 * math.pi))
    return (density * (1.0 - buffer) / density[:int(target_depth)].sum()).float()


# -- the gate ---------------------------------------------------------------------------------


@register_gate("avit")
class AViT(BlockGate):
    """A-ViT's gate of one block: runs the block on the running tokens, then updates halting.

    ``train()`` computes every token (masked path): a halted token's update is discarded and
    it is excluded as key / value through the attention mask; ``eval()`` gathers the running
    tokens (padded per sample, with a key mask, when the batch's counts differ), computes
    them alone and scatters them back. Halting is deterministic given the activations, so the
    two paths agree. Policies: ``learned`` uses the halting scores; ``keep_all`` halts nothing
    before the last block (the unwrapped model, exactly); ``drop_all`` halts every patch token
    after the first block (the least A-ViT can compute; later blocks run the class / register
    tokens only); ``random`` keeps ``round(patch_keep * n)`` uniformly drawn tokens of the
    ``n`` still running after each block (a geometric depth, as a constant halting rate);
    ``layer_keep`` is ignored (A-ViT skips no sub-layer).
    """

    config_class = AViTConfig

    def __init__(self, block: nn.Module, config: AViTConfig, layout: TokenLayout, index: int = 0,
                 depth: int = 1) -> None:
        super().__init__(block, config, layout, index, depth)
        self.config = config
        attn = block.attn
        self._dims = (block.attn.qkv.in_features, attn.num_heads * attn.head_dim,
                      block.mlp.fc1.out_features, block.mlp.fc2.out_features)

    @classmethod
    def check(cls, block: nn.Module, config: AViTConfig) -> None:
        dim = block.attn.qkv.in_features
        if config.channel >= dim:
            raise ValueError(f"channel {config.channel} is out of range for width {dim}")

    @property
    def last(self) -> bool:
        """Whether this is the model's last block (every running token halts here)."""
        return self.index == self.depth - 1

    def forward(self, block: nn.Module, x: Tensor, policy: Policy,
                previous: Optional[BlockDecision] = None) -> tuple[Tensor, BlockDecision]:
        B, N, _ = x.shape
        P = self.layout.num_prefix
        if previous is None:
            state = initial_state(B, N - P, x, self.config.output == "weighted")
        elif isinstance(previous.state, HaltingState):
            state = previous.state
        else:
            raise TypeError("A-ViT's gate expects the previous block's HaltingState; was the model "
                            "wrapped with method='avit'?")
        active = state.active
        if bool(active.all()):  # nothing halted yet: the block as it is
            y = block_forward(block, x)
        else:
            keep = torch.cat([active.new_ones(B, P), active], dim=1)
            y = _masked_block(block, x, keep) if self.training else _gathered_block(block, x, keep)
        tokens = y[:, P:]
        state, patches = halting_step(state, tokens, self._scores(tokens, active, policy), self.config.eps,
                                      last=self.last)
        if patches is not tokens:
            y = torch.cat([y[:, :P], patches], dim=1) if P else patches
        ran = active.to(x.dtype)[:, None].expand(B, 2, N - P)
        cost = functools.partial(self._gflops, policy.mode == "learned")
        return y, BlockDecision(x.new_ones(B, 2), ran, cost, state)

    def _scores(self, tokens: Tensor, active: Tensor, policy: Policy) -> Tensor:
        """(B, Np) halting scores of this block's output under ``policy``."""
        if policy.mode == "learned":
            return halting_scores(tokens, self.config.gamma, self.config.beta, self.config.channel)
        if policy.mode == "keep_all":
            return tokens.new_zeros(active.shape)
        if policy.mode == "drop_all":
            return tokens.new_ones(active.shape)
        return random_halting(active, policy.patch_keep, tokens.dtype)

    def _gflops(self, learned: bool, kept: Optional[Tensor], run: Tensor) -> Tensor:
        """(B,) GFLOPs of this block: ``kept`` (B, 2) running patch tokens (None: all)."""
        dim, attn_dim, hidden, out_dim = self._dims
        P = self.layout.num_prefix
        Np = self.layout.num_patches
        tokens = run.new_full(run.shape[:1], float(P + Np)) if kept is None else P + kept[:, 0]
        total = (attention_flops(tokens, tokens, dim, attn_dim)
                 + mlp_flops(tokens, tokens, dim, hidden, out_dim=out_dim)
                 + 2 * layer_norm_flops(tokens, dim))
        if learned:  # gamma * t + beta, one multiply-add per running patch token
            total = total + (tokens - P)
        return total * (tokens > 0) / 1e9


# -- the two paths through a block ------------------------------------------------------------


def _masked_block(block: nn.Module, x: Tensor, keep: Tensor) -> Tensor:
    """Training path: every token computed, halted ones (``keep`` False, (B, N)) no key or
    value and their update discarded."""
    if bool(keep.all()):
        return block_forward(block, x)
    keys = keep | ~keep.any(dim=1, keepdim=True)  # a sample with nothing running: any keys, all discarded
    return torch.where(keep[..., None], block_forward(block, x, keys[:, None, None, :]), x)


def _gathered_block(block: nn.Module, x: Tensor, keep: Tensor) -> Tensor:
    """Inference path: only the running tokens (``keep``, (B, N)) computed, among themselves."""
    if bool(keep.all()):
        return block_forward(block, x)
    if not bool(keep.any()):
        return x
    return gathered_block(block, x, *kept_index(keep))


# -- losses and statistics on the last forward ------------------------------------------------


def _states(vit: nn.Module) -> list[HaltingState]:
    states = [b.state for b in last_record(vit).blocks]
    if not states or not all(isinstance(s, HaltingState) for s in states):
        raise ValueError("the last forward was not A-ViT's: wrap the model with method='avit'")
    return states


def ponder_loss(vit: nn.Module, weight: float = 5e-4) -> Tensor:
    """The paper's ponder loss ``alpha_p * mean_k rho_k`` of the last forward (eq. 9).

    ``rho_k = L_k + R_k``: blocks token k ran plus its remainder, averaged over the batch and
    the patch tokens; call it after a ``train()`` forward for gradients (through ``R_k``).

    Args:
        vit: a model wrapped with ``method="avit"``.
        weight: ``alpha_p`` (the paper's 5e-4); 1 gives the mean ponder cost itself.
    """
    if not weight >= 0:
        raise ValueError(f"weight must be >= 0, got {weight!r}")
    return weight * _states(vit)[-1].ponder.mean()


def mean_depth(vit: nn.Module) -> Tensor:
    """(B,) mean number of blocks the patch tokens ran in the last forward."""
    return _states(vit)[-1].depth.mean(dim=1)


def distribution_prior_loss(vit: nn.Module, target_depth: Optional[float] = None, std: float = 1.0,
                            buffer: float = 0.02, weight: float = 0.1) -> Tensor:
    """The paper's distributional prior ``alpha_d * KL(H_target || H)`` on the last forward.

    ``H^l`` is block l's mean halting score over the batch and the patch tokens (0 for the
    tokens halted before it), normalised over blocks and clamped to [0.01, 0.99] as the
    reference code does; ``H_target`` is ``depth_prior``. The KL sum is divided by the number
    of blocks, as the reference's ``KLDivLoss(reduction="batchmean")`` on that vector.

    Args:
        vit: a model wrapped with ``method="avit"``.
        target_depth: the prior's mean block (0-based); None: ``2/3`` of the depth (8 of 12,
            the reference code's value for its 12-block models).
        std: the prior's standard deviation in blocks (the reference's 1).
        buffer: the prior's first ``target_depth`` entries sum to ``1 - buffer`` (0.02).
        weight: ``alpha_d`` (the paper's 0.1).
    """
    if not weight >= 0:
        raise ValueError(f"weight must be >= 0, got {weight!r}")
    states = _states(vit)
    depth = len(states)
    if depth < 2:
        raise ValueError("the distributional prior needs at least 2 blocks")
    target = depth_prior(depth, round(2 * depth / 3) if target_depth is None else target_depth, std, buffer)
    halting = torch.stack([s.scores.mean() for s in states])
    halting = (halting / halting.sum().clamp_min(1e-12)).clamp(0.01, 0.99)
    target = target.to(halting)
    return weight * (target * (target.log() - halting.log())).sum() / depth
