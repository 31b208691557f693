"""Training configuration: one frozen dataclass, YAML recipes, and typed ``--set`` overrides.

    >>> config = make_config("cpu-icolorit-t", ["epochs=2", "lr=1e-3"])
    >>> save_config(config, out_dir / "config.yaml")     # reload with make_config(that path)

A recipe is a YAML mapping of ``TrainConfig`` fields, shipped in ``recipes/``; the key
``inherit: NAME`` first loads another recipe and then applies this one's keys on top.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import yaml

__all__ = [
    "TrainConfig",
    "BOOKKEEPING",
    "RECIPE_DIR",
    "list_recipes",
    "recipe_description",
    "recipe_path",
    "load_recipe",
    "parse_overrides",
    "config_values",
    "make_config",
    "config_dict",
    "save_config",
]

RECIPE_DIR = Path(__file__).with_name("recipes")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved as ``config.yaml`` beside its outputs."""

    # model
    model: str = "icolorit-t"              # a registered colorizer (model.list_colorizers())
    backbone: Optional[str] = None         # any timm ViT name in place of the model's backbone
    image_size: int = 224                  # square train / eval resolution (paper: 224)
    patch_size: Optional[int] = None       # None: the backbone's (16)
    depth: Optional[int] = None            # None: the model's (12, or its -d6 / -d24)
    drop_path: float = 0.0                 # stochastic depth; iColoriT trains without it
    patch_groups: Optional[int] = None     # AdaColViT's G (1: no patch selection); None: the model's (2)
    layer_skip: Optional[bool] = None      # AdaColViT's sub-layer skipping; None: the model's (on)
    head: str = "conv"                     # iColoriT's 3x3 conv over the token grid, or "linear" (the old head)
    init: Optional[str] = None             # start from trained weights: a checkpoint.pt or shipped:NAME
                                           # (backbone and head load, gates start new, pos embed resampled)
    distill_weight: float = 0.0            # weight of a Huber loss to the --init model's own ab (a second
                                           # target; 0: none); needs init
    # loss
    huber_delta: float = 0.01              # iColoriT's Huber delta on ab / 110
    sparsity_weight: float = 1.0           # weight of the sparsity loss (adaptive models)
    beta_patch: Optional[float] = None     # target patch keep ratio; None: the model's (0.5)
    beta_layer: Optional[float] = None     # target layer keep ratio; None: the model's (0.8)
    budget: str = "sample"                 # sparsity budget per "sample" (eq. 13 as written), on the
                                           # "batch" mean (lets compute follow the image) or on the batch's
                                           # "spread" (asks it to: uniform around the betas)
    budget_spread: float = 0.2             # "spread": half-width of the target keep ratios per image
                                           # (adaprune.DEFAULT_SPREAD)
    # data
    data: str = "samples"                  # training image folder, or "samples" (scikit-image photos)
    val_data: Optional[str] = None         # validation folder (or "samples"); None: same as data
    val_images: int = 64                   # images of the periodic evaluation, spread evenly
    # hints: training draws them per image; evaluation uses fixed sets drawn once from the seed
    min_hints: int = 0                     # iColoriT: 0..128 hints of 2x2 pixels per image
    max_hints: int = 128
    hint_size: int = 2
    eval_hints: tuple[int, ...] = (1, 10)  # k of the PSNR@k reported during training
    # optimisation (paper: AdamW, lr 4e-3 at batch 1024, wd 0.05, cosine with warm-up, 50 epochs)
    batch_size: int = 1024                 # global batch; each of W processes takes batch_size / W
    epochs: int = 50
    max_steps: Optional[int] = None        # train this many steps instead of `epochs` (schedule included)
    blr: float = 4e-3                      # lr at batch 1024; lr = blr * batch_size / 1024
    lr: Optional[float] = None             # absolute lr; overrides blr
    min_lr: float = 1e-6                   # floor of the cosine
    warmup: float = 0.05                   # fraction of the steps with linear warm-up
    weight_decay: float = 0.05             # on weights only; biases, norms, tokens, pos embeds: 0
    adam_betas: tuple[float, float] = (0.9, 0.95)  # iColoriT's AdamW betas
    clip_grad: Optional[float] = None      # max gradient norm; None: no clipping
    # bookkeeping
    eval_every: int = 0                    # steps between evaluations; 0: at each epoch's end
    checkpoint_every: int = 0              # steps between checkpoints; 0: at each epoch's end
    log_every: int = 10                    # steps between lines in log.jsonl
    seed: int = 0                          # data order, hints, init and gate noise derive from it
    num_workers: int = 1                   # data loader processes per training process
    threads: Optional[int] = None          # torch threads per process; None: torch's default
    device: str = "auto"                   # auto (cuda if present), cpu, cuda

    def __post_init__(self) -> None:
        from adacolor.model import list_colorizers

        if self.model not in list_colorizers():
            raise ValueError(f"model: unknown colorizer {self.model!r}; known: {', '.join(list_colorizers())}")
        positive = ("image_size", "val_images", "hint_size", "batch_size", "epochs", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("max_steps", "patch_size", "depth", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or none, got {value!r}")
        for name in ("eval_every", "checkpoint_every", "num_workers", "min_hints", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.min_hints > self.max_hints:
            raise ValueError(f"min_hints ({self.min_hints}) must be <= max_hints ({self.max_hints})")
        if not self.eval_hints or any(k < 1 for k in self.eval_hints):
            raise ValueError(f"eval_hints must be one or more positive counts, got {self.eval_hints!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup!r}")
        for name in ("beta_patch", "beta_layer"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] or none, got {value!r}")
        if (self.lr is not None and not self.lr > 0) or not self.blr > 0:
            raise ValueError(f"lr and blr must be > 0, got lr={self.lr!r}, blr={self.blr!r}")
        if self.budget not in ("sample", "batch", "spread"):
            raise ValueError(f"budget must be sample, batch or spread, got {self.budget!r}")
        if not 0.0 <= self.budget_spread <= 0.5:
            raise ValueError(f"budget_spread is a half-width of keep ratios in [0, 0.5], got {self.budget_spread!r}")
        if self.head not in ("conv", "linear"):
            raise ValueError(f"head must be conv (iColoriT's) or linear, got {self.head!r}")
        if self.distill_weight < 0:
            raise ValueError(f"distill_weight must be >= 0, got {self.distill_weight!r}")
        if self.distill_weight and not self.init:
            raise ValueError("distill_weight needs a teacher: set init to the dense model to distil from "
                             "(--init CHECKPOINT or shipped:NAME)")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")

    @property
    def learning_rate(self) -> float:
        """The peak learning rate: ``lr``, or ``blr`` scaled linearly with the global batch."""
        return self.lr if self.lr is not None else self.blr * self.batch_size / 1024

    def model_options(self) -> dict[str, Any]:
        """Keyword arguments of ``create_colorizer`` besides the name."""
        options: dict[str, Any] = dict(image_size=self.image_size, backbone=self.backbone)
        if self.head != "conv":
            options["head"] = self.head
        for name in ("patch_size", "depth", "beta_patch", "beta_layer", "patch_groups", "layer_skip"):
            if getattr(self, name) is not None:
                options[name] = getattr(self, name)
        if self.drop_path:
            options["drop_path_rate"] = self.drop_path
        return options


_FIELD_TYPES = typing.get_type_hints(TrainConfig)
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _describe(kind: Any) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (Union, types.UnionType) and type(None) in args:
        return f"{_describe(next(a for a in args if a is not type(None)))} or none"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"comma-separated {args[0].__name__}s"
        return f"{len(args)} comma-separated {args[0].__name__}s"
    return kind.__name__


def _coerce(key: str, kind: Any, value: Any) -> Any:
    """Converts a YAML value or a command-line string to the field's type."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    wrong = ValueError(f"{key}: expected {_describe(kind)}, got {value!r}")
    if origin in (Union, types.UnionType) and type(None) in args:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "~", "")):
            return None
        try:
            return _coerce(key, next(a for a in args if a is not type(None)), value)
        except ValueError:
            raise wrong from None
    if origin is tuple:
        if isinstance(value, str):
            value = [part for part in value.replace(" ", "").split(",") if part]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise wrong
        item = args[0]
        if not (len(args) == 2 and args[1] is Ellipsis) and len(value) != len(args):
            raise wrong
        return tuple(_coerce(key, item, v) for v in value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise wrong
    if kind is int:
        if isinstance(value, bool):
            raise wrong
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise wrong from None
        raise wrong
    if kind is float:
        if isinstance(value, bool):
            raise wrong
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise wrong from None
        raise wrong
    if kind is str:
        if isinstance(value, str):
            return value
        raise wrong
    raise TypeError(f"{key}: no conversion for field type {kind!r}")


def _check_keys(keys: Iterable[str], where: str) -> None:
    unknown = sorted(set(keys) - set(_FIELD_TYPES))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(unknown)} in {where}; valid keys: "
                         f"{', '.join(f.name for f in fields(TrainConfig))}")


def list_recipes() -> list[str]:
    """Names of the shipped recipes."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def recipe_description(recipe: Union[str, Path]) -> str:
    """The first sentence of a recipe's leading comment (``adacolor list`` shows it).

    The comment lines before the first key, up to an indented example command, are joined;
    an undocumented recipe gives ``""``.
    """
    lines: list[str] = []
    for line in recipe_path(recipe).read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line[1:]
        if text.startswith("   "):  # "#   adacolor train ...": an example, not prose
            break
        lines.append(text.strip())
    prose = " ".join(part for part in lines if part)
    return re.split(r"(?<=\.)\s", prose, maxsplit=1)[0]


def recipe_path(recipe: Union[str, Path]) -> Path:
    """A shipped recipe's file by name, or a YAML file path."""
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    shipped = RECIPE_DIR / f"{recipe}.yaml"
    if shipped.is_file():
        return shipped
    raise ValueError(f"recipe {str(recipe)!r} is neither a YAML file nor a shipped recipe; "
                     f"shipped: {', '.join(list_recipes())}")


def load_recipe(recipe: Union[str, Path], _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe's keys (typed), with ``inherit:`` resolved."""
    path = recipe_path(recipe).resolve()
    if path in _seen:
        raise ValueError(f"recipe inheritance loops: {' -> '.join(str(p) for p in _seen + (path,))}")
    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"recipe {where} is not valid YAML ({problem}); a recipe is a mapping of "
                         f"config keys, one 'key: value' per line") from None
    except UnicodeDecodeError:
        raise ValueError(f"recipe {path} is not a text file; a recipe is YAML, one 'key: value' "
                         f"per line") from None
    if not isinstance(raw, dict):
        raise ValueError(f"recipe {path} must be a mapping of config keys, got {type(raw).__name__}")
    not_names = [key for key in raw if not isinstance(key, str)]
    if not_names:
        raise ValueError(f"recipe {path}: keys must be config field names, got {not_names!r}")
    values: dict[str, Any] = {}
    parent = raw.pop("inherit", None)
    if parent is not None and not isinstance(parent, str):
        raise ValueError(f"recipe {path}: 'inherit' takes a recipe name, got {parent!r}")
    if parent is not None:
        base = path.parent / f"{parent}.yaml"
        values.update(load_recipe(base if base.is_file() else parent, _seen + (path,)))
    _check_keys(raw, str(path))
    values.update({key: _coerce(key, _FIELD_TYPES[key], value) for key, value in raw.items()})
    return values


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> typed values; ValueError for a malformed item or an unknown key."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set takes key=value, got {item!r}")
        _check_keys([key], f"--set {item}")
        values[key] = _coerce(key, _FIELD_TYPES[key], raw.strip())
    return values


# Fields that change no result, only what a training logs and saves on the way and where it runs:
# a resumed run may differ in these from the run it resumes, and two trainings that differ in
# nothing else are the same training.
BOOKKEEPING = frozenset({"eval_every", "checkpoint_every", "log_every", "num_workers", "threads", "device",
                         "val_images"})


def config_values(recipe: Optional[Union[str, Path]] = None, overrides: Iterable[str] = (),
                  **values: Any) -> dict[str, Any]:
    """Every field ``make_config`` would set, without building the config: the defaults, then the
    recipe, then ``--set`` strings, then keyword values. Unlike ``make_config`` it does not check
    the model against the registry, so it imports no torch (a fast ``--help``)."""
    merged = {f.name: f.default for f in fields(TrainConfig)}
    merged.update(load_recipe(recipe) if recipe is not None else {})
    merged.update(parse_overrides(overrides))
    _check_keys(values, "keyword arguments")
    merged.update({key: _coerce(key, _FIELD_TYPES[key], value) for key, value in values.items()})
    return merged


def make_config(recipe: Optional[Union[str, Path]] = None, overrides: Iterable[str] = (),
                **values: Any) -> TrainConfig:
    """A config from a recipe (name or path, or None for the defaults), then ``--set`` strings,
    then keyword values (typed like YAML values)."""
    return TrainConfig(**config_values(recipe, overrides, **values))


def config_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain types only (tuples as lists): for YAML, JSON and checkpoints."""
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(config).items()}


def save_config(config: TrainConfig, path: Union[str, Path]) -> Path:
    """Writes the config as YAML; ``make_config(path)`` reads it back equal."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("# adacolor training config; rerun with: adacolor train --recipe " + str(path) + "\n"
            + yaml.safe_dump(config_dict(config), sort_keys=False))
    path.write_text(text)
    return path
