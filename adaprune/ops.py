"""Pure tensor functions: the maths of adaptive ViTs, free of modules and state.

Shapes use B (batch), N (tokens), C (channels), H (heads), d (head dim), G (channel groups),
K (kept tokens per sample, padded to the largest count in the batch).
"""

from __future__ import annotations

from typing import Optional, Tuple

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
    "group_major_order",
    "linear_t",
    "masked_softmax_attention",
    "read_only_attention",
    "read_only_mask",
    "grouped_layer_norm",
    "ACTIVATIONS",
    "POLICY_CODES",
    "activate_",
    "attention_all_groups",
    "attention_first_group",
    "attention_other_groups",
    "mlp_first_group",
    "mlp_other_groups",
    "grouped_sublayer_one",
    "grouped_sublayer_graph",
    "SublayerGating",
    "TokenGroups",
    "SublayerWeights",
    "scripted",
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


def group_major_order(num_heads: int, head_dim: int, groups: int, parts: int = 1) -> Tensor:
    """The channels of a projection with ``parts`` stacked blocks (3 for q, k, v) of
    ``num_heads`` heads of ``head_dim``, reordered group-major.

    Each head's channels split into ``groups`` contiguous groups of ``dg = head_dim / G``;
    the returned permutation orders them (group, part, head, channel), so that group 1's are
    the first ``parts * num_heads * dg`` and every group's reshape to (parts, heads, dg) is
    valid.

    Returns:
        (parts * num_heads * head_dim,) long indices into the original channels.
    """
    dg = head_dim // groups
    ids = torch.arange(parts * num_heads * head_dim).view(parts, num_heads, groups, dg)
    return ids.permute(2, 0, 1, 3).reshape(-1)


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


# -- one-sample inference kernel ----------------------------------------------------------------
#
# At batch 1 a ViT-Tiny sub-layer is a few dozen small ops; called one by one from Python,
# their dispatch (and the views between them) costs as much as a fifth of the arithmetic a
# gate saves. ``grouped_sublayer_one`` is one sub-layer on one sample in 2-D tensors, written
# to be compiled with TorchScript (``scripted``); it also runs eagerly, with the same results.

ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu", "quick_gelu")  # codes 0..4 of ``activate_``
POLICY_CODES = {"learned": 0, "keep_all": 1, "drop_all": 2, "random": 3}


def activate_(t: Tensor, act: int) -> Tensor:
    """An FFN activation by code (``ACTIVATIONS``), in place where the op allows it."""
    if act == 0:
        return torch.ops.aten.gelu_(t)
    if act == 1:
        return torch.ops.aten.gelu_(t, approximate="tanh")
    if act == 2:
        return torch.relu_(t)
    if act == 3:
        return F.silu(t, inplace=True)
    return t * torch.sigmoid(1.702 * t)


def _mm(x: Tensor, weight_t: Tensor, bias: Optional[Tensor], one: float) -> Tensor:
    """x (M, C_in) @ weight_t (C_in, C_out) + bias. ``one`` is 1.0, passed in: TorchScript
    splits an ``addmm`` with a constant beta of 1 into ``mm`` and a separate ``add``."""
    if bias is None:
        return torch.mm(x, weight_t)
    return torch.addmm(bias, x, weight_t, beta=one)


# The per-group maths of one sample's sub-layer, shared by ``grouped_sublayer_one`` (compiled,
# eager inference) and ``grouped_sublayer_graph`` (exported, decisions as graph control flow).
# h: (N, C) normalised tokens, the first ``r`` of them read-only (queries, no key or value);
# weights transposed and group-major as ``grouped_sublayer_one`` takes them.

