"""AdaViT (Meng et al., CVPR 2022): per-block usage policies for patches, heads and the block.

Before every block a light decision network reads the block's input and decides, per sample,
whether to run the block, which attention heads to use and which patch tokens to update.
Decisions are independent from block to block (a token skipped by one block may be used by the
next), so no state is carried over depth. Registered as ``adaprune.wrap(vit, method="adavit")``.

    >>> import adaprune_baselines.adavit  # registers the method
    >>> vit = adaprune.wrap(vit, method="adavit")
    >>> feats = vit.forward_features(x)
    >>> loss = task_loss + 2.0 * usage_loss(vit)  # the paper's usage-ratio losses
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from timm.layers import Attention, Mlp
from torch import Tensor, nn

from adaprune import BlockDecision, BlockGate, Policy, TokenLayout, decide, last_record, register_gate
from adaprune.flops import attention_flops, layer_norm_flops, mlp_flops
from adaprune.ops import add_tokens, gather_tokens, hard_decision, kept_index, masked_softmax_attention

__all__ = ["AdaViTConfig", "AdaViTDecision", "AdaViT", "head_subset_attention", "usage_loss", "head_keep"]


@dataclass(frozen=True)
class AdaViTConfig:
    """Options of AdaViT's decision networks."""

    temperature: float = 5.0      # Gumbel-sigmoid temperature in training (the official code's tau = 5)
    init_keep_logit: float = 2.0  # bias of every decision at init: start near dense (sigmoid(2) = 0.88)

    def __post_init__(self) -> None:
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) \
                or not self.temperature > 0:
            raise ValueError(f"temperature must be a number > 0, got {self.temperature!r}")
        if isinstance(self.init_keep_logit, bool) or not isinstance(self.init_keep_logit, (int, float)):
            raise ValueError(f"init_keep_logit must be a number, got {self.init_keep_logit!r}")


class AdaViTDecision(nn.Module):
    """The decision network of one block: three linear heads on the block's normalised input.

    The block and head decisions read the mean of the normalised tokens (the paper's image-level
    usage, the official code reads the class token, which the colorization ViT has not); the
    patch decisions read each patch token.

    Args:
        dim: model width C.
        num_heads: H, attention heads of the block.
        init_keep_logit: initial bias of every decision.
    """

    def __init__(self, dim: int, num_heads: int, init_keep_logit: float = 2.0) -> None:
        super().__init__()
        self.sample = nn.Linear(dim, 1 + num_heads)  # [block, head 1 .. H]
        self.patch = nn.Linear(dim, 1)
        for layer in (self.sample, self.patch):
            nn.init.trunc_normal_(layer.weight, std=0.02)
            nn.init.constant_(layer.bias, init_keep_logit)

    def sample_logits(self, h: Tensor) -> Tensor:
        """h: (B, N, C) normalised block input -> (B, 1 + H) logits: [block, heads]."""
        return self.sample(h.mean(dim=1))

    def patch_logits(self, patches: Tensor) -> Tensor:
        """patches: (B, Np, C) normalised patch tokens -> (B, Np) keep logits."""
        return self.patch(patches).squeeze(-1)


def head_subset_attention(attn: Attention, h: Tensor, heads: Optional[Tensor] = None,
                          valid: Optional[Tensor] = None) -> Tensor:
    """Multi-head attention of a timm ``Attention`` restricted to some heads, with its weights.

    Only the kept heads' rows of ``qkv`` and columns of ``proj`` are used, so a dropped head
    costs nothing; the result equals the full attention with the dropped heads' outputs zeroed
    before the output projection.

    Args:
        attn: the block's attention (no scale norm, no output gate).
        h: (B, K, C) normalised tokens.
        heads: (h,) long indices of the kept heads, or None for all of them.
        valid: (B, K) bool, False for padding tokens (no key or value), or None.

    Returns:
        (B, K, C_out): the attention output (the projection bias alone when no head is kept).
    """
    B, K, _ = h.shape
    d = attn.head_dim
    if heads is None:
        weight, bias, proj_weight, count = attn.qkv.weight, attn.qkv.bias, attn.proj.weight, attn.num_heads
    else:
        count = int(heads.numel())
        if count == 0:
            out = h.new_zeros(B, K, attn.proj.out_features)
            return out if attn.proj.bias is None else out + attn.proj.bias
        channels = (heads[:, None] * d + torch.arange(d, device=h.device)).reshape(-1)  # (h * d,)
        rows = (torch.arange(3, device=h.device)[:, None] * attn.num_heads * d + channels).reshape(-1)
        weight = attn.qkv.weight.index_select(0, rows)
        bias = None if attn.qkv.bias is None else attn.qkv.bias.index_select(0, rows)
        proj_weight = attn.proj.weight.index_select(1, channels)
    q, k, v = F.linear(h, weight, bias).view(B, K, 3, count, d).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    mask = None if valid is None else valid[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, h, K, d)
    out = out.transpose(1, 2).reshape(B, K, count * d)
    return attn.proj_drop(F.linear(out, proj_weight, attn.proj.bias))


