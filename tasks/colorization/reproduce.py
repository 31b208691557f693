"""The paper's comparisons as a list of runs, a resumable runner, and the report built from them.

    adacolor reproduce --scale tiny --out runs/repro-tiny          # every table and figure, minutes
    adacolor reproduce --scale cpu --out runs/repro-cpu --only train,fig4
    adacolor reproduce --scale cpu --form scratch --out runs/repro-cpu-scratch
    adacolor reproduce --report-only --out runs/repro-cpu --docs docs/results.md

A scale (``tiny``, ``cpu``, ``paper``) is data: the models to train (recipe plus overrides, and
which tables and figures use each) and the evaluation settings. A form says how the models start:
``finetune`` (the default at the tiny and cpu scales) trains the dense iColoriT-T once and
fine-tunes every adaptive model from its checkpoint in ``DIR`` (``init=run:NAME``, the same number
of steps each); ``scratch`` trains every model from its random initialisation by its recipe.
``plan`` turns a scale into runs: trainings into ``DIR/train/<name>/`` and evaluations into
``DIR/eval/<name>/result.json``. A run whose result exists is skipped; a training whose checkpoint
reached its last step is done (checkpoints trained elsewhere can be placed there); a killed
training resumes exactly from its checkpoint (a fine-tune from its own, not its base's); a
fine-tune waits for its base. ``collect`` gathers the results into ``results.json``;
``adacolor.report`` writes ``report.md`` from it and ``adacolor.figures`` the PNG figures. Each
run's expected time comes from rates measured on the 2-core CPU (``adacolor.estimate``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import platform
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Literal, Optional, Sequence, Union

from adacolor import estimate
from adacolor.runlock import claim


__all__ = [
    "Training",
    "Evaluation",
    "Scale",
    "SCALES",
    "FORMS",
    "default_form",
    "make_scale",
    "ablation_choice",
    "estimated_minutes",
    "plan",
    "schedule",
    "to_do",
    "training_done",
    "same_training",
    "shipped_twin",
    "run_suite",
    "SuiteInterrupted",
    "resolved_overrides",
    "bench_runtimes",
    "scored_size",
    "trained_how",
    "collect",
    "write_outputs",
    "add_arguments",
    "help_estimates",
    "run",
]

EvalKind = Literal["quality", "transfer", "compute", "random", "bench"]
FIG8_BLOCK = 3        # the paper's "block 3", counted from 1 (index 2)
FIG6_K = 10           # hints of Fig. 6, Tables 1, 3, 4 and the compute spread
FORMS = ("finetune", "scratch")
RUN_INIT = "run:"     # init=run:NAME: start from DIR/train/NAME/checkpoint.pt (resolved when it runs)
RUNTIMES = ("torch", "onnxruntime", "openvino")   # what the bench can time a model on
MAIN_ROLES = ("fig4", "table1", "table2", "fig7", "fig8")   # scored at the scale's main size


@dataclass(frozen=True)
class Training:
    """One model to train into ``DIR/train/<name>/``.

    Attributes:
        name: the run name (folder, ``--only`` token).
        label: the name in the paper's tables, e.g. ``AdaColViT-T (G=4)``.
        recipe: a shipped recipe; ``overrides`` are ``--set`` strings applied on top.
        roles: the result keys that use it (``fig4``, ``table1`` ... ``fig7``; ``reference``: the
            dense model Table 3 states its GFLOPs against, at the ablations' size).
        tags: what the tables group by, e.g. ``{"groups": 4}`` or ``{"variant": "patch"}``.
        minutes: the expected training time at this scale (progress lines and the estimate).
        model: the registered colorizer it trains; image_size: the size it trains at.
    """

    name: str
    label: str
    recipe: str
    overrides: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    tags: tuple[tuple[str, Any], ...] = ()
    minutes: float = 1.0
    model: str = ""
    image_size: int = 0

    @property
    def tag(self) -> dict[str, Any]:
        return dict(self.tags)

    @property
    def base(self) -> Optional[str]:
        """The training it is fine-tuned from (its ``init=run:NAME``), or None: from scratch."""
        init = next((o.split("=", 1)[1] for o in self.overrides if o.startswith("init=")), "")
        return init[len(RUN_INIT):] if init.startswith(RUN_INIT) else None

    @property
    def form(self) -> str:
        """``finetune`` (from another training of the suite) or ``scratch``."""
        return "scratch" if self.base is None else "finetune"


@dataclass(frozen=True)
class Evaluation:
    """One evaluation into ``DIR/eval/<name>/result.json``.

    Attributes:
        name: the run name.
        kind: ``quality`` (PSNR@k, LPIPS@k, GFLOPs), ``transfer`` (the same on a Table 1 set),
            ``compute`` (per-image GFLOPs and keep masks), ``random`` (quality under
            ``adaprune.policy("random")`` at the keep ratios the ``compute`` run measured),
            ``bench`` (single-thread batch-1 latency of every ``trainings`` model).
        trainings: the models it needs.
        data: a data spec (``samples``, ``shared:REL``, a folder, ``ctest10k:IMAGENET_VAL``).
        ks: hint counts. images: evenly spread images of ``data`` (None: all).
        dataset: the Table 1 label of ``data`` (transfer runs).
        minutes: the expected time (progress lines and the estimate).
        image_size: the size its models are scored at (None: each model's own); a model trained
            at another size takes its input resized (``adacolor.model.ResizedColorizer``).
    """

    name: str
    kind: EvalKind
    trainings: tuple[str, ...]
    data: str = ""
    ks: tuple[int, ...] = (FIG6_K,)
    images: Optional[int] = None
    dataset: str = ""
    minutes: float = 1.0
    image_size: Optional[int] = None


Run = Union[Training, Evaluation]


@dataclass(frozen=True)
class Scale:
    """Everything a scale fixes: models, data, evaluation and benchmark settings.

    ``image_size`` is the main size (Fig. 4, Tables 1 and 2, Figs. 7 and 8); ``ablation_size`` that
    of Tables 3 and 4 and Fig. 6 (None: the main size), with ``sizes_why`` saying why. ``rates``:
    the runs' minutes come from the measured rates (``adacolor.estimate``), else they are a
    rough figure per run. ``bench_runtimes``: what the bench times each model on (None: torch and
    every other runtime installed).
    """

    name: str
    description: str
    image_size: int
    train_data: str
    eval_data: str
    eval_images: Optional[int]
    transfer: tuple[tuple[str, str], ...]   # Table 1: (label, data spec)
    transfer_images: Optional[int]
    ks: tuple[int, ...]                     # Fig. 4's hint counts (and more for the table)
    trainings: tuple[Training, ...]
    why: str                                # why this model list
    bench_repeats: int = 5
    bench_runs: int = 100
    bench_warmup: int = 10
    fig7_shown: int = 4
    fig8_photos: int = 8
    batch_size: int = 16
    eval_minutes: float = 1.0               # expected minutes of one quality evaluation (without rates)
    aim_minutes: Optional[float] = None     # the time the whole suite was meant to fit in
    form: str = "scratch"                   # "finetune" or "scratch" (FORMS)
    ablation_size: Optional[int] = None
    sizes_why: str = ""
    rates: bool = False
    bench_runtimes: Optional[tuple[str, ...]] = None

    @property
    def sizes(self) -> dict[str, int]:
        """``{"main": px, "ablations": px}``."""
        return {"main": self.image_size, "ablations": self.ablation_size or self.image_size}


# -- the models: name, label, registered model, roles, overrides, tags ---------------------

_MAIN = ("fig4", "table1", "table2")
# AdaColViT variants whose beta_patch gives about the GFLOPs of G=2 at beta 0.5 (measured with
# adaprune's random policy at 112 px: G=2 / 0.5 -> 0.622 of dense, G=4 / 0.67 -> 0.629,
# G=8 / 0.72 -> 0.63), so that Table 4 compares at about equal compute.
_GROUPS = ((4, 0.67), (8, 0.72))
# AdaColViT at the baselines' budget (Table 3: DynamicViT at 0.85 of dense): 0.8 / 0.95 -> 0.853.
_TABLE3_BETAS = (0.8, 0.95)
# Fig. 6's budgets per variant: (beta_patch, beta_layer).
_FIG6 = {
    "patch+layer": ((0.3, 0.6), (0.5, 0.8), (0.7, 0.9)),
    "patch": ((0.3, 1.0), (0.5, 1.0), (0.7, 1.0)),
    "layer": ((1.0, 0.6), (1.0, 0.8), (1.0, 0.9)),
}
_VARIANT_SETS = {"patch+layer": (), "patch": ("layer_skip=false",), "layer": ("patch_groups=1",)}
# The budget forms (issue item 3). The cpu recipe holds the spread budget (a uniform target around
# the betas); at the cpu scale (and the tiny one, which mirrors it) the ablations (Tables 3 and 4,
# Fig. 6) keep the batch mean they were trained with, so that they compare among themselves:
# AdaColViT-T's twin with that form is then Table 4's G = 2 row. At the paper scale everything has
# the recipe's budget. {model: ((form, half-width or None for the recipe's, run name), ...)}: the
# model again with each form in place of its own, everything else its (a twin that comes out equal
# to its model at a scale is not trained). The spread half-widths beyond the recipe's 0.2 are an
# open sweep (2 epochs: 0.35 and 0.5; 12 epochs: 0.5, the widest the betas allow for patches).
_ABLATION_BUDGET = {"tiny": "batch", "cpu": "batch", "paper": None}
_BUDGET_FORMS = {
    "adacolvit-t": (("batch", None, "adacolvit-t-batch"), ("sample", None, "adacolvit-t-sample"),
                    ("spread", 0.5, "adacolvit-t-spread50")),
    "fig6-pl-p50-l80": (("sample", None, "budget-sample-pl-p50-l80"), ("spread", None, "budget-spread-pl-p50-l80"),
                        ("spread", 0.35, "budget-spread35-pl-p50-l80"), ("spread", 0.5, "budget-spread50-pl-p50-l80")),
}
_FORM_LABELS = {"batch": "batch-mean budget", "sample": "per-sample budget", "spread": "spread budget"}


def _merged(*groups: Sequence[str]) -> tuple[str, ...]:
    """``--set`` strings in order, a later ``key=`` replacing an earlier one of the same key."""
    merged: dict[str, str] = {}
    for text in (t for g in groups for t in g):
        key = text.split("=", 1)[0]
        merged.pop(key, None)   # the later one takes the later place
        merged[key] = text
    return tuple(merged.values())


@dataclass(frozen=True)
class _Model:
    name: str
    label: str
    model: str
    roles: tuple[str, ...]
    sets: tuple[str, ...] = ()
    tags: tuple[tuple[str, Any], ...] = ()
    vit: bool = True
    short: bool = False   # cpu scale: the Fig. 6 length (_FIG6_CPU_EPOCHS), not the recipe's


def _models(paper: bool, ablation_budget: Optional[str] = None, g2_from_fig6: bool = False) -> list[_Model]:
    """The suite's models; ``paper`` adds the larger iColoriT / AdaColViT / SwinIR / Uformer;
    ``ablation_budget``: the budget form of the ablations (None: the recipe's); ``g2_from_fig6``:
    Table 4's G = 2 row is the Fig. 6 model at G = 2 and the paper's betas (its config where the
    ablations are fine-tuned at a size of their own) instead of AdaColViT-T's batch-mean twin."""
    ablation = () if ablation_budget is None else (f"budget={ablation_budget}",)
    models = [
        _Model("icolorit-t", "iColoriT-T", "icolorit-t", _MAIN),
        _Model("adacolvit-t", "AdaColViT-T", "adacolvit-t",
               _MAIN + ("fig7", "fig8") + (("table4",) if ablation_budget is None else ()), (),
               (("groups", 2), ("beta_patch", 0.5), ("beta_layer", 0.8))),
        _Model("swinir-t", "SwinIR-T", "swinir-t", ("fig4", "table1", "table2"), vit=False),
        _Model("uformer-t", "Uformer-T", "uformer-t", ("fig4", "table1", "table2"), vit=False),
        _Model("dynamicvit-t", "DynamicViT-T", "dynamicvit-t", ("table3",)),
        _Model("adavit-t", "AdaViT-T", "adavit-t", ("table3",)),
        _Model("avit-t", "A-ViT-T", "avit-t", ("table3",)),
        _Model("adacolvit-t-t3", "AdaColViT-T", "adacolvit-t", ("table3",),
               (f"beta_patch={_TABLE3_BETAS[0]}", f"beta_layer={_TABLE3_BETAS[1]}") + ablation,
               (("beta_patch", _TABLE3_BETAS[0]), ("beta_layer", _TABLE3_BETAS[1]))),
    ]
    models += [_Model(f"adacolvit-t-g{g}", f"AdaColViT-T (G={g})", "adacolvit-t", ("table4",),
                      (f"patch_groups={g}", f"beta_patch={beta}") + ablation,
                      (("groups", g), ("beta_patch", beta)))
               for g, beta in _GROUPS]
    for variant, budgets in _FIG6.items():
        short = {"patch+layer": "pl", "patch": "p", "layer": "l"}[variant]
        for beta_patch, beta_layer in budgets:
            sets = _VARIANT_SETS[variant]
            if variant != "layer":
                sets += (f"beta_patch={beta_patch}",)
            if variant != "patch":
                sets += (f"beta_layer={beta_layer}",)
            sets += ablation
            name = f"fig6-{short}-p{round(beta_patch * 100)}-l{round(beta_layer * 100)}"
            g2 = g2_from_fig6 and name == _FIG6_G2
            models.append(_Model(name, f"{variant} ({beta_patch:g}, {beta_layer:g})", "adacolvit-t",
                                 ("fig6",) + (("table4",) if g2 else ()), sets,
                                 (("variant", variant), ("beta_patch", beta_patch), ("beta_layer", beta_layer))
                                 + ((("groups", 2),) if g2 else ()), short=True))
    models += [_twin(m, form, width, name, table4=m.name == "adacolvit-t" and form == ablation_budget
                     and not g2_from_fig6)
               for m in models if m.name in _BUDGET_FORMS for form, width, name in _BUDGET_FORMS[m.name]]
    if paper:
        models += [_Model(n, label, n, ("fig4", "table2"), vit=not n.startswith(("swinir", "uformer")))
                   for n, label in (("icolorit-t-d6", "iColoriT-T (6 blocks)"), ("icolorit-t-d24", "iColoriT-T (24 blocks)"),
                                    ("icolorit-s", "iColoriT-S"), ("adacolvit-t-d24", "AdaColViT-T (24 blocks)"),
                                    ("adacolvit-s", "AdaColViT-S"), ("swinir-s", "SwinIR-S"), ("uformer-s", "Uformer-S"))]
    return models


_FIG6_G2 = "fig6-pl-p50-l80"   # the Fig. 6 model at G = 2 and the paper's betas (0.5, 0.8)


def _twin(model: _Model, form: str, width: Optional[float], name: str, table4: bool = False) -> _Model:
    """``model`` trained with another budget ``form`` (and spread half-width), everything else its;
    ``table4``: it is Table 4's G = 2 row."""
    sets = _merged(model.sets, (f"budget={form}",), () if width is None else (f"budget_spread={width:g}",))
    label = _FORM_LABELS[form] + ("" if width is None else f" (half-width {width:g})")
    tags = tuple(t for t in model.tags if t[0] != "groups" or table4) + (("twin_of", model.name),)
    roles = ("budget",) + (("table4",) if table4 else ())
    return dataclasses.replace(model, name=name, label=f"{model.label}, {label}", roles=roles, sets=sets, tags=tags)


def _is_ablation(model: _Model) -> bool:
    """Whether a model belongs to the ablations (Tables 3 and 4, Fig. 6 and their budget twins),
    trained at the ablations' size, rather than to the main comparison (AdaColViT-T's twins included)."""
    if model.name in ("icolorit-t", "adacolvit-t") or dict(model.tags).get("twin_of") == "adacolvit-t":
        return False
    return not set(model.roles) & set(MAIN_ROLES)


_FIG6_CPU_EPOCHS = 2   # the scratch form's Fig. 6 length at the cpu scale
# The fine-tune length at the cpu scale, at either size: 2 epochs of Imagenette (590 steps of 32),
# the cpu224 recipes' (about 26 min each at 224 px).
_FINETUNE_EPOCHS = 2
_FINETUNE_SETS = ("checkpoint_every=50",)   # a killed 224-px fine-tune loses minutes, not a quarter hour
_CPU_SIZES = (224, 112)   # the cpu scale in the fine-tune form: main size, and the size of what does not fit it
_TINY_SIZES = (64, 32)    # tiny: the same two-size layout, shrunk
_LOWRES = "icolorit-t-lowres"   # the fine-tune form's dense iColoriT-T at the smaller size (from scratch)
# ... at the cpu scale with the first models' linear head: it is the shipped icolorit-t-cpu
# (``--from-shipped``), made before iColoriT's conv head became the default, and the 112-px
# fine-tunes started from it (their conv head starts new)
_LOWRES_SETS = {"cpu": ("head=linear",), "tiny": ()}
# The dense reference of the ablations at the smaller size: the dense base given the same fine-tune
# as the adaptive models there (the same steps, and the conv head they all have), so that the
# gates are the one difference (the base's GFLOPs are those of another head at the cpu scale)
_LOWRES_TUNED = "icolorit-t-lowres-tuned"
CPU_AIM_MINUTES = 10 * 60       # the whole cpu suite is meant to fit 10 hours on 2 cores
# tiny: a high learning rate and sparsity weight so that 8 steps already move the gates (the
# plumbing then sees real token and layer decisions, not keep-everything)
_TINY_SETS = ("image_size=64", "max_steps=8", "batch_size=4", "val_images=2", "eval_every=0",
              "checkpoint_every=0", "log_every=1", "max_hints=16", "lr=0.005", "warmup=0",
              "sparsity_weight=50")
_TINY_VIT = ("patch_size=8", "depth=4")

_CPU_WHY = (
    "The cpu scale trains the Tiny models only, at 112 px on Imagenette: iColoriT-T and AdaColViT-T "
    "(the paper's main pair; AdaColViT-T with its recipe's spread budget), SwinIR-T and Uformer-T (one "
    "restoration transformer of each kind, an hour or more each), the three token-pruning baselines and an "
    "AdaColViT-T at their budget (Table 3), AdaColViT-T at G = 4 and 8 (Table 4) and nine short (2-epoch) "
    "AdaColViT-T trainings for Fig. 6, whose learned-against-random comparison is within each model and so "
    "needs no full-length training. The ablations (Tables 3 and 4, Fig. 6) hold the sparsity budget on the "
    "batch mean, the form the cpu recipe used before the spread budget: they compare among themselves, "
    "Table 4's G = 2 row being AdaColViT-T's batch-mean twin, and retraining them would cost about 4 more hours. "
    "The budget forms are compared on AdaColViT-T (12 epochs: batch mean and per sample beside the spread) and "
    "on one Fig. 6 budget (2 epochs: per sample and spread at half-widths 0.2, 0.35 and 0.5 beside the batch "
    "mean). The Small / 6- / 24-block variants and SwinIR-S / Uformer-S (2-4x the compute each) would not fit "
    "the 10 hours aimed at on a 2-core machine; the paper scale trains them.")

_CPU_FINETUNE_WHY = (
    "The cpu scale trains the Tiny models only, on Imagenette, the way adaptive ViTs are made (DynamicViT, "
    "A-ViT and AdaViT fine-tune a trained dense ViT): the dense iColoriT-T is trained once, from scratch at "
    "112 px with the first models' linear head (`icolorit-t-lowres`, 14 epochs), and brought to 224 px with "
    "iColoriT's conv head (`icolorit-t`, 2 epochs from it); every adaptive model is fine-tuned from the dense "
    "model of its size (`--init`: the backbone loads and the gates start new; the conv head loads at 224 px "
    "and starts new at 112 px, where the base has the linear one) for the same 2 epochs (590 steps of 32); "
    "the dense reference of the models at 112 px is the base given that same fine-tune "
    "(`icolorit-t-lowres-tuned`: the conv head, 2 epochs), so that the gates are the one difference. "
    "The main pair "
    "(iColoriT-T and AdaColViT-T with its recipe's spread budget, Fig. 4, Tables 1 and 2, Figs. 7 and 8) "
    "is at 224 px, the paper's size. SwinIR-T and Uformer-T (one restoration transformer of each kind) "
    "cannot start from the ViT: they are trained from scratch at 112 px by their recipes (5 epochs, over an "
    "hour each; at 224 px {restoration_224}) and scored at 224 px with their input resized. The ablations "
    "(Tables 3 and 4, Fig. 6) hold the sparsity budget on the batch mean so that they compare among "
    "themselves: the three token-pruning baselines and an AdaColViT-T at their budget (Table 3), "
    "AdaColViT-T at G = 4 and 8 beside the Fig. 6 model at G = 2 and the paper's betas (Table 4) and nine "
    "AdaColViT-T budgets (Fig. 6). The budget forms are compared on AdaColViT-T (batch mean and per sample "
    "beside the spread) and on one Fig. 6 budget (per sample and spread at half-widths 0.2, 0.35 and 0.5 "
    "beside the batch mean). The Small / 6- / 24-block variants and SwinIR-S / Uformer-S (2-4x the compute "
    "each) would not fit a 2-core machine; the paper scale trains them.")


def _cpu_budget() -> tuple[str, str]:
    """The budget of the ``cpu-adacolvit-t`` recipe as ``--set`` strings."""
    from adacolor.config import config_values

    values = config_values("cpu-adacolvit-t")
    return f"budget={values['budget']}", f"budget_spread={values['budget_spread']:g}"


ConfigValues = Callable[[str, Sequence[str]], dict[str, Any]]


def _config_reader() -> ConfigValues:
    """``adacolor.config.config_values`` (torch-free) with each recipe read once: the plan reads
    the same few recipes for every training, and ``--help`` builds plans."""
    from adacolor.config import config_values, load_recipe, parse_overrides

    recipes: dict[str, dict[str, Any]] = {}

    def values(recipe: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
        if recipe not in recipes:
            recipes[recipe] = load_recipe(recipe)
        return config_values(None, (), **{**recipes[recipe], **parse_overrides(overrides)})

    return values


def _without_repeats(trainings: list[Training], values: Optional[ConfigValues] = None) -> list[Training]:
    """``trainings`` less the budget twins that come out equal to their model (the same config),
    e.g. the per-sample twin where the recipe's budget is per sample."""
    values = values or _config_reader()
    own = {t.name: values(t.recipe, t.overrides) for t in trainings if t.name in _BUDGET_FORMS}
    return [t for t in trainings
            if "twin_of" not in t.tag or values(t.recipe, t.overrides) != own[t.tag["twin_of"]]]


def default_form(scale: str) -> str:
    """The form a scale trains in unless told: ``finetune`` at the tiny and cpu scales, ``scratch``
    at the paper scale (its recipes train every model as the paper did)."""
    return "scratch" if scale == "paper" else "finetune"


def _training_minutes(recipe: str, sets: Sequence[str], config: ConfigValues) -> float:
    """A cpu-scale training's minutes from the measured rates (``adacolor.estimate``)."""
    values = config(recipe, sets)
    steps = estimate.training_steps(values["data"], values["batch_size"], values["epochs"], values["max_steps"])
    return 0.0 if steps is None else estimate.training_minutes(values["model"], values["image_size"], steps,
                                                                values["batch_size"])


def make_scale(name: str, data: Optional[str] = None, form: Optional[str] = None,
               ablation_size: Optional[int] = None) -> Scale:
    """The scale ``tiny``, ``cpu`` or ``paper`` in a form.

    Args:
        name: the scale.
        data: ``paper`` only: an ImageNet root with ``train/`` and ``val/``; training then uses
            ``ROOT/train`` and evaluation the ctest10k list over ``ROOT/val``. Without it the
            paper scale trains and evaluates on Imagenette at 224 px.
        form: ``finetune`` or ``scratch`` (None: ``default_form``); the paper scale is ``scratch`` only.
        ablation_size: the fine-tune form's size for Tables 3, 4 and Fig. 6 (None: decided by
            ``ablation_choice``, the main size if the cpu suite then fits its aim, else the smaller).
    """
    if name not in ("tiny", "cpu", "paper"):
        raise ValueError(f"unknown scale {name!r}; choose tiny, cpu or paper")
    if data is not None and name != "paper":
        raise ValueError("--data applies to --scale paper (an ImageNet root with train/ and val/)")
    form = form or default_form(name)
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; choose {' or '.join(FORMS)}")
    if name == "paper" and form != "scratch":
        raise ValueError("the paper scale trains every model by its recipe (--form scratch)")
    transfer = (("Oxford flowers", "shared:flowers17-subset/test"), ("CUB-200", "shared:cub200-subset/test"))
    config = _config_reader()
    if form == "finetune":
        return _finetune_scale(name, transfer, ablation_size, config)
    trainings = []
    for m in _models(paper=name == "paper", ablation_budget=_ABLATION_BUDGET[name]):
        if name == "tiny":
            recipe = "smoke"   # AdaColViT-T's budget as its cpu recipe's unless overridden
            sets = _merged((f"model={m.model}",), _TINY_SETS, _TINY_VIT if m.vit else (),
                           _cpu_budget() if m.model == "adacolvit-t" else (), m.sets)
            minutes, size = 0.05, 64
        elif name == "cpu":
            recipe = f"cpu-{m.model}"
            sets = m.sets + ((f"epochs={_FIG6_CPU_EPOCHS}",) if m.short else ())
            minutes, size = _training_minutes(recipe, sets, config), 112
        else:
            recipe, sets, minutes, size = m.model, m.sets, 60.0 * 24, 224
            if data is not None:
                sets = (f"data={Path(data) / 'train'}",) + sets
            else:
                sets = ("data=shared:imagenette/train",) + sets
        roles = m.roles + (("reference",) if m.name == "icolorit-t" else ())
        trainings.append(Training(m.name, m.label, recipe, sets, roles, m.tags, minutes, m.model, size))
    trainings = _without_repeats(trainings, config)
    if name == "tiny":
        return Scale("tiny", "tiny (plumbing check, not numbers): 64 px, 4-block ViTs with 8 px patches, "
                     "8 training steps on scikit-image's 6 photos, every model from scratch", 64, "samples", "samples",
                     None, transfer, 4, (1, 5, 10, 20, 50), tuple(trainings),
                     "every model of the cpu scale, shrunk to 4 blocks at 64 px, so that every table and "
                     "figure is made end to end in minutes", bench_repeats=5, bench_runs=5, bench_warmup=2,
                     fig7_shown=2, fig8_photos=4, batch_size=8, eval_minutes=0.02)
    if name == "cpu":
        return Scale("cpu", "cpu: 112 px, Imagenette train (9,469 photos), every model from scratch, evaluated on "
                     "500 Imagenette val photos with saved hint sets", 112, "shared:imagenette/train",
                     "shared:imagenette/val", 500, transfer, None, (1, 5, 10, 20, 50, 100), tuple(trainings),
                     _CPU_WHY, eval_minutes=1.5, aim_minutes=CPU_AIM_MINUTES, rates=True,
                     sizes_why="every model at 112 px (the scratch form)")
    eval_data = f"ctest10k:{Path(data) / 'val'}" if data is not None else "shared:imagenette/val"
    where = (f"ImageNet train ({data}/train), evaluated on ctest10k" if data is not None
             else "Imagenette train, evaluated on 500 Imagenette val photos (no ImageNet given)")
    return Scale("paper", f"paper: 224 px, the paper's recipes, {where}", 224, str(data or "shared:imagenette/train"),
                 eval_data, None if data is not None else 500, transfer, None, (1, 5, 10, 20, 50, 100),
                 tuple(trainings), "every model of the paper's comparisons, at the paper's recipes",
                 eval_minutes=10.0)


def _finetune_trainings(name: str, main: int, small: int, ablations: int, config: ConfigValues) -> list[Training]:
    """The fine-tune form's trainings of the tiny or cpu scale: the dense iColoriT-T from scratch
    at ``small`` px (``icolorit-t-lowres``) and brought to ``main`` px (``icolorit-t``), every
    adaptive model fine-tuned from the dense model of its size (the main pair and its budget twins
    at ``main``, the ablations at ``ablations``), SwinIR-T and Uformer-T from scratch at ``small``."""
    base = {main: "icolorit-t", small: _LOWRES}
    models = _models(paper=False, ablation_budget=_ABLATION_BUDGET[name], g2_from_fig6=ablations != main)

    def sets_for(model: str, vit: bool, own: Sequence[str], size: int, init: Optional[str]) -> tuple[str, ...]:
        start = () if init is None else (f"init={RUN_INIT}{init}",)
        if name == "tiny":
            return _merged((f"model={model}",), _TINY_SETS, _TINY_VIT if vit else (),
                           _cpu_budget() if model == "adacolvit-t" else (), own, (f"image_size={size}",), start)
        length = () if init is None else (f"epochs={_FINETUNE_EPOCHS}",) + _FINETUNE_SETS
        return _merged(own, () if size == 112 else (f"image_size={size}",), start, length)

    def training(name_: str, label: str, model: str, vit: bool, own: Sequence[str], roles: tuple[str, ...],
                 tags: tuple[tuple[str, Any], ...], size: int, init: Optional[str]) -> Training:
        recipe = "smoke" if name == "tiny" else f"cpu-{model}"
        sets = sets_for(model, vit, own, size, init)
        minutes = 0.05 if name == "tiny" else _training_minutes(recipe, sets, config)
        return Training(name_, label, recipe, sets, roles, tags, minutes, model, size)

    reference = ("reference",)
    trainings = [training(_LOWRES, f"iColoriT-T ({small} px)", "icolorit-t", True, _LOWRES_SETS[name], (), (),
                          small, None)]
    if ablations == small:
        trainings.append(training(_LOWRES_TUNED, f"iColoriT-T ({small} px, fine-tuned)", "icolorit-t", True, (),
                                  reference, (), small, _LOWRES))
    for m in models:
        if m.name == "icolorit-t":
            roles = m.roles + (reference if ablations == main else ())
            trainings.append(training(m.name, m.label, m.model, True, m.sets, roles, m.tags, main, _LOWRES))
        elif not m.vit:   # no ViT to start from: from scratch, at the smaller size
            trainings.append(training(m.name, m.label, m.model, False, m.sets, m.roles, m.tags, small, None))
        else:
            size = ablations if _is_ablation(m) else main
            trainings.append(training(m.name, m.label, m.model, True, m.sets, m.roles, m.tags, size, base[size]))
    return _without_repeats(trainings, config)


def estimated_minutes(scale: Scale) -> float:
    """The expected minutes of a whole suite: the sum over its runs (``plan``)."""
    return sum(r.minutes for r in plan(scale))


def ablation_choice(aim: float = CPU_AIM_MINUTES, config: Optional[ConfigValues] = None) -> dict[str, Any]:
    """Where the cpu scale's fine-tune form puts Tables 3, 4 and Fig. 6: at the main size (224 px)
    if the whole suite then fits ``aim`` minutes by the measured rates, else at the smaller size.

    Returns:
        ``{"size", "minutes": {size: the suite's estimated minutes with the ablations there},
        "aim", "why", "scale": the cpu scale with the ablations at "size"}``.
    """
    main, small = _CPU_SIZES
    config = config or _config_reader()
    scales = {size: _cpu_finetune(size, "", config) for size in (main, small)}
    minutes = {size: estimated_minutes(scale) for size, scale in scales.items()}
    size = main if minutes[main] <= aim else small
    hours = estimate.hours
    why = (f"Tables 3, 4 and Fig. 6 are at {size} px: with them at {main} px the suite would take an estimated "
           f"{hours(minutes[main])}, {'within' if size == main else 'above'} the {hours(aim)} aimed at on 2 cores "
           f"(at {small} px: {hours(minutes[small])})")
    return {"size": size, "minutes": minutes, "aim": aim, "why": why,
            "scale": dataclasses.replace(scales[size], sizes_why=why)}


def _cpu_finetune(ablations: int, sizes_why: str, config: ConfigValues) -> Scale:
    main, small = _CPU_SIZES
    return Scale("cpu", f"cpu: Imagenette train (9,469 photos), the main pair at {main} px with iColoriT's head, "
                 f"the adaptive models fine-tuned from the dense iColoriT-T; evaluated on 500 Imagenette val photos "
                 f"with saved hint sets", main, "shared:imagenette/train", "shared:imagenette/val", 500,
                 (("Oxford flowers", "shared:flowers17-subset/test"), ("CUB-200", "shared:cub200-subset/test")),
                 None, (1, 5, 10, 20, 50, 100), tuple(_finetune_trainings("cpu", main, small, ablations, config)),
                 _CPU_FINETUNE_WHY.format(restoration_224=_at_main(config, main)), aim_minutes=CPU_AIM_MINUTES, form="finetune", ablation_size=ablations,
                 sizes_why=sizes_why, rates=True)


def _at_main(config: ConfigValues, size: int) -> str:
    """What SwinIR-T and Uformer-T would take to train at ``size`` px by their recipes, estimated."""
    minutes = [_training_minutes(f"cpu-{m}", (f"image_size={size}",), config) for m in ("swinir-t", "uformer-t")]
    return f"an estimated {estimate.hours(minutes[0])} and {estimate.hours(minutes[1])}"


def _finetune_scale(name: str, transfer: tuple[tuple[str, str], ...], ablation_size: Optional[int],
                    config: ConfigValues) -> Scale:
    """The tiny or cpu scale in the fine-tune form; the tiny scale mirrors the cpu scale's choice
    of the ablations' size on its own two sizes."""
    if name == "cpu":
        if ablation_size is None:
            return ablation_choice(config=config)["scale"]
        return _cpu_finetune(ablation_size, f"Tables 3, 4 and Fig. 6 at {ablation_size} px (as asked)", config)
    main, small = _TINY_SIZES
    if ablation_size is None:
        choice = ablation_choice(config=config)
        ablation_size = main if choice["size"] == _CPU_SIZES[0] else small
        why = (f"Tables 3, 4 and Fig. 6 at {ablation_size} px, as the cpu scale puts them at {choice['size']} px "
               f"({choice['why'].split(': ', 1)[1]})")
    else:
        why = f"Tables 3, 4 and Fig. 6 at {ablation_size} px (as asked)"
    return Scale("tiny", f"tiny (plumbing check, not numbers): {main} px (the ablations and the models that start "
                 f"from scratch: {small} px), 4-block ViTs with 8 px patches, 8 training steps on scikit-image's "
                 f"6 photos, the adaptive models fine-tuned from the dense one", main, "samples", "samples", None,
                 transfer, 4, (1, 5, 10, 20, 50),
                 tuple(_finetune_trainings("tiny", main, small, ablation_size, config)),
                 "every model of the cpu scale, shrunk to 4 blocks at 64 and 32 px, so that every table and "
                 "figure is made end to end in minutes", bench_repeats=5, bench_runs=5, bench_warmup=2,
                 fig7_shown=2, fig8_photos=4, batch_size=8, eval_minutes=0.02, form="finetune",
                 ablation_size=ablation_size, sizes_why=why)


SCALES = ("tiny", "cpu", "paper")


def plan(scale: Scale) -> list[Run]:
    """The runs of a scale in order: trainings first (each fine-tune after its base), then the
    evaluations that use them. A model of the main comparison trained at another size is scored
    at the main size (``Evaluation.image_size``)."""
    runs: list[Run] = list(scale.trainings)
    main = scale.image_size

    def scored(t: Training) -> Optional[int]:
        size = scored_size(scale, t)
        return None if size in (0, t.image_size) else size

    def minutes(kind: str, t: Optional[Training], data: str, images: Optional[int], ks: Sequence[int]) -> float:
        if not scale.rates:
            share = {"quality": len(ks) / len(scale.ks), "transfer": 1.0, "bench": 1.0}.get(kind, 1 / 3)
            return scale.eval_minutes * share
        size = (scored(t) or t.image_size or main) if t is not None else main
        count = images if images is not None else estimate.EVAL_SET_IMAGES.get(data, 500)
        return estimate.evaluation_minutes(size, count, len(ks), data)

    for t in scale.trainings:
        ks = scale.ks if set(t.roles) & {"fig4", "table2", "table3", "table4", "reference"} else (FIG6_K,)
        size = scored(t)
        runs.append(Evaluation(f"quality-{t.name}", "quality", (t.name,), scale.eval_data, ks, scale.eval_images,
                               minutes=minutes("quality", t, scale.eval_data, scale.eval_images, ks), image_size=size))
        if "table1" in t.roles:
            for label, spec in scale.transfer:
                runs.append(Evaluation(f"transfer-{_slug(label)}-{t.name}", "transfer", (t.name,), spec, (FIG6_K,),
                                       scale.transfer_images, label,
                                       minutes=minutes("transfer", t, spec, scale.transfer_images, (FIG6_K,)),
                                       image_size=size))
        if set(t.roles) & {"fig6", "fig7", "fig8", "budget"}:
            runs.append(Evaluation(f"compute-{t.name}", "compute", (t.name,), scale.eval_data, (FIG6_K,),
                                   scale.eval_images, minutes=minutes("compute", t, scale.eval_data, scale.eval_images,
                                                                      (FIG6_K,)), image_size=size))
        if "fig6" in t.roles:
            runs.append(Evaluation(f"random-{t.name}", "random", (t.name,), scale.eval_data, (FIG6_K,),
                                   scale.eval_images, minutes=minutes("random", t, scale.eval_data, scale.eval_images,
                                                                      (FIG6_K,)), image_size=size))
    bench = tuple(t for t in scale.trainings if "table2" in t.roles)
    runs.append(Evaluation("bench", "bench", tuple(t.name for t in bench), "samples", (10,),
                           minutes=_bench_minutes(scale, bench) if scale.rates else scale.eval_minutes,
                           image_size=main if any(scored(t) for t in bench) else None))
    return runs


def scored_size(scale: Scale, training: Training) -> int:
    """The size a training's models are scored at: the scale's main size for a model of the main
    comparison (``MAIN_ROLES``), else its own (0: unknown)."""
    return scale.image_size if set(training.roles) & set(MAIN_ROLES) and training.image_size else training.image_size


def trained_how(scale: Scale, training: Training) -> dict[str, Any]:
    """How a row's model was made, for ``results.json``: ``{"form": "finetune" | "scratch",
    "init": the run it was fine-tuned from or None, "trained_at": px, "scored_at": px}``."""
    return {"form": training.form, "init": training.base, "trained_at": training.image_size,
            "scored_at": scored_size(scale, training)}


def _bench_minutes(scale: Scale, models: Sequence[Training]) -> float:
    """The bench's expected minutes: every model on each of the three runtimes (the most it
    times), each repeat its warm-up and timed runs, plus one export per ViT model."""
    forwards = len(models) * len(RUNTIMES) * scale.bench_repeats * (scale.bench_warmup + scale.bench_runs)
    exports = ["dense" if t.model.startswith("icolorit") else "adaptive" for t in models
               if not t.model.startswith(("swinir", "uformer"))]
    return estimate.bench_minutes(scale.image_size, forwards, exports)


def _slug(label: str) -> str:
    return label.lower().replace(" ", "-")


def select(runs: Sequence[Run], only: Optional[Sequence[str]]) -> list[Run]:
    """The runs named by ``only``: run names, ``train``, or an evaluation kind (``quality``,
    ``transfer``, ``compute``, ``random``, ``bench``). ValueError for an unknown token."""
    if not only:
        return list(runs)
    names = {r.name for r in runs}
    kinds = {"train", "quality", "transfer", "compute", "random", "bench"}
    unknown = [o for o in only if o not in names | kinds]
    if unknown:
        raise ValueError(f"--only: unknown run(s) {', '.join(unknown)}; runs: {', '.join(sorted(names))}; "
                         f"or a kind: {', '.join(sorted(kinds))}")
    chosen = set(only)
    return [r for r in runs if r.name in chosen or _kind(r) in chosen]


def _compute_input(run: Run) -> Optional[str]:
    """The ``compute`` run whose keep ratios a ``random`` run replays; None for every other run."""
    return f"compute-{run.trainings[0]}" if isinstance(run, Evaluation) and run.kind == "random" else None


def schedule(todo: Sequence[Run]) -> list[Run]:
    """``todo`` reordered so that each evaluation runs as soon as it can: right after the last of
    its trainings (and, for ``random``, its ``compute`` run) that is itself in ``todo``, or before
    every training when none is. Otherwise the order of ``todo`` is kept, so one result lands per
    training instead of all of them after the last one."""
    first: list[Run] = []
    after: dict[str, list[Run]] = {}
    order = {r.name: i for i, r in enumerate(todo)}
    for run in todo:
        if isinstance(run, Training):
            continue
        compute = _compute_input(run)
        needs = [n for n in (*run.trainings, *(() if compute is None else (compute,))) if n in order]
        if not needs:
            first.append(run)
            continue
        last = max(needs, key=order.__getitem__)
        after.setdefault(last, []).append(run)

    def place(run: Run) -> list[Run]:
        return [run] + [e for dependent in after.get(run.name, []) for e in place(dependent)]

    return [e for r in first for e in place(r)] + \
        [e for r in todo if isinstance(r, Training) for e in place(r)]


def to_do(runs: Sequence[Run], out: Path, scale: Scale) -> list[Run]:
    """The runs of ``runs`` not done in ``out``, in their order; a bench is among them when one of
    its models is among them."""
    pending = {r.name for r in runs if isinstance(r, Training) and not run_done(r, out, scale)}
    return [r for r in runs if r.name in pending or (isinstance(r, Evaluation) and not run_done(r, out, scale, pending))]


def _kind(run: Run) -> str:
    return "train" if isinstance(run, Training) else run.kind


# -- state on disk ---------------------------------------------------------------------------

def train_dir(out: Path, name: str) -> Path:
    return out / "train" / name


def eval_dir(out: Path, name: str) -> Path:
    return out / "eval" / name


def training_done(folder: Path) -> bool:
    """Whether ``folder/checkpoint.pt`` reached its final step (training's ``metrics.json``
    is written only then; a checkpoint placed there from elsewhere is read)."""
    if (folder / "metrics.json").is_file() and (folder / "checkpoint.pt").is_file():
        return True
    path = folder / "checkpoint.pt"
    if not path.is_file():
        return False
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return int(state.get("step", -1)) >= int(state.get("total_steps", math.inf))


def place_shipped(scale: Scale, out: Union[str, Path]) -> dict[str, str]:
    """Writes each shipped model as the finished checkpoint of the training it came from.

    A training of ``scale`` that a shipped model is the twin of (``shipped_twin``: its card's
    recipe resolves to the same training values, from the same start) gets
    ``train/<run>/checkpoint.pt`` built from the shipped weights (``shipped_checkpoint``), so its
    evaluations run without retraining. Left alone: a training done, under way (a checkpoint of
    its own to resume) or restored from the evidence (its results are another model's). The
    trainings are taken in the scale's order, so a fine-tune whose base was just placed from
    the shipped model its twin started from is placed too.

    Returns:
        ``{run: shipped model name}`` for the checkpoints written.
    """
    from adacolor.evidence import restored_training
    from adacolor.train import save_checkpoint
    from adacolor.weights import shipped_checkpoint

    out = Path(out)
    placed: dict[str, str] = {}
    for t in scale.trainings:
        folder = train_dir(out, t.name)
        if (folder / "checkpoint.pt").is_file() or restored_training(folder) is not None:
            continue
        twin = shipped_twin(scale, t, out)
        if twin is not None:
            folder.mkdir(parents=True, exist_ok=True)
            save_checkpoint(shipped_checkpoint(twin), folder / "checkpoint.pt")
            placed[t.name] = twin
    return placed


def _origin(folder: Path) -> Optional[str]:
    """The ``origin`` a placed checkpoint records (None: trained here)."""
    if not (folder / "checkpoint.pt").is_file():
        return None
    import torch

    return torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True, mmap=True).get("origin")


def _read(path: Path) -> Optional[dict[str, Any]]:
    return json.loads(path.read_text()) if path.is_file() else None


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def run_done(run: Run, out: Path, scale: Scale, pending: Collection[str] = ()) -> bool:
    """Whether a run's result is in ``out`` (bench: and covers every model that is finished or in
    ``pending``, the trainings a suite is still to run); a training restored from the evidence
    (``adacolor.evidence``) is done without its checkpoint."""
    if isinstance(run, Training):
        from adacolor.evidence import restored_training

        return training_done(train_dir(out, run.name)) or restored_training(train_dir(out, run.name)) is not None
    result = _read(eval_dir(out, run.name) / "result.json")
    if result is None:
        return False
    if run.kind == "bench":
        covered = {t for t in run.trainings if t in pending or _bench_source(_training(scale, t), out, scale) is not None}
        return covered <= set(result.get("models", {}))
    return True


def _training(scale: Scale, name: str) -> Training:
    return next(t for t in scale.trainings if t.name == name)


def same_training(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two resolved training configs (``config_values``) train alike: equal in every
    field but ``config.BOOKKEEPING`` and ``init`` (whose starts the caller compares)."""
    from adacolor.config import BOOKKEEPING

    keys = (set(a) | set(b)) - BOOKKEEPING - {"init"}
    return all(a.get(key) == b.get(key) for key in keys)


def _holds_shipped(scale: Scale, name: str, out: Path) -> Optional[str]:
    """The shipped model whose weights training ``name`` of ``scale`` ended with: placed there
    (``place_shipped``, or so recorded by the evidence), or its ``shipped_twin``."""
    from adacolor.evidence import restored_training
    from adacolor.weights import origin_model

    folder = train_dir(out, name)
    placed = origin_model(_origin(folder) or (restored_training(folder) or {}).get("placed"))
    return placed or shipped_twin(scale, _training(scale, name), out)


def _as_trained(training: Training, out: Path) -> dict[str, Any]:
    """The config fields in which the weights of ``training`` in ``out`` were trained otherwise
    than planned: as the evidence recorded them (restored), or as its finished checkpoint says."""
    from adacolor.evidence import restored_training

    folder = train_dir(out, training.name)
    record = restored_training(folder)
    return dict(record.get("differences") or {}) if record is not None else _config_differences(training, folder)


def shipped_twin(scale: Scale, training: Training, out: Union[str, Path]) -> Optional[str]:
    """The shipped model trained as ``training`` is, or None: the same training values
    (``same_training``) as the card's record of its training (``card_config``; the fields it does
    not record from its recipe as it reads today), from the same start (no init, the same init,
    or an ``init=run:NAME`` whose weights are the card's init's shipped model). A twin stands in
    for the training with ``--from-shipped`` (``place_shipped``), and for the weights of one
    restored from the evidence without its checkpoint in a bench's timing."""
    from adacolor.config import config_values
    from adacolor.weights import SHIPPED_PREFIX, card_config, list_shipped

    values = {**config_values(training.recipe, training.overrides), **_as_trained(training, Path(out))}
    for card in list_shipped():
        recipe, recorded = (card.get("training") or {}).get("recipe"), card_config(card)
        if recipe is None:
            continue
        theirs = {**config_values(recipe), **recorded}   # what the card records wins over the recipe today
        if not same_training(values, theirs):
            continue
        mine, their_init = values.get("init"), theirs.get("init")
        if mine == their_init:
            return card["name"]
        if (isinstance(mine, str) and mine.startswith(RUN_INIT) and isinstance(their_init, str)
                and their_init.startswith(SHIPPED_PREFIX)
                and _holds_shipped(scale, mine[len(RUN_INIT):], Path(out)) == their_init[len(SHIPPED_PREFIX):]):
            return card["name"]
    return None


def _bench_source(training: Training, out: Path, scale: Scale) -> Optional[str]:
    """Where a bench gets a Table 2 model from: ``"checkpoint"`` (its training is finished in
    ``out``), or, restored from the evidence without its checkpoint: ``"architecture"`` (dense:
    weights do not change the work of a network without gates, so it is timed as built from its
    config), ``"shipped:NAME"`` (adaptive, and the shipped model NAME is its ``shipped_twin``:
    its decisions, and so its time, are those of the same training). None: not trained, or
    restored, adaptive and without a twin."""
    folder = train_dir(out, training.name)
    if training_done(folder):
        return "checkpoint"
    from adacolor.evidence import restored_training

    if restored_training(folder) is None:
        return None
    from adacolor.config import config_values
    from adacolor.model import get_spec

    if not get_spec(config_values(training.recipe, training.overrides)["model"]).adaptive:
        return "architecture"
    from adacolor.weights import SHIPPED_PREFIX

    twin = shipped_twin(scale, training, out)
    return None if twin is None else SHIPPED_PREFIX + twin


# -- evaluations -----------------------------------------------------------------------------

def _dataset(spec: str, size: int, images: Optional[int]) -> Any:
    from adacolor.data import ctest10k, evenly_spaced, image_dataset

    dataset = ctest10k(spec.split(":", 1)[1], image_size=size) if spec.startswith("ctest10k:") \
        else image_dataset(spec, size, train=False)
    return evenly_spaced(dataset, images) if images is not None else dataset


def _hint_file(out: Path, spec: str, images: Optional[int], size: int) -> Path:
    """One hint file per (data, images, size), shared by every model evaluated on it."""
    slug = "".join(c if c.isalnum() else "-" for c in spec).strip("-")
    return out / "eval" / "hints" / f"{slug}-{images or 'all'}-{size}px.json"


def _hint_sets(out: Path, spec: str, images: Optional[int], size: int, count: int, ks: Sequence[int]) -> Any:
    """The saved hint sets of a dataset, drawn once (seed 0) for every k any run uses."""
    from adacolor.evaluate import hint_sets_for

    all_ks = sorted(set(ks) | {1, 2, 5, 10, 20, 50, 100})
    return hint_sets_for(_hint_file(out, spec, images, size), count, size, all_ks)


def _lpips() -> tuple[Any, Optional[str]]:
    from adacolor.lpips import LPIPS

    try:
        return LPIPS("alex").eval(), None
    except FileNotFoundError as error:
        return None, f"LPIPS skipped: {error}"


def _quality(model: Any, run: Evaluation, out: Path, scale: Scale, lpips: Any) -> dict[str, Any]:
    from adacolor.evaluate import evaluate

    size = model.image_size[0]
    dataset = _dataset(run.data, size, run.images)
    sets = _hint_sets(out, run.data, run.images, size, len(dataset), run.ks)
    return evaluate(model, dataset, sets, run.ks, scale.batch_size, lpips)


def per_image_compute(model: Any, dataset: Any, hint_sets: Any, k: int, batch_size: int,
                      block: int) -> dict[str, Any]:
    """Per-image GFLOPs and decisions of a model on a dataset at ``k`` hints (eval mode).

    Returns:
        ``{"gflops", "patch_keep", "layer_keep", "chroma": [per image; chroma: the photo's mean
        |ab|, its colourfulness], "layer_patterns": [per image, a
        string of 0/1 per sub-layer], "ffn_maps": (N, rows, cols) float FFN keep masks of
        ``block`` (1-based), or None for a dense or token-free model, "layer_logits": (N, 2L)
        eval logits of the layer-skip gates (attention, FFN per block), or None without them}``.
    """
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    import adaprune
    from adacolor.color import lab_split
    from adacolor.hints import model_input, render_hints
    from adacolor.model import colorizer_gflops
    from adaprune.gates import LayerSkipGate

    model.eval()
    gflops, patch, layer, patterns, maps, chroma = [], [], [], [], [], []
    gates = [m for m in model.modules() if isinstance(m, LayerSkipGate)]
    logits: list[Any] = []
    seen = 0
    with _outputs_of(gates) as called, torch.no_grad():  # called: this batch's (B, 2) gate logits
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            rgb = batch["rgb"]
            l_norm, ab = lab_split(rgb)
            hint_ab, hint_mask = render_hints(ab, [hint_sets[k][seen + i] for i in range(rgb.shape[0])])
            called.clear()
            model(model_input(l_norm, hint_ab, hint_mask))
            # a batch-1 compiled step reads the gate's weights without calling it: no logits then
            logits.append(torch.cat(called, dim=1) if gates and len(called) == len(gates) else None)
            gflops += colorizer_gflops(model, rgb.shape[0]).tolist()
            chroma += ab.norm(dim=1).flatten(1).mean(dim=1).tolist()
            if getattr(model, "adaptive", False):
                record = adaprune.last_record(model.backbone)
                patch += record.patch_keep.float().tolist()
                layer += record.layer_keep.float().tolist()
                ran = torch.stack([b.layer_keep for b in record.blocks], dim=1).flatten(1)  # (B, 2L)
                patterns += ["".join(str(int(v > 0.5)) for v in row) for row in ran.tolist()]
                masks = record.blocks[block - 1].token_masks if len(record.blocks) >= block else None
                if masks is not None:
                    maps.append(masks[:, 1].float().unflatten(1, record.grid_size).numpy())
            seen += rgb.shape[0]
    complete = bool(logits) and all(x is not None for x in logits)
    return {"gflops": gflops, "patch_keep": patch, "layer_keep": layer, "chroma": chroma, "layer_patterns": patterns,
            "ffn_maps": np.concatenate(maps) if maps else None,
            "layer_logits": torch.cat(logits).numpy() if complete else None}


@contextlib.contextmanager
def _outputs_of(modules: Sequence[Any]) -> Iterator[list[Any]]:
    """A list that collects the (float) outputs of ``modules`` in call order while open."""
    outputs: list[Any] = []
    hooks = [m.register_forward_hook(lambda module, args, output: outputs.append(output.float())) for m in modules]
    try:
        yield outputs
    finally:
        for hook in hooks:
            hook.remove()


def _colorized(model: Any, dataset: Any, hint_sets: Any, k: int, indices: Sequence[int]) -> tuple[Any, Any]:
    """(ground truth, colorization) as (n, H, W, 3) uint8 arrays for the given images."""
    import numpy as np
    import torch

    from adacolor.color import lab_merge, lab_split
    from adacolor.hints import model_input, render_hints

    rgb = torch.stack([dataset[i]["rgb"] for i in indices])
    l_norm, ab = lab_split(rgb)
    hint_ab, hint_mask = render_hints(ab, [hint_sets[k][i] for i in indices])
    with torch.no_grad():
        pred = lab_merge(l_norm, model(model_input(l_norm, hint_ab, hint_mask))).clamp(0, 1)

    def as_uint8(x: Any) -> Any:
        return (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)

    return as_uint8(rgb), as_uint8(pred)


def _compute(model: Any, run: Evaluation, out: Path, scale: Scale, folder: Path) -> dict[str, Any]:
    import numpy as np

    from adacolor.report import colour_dependence, gate_margins, spread

    size = model.image_size[0]
    dataset = _dataset(run.data, size, run.images)
    sets = _hint_sets(out, run.data, run.images, size, len(dataset), run.ks)
    k = run.ks[0]
    stats = per_image_compute(model, dataset, sets, k, scale.batch_size, FIG8_BLOCK)
    gflops = np.asarray(stats["gflops"])
    order = np.argsort(gflops, kind="stable")
    shown = min(scale.fig7_shown, len(order))
    least, most = order[:shown].tolist(), order[::-1][:shown].tolist()
    photos = np.linspace(0, len(dataset) - 1, min(scale.fig8_photos, len(dataset))).round().astype(int).tolist()
    truth, pred = _colorized(model, dataset, sets, k, least + most)
    arrays = {"fig7_truth": truth, "fig7_pred": pred, "fig8_photos": _colorized(model, dataset, sets, k, photos)[0]}
    maps = stats["ffn_maps"]
    if maps is not None:
        arrays["fig8_maps"] = maps[photos]
    np.savez_compressed(folder / "images.npz", **arrays)
    patterns = stats["layer_patterns"]
    gates = None if stats["layer_logits"] is None else gate_margins(stats["layer_logits"].tolist())
    if gates is not None:
        gates["min"], gates["max"] = [round(v, 4) for v in gates["min"]], [round(v, 4) for v in gates["max"]]
    result = {
        "k": k, "images": len(dataset), "gflops_per_image": [round(g, 6) for g in stats["gflops"]],
        "spread": spread(stats["gflops"]),
        "colour": colour_dependence(stats["gflops"], stats["chroma"]) if len(dataset) > 1 else None,
        "patch_keep": float(np.mean(stats["patch_keep"])) if stats["patch_keep"] else 1.0,
        "layer_keep": float(np.mean(stats["layer_keep"])) if stats["layer_keep"] else 1.0,
        "layer_patterns": len(set(patterns)),
        "layer_gates": gates,
        "least": [{"index": int(i), "gflops": float(gflops[i])} for i in least],
        "most": [{"index": int(i), "gflops": float(gflops[i])} for i in most],
        "fig8": {"block": FIG8_BLOCK, "sublayer": "ffn", "photos": photos,
                 "keep_fraction": [float(m.mean()) for m in maps[photos]] if maps is not None else None,
                 "maps": [m.round(3).tolist() for m in maps[photos]] if maps is not None else None},
    }
    return result


def _random(model: Any, run: Evaluation, out: Path, scale: Scale, lpips: Any) -> dict[str, Any]:
    import torch

    import adaprune

    measured = _read(eval_dir(out, f"compute-{run.trainings[0]}") / "result.json")
    if measured is None:
        raise RuntimeError(f"random control needs compute-{run.trainings[0]} first (the learned keep ratios)")
    patch_keep, layer_keep = measured["patch_keep"], measured["layer_keep"]
    torch.manual_seed(0)  # the random draws of the control
    with adaprune.policy(model.backbone, "random", patch_keep=patch_keep, layer_keep=layer_keep):
        metrics = _quality(model, run, out, scale, lpips)
    return {"policy": "random", "patch_keep": patch_keep, "layer_keep": layer_keep, **metrics}


def bench_runtimes(scale: Scale) -> list[str]:
    """What the bench times each model on: the scale's ``bench_runtimes``, or torch and every
    other runtime installed here (``adacolor.runtimes``)."""
    if scale.bench_runtimes is not None:
        return list(scale.bench_runtimes)
    import importlib.util

    return ["torch"] + [r for r in RUNTIMES[1:] if importlib.util.find_spec(r) is not None]


def _latencies(medians: Sequence[float]) -> dict[str, Any]:
    """Per-repeat medians (ms) as ``{"latency_ms", "latency_ms_mean", "latency_ms_std"}``."""
    import statistics

    return {"latency_ms": list(medians), "latency_ms_mean": statistics.fmean(medians),
            "latency_ms_std": statistics.stdev(medians) if len(medians) > 1 else 0.0}


def _bench(run: Evaluation, out: Path, scale: Scale) -> dict[str, Any]:
    """Table 2: each model's single-thread batch-1 latency, ``bench_repeats`` medians of
    ``bench_runs`` runs each, in PyTorch and on every other runtime of ``bench_runtimes``
    (its exported graph, ``adacolor.exported``; a model that does not export, SwinIR and
    Uformer, has no such entry and says why under ``not_timed``)."""
    import torch

    from adacolor.bench import bench_input, bench_model
    from adacolor.config import make_config
    from adacolor.model import create_colorizer, load_colorizer
    from adacolor.weights import SHIPPED_PREFIX, load_shipped

    runtimes = bench_runtimes(scale)
    models: dict[str, Any] = {}
    inputs: dict[int, Any] = {}
    for name in run.trainings:
        training = _training(scale, name)
        source = _bench_source(training, out, scale)
        if source is None:
            continue
        if source == "checkpoint":
            model = load_colorizer(train_dir(out, name) / "checkpoint.pt")
        elif source.startswith(SHIPPED_PREFIX):
            model = load_shipped(source[len(SHIPPED_PREFIX):])
        else:
            config = make_config(training.recipe, training.overrides)
            model = create_colorizer(config.model, **config.model_options()).eval()
        trained = model.image_size[0]
        model = _scored(model, run.image_size)
        size = model.image_size[0]
        if size not in inputs:
            inputs[size] = bench_input(size)
        repeats = [bench_model(model, inputs[size], 1, scale.bench_warmup, scale.bench_runs)
                   for _ in range(scale.bench_repeats)]
        models[name] = {"gflops": repeats[0]["gflops"], **_latencies([r["latency_ms"] for r in repeats]),
                        "policy": repeats[0]["policy"], "image_size": size, "trained_at": trained, "weights": source,
                        "runtimes": {}, "not_timed": {}}
        for runtime in runtimes:
            if runtime == "torch":
                continue
            timed = _on_runtime(model, runtime, inputs[size], scale)
            models[name]["runtimes" if isinstance(timed, dict) else "not_timed"][runtime] = timed
    versions = {r: _version(r) for r in runtimes if r != "torch"}
    return {"threads": 1, "batch": 1, "runs": scale.bench_runs, "warmup": scale.bench_warmup,
            "repeats": scale.bench_repeats, "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
            "runtimes": runtimes, "versions": versions, "models": models}


def _on_runtime(model: Any, runtime: str, x: Any, scale: Scale) -> Union[dict[str, Any], str]:
    """The latencies of ``model``'s exported graph on ``runtime`` (as ``_latencies``), or why it
    was not timed (a model that does not export, an export that failed)."""
    import statistics

    from adacolor.exported import on_runtime
    from adaprune.bench import sample_many

    try:
        module = on_runtime(model, runtime, threads=1, say=_say)
    except Exception as error:  # SwinIR, Uformer (TypeError), a failed export: the other timings stay
        return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
    medians = []
    for _ in range(scale.bench_repeats):
        times, = sample_many([module], x, 1, scale.bench_warmup, scale.bench_runs)
        medians.append(statistics.median(times))
    return _latencies(medians)


def _version(package: str) -> Optional[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _scored(model: Any, size: Optional[int]) -> Any:
    """``model`` as scored at ``size`` px: itself at its own size (or None), else its input resized
    to its size and its ab back (``adacolor.model.ResizedColorizer``)."""
    if size is None or model.image_size[0] == size:
        return model
    from adacolor.model import ResizedColorizer

    return ResizedColorizer(model, size)


def resolved_overrides(training: Training, out: Path) -> tuple[str, ...]:
    """A training's ``--set`` strings with ``init=run:NAME`` made the path of that run's
    checkpoint in ``out``. Where the training's own checkpoint already names that run's
    checkpoint (``DIR`` spelled otherwise, or moved), its spelling is kept: the run resumes
    with the config it was written with, and starts from its own checkpoint, not the base's."""
    base = training.base
    if base is None:
        return training.overrides
    path = train_dir(out, base) / "checkpoint.pt"
    init = str(path.resolve())
    saved = _saved_config(train_dir(out, training.name)).get("init")
    if isinstance(saved, str) and Path(saved).parts[-3:] == path.parts[-3:]:
        init = saved
    return tuple(f"init={init}" if o.startswith("init=") else o for o in training.overrides)


def _saved_config(folder: Path) -> dict[str, Any]:
    """The config a training's checkpoint was written with ({} without a checkpoint)."""
    if not (folder / "checkpoint.pt").is_file():
        return {}
    import torch

    return torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True, mmap=True).get("config", {})


def _execute(run: Run, out: Path, scale: Scale, lpips: Any) -> None:
    """Does one run (its inputs exist); writes its result."""
    if isinstance(run, Training):
        from adacolor.config import make_config
        from adacolor.train import train

        done = train(make_config(run.recipe, resolved_overrides(run, out)), train_dir(out, run.name), resume=True)
        if done.get("interrupted"):
            raise SuiteInterrupted(run.name, done["interrupted"], done["step"])
        return
    folder = eval_dir(out, run.name)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if run.kind == "bench":
        result = _bench(run, out, scale)
    else:
        from adacolor.model import load_colorizer

        model = _scored(load_colorizer(train_dir(out, run.trainings[0]) / "checkpoint.pt"), run.image_size)
        if run.kind in ("quality", "transfer"):
            result = _quality(model, run, out, scale, lpips)
        elif run.kind == "compute":
            result = _compute(model, run, out, scale, folder)
        else:
            result = _random(model, run, out, scale, lpips)
    result.update(run=run.name, kind=run.kind, training=list(run.trainings), data=run.data, ks=list(run.ks),
                  dataset=run.dataset, seconds=round(time.perf_counter() - start, 2))
    _write(folder / "result.json", result)


class SuiteInterrupted(Exception):
    """A training of the suite stopped by SIGINT or SIGTERM (its checkpoint kept): the suite ends
    there instead of going on to the next run."""

    def __init__(self, run: str, signal_name: str, step: int) -> None:
        super().__init__(f"{run} stopped by {signal_name} at step {step}")
        self.run, self.signal_name, self.step = run, signal_name, step

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process ended by it (130, 143)."""
        import signal

        # the train's name of the signal, or "a signal to another process" (torchrun): SIGTERM's code
        return 128 + int(signal.Signals.__members__.get(self.signal_name, signal.SIGTERM))


def _say(text: str) -> None:
    print(f"[reproduce] {text}", file=sys.stderr, flush=True)


def _duration(minutes: float) -> str:
    return f"{minutes * 60:.0f} s" if minutes < 1 else f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def run_suite(scale: Scale, out: Union[str, Path], only: Optional[Sequence[str]] = None) -> dict[str, list[str]]:
    """Runs what is not done yet, in order, with one progress line per run.

    A run that fails is reported and the suite goes on (runs that need it are then skipped); a
    training stopped by SIGINT or SIGTERM ends the suite (``SuiteInterrupted``, its checkpoint kept). Each
    run is done under its lock ``DIR/locks/<run>.lock`` (``adacolor.runlock``): a run another
    suite on the same DIR is doing is skipped, not done twice.

    Returns:
        ``{"done": [...], "skipped": [... already done], "failed": [...], "blocked": [... inputs
        missing, or run by another suite]}`` run names.
    """
    out = Path(out)
    runs = select(plan(scale), only)
    status: dict[str, list[str]] = {"done": [], "skipped": [], "failed": [], "blocked": []}
    todo = schedule(to_do(runs, out, scale))
    status["skipped"] = [r.name for r in runs if r not in todo]
    left = sum(r.minutes for r in todo)
    _say(f"{scale.name}: {len(runs)} runs, {len(status['skipped'])} already done, {len(todo)} to do "
         f"(estimated {_duration(left)}) in {out}")
    lpips: Any = None
    if any(isinstance(r, Evaluation) and r.kind in ("quality", "transfer", "random") for r in todo):
        lpips, note = _lpips()
        if note:
            _say(note)
    for number, run in enumerate(todo, start=1):
        with claim(out / "locks" / f"{run.name}.lock") as holder:
            outcome = _step(run, out, scale, lpips, holder, f"{number}/{len(todo)}", left)
        status[outcome].append(run.name)
        left -= run.minutes
    return status


def _missing_inputs(run: Run, out: Path, scale: Scale) -> list[str]:
    """What ``run`` needs that ``out`` lacks: its trainings' checkpoints and, for ``random``, its
    ``compute`` result. A bench times whichever of its models are trained (a dense one restored
    without its checkpoint as built from its config), but none while an adaptive one is restored
    without its checkpoint (Table 2 times its models in one process)."""
    if isinstance(run, Training):
        return _missing_base(run, out)
    if run.kind == "bench":
        from adacolor.evidence import RESTORED, restored_training

        return [f"the checkpoint of {t} (its results were restored from the evidence without it; its gates' "
                f"decisions depend on its weights, and Table 2 times every model in one process: delete "
                f"{train_dir(out, t) / RESTORED} to retrain it)"
                for t in run.trainings if restored_training(train_dir(out, t)) is not None
                and _bench_source(_training(scale, t), out, scale) is None]
    missing = [t for t in run.trainings if not training_done(train_dir(out, t))]
    compute = _compute_input(run)
    if compute is not None and _read(eval_dir(out, compute) / "result.json") is None:
        missing.append(compute)
    return missing


def _missing_base(training: Training, out: Path) -> list[str]:
    """A fine-tune's base when it is not trained in ``out`` (a base restored from the evidence
    has no checkpoint to start from). A fine-tune that has a checkpoint of its own resumes from
    it and needs no base."""
    base = training.base
    own = train_dir(out, training.name) / "checkpoint.pt"
    if base is None or training_done(train_dir(out, base)) or own.is_file():
        return []
    from adacolor.evidence import RESTORED, restored_training

    if restored_training(train_dir(out, base)) is not None:
        return [f"the checkpoint of {base}, the dense model it is fine-tuned from (its results were restored "
                f"from the evidence without it: delete {train_dir(out, base) / RESTORED} to retrain it)"]
    return [f"{base} (the dense model it is fine-tuned from)"]


def _step(run: Run, out: Path, scale: Scale, lpips: Any, holder: Optional[dict], number: str, left: float) -> str:
    """One run of a suite, its progress lines said; returns its outcome (a ``run_suite`` status key).
    ``holder``: None when this suite holds the run's lock, else the other suite that does."""
    what = "train" if isinstance(run, Training) else run.kind
    if holder is not None:
        who = f"pid {holder['pid']} on {holder.get('host', '?')}" if "pid" in holder else "another process"
        _say(f"{number} {what} {run.name}: skipped, another suite is running it ({who})")
        return "blocked"
    if run_done(run, out, scale):   # finished meanwhile, e.g. by another suite on the same DIR
        _say(f"{number} {what} {run.name}: already done meanwhile")
        return "skipped"
    missing = _missing_inputs(run, out, scale)
    if missing:
        _say(f"{number} {what} {run.name}: skipped, needs {', '.join(missing)}")
        return "blocked"
    _say(f"{number} {what} {run.name}: running (estimated {_duration(run.minutes)}; "
         f"about {_duration(left)} left in the suite)")
    start = time.perf_counter()
    try:
        _execute(run, out, scale, lpips)
    except SuiteInterrupted as stop:
        _say(f"{number} {what} {run.name}: stopped by {stop.signal_name} at step {stop.step}, its checkpoint "
             f"kept; the suite ends here (run the same command again to go on)")
        raise
    except Exception as error:  # one failed run must not end an 8-hour suite
        (out / "failed").mkdir(parents=True, exist_ok=True)
        (out / "failed" / f"{run.name}.txt").write_text(traceback.format_exc())
        _say(f"{number} {what} {run.name}: FAILED ({type(error).__name__}: {error}); "
             f"traceback in {out / 'failed' / (run.name + '.txt')}")
        return "failed"
    (out / "failed" / f"{run.name}.txt").unlink(missing_ok=True)
    _say(f"{number} {what} {run.name}: done in {_duration((time.perf_counter() - start) / 60)}")
    return "done"


# -- results ---------------------------------------------------------------------------------

def collect(scale: Scale, out: Union[str, Path]) -> dict[str, Any]:
    """``results.json``'s content from the results in ``out``; a run without a result is listed
    under its key's ``missing``, never filled in."""
    from adacolor.config import config_values
    from adacolor.evidence import restored_training
    from adacolor.report import check_claims

    out = Path(out)
    restored = {t.name: r for t in scale.trainings
                if not training_done(train_dir(out, t.name)) and (r := restored_training(train_dir(out, t.name)))}
    evaluated = {r.name: e for r in plan(scale) if isinstance(r, Evaluation)
                 and (e := _read(eval_dir(out, r.name) / "result.json")) is not None}

    def result(name: str) -> Optional[dict[str, Any]]:
        return evaluated.get(name)

    def quality_row(t: Training, r: dict[str, Any]) -> dict[str, Any]:
        row = {"run": t.name, "label": t.label, "gflops": r["gflops"]}
        row.update({key: r[key] for key in r if key.startswith(("psnr@", "lpips@"))})
        return row | {key: value for key, value in t.tags} | trained_how(scale, t)

    def rows(role: str) -> tuple[list[dict[str, Any]], list[str]]:
        found, missing = [], []
        for t in scale.trainings:
            if role in t.roles:
                r = result(f"quality-{t.name}")
                (found.append(quality_row(t, r)) if r else missing.append(t.name))
        return found, missing

    results: dict[str, Any] = {}
    fig4, missing = rows("fig4")
    results["fig4"] = {"ks": [k for k in (5, 10, 20, 50) if k in scale.ks], "all_ks": list(scale.ks),
                       "rows": fig4, "missing": missing}
    table1: list[dict[str, Any]] = []
    missing = []
    for t in (t for t in scale.trainings if "table1" in t.roles):
        row: dict[str, Any] = {"run": t.name, "label": t.label, **trained_how(scale, t)}
        for label, _ in scale.transfer:
            r = result(f"transfer-{_slug(label)}-{t.name}")
            if r is None:
                missing.append(f"transfer-{_slug(label)}-{t.name}")
            else:
                row[label] = {key: r[key] for key in r if key.startswith(("psnr@", "lpips@", "gflops"))} \
                    | {"images": r["images"]}
        table1.append(row)
    results["table1"] = {"datasets": [label for label, _ in scale.transfer], "k": FIG6_K, "rows": table1,
                         "missing": missing}
    bench = result("bench") or {"models": {}}
    table2 = []
    for t in (t for t in scale.trainings if "table2" in t.roles):
        b, q = bench["models"].get(t.name), result(f"quality-{t.name}")
        if b is not None:
            table2.append({"run": t.name, "label": t.label, "gflops": b["gflops"],
                           "latency_ms_mean": b["latency_ms_mean"], "latency_ms_std": b["latency_ms_std"],
                           "latency_ms": b["latency_ms"], "psnr@10": q.get("psnr@10") if q else None,
                           "weights": b.get("weights", "checkpoint"), **trained_how(scale, t),
                           "runtimes": {"torch": {key: b[key] for key in ("latency_ms_mean", "latency_ms_std",
                                                                          "latency_ms")}} | b.get("runtimes", {}),
                           "not_timed": b.get("not_timed", {})})
    results["table2"] = {"rows": table2, "missing": [t.name for t in scale.trainings if "table2" in t.roles
                                                     and t.name not in bench["models"]],
                         "runtimes": bench.get("runtimes", ["torch"]),
                         "settings": {key: bench.get(key) for key in ("threads", "batch", "runs", "warmup",
                                                                      "repeats", "torch", "cpu", "versions")}}
    table3, missing = rows("table3")
    reference = next((t for t in scale.trainings if "reference" in t.roles), None)
    dense = result(f"quality-{reference.name}") if reference is not None else None
    if reference is not None and dense is None and reference.name not in missing:
        missing.append(reference.name)
    results["table3"] = {"k": FIG6_K, "rows": table3, "missing": missing,
                         "reference": quality_row(reference, dense) if dense is not None else None}
    table4, missing = rows("table4")
    for row in table4:   # the G rows compare at one budget form: say which
        trained = _training(scale, row["run"])
        row["budget"] = config_values(trained.recipe, trained.overrides)["budget"]
    results["table4"] = {"k": FIG6_K, "rows": sorted(table4, key=lambda r: r.get("groups", 0)), "missing": missing}
    fig6: dict[str, list[dict[str, Any]]] = {variant: [] for variant in _FIG6}
    missing = []
    for t in (t for t in scale.trainings if "fig6" in t.roles):
        learned, random, compute = result(f"quality-{t.name}"), result(f"random-{t.name}"), result(f"compute-{t.name}")
        if learned is None or random is None or compute is None:
            missing.append(t.name)
            continue
        fig6[t.tag["variant"]].append({
            "run": t.name, "beta_patch": t.tag["beta_patch"], "beta_layer": t.tag["beta_layer"],
            **trained_how(scale, t),
            "learned": {"gflops": learned["gflops"], "psnr@10": learned["psnr@10"],
                        "patch_keep": compute["patch_keep"], "layer_keep": compute["layer_keep"],
                        "p90/p10": compute["spread"]["p90/p10"], "layer_patterns": compute["layer_patterns"]},
            "random": {"gflops": random["gflops"], "psnr@10": random["psnr@10"]}})
    results["fig6"] = {"k": FIG6_K, "variants": fig6, "missing": missing}
    fig7_model = next((t for t in scale.trainings if "fig7" in t.roles), None)
    compute = result(f"compute-{fig7_model.name}") if fig7_model else None
    if compute is not None:
        results["fig7"] = {"run": fig7_model.name, "label": fig7_model.label, "k": compute["k"],
                           "images": compute["images"], "spread": compute["spread"],
                           "layer_patterns": compute["layer_patterns"],
                           "layer_gates": compute.get("layer_gates"), "colour": compute.get("colour"),
                           "least": compute["least"],
                           "most": compute["most"], "gflops_per_image": compute["gflops_per_image"], "missing": []}
        results["fig8"] = {"run": fig7_model.name, "label": fig7_model.label, **compute["fig8"], "missing": []}
    else:
        name = f"compute-{fig7_model.name}" if fig7_model else "compute"
        results["fig7"] = {"missing": [name]}
        results["fig8"] = {"missing": [name]}
    results["fig7"]["budget"] = _budget_forms(scale, result)
    results["settings"] = {
        "scale": scale.name, "description": scale.description, "image_size": scale.image_size,
        "train_data": scale.train_data, "eval_data": scale.eval_data, "eval_images": scale.eval_images,
        "transfer": dict(scale.transfer), "transfer_images": scale.transfer_images, "ks": list(scale.ks),
        "hint_size": 2, "hint_seed": 0, "models": [{"run": t.name, "label": t.label, "recipe": t.recipe,
                                                    "overrides": list(t.overrides), "roles": list(t.roles),
                                                    **trained_how(scale, t)}
                                                   for t in scale.trainings],
        "why": scale.why, "command": f"adacolor reproduce --scale {scale.name} --form {scale.form} --out DIR",
        "form": scale.form, "sizes": scale.sizes | {"why": scale.sizes_why},
        "estimated_minutes": round(estimated_minutes(scale), 1), "aim_minutes": scale.aim_minutes,
        "estimate": "from the rates measured on it: `adacolor.estimate`" if scale.rates else None,
        "trained": [t.name for t in scale.trainings if training_done(train_dir(out, t.name))
                    or t.name in restored],
        "trained_otherwise": {t.name: diff for t in scale.trainings
                              if (diff := _config_differences(t, train_dir(out, t.name))
                                  or restored.get(t.name, {}).get("differences"))},
        "placed": {t.name: origin for t in scale.trainings
                   if (origin := _origin(train_dir(out, t.name)) or restored.get(t.name, {}).get("placed"))},
        "restored": {"from": sorted({r["restored_from"] for r in restored.values()}
                                    | {r["restored_from"] for r in evaluated.values() if "restored_from" in r}),
                     "trainings": sorted(restored), "results": sorted(n for n, r in evaluated.items()
                                                                      if "restored_from" in r)},
        "failed": sorted(p.stem for p in (out / "failed").glob("*.txt")) if (out / "failed").is_dir() else [],
    }
    results["settings"]["runs"] = {"done": len(results["settings"]["trained"]) + len(evaluated),
                                   "total": len(plan(scale))}
    results["claims"] = check_claims(results)
    return {key: results[key] for key in ("fig4", "table1", "table2", "table3", "table4", "fig6", "fig7", "fig8",
                                          "claims", "settings")}


def _budget_forms(scale: Scale, result: Any) -> dict[str, Any]:
    """The budget forms side by side, in groups at the same betas and length: per group the model
    with its own form first, then its twins, one row each (run, form and spread half-width,
    GFLOPs and PSNR@10 from ``quality-``, the per-image spread from ``compute-``); a missing run
    is left out of its group and named in ``missing``. GFLOPs are at 10 hints where the result
    has them (older results: over their hint counts)."""
    from adacolor.config import config_values

    forms: dict[str, Any] = {"groups": [], "missing": []}
    twins: dict[str, list[Training]] = {}
    for t in scale.trainings:
        if "budget" in t.roles:
            twins.setdefault(t.tag["twin_of"], []).append(t)
    for base, others in twins.items():
        group = []
        for t in [_training(scale, base)] + others:
            quality, compute = result(f"quality-{t.name}"), result(f"compute-{t.name}")
            if quality is None or compute is None:
                forms["missing"].append(t.name)
                continue
            config = config_values(t.recipe, t.overrides)
            group.append({"budget": config["budget"], "run": t.name,
                          "budget_spread": config["budget_spread"] if config["budget"] == "spread" else None,
                          "gflops": quality.get(f"gflops@{FIG6_K}", quality["gflops"]), "psnr@10": quality["psnr@10"],
                          "p90/p10": compute["spread"]["p90/p10"], "layer_patterns": compute["layer_patterns"],
                          "spread": compute["spread"]} | trained_how(scale, t))
        forms["groups"].append(group)
    return forms


def _config_differences(training: Training, folder: Path) -> dict[str, Any]:
    """Config fields (that change results) in which a finished checkpoint differs from the plan:
    a checkpoint trained elsewhere and placed in ``folder`` is reported as it was trained (but
    for its ``init``: a placed one names the shipped model its twin started from, which
    ``place_shipped`` checked is what the plan's start holds)."""
    if not training_done(folder):
        return {}
    import torch

    from adacolor.config import BOOKKEEPING, config_dict, make_config
    from adacolor.weights import origin_model

    state = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True, mmap=True)
    saved = state.get("config", {})
    planned = config_dict(make_config(training.recipe, resolved_overrides(training, folder.parent.parent)))
    ignored = BOOKKEEPING | ({"init"} if origin_model(state.get("origin")) else set())
    return {key: saved[key] for key in planned if key in saved and key not in ignored and saved[key] != planned[key]}


def write_outputs(out: Union[str, Path], results: Optional[dict[str, Any]] = None,
                  docs: Optional[Union[str, Path]] = None) -> dict[str, Path]:
    """Writes ``results.json`` (given, or read from ``out`` with its claims checked again),
    ``report.md`` and the figures in ``out``; with ``docs``, also the docs page there and a copy
    of the evidence in the folder of its name (``docs/results/``), each run's result included
    (``adacolor.evidence``: a later suite can ``--restore`` them).

    Figures whose data is not in ``out`` (fig7 and fig8 need the compute run's images) are
    kept as they are.
    """
    from adacolor.evidence import save as save_evidence
    from adacolor.figures import write_figures
    from adacolor.report import build_report, check_claims

    out = Path(out)
    if results is None:   # the claims again, so that their paper cells are the paper's data as it is now
        results = json.loads((out / "results.json").read_text())
        results["claims"] = check_claims(results)
    _write(out / "results.json", results)
    images = None
    run = results.get("fig7", {}).get("run")
    if run and (eval_dir(out, f"compute-{run}") / "images.npz").is_file():
        images = eval_dir(out, f"compute-{run}") / "images.npz"
    written = {"results": out / "results.json"}
    written.update(write_figures(results, out / "figures", images))
    (out / "report.md").write_text(build_report(results, figures="figures", present=_figures(out / "figures")))
    written["report"] = out / "report.md"
    if docs is not None:
        docs = Path(docs)
        evidence = evidence_folder(docs)
        if evidence.resolve() != out.resolve():
            (evidence / "figures").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / "results.json", evidence / "results.json")
            shutil.copyfile(out / "report.md", evidence / "report.md")
            made = _figures(out / "figures")
            for stale in (evidence / "figures").glob("*.png"):  # a figure of an earlier run's data
                if stale.stem not in made:
                    stale.unlink()
            for png in (out / "figures").glob("*.png"):
                shutil.copyfile(png, evidence / "figures" / png.name)
            save_evidence(out, evidence, results["settings"])
        docs.write_text(docs_page(results, present=_figures(evidence / "figures"), page=docs.name))
        written["docs"] = docs
    return written