def attention_all_groups(h: Tensor, r: int, groups: int, heads: int, group_dim: int, w1: Tensor,
                         b1: Optional[Tensor], w2: Tensor, b2: Optional[Tensor], one: float = 1.0) -> Tensor:
    """Every group for every token, as one product: (N, C) -> (N, C)."""
    N = int(h.shape[0])
    q, k, v = _mm(h, w1, b1, one).view(N, groups, 3, heads, group_dim).permute(2, 1, 3, 0, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, k[:, :, r:], v[:, :, r:])  # (G, H, N, dg)
    return _mm(out.permute(2, 0, 1, 3).reshape(N, groups * heads * group_dim), w2, b2, one)


def attention_first_group(h: Tensor, r: int, heads: int, group_dim: int, w1: Tensor, b1: Optional[Tensor],
                          w2: Tensor, b2: Optional[Tensor], one: float = 1.0) -> Tensor:
    """Group 1 for every token, the output projection's bias included: (N, C) -> (N, C)."""
    N = int(h.shape[0])
    c1, p1 = 3 * heads * group_dim, heads * group_dim  # group 1's qkv columns and projection rows
    q, k, v = _mm(h, w1[:, :c1], None if b1 is None else b1[:c1], one).view(N, 3, 1, heads, group_dim).permute(
        1, 2, 3, 0, 4).unbind(0)  # (1, H, N, dg): 4-D, as ONNX's attention takes it
    out = F.scaled_dot_product_attention(q, k[:, :, r:], v[:, :, r:])[0].transpose(0, 1).reshape(N, p1)
    return _mm(out, w2[:p1], b2, one)


def attention_other_groups(hk: Tensor, r: int, groups: int, heads: int, group_dim: int, w1: Tensor,
                           b1: Optional[Tensor], w2: Tensor, one: float = 1.0,
                           keys_may_be_empty: bool = False) -> Tensor:
    """Groups 2..G among the K kept tokens hk (K, C), which attend among themselves -> (K, C),
    to be added at their positions. More than ``r`` of them, so that someone is a key; or, with
    ``keys_may_be_empty`` (a count known only at run time), as many as ``r``: then every query
    gets zeros, as if the groups had not run (a masked softmax instead of the fused kernel)."""
    c1, p1 = 3 * heads * group_dim, heads * group_dim  # K stays -1 in the views: under export it is
    q, k, v = _mm(hk, w1[:, c1:], None if b1 is None else b1[c1:], one).view(  # known only at run time
        -1, groups - 1, 3, heads, group_dim).permute(2, 1, 3, 0, 4).unbind(0)
    if keys_may_be_empty:
        key_keep = (torch.arange(hk.shape[0], device=hk.device) >= r).unsqueeze(0)  # (1, K)
        out = masked_softmax_attention(q, k, v, key_keep)
    else:
        out = F.scaled_dot_product_attention(q, k[:, :, r:], v[:, :, r:])  # (G-1, H, K, dg)
    return torch.mm(out.permute(2, 0, 1, 3).reshape(-1, (groups - 1) * p1), w2[p1:])


def mlp_first_group(h: Tensor, groups: int, act: int, w1: Tensor, b1: Optional[Tensor], w2: Tensor,
                    b2: Optional[Tensor], one: float = 1.0) -> Tensor:
    """The FFN's first 1/G hidden channels for every token, fc2's bias included: (N, C) -> (N, C)."""
    f = w1.shape[1] // groups
    return _mm(activate_(_mm(h, w1[:, :f], None if b1 is None else b1[:f], one), act), w2[:f], b2, one)


def mlp_other_groups(hk: Tensor, groups: int, act: int, w1: Tensor, b1: Optional[Tensor], w2: Tensor,
                     one: float = 1.0) -> Tensor:
    """The FFN's other hidden channels for the K kept tokens: (K, C) -> (K, C), to be added."""
    f = w1.shape[1] // groups
    return torch.mm(activate_(_mm(hk, w1[:, f:], None if b1 is None else b1[f:], one), act), w2[f:])


