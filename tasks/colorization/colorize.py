"""Colorize one image of any size from a few colour hints.

    adacolor colorize photo.jpg --checkpoint runs/tiny/checkpoint.pt --hints hints.json --out out.png
    adacolor colorize photo.jpg --checkpoint runs/tiny/checkpoint.pt --random-hints 10 --out out.png

The model sees the image at its own size (224 px for the paper's models): the photo is resized,
its lightness L and the hints go in, normalised ab comes out. That ab is upsampled to the
photo's size and recombined with the photo's own full-resolution L, so the output has the
input's size and all of its detail (chroma is smooth in natural images; lightness is not).
The upsampling is guided by that L (``upsample="guided"``, the default: colour stops at the
edges the grey photo shows; :mod:`adacolor.upsample`) or plain bilinear (``"bilinear"``).

Large photos stream: the resize and the recombination run in bands of rows, so no full-size
float copy is made besides the result (``colorize``), and ``colorize_file`` holds only 8-bit
pixels (a 5000x4000 photo: 3.6 GB peak before, well under 1 GB now; the guide has figures).

A hint file is JSON: a list of points in the input image's pixel coordinates (or an object
``{"hints": [...]}``). Each point has ``x`` and ``y`` (numbers, pixels); optionally ``size``
(the square's side at the model's size, an integer from 2 to 7, default 2: the paper's users
click 2x2 to 7x7 squares) and one colour, ``rgb`` (three numbers 0-255) or ``ab`` (two numbers,
Lab a and b, each within +-110: the range the model represents, which holds all of sRGB). Any
other key is an error. A point without a colour takes the image's own colour there (useful to
reproduce an evaluation). On a grey photo such points are grey: ``colorize_file`` then issues a
``GreyPhotoWarning`` (the CLI prints it as one line)::

    [{"x": 120, "y": 64, "rgb": [200, 30, 30]}, {"x": 40, "y": 200, "ab": [10.0, 45.0]}, {"x": 5, "y": 9}]
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from adacolor.color import AB_SCALE, lab_merge, lab_split, rgb_to_lab
from adacolor.compute_map import token_compute_map
from adacolor.model import Colorizer
from adacolor.upsample import (UpsampleMethod, apply_coefficients, check_upsample_method, resize_rows,
                               upsample_coefficients)

__all__ = [
    "HINT_KEYS",
    "HINT_SIZE_RANGE",
    "AB_LIMIT",
    "GREY_CHROMA",
    "GreyPhotoWarning",
    "UserHint",
    "is_grey",
    "load_user_hints",
    "parse_user_hints",
    "random_user_hints",
    "render_user_hints",
    "colorize",
    "resize_photo",
    "hints_at_size",
    "predict",
    "photo_lightness",
    "render_prediction",
    "render_photo",
    "load_image",
    "save_image",
    "save_figure",
    "colorize_file",
]

HINT_KEYS = ("x", "y", "size", "rgb", "ab")  # everything a hint point may say
HINT_SIZE_RANGE = (2, 7)                      # side of a hint square at the model's size, inclusive
AB_LIMIT = AB_SCALE                           # |a|, |b| of a hint: the model's ab range (tanh * 110)
BAND_PIXELS = 1 << 20                         # pixels per band of rows when streaming a photo
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".eps", ".ps", ".tif", ".tiff")
_FIGURE_SIDE = 1024                           # the figure's panels show the photo at most this big
# A photo is grey when 99% of its pixels (at the model's size) have a chroma below 3 Lab units
# (a just-noticeable colour difference is about 2.3): 24 of 982 Imagenette val photos, 22 of
# which are exactly grey; a percentile, so a few noisy or coloured pixels do not count.
GREY_CHROMA = 3.0
_GREY_QUANTILE = 0.99


class GreyPhotoWarning(UserWarning):
    """Hints that take the photo's own colour were asked of a photo that has none."""


