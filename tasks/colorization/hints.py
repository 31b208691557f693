"""Simulated user hints, as iColoriT trains and evaluates with them.

A hint is a square of ``size x size`` pixels of the model-size image, coloured with the mean
ground-truth ab over that square. The model sees it through two extra inputs: ``hint_ab``
(the hint colours, 0 elsewhere) and ``hint_mask`` (1 inside hint squares, 0 elsewhere).

    >>> l_norm, ab = lab_split(rgb)                                # (B, 1, H, W), (B, 2, H, W)
    >>> hint_ab, hint_mask = sample_hints(ab, HintConfig(), generator)
    >>> x = model_input(l_norm, hint_ab, hint_mask)                # (B, 4, H, W)

Training draws fresh hints per image (:func:`sample_hints`: 0..128 squares of 2x2 by
default, iColoriT's setting). Evaluation uses fixed sets (:func:`make_eval_hint_sets`) that
every model is scored on, stored as JSON with :func:`save_hint_sets` / :func:`load_hint_sets`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import Tensor

__all__ = [
    "HintPoint",
    "HintConfig",
    "EVAL_COUNTS",
    "HINT_FILE_FORMAT",
    "draw_points",
    "render_hints",
    "sample_hints",
    "model_input",
    "make_eval_hint_sets",
    "save_hint_sets",
    "load_hint_sets",
]

HintPoint = tuple[int, int, int]
"""(y, x, size): top-left row and column and side of a hint square, in model-size pixels."""

EVAL_COUNTS = (0, 1, 2, 5, 10, 20, 50, 100)  # hint counts k of the PSNR@k curves
HINT_FILE_FORMAT = "adaprune-hints/1"

_MASK64 = (1 << 64) - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class HintConfig:
    """How many hints training draws per image, and how large.

    Both are uniform over their inclusive range, as in iColoriT.
    """

    min_hints: int = 0    # iColoriT: 0..128 hints per image
    max_hints: int = 128
    min_size: int = 2     # side of a hint square; iColoriT trains on 2x2 (its users give 2x2 to 7x7)
    max_size: int = 2

    def __post_init__(self) -> None:
        for name in ("min_hints", "max_hints", "min_size", "max_size"):
            if not _is_int(getattr(self, name)):
                raise ValueError(f"HintConfig.{name} must be an int, got {getattr(self, name)!r}")
        if self.min_hints < 0 or self.max_hints < 0:
            raise ValueError(f"hint counts must be non-negative, got min_hints={self.min_hints}, "
                             f"max_hints={self.max_hints}")
        if self.min_hints > self.max_hints:
            raise ValueError(f"min_hints ({self.min_hints}) must be <= max_hints ({self.max_hints})")
        if self.min_size < 1 or self.max_size < 1:
            raise ValueError(f"hint sizes must be >= 1 pixel, got min_size={self.min_size}, "
                             f"max_size={self.max_size}")
        if self.min_size > self.max_size:
            raise ValueError(f"min_size ({self.min_size}) must be <= max_size ({self.max_size})")


def _uniform_below(u: Tensor, n: Tensor) -> Tensor:
    """floor(u * n) for u in [0, 1), kept below n against rounding: uniform on {0..n-1}."""
    return torch.minimum((u * n).floor().long(), n.long() - 1)


def draw_points(count: int, height: int, width: int, min_size: int = 2, max_size: int = 2,
                generator: Optional[torch.Generator] = None) -> list[HintPoint]:
    """``count`` hint squares at uniform positions, each fully inside a ``height x width`` image.

    Each square's side is uniform in [min_size, max_size], then its top-left corner uniform over
    the positions where it fits. Point j uses only the j-th three numbers of the generator's
    stream, so the first k points are the same whatever ``count`` >= k is asked for.

    Args:
        count: number of points (>= 0).
        height: image size in pixels.
        width: image size in pixels.
        min_size: inclusive range of the square's side.
        max_size: inclusive range of the square's side.
        generator: a CPU generator; None uses torch's global one.

    Returns:
        ``count`` points (y, x, size).

    Raises:
        ValueError: negative count, bad sizes, or a ``max_size`` square that does not fit.
    """
    if not _is_int(count) or count < 0:
        raise ValueError(f"count must be a non-negative int, got {count!r}")
    if min_size < 1 or min_size > max_size:
        raise ValueError(f"need 1 <= min_size <= max_size, got min_size={min_size}, max_size={max_size}")
    if height < 1 or width < 1 or max_size > min(height, width):
        raise ValueError(f"a hint square of side {max_size} does not fit in a {height}x{width} image "
                         f"(max_size must be <= min(height, width))")
    u = torch.rand(count, 3, generator=generator, dtype=torch.float64)
    sizes = min_size + _uniform_below(u[:, 0], torch.full((count,), max_size - min_size + 1))
    ys = _uniform_below(u[:, 1], height - sizes + 1)
    xs = _uniform_below(u[:, 2], width - sizes + 1)
    return [(int(y), int(x), int(s)) for y, x, s in zip(ys.tolist(), xs.tolist(), sizes.tolist())]


def _point_table(points: Sequence[Sequence[HintPoint]], batch: int, height: int, width: int) -> Tensor:
    """(N, 4) long rows (image, y, x, size) of all points, in image then list order; validated."""
    if len(points) != batch:
        raise ValueError(f"points must hold one list of hint points per image: got {len(points)} lists "
                         f"for a batch of {batch}")
    for i, image_points in enumerate(points):
        if not all(len(point) == 3 for point in image_points):
            bad = next(point for point in image_points if len(point) != 3)
            raise ValueError(f"a hint point is (y, x, size), got {bad!r} for image {i}")
    values = list(chain.from_iterable(chain.from_iterable(points)))
    corners = torch.tensor(values, dtype=None if values else torch.long).view(-1, 3)
    if corners.is_floating_point() or corners.dtype == torch.bool:
        raise ValueError(f"hint points must be integers (y, x, size), got dtype {corners.dtype}")
    image = torch.repeat_interleave(torch.arange(batch), torch.tensor([len(p) for p in points], dtype=torch.long))
    table = torch.cat([image[:, None], corners.long()], dim=1)
    _, y, x, s = table.unbind(dim=1)
    bad = (s < 1) | (y < 0) | (x < 0) | (y + s > height) | (x + s > width)
    if bool(bad.any()):
        i, y0, x0, s0 = table[bad.nonzero()[0, 0]].tolist()
        raise ValueError(f"hint point (y={y0}, x={x0}, size={s0}) of image {i} is out of bounds: the square "
                         f"must have size >= 1 and lie inside the {height}x{width} image")
    return table


def render_hints(ab: Tensor, points: Sequence[Sequence[HintPoint]]) -> tuple[Tensor, Tensor]:
    """The hint channels for given squares, coloured from the ground truth.

    Vectorised: every covered pixel takes the colour of the last square (in list order) that
    covers it, found with one scatter of the squares' order over their pixels.

    Args:
        ab: (B, 2, H, W) normalised ground-truth ab.
        points: ``points[i]``: image i's squares (y, x, size); later squares win where they overlap.

    Returns:
        hint_ab (B, 2, H, W): inside each square the mean of ``ab`` over that square, 0 elsewhere;
        hint_mask (B, 1, H, W): 1 inside hint squares, 0 elsewhere. Same dtype and device as ``ab``.

    Raises:
        ValueError: ``ab`` not (B, 2, H, W), ``len(points) != B``, or a square out of bounds.
    """
    if ab.ndim != 4 or ab.shape[1] != 2:
        raise ValueError(f"ab must be normalised ab of shape (B, 2, H, W), got shape {tuple(ab.shape)}")
    B, _, H, W = ab.shape
    table = _point_table(points, B, H, W).to(ab.device)
    if table.shape[0] == 0:
        return torch.zeros_like(ab), torch.zeros_like(ab[:, :1])
    image, y, x, s = (column[:, None] for column in table.unbind(dim=1))      # each (N, 1)
    side = int(s.max())
    offsets = torch.arange(side * side, device=ab.device)
    dy, dx = offsets // side, offsets % side                                  # (M,) M = side^2
    inside = (dy < s) & (dx < s)                                              # (N, M)
    pixel = (y + dy.clamp(max=s - 1)) * W + (x + dx.clamp(max=s - 1))         # (N, M) in its image
    channel = torch.arange(2, device=ab.device).view(2, 1, 1) * (H * W)
    values = ab.reshape(-1)[image * (2 * H * W) + channel + pixel]              # (2, N, M)
    sums = (values * inside.to(ab.dtype)).sum(dim=2)                            # (2, N)
    pixel = pixel + image * (H * W)                                             # in the whole batch
    colours = torch.cat([ab.new_zeros(2, 1), sums / (s * s).to(ab.dtype).T], dim=1)  # column 0: no hint
    # 1 + the index of the last square over each pixel; padding offsets scatter 0, a no-op for amax
    order = torch.arange(1, table.shape[0] + 1, device=ab.device)[:, None] * inside
    owner = torch.zeros(B * H * W, dtype=torch.long, device=ab.device)
    owner.scatter_reduce_(0, pixel.reshape(-1), order.reshape(-1), reduce="amax")
    owner = owner.view(B, 1, H * W)
    hint_ab = torch.gather(colours[None].expand(B, 2, -1), 2, owner.expand(B, 2, H * W)).view(B, 2, H, W)
    hint_mask = (owner > 0).to(ab.dtype).view(B, 1, H, W)
    return hint_ab, hint_mask


def sample_hints(ab: Tensor, config: HintConfig = HintConfig(),
                 generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """Random training hints: per image a count uniform in [min_hints, max_hints], then squares.

    Args:
        ab: (B, 2, H, W) normalised ground-truth ab.
        config: hint count and size ranges.
        generator: a CPU generator; None uses torch's global one.

    Returns:
        hint_ab (B, 2, H, W) and hint_mask (B, 1, H, W), as :func:`render_hints`.
    """
    if ab.ndim != 4 or ab.shape[1] != 2:
        raise ValueError(f"ab must be normalised ab of shape (B, 2, H, W), got shape {tuple(ab.shape)}")
    B, _, H, W = ab.shape
    points = []
    for _ in range(B):
        count = int(torch.randint(config.min_hints, config.max_hints + 1, (), generator=generator))
        points.append(draw_points(count, H, W, config.min_size, config.max_size, generator))
    return render_hints(ab, points)


def model_input(l_norm: Tensor, hint_ab: Tensor, hint_mask: Tensor) -> Tensor:
    """The colorizer's input: channels [L, a, b, mask].

    Args:
        l_norm: (B, 1, H, W) normalised lightness.
        hint_ab: (B, 2, H, W) hint colours.
        hint_mask: (B, 1, H, W) hint mask.

    Returns:
        (B, 4, H, W).

    Raises:
        ValueError: a shape is not as above, or B, H, W differ.
    """
    shapes = [tuple(t.shape) for t in (l_norm, hint_ab, hint_mask)]
    good = all(len(shape) == 4 for shape in shapes) and [shape[1] for shape in shapes] == [1, 2, 1]
    if not good or len({(shape[0],) + shape[2:] for shape in shapes}) != 1:
        raise ValueError(f"model_input takes l_norm (B, 1, H, W), hint_ab (B, 2, H, W) and hint_mask "
                         f"(B, 1, H, W) of one B, H, W; got shapes {shapes[0]}, {shapes[1]}, {shapes[2]}")
    return torch.cat([l_norm, hint_ab, hint_mask], dim=1)


def _splitmix64(value: int) -> int:
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def _image_seed(seed: int, index: int) -> int:
    """A well-mixed 63-bit seed that depends on (seed, index) only."""
    return _splitmix64(_splitmix64(seed & _MASK64) ^ index) >> 1


def make_eval_hint_sets(num_images: int, height: int, width: int, counts: Sequence[int] = EVAL_COUNTS,
                        size: int = 2, seed: int = 0) -> dict[int, list[list[HintPoint]]]:
    """Fixed evaluation hints: nested sets of k squares per image, for each k in ``counts``.

    Image i draws ``max(counts)`` points from a generator seeded by (seed, i) alone, so its
    hints do not depend on ``num_images``; by :func:`draw_points`, nor on ``max(counts)``.
    The set for k is the first k of them, so each set contains the smaller ones.

    Args:
        num_images: number of images (>= 0).
        height: model-size image size.
        width: model-size image size.
        counts: the hint counts k (>= 0 each).
        size: side of every square.
        seed: base seed.

    Returns:
        ``sets[k][i]``: the k points (y, x, size) of image i.

    Raises:
        ValueError: no counts, a negative count or image number, or a square that does not fit.
    """
    counts = list(counts)
    if not counts or not all(_is_int(k) and k >= 0 for k in counts):
        raise ValueError(f"counts must be one or more non-negative ints, got {counts!r}")
    if not _is_int(num_images) or num_images < 0:
        raise ValueError(f"num_images must be a non-negative int, got {num_images!r}")
    most = max(counts)
    per_image = []
    for i in range(num_images):
        generator = torch.Generator().manual_seed(_image_seed(seed, i))
        per_image.append(draw_points(most, height, width, size, size, generator))
    if num_images == 0:
        draw_points(0, height, width, size, size)  # the same size checks as with images
    return {k: [points[:k] for points in per_image] for k in sorted(set(counts))}


def _validated_sets(sets: Any, where: str) -> dict[int, list[list[HintPoint]]]:
    """Hint sets as dict[int, list[list[tuple]]], checked: every k has k points for each image."""
    if not isinstance(sets, Mapping):
        raise ValueError(f"{where}: hint sets must map k -> per-image lists of points, got {type(sets).__name__}")
    result: dict[int, list[list[HintPoint]]] = {}
    num_images = None
    for key, per_image in sets.items():
        try:
            k = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: hint counts must be integers, got key {key!r}") from None
        if k < 0 or not isinstance(per_image, (list, tuple)):
            raise ValueError(f"{where}: entry {key!r} must be a non-negative count mapped to a list of images")
        if num_images is None:
            num_images = len(per_image)
        if len(per_image) != num_images:
            raise ValueError(f"{where}: every k must have the same number of images, got {num_images} and "
                             f"{len(per_image)} (k={k})")
        images = []
        for i, points in enumerate(per_image):
            if not isinstance(points, (list, tuple)) or len(points) != k:
                raise ValueError(f"{where}: image {i} of the {k}-hint set must have {k} points")
            checked = []
            for point in points:
                if (not isinstance(point, (list, tuple)) or len(point) != 3 or not all(_is_int(v) for v in point)
                        or point[0] < 0 or point[1] < 0 or point[2] < 1):
                    raise ValueError(f"{where}: a point is [y >= 0, x >= 0, size >= 1] of ints, got {point!r} "
                                     f"(image {i}, k={k})")
                checked.append((point[0], point[1], point[2]))
            images.append(checked)
        result[k] = images
    return result


def save_hint_sets(sets: Mapping[int, Sequence[Sequence[HintPoint]]], path: Union[str, Path]) -> Path:
    """Writes hint sets as JSON, atomically (a temporary file, then renamed over ``path``).

    Format: ``{"format": "adaprune-hints/1", "counts": [k...], "num_images": n,
    "sets": {"k": [[[y, x, size], ...] per image]}}``. Missing parent folders are created.

    Args:
        sets: ``sets[k][i]``: the k points of image i (from :func:`make_eval_hint_sets`).
        path: the file to write.

    Returns:
        ``path`` as a Path.

    Raises:
        ValueError: ``sets`` is malformed (a point not 3 ints, k points missing, image counts differ).
    """
    path = Path(path)
    checked = _validated_sets(sets, "save_hint_sets")
    counts = sorted(checked)
    data = {
        "format": HINT_FILE_FORMAT,
        "counts": counts,
        "num_images": len(checked[counts[0]]) if counts else 0,
        "sets": {str(k): [[list(point) for point in points] for points in checked[k]] for k in counts},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(data, file, separators=(",", ":"))
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_hint_sets(path: Union[str, Path]) -> dict[int, list[list[HintPoint]]]:
    """Hint sets written by :func:`save_hint_sets`.

    Returns:
        ``sets[k][i]``: the k points (y, x, size) of image i, as tuples of ints.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a hint-set file or is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no hint-set file at {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a hint-set file (not JSON: {error})") from None
    if not isinstance(data, dict) or data.get("format") != HINT_FILE_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path} is not a hint-set file: expected a JSON object with "
                         f"\"format\": \"{HINT_FILE_FORMAT}\", found {found!r}")
    sets = _validated_sets(data.get("sets"), str(path))
    num_images = data.get("num_images")
    if sets and num_images is not None and any(len(images) != num_images for images in sets.values()):
        raise ValueError(f"{path}: num_images is {num_images} but the sets hold "
                         f"{len(next(iter(sets.values())))} images")
    return sets
