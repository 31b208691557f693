"""Pure tensor functions: the maths of adaptive ViTs, free of modules and state.

Shapes use B (batch), N (tokens), C (channels), H (heads), d (head dim), G (channel groups),
K (kept tokens per sample, padded to the largest count in the batch).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "gumbel_sigmoid",
    "hard_decision",
    "random_keep",
    "kept_index",
    "prefixed_kept_index",
    "gather_tokens",
    "add_tokens",
    "group_rows",
    "linear_t",
    "masked_softmax_attention",
    "read_only_attention",
    "read_only_mask",
    "grouped_layer_norm",
]


def gumbel_sigmoid(logits: Tensor, temperature: float = 1.0, hard: bool = True) -> Tensor:
    """Relaxed Bernoulli sample of keep decisions.

    Args:
        logits: keep logits, any shape.
        temperature: relaxation temperature; lower is closer to a hard sample.
        hard: straight-through: the forward value is 0/1, the gradient is the relaxed one's.

    Returns:
        Keep decisions with the shape of ``logits``, in [0, 1] (exactly 0/1 when ``hard``).
    """
    u = torch.rand_like(logits).clamp_(1e-6, 1.0 - 1e-6)
    noise = torch.log(u) - torch.log1p(-u)  # the difference of two Gumbels is logistic
    soft = torch.sigmoid((logits + noise) / temperature)
    if not hard:
        return soft
    hard_value = (soft > 0.5).to(soft.dtype)
    return hard_value - soft.detach() + soft


def hard_decision(logits: Tensor) -> Tensor:
    """Deterministic inference decision: keep where sigmoid(logit) > 0.5. Same shape, float."""
    return (logits > 0).to(logits.dtype)


def random_keep(batch: int, n: int, keep: float, device: torch.device, dtype: torch.dtype,
                out: Optional[Tensor] = None) -> Tensor:
    """Exactly ``round(keep * n)`` uniformly chosen positions kept per row.

    Args:
        out: optional (batch, n) tensor of zeros to write the mask into.

    Returns:
        (batch, n) mask of 0/1 in ``dtype`` (True / False for bool); the same random numbers
        are drawn whatever the dtype.
    """
    batch, n = int(batch), int(n)  # plain ints, also under jit tracing
    k = int(round(keep * n))
    mask = torch.zeros(batch, n, device=device, dtype=dtype) if out is None else out
    if k > 0:  # the k largest of n uniform draws are a uniform k-subset; topk is cheaper than a sort
        idx = torch.rand(batch, n, device=device).topk(k, dim=1, sorted=False).indices
        mask.scatter_(1, idx, 1.0)
    return mask


def kept_index(keep: Tensor) -> tuple[Tensor, Optional[Tensor]]:
    """Positions of each sample's kept tokens, in order, padded to the largest count.

    Args:
        keep: (B, N) bool, True where a token is kept.

    Returns:
        ``idx`` (B, K) long, K the largest kept count; and ``valid`` (B, K) bool marking the
        real entries, or None when every sample keeps exactly K tokens (no padding, so no
        attention mask is needed). Padding entries point at dropped tokens.
    """
    if keep.shape[0] == 1:
        return keep[0].nonzero().view(1, -1), None
    counts = keep.sum(dim=1)
    k = int(counts.max())
    # a stable sort of ~keep puts the kept positions first, in their original order
    idx = (~keep).to(torch.uint8).argsort(dim=1, stable=True)[:, :k]
    if bool((counts == k).all()):
        return idx, None
    return idx, torch.arange(k, device=keep.device)[None, :] < counts[:, None]


def prefixed_kept_index(keep: Tensor, num_prefix: int) -> tuple[Optional[Tensor], Optional[Tensor]]:
    """``kept_index`` of a patch keep mask behind ``num_prefix`` tokens that are always kept.

    Args:
        keep: (B, Np) 0/1 decisions of the patch tokens, any dtype.
        num_prefix: P leading tokens (policy, class, registers), kept.

    Returns:
        ``index`` (B, K) into the P + Np tokens and ``valid`` as ``kept_index`` gives them,
        or ``(None, None)`` when every token is kept (nothing to gather).
    """
    full = F.pad(keep, (num_prefix, 0), value=1)
    if keep.shape[0] == 1:  # one nonzero, no padding, no host check beyond the count
        index = full[0].nonzero().view(1, -1)
        return (None, None) if index.shape[1] == full.shape[1] else (index, None)
    full = full > 0
    if bool(full.all()):
        return None, None
    return kept_index(full)


def gather_tokens(x: Tensor, idx: Tensor) -> Tensor:
    """x: (B, N, C), idx: (B, K) -> (B, K, C)."""
    if x.shape[0] == 1:  # index_select copies whole rows: several times faster than x[:, idx]
        return x[0].index_select(0, idx[0]).unsqueeze(0)
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def add_tokens(out: Tensor, idx: Tensor, values: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """Adds values (B, K, C) into out (B, N, C) at positions idx (B, K), in place; padding
    entries (``valid`` False) add nothing."""
    if valid is not None:
        values = values * valid[..., None].to(values.dtype)
    if out.shape[0] == 1:
        out[0].index_add_(0, idx[0], values[0])
        return out
    return out.scatter_add_(1, idx.unsqueeze(-1).expand(-1, -1, out.shape[-1]), values)


def linear_t(x: Tensor, weight_t: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``F.linear`` with the weight stored transposed: x (..., C_in), weight_t (C_in, C_out)
    row-major -> (..., C_out). One ``addmm`` on the flattened rows; on CPU, MKL multiplies
    this layout faster than the transposed view that ``F.linear`` passes it at ViT sizes."""
    flat = x.reshape(-1, x.shape[-1])
    out = torch.mm(flat, weight_t) if bias is None else torch.addmm(bias, flat, weight_t)
    return out.view(*x.shape[:-1], weight_t.shape[1])


