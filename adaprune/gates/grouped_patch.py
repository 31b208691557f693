"""Soft grouped patch selection (AdaColViT, eqs. 8-10).

The channels of each attention head and the FFN's hidden channels are split into G groups.
Group 1 runs for every token; groups 2..G run only for the tokens a decision layer keeps
("informative" tokens) and are added on top through the output projection. In the extra
attention groups a dropped token is no key or value: an attention mask while training,
absent when the kept tokens are gathered at inference.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from timm.layers import Attention, Mlp
from torch import Tensor, nn

from adaprune.ops import (
    add_tokens,
    gather_tokens,
    group_major_order,
    grouped_layer_norm,
    linear_t,
    masked_softmax_attention,
    read_only_attention,
)

__all__ = ["GroupedPatchGate", "DerivedCache", "InferenceWeights", "attention_inference", "inference_weights",
           "is_plain_attention", "is_plain_mlp", "mlp_inference", "parameter_key"]

# in-place GELU: the private binding skips the dispatcher's Python layer (about 15 us a call)
_gelu_ = getattr(torch._C._nn, "gelu_", torch.ops.aten.gelu_)


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
    ``attention_inference`` computes from its weights."""
    return (type(attn) is Attention and isinstance(attn.norm, nn.Identity)
            and getattr(attn, "gate", None) is None
            and all(isinstance(n, (nn.Identity, nn.LayerNorm)) for n in (attn.q_norm, attn.k_norm)))


def is_plain_mlp(mlp: nn.Module) -> bool:
    """Whether ``mlp`` is timm's ``Mlp`` with Linear layers and no hidden norm: the FFN that
    ``mlp_inference`` computes from its weights."""
    return (type(mlp) is Mlp and isinstance(mlp.fc1, nn.Linear) and isinstance(mlp.fc2, nn.Linear)
            and isinstance(mlp.norm, nn.Identity))


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
        if not is_plain_mlp(mlp):
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


# -- inference: kept tokens gathered, computed and scattered back ------------------------------

class InferenceWeights(NamedTuple):
    """A plain block's attention and FFN laid out for the inference path: each projection
    stored transposed, ``(in, out)`` row-major (MKL multiplies this layout faster than the
    transposed view ``F.linear`` passes it at ViT sizes), its channels group-major, so that a
    channel group's weights are a column (or row) slice and all groups together one matrix.
    With ``groups=1`` this is the block's own layout, transposed."""

    groups: int
    heads: int
    group_dim: int               # dg = head_dim / G channels per head and group
    q_norm: Optional[tuple]      # (weight (G, dg), bias (G, dg), eps) of a q LayerNorm, or None
    k_norm: Optional[tuple]
    act: nn.Module               # the FFN's activation
    qkv: Tensor                  # (C, 3 * H * head_dim), columns (group, part, head, channel)
    qkv_bias: Optional[Tensor]   # (3 * H * head_dim,) in the same order
    proj: Tensor                 # (H * head_dim, C), rows (group, head, channel)
    proj_bias: Optional[Tensor]
    fc1: Tensor                  # (C, hidden): group g's hidden channels are columns g*f .. (g+1)*f
    fc1_bias: Optional[Tensor]
    fc2: Tensor                  # (hidden, C)
    fc2_bias: Optional[Tensor]


def inference_weights(attn: Attention, mlp: Mlp, groups: int) -> InferenceWeights:
    """A plain block's projections, transposed and group-major (contiguous copies)."""
    H, d, G = attn.num_heads, attn.head_dim, groups
    device = attn.qkv.weight.device
    rows = group_major_order(H, d, G, parts=3).to(device)
    cols = group_major_order(H, d, G, parts=1).to(device)
    qkv_b = attn.qkv.bias
    return InferenceWeights(
        G, H, d // G, _qk_norm_params(attn.q_norm, G), _qk_norm_params(attn.k_norm, G), mlp.act,
        attn.qkv.weight[rows].t().contiguous(), None if qkv_b is None else qkv_b[rows].contiguous(),
        attn.proj.weight[:, cols].t().contiguous(), attn.proj.bias,
        mlp.fc1.weight.t().contiguous(), mlp.fc1.bias, mlp.fc2.weight.t().contiguous(), mlp.fc2.bias,
    )


def parameter_key(modules: Sequence[nn.Module]) -> tuple:
    """What identifies the current parameters of ``modules`` (their own, not their children's):
    it changes when one is updated in place (an optimizer step, ``load_state_dict``), moved to
    another device or dtype, or replaced. Read through the modules' dicts: this runs once per
    block and forward, and module attribute lookups would cost more than the check."""
    return tuple(None if p is None else (id(p), p.data_ptr(), p._version, p.dtype)
                 for m in modules for p in m._parameters.values())


class DerivedCache:
    """A value derived from parameters (weight copies for the inference kernels), kept while
    ``parameter_key`` of its modules is unchanged. A copy or pickle of its owner starts empty."""

    def __init__(self) -> None:
        self.key: Optional[tuple] = None
        self.value: Any = None

    def __getstate__(self) -> dict:
        return {"key": None, "value": None}


