"""SwinIR (Liang et al., ICCVW 2021) used as a user-guided colorizer.

    >>> model = swinir_s()                       # 4 input channels: L, hint a, hint b, hint mask
    >>> ab = model(torch.zeros(1, 4, 224, 224))  # (1, 2, 224, 224), normalised ab in (-1, 1)

Shallow 3x3 conv -> residual Swin transformer blocks (RSTB: Swin layers with (shifted) window
self-attention and a relative position bias, a 3x3 conv, a residual) -> LayerNorm -> 3x3 conv
plus a long skip -> 3x3 conv to ``out_chans`` -> tanh. Colorization keeps the image size, so
there is no upsampler. The window helpers (partition, relative position index, shift mask,
``WindowAttention``) are public: Uformer builds on them.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_
from torch import Tensor, nn

__all__ = [
    "init_transformer_weights",
    "window_partition",
    "window_reverse",
    "relative_position_index",
    "shifted_window_mask",
    "check_image",
    "pad_to_multiple",
    "additive_mask",
    "WindowAttention",
    "SwinLayer",
    "RSTB",
    "SwinIR",
    "swinir_s",
    "swinir_t",
]


def init_transformer_weights(module: nn.Module) -> None:
    """Swin's initialisation, for ``model.apply``: truncated-normal (std 0.02) Linear weights,
    zero biases, LayerNorm at identity."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """Cuts a channels-last image into non-overlapping windows.

    Args:
        x: (B, H, W, C) with H and W multiples of ``window_size``.
        window_size: side S of a square window.

    Returns:
        (B, nW, S*S, C), windows in row-major order, tokens in row-major order inside each.
    """
    B, H, W, C = x.shape
    S = window_size
    x = x.view(B, H // S, S, W // S, S, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, (H // S) * (W // S), S * S, C)


def window_reverse(windows: Tensor, window_size: int, height: int, width: int) -> Tensor:
    """Inverse of ``window_partition``: (B, nW, S*S, C) -> (B, H, W, C)."""
    B, _, _, C = windows.shape
    S = window_size
    x = windows.view(B, height // S, width // S, S, S, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, height, width, C)


def relative_position_index(window_size: int) -> Tensor:
    """Index into a ((2S-1)^2, heads) bias table for each (query, key) pair of a window.

    Returns:
        (S*S, S*S) long; entry (i, j) encodes the offset (row_i - row_j, col_i - col_j), shifted
        to be non-negative, as ``(dr + S - 1) * (2S - 1) + (dc + S - 1)``.
    """
    S = window_size
    rows, cols = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    dr = rows[:, None] - rows[None, :] + S - 1
    dc = cols[:, None] - cols[None, :] + S - 1
    return dr * (2 * S - 1) + dc


def shifted_window_mask(height: int, width: int, window_size: int, shift: tuple[int, int]) -> Tensor:
    """Which tokens of a window may attend to which after a cyclic shift by ``-shift``.

    After rolling the image up and left by ``shift``, the last window row / column holds
    pixels that wrapped around from the opposite border; they must only attend to tokens that
    were their neighbours before the roll. A token's region is whether it wrapped along each
    axis; two tokens of a window may attend iff their regions match.

    Args:
        height: H of the (rolled) image, a multiple of ``window_size``.
        width: W, a multiple of ``window_size``.
        window_size: S.
        shift: (rows, cols) the image was rolled by, each in [0, S).

    Returns:
        (nW, S*S, S*S) bool, True where the query (row) may attend to the key (column).
    """
    wrapped_rows = (torch.arange(height) + shift[0] >= height).long()
    wrapped_cols = (torch.arange(width) + shift[1] >= width).long()
    region = (2 * wrapped_rows[:, None] + wrapped_cols[None, :]).view(1, height, width, 1)
    region = window_partition(region, window_size)[0, :, :, 0]  # (nW, S*S)
    return region[:, :, None] == region[:, None, :]


def check_image(x: Tensor, in_chans: int, multiple: int, name: str) -> None:
    """ValueError unless ``x`` is (B, in_chans, H, W) with H, W >= ``multiple``."""
    if x.ndim != 4 or x.shape[1] != in_chans:
        raise ValueError(f"{name} expects an image batch (B, {in_chans}, H, W), got shape {tuple(x.shape)}")
    if min(x.shape[-2:]) < multiple:
        raise ValueError(f"{name} accepts images of at least {multiple}x{multiple} pixels (smaller sides "
                         f"cannot be reflect-padded to a multiple of {multiple}), got {tuple(x.shape[-2:])}")


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Reflect-pads (B, C, H, W) at the bottom and right to multiples of ``multiple``."""
    pad_h = -x.shape[-2] % multiple
    pad_w = -x.shape[-1] % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return x


