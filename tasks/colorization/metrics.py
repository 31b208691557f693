"""Image-quality metrics of colorizations: PSNR per image.

iColoriT reports PSNR computed per image on RGB and then averaged over the test set; this
module returns the per-image values, and the caller takes the mean.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["MIN_RELATIVE_MSE", "psnr"]

MIN_RELATIVE_MSE = 1e-10  # floor of MSE / max_value^2: identical images score 100 dB, not inf


def psnr(pred: Tensor, target: Tensor, max_value: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio of each image, in dB.

    ``PSNR = 10 log10(max_value^2 / MSE)`` with the MSE over channels and pixels of one image.
    The MSE relative to ``max_value^2`` is floored at 1e-10, so identical images give a finite
    100 dB (whatever ``max_value``) and a batch mean stays finite.

    Args:
        pred: (B, C, H, W) images in [0, max_value] (RGB for the paper's numbers).
        target: (B, C, H, W) ground truth, same shape.
        max_value: the largest possible pixel value (1.0 for [0, 1] images, 255 for bytes).

    Returns:
        (B,) PSNR in dB; float32 for half or integer inputs, else the inputs' dtype.

    Raises:
        ValueError: shapes differ or are not 4-D, or ``max_value`` is not positive.
    """
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"pred and target must both be (B, C, H, W) of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    if not max_value > 0:
        raise ValueError(f"max_value must be > 0, got {max_value!r}")
    dtype = torch.promote_types(pred.dtype, target.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32  # half precision loses the small squared errors of good images
    error = pred.to(dtype) - target.to(dtype)
    relative_mse = error.square().mean(dim=(1, 2, 3)) / (max_value * max_value)
    return -10.0 * torch.log10(relative_mse.clamp(min=MIN_RELATIVE_MSE))

