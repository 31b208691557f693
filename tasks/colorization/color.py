"""sRGB <-> CIE Lab in torch: batched, differentiable, dtype and device kept.

The conversion is the standard one (and scikit-image's): sRGB with its gamma curve (a linear
segment near black), the sRGB primaries' matrix to XYZ, and CIE Lab relative to the D65 white
of the 2-degree observer. Colorizers see lightness and predict colour in a normalised form:

    l_norm = (L - 50) / 100      (B, 1, H, W), about [-0.5, 0.5]
    ab_norm = ab / 110           (B, 2, H, W), about [-1, 1]

    >>> l_norm, ab_norm = lab_split(rgb)        # (B, 3, H, W) in [0, 1]
    >>> rgb_again = lab_merge(l_norm, ab_norm)  # (B, 3, H, W) in [0, 1]

Every power and root clamps its argument to the branch where it is used, so gradients stay
finite at black and white pixels (``torch.where`` alone would leak NaN from the other branch).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "L_CENTER",
    "L_SCALE",
    "AB_SCALE",
    "rgb_to_lab",
    "lab_to_rgb",
    "normalize_lab",
    "denormalize_lab",
    "lab_split",
    "lab_merge",
]

L_CENTER = 50.0   # l_norm = (L - L_CENTER) / L_SCALE
L_SCALE = 100.0
AB_SCALE = 110.0  # ab_norm = ab / AB_SCALE; iColoriT's normalisation

# Linear sRGB -> XYZ for the sRGB primaries and D65 (the values scikit-image uses).
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_RGB_FROM_XYZ = tuple(tuple(row) for row in torch.linalg.inv(torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64))
                      .tolist())
_D65_WHITE = (0.95047, 1.0, 1.08883)  # XYZ of the reference white, 2-degree observer

# sRGB transfer curve: linear below these, a 2.4 power above.
_GAMMA_THRESHOLD = 0.04045          # on encoded values
_LINEAR_THRESHOLD = 0.0031308       # on linear values
# CIE Lab's f(t): a cube root above (6/29)^3, a line below that meets it smoothly.
_DELTA = 6.0 / 29.0


def _check_image(x: Tensor, name: str, channels: int, what: str) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, {channels}, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} must be {what} of shape (B, {channels}, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must have a floating-point dtype, got {x.dtype}")


def _working_dtype(x: Tensor) -> torch.dtype:
    """float32 for half types (cube roots and 2.4 powers lose too much in 16 bits), else as given."""
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _mix_channels(matrix: tuple[tuple[float, ...], ...], x: Tensor) -> Tensor:
    """(3, 3) colour matrix applied to each pixel of x (B, 3, H, W)."""
    weights = torch.tensor(matrix, dtype=x.dtype, device=x.device)
    return torch.einsum("ij,bjhw->bihw", weights, x)


def _white(x: Tensor) -> Tensor:
    return torch.tensor(_D65_WHITE, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)


def _srgb_to_linear(c: Tensor) -> Tensor:
    curved = ((c.clamp(min=_GAMMA_THRESHOLD) + 0.055) / 1.055) ** 2.4
    return torch.where(c <= _GAMMA_THRESHOLD, c / 12.92, curved)


def _linear_to_srgb(c: Tensor) -> Tensor:
    curved = 1.055 * c.clamp(min=_LINEAR_THRESHOLD) ** (1.0 / 2.4) - 0.055
    return torch.where(c <= _LINEAR_THRESHOLD, c * 12.92, curved)


def _lab_f(t: Tensor) -> Tensor:
    cube_root = t.clamp(min=_DELTA ** 3) ** (1.0 / 3.0)
    return torch.where(t > _DELTA ** 3, cube_root, t / (3.0 * _DELTA ** 2) + 4.0 / 29.0)


def _lab_f_inverse(f: Tensor) -> Tensor:
    return torch.where(f > _DELTA, f ** 3, 3.0 * _DELTA ** 2 * (f - 4.0 / 29.0))


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """CIE Lab (D65) of sRGB images.

    Args:
        rgb: (B, 3, H, W) sRGB in [0, 1], any floating dtype and device.

    Returns:
        (B, 3, H, W) Lab of the same dtype and device: L in [0, 100], a and b roughly in
        [-110, 110] (sRGB's gamut reaches about a in [-86, 98], b in [-108, 94]).

    Raises:
        ValueError: ``rgb`` is not a floating (B, 3, H, W) tensor.
    """
    _check_image(rgb, "rgb", 3, "an sRGB image batch")
    x = rgb.to(_working_dtype(rgb))
    xyz = _mix_channels(_XYZ_FROM_RGB, _srgb_to_linear(x)) / _white(x)
    fx, fy, fz = _lab_f(xyz).unbind(dim=1)
    lab = torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)
    return lab.to(rgb.dtype)


def lab_to_rgb(lab: Tensor, clamp: bool = True) -> Tensor:
    """sRGB of CIE Lab (D65) images: the inverse of :func:`rgb_to_lab`.

    Args:
        lab: (B, 3, H, W) Lab, L in [0, 100]; any floating dtype and device.
        clamp: clip the result to [0, 1]. Lab colours outside the sRGB gamut (frequent in
            predicted ab) otherwise give values below 0 or above 1.

    Returns:
        (B, 3, H, W) sRGB of the same dtype and device.

    Raises:
        ValueError: ``lab`` is not a floating (B, 3, H, W) tensor.
    """
    _check_image(lab, "lab", 3, "a Lab image batch")
    x = lab.to(_working_dtype(lab))
    light, a, b = x.unbind(dim=1)
    fy = (light + 16.0) / 116.0
    f = torch.stack([fy + a / 500.0, fy, fy - b / 200.0], dim=1)
    xyz = _lab_f_inverse(f) * _white(x)
    rgb = _linear_to_srgb(_mix_channels(_RGB_FROM_XYZ, xyz))
    if clamp:
        rgb = rgb.clamp(0.0, 1.0)
    return rgb.to(lab.dtype)


def normalize_lab(lab: Tensor) -> tuple[Tensor, Tensor]:
    """Lab -> the colorizer's normalised lightness and colour.

    Args:
        lab: (B, 3, H, W) Lab.

    Returns:
        l_norm (B, 1, H, W) = (L - 50) / 100 and ab_norm (B, 2, H, W) = ab / 110.
    """
    _check_image(lab, "lab", 3, "a Lab image batch")
    return (lab[:, :1] - L_CENTER) / L_SCALE, lab[:, 1:] / AB_SCALE


def _check_pair(l_norm: Tensor, ab_norm: Tensor) -> None:
    _check_image(l_norm, "l_norm", 1, "normalised lightness")
    _check_image(ab_norm, "ab_norm", 2, "normalised ab")
    if l_norm.shape[0] != ab_norm.shape[0] or l_norm.shape[2:] != ab_norm.shape[2:]:
        raise ValueError(f"l_norm (B, 1, H, W) and ab_norm (B, 2, H, W) must share B, H and W, got shapes "
                         f"{tuple(l_norm.shape)} and {tuple(ab_norm.shape)}")


def denormalize_lab(l_norm: Tensor, ab_norm: Tensor) -> Tensor:
    """The inverse of :func:`normalize_lab`.

    Args:
        l_norm: (B, 1, H, W) normalised lightness.
        ab_norm: (B, 2, H, W) normalised ab.

    Returns:
        (B, 3, H, W) Lab.

    Raises:
        ValueError: bad shapes, or B, H, W differ between the two.
    """
    _check_pair(l_norm, ab_norm)
    return torch.cat([l_norm * L_SCALE + L_CENTER, ab_norm * AB_SCALE], dim=1)


def lab_split(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """sRGB -> (l_norm (B, 1, H, W), ab_norm (B, 2, H, W)): the model's input and target.

    Args:
        rgb: (B, 3, H, W) sRGB in [0, 1].
    """
    return normalize_lab(rgb_to_lab(rgb))


def lab_merge(l_norm: Tensor, ab_norm: Tensor) -> Tensor:
    """Normalised lightness and ab -> (B, 3, H, W) sRGB clipped to [0, 1].

    Args:
        l_norm: (B, 1, H, W) normalised lightness.
        ab_norm: (B, 2, H, W) normalised ab, at the same size as ``l_norm`` (resize it first).

    Raises:
        ValueError: bad shapes, or B, H, W differ between the two.
    """
    return lab_to_rgb(denormalize_lab(l_norm, ab_norm), clamp=True)