def additive_mask(mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """A bool attention mask (True: may attend) as 0 / -inf logits offsets; a float mask as is."""
    if mask.dtype != torch.bool:
        return mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias.

    Args:
        dim: channels C.
        num_heads: heads; C must be divisible by it.
        window_size: side S of the windows.
        qkv_bias: bias on the q, k, v projection.
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the output projection.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.window_size = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def relative_position_bias(self) -> Tensor:
        """(heads, S*S, S*S) bias added to the attention logits."""
        n = self.window_size ** 2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)

    def forward(self, windows: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Attention within each window.

        Args:
            windows: (B, nW, N, C), N = S*S tokens per window.
            mask: (nW, N, N) bool, True where a query may attend to a key, or the same as an
                additive float mask (0 / -inf, ``additive_mask``); None: all pairs.

        Returns:
            (B, nW, N, C).
        """
        B, nW, N, C = windows.shape
        # 4-D (B*nW, heads, N, head_dim) with a 4-D mask: torch's fused CPU kernel takes that
        # shape; 5-D inputs or a 3-D mask fall back to a path several times slower
        qkv = self.qkv(windows).view(B * nW, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn_mask = self.relative_position_bias().to(q.dtype)[None]  # (1, heads, N, N)
        if mask is not None:
            attn_mask = attn_mask + additive_mask(mask, q.dtype)[:, None]  # (nW, heads, N, N)
            if B > 1:
                attn_mask = attn_mask.expand(B, -1, -1, -1, -1).reshape(B * nW, self.num_heads, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.attn_drop if self.training else 0.0)
        out = out.transpose(1, 2).reshape(B, nW, N, C)
        return self.proj_drop(self.proj(out))


class SwinLayer(nn.Module):
    """One Swin transformer layer: (shifted) window attention, then an MLP, pre-norm residuals.

    Args:
        dim: channels C.
        num_heads: attention heads.
        window_size: side S of the windows.
        shift: whether this layer rolls the image by S // 2 before partitioning (the odd
            layers of a Swin stage); along an axis with a single window no roll is made.
        mlp_ratio: MLP hidden width over C.
        qkv_bias: bias on the q, k, v projection.
        drop: dropout after the projections.
        attn_drop: dropout on the attention weights.
        drop_path: stochastic depth rate.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int = 8, shift: bool = False,
                 mlp_ratio: float = 2.0, qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)

    def shift(self, height: int, width: int) -> tuple[int, int]:
        """(rows, cols) this layer rolls an H x W image by: none along an axis of one window."""
        S, s = self.window_size, self.shift_size
        return (s if height > S else 0, s if width > S else 0)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """x: (B, H, W, C), H and W multiples of S -> (B, H, W, C).

        ``mask`` is ``shifted_window_mask(H, W, S, self.shift(H, W))``; it is computed here
        when not given (a model passes it in so that all its shifted layers share one).
        """
        B, H, W, C = x.shape
        rows, cols = self.shift(H, W)
        shifted = rows > 0 or cols > 0
        y = self.norm1(x)
        if shifted:
            y = torch.roll(y, shifts=(-rows, -cols), dims=(1, 2))
            if mask is None:
                mask = shifted_window_mask(H, W, self.window_size, (rows, cols)).to(x.device)
        y = self.attn(window_partition(y, self.window_size), mask if shifted else None)
        y = window_reverse(y, self.window_size, H, W)
        if shifted:
            y = torch.roll(y, shifts=(rows, cols), dims=(1, 2))
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class RSTB(nn.Module):
    """Residual Swin transformer block: Swin layers (alternately shifted), a 3x3 conv, a skip.

    Args:
        dim: channels C.
        depth: Swin layers.
        num_heads: attention heads of each layer.
        window_size: side S of the windows.
        mlp_ratio: MLP hidden width over C.
        qkv_bias: bias on the q, k, v projection.
        drop: dropout after the projections.
        attn_drop: dropout on the attention weights.
        drop_path: stochastic depth rate of each layer (a float, or one per layer).
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int = 8, mlp_ratio: float = 2.0,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float | Sequence[float] = 0.0) -> None:
        super().__init__()
        rates = [float(drop_path)] * depth if isinstance(drop_path, (int, float)) else list(drop_path)
        self.layers = nn.ModuleList(
            SwinLayer(dim, num_heads, window_size, shift=i % 2 == 1, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                      drop=drop, attn_drop=attn_drop, drop_path=rates[i])
            for i in range(depth))
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """x: (B, H, W, C) -> (B, H, W, C); ``mask`` as for ``SwinLayer`` (shared by shifted layers)."""
        y = x
        for layer in self.layers:
            y = layer(y, mask if layer.shift_size else None)
        y = self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + y


class SwinIR(nn.Module):
    """SwinIR for colorization: (B, in_chans, H, W) -> (B, out_chans, H, W) in (-1, 1).

    Any H, W of at least ``window_size`` are accepted: the input is reflect-padded at the
    bottom / right to multiples of ``window_size`` and the output cropped back.

    Args:
        in_chans: input channels (L, hint a, hint b, hint mask).
        out_chans: output channels (normalised a, b).
        embed_dim: width C of the whole body.
        depths: Swin layers of each RSTB (one entry per RSTB).
        num_heads: heads of each RSTB (same length as ``depths``).
        window_size: side S of the attention windows.
        mlp_ratio: MLP hidden width over C (SwinIR uses 2).
        qkv_bias: bias on the q, k, v projections.
        drop_rate: dropout after projections.
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth, rising linearly to this over all layers.
        patch_norm: LayerNorm after the shallow conv (SwinIR's patch embedding norm).
    """

    def __init__(self, in_chans: int = 4, out_chans: int = 2, embed_dim: int = 16,
                 depths: Sequence[int] = (4, 4), num_heads: Sequence[int] = (2, 2), window_size: int = 8,
                 mlp_ratio: float = 2.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0, patch_norm: bool = True) -> None:
        super().__init__()
        if len(depths) != len(num_heads) or not depths:
            raise ValueError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} must be non-empty "
                             f"and of the same length (one entry per RSTB)")
        if window_size < 2:
            raise ValueError(f"window_size must be at least 2, got {window_size}")
        self.in_chans = in_chans
        self.out_chans = out_chans
        self.embed_dim = embed_dim
        self.window_size = window_size
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, padding=1)
        self.patch_norm = nn.LayerNorm(embed_dim) if patch_norm else nn.Identity()
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList(
            RSTB(embed_dim, depth, heads, window_size, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate,
                 rates[start:start + depth])
            for depth, heads, start in zip(depths, num_heads, starts))
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
        self.conv_last = nn.Conv2d(embed_dim, out_chans, 3, padding=1)
        self.apply(init_transformer_weights)

    def forward_features(self, x: Tensor) -> Tensor:
        """Deep features: (B, C, H, W) shallow features -> (B, C, H, W), H and W multiples of S."""
        H, W = x.shape[-2:]
        y = self.pos_drop(self.patch_norm(x.permute(0, 2, 3, 1)))  # (B, H, W, C)
        # every shifted layer rolls by S // 2 along each axis with more than one window
        shift = (self.window_size // 2 if H > self.window_size else 0,
                 self.window_size // 2 if W > self.window_size else 0)
        mask = None
        if shift != (0, 0):
            # converted once, shared by every shifted layer
            mask = additive_mask(shifted_window_mask(H, W, self.window_size, shift).to(x.device), x.dtype)
        for layer in self.layers:
            y = layer(y, mask)
        return self.norm(y).permute(0, 3, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, in_chans, H, W) -> (B, out_chans, H, W), tanh-bounded."""
        check_image(x, self.in_chans, self.window_size, "SwinIR")
        H, W = x.shape[-2:]
        shallow = self.conv_first(pad_to_multiple(x, self.window_size))
        deep = self.conv_after_body(self.forward_features(shallow)) + shallow
        return torch.tanh(self.conv_last(deep)[..., :H, :W])


def swinir_s(**kwargs) -> SwinIR:
    """SwinIR-S colorizer: C=16, two RSTBs of 4 Swin layers with 2 heads, 7x7 windows, MLP ratio 2.

    1.96 GFLOPs at 224 px (AdaColViT's figure for SwinIR-S, matched within 5%). ``kwargs``
    override any ``SwinIR`` argument.
    """
    options = dict(embed_dim=16, depths=(4, 4), num_heads=(2, 2), window_size=7, mlp_ratio=2.0)
    return SwinIR(**{**options, **kwargs})


def swinir_t(**kwargs) -> SwinIR:
    """SwinIR-T colorizer: as SwinIR-S with one RSTB of 4 layers (half the Swin layers).

    ``kwargs`` override any ``SwinIR`` argument.
    """
    options = dict(embed_dim=16, depths=(4,), num_heads=(2,), window_size=7, mlp_ratio=2.0)
    return SwinIR(**{**options, **kwargs})
