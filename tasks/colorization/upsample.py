"""Edge-aware upsampling of a colorizer's ab to the photo's size, guided by the photo's own L.

A colorizer predicts chroma at its own size (112 or 224 px) while the photo's lightness is
known at full resolution. Plain bilinear upsampling blurs the chroma across the edges the grey
photo shows: colour bleeds. The fast guided filter (He & Sun 2015, "Fast Guided Filter",
arXiv:1505.00996; the guided filter of He, Sun & Tang 2010) fits, in every small window of the
low-resolution image, ab as a linear function of the lightness,

    ab ~ A * L + b        (one A and b per window and ab channel, least squares, A ridge-damped by eps)

averages the coefficients of the windows that cover each pixel (a box filter), upsamples A and
b bilinearly to the photo's size and applies them to the full-resolution L. Where the photo has
a lightness edge inside a window, A carries the colour step and the full-resolution L places it
on the edge; where L is flat (variance well below ``eps``) A is ~0 and the result is the
bilinear one. Two changes to the filter, both measured (``GUIDED_*``):
b is chosen so that the low-resolution values are kept (the filter alone smooths chroma, 4 dB
below bilinear on photos), and A is damped where a line explains the window poorly.

Bilinear upsampling is the same form with A = 0 and b = ab, so both methods share one streaming
path: coefficients at low resolution (small), then per band of rows ``A * L + b``
(:func:`apply_coefficients`); a 4000x3000 photo never needs more than one band of full-size
floats besides the result.

    >>> coef = upsample_coefficients(ab_low, l_low, "guided")           # (B, 4, h, w)
    >>> ab = apply_coefficients(F.interpolate(coef, (H, W), mode="bilinear"), l_full)  # (B, 2, H, W)
    >>> ab = upsample_ab(ab_low, l_full)                                 # the same, in one call

Benchmark (full-resolution PSNR and seam ratio, guided against bilinear, on scikit-image's photos)::

    python -m adacolor.upsample bench --out docs/figures/upsample_bench.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "UpsampleMethod",
    "UPSAMPLE_METHODS",
    "GUIDED_RADIUS",
    "GUIDED_EPS",
    "GUIDED_FIT_POWER",
    "check_upsample_method",
    "box_filter",
    "guided_coefficients",
    "upsample_coefficients",
    "resize_rows",
    "apply_coefficients",
    "upsample_ab",
    "run_bench",
]

UpsampleMethod = Literal["guided", "bilinear"]
UPSAMPLE_METHODS: tuple[str, ...] = get_args(UpsampleMethod)
# The three constants were chosen on 24 Imagenette val photos (224 px) whose chroma was reduced to
# 56 and 112 px and upsampled back, scored by RGB PSNR and by the bleed across a synthetic edge;
# not on the benchmark's photos. Window radius at the model's size (low-res pixels): 1 (3x3
# windows, about 1/5 of a 16-pixel patch) beat 2 and 3 at every eps: the slope is fitted
# where the colour is, and two objects of one lightness but different colours are not mixed.
GUIDED_RADIUS = 1
# Ridge on A, in normalised lightness squared (l_norm = (L - 50) / 100): 1e-3 is an L standard
# deviation of about 3 units inside a window. An edge well above that carries its colour step;
# below it, A fades out. The largest ab error next to a synthetic edge (chroma reduced 4x) is
# 0.06 at 1e-3, 0.10 at 3e-3, 0.18 at 1e-2 (bilinear: 0.38, normalised ab); PSNR rises with eps.
GUIDED_EPS = 1e-3
# A is scaled by (R^2)^4, R^2 the window's squared correlation of colour and lightness: with
# eps = 1e-3, powers 1, 2, 4 gave -0.1, +0.2, +0.4 dB over bilinear (56 px) and -0.4, +0.0,
# +0.3 dB (112 px); the edge is kept as well by each.
GUIDED_FIT_POWER = 4
_TINY_VARIANCE = 1e-12  # keeps R^2 of a flat window 0 / tiny = 0 (A = 0: nothing to follow)


def _check(x: Tensor, name: str, channels: Optional[int] = None) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point() or (
            channels is not None and x.shape[1] != channels):
        what = f"(B, {channels}, H, W)" if channels is not None else "(B, C, H, W)"
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating tensor {what}, got {shape}")


def check_upsample_method(method: str) -> None:
    """ValueError naming the accepted methods when ``method`` is not one of ``UPSAMPLE_METHODS``."""
    if method not in UPSAMPLE_METHODS:
        raise ValueError(f"unknown upsampling {method!r}; use one of {', '.join(UPSAMPLE_METHODS)}")


def box_filter(x: Tensor, radius: int) -> Tensor:
    """Mean over the (2r+1)x(2r+1) window around each pixel, the window cut at the image's border.

    Args:
        x: (B, C, H, W).
        radius: r >= 0 (0: x itself).

    Returns:
        (B, C, H, W): at the border, the mean of the window's pixels inside the image.
    """
    if radius < 0:
        raise ValueError(f"the box radius must be >= 0, got {radius}")
    if radius == 0:
        return x
    return F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def guided_coefficients(guide: Tensor, src: Tensor, radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS
                        ) -> tuple[Tensor, Tensor]:
    """Linear coefficients of ``src`` on ``guide`` (``src ~ A * guide + b``) that keep ``src``.

    The guided filter's slope, per window w of (2r+1)^2 pixels and per channel (He, Sun & Tang
    2010, eq. 5), damped by how well a line explains the window (its squared correlation R^2)::

        A_w = cov(I, p) / (var(I) + eps) * (R_w^2) ** GUIDED_FIT_POWER,   R_w^2 = cov^2 / (var(I) var(p))

    and each pixel's A is the mean over the windows that cover it (eq. 7). Two departures from the
    filter, both measured (the guide's section): ``b = p - A * I`` instead of the windows' mean
    b, so ``A * I + b`` is ``src`` itself at this size (the filter alone smooths the chroma: -4
    dB against bilinear on photos); and the R^2 damping, so that colour follows lightness
    where a line explains it (an edge between two regions: R^2 ~ 1) and not where it does not
    (texture whose colour varies otherwise, R^2 small).

    Args:
        guide: (B, 1, h, w) the guide I (normalised lightness).
        src: (B, C, h, w) the image p (normalised ab), same B, h, w.
        radius: window radius r in pixels of this size.
        eps: ridge on A, in the guide's units squared (> 0).

    Returns:
        A, b: (B, C, h, w) each, in src's dtype.

    Raises:
        ValueError: bad shapes, or eps not positive.
    """
    _check(guide, "guide", 1)
    _check(src, "src")
    if guide.shape[0] != src.shape[0] or guide.shape[2:] != src.shape[2:]:
        raise ValueError(f"guide (B, 1, h, w) and src (B, C, h, w) must share B, h, w, got {tuple(guide.shape)} "
                         f"and {tuple(src.shape)}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    dtype = src.dtype
    # float64: box(I^2) - box(I)^2 cancels; the windows' variances near eps must not be noise
    guide, src = guide.double(), src.double()
    mean_i, mean_p = box_filter(guide, radius), box_filter(src, radius)
    cov_ip = box_filter(guide * src, radius) - mean_i * mean_p
    var_i = (box_filter(guide * guide, radius) - mean_i * mean_i).clamp(min=0.0)
    var_p = (box_filter(src * src, radius) - mean_p * mean_p).clamp(min=0.0)
    fit = (cov_ip.square() / (var_i * var_p + _TINY_VARIANCE)).clamp(max=1.0)  # R^2 in [0, 1]
    a = box_filter(cov_ip / (var_i + eps) * fit ** GUIDED_FIT_POWER, radius)
    return a.to(dtype), (src - a * guide).to(dtype)


def upsample_coefficients(src: Tensor, guide: Optional[Tensor], method: UpsampleMethod = "guided",
                          radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS) -> Tensor:
    """Low-resolution coefficients ``[A; b]`` whose bilinear upsampling, applied as ``A * L + b``
    to the full-resolution lightness, is the upsampled ``src``.

    Args:
        src: (B, C, h, w) normalised ab at the model's size.
        guide: (B, 1, h, w) normalised lightness at the same size (the photo's L resized
            there); unused by ``bilinear`` (may be None there).
        method: ``guided`` (fast guided filter) or ``bilinear`` (A = 0, b = src).
        radius: guided: window radius in low-resolution pixels.
        eps: guided: ridge on A in normalised lightness squared.

    Returns:
        (B, 2C, h, w): A (channels 0..C-1) then b (channels C..2C-1).
    """
    check_upsample_method(method)
    _check(src, "src")
    if method == "bilinear":
        return torch.cat([torch.zeros_like(src), src], dim=1)
    if guide is None:
        raise ValueError("guided upsampling needs the guide: the lightness (B, 1, h, w) at the model's size")
    a, b = guided_coefficients(guide, src, radius, eps)
    return torch.cat([a, b], dim=1)


def resize_rows(x: Tensor, height: int, top: int = 0, end: Optional[int] = None) -> Tensor:
    """Rows ``top:end`` of ``x`` resized bilinearly to ``height`` rows (``align_corners=False``,
    the values of ``F.interpolate``), computed without the other rows.

    Args:
        x: (B, C, h, W), any h.
        height: rows of the full resize.
        top: the first row wanted.
        end: the row after the last one wanted (default: ``height``).

    Returns:
        (B, C, end - top, W).
    """
    end = height if end is None else end
    rows = x.shape[-2]
    source = ((torch.arange(top, end, dtype=torch.float64) + 0.5) * (rows / height) - 0.5).clamp(min=0.0)
    lo = source.floor().long().clamp(max=rows - 1)
    hi = (lo + 1).clamp(max=rows - 1)
    weight = (source - lo).to(x.dtype).view(1, 1, -1, 1)
    return x[:, :, lo] * (1 - weight) + x[:, :, hi] * weight


def apply_coefficients(coefficients: Tensor, guide: Tensor) -> Tensor:
    """``A * L + b`` at full resolution, clipped to the model's ab range [-1, 1].

    The clip matters only for ``guided``: a steep A on a full-resolution lightness more extreme
    than the low-resolution one (a thin bright line) would overshoot what tanh can predict.

    Args:
        coefficients: (B, 2C, rows, W) ``[A; b]`` already at the guide's size.
        guide: (B, 1, rows, W) normalised lightness.

    Returns:
        (B, C, rows, W) normalised ab.
    """
    a, b = coefficients.chunk(2, dim=1)
    return (a * guide.to(a.dtype) + b).clamp(-1.0, 1.0)


def upsample_ab(src: Tensor, guide: Tensor, method: UpsampleMethod = "guided", guide_low: Optional[Tensor] = None,
                radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS) -> Tensor:
    """``src`` upsampled to the guide's size, in one call (``colorize`` streams the same steps).

    Args:
        src: (B, C, h, w) normalised ab at the model's size.
        guide: (B, 1, H, W) normalised lightness at full resolution.
        method: ``guided`` or ``bilinear``.
        guide_low: (B, 1, h, w) the lightness the coefficients are fitted on; default: ``guide``
            resized to (h, w) with antialiasing.
        radius: guided: window radius in low-resolution pixels.
        eps: guided: ridge on A in normalised lightness squared.

    Returns:
        (B, C, H, W) normalised ab.
    """
    _check(guide, "guide", 1)
    _check(src, "src")
    if guide_low is None:
        guide_low = F.interpolate(guide, size=src.shape[-2:], mode="bilinear", antialias=True, align_corners=False)
    coefficients = upsample_coefficients(src, guide_low, method, radius, eps)
    full = F.interpolate(coefficients, size=guide.shape[-2:], mode="bilinear", align_corners=False)
    return apply_coefficients(full, guide)


# -- the benchmark --------------------------------------------------------------------------------

_BENCH_SIZE = 224   # the model's size the photos' chroma is reduced to
_BENCH_PATCH = 16   # its patch: the seam ratio is measured on the token grid, at full resolution
_GRID_MULTIPLE = 14  # photos are cropped to a square of a multiple of 14: a whole number of full-res
                     # pixels per token for 224 / 16 (14 tokens) and 112 / 16 (7 tokens)


def _crop(rgb: Tensor) -> Tensor:
    """(3, S, S): the largest centred square of ``rgb`` (3, H, W) whose side is a multiple of 14."""
    side = min(rgb.shape[-2:]) // _GRID_MULTIPLE * _GRID_MULTIPLE
    top, left = (rgb.shape[-2] - side) // 2, (rgb.shape[-1] - side) // 2
    return rgb[:, top:top + side, left:left + side]


def _scores(rgb: Tensor, light: Tensor, ab: Tensor, grid: int) -> dict[str, float]:
    """PSNR (RGB, dB) of the photo rebuilt from its L and ``ab``, and the seam ratio of ``ab``."""
    from adacolor.color import lab_merge
    from adacolor.metrics import psnr, seam_ratio

    out = lab_merge(light, ab)
    return {"psnr": round(float(psnr(out, rgb[None])[0]), 3),
            "seam": round(float(seam_ratio(ab, rgb.shape[-1] // grid)[0]), 3)}


def _photo_pass(rgb: Tensor, size: int, radius: int, eps: float) -> dict[str, dict[str, float]]:
    """The photo's own ab reduced to ``size`` (as the model's target is made) and brought back by
    each method; scored against the photo at full resolution."""
    from adacolor.color import lab_split

    light, _ = lab_split(rgb[None])
    small = F.interpolate(rgb[None], size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False).clamp(0, 1)
    _, ab_small = lab_split(small)
    return {method: _scores(rgb, light, upsample_ab(ab_small, light, method, radius=radius, eps=eps),
                            size // _BENCH_PATCH)
            for method in UPSAMPLE_METHODS}


def _model_pass(rgb: Tensor, model: Any, hints: int, seed: int) -> dict[str, dict[str, float]]:
    """``colorize`` with the model at ``hints`` random hints (coloured by the photo), per method."""
    from adacolor.color import lab_split
    from adacolor.colorize import colorize, random_user_hints

    points = random_user_hints(rgb.shape[-2], rgb.shape[-1], hints, seed=seed)
    light, _ = lab_split(rgb[None])
    grid = model.image_size[0] // model.patch_size
    scores = {}
    for method in UPSAMPLE_METHODS:
        out = colorize(model, rgb, points, upsample=method)["rgb"]
        scores[method] = _scores(rgb, light, lab_split(out[None])[1], grid)
    return scores


def _means(rows: Sequence[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    return {method: {score: round(sum(r[key][method][score] for r in rows) / len(rows), 3)
                     for score in ("psnr", "seam")} for method in UPSAMPLE_METHODS}


def run_bench(photos: Sequence[str] = (), model: Optional[str] = "default", hints: int = 10, seed: int = 0,
              radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS) -> dict[str, Any]:
    """Guided against bilinear upsampling, scored at full resolution on full-size photos.

    Each photo (cropped to a centred square whose side is a multiple of 14) is scored twice:
    ``truth``: its own ab reduced to 224 px and upsampled back (the upsampler alone, no model);
    ``model``: ``colorize`` with a shipped model at ``hints`` random hints. Scores: PSNR of the
    RGB (the photo's L with the upsampled ab) against the photo, and the seam ratio of the ab on
    the model's token grid (``seam_ratio`` with a full-resolution patch of side / tokens).

    Args:
        photos: scikit-image sample names (default: all of ``SAMPLE_PHOTO_FILES`` bundled).
        model: a shipped model name, ``default`` (the default one) or None (no model pass).
        hints: random hints of the model pass.
        seed: their seed.
        radius: of the guided filter.
        eps: of the guided filter.

    Returns:
        ``{"settings", "photos": [{"photo", "size", "truth": {method: {"psnr", "seam"}},
        "model": ...}], "mean": {"truth": ..., "model": ...}}``.
    """
    from adacolor.colorize import load_image
    from adacolor.data import SAMPLE_PHOTO_FILES, sample_photo_path

    names = list(photos) or [Path(name).stem for name in SAMPLE_PHOTO_FILES]
    loaded = None
    if model is not None:
        from adacolor.weights import load_shipped

        loaded = load_shipped(None if model == "default" else model)
    rows = []
    for name in names:
        rgb = _crop(load_image(sample_photo_path(name)))
        row: dict[str, Any] = {"photo": name, "size": list(rgb.shape[-2:]),
                               "truth": _photo_pass(rgb, _BENCH_SIZE, radius, eps)}
        if loaded is not None:
            row["model"] = _model_pass(rgb, loaded, hints, seed)
        rows.append(row)
    settings: dict[str, Any] = {"radius": radius, "eps": eps, "truth_size": _BENCH_SIZE,
                                "truth_patch": _BENCH_PATCH, "crop": f"centred square, side a multiple of "
                                                                     f"{_GRID_MULTIPLE}"}
    mean = {"truth": _means(rows, "truth")}
    if loaded is not None:
        settings.update(model=loaded.spec.name if loaded.spec is not None else model,
                        model_size=loaded.image_size[0], hints=hints, seed=seed)
        mean["model"] = _means(rows, "model")
    return {"settings": settings, "photos": rows, "mean": mean}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m adacolor.upsample bench [--out FILE]``: prints the benchmark's means, writes its JSON."""
    parser = argparse.ArgumentParser(prog="python -m adacolor.upsample",
                                     description="Guided against bilinear ab upsampling at full resolution.")
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("bench", help="score both methods on scikit-image's photos")
    bench.add_argument("--out", default=None, help="write the results here as JSON")
    bench.add_argument("--photos", default="", help="comma-separated sample names (default: all bundled)")
    bench.add_argument("--model", default="default", help="a shipped model, or 'none' for the no-model pass only")
    bench.add_argument("--hints", type=int, default=10, help="random hints of the model pass")
    bench.add_argument("--radius", type=int, default=GUIDED_RADIUS, help="guided filter window radius")
    bench.add_argument("--eps", type=float, default=GUIDED_EPS, help="guided filter ridge")
    args = parser.parse_args(argv)
    photos = [name.strip() for name in args.photos.split(",") if name.strip()]
    result = run_bench(photos, None if args.model == "none" else args.model, args.hints,
                       radius=args.radius, eps=args.eps)
    result["command"] = "python -m adacolor.upsample " + " ".join(argv if argv is not None else sys.argv[1:])
    for key, means in result["mean"].items():
        for method, scores in means.items():
            print(f"{key:<6} {method:<9} PSNR {scores['psnr']:.2f} dB  seam {scores['seam']:.3f}")
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
