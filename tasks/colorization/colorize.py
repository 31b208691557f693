"""Colorize one image of any size from a few colour hints.

    adacolor colorize photo.jpg --checkpoint runs/tiny/checkpoint.pt --hints hints.json --out out.png
    adacolor colorize photo.jpg --checkpoint runs/tiny/checkpoint.pt --random-hints 10 --out out.png

The model sees the image at its own size (224 px for the paper's models): the photo is resized,
its lightness L and the hints go in, normalised ab comes out. That ab is upsampled to the
photo's size and recombined with the photo's own full-resolution L, so the output has the
input's size and all of its detail (chroma is smooth in natural images; lightness is not).

A hint file is JSON: a list of points in the input image's pixel coordinates (or an object
``{"hints": [...]}``). Each point has ``x`` and ``y``; optionally ``size`` (the square's side
at the model's size, default 2) and a colour, ``rgb`` (0-255) or ``ab`` (Lab units). A point
without a colour takes the image's own colour there (useful to reproduce an evaluation)::

    [{"x": 120, "y": 64, "rgb": [200, 30, 30]}, {"x": 40, "y": 200, "ab": [10.0, 45.0]}, {"x": 5, "y": 9}]
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

import adaprune
from adacolor.color import AB_SCALE, lab_merge, lab_split, rgb_to_lab
from adacolor.model import Colorizer

__all__ = [
    "UserHint",
    "load_user_hints",
    "parse_user_hints",
    "random_user_hints",
    "render_user_hints",
    "colorize",
    "load_image",
    "save_image",
    "save_figure",
    "colorize_file",
]


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


def _hint_from_json(entry: Any, where: str) -> UserHint:
    if not isinstance(entry, dict) or "x" not in entry or "y" not in entry:
        raise ValueError(f"{where}: each hint is an object with 'x' and 'y' (pixels) and optionally 'size', "
                         f"'rgb' [0-255 x3] or 'ab' [a, b]; got {entry!r}")
    ab = None
    if "rgb" in entry:
        rgb = entry["rgb"]
        if not (isinstance(rgb, (list, tuple)) and len(rgb) == 3 and all(0 <= float(c) <= 255 for c in rgb)):
            raise ValueError(f"{where}: 'rgb' must be three numbers in 0..255, got {rgb!r}")
        pixel = torch.tensor([float(c) / 255.0 for c in rgb], dtype=torch.float64).view(1, 3, 1, 1)
        lab = rgb_to_lab(pixel).flatten()
        ab = (float(lab[1]), float(lab[2]))
    elif "ab" in entry:
        value = entry["ab"]
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise ValueError(f"{where}: 'ab' must be two numbers (Lab a and b), got {value!r}")
        ab = (float(value[0]), float(value[1]))
    size = int(entry.get("size", 2))
    if size < 1:
        raise ValueError(f"{where}: 'size' must be >= 1, got {size}")
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
    """``count`` hints at uniform positions of an image, coloured by the image itself."""
    if count < 0:
        raise ValueError(f"the number of random hints must be >= 0, got {count}")
    generator = torch.Generator().manual_seed(seed)
    ys = torch.rand(count, generator=generator, dtype=torch.float64) * height
    xs = torch.rand(count, generator=generator, dtype=torch.float64) * width
    return [UserHint(float(x), float(y), size) for x, y in zip(xs, ys)]


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
    """
    _, _, rows, cols = ab_norm.shape
    height, width = image_hw
    hint_ab, hint_mask = torch.zeros_like(ab_norm), torch.zeros_like(ab_norm[:, :1])
    for hint in hints:
        if not (0 <= hint.x < width and 0 <= hint.y < height):
            raise ValueError(f"hint at (x={hint.x}, y={hint.y}) is outside the {width}x{height} image")
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


