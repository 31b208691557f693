"""Soft grouped patch selection (AdaColViT, eqs. 8-10).

The channels of each attention head and the FFN's hidden channels are split into G groups.
Group 1 runs for every token; groups 2..G run only for the tokens a decision layer keeps
("informative" tokens) and are added on top through the output projection. In the extra
attention groups a dropped token is no key or value: an attention mask while training,
absent when the kept tokens are gathered at inference.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from timm.layers import Attention, Mlp
from torch import Tensor, nn

from adaprune.ops import (
    gather_tokens,
    group_rows,
    grouped_layer_norm,
    add_tokens,
    kept_index,
    masked_softmax_attention,
    read_only_attention,
)

__all__ = ["GroupedPatchGate", "grouped_attention", "is_plain_attention"]


def _qk_norm_params(norm: nn.Module, groups: int) -> Optional[tuple[Optional[Tensor], Optional[Tensor], float]]:
    """(weight (G, dg), bias (G, dg), eps) of a q/k LayerNorm, None for Identity."""
    if isinstance(norm, nn.Identity):
        return None
    weight = norm.weight.view(groups, -1) if norm.weight is not None else None
    bias = norm.bias.view(groups, -1) if norm.bias is not None else None
    return weight, bias, norm.eps


def _norm_groups(t: Tensor, params, first: slice) -> Tensor:
    """Applies a q/k norm per channel group. t: (B, H, g, N, dg); ``first`` picks the groups."""
    if params is None:
        return t
    weight, bias, eps = params
    return grouped_layer_norm(t, None if weight is None else weight[first],
                              None if bias is None else bias[first], eps)


def is_plain_attention(attn: nn.Module) -> bool:
    """Whether ``attn`` is timm's ``Attention`` with nothing that mixes channels across heads'
    groups (no scale norm, no output gate) and LayerNorm or no q/k norms: the attention that
    ``grouped_attention`` computes from its weights."""
    return (type(attn) is Attention and isinstance(attn.norm, nn.Identity)
            and getattr(attn, "gate", None) is None
            and all(isinstance(n, (nn.Identity, nn.LayerNorm)) for n in (attn.q_norm, attn.k_norm)))


def grouped_attention(attn: Attention, h: Tensor, groups: int, num_read_only: int = 0) -> Tensor:
    """Every token at full width: each head's channels split into ``groups`` attentions of
    ``head_dim / groups`` channels (``groups=1``: ``attn`` itself), in one fused call.

    The first ``num_read_only`` tokens are queries only, no key or value; so with
    ``groups=1`` the other tokens get exactly ``attn(h[:, num_read_only:])`` and no mask is
    needed (a masked call costs more than the attention it guards on CPU).

    Args:
        attn: a plain timm Attention (``is_plain_attention``), in eval (no dropout).
        h: (B, N, C) normalised tokens.

    Returns:
        (B, N, C) after the output projection.
    """
    B, N, _ = h.shape
    H, G, d = attn.num_heads, groups, attn.head_dim
    dg = d // G
    qn, kn = _qk_norm_params(attn.q_norm, G), _qk_norm_params(attn.k_norm, G)
    q, k, v = attn.qkv(h).view(B, N, 3, H * G, dg).permute(2, 0, 3, 1, 4).unbind(0)
    if qn is not None or kn is not None:
        q = _norm_groups(q.unflatten(1, (H, G)), qn, slice(None)).flatten(1, 2)
        k = _norm_groups(k.unflatten(1, (H, G)), kn, slice(None)).flatten(1, 2)
    out = read_only_attention(q, k, v, num_read_only)
    return attn.proj(out.transpose(1, 2).reshape(B, N, H * d))


class GroupedPatchGate(nn.Module):
    """Token keep decisions for the attention and FFN inputs, and their grouped forwards.

    Args:
        dim: model width C.
        groups: G, channel groups (>= 2).
        init_keep_logit: initial bias of the decision layers.
    """

    def __init__(self, dim: int, groups: int, init_keep_logit: float = 2.0) -> None:
        super().__init__()
        self.groups = groups
        self.attn_logits = nn.Linear(dim, 1)
        self.mlp_logits = nn.Linear(dim, 1)
        for layer in (self.attn_logits, self.mlp_logits):
            nn.init.trunc_normal_(layer.weight, std=0.02)
            nn.init.constant_(layer.bias, init_keep_logit)
        self._cache: dict[str, tuple[tuple, tuple[Tensor, ...]]] = {}

    @staticmethod
    def check(block: nn.Module, groups: int) -> None:
        """Raises TypeError / ValueError when the block's attention or FFN cannot be grouped."""
        attn, mlp = block.attn, block.mlp
        if type(attn) is not Attention:
            raise TypeError(f"patch_groups > 1 needs timm.layers.Attention, got {type(attn).__name__}; "
                            "use patch_groups=1 (layer skip only) for other attention modules")
        if not isinstance(attn.norm, nn.Identity) or getattr(attn, "gate", None) is not None:
            raise TypeError("patch_groups > 1 does not support attention with scale_norm or an output "
                            "gate (they mix channels across groups); use patch_groups=1")
        for norm in (attn.q_norm, attn.k_norm):
            if not isinstance(norm, (nn.Identity, nn.LayerNorm)):
                raise TypeError(f"patch_groups > 1 supports LayerNorm q/k norms only, got {type(norm).__name__}")
        if type(mlp) is not Mlp or not isinstance(mlp.fc1, nn.Linear) or not isinstance(mlp.norm, nn.Identity):
            raise TypeError(f"patch_groups > 1 needs timm.layers.Mlp with Linear layers and no hidden "
                            f"norm, got {type(mlp).__name__}; use patch_groups=1 for other FFNs")
        if attn.head_dim % groups:
            raise ValueError(f"patch_groups={groups} must divide the head dim {attn.head_dim} "
                             f"(width {attn.num_heads * attn.head_dim} / {attn.num_heads} heads)")
        if mlp.fc1.out_features % groups:
            raise ValueError(f"patch_groups={groups} must divide the FFN hidden width {mlp.fc1.out_features}")

    # -- training: everything computed, dropped work masked ---------------------------------

    def attention_masked(self, attn: Attention, h: Tensor, keep: Tensor, num_read_only: int = 0) -> Tensor:
        """h: (B, N, C), keep: (B, N) in [0, 1] (prefix tokens 1) -> (B, N, C).

        The first ``num_read_only`` tokens (the method's) are queries only: no key or value."""
        B, N, _ = h.shape
        H, G, d = attn.num_heads, self.groups, attn.head_dim
        qkv = attn.qkv(h).view(B, N, 3, H, G, d // G).permute(2, 0, 3, 4, 1, 5)
        q, k, v = qkv.unbind(0)  # (B, H, G, N, dg)
        q = _norm_groups(q, _qk_norm_params(attn.q_norm, G), slice(None))
        k = _norm_groups(k, _qk_norm_params(attn.k_norm, G), slice(None))
        p = attn.attn_drop.p if self.training else 0.0
        r = num_read_only  # no key or value: attention over the keys after them
        first = F.scaled_dot_product_attention(q[:, :, 0], k[:, :, 0, r:], v[:, :, 0, r:], dropout_p=p)
        rest = masked_softmax_attention(q[:, :, 1:].flatten(1, 2), k[:, :, 1:, r:].flatten(1, 2),
                                        v[:, :, 1:, r:].flatten(1, 2), keep[:, r:], p, self.training)
        rest = rest * keep[:, None, :, None].to(rest.dtype)  # dropped queries get no extra groups
        out = torch.cat([first.unsqueeze(2), rest.view(B, H, G - 1, N, -1)], dim=2)
        out = out.permute(0, 3, 1, 2, 4).reshape(B, N, H * d)
        return attn.proj_drop(attn.proj(out))

    def mlp_masked(self, mlp: Mlp, h: Tensor, keep: Tensor) -> Tensor:
        """h: (B, N, C), keep: (B, N) -> (B, N, C); hidden groups 2..G zeroed for dropped tokens."""
        hidden = mlp.drop1(mlp.act(mlp.fc1(h)))
        B, N, F_ = hidden.shape
        hidden = hidden.view(B, N, self.groups, F_ // self.groups)
        keep = keep.to(hidden.dtype)[:, :, None]
        scale = torch.cat([torch.ones_like(keep), keep.expand(-1, -1, self.groups - 1)], dim=2)[..., None]
        return mlp.drop2(mlp.fc2((hidden * scale).view(B, N, F_)))

    # -- inference: kept tokens gathered, computed and scattered back ------------------------

    def _split_weights(self, attn: Attention, mlp: Mlp) -> tuple[Optional[Tensor], ...]:
        """Group 1's and groups 2..G's slices of the qkv rows, proj columns, fc1 rows and fc2
        columns, as contiguous copies, so that each weight is read once per forward and no
        matmul gets a strided operand. Cached while the weights are unchanged and no gradient
        is asked for."""
        params = (attn.qkv.weight, attn.qkv.bias, attn.proj.weight, mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight)
        key = tuple((p._version, p.data_ptr()) if p is not None else None for p in params)
        cacheable = not torch.is_grad_enabled()
        if cacheable and self._cache.get("key") == key:
            return self._cache["weights"]
        device = params[0].device
        rows = [t.to(device) for t in group_rows(attn.num_heads, attn.head_dim, self.groups, parts=3)]
        cols = [t.to(device) for t in group_rows(attn.num_heads, attn.head_dim, self.groups, parts=1)]
        qkv_w, qkv_b, proj_w, fc1_w, fc1_b, fc2_w = params
        f1 = mlp.fc1.out_features // self.groups
        weights = (
            qkv_w[rows[0]], None if qkv_b is None else qkv_b[rows[0]],
            qkv_w[rows[1]], None if qkv_b is None else qkv_b[rows[1]],
            proj_w[:, cols[0]].contiguous(), proj_w[:, cols[1]].contiguous(),
            fc1_w[:f1].contiguous(), None if fc1_b is None else fc1_b[:f1].contiguous(),
            fc1_w[f1:].contiguous(), None if fc1_b is None else fc1_b[f1:].contiguous(),
            fc2_w[:, :f1].contiguous(), fc2_w[:, f1:].contiguous(),
        )
        if cacheable:
            self._cache = {"key": key, "weights": weights}
        return weights

    def attention_gathered(self, attn: Attention, h: Tensor, keep: Optional[Tensor], mlp: Mlp,
                           num_read_only: int = 0) -> Tensor:
        """h: (B, N, C), keep: (B, N) bool or None (all kept) -> (B, N, C); groups 2..G only
        for kept tokens.

        Group 1 runs on every token with its slice of the projections; the kept tokens are
        gathered, run groups 2..G among themselves, and their share of the output projection
        is added back at their positions.
        """
        if keep is None:  # every token at full width
            return grouped_attention(attn, h, self.groups, num_read_only)
        B, N, C = h.shape
        H, G, d = attn.num_heads, self.groups, attn.head_dim
        dg = d // G
        qn, kn = _qk_norm_params(attn.q_norm, G), _qk_norm_params(attn.k_norm, G)
        w1, b1, wr, br, p1, pr = self._split_weights(attn, mlp)[:6]

        q, k, v = F.linear(h, w1, b1).view(B, N, 3, H, dg).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, N, dg)
        if qn is not None or kn is not None:
            q = _norm_groups(q.unsqueeze(2), qn, slice(0, 1)).squeeze(2)
            k = _norm_groups(k.unsqueeze(2), kn, slice(0, 1)).squeeze(2)
        out = read_only_attention(q, k, v, num_read_only)
        out = F.linear(out.transpose(1, 2).reshape(B, N, H * dg), p1, attn.proj.bias)

        idx, valid = kept_index(keep)
        K = idx.shape[1]
        qkv = F.linear(gather_tokens(h, idx), wr, br).view(B, K, 3, H * (G - 1), dg)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H * (G-1), K, dg)
        if qn is not None or kn is not None:
            q = _norm_groups(q.unflatten(1, (H, G - 1)), qn, slice(1, None)).flatten(1, 2)
            k = _norm_groups(k.unflatten(1, (H, G - 1)), kn, slice(1, None)).flatten(1, 2)
        # the read-only tokens are always kept, so they lead every row of idx
        mask = None if valid is None else valid[:, None, None, :]
        rest = read_only_attention(q, k, v, num_read_only, mask)
        rest = F.linear(rest.transpose(1, 2).reshape(B, K, -1), pr)
        return add_tokens(out, idx, rest, valid)

    def mlp_gathered(self, mlp: Mlp, h: Tensor, keep: Optional[Tensor], attn: Attention) -> Tensor:
        """h: (B, N, C), keep: (B, N) bool or None (all kept) -> (B, N, C); hidden groups
        2..G only for kept tokens."""
        if keep is None:
            return mlp(h)
        w1_first, b1_first, w1_rest, b1_rest, w2_first, w2_rest = self._split_weights(attn, mlp)[6:]
        out = F.linear(mlp.act(F.linear(h, w1_first, b1_first)), w2_first, mlp.fc2.bias)
        idx, valid = kept_index(keep)
        hidden = mlp.act(F.linear(gather_tokens(h, idx), w1_rest, b1_rest))
        return add_tokens(out, idx, F.linear(hidden, w2_rest), valid)