def _figures(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.png")} if folder.is_dir() else set()


def docs_page(results: dict[str, Any], present: Optional[set[str]] = None, page: str = "results.md") -> str:
    """The docs page ``docs/<page>`` (e.g. ``results.md``): the report, with the evidence in the
    folder of the page's name beside it (``docs/results/``)."""
    from adacolor.report import build_report

    folder = evidence_folder(Path(page)).name
    scale = results["settings"]["scale"]
    form = f" --form {results['settings']['form']}" if results["settings"].get("form") else ""
    head = (f"<!-- generated by `adacolor reproduce --report-only --out DIR --docs docs/{page}` from "
            f"docs/{folder}/results.json; do not edit by hand -->\n\n")
    intro = (f"The paper's comparisons, regenerated by one command (`adacolor reproduce --scale {scale}{form} "
             f"--out DIR`) and checked claim by claim. The data behind this page: "
             f"[results.json]({folder}/results.json), [report.md]({folder}/report.md).\n\n")
    return head + build_report(results, figures=f"{folder}/figures", present=present, intro=intro)


def evidence_folder(page: Path) -> Path:
    """Where a docs page's evidence is kept: the folder of its name beside it
    (``docs/results.md`` -> ``docs/results/``)."""
    return page.parent / page.stem


# -- command line ----------------------------------------------------------------------------

def _tokens(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def help_estimates() -> str:
    """The ``--scale`` help: what each scale is and, for the cpu scale, its estimated hours in each
    form from the measured rates (``adacolor.estimate``), built when the parser is made."""
    choice = ablation_choice()
    finetune, scratch = choice["scale"], make_scale("cpu", form="scratch")
    hours = estimate.hours
    return (f"tiny: every table and figure in minutes (plumbing, not numbers); cpu: Imagenette on 2 cores, "
            f"estimated from the rates measured here: fine-tuned {hours(estimated_minutes(finetune))} (main pair at "
            f"{finetune.image_size} px; Tables 3, 4 and Fig. 6 at {finetune.sizes['ablations']} px, "
            f"{hours(choice['minutes'][finetune.image_size])} at {finetune.image_size}), from scratch "
            f"{hours(estimated_minutes(scratch))} (every model at {scratch.image_size} px); aim "
            f"{hours(CPU_AIM_MINUTES)}; less the shipped models' trainings with --from-shipped; paper: 224 px, the "
            f"paper's recipes, sized for GPUs (--report-only: default the scale of DIR/results.json)")


def _runtime_list(text: str) -> list[str]:
    names = _tokens(text)
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown runtime(s) {', '.join(unknown) or '(none)'}; "
                                         f"choose from {', '.join(RUNTIMES)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``adacolor reproduce``."""
    parser.add_argument("--scale", default=None, choices=SCALES, help=help_estimates())
    parser.add_argument("--form", default=None, choices=FORMS,
                        help="finetune (the tiny and cpu scales' default): the dense iColoriT-T is trained once "
                             "and every adaptive model fine-tuned from it, the same steps each; scratch: every "
                             "model from its random initialisation by its recipe (the paper scale's only form). "
                             "Default with --report-only / --restore: the form of those results")
    parser.add_argument("--out", required=True, help="DIR: train/<run>/, eval/<run>/, results.json, report.md, figures/")
    parser.add_argument("--only", type=_tokens, default=None, metavar="NAME,...",
                        help="only these runs (names as listed by --list), or kinds: train, quality, transfer, "
                             "compute, random, bench")
    parser.add_argument("--data", default=None, help="paper scale: an ImageNet root with train/ and val/ "
                                                     "(evaluated on the ctest10k list)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--runtimes", type=_runtime_list, default=None, metavar="NAME,...",
                        help=f"what the bench (Table 2) times each model on: {', '.join(RUNTIMES)} (the others run "
                             "its exported graph; default: torch and every other one installed)")
    parser.add_argument("--from-shipped", action="store_true",
                        help="take the trainings a shipped model came from (its recipe's training values, from the "
                             "same start) from its weights instead of training them")
    parser.add_argument("--restore", default=None, metavar="EVIDENCE",
                        help="first put the results kept in EVIDENCE (a --docs page's folder, e.g. docs/results) "
                             "into DIR where DIR has none: a suite goes on where an earlier session's DIR is gone")
    parser.add_argument("--list", action="store_true", help="list the runs and whether each is done; run nothing")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rebuild results.json (when DIR has runs), report.md and figures")
    parser.add_argument("--docs", default=None, metavar="PAGE",
                        help="also write the docs page (e.g. docs/results.md) and copy the evidence into the folder of its name beside it (docs/results/)")


SUITE = "suite.json"   # in DIR: the scale and form of the suite it holds


def _known_suite(out: Path, args: argparse.Namespace) -> dict[str, Optional[str]]:
    """The scale and form of what DIR (``suite.json``, or ``results.json`` with ``--report-only``)
    or the ``--restore`` evidence holds; results written before forms existed are ``scratch``."""
    known: dict[str, Optional[str]] = {"scale": None, "form": None}
    sources = [out / SUITE] + ([out / "results.json"] if args.report_only else []) + \
        ([Path(args.restore) / "results.json"] if args.restore else [])
    for path in sources:
        data = _read(path)
        if data is None:
            continue
        data = data.get("settings", data)
        for key, default in (("scale", None), ("form", "scratch")):
            known[key] = known[key] or data.get(key, default)
    return known


def _check_runtimes(runtimes: Optional[Sequence[str]]) -> None:
    """ValueError for a runtime asked for that is not installed here."""
    import importlib.util

    missing = [r for r in runtimes or () if r != "torch" and importlib.util.find_spec(r) is None]
    if missing:
        raise ValueError(f"--runtimes: {', '.join(missing)} not installed; pip install 'adaprune[runtimes]' or "
                         f"leave --runtimes out (torch and whatever is installed)")


def run(args: argparse.Namespace) -> int:
    """``adacolor reproduce``; returns the exit status (1 when a run failed)."""
    out = Path(args.out)
    if args.report_only and args.restore is None and not (out / "train").is_dir() and not (out / "eval").is_dir():
        if not (out / "results.json").is_file():
            raise FileNotFoundError(f"{out} has neither runs nor results.json to report on")
        written = write_outputs(out, None, args.docs)   # committed evidence: rebuild the pages only
        for kind, path in written.items():
            print(f"{kind}: {path}")
        return 0
    known = _known_suite(out, args)
    name = args.scale or known["scale"]
    if name is None:
        raise ValueError("give --scale tiny, cpu or paper")
    form = args.form or (known["form"] if known["scale"] in (None, name) else None) or default_form(name)
    held = _read(out / SUITE)
    if held is not None and (held.get("scale"), held.get("form")) != (name, form):
        raise ValueError(f"{out} holds the {held.get('scale')} scale's {held.get('form')} suite, not the {name} "
                         f"scale's {form} one (runs of the same name would mix); use another --out, or "
                         f"--scale {held.get('scale')} --form {held.get('form')}")
    _check_runtimes(getattr(args, "runtimes", None))
    scale = make_scale(name, args.data, form)
    if getattr(args, "runtimes", None):
        scale = dataclasses.replace(scale, bench_runtimes=tuple(args.runtimes))
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    if not args.list:
        _write(out / SUITE, {"scale": scale.name, "form": scale.form})
    if args.restore is not None:
        from adacolor.evidence import restore as restore_evidence

        restored = restore_evidence(out, args.restore, scale.name, {r.name for r in plan(scale)}, scale.form)
        _say(f"restored from {args.restore}: {len(restored['eval'])} results, {len(restored['train'])} trainings "
             f"(no checkpoints), {len(restored['figures'])} figures")
    if args.from_shipped and not args.report_only and not args.list:
        for run_name, shipped in place_shipped(scale, out).items():
            _say(f"{run_name}: checkpoint from shipped weights {shipped} (not trained)")
    if args.list:
        runs = select(plan(scale), args.only)
        todo = {r.name for r in to_do(runs, out, scale)}
        for r in runs:
            print(f"{'todo' if r.name in todo else 'done'}  {_kind(r):<8} {r.name}")
        return 0
    status = {"failed": []}
    start = time.perf_counter()
    if not args.report_only:
        try:
            status = run_suite(scale, out, args.only)
        except SuiteInterrupted as stop:
            return stop.exit_code
    written = write_outputs(out, collect(scale, out), args.docs)
    for kind, path in written.items():
        print(f"{kind}: {path}")
    if not args.report_only:
        _say(f"finished in {_duration((time.perf_counter() - start) / 60)}: {len(status['done'])} run, "
             f"{len(status['skipped'])} already done, {len(status['blocked'])} blocked, {len(status['failed'])} failed")
    return 1 if status["failed"] else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m adacolor.reproduce``: the same as ``adacolor reproduce``."""
    parser = argparse.ArgumentParser(prog="adacolor reproduce", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
