"""Image-quality metrics of colorizations, per image: PSNR, the seam ratio, chroma.

iColoriT reports PSNR computed per image on RGB and then averaged over the test set; this
module returns the per-image values, and the caller takes the mean.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["MIN_RELATIVE_MSE", "SEAM_EPS", "psnr", "seam_ratio", "chroma"]

MIN_RELATIVE_MSE = 1e-10  # floor of MSE / max_value^2: identical images score 100 dB, not inf
SEAM_EPS = 1e-6           # added to both means of the seam ratio: a flat image scores 1, not 0 / 0


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



def seam_ratio(pred_ab: Tensor, patch_size: int, eps: float = SEAM_EPS) -> Tensor:
    """How much more colour jumps across patch borders than inside patches, per image.

    Neighbours are the horizontal pairs (x, x+1) and vertical pairs (y, y+1) of pixels; a pair
    crosses a border when its two pixels lie in different patches of the ``patch_size`` grid
    (x+1 or y+1 a multiple of ``patch_size``). With ``|d|`` the Euclidean norm of the pair's ab
    difference, and each mean taken over the pairs of both directions together::

        seam_ratio = (mean |d| across borders + eps) / (mean |d| inside patches + eps)

    About 1 for a natural or smooth image (a border is a place like any other), large for a
    blocky one (colour constant per patch, jumping at its borders). ``eps`` (in ``pred_ab``'s
    units, 1e-6: far below any visible change) keeps a flat image finite: it scores exactly 1
    (no seams), and an image constant inside each patch scores large but finite.

    Args:
        pred_ab: (B, 2, H, W) ab, any units (normalised or Lab: the ratio is unit-free), H and
            W multiples of ``patch_size``.
        patch_size: the side P of the square patches, >= 2 (a patch needs pairs inside it).
        eps: added to both means.

    Returns:
        (B,) the ratios, float32 for half or integer inputs, else the input's dtype.

    Raises:
        ValueError: not (B, 2, H, W), a patch size below 2, or H, W not multiples of it with at
            least two patches.
    """
    if not isinstance(pred_ab, Tensor) or pred_ab.ndim != 4 or pred_ab.shape[1] != 2:
        shape = tuple(pred_ab.shape) if isinstance(pred_ab, Tensor) else type(pred_ab).__name__
        raise ValueError(f"pred_ab must be ab of shape (B, 2, H, W), got {shape}")
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 2:
        raise ValueError(f"patch_size must be an integer >= 2 (pixels per patch side), got {patch_size!r}")
    height, width = pred_ab.shape[-2:]
    if height % patch_size or width % patch_size or height * width <= patch_size * patch_size:
        raise ValueError(f"pred_ab's H and W must be multiples of patch_size {patch_size} with two patches or "
                         f"more, got {height}x{width}")
    ab = pred_ab if pred_ab.dtype in (torch.float32, torch.float64) else pred_ab.float()
    across, inside = [], []
    for dim, size in ((-1, width), (-2, height)):  # horizontal pairs, then vertical
        step = (ab.narrow(dim, 1, size - 1) - ab.narrow(dim, 0, size - 1)).norm(dim=1)  # (B, H', W')
        border = torch.arange(1, size, device=ab.device) % patch_size == 0  # pair (i-1, i) crosses at i
        across.append(step.index_select(dim, border.nonzero().flatten()).flatten(1))
        inside.append(step.index_select(dim, (~border).nonzero().flatten()).flatten(1))
    mean_across = torch.cat(across, dim=1).mean(dim=1)
    mean_inside = torch.cat(inside, dim=1).mean(dim=1)
    return (mean_across + eps) / (mean_inside + eps)


def chroma(ab: Tensor) -> Tensor:
    """Mean chroma of each image: the mean over pixels of sqrt(a^2 + b^2).

    Args:
        ab: (B, 2, H, W) ab in Lab units (multiply normalised ab by ``color.AB_SCALE``).

    Returns:
        (B,) in the units of ``ab``; 0 for a grey image.
    """
    if not isinstance(ab, Tensor) or ab.ndim != 4 or ab.shape[1] != 2:
        shape = tuple(ab.shape) if isinstance(ab, Tensor) else type(ab).__name__
        raise ValueError(f"ab must be of shape (B, 2, H, W), got {shape}")
    ab = ab if ab.dtype in (torch.float32, torch.float64) else ab.float()
    return ab.norm(dim=1).mean(dim=(1, 2))