def _activate_(act: nn.Module, t: Tensor) -> Tensor:
    """``act(t)``, in place for GELU when no gradient is asked for: the hidden activations are
    the largest tensors of a block, and writing them once more costs as much as the GELU."""
    if type(act) is nn.GELU and not torch.is_grad_enabled():
        return _gelu_(t, approximate=act.approximate)
    return act(t)


def _norm_group_major(t: Tensor, params: Optional[tuple], groups: slice) -> Tensor:
    """A grouped q/k norm on t (B, g, H, N, dg) whose groups are ``groups`` of the norm's."""
    if params is None:
        return t
    weight, bias, eps = params
    return grouped_layer_norm(t.transpose(1, 2), None if weight is None else weight[groups],
                              None if bias is None else bias[groups], eps).transpose(1, 2)


def attention_inference(h: Tensor, w: InferenceWeights, index: Optional[Tensor] = None,
                        valid: Optional[Tensor] = None, num_read_only: int = 0) -> Tensor:
    """Grouped attention with groups 2..G only for the kept tokens, in ``eval``.

    Group 1 runs on every token; the kept tokens are gathered, run groups 2..G among
    themselves (the others are no key or value there), and their share of the output
    projection is added at their positions. The first ``num_read_only`` tokens are queries only, no key or value, in every
    group; they must lead every row of ``index``. (At batch 1 AdaColViT runs the compiled
    ``adaprune.ops.grouped_sublayer_one`` instead: the same computation.)

    Args:
        h: (B, N, C) normalised tokens.
        w: the block's ``InferenceWeights``; with ``groups=1`` this is the attention itself.
        index: (B, K) kept positions (``kept_index``), or None: every token kept.
        valid: (B, K) real entries of a padded ``index``, or None.

    Returns:
        (B, N, C) after the output projection.
    """
    B, N, _ = h.shape
    H, G, dg, r = w.heads, w.groups, w.group_dim, num_read_only
    c1, p1 = 3 * H * dg, H * dg  # group 1's qkv columns and projection rows
    q, k, v = linear_t(h, w.qkv[:, :c1], _head(w.qkv_bias, c1)).view(B, N, 1, 3, H, dg).permute(3, 0, 2, 4, 1, 5).unbind(0)
    q, k = _norm_group_major(q, w.q_norm, slice(0, 1)), _norm_group_major(k, w.k_norm, slice(0, 1))
    out = read_only_attention(q[:, 0], k[:, 0], v[:, 0], r)
    out = linear_t(out.transpose(1, 2).reshape(B, N, p1), w.proj[:p1], w.proj_bias)
    if G == 1 or (index is not None and index.shape[1] <= r):  # nothing more, or no key left in groups 2..G
        return out
    hk = h if index is None else gather_tokens(h, index)
    K = hk.shape[1]
    q, k, v = (linear_t(hk, w.qkv[:, c1:], _tail(w.qkv_bias, c1)).view(B, K, G - 1, 3, H, dg)
               .permute(3, 0, 2, 4, 1, 5).unbind(0))  # (B, G-1, H, K, dg)
    q, k = _norm_group_major(q, w.q_norm, slice(1, None)), _norm_group_major(k, w.k_norm, slice(1, None))
    mask = None if valid is None else valid[:, None, None, :]
    rest = read_only_attention(q.flatten(1, 2), k.flatten(1, 2), v.flatten(1, 2), r, mask)
    rest = linear_t(rest.transpose(1, 2).reshape(B, K, -1), w.proj[p1:])
    return out.add_(rest) if index is None else add_tokens(out, index, rest, valid)


def _head(bias: Optional[Tensor], n: int) -> Optional[Tensor]:
    return None if bias is None else bias[:n]


def _tail(bias: Optional[Tensor], n: int) -> Optional[Tensor]:
    return None if bias is None else bias[n:]


def mlp_inference(h: Tensor, w: InferenceWeights, index: Optional[Tensor] = None,
                  valid: Optional[Tensor] = None) -> Tensor:
    """Grouped FFN with hidden groups 2..G only for the kept tokens, in ``eval`` (with every
    token kept, the FFN itself).

    Args:
        h: (B, N, C) normalised tokens.
        w: the block's ``InferenceWeights``; with ``groups=1`` this is the FFN itself.
        index: (B, K) kept positions, or None: every token kept.
        valid: (B, K) real entries of a padded ``index``, or None.

    Returns:
        (B, N, C).
    """
    if index is None or w.groups == 1:
        return linear_t(_activate_(w.act, linear_t(h, w.fc1, w.fc1_bias)), w.fc2, w.fc2_bias)
    f = w.fc1.shape[1] // w.groups
    out = linear_t(_activate_(w.act, linear_t(h, w.fc1[:, :f], _head(w.fc1_bias, f))), w.fc2[:f], w.fc2_bias)
    hidden = _activate_(w.act, linear_t(gather_tokens(h, index), w.fc1[:, f:], _tail(w.fc1_bias, f)))
    return add_tokens(out, index, linear_t(hidden, w.fc2[f:]), valid)
