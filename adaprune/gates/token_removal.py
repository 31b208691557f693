"""Hard token removal over a block's own submodules: the pieces every method that drops
tokens from whole blocks (DynamicViT, A-ViT) runs at inference.

A wrapped block's ``forward`` is its gate's, so a method runs the block's computation through
``block_forward``; ``gathered_block`` computes only the kept tokens, among themselves, and
writes them back at their positions (a removed token keeps its last representation, as dense
prediction needs).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from adaprune.ops import gather_tokens

__all__ = ["block_forward", "gathered_block"]


def block_forward(block: nn.Module, x: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:
    """A timm pre-norm block through its own submodules (``norm1``, ``attn``, ``ls1``,
    ``drop_path1``, ``norm2``, ``mlp``, ``ls2``, ``drop_path2``).

    Args:
        block: a timm ``Block`` (wrapped or not).
        x: (B, N, C) tokens.
        attn_mask: optional mask for ``block.attn``, e.g. (B, 1, 1, N) bool: the keys allowed.
    """
    x = x + block.drop_path1(block.ls1(block.attn(block.norm1(x), attn_mask=attn_mask)))
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))


def gathered_block(block: nn.Module, x: Tensor, index: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """Runs ``block`` on the tokens at ``index`` only and writes them back; the others are
    returned unchanged and are no key or value.

    Args:
        block: a timm ``Block``.
        x: (B, N, C) tokens.
        index: (B, K) positions to compute (``adaprune.ops.kept_index``).
        valid: (B, K) bool, False for padding entries when samples keep different counts
            (padding is no key and is written back unchanged); None: no padding.

    Returns:
        (B, N, C), a new tensor.
    """
    if index.shape[1] == 0:
        return x
    tokens = gather_tokens(x, index)
    if valid is None:
        out = block_forward(block, tokens)
        if x.shape[0] == 1:
            return x[0].index_copy(0, index[0], out[0]).unsqueeze(0)
    else:
        keys = valid | ~valid.any(dim=1, keepdim=True)  # a sample with no real token: any keys, all discarded
        out = torch.where(valid[..., None], block_forward(block, tokens, keys[:, None, None, :]), tokens)
    return x.scatter(1, index[..., None].expand(-1, -1, x.shape[-1]), out)
