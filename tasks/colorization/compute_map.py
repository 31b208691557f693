"""Where one forward spent its compute: per patch and per block, from the model's record.

The gates of an adaptive colorizer decide, per photo, which patch tokens run each sub-layer at
full width and which attention / FFN sub-layers of a block run at all. A :class:`ComputeMap` is
that decision of one image laid out for people: the fraction of sub-layers each patch ran at
full width (a map over the patch grid) and, per block, whether its attention and FFN ran.

    >>> result = colorize(model, rgb, hints)          # one forward of the model
    >>> where = model_compute_map(model)              # what that forward decided
    >>> where.full_width.shape, where.skipped()[:2]   # (rows, cols), [[], ["ffn"]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import Tensor

import adaprune
from adaprune import Record

__all__ = ["SUBLAYERS", "ComputeMap", "from_record", "from_decisions", "dense_compute_map", "token_compute_map",
           "model_compute_map", "render_compute_map"]

SUBLAYERS = ("attention", "ffn")  # the order of a block's two sub-layers in a record


@dataclass(frozen=True)
class ComputeMap:
    """The compute decisions of one forward of one image.

    Attributes:
        full_width: (rows, cols) float in [0, 1]: per patch, the fraction of all sub-layers
            (attention and FFN of every block) that ran this patch's token at full width.
            A skipped sub-layer counts as not at full width for every patch.
        ran: (L, 2) bool: whether block l's attention (column 0) and FFN (column 1) ran.
        adaptive: whether gates made these decisions (False: a dense model, all at full width).
    """

    full_width: Tensor
    ran: Tensor
    adaptive: bool

    def skipped(self) -> list[list[str]]:
        """Per block, the names of its skipped sub-layers (``SUBLAYERS``), e.g. ``[[], ["ffn"]]``."""
        return [[name for name, ran in zip(SUBLAYERS, row) if not ran] for row in self.ran.tolist()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"adaptive", "grid" (rows x cols lists), "blocks": [{"attention": bool,
        "ffn": bool}] (True = ran), "full_width_mean", "full_width_range" [min, max],
        "sublayers_ran"}``."""
        return {
            "adaptive": self.adaptive,
            "grid": [[round(float(v), 4) for v in row] for row in self.full_width.tolist()],
            "blocks": [dict(zip(SUBLAYERS, (bool(v) for v in row))) for row in self.ran.tolist()],
            "full_width_mean": float(self.full_width.mean()) if self.full_width.numel() else 1.0,
            "full_width_range": [float(self.full_width.min()), float(self.full_width.max())],
            "sublayers_ran": float(self.ran.float().mean()) if self.ran.numel() else 1.0,
        }


def from_record(record: Record, index: int = 0) -> ComputeMap:
    """The compute map of image ``index`` of a wrapped ViT's last forward.

    A method without token decisions (``token_masks`` None) runs every token of a sub-layer
    that ran at full width.

    Args:
        record: ``adaprune.last_record(vit)``.
        index: which image of that forward's batch.
    """
    ran = torch.stack([block.layer_keep[index].detach() for block in record.blocks]).cpu() > 0.5  # (L, 2)
    token_map = record.token_map()  # a skipped sub-layer's token masks are all False
    if token_map is not None:
        full_width = token_map[index].detach().cpu().float()
    else:
        full_width = ran.float().mean().expand(*record.grid_size).clone()
    return ComputeMap(full_width=full_width, ran=ran, adaptive=True)


def from_decisions(layer_keep: Tensor, token_keep: Optional[Tensor], grid_size: tuple[int, int]) -> ComputeMap:
    """The compute map of one image from its decisions as an exported graph outputs them:
    ``layer_keep`` (L, 2) bool and ``token_keep`` (L, 2, Np) bool or None (as ``from_record``)."""
    ran = layer_keep.bool().cpu()
    if token_keep is not None:
        full_width = token_keep.float().mean(dim=(0, 1)).reshape(grid_size).cpu()
    else:
        full_width = ran.float().mean().expand(*grid_size).clone()
    return ComputeMap(full_width=full_width, ran=ran, adaptive=True)


