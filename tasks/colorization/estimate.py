"""How long a reproduction takes on the 2-core development CPU, from rates measured on it.

Every number an estimate uses is here, as data, with where it was measured; the functions are
the arithmetic on top (standard library only: ``adacolor reproduce --help`` prints the estimate).

    >>> training_minutes("adacolvit-t", 224, steps=590, batch_size=32)      # 590 * 32 / 12 img/s
    26.2...
    >>> evaluation_minutes(224, images=500, passes=6)                       # quality at 6 hint counts

A training's time is its images (steps x batch) over the measured training rate of that model at
that size; an evaluation's is its photos times (reading one photo + one model-and-metrics pass per
hint count); a benchmark's is its timed forwards plus the exports of the graphs it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

__all__ = [
    "Measured",
    "TRAIN_RATES",
    "VIT_TINY",
    "EVAL_PASS_SECONDS",
    "PHOTO_SECONDS",
    "BENCH_FORWARD_MS",
    "EXPORT_SECONDS",
    "TRAIN_SET_IMAGES",
    "EVAL_SET_IMAGES",
    "steps_per_epoch",
    "training_steps",
    "training_rate",
    "training_minutes",
    "evaluation_minutes",
    "bench_minutes",
    "hours",
]


@dataclass(frozen=True)
class Measured:
    """One measured rate: its ``value`` (in the unit its table says) and where it was measured."""

    value: float
    where: str


# Training, images per second, by (registered model, image size); ``VIT_TINY`` stands for every
# ViT-Tiny/16 colorizer (iColoriT-T and the adaptive ones) at a size where no model of its own was
# timed. All on the 2-core development CPU (2 torch threads, 1 loader process).
VIT_TINY = "vit-tiny"
TRAIN_RATES: dict[tuple[str, int], Measured] = {
    ("icolorit-t", 112): Measured(82.0, "cpu-icolorit-t alone: 4,130 steps of 32 in 27 min (recipe comments: ~88 img/s)"),
    ("adacolvit-t", 112): Measured(34.0, "adacolor reproduce --scale cpu: adacolvit-t (spread budget), 3,540 steps "
                                         "of 32 at its median 34 img/s (55 min)"),
    ("dynamicvit-t", 112): Measured(50.0, "adacolor reproduce --scale cpu: dynamicvit-t, 4,130 steps of 32 in 44 min"),
    ("adavit-t", 112): Measured(45.0, "adacolor reproduce --scale cpu: adavit-t, 4,130 steps of 32 in 49 min"),
    ("avit-t", 112): Measured(46.0, "adacolor reproduce --scale cpu: avit-t, 4,130 steps of 32 in 48 min"),
    ("swinir-t", 112): Measured(10.5, "adacolor reproduce --scale cpu: swinir-t, 1,475 steps of 32 in 75 min"),
    ("uformer-t", 112): Measured(12.8, "adacolor reproduce --scale cpu: uformer-t alone, 12.8 img/s (1,475 steps)"),
    (VIT_TINY, 224): Measured(12.0, "ViT-Tiny/16 colorizers at 224 px: 9-20 img/s alone; cpu224-icolorit-t and "
                                    "cpu224-adacolvit-t, 590 steps of 32 in 31 and 33 min (10.2 / 9.5 img/s, "
                                    "the cores shared)"),
}
# The registered ViT-Tiny/16 colorizers (``VIT_TINY`` applies to them).
VIT_TINY_MODELS = ("icolorit-t", "adacolvit-t", "dynamicvit-t", "adavit-t", "avit-t")

# Evaluation: seconds per photo and hint count (the model at batch 16, PSNR, LPIPS (alex), the
# seam metric), by image size.
EVAL_PASS_SECONDS: dict[int, Measured] = {
    112: Measured(0.012, "adacolor reproduce --scale cpu: quality runs, 500 Imagenette val photos x 6 hint counts "
                         "in 33-46 s (e.g. quality-dynamicvit-t 33 s)"),
    224: Measured(0.20, "adacolor.evaluate.evaluate as reproduce runs it, 100 Imagenette val photos x 3 hint counts: "
                        "icolorit-t-224 0.14 s, adacolvit-t-224 0.32 s per photo and hint count (cores shared)"),
}
# Reading one photo of a data set where that costs more than the pass (large JPEGs), seconds.
PHOTO_SECONDS: dict[str, Measured] = {
    "shared:flowers17-subset/test": Measured(0.025, "adacolor reproduce --scale cpu: transfer runs, 240 photos at "
                                                    "one hint count in 7-10 s"),
    "shared:cub200-subset/test": Measured(0.025, "adacolor reproduce --scale cpu: transfer runs, 2,999 photos at "
                                                 "one hint count in 84-113 s"),
}
# Benchmark: one single-thread batch-1 forward, milliseconds, by the size the models take.
BENCH_FORWARD_MS: dict[int, Measured] = {
    112: Measured(46.0, "adacolor reproduce --scale cpu: Table 2, SwinIR-T 45.7 ms (the slowest; iColoriT-T 15.9)"),
    224: Measured(43.0, "adacolor bench: icolorit-t-224 43 ms, adacolvit-t-224 40 ms, swinir-t / uformer-t at "
                        "112 px 36-37 ms (cores shared)"),
}
# Exporting a colorizer to ONNX for another runtime (once per model), seconds.
EXPORT_SECONDS: dict[str, Measured] = {
    "dense": Measured(10.0, "adacolor.exported.on_runtime: a dense ViT colorizer, a few seconds"),
    "adaptive": Measured(120.0, "adacolor.exported: an adaptive graph takes about two minutes on 2 cores"),
}
# Photos in the data sets the scales use (counted in /work/shared/data).
TRAIN_SET_IMAGES: dict[str, int] = {"shared:imagenette/train": 9469, "samples": 6}
EVAL_SET_IMAGES: dict[str, int] = {"shared:imagenette/val": 3925, "shared:flowers17-subset/test": 240,
                                   "shared:cub200-subset/test": 2999, "samples": 6}


def steps_per_epoch(images: int, batch_size: int) -> int:
    """Full batches of an epoch (``adacolor.train.epoch_order``: the remainder is dropped; a data
    set smaller than one batch is repeated to one batch)."""
    return max(1, images // batch_size)


def training_steps(data: str, batch_size: int, epochs: int, max_steps: Optional[int] = None) -> Optional[int]:
    """Steps of a training: ``max_steps``, else ``epochs`` over ``data`` (None: a data set of
    unknown size, e.g. an ImageNet folder)."""
    if max_steps is not None:
        return max_steps
    images = TRAIN_SET_IMAGES.get(data)
    return None if images is None else epochs * steps_per_epoch(images, batch_size)


def training_rate(model: str, size: int) -> tuple[float, str]:
    """Training images per second of ``model`` at ``size`` px and where that comes from: the
    model's own rate at that size, else ViT-Tiny's there, else its rate at another size scaled
    by the pixel count (KeyError: nothing measured for the model)."""
    if (model, size) in TRAIN_RATES:
        rate = TRAIN_RATES[model, size]
        return rate.value, rate.where
    if model in VIT_TINY_MODELS and (VIT_TINY, size) in TRAIN_RATES:
        rate = TRAIN_RATES[VIT_TINY, size]
        return rate.value, rate.where
    measured = sorted((abs(s - size), s) for m, s in TRAIN_RATES if m == model)
    if not measured:
        raise KeyError(f"no training rate measured for {model}")
    other = measured[0][1]
    rate = TRAIN_RATES[model, other]
    return rate.value * (other / size) ** 2, f"{rate.where}, scaled from {other} to {size} px by the pixel count"


def training_minutes(model: str, size: int, steps: int, batch_size: int) -> float:
    """Minutes of ``steps`` of ``batch_size`` photos of ``model`` at ``size`` px."""
    return steps * batch_size / training_rate(model, size)[0] / 60


def evaluation_minutes(size: int, images: int, passes: int, data: str = "") -> float:
    """Minutes of evaluating ``images`` photos of ``data`` at ``size`` px, ``passes`` hint counts each."""
    pass_seconds = _nearest(EVAL_PASS_SECONDS, size)
    photo = PHOTO_SECONDS[data].value if data in PHOTO_SECONDS else 0.0
    return images * (photo + passes * pass_seconds) / 60


def bench_minutes(size: int, forwards: int, exports: Sequence[str] = ()) -> float:
    """Minutes of ``forwards`` timed batch-1 forwards at ``size`` px, plus one export per entry
    of ``exports`` (``dense`` / ``adaptive``)."""
    return (forwards * _nearest(BENCH_FORWARD_MS, size) / 1000 + sum(EXPORT_SECONDS[e].value for e in exports)) / 60


def _nearest(table: dict[int, Measured], size: int) -> float:
    """The value at ``size``, else the nearest size's scaled by the pixel count."""
    if size in table:
        return table[size].value
    other = min(table, key=lambda s: abs(s - size))
    return table[other].value * (size / other) ** 2


def hours(minutes: float) -> str:
    """``minutes`` as hours to one decimal, e.g. ``9.8 h``."""
    return f"{minutes / 60:.1f} h"