@torch.no_grad()
def colorize(model: Colorizer, rgb: Tensor, hints: Sequence[UserHint]) -> dict[str, Any]:
    """Colorizes one image at its own size.

    Args:
        model: a colorizer (put in eval mode here).
        rgb: (3, H, W) in [0, 1], any size; only its lightness is used, plus its colour where a
            hint carries none.
        hints: the user's points in the image's coordinates.

    Returns:
        ``{"rgb": (3, H, W) colorized, "gray": (3, H, W) the input's lightness, "gflops": float,
        "compute_map": (rows, cols) fraction of sub-layers each patch ran at full width, or
        None for a dense model, "hint_mask": (S, S) where the hints went at the model's size}``.
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"expected an RGB image (3, H, W), got shape {tuple(rgb.shape)}")
    model.eval()
    height, width = rgb.shape[-2:]
    small = F.interpolate(rgb[None], size=model.image_size, mode="bilinear", antialias=True,
                          align_corners=False).clamp(0.0, 1.0)
    l_small, ab_small = lab_split(small)
    hint_ab, hint_mask = render_user_hints(hints, (height, width), ab_small)
    pred_ab = model(torch.cat([l_small, hint_ab, hint_mask], dim=1))
    compute_map = None
    gflops = float(model_gflops(model))
    if model.adaptive:
        token_map = adaprune.last_record(model.backbone).token_map()
        compute_map = None if token_map is None else token_map[0]
    l_full, _ = lab_split(rgb[None])
    ab_full = F.interpolate(pred_ab, size=(height, width), mode="bilinear", align_corners=False)
    out = lab_merge(l_full, ab_full)[0]
    gray = lab_merge(l_full, torch.zeros_like(ab_full))[0]
    return {"rgb": out, "gray": gray, "gflops": gflops, "compute_map": compute_map, "hint_mask": hint_mask[0, 0]}


def model_gflops(model: Colorizer) -> float:
    """GFLOPs of the model's last forward (batch 1)."""
    from adacolor.model import colorizer_gflops

    return float(colorizer_gflops(model, 1)[0])


def load_image(path: Union[str, Path]) -> Tensor:
    """(3, H, W) RGB in [0, 1] from any image file PIL reads (greyscale, CMYK, palette, alpha)."""
    from adacolor.data import load_rgb

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image at {path}")
    try:
        image = load_rgb(path)
    except OSError as error:
        raise ValueError(f"{path} is not a readable image: {error}") from None
    array = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return array.view(image.height, image.width, 3).permute(2, 0, 1).float() / 255.0


def save_image(rgb: Tensor, path: Union[str, Path]) -> Path:
    """Writes (3, H, W) in [0, 1] as an 8-bit image (format from the suffix, e.g. .png)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (rgb.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().cpu()
    Image.fromarray(pixels.numpy()).save(path)
    return path


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


def colorize_file(image: Union[str, Path], checkpoint: Union[str, Path, Colorizer], out: Union[str, Path],
                  hint_file: Optional[Union[str, Path]] = None, random_hints: Optional[int] = None,
                  figure: Optional[Union[str, Path]] = None, seed: int = 0) -> dict[str, Path]:
    """Colorizes ``image`` with the hints of ``hint_file`` or ``random_hints`` random ones.

    Args:
        image: the input image (colour or greyscale, any size).
        checkpoint: a training checkpoint, or a Colorizer.
        out: the colorized image, the size of the input.
        hint_file: JSON hints (module docstring). random_hints: else this many hints at random
            places, coloured from the image (seeded by ``seed``).
        figure: also write a side-by-side figure there.

    Returns:
        ``{"colorized": out, "figure": figure}`` (figure only when asked).
    """
    from adacolor.model import load_colorizer

    if (hint_file is None) == (random_hints is None):
        raise ValueError("give exactly one of a hint file (--hints) or a number of random hints (--random-hints)")
    model = checkpoint if isinstance(checkpoint, Colorizer) else load_colorizer(checkpoint)
    rgb = load_image(image)
    height, width = rgb.shape[-2:]
    hints = load_user_hints(hint_file) if hint_file is not None else \
        random_user_hints(height, width, int(random_hints), seed=seed)
    result = colorize(model, rgb, hints)
    paths = {"colorized": save_image(result["rgb"], out)}
    if figure is not None:
        name = model.spec.name if model.spec is not None else "colorizer"
        title = f"{name}: {len(hints)} hints, {result['gflops']:.3f} GFLOPs"
        paths["figure"] = save_figure(result, figure, original=rgb, hints=hints, title=title)
    return paths