def dense_compute_map(grid_size: tuple[int, int], depth: int) -> ComputeMap:
    """Everything at full width: ``depth`` blocks over a ``grid_size`` patch grid."""
    return ComputeMap(full_width=torch.ones(grid_size), ran=torch.ones(depth, 2, dtype=torch.bool), adaptive=False)


def model_compute_map(model: torch.nn.Module) -> ComputeMap:
    """The compute map of the last forward of a colorizer (batch 1).

    Adaptive ViT colorizers: their record; dense ViT colorizers: all at full width over their
    patch grid; image-to-image networks (no patches, no blocks): a 1 x 1 map at full width.

    Raises:
        RuntimeError: an adaptive model that has not run a forward yet.
    """
    if hasattr(model, "decisions"):  # an exported graph on a runtime (adacolor.exported)
        return (from_decisions(*model.decisions(), model.grid_size) if model.adaptive
                else dense_compute_map(model.grid_size, model.depth))
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        return dense_compute_map((1, 1), 0)
    if adaprune.is_wrapped(backbone):
        return from_record(adaprune.last_record(backbone))
    return dense_compute_map(tuple(backbone.patch_embed.grid_size), len(backbone.blocks))


def token_compute_map(model: torch.nn.Module) -> Optional[Tensor]:
    """(rows, cols): per patch, the fraction of sub-layers the last forward (batch 1) of an
    adaptive colorizer ran it at full width; None when its method makes no token decisions."""
    if hasattr(model, "decisions"):
        layer_keep, token_keep = model.decisions()
        return None if token_keep is None else from_decisions(layer_keep, token_keep, model.grid_size).full_width
    token_map = adaprune.last_record(model.backbone).token_map()
    return None if token_map is None else token_map[0]


# magma at 0, 1/4, 1/2, 3/4, 1 (matplotlib's values), interpolated linearly: dark = little compute
_MAGMA = np.array([[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]], dtype=np.float64)


def render_compute_map(where: Union[ComputeMap, Tensor], size: tuple[int, int],
                       value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """The per-patch map as an RGB picture over an image of ``size``, one flat tile per patch.

    The model sees the photo squashed to its square input, so its patch grid is stretched over
    the photo the same way: tile (r, c) covers rows ``r*H/rows .. (r+1)*H/rows``.

    Args:
        where: a ComputeMap, or its ``full_width`` (rows, cols) in [0, 1].
        size: (H, W) of the picture.
        value_range: the values drawn darkest and brightest (default 0 and 1; a map's own
            minimum and maximum show small differences between patches). Equal ends: mid-scale.

    Returns:
        (H, W, 3) uint8, magma colours (black: ``value_range[0]`` or less, pale yellow:
        ``value_range[1]`` or more).
    """
    values = (where.full_width if isinstance(where, ComputeMap) else where).detach().cpu().double().numpy()
    low_value, high_value = value_range
    if high_value > low_value:
        values = (values - low_value) / (high_value - low_value)
    else:
        values = np.full_like(values, 0.5)
    rows, cols = values.shape
    height, width = size
    row_of = np.minimum(np.arange(height) * rows // height, rows - 1)
    col_of = np.minimum(np.arange(width) * cols // width, cols - 1)
    position = np.clip(values, 0.0, 1.0) * (len(_MAGMA) - 1)
    low = np.minimum(np.floor(position).astype(int), len(_MAGMA) - 2)
    t = (position - low)[..., None]
    colours = np.rint(_MAGMA[low] * (1 - t) + _MAGMA[low + 1] * t).astype(np.uint8)  # (rows, cols, 3)
    return colours[row_of[:, None], col_of[None, :]]