@dataclass(frozen=True)
class UserHint:
    """One click of a user: a square of colour at a point of the input image.

    Attributes:
        x: column and row of the square's centre, in the input image's pixels.
        y: column and row of the square's centre, in the input image's pixels.
        size: side of the square at the model's resolution, in pixels.
        ab: the colour as Lab (a, b) in Lab units; None takes the image's own colour there.
    """

    x: float
    y: float
    size: int = 2
    ab: Optional[tuple[float, float]] = None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _numbers(value: Any, count: int) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == count and all(_is_number(v) for v in value)


def _hint_from_json(entry: Any, where: str) -> UserHint:
    """One hint point of decoded JSON, checked strictly (module docstring); ValueError naming
    ``where``, the key and what is accepted."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: a hint is an object with 'x' and 'y' (pixels) and optionally 'size', "
                         f"'rgb' or 'ab'; got {entry!r}")
    unknown = [key for key in entry if key not in HINT_KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}; "
                         f"the known keys are {', '.join(HINT_KEYS)}")
    for key in ("x", "y"):
        if key not in entry:
            raise ValueError(f"{where}: '{key}' is missing; a hint needs 'x' and 'y' in the image's pixels")
        if not _is_number(entry[key]):
            raise ValueError(f"{where}: '{key}' must be a number (pixels from the top-left corner), "
                             f"got {entry[key]!r}")
        if entry[key] < 0:
            raise ValueError(f"{where}: '{key}' = {entry[key]!r} is outside the image (pixels count from 0)")
    if "rgb" in entry and "ab" in entry:
        raise ValueError(f"{where}: give one colour, 'rgb' or 'ab', not both")
    ab = None
    if "rgb" in entry:
        rgb = entry["rgb"]
        if not (_numbers(rgb, 3) and all(0 <= c <= 255 for c in rgb)):
            raise ValueError(f"{where}: 'rgb' must be three numbers in 0..255, got {rgb!r}")
        pixel = torch.tensor([float(c) / 255.0 for c in rgb], dtype=torch.float64).view(1, 3, 1, 1)
        lab = rgb_to_lab(pixel).flatten()
        ab = (float(lab[1]), float(lab[2]))
    elif "ab" in entry:
        value = entry["ab"]
        if not (_numbers(value, 2) and all(abs(c) <= AB_LIMIT for c in value)):
            raise ValueError(f"{where}: 'ab' must be two numbers (Lab a and b), each in "
                             f"-{AB_LIMIT:g}..{AB_LIMIT:g}, got {value!r}")
        ab = (float(value[0]), float(value[1]))
    low, high = HINT_SIZE_RANGE
    size = entry.get("size", 2)
    if not (isinstance(size, int) and not isinstance(size, bool) and low <= size <= high):
        raise ValueError(f"{where}: 'size' must be an integer from {low} to {high} (the square's side in "
                         f"pixels at the model's size), got {size!r}")
    return UserHint(float(entry["x"]), float(entry["y"]), size, ab)


def load_user_hints(path: Union[str, Path]) -> list[UserHint]:
    """Hints from a JSON file (see the module docstring for the format)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no hint file at {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON: {error}") from None
    return parse_user_hints(data, str(path))


def parse_user_hints(data: Any, where: str = "hints") -> list[UserHint]:
    """Hints from decoded JSON: a list of points or ``{"hints": [...]}`` (module docstring).

    Args:
        data: the decoded JSON value.
        where: what to name in error messages (a file, a request).

    Raises:
        ValueError: naming ``where`` and the bad hint, and what is accepted.
    """
    if isinstance(data, dict):
        data = data.get("hints")
    if not isinstance(data, list):
        raise ValueError(f"{where}: expected a list of hints or {{\"hints\": [...]}}")
    return [_hint_from_json(entry, f"{where} hint {i}") for i, entry in enumerate(data)]


def random_user_hints(height: int, width: int, count: int, size: int = 2, seed: int = 0) -> list[UserHint]:
    """``count`` hints at uniform positions of an image, coloured by the image itself (so grey on a
    grey photo: see ``is_grey``)."""
    if count < 0:
        raise ValueError(f"the number of random hints must be >= 0, got {count}")
    generator = torch.Generator().manual_seed(seed)
    ys = torch.rand(count, generator=generator, dtype=torch.float64) * height
    xs = torch.rand(count, generator=generator, dtype=torch.float64) * width
    return [UserHint(float(x), float(y), size) for x, y in zip(xs, ys)]


def is_grey(ab_norm: Tensor) -> bool:
    """Whether an image has no colour: 99% of its pixels have a chroma below ``GREY_CHROMA``.

    Args:
        ab_norm: (1, 2, H, W) its normalised ab (any size; the model's is enough).
    """
    chroma = (ab_norm.float() * AB_SCALE).norm(dim=1).flatten()
    return bool(chroma.numel() == 0 or torch.quantile(chroma, _GREY_QUANTILE) < GREY_CHROMA)


def _check_inside(hints: Sequence[UserHint], image_hw: tuple[int, int]) -> None:
    height, width = image_hw
    for hint in hints:
        if not (0 <= hint.x < width and 0 <= hint.y < height):
            raise ValueError(f"hint at (x={hint.x:g}, y={hint.y:g}) is outside the {width}x{height} image "
                             f"(x in 0..{width - 1}, y in 0..{height - 1})")


def render_user_hints(hints: Sequence[UserHint], image_hw: tuple[int, int], ab_norm: Tensor
                      ) -> tuple[Tensor, Tensor]:
    """Hint channels at the model's size for hints given in the input image's coordinates.

    Args:
        hints: the user's points.
        image_hw: (H, W) of the input image, whose coordinates the hints use.
        ab_norm: (1, 2, S, S') the image's own normalised ab at the model's size: the colour of
            hints that carry none (mean over the square).

    Returns:
        hint_ab (1, 2, S, S') normalised and hint_mask (1, 1, S, S').

    Raises:
        ValueError: a hint outside the image.
    """
    _check_inside(hints, image_hw)
    _, _, rows, cols = ab_norm.shape
    height, width = image_hw
    hint_ab, hint_mask = torch.zeros_like(ab_norm), torch.zeros_like(ab_norm[:, :1])
    for hint in hints:
        s = min(hint.size, rows, cols)
        top = min(max(0, math.floor(hint.y * rows / height) - (s - 1) // 2), rows - s)
        left = min(max(0, math.floor(hint.x * cols / width) - (s - 1) // 2), cols - s)
        if hint.ab is None:
            colour = ab_norm[:, :, top:top + s, left:left + s].mean(dim=(2, 3), keepdim=True)
        else:
            colour = torch.tensor(hint.ab, dtype=ab_norm.dtype).view(1, 2, 1, 1) / AB_SCALE
        hint_ab[:, :, top:top + s, left:left + s] = colour
        hint_mask[:, :, top:top + s, left:left + s] = 1.0
    return hint_ab, hint_mask


# -- streaming a photo in bands of rows --------------------------------------------------------

def _bands(height: int, width: int) -> list[tuple[int, int]]:
    """(first, end) rows of the bands a photo is processed in, about BAND_PIXELS each."""
    rows = max(1, BAND_PIXELS // max(1, width))
    return [(top, min(top + rows, height)) for top in range(0, height, rows)]


def _band(rgb: Tensor, top: int, end: int) -> Tensor:
    """(1, 3, end - top, W) float in [0, 1] of an RGB image held as float or as uint8."""
    band = rgb[:, top:end].contiguous()  # one memory layout, whatever the photo's: the same sums
    return (band.float() / 255.0 if band.dtype == torch.uint8 else band)[None]


def _shrink(rgb: Tensor, size: tuple[int, int], step: Callable[[], object]) -> Tensor:
    """(1, 3, h, w): the photo resized to ``size`` with antialiasing, band by band.

    The resize is separable: each band is resized across (to w columns) as it is read, the
    narrow bands are stacked, and that (3, H, w) image is resized down (to h rows); so only
    one full-width band is ever held as float. ``step`` is called after each band.
    """
    height, width = rgb.shape[-2:]
    narrow = []
    for top, end in _bands(height, width):
        band = _band(rgb, top, end)
        narrow.append(F.interpolate(band, size=(end - top, size[1]), mode="bilinear", antialias=True,
                                    align_corners=False))
        step()
    tall = torch.cat(narrow, dim=2)
    return F.interpolate(tall, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0.0, 1.0)


def _predict(model: Colorizer, rgb: Tensor, hints: Sequence[UserHint], step: Callable[[], object],
             upsample: UpsampleMethod = "guided") -> dict[str, Any]:
    """The model's forward at its own size: ``{"coefficients": (1, 4, h, w) of the upsampling
    (``upsample_coefficients``), "photo_ab": (1, 2, h, w) the photo's own normalised ab, "gflops",
    "compute_map", "hint_mask"}`` (the last three as ``colorize`` returns them)."""
    height, width = rgb.shape[-2:]
    _check_inside(hints, (height, width))
    l_small, ab_small = lab_split(_shrink(rgb, model.image_size, step))
    hint_ab, hint_mask = render_user_hints(hints, (height, width), ab_small)
    pred_ab = model(torch.cat([l_small, hint_ab, hint_mask], dim=1))
    compute_map = None
    if model.adaptive:
        compute_map = token_compute_map(model)
    # the guide at the model's size is the lightness the model saw (the photo resized, then L:
    # 0.01 dB above L resized, in the tuning of adacolor.upsample)
    return {"coefficients": upsample_coefficients(pred_ab, l_small, upsample), "photo_ab": ab_small,
            "gflops": float(model_gflops(model)), "compute_map": compute_map, "hint_mask": hint_mask[0, 0]}


def _recombine(rgb: Tensor, coefficients: Tensor, step: Callable[[], object]
               ) -> Iterator[tuple[int, int, Tensor, Tensor]]:
    """The photo's own lightness with the predicted colour, band by band.

    Yields ``(top, end, colour, gray)``: (3, rows, W) the colorized band and (1, rows, W) its
    lightness alone as grey, in [0, 1]. The coefficients ``[A; b]`` (1, 4, h, w) of
    ``upsample_coefficients`` are upsampled bilinearly, across once (they are small) and down
    per band (the same values as one ``F.interpolate`` to the full size), and applied to the
    band's own lightness: ab = A * L + b.
    """
    height, width = rgb.shape[-2:]
    wide = F.interpolate(coefficients, size=(coefficients.shape[-2], width), mode="bilinear", align_corners=False)
    for top, end in _bands(height, width):
        light, _ = lab_split(_band(rgb, top, end))
        ab = apply_coefficients(resize_rows(wide, height, top, end), light)
        yield top, end, lab_merge(light, ab)[0], lab_merge(light, torch.zeros_like(ab))[0, 1:2]
        step()


def _progress(rgb: Tensor, show: bool) -> tqdm:
    """A bar over both passes of a photo; drawn only when ``show``, stderr is a terminal and the
    photo takes more than a moment."""
    return tqdm(total=2 * len(_bands(*rgb.shape[-2:])), desc="colorize", unit="band", delay=0.5,
                disable=None if show else True, dynamic_ncols=True, leave=False)


@torch.no_grad()
def colorize(model: Colorizer, rgb: Tensor, hints: Sequence[UserHint], upsample: UpsampleMethod = "guided"
             ) -> dict[str, Any]:
    """Colorizes one image at its own size.

    Args:
        model: a colorizer (put in eval mode here).
        rgb: (3, H, W) in [0, 1], any size; only its lightness is used, plus its colour where a
            hint carries none.
        hints: the user's points in the image's coordinates.
        upsample: how the model's ab reaches the photo's size: ``guided`` by the photo's own
            lightness (colour stops at its edges) or ``bilinear``.

    Returns:
        ``{"rgb": (3, H, W) colorized, "gray": (3, H, W) the input's lightness, "gflops": float,
        "compute_map": (rows, cols) fraction of sub-layers each patch ran at full width, or
        None for a dense model, "hint_mask": (S, S) where the hints went at the model's size}``.
        ``gray`` is one channel expanded to three (R = G = B), so it costs a third of a copy;
        treat it as read-only.

    Raises:
        ValueError: not a (3, H, W) image, a hint outside it, or an unknown ``upsample``.
    """
    check_upsample_method(upsample)
    if rgb.ndim != 3 or rgb.shape[0] != 3 or not rgb.is_floating_point():
        raise ValueError(f"expected an RGB image (3, H, W) of floats in [0, 1], got shape {tuple(rgb.shape)} "
                         f"of {rgb.dtype}")
    model.eval()
    height, width = rgb.shape[-2:]
    prediction = _predict(model, rgb, hints, lambda: None, upsample)
    prediction.pop("photo_ab")
    out = torch.empty(3, height, width, dtype=rgb.dtype)
    gray = torch.empty(1, height, width, dtype=rgb.dtype)
    for top, end, colour, grey in _recombine(rgb, prediction.pop("coefficients"), lambda: None):
        out[:, top:end] = colour
        gray[:, top:end] = grey
    return {"rgb": out, "gray": gray.expand(3, height, width), **prediction}


def model_gflops(model: Colorizer) -> float:
    """GFLOPs of the model's last forward (batch 1)."""
    from adacolor.model import colorizer_gflops

    return float(colorizer_gflops(model, 1)[0])


# -- a prediction kept and rendered at any size (the app: previews per click, full size once) ----

def resize_photo(rgb: Tensor, size: tuple[int, int]) -> Tensor:
    """(3, h, w) float in [0, 1]: a photo resized to ``size`` as ``colorize`` resizes it for the
    model (bilinear with antialiasing, band by band: an 8-bit photo never has a full-size float
    copy). At the model's size this is exactly the image the model sees, and resizing that
    again to the same size changes nothing.

    Args:
        rgb: (3, H, W) uint8, or float in [0, 1].
        size: (h, w).
    """
    return _shrink(rgb, size, lambda: None)[0]


def hints_at_size(hints: Sequence[UserHint], image_hw: tuple[int, int], size: tuple[int, int]
                  ) -> list[UserHint]:
    """The hints of a photo in the pixels of that photo resized to ``size`` (the model's).

    Each point moves to the centre of the pixel (at ``size``) its square is centred on, so
    ``render_user_hints`` draws every square on the resized photo exactly where it draws it for
    the photo itself.

    Raises:
        ValueError: a hint outside the photo (named with the photo's size).
    """
    _check_inside(hints, image_hw)
    (height, width), (rows, cols) = image_hw, size
    return [UserHint(math.floor(h.x * cols / width) + 0.5, math.floor(h.y * rows / height) + 0.5, h.size, h.ab)
            for h in hints]


@torch.no_grad()
def predict(model: Colorizer, small: Tensor, image_hw: tuple[int, int], hints: Sequence[UserHint],
            upsample: UpsampleMethod = "guided") -> dict[str, Any]:
    """The model's forward for a photo, from the photo already at the model's size.

    The same prediction ``colorize`` makes for the photo (``small`` is what it would compute
    first), without reading the photo's pixels again: an app keeps ``small`` per photo and
    predicts per click, then renders at the size it shows (``render_prediction``) or at full
    size (``render_photo``).

    Args:
        model: a colorizer (put in eval mode here if it is training).
        small: (3, h, w) ``resize_photo(photo, model.image_size)``.
        image_hw: (H, W) of the photo, whose pixels the hints are given in.
        hints: the user's points in the photo's coordinates.
        upsample: ``guided`` or ``bilinear`` (see ``colorize``).

    Returns:
        ``{"coefficients": (1, 4, h, w) of ``upsample_coefficients``, "photo_ab", "gflops",
        "compute_map", "hint_mask"}`` (the last three as ``colorize`` returns them).

    Raises:
        ValueError: ``small`` not at the model's size, a hint outside the photo, or an unknown
            ``upsample``.
    """
    check_upsample_method(upsample)
    size = tuple(model.image_size)
    if small.ndim != 3 or small.shape[0] != 3 or tuple(small.shape[-2:]) != size:
        raise ValueError(f"expected the photo at the model's size (3, {size[0]}, {size[1]}) "
                         f"(resize_photo(photo, model.image_size)), got shape {tuple(small.shape)}")
    if getattr(model, "training", False):  # eval() walks every module: not per click when it is not needed
        model.eval()
    return _predict(model, small, hints_at_size(hints, image_hw, size), lambda: None, upsample)


def photo_lightness(rgb: Tensor, size: tuple[int, int]) -> Tensor:
    """(1, 1, h, w) normalised lightness of a photo resized to ``size`` (``resize_photo``, then
    L; band by band): the lightness a prediction is shown on at that size.

    Args:
        rgb: (3, H, W) uint8, or float in [0, 1]; at its own size, the L ``colorize`` uses.
        size: (h, w).
    """
    small = resize_photo(rgb, size)
    light = torch.empty(1, 1, *size, dtype=small.dtype)
    for top, end in _bands(*size):
        light[:, :, top:end] = lab_split(small[None, :, top:end])[0]
    return light


def render_prediction(coefficients: Tensor, light: Tensor) -> Tensor:
    """(3, h, w) in [0, 1]: a prediction's colour on a lightness of any size, as ``colorize``
    recombines it with the photo's own: the coefficients upsampled bilinearly to the
    lightness' size, ``ab = A * L + b`` (edge-aware when guided: colour follows the edges of
    ``light``), then Lab to RGB, band by band. On the photo's own lightness at its own size
    this is ``colorize``'s result.

    Args:
        coefficients: (1, 4, h0, w0) ``[A; b]`` of a prediction (``predict``).
        light: (1, 1, h, w) normalised lightness (``photo_lightness``).
    """
    height, width = light.shape[-2:]
    wide = F.interpolate(coefficients, size=(coefficients.shape[-2], width), mode="bilinear", align_corners=False)
    out = torch.empty(3, height, width, dtype=light.dtype)
    for top, end in _bands(height, width):
        band = light[:, :, top:end]
        out[:, top:end] = lab_merge(band, apply_coefficients(resize_rows(wide, height, top, end), band))[0]
    return out


def render_photo(pixels: Tensor, coefficients: Tensor) -> np.ndarray:
    """(H, W, 3) uint8: a prediction on the photo's own full-resolution lightness, rounded to
    8 bits band by band: the image ``adacolor colorize`` writes (``colorize_file``; ``save_image``
    of ``colorize``'s result), with no full-size float copy.

    Args:
        pixels: (3, H, W) the photo, uint8 (or float in [0, 1]).
        coefficients: (1, 4, h, w) ``[A; b]`` of its prediction (``predict``).
    """
    height, width = pixels.shape[-2:]
    written = np.empty((height, width, 3), dtype=np.uint8)
    for top, end, colour, _ in _recombine(pixels, coefficients, lambda: None):
        written[top:end] = _to_8bit(colour)
    return written


def _read_pixels(path: Union[str, Path]) -> Tensor:
    """(3, H, W) uint8 RGB of any image file PIL reads (a view of one (H, W, 3) array)."""
    from adacolor.data import load_rgb

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image at {path}")
    try:
        image = load_rgb(path)
        pixels = np.asarray(image)  # read-only, over a copy of the decoded bytes
    except Exception as error:  # any decoder failure: PIL raises OSError, ValueError, SyntaxError...
        raise ValueError(f"{path} is not a readable image ({type(error).__name__}: {error})") from None
    image.close()  # frees the decoded image before the writable copy is made
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def load_image(path: Union[str, Path]) -> Tensor:
    """(3, H, W) RGB in [0, 1] from any image file PIL reads (greyscale, CMYK, palette, alpha)."""
    pixels = _read_pixels(path)
    rgb = torch.empty(pixels.shape, dtype=torch.float32)
    for top, end in _bands(*pixels.shape[-2:]):
        rgb[:, top:end] = _band(pixels, top, end)[0]
    return rgb


def _to_8bit(rgb: Tensor) -> np.ndarray:
    """(3, rows, W) float in [0, 1] -> (rows, W, 3) uint8, rounded."""
    return (rgb.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _check_output(path: Union[str, Path], suffixes: Sequence[str], option: str) -> Path:
    """``path`` as a file to write, refused before any work when its type or place is wrong."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{option} {path}: the file type comes from the extension; use one of "
                         f"{', '.join(suffixes)}")
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name such as {path / ('out' + suffixes[0])}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{option} {path}: {parent} is a file, not a folder")
    return path


def _write_pixels(pixels: np.ndarray, path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def save_image(rgb: Tensor, path: Union[str, Path]) -> Path:
    """Writes (3, H, W) in [0, 1] as an 8-bit image (format from the suffix, e.g. .png)."""
    pixels = np.empty((*rgb.shape[-2:], 3), dtype=np.uint8)
    for top, end in _bands(*rgb.shape[-2:]):
        pixels[top:end] = _to_8bit(rgb[:, top:end])
    return _write_pixels(pixels, Path(path))


def save_figure(result: dict[str, Any], path: Union[str, Path], original: Optional[Tensor] = None,
                hints: Sequence[UserHint] = (), title: str = "") -> Path:
    """A side-by-side figure: lightness with the hints, the colorization, the original (when
    given) and, for adaptive models, where the compute went per token."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, Any]] = [("input L + hints", result["gray"]), ("colorized", result["rgb"])]
    if original is not None:
        panels.append(("original", original))
    if result.get("compute_map") is not None:
        panels.append(("full-width compute per patch", result["compute_map"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, image) in zip(axes[0], panels):
        ax.set_title(name, fontsize=9)
        ax.axis("off")
        if image.ndim == 2:
            shown = ax.imshow(image.cpu().numpy(), cmap="magma", vmin=0.0, vmax=1.0)
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        else:
            ax.imshow(image.permute(1, 2, 0).cpu().numpy())
    if hints:
        xs, ys = [h.x for h in hints], [h.y for h in hints]
        axes[0][0].scatter(xs, ys, s=14, facecolors="none", edgecolors="yellow", linewidths=0.8)
    fig.suptitle(title or f"{result['gflops']:.3f} GFLOPs", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _preview(pixels: np.ndarray) -> Tensor:
    """(3, h, w) float in [0, 1]: (H, W, 3) uint8 pixels shrunk to fit a figure panel."""
    from PIL import Image

    height, width = pixels.shape[:2]
    scale = min(1.0, _FIGURE_SIDE / max(height, width))
    image = Image.fromarray(pixels)
    if scale < 1.0:
        image = image.resize((max(1, round(width * scale)), max(1, round(height * scale))),
                             Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255.0


@torch.no_grad()
def colorize_file(image: Union[str, Path], checkpoint: Union[str, Path, Colorizer, Callable[[], Colorizer]],
                  out: Union[str, Path],
                  hint_file: Optional[Union[str, Path]] = None, random_hints: Optional[int] = None,
                  figure: Optional[Union[str, Path]] = None, seed: int = 0, progress: bool = False,
                  upsample: UpsampleMethod = "guided") -> dict[str, Path]:
    """Colorizes ``image`` with the hints of ``hint_file`` or ``random_hints`` random ones.

    The same computation as ``colorize`` (the written image equals ``save_image`` of its
    result), but the photo stays 8-bit in memory: only bands of rows are ever float.

    Args:
        image: the input image (colour or greyscale, any size).
        checkpoint: a training checkpoint, a Colorizer, or a function that loads one (called
            after the inputs are checked, so a mistake is told before a model is read).
        out: the colorized image, the size of the input (type from the extension).
        hint_file: JSON hints (module docstring). random_hints: else this many hints at random
            places, coloured from the image (seeded by ``seed``).
        figure: also write a side-by-side figure there (the photo shrunk to fit).
        progress: show a progress bar on stderr for photos that take a while (on a terminal).
        upsample: ``guided`` (by the photo's lightness) or ``bilinear`` (see ``colorize``).

    Returns:
        ``{"colorized": out, "figure": figure}`` (figure only when asked).

    Warns:
        GreyPhotoWarning: hints that take the photo's colour (random ones, or points with no
            ``rgb`` / ``ab``) on a photo that has none (``is_grey``): they, and the result, are grey.

    Raises:
        FileNotFoundError, ValueError: a missing or unreadable image, hint file or checkpoint,
            bad hints, or an output path that cannot be written; all checked before the model
            runs (the output paths before anything is read).
    """
    from adacolor.model import load_colorizer

    if (hint_file is None) == (random_hints is None):
        raise ValueError("give exactly one of a hint file (--hints) or a number of random hints (--random-hints)")
    check_upsample_method(upsample)
    out = _check_output(out, IMAGE_SUFFIXES, "--out")
    figure = _check_output(figure, FIGURE_SUFFIXES, "--figure") if figure is not None else None
    hints = load_user_hints(hint_file) if hint_file is not None else None
    pixels = _read_pixels(image)
    height, width = pixels.shape[-2:]
    if hints is None:
        hints = random_user_hints(height, width, int(random_hints), seed=seed)
    _check_inside(hints, (height, width))
    if isinstance(checkpoint, Colorizer):
        model = checkpoint
    else:
        model = checkpoint() if callable(checkpoint) else load_colorizer(checkpoint)
    model.eval()
    written = np.empty((height, width, 3), dtype=np.uint8)
    with _progress(pixels, progress) as bar:
        prediction = _predict(model, pixels, hints, bar.update, upsample)
        photo_ab = prediction.pop("photo_ab")
        if any(hint.ab is None for hint in hints) and is_grey(photo_ab):
            which = "--random-hints" if hint_file is None else "hints without 'rgb' or 'ab'"
            warnings.warn(f"the hints are grey because the photo is grey: {which} take the photo's own colour, "
                          f"and it has none; pass --hints with colours ('rgb' or 'ab' per point)",
                          GreyPhotoWarning, stacklevel=2)
        for top, end, colour, _ in _recombine(pixels, prediction.pop("coefficients"), bar.update):
            written[top:end] = _to_8bit(colour)
    paths = {"colorized": _write_pixels(written, out)}
    if figure is not None:
        original = _preview(pixels.permute(1, 2, 0).numpy())
        scale = original.shape[-1] / width
        light, ab = lab_split(original[None])
        result = {**prediction, "rgb": _preview(written), "gray": lab_merge(light, torch.zeros_like(ab))[0]}
        shown = [UserHint(h.x * scale, h.y * scale, h.size, h.ab) for h in hints]
        name = model.spec.name if model.spec is not None else "colorizer"
        title = f"{name}: {len(hints)} hints, {prediction['gflops']:.3f} GFLOPs"
        paths["figure"] = save_figure(result, figure, original=original, hints=shown, title=title)
    return paths
