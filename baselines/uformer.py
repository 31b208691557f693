"""Uformer (Wang et al., CVPR 2022) used as a user-guided colorizer.

    >>> model = uformer_s()                      # 4 input channels: L, hint a, hint b, hint mask
    >>> ab = model(torch.zeros(1, 4, 224, 224))  # (1, 2, 224, 224), normalised ab in (-1, 1)

A U-shaped transformer: input projection (3x3 conv, LeakyReLU) -> K encoder stages of LeWin
blocks, each followed by a 4x4 stride-2 conv that halves the resolution and doubles the width
-> a bottleneck stage -> K decoder stages, each after a 2x2 stride-2 transposed conv that
doubles the resolution and halves the width, concatenated with the encoder's skip -> output
projection (3x3 conv) -> tanh. A LeWin block is window self-attention with a relative
position bias (non-overlapping windows) and a LeFF (linear, depthwise 3x3 conv, linear).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from timm.layers import DropPath
from torch import Tensor, nn

from adaprune_baselines.swinir import (WindowAttention, additive_mask, check_image, init_transformer_weights, pad_to_multiple,
                              window_partition, window_reverse)

__all__ = [
    "padded_window_mask",
    "LeFF",
    "LeWinBlock",
    "LeWinStage",
    "Uformer",
    "uformer_s",
    "uformer_t",
]


def padded_window_mask(height: int, width: int, window_size: int) -> Optional[Tensor]:
    """Keys a window may attend to when an H x W map is zero-padded to multiples of S.

    Args:
        height: H before padding.
        width: W before padding.
        window_size: S.

    Returns:
        (nW, S*S, S*S) bool over the padded map's windows, True where the key (column) is a
        real token; None when H and W are multiples of S (nothing padded).
    """
    pad_h, pad_w = -height % window_size, -width % window_size
    if not (pad_h or pad_w):
        return None
    real = torch.zeros(1, height + pad_h, width + pad_w, 1, dtype=torch.bool)
    real[:, :height, :width] = True
    real = window_partition(real, window_size)[0, :, :, 0]  # (nW, S*S)
    return real[:, None, :].expand(-1, window_size ** 2, -1)


class LeFF(nn.Module):
    """Locally-enhanced feed-forward: linear + GELU, depthwise 3x3 conv + GELU, linear.

    Args:
        dim: channels C.
        hidden_dim: hidden channels (C times the MLP ratio).
        drop: dropout after each linear.
    """

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.act = nn.GELU()
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, H, W, C) -> (B, H, W, C)."""
        y = self.drop(self.act(self.fc1(x)))
        y = self.act(self.dwconv(y.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
        return self.drop(self.fc2(y))


class LeWinBlock(nn.Module):
    """Locally-enhanced window transformer block: window attention then LeFF, pre-norm residuals.

    A map whose sides are not multiples of S is zero-padded for the attention, the padded
    tokens masked out as keys, and the result cropped back.

    Args:
        dim: channels C.
        num_heads: attention heads.
        window_size: side S of the windows.
        mlp_ratio: LeFF hidden width over C (Uformer uses 4).
        qkv_bias: bias on the q, k, v projection.
        drop: dropout after the projections.
        attn_drop: dropout on the attention weights.
        drop_path: stochastic depth rate.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int = 8, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.leff = LeFF(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """x: (B, H, W, C) -> (B, H, W, C); ``mask`` is ``padded_window_mask(H, W, S)`` (computed
        here when the sides are not multiples of S and it is not given)."""
        B, H, W, C = x.shape
        S = self.window_size
        pad_h, pad_w = -H % S, -W % S
        y = self.norm1(x)
        if pad_h or pad_w:
            y = nn.functional.pad(y, (0, 0, 0, pad_w, 0, pad_h))
            if mask is None:
                mask = padded_window_mask(H, W, S).to(x.device)
        y = self.attn(window_partition(y, S), mask)
        y = window_reverse(y, S, H + pad_h, W + pad_w)[:, :H, :W]
        x = x + self.drop_path(y)
        return x + self.drop_path(self.leff(self.norm2(x)))


class LeWinStage(nn.Module):
    """A stack of LeWin blocks at one resolution and width; they share one padding mask.

    Args:
        dim: channels C.
        depth: blocks.
        num_heads: heads of each block.
        window_size: side S of the windows.
        mlp_ratio: LeFF hidden width over C.
        qkv_bias: bias on the q, k, v projections.
        drop: dropout after the projections.
        attn_drop: dropout on the attention weights.
        drop_path: stochastic depth rate of each block.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int = 8, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: Sequence[float] = ()) -> None:
        super().__init__()
        rates = list(drop_path) or [0.0] * depth
        self.window_size = window_size
        self.blocks = nn.ModuleList(
            LeWinBlock(dim, num_heads, window_size, mlp_ratio, qkv_bias, drop, attn_drop, rates[i])
            for i in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> (B, C, H, W)."""
        H, W = x.shape[-2:]
        mask = padded_window_mask(H, W, self.window_size)
        if mask is not None:  # converted once, shared by the stage's blocks
            mask = additive_mask(mask.to(x.device), x.dtype)
        y = x.permute(0, 2, 3, 1)
        for block in self.blocks:
            y = block(y, mask)
        return y.permute(0, 3, 1, 2)


class Uformer(nn.Module):
    """Uformer for colorization: (B, in_chans, H, W) -> (B, out_chans, H, W) in (-1, 1).

    With K = ``len(depths) // 2`` encoder stages the input is reflect-padded at the bottom /
    right to multiples of 2^K (any H, W >= 2^K accepted) and the output cropped back. A stage
    whose map is not a multiple of the window is padded inside its attention (see ``LeWinBlock``).

    Args:
        in_chans: input channels (L, hint a, hint b, hint mask).
        out_chans: output channels (normalised a, b).
        embed_dim: width C of the first encoder stage; stage k of the encoder has C * 2^k, the
            bottleneck C * 2^K, and decoder stage k (after concatenation) C * 2^(K-k+1).
        depths: LeWin blocks of each stage: K encoder stages, the bottleneck, K decoder stages
            (an odd length 2K + 1).
        num_heads: heads of each stage (same length as ``depths``).
        win_size: side S of the attention windows.
        mlp_ratio: LeFF hidden width over the stage width.
        qkv_bias: bias on the q, k, v projections.
        drop_rate: dropout after projections.
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth, rising linearly over the encoder and bottleneck blocks;
            the decoder mirrors the encoder's rates (as in Uformer).
    """

    def __init__(self, in_chans: int = 4, out_chans: int = 2, embed_dim: int = 8,
                 depths: Sequence[int] = (2, 2, 2, 2, 2, 2, 2, 2, 2),
                 num_heads: Sequence[int] = (1, 2, 4, 8, 16, 16, 8, 4, 2), win_size: int = 8,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if len(depths) % 2 == 0 or len(depths) != len(num_heads):
            raise ValueError(f"depths {tuple(depths)} must have an odd length 2K + 1 (K encoder stages, the "
                             f"bottleneck, K decoder stages) and num_heads {tuple(num_heads)} the same length")
        if win_size < 2:
            raise ValueError(f"win_size must be at least 2, got {win_size}")
        K = len(depths) // 2
        self.in_chans = in_chans
        self.out_chans = out_chans
        self.embed_dim = embed_dim
        self.win_size = win_size
        self.num_levels = K
        encoder_rates = torch.linspace(0, drop_path_rate, sum(depths[:K + 1])).tolist()
        starts = [sum(depths[:k]) for k in range(K + 1)]

        def stage(k: int, dim: int, rates: Sequence[float]) -> LeWinStage:
            return LeWinStage(dim, depths[k], num_heads[k], win_size, mlp_ratio, qkv_bias, drop_rate,
                              attn_drop_rate, rates)

        self.input_proj = nn.Sequential(nn.Conv2d(in_chans, embed_dim, 3, padding=1), nn.LeakyReLU(inplace=True))
        self.encoders = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        for k in range(K):
            dim = embed_dim * 2 ** k
            self.encoders.append(stage(k, dim, encoder_rates[starts[k]:starts[k] + depths[k]]))
            self.downsamples.append(nn.Conv2d(dim, 2 * dim, 4, stride=2, padding=1))
        self.bottleneck = stage(K, embed_dim * 2 ** K, encoder_rates[starts[K]:starts[K] + depths[K]])
        self.upsamples = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in range(K):
            level = K - 1 - i  # the encoder level this decoder stage mirrors
            in_dim = embed_dim * 2 ** (K - i) if i == 0 else embed_dim * 2 ** (level + 2)
            self.upsamples.append(nn.ConvTranspose2d(in_dim, embed_dim * 2 ** level, 2, stride=2))
            mirrored = encoder_rates[starts[level]:starts[level] + depths[level]]
            rates = (mirrored + [mirrored[-1]] * depths[K + 1 + i])[:depths[K + 1 + i]] if mirrored else []
            self.decoders.append(stage(K + 1 + i, embed_dim * 2 ** (level + 1), rates))
        self.output_proj = nn.Conv2d(2 * embed_dim, out_chans, 3, padding=1)
        self.apply(init_transformer_weights)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, in_chans, H, W) -> (B, out_chans, H, W), tanh-bounded."""
        multiple = 2 ** self.num_levels
        check_image(x, self.in_chans, multiple, "Uformer")
        H, W = x.shape[-2:]
        y = self.input_proj(pad_to_multiple(x, multiple))
        skips = []
        for encoder, down in zip(self.encoders, self.downsamples):
            y = encoder(y)
            skips.append(y)
            y = down(y)
        y = self.bottleneck(y)
        for up, decoder, skip in zip(self.upsamples, self.decoders, reversed(skips)):
            y = decoder(torch.cat([up(y), skip], dim=1))
        return torch.tanh(self.output_proj(y)[..., :H, :W])


def uformer_s(**kwargs) -> Uformer:
    """Uformer-S colorizer: C=8, 2 LeWin blocks in each of the 9 stages, 7x7 windows, LeFF ratio 4.

    2.46 GFLOPs at 224 px (AdaColViT's figure for Uformer-S, matched within 5%); 7x7 windows
    tile every level of a 224 px input (224, 112, 56, 28, 14) without padding.

    ``kwargs`` override any ``Uformer`` argument.
    """
    return Uformer(**{**dict(embed_dim=8, depths=(2,) * 9, num_heads=(1, 2, 4, 8, 16, 16, 8, 4, 2),
                             win_size=7, mlp_ratio=4.0), **kwargs})


def uformer_t(**kwargs) -> Uformer:
    """Uformer-T colorizer: as Uformer-S with 1 LeWin block per stage (about half the FLOPs).

    ``kwargs`` override any ``Uformer`` argument.
    """
    return Uformer(**{**dict(embed_dim=8, depths=(1,) * 9, num_heads=(1, 2, 4, 8, 16, 16, 8, 4, 2),
                             win_size=7, mlp_ratio=4.0), **kwargs})