def grouped_sublayer_one(
        x: Tensor,
        attention: bool,
        norm_weight: Optional[Tensor],
        norm_bias: Optional[Tensor],
        norm_eps: float,
        gamma: Optional[Tensor],
        policy: int,
        patch_keep: float,
        decision_weight: Optional[Tensor],
        decision_bias: Optional[Tensor],
        scores: Optional[Tensor],
        keep_out: Optional[Tensor],
        prefix: Tensor,
        num_read_only: int,
        groups: int,
        heads: int,
        group_dim: int,
        act: int,
        w1: Tensor,
        b1: Optional[Tensor],
        w2: Tensor,
        b2: Optional[Tensor],
        one: float = 1.0,
) -> Tensor:
    """One gated sub-layer of one sample at inference: LayerNorm, patch decisions, grouped
    attention or FFN (groups 2..G for the kept tokens only), LayerScale and the residual.

    The projections come transposed and group-major, as ``InferenceWeights`` holds them: for
    attention ``w1`` is qkv (C, 3 * H * G * dg) and ``w2`` the output projection
    (H * G * dg, C); for the FFN fc1 (C, hidden) and fc2 (hidden, C). Group 1 is their first
    columns (rows), groups 2..G the rest; with every token kept all groups run as one product.

    Args:
        x: (1, N, C) tokens: ``prefix`` (P,) positions first (the first ``num_read_only`` of
            them are queries only, no key or value), then N - P patches.
        policy: ``POLICY_CODES``. Learned decisions use ``decision_weight`` (1, C) and
            ``decision_bias`` (1,) on the normalised patch tokens (keep where the logit > 0);
            random ones keep the ``round(patch_keep * (N - P))`` patches of largest
            ``scores`` (1, N - P) uniform draws, as ``random_keep`` picks them.
        keep_out: (1, N - P) bool zeros, where the patch decisions are written; None: the
            sub-layer makes none (every token at full width).
        act: the FFN activation's code (``ACTIVATIONS``).

    Returns:
        (1, N, C): x plus the sub-layer's output.
    """
    N, C, P = int(x.shape[1]), int(x.shape[2]), int(prefix.shape[0])  # plain ints, also under jit tracing
    n = N - P
    r, dg, G = num_read_only, group_dim, groups
    h = F.layer_norm(x[0], [C], norm_weight, norm_bias, norm_eps)
    index: Optional[Tensor] = None  # kept positions, prefix first; None: every token
    if keep_out is not None:
        if policy == 0:
            assert decision_weight is not None
            logits = F.linear(h[P:], decision_weight, decision_bias).view(-1)
            kept = F.pad(torch.gt(logits, 0, out=keep_out[0]), [P, 0], value=1.0).nonzero().view(-1)
            if kept.shape[0] < N:
                index = kept
        elif policy == 3:
            k = int(round(patch_keep * n))
            index = prefix
            if k > 0:
                assert scores is not None
                drawn = scores.topk(k, dim=1, sorted=False).indices
                keep_out.scatter_(1, drawn, 1.0)
                index = torch.cat([prefix, drawn[0] + P])
        elif policy == 1:
            keep_out.fill_(1)
        else:
            index = prefix
    if attention:
        if index is None:  # every token at full width: all groups in one product
            y = attention_all_groups(h, r, G, heads, dg, w1, b1, w2, b2, one)
        else:
            y = attention_first_group(h, r, heads, dg, w1, b1, w2, b2, one)
            if G > 1 and index.shape[0] > r:  # groups 2..G among the kept tokens
                y.index_add_(0, index, attention_other_groups(h.index_select(0, index), r, G, heads, dg, w1, b1, w2,
                                                              one))
    else:
        if index is None or G == 1:
            y = _mm(activate_(_mm(h, w1, b1, one), act), w2, b2, one)
        else:
            y = mlp_first_group(h, G, act, w1, b1, w2, b2, one)
            y.index_add_(0, index, mlp_other_groups(h.index_select(0, index), G, act, w1, b1, w2))
    if gamma is not None:
        y = y * gamma
    return x + y.unsqueeze(0)