def group_rows(num_heads: int, head_dim: int, groups: int, parts: int = 1) -> tuple[Tensor, Tensor]:
    """Row indices of a per-head channel grouping, first group versus the others.

    The channels of a projection with ``parts`` stacked blocks (3 for q, k, v) of ``num_heads``
    heads of ``head_dim`` are split within each head into ``groups`` contiguous groups.

    Returns:
        ``first`` (parts * num_heads * head_dim / G,) and ``rest`` indices, each ordered
        (part, head, channel) so that a reshape to (parts, heads, channels) is valid.
    """
    dg = head_dim // groups
    ids = torch.arange(parts * num_heads * head_dim).view(parts, num_heads, groups, dg)
    return ids[:, :, 0].reshape(-1), ids[:, :, 1:].reshape(-1)


def read_only_mask(n: int, num_read_only: int, device: torch.device) -> Tensor:
    """(n, n) bool attention mask (True: may attend) for ``num_read_only`` leading tokens that
    read every other token but that no token reads, themselves included, so that adding them
    changes nothing else."""
    mask = torch.ones(n, n, dtype=torch.bool, device=device)
    mask[:, :num_read_only] = False
    return mask


def read_only_attention(q: Tensor, k: Tensor, v: Tensor, num_read_only: int,
                        attn_mask: Optional[Tensor] = None) -> Tensor:
    """Attention in which the first ``num_read_only`` tokens are no key or value (the
    semantics of ``read_only_mask``): one fused call over the other keys, no mask needed.

    Args:
        q: (B, h, N, d) queries.
        k: (B, h, N, d) keys.
        v: (B, h, N, d) values.
        num_read_only: leading read-only tokens (fewer than N).
        attn_mask: optional bool mask broadcastable to (B, h, N, N), True where allowed.

    Returns:
        (B, h, N, d).
    """
    r = num_read_only
    if r == 0:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    if attn_mask is not None:
        attn_mask = attn_mask[..., r:]
    return F.scaled_dot_product_attention(q, k[:, :, r:], v[:, :, r:], attn_mask=attn_mask)


def masked_softmax_attention(
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_keep: Tensor,
        dropout_p: float = 0.0,
        training: bool = False,
        attn_mask: Optional[Tensor] = None,
) -> Tensor:
    """Attention in which dropped tokens are excluded as keys and values, differentiably.

    ``a_ij = exp(s_ij) m_j / sum_k exp(s_ik) m_k``: for a 0/1 mask this equals attention over
    the kept keys alone, and the gradient still reaches m (DynamicViT's masked softmax).

    Stable where it matters for training: scores are shifted by the largest *kept* score, so
    the denominator is at least 1 for 0/1 masks (a shift by a dropped key's score could leave
    it near 0 and the gradient to m overflowing); a dropped key's exponent is capped at that
    peak, which bounds the gradient that asks whether to keep it; a query with no key left
    (e.g. the policy token when a sample drops every patch) gets zeros and finite gradients.

    Args:
        q: (B, h, N, d) queries.
        k: (B, h, N, d) keys.
        v: (B, h, N, d) values.
        key_keep: (B, N) in [0, 1].
        attn_mask: optional (N, N) bool, True where a query may attend a key.

    Returns:
        (B, h, N, d); a query with no key left gets zeros.
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    keep = key_keep[:, None, None, :].to(scores.dtype)
    if attn_mask is not None:
        keep = keep * attn_mask.to(scores.dtype)
    with torch.no_grad():
        peak = scores.masked_fill(keep <= 0, float("-inf")).amax(dim=-1, keepdim=True)
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))  # no key left
    weights = (scores - peak).clamp(max=0.0).exp() * keep
    total = weights.sum(dim=-1, keepdim=True)
    weights = weights / torch.where(total > 0, total, torch.ones_like(total))
    if dropout_p > 0.0 and training:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v


def grouped_layer_norm(t: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], eps: float) -> Tensor:
    """LayerNorm of each channel group on its own, with that group's affine parameters.

    Used for q/k normalisation once a head's channels are grouped: a token computed only at
    1/G width cannot be normalised over channels it never computed.

    Args:
        t: (B, H, g, N, dg): g channel groups of dg channels.
        weight: (g, dg) slice of the original norm's scale, or None.
        bias: (g, dg) slice of its shift, or None.
        eps: the norm's epsilon.
    """
    out = F.layer_norm(t, (t.shape[-1],), eps=eps)
    if weight is not None:
        out = out * weight[:, None, :]
    if bias is not None:
        out = out + bias[:, None, :]
    return out