def _decide_heads(logits: Optional[Tensor], batch: int, num_heads: int, like: Tensor, policy: Policy,
                  training: bool, temperature: float) -> Tensor:
    """Head keep decisions (batch, H): learned from ``logits``; every head for keep_all and
    random (the control varies patches and blocks only); none for drop_all."""
    if policy.mode == "learned":
        return decide(lambda: logits, batch, num_heads, like, policy, "patch", training, temperature)
    if policy.mode == "drop_all":
        return like.new_zeros(batch, num_heads)
    return like.new_ones(batch, num_heads)


@register_gate("adavit")
class AdaViT(BlockGate):
    """AdaViT's decision network and adaptive forward for one block.

    ``train()``: Gumbel-sigmoid decisions (straight-through hard values); everything is computed
    and the dropped work multiplied out: head outputs by the head mask before the output
    projection, dropped tokens are no key or value (masked softmax) and get no update, a
    dropped block adds nothing. ``eval()``: ``sigmoid > 0.5``; a dropped block is not run,
    dropped heads are not computed (sliced ``qkv`` / ``proj`` weights, one attention call per
    distinct head set in the batch), dropped tokens are not computed (kept tokens gathered,
    padded with a key mask when counts differ, scattered back). A dropped token keeps its
    representation at its position.

    Policies: ``random`` keeps ``round(patch_keep * Np)`` random patch tokens per block, runs each
    block with probability ``layer_keep`` and keeps every head; ``drop_all`` skips every block.
    """

    config_class = AdaViTConfig

    def __init__(self, block: nn.Module, config: AdaViTConfig, layout: TokenLayout, index: int = 0,
                 depth: int = 1) -> None:
        super().__init__(block, config, layout, index, depth)
        attn = block.attn
        dim = attn.qkv.in_features
        self.config = config
        self.decision = AdaViTDecision(dim, attn.num_heads, config.init_keep_logit)
        self._dims = (dim, attn.num_heads, attn.head_dim, block.mlp.fc1.out_features, block.mlp.fc2.out_features)

    @classmethod
    def check(cls, block: nn.Module, config: AdaViTConfig) -> None:
        attn, mlp = block.attn, block.mlp
        if type(attn) is not Attention:
            raise TypeError(f"adavit needs timm.layers.Attention to drop heads, got {type(attn).__name__}")
        if not isinstance(attn.norm, nn.Identity) or getattr(attn, "gate", None) is not None:
            raise TypeError("adavit does not support attention with scale_norm or an output gate "
                            "(they mix channels across heads, so a head cannot be dropped alone)")
        if type(mlp) is not Mlp or not isinstance(mlp.fc1, nn.Linear) or not isinstance(mlp.fc2, nn.Linear):
            raise TypeError(f"adavit needs timm.layers.Mlp with Linear layers (for its FLOPs count), "
                            f"got {type(mlp).__name__}")

    def forward(self, block: nn.Module, x: Tensor, policy: Policy,
                previous: Optional[BlockDecision] = None) -> tuple[Tensor, BlockDecision]:
        if self.training:
            return self._masked(block, x, policy)
        return self._gathered(block, x, policy)

    # -- training: everything computed, dropped work multiplied out ----------------------------

    def _masked(self, block: nn.Module, x: Tensor, policy: Policy) -> tuple[Tensor, BlockDecision]:
        B, N, _ = x.shape
        P, H, t = self.layout.num_prefix, self._dims[1], self.config.temperature
        learned = policy.mode == "learned"
        h = block.norm1(x)
        logits = self.decision.sample_logits(h) if learned else None
        run = decide(lambda: logits[:, :1], B, 1, x, policy, "layer", True, t)[:, 0]
        tokens = decide(lambda: self.decision.patch_logits(h[:, P:]), B, N - P, x, policy, "patch", True, t)
        heads = _decide_heads(None if logits is None else logits[:, 1:], B, H, x, policy, True, t)
        keep = torch.cat([tokens.new_ones(B, P), tokens], dim=1)[..., None]  # (B, N, 1)

        attn = block.attn
        q, k, v = attn.qkv(h).view(B, N, 3, H, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = attn.q_norm(q), attn.k_norm(k)
        out = masked_softmax_attention(q, k, v, keep[..., 0], attn.attn_drop.p, True)  # (B, H, N, d)
        out = (out * heads[:, :, None, None]).transpose(1, 2).reshape(B, N, -1)
        y = attn.proj_drop(attn.proj(attn.norm(out))) * keep
        x = x + run[:, None, None] * block.drop_path1(block.ls1(y))
        y = block.mlp(block.norm2(x)) * keep
        x = x + run[:, None, None] * block.drop_path2(block.ls2(y))
        return x, self._decision(run, tokens * run[:, None], heads, tokens, learned)

    # -- inference: dropped blocks, heads and tokens not computed ------------------------------

    def _gathered(self, block: nn.Module, x: Tensor, policy: Policy) -> tuple[Tensor, BlockDecision]:
        B, N, _ = x.shape
        P, H, t = self.layout.num_prefix, self._dims[1], self.config.temperature
        learned = policy.mode == "learned"
        h = block.norm1(x) if learned else None
        logits = self.decision.sample_logits(h) if learned else None
        run = decide(lambda: logits[:, :1], B, 1, x, policy, "layer", False, t)[:, 0]
        # controls draw for the whole batch, in the training path's order: same random numbers
        drawn = None if learned else decide(None, B, N - P, x, policy, "patch", False, t)
        all_tokens, all_heads = x.new_zeros(B, N - P), x.new_zeros(B, H)
        rows = run.bool().nonzero().view(-1)
        if rows.numel() == 0:
            return x, self._decision(run, all_tokens, all_heads, all_tokens, learned)
        whole = rows.numel() == B
        sub = (lambda t_: t_) if whole else (lambda t_: t_.index_select(0, rows))
        heads = _decide_heads(None if logits is None else sub(logits)[:, 1:], rows.numel(), H, x, policy, False, t)
        tokens = hard_decision(self.decision.patch_logits(sub(h)[:, P:])) if learned else sub(drawn)
        all_tokens[rows], all_heads[rows] = tokens, heads

        keep = torch.cat([torch.ones(rows.numel(), P, dtype=torch.bool, device=x.device), tokens.bool()], dim=1)
        active = keep.any(dim=1)  # a sample keeping no token at all (no prefix) changes nothing
        if not bool(active.all()):
            rows, keep, heads = rows[active], keep[active], heads[active]
            h = None if h is None else h.index_select(0, rows)
            whole = False
            if rows.numel() == 0:
                return x, self._decision(run, all_tokens, all_heads, all_tokens, learned)
        elif h is not None and not whole:
            h = h.index_select(0, rows)
        xr = x.clone() if whole else x.index_select(0, rows)  # never write into the input
        self._attention(block, xr, h, keep, heads)
        self._mlp(block, xr, keep)
        out = xr if whole else x.index_copy(0, rows, xr)
        return out, self._decision(run, all_tokens, all_heads, all_tokens, learned)

    def _attention(self, block: nn.Module, x: Tensor, h: Optional[Tensor], keep: Tensor, heads: Tensor) -> None:
        """Adds the attention sub-layer's output into x (R, N, C) in place, for the kept tokens
        ``keep`` (R, N) bool, with the heads ``heads`` (R, H) 0/1; h: (R, N, C) normalised x or
        None (normalised here, on the kept tokens only). One call per distinct head set."""
        R = x.shape[0]
        if R == 1 or bool((heads == heads[:1]).all()):
            groups = [(None, heads[0])]
        else:
            sets, inverse = torch.unique(heads, dim=0, return_inverse=True)
            groups = [((inverse == g).nonzero().view(-1), sets[g]) for g in range(sets.shape[0])]
        for members, head_set in groups:
            kept_heads = None if bool(head_set.all()) else head_set.nonzero().view(-1)
            xs = x if members is None else x.index_select(0, members)
            hs = h if h is None or members is None else h.index_select(0, members)
            ks = keep if members is None else keep.index_select(0, members)
            idx, valid = (None, None) if bool(ks.all()) else kept_index(ks)
            if idx is None:
                hk = block.norm1(xs) if hs is None else hs
            else:
                hk = block.norm1(gather_tokens(xs, idx)) if hs is None else gather_tokens(hs, idx)
            y = block.drop_path1(block.ls1(head_subset_attention(block.attn, hk, kept_heads, valid)))
            if idx is None:
                xs += y
            else:
                add_tokens(xs, idx, y, valid)
            if members is not None:
                x.index_copy_(0, members, xs)

    @staticmethod
    def _mlp(block: nn.Module, x: Tensor, keep: Tensor) -> None:
        """Adds the FFN sub-layer's output into x (R, N, C) in place, for the kept tokens."""
        if bool(keep.all()):
            x += block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
            return
        idx, valid = kept_index(keep)
        y = block.drop_path2(block.ls2(block.mlp(block.norm2(gather_tokens(x, idx)))))
        add_tokens(x, idx, y, valid)

    # -- record and cost model -----------------------------------------------------------------

    def _decision(self, run: Tensor, masks: Tensor, heads: Tensor, tokens: Tensor, learned: bool) -> BlockDecision:
        """The block's record: token masks (B, 2, Np) (one decision for attention and FFN, zero
        where the block did not run), layer_keep (B, 2), and the head decisions in ``state``."""
        layer_keep = torch.stack([run, run], dim=1)
        token_masks = torch.stack([masks, masks], dim=1)
        head_count = heads.detach().sum(dim=1)

        def gflops(kept: Optional[Tensor], ran: Tensor) -> Tensor:
            return self._gflops(kept, ran, head_count, learned)

        return BlockDecision(layer_keep, token_masks, gflops, state={"heads": heads, "patches": tokens})

    def _gflops(self, kept: Optional[Tensor], ran: Tensor, head_count: Tensor, learned: bool) -> Tensor:
        """(B,) GFLOPs of the block per sample: ``kept`` (B, 2) patch tokens updated, ``ran``
        (B, 2) block run, ``head_count`` (B,) heads kept. Under ``learned`` the decision network
        (and the norm it reads) runs for every sample, its patch head only where the block runs."""
        dim, H, d, hidden, out_dim = self._dims
        P = self.layout.num_prefix
        Np = self.layout.num_patches
        run = ran[:, 0]
        n = P + (run.new_full(run.shape, float(Np)) if kept is None else kept[:, 0])
        body = (attention_flops(n, n, dim, head_count * d) + layer_norm_flops(n, dim)
                + mlp_flops(n, n, dim, hidden, out_dim=out_dim))
        if learned:
            total = layer_norm_flops(P + Np, dim) + dim * (1 + H) + run * (Np * dim + body)
        else:
            total = run * (layer_norm_flops(n, dim) + body)
        return total / 1e9


def _usage(vit: nn.Module) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(B, L) block decisions, (B, L) head and (B, L) patch usage per block, from the record."""
    record = last_record(vit)
    if not all(isinstance(b.state, dict) and "heads" in b.state for b in record.blocks):
        raise TypeError("usage_loss / head_keep need a model wrapped with method='adavit'")
    block = torch.stack([b.layer_keep[:, 0] for b in record.blocks], dim=1)
    heads = torch.stack([b.state["heads"].mean(dim=1) for b in record.blocks], dim=1)
    patches = torch.stack([b.state["patches"].mean(dim=1) for b in record.blocks], dim=1)
    return block, heads, patches, block.detach()


def _mean_where_run(usage: Tensor, ran: Tensor, dim: Optional[int] = None) -> Tensor:
    """Mean of ``usage`` over the (sample, block) pairs whose block ran (0 where none ran)."""
    total = ran.sum() if dim is None else ran.sum(dim=dim)
    value = (usage * ran).sum() if dim is None else (usage * ran).sum(dim=dim)
    return torch.where(total > 0, value / total.clamp_min(1.0), torch.zeros_like(value))


def usage_loss(vit: nn.Module, target_patch: float = 0.5, target_head: float = 0.5,
               target_block: float = 0.5) -> Tensor:
    """AdaViT's usage-ratio losses on the last forward: ``sum_k (mean usage_k - target_k)^2``.

    Block usage is the mean block decision over samples and blocks; head and patch usage are
    the mean decisions over the (sample, block) pairs whose block ran (a skipped block uses no
    head or patch; the official code masks heads the same way). The defaults are the official
    code's targets (0.5 each); the paper weights this loss by 2 (each term in the code).

    Args:
        vit: a model wrapped with ``method="adavit"`` after a forward (in ``train()`` the
            decisions carry gradients to the decision networks).
        target_patch: target fraction of patch tokens updated per block that runs.
        target_head: target fraction of heads used per block that runs.
        target_block: target fraction of blocks run.

    Returns:
        A scalar tensor.

    Raises:
        ValueError: a target outside [0, 1].
    """
    for name, value in (("target_patch", target_patch), ("target_head", target_head),
                        ("target_block", target_block)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    block, heads, patches, ran = _usage(vit)
    return ((block.mean() - target_block) ** 2 + (_mean_where_run(heads, ran) - target_head) ** 2
            + (_mean_where_run(patches, ran) - target_patch) ** 2)


def head_keep(vit: nn.Module) -> Tensor:
    """(B,) fraction of attention heads used, mean over the blocks each sample ran (0 if none)."""
    _, heads, _, ran = _usage(vit)
    return _mean_where_run(heads.detach(), ran, dim=1)
