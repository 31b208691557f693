"""TrainConfig, recipes and --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adacolor.config import (
    TrainConfig,
    list_recipes,
    load_recipe,
    make_config,
    parse_overrides,
    save_config,
)
from adacolor.model import list_colorizers


def test_shipped_recipes_load_and_cover_every_model() -> None:
    recipes = list_recipes()
    assert {"smoke", "cpu-icolorit-t", "cpu-adacolvit-t"} <= set(recipes)
    assert set(list_colorizers()) <= set(recipes)  # one paper-setting recipe per model
    for name in recipes:
        config = make_config(name)
        assert config.model in list_colorizers()


def test_paper_recipe_inherits_the_papers_setting() -> None:
    config = make_config("adacolvit-s")
    assert config.model == "adacolvit-s"
    assert (config.image_size, config.batch_size, config.epochs, config.weight_decay) == (224, 1024, 50, 0.05)
    assert config.learning_rate == pytest.approx(4e-3)


def test_overrides_are_typed_by_field() -> None:
    values = parse_overrides(["epochs=3", "lr=1e-3", "eval_hints=1,10,100", "backbone=none",
                              "adam_betas=0.9, 0.99", "data=/tmp/x", "clip_grad=1"])
    assert values == {"epochs": 3, "lr": 1e-3, "eval_hints": (1, 10, 100), "backbone": None,
                      "adam_betas": (0.9, 0.99), "data": "/tmp/x", "clip_grad": 1.0}
    assert isinstance(values["clip_grad"], float)
    config = make_config("smoke", ["batch_size=4", "image_size=32"])
    assert (config.batch_size, config.image_size, config.model) == (4, 32, "icolorit-t")


@pytest.mark.parametrize("item, message", [
    ("epoch=3", r"unknown config key\(s\) epoch.*valid keys: model, backbone"),
    ("epochs", "key=value"),
    ("epochs=three", "epochs: expected int"),
    ("lr=fast", "lr: expected float or none"),
    ("adam_betas=0.9", "adam_betas: expected 2 comma-separated floats"),
])
def test_bad_overrides_say_what_is_accepted(item: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_config("smoke", [item])


@pytest.mark.parametrize("values, message", [
    (dict(warmup=1.5), "warmup"),
    (dict(model="icolorit-xl"), "known: .*adacolvit-t"),
    (dict(batch_size=0), "batch_size must be >= 1"),
    (dict(min_hints=10, max_hints=5), "min_hints"),
    (dict(beta_patch=2.0), "beta_patch"),
])
def test_invalid_values_are_rejected(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**values)


def test_learning_rate_scales_with_the_global_batch() -> None:
    assert TrainConfig(batch_size=256).learning_rate == pytest.approx(1e-3)
    assert TrainConfig(batch_size=256, lr=5e-4).learning_rate == 5e-4


def test_saved_config_reloads_equal(tmp_path: Path) -> None:
    config = make_config("cpu-adacolvit-t", ["epochs=2", "eval_hints=1,5"])
    path = save_config(config, tmp_path / "run" / "config.yaml")
    assert make_config(path) == config
    assert yaml.safe_load(path.read_text())["eval_hints"] == [1, 5]


def test_recipe_files_reject_unknown_keys_and_loops(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: icolorit-t\nepoch: 3\n")
    with pytest.raises(ValueError, match="unknown config key.*epoch"):
        load_recipe(bad)
    loop = tmp_path / "loop.yaml"
    loop.write_text("inherit: loop\n")
    with pytest.raises(ValueError, match="loops"):
        load_recipe(loop)
    with pytest.raises(ValueError, match="shipped: .*smoke"):
        load_recipe("no-such-recipe")


def test_budget_spread_defaults_to_the_librarys_and_is_range_checked() -> None:
    import adaprune

    assert TrainConfig().budget_spread == adaprune.DEFAULT_SPREAD   # config.py keeps torch out of its import
    with pytest.raises(ValueError, match=r"budget_spread is a half-width of keep ratios in \[0, 0.5\], got 0.6"):
        TrainConfig(budget="spread", budget_spread=0.6)
    with pytest.raises(ValueError, match="budget must be sample, batch or spread, got 'mean'"):
        TrainConfig(budget="mean")


def test_config_values_are_make_configs_fields_for_every_recipe():
    from adacolor.config import config_dict, config_values, list_recipes, make_config

    for recipe in list_recipes():
        values = config_values(recipe, ["epochs=3"])
        assert config_dict(make_config(**values)) == config_dict(make_config(recipe, ["epochs=3"]))
        assert values["epochs"] == 3 and set(values) == set(config_dict(make_config()))