# grouped_sublayer_graph's arguments, grouped: one sub-layer's LayerNorm (weight, bias, eps),
# LayerScale gamma and patch decision layer (weight (1, C), bias (1,)); the token and channel
# layout (prefix positions (P,), read-only tokens r, groups G, heads, dg, activation code); and
# its two projections, transposed and group-major (w1, b1, w2, b2)
SublayerGating = Tuple[Optional[Tensor], Optional[Tensor], float, Optional[Tensor], Optional[Tensor], Optional[Tensor]]
TokenGroups = Tuple[Tensor, int, int, int, int, int]
SublayerWeights = Tuple[Tensor, Optional[Tensor], Tensor, Optional[Tensor]]


def grouped_sublayer_graph(x: Tensor, attention: bool, gating: SublayerGating, layout: TokenGroups,
                           weights: SublayerWeights) -> tuple[Tensor, Optional[Tensor]]:
    """``grouped_sublayer_one`` with learned decisions, written for ``torch.export``: the kept
    tokens are found in the graph (``nonzero``, a dynamic count K) and groups 2..G are computed
    for them only; no value is read on the host, nothing is written into an input.

    The arguments are ``grouped_sublayer_one``'s less the policy ones and ``keep_out``, grouped
    (``SublayerGating``, ``TokenGroups``, ``SublayerWeights``); a decision weight of None means
    that the sub-layer makes no patch decisions (every group for every token).

    Args:
        x: (1, N, C) tokens, the layout's prefix positions (P,) first.

    Returns:
        (1, N, C): x plus the sub-layer's output; and the (1, N - P) bool patch keep mask
        (None without decisions).
    """
    norm_weight, norm_bias, norm_eps, gamma, decision_weight, decision_bias = gating
    prefix, num_read_only, groups, heads, group_dim, act = layout
    w1, b1, w2, b2 = weights
    P, r, G = int(prefix.shape[0]), num_read_only, groups
    h = F.layer_norm(x[0], [int(x.shape[2])], norm_weight, norm_bias, norm_eps)
    keep: Optional[Tensor] = None
    if decision_weight is None:
        y = (attention_all_groups(h, r, G, heads, group_dim, w1, b1, w2, b2) if attention
             else _mm(activate_(_mm(h, w1, b1, 1.0), act), w2, b2, 1.0))
    else:
        keep = F.linear(h[P:], decision_weight, decision_bias).view(-1) > 0  # sigmoid > 0.5
        index = torch.cat([prefix, keep.nonzero().view(-1) + P])  # (K,), K known at run time
        hk = h.index_select(0, index)
        if attention:  # with only patches as keys (P == r), none may be kept: zeros then
            y = attention_first_group(h, r, heads, group_dim, w1, b1, w2, b2).index_add(
                0, index, attention_other_groups(hk, r, G, heads, group_dim, w1, b1, w2, keys_may_be_empty=P == r))
        else:
            y = mlp_first_group(h, G, act, w1, b1, w2, b2).index_add(0, index, mlp_other_groups(hk, G, act, w1, b1, w2))
        keep = keep.unsqueeze(0)
    if gamma is not None:
        y = y * gamma
    return x + y.unsqueeze(0), keep


_SCRIPTED: dict[str, object] = {}


def scripted(fn):
    """``fn`` compiled with TorchScript, once per process, or ``fn`` itself where compiling
    fails (same results, more overhead per op)."""
    name = f"{fn.__module__}.{fn.__qualname__}"
    if name not in _SCRIPTED:
        try:
            import warnings

            with warnings.catch_warnings():  # TorchScript is in maintenance mode; it still compiles
                warnings.simplefilter("ignore", FutureWarning)
                _SCRIPTED[name] = torch.jit.script(fn)
        except Exception:  # noqa: BLE001 - whatever the compiler rejects runs eagerly
            _SCRIPTED[name] = fn
    return _SCRIPTED[name]
