"""--init: a dense colorizer into an adaptive one, another grid, a checkpoint that does not fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from adacolor.config import make_config
from adacolor.initialize import fit_state, initialize_from, read_init_source
from adacolor.model import colorizer_state, create_colorizer
from adacolor.train import train

TINY = dict(image_size=32, patch_size=8, depth=2)
RUN = ["image_size=32", "patch_size=8", "depth=2", "batch_size=4", "max_steps=4", "lr=1e-3", "val_images=2",
       "eval_hints=1", "eval_every=2", "checkpoint_every=2", "log_every=1", "max_hints=8", "num_workers=0",
       "threads=1"]


def _checkpoint(tmp_path: Path, name: str = "icolorit-t", **options) -> Path:
    torch.manual_seed(1)
    model = create_colorizer(name, **{**TINY, **options})
    path = tmp_path / f"{name}.pt"
    torch.save({**colorizer_state(model), "step": 7}, path)
    return path


def test_a_dense_checkpoint_starts_an_adaptive_model(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path)
    dense = torch.load(path, weights_only=True)["model"]
    torch.manual_seed(2)
    model = create_colorizer("adacolvit-t", **TINY)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = initialize_from(model, str(path))
    state = model.state_dict()
    for key, value in dense.items():  # every dense tensor is in place, under the same name
        assert torch.equal(state[key], value), key
    gates = [k for k in state if "adaprune" in k]
    assert gates and sorted(report.new) == sorted(gates)  # only the gates start new ...
    for key in gates:                                      # ... as they were initialised
        assert torch.equal(state[key], fresh[key]), key
    assert len(report.loaded) == len(dense) and not report.resampled and not report.dropped
    assert report.as_dict()["new"] == {"gates": len(gates)}
    assert "step 7" in report.origin and "new: gates" in report.summary()


@pytest.mark.parametrize("method", ["dynamicvit-t", "avit-t", "adavit-t"])
def test_a_dense_icolorit_starts_each_baseline_method(tmp_path: Path, method: str) -> None:
    # the fine-tune form of adacolor reproduce starts DynamicViT, A-ViT and AdaViT from the dense model
    path = _checkpoint(tmp_path)
    dense = torch.load(path, weights_only=True)["model"]
    torch.manual_seed(3)
    model = create_colorizer(method, **TINY)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = initialize_from(model, str(path))
    state = model.state_dict()
    assert sorted(report.loaded) == sorted(dense) and not report.dropped and not report.resampled
    for key, value in dense.items():   # every dense tensor in place, under the same name
        assert torch.equal(state[key], value), key
    gates = sorted(k for k in state if "adaprune" in k)
    assert sorted(report.new) == gates   # only the gates start new (A-ViT has none: its halting reads a channel)
    assert bool(gates) == (method != "avit-t")
    for key in gates:
        assert torch.equal(state[key], fresh[key]), key
    wider = create_colorizer(method, image_size=64, patch_size=8, depth=2)   # and at another size
    assert initialize_from(wider, str(path)).resampled == {"backbone.pos_embed": "4x4 -> 8x8"}
    assert wider.eval()(torch.randn(1, 4, 64, 64)).shape == (1, 2, 64, 64)


def test_another_grid_resamples_the_position_embeddings(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path)                            # 32 px: a 4x4 grid
    model = create_colorizer("icolorit-t", image_size=64, patch_size=8, depth=2)
    report = initialize_from(model, str(path))
    assert report.resampled == {"backbone.pos_embed": "4x4 -> 8x8"}
    source = torch.load(path, weights_only=True)["model"]["backbone.pos_embed"]    # (1, 16, C)
    resampled = model.backbone.pos_embed.detach()                                    # (1, 64, C)
    assert resampled.shape == (1, 64, 192)
    # a smooth resampling: the mean over the grid is kept, and it is not the fresh init
    torch.testing.assert_close(resampled.mean(1), source.mean(1), atol=0.02, rtol=0)
    assert torch.equal(model.backbone.blocks[0].attn.qkv.weight,
                       torch.load(path, weights_only=True)["model"]["backbone.blocks.0.attn.qkv.weight"])
    x = torch.randn(1, 4, 64, 64)
    assert model.eval()(x).shape == (1, 2, 64, 64)


def test_a_head_of_another_kind_starts_new(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path, head="linear")
    source = read_init_source(str(path))
    assert source.model_args["head"] == "linear"
    model = create_colorizer("icolorit-t", **TINY)          # conv head
    _, report = fit_state(model, source)
    assert sorted(report.new) == ["head.bias", "head.weight"]
    assert sorted(report.dropped) == ["head.bias", "head.weight", "stabilizer.bias", "stabilizer.weight"]


def test_old_checkpoints_without_a_head_name_load_as_linear(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path, head="linear")
    state = torch.load(path, weights_only=True)
    del state["model_args"]["head"]                         # as written before heads were selectable
    assert read_init_source(str(_save(tmp_path / "old.pt", state))).model_args["head"] == "linear"


def _save(path: Path, state: dict) -> Path:
    torch.save(state, path)
    return path


@pytest.mark.parametrize("options, words", [
    (dict(depth=3), "depth 2 vs 3"),
    (dict(patch_size=16, image_size=32), "patch size 8 vs 16"),
    (dict(backbone="vit_small_patch16_224"), "width 192 vs 384"),
])
def test_a_checkpoint_that_does_not_fit_is_one_line_naming_the_difference(tmp_path: Path, options: dict,
                                                                           words: str) -> None:
    path = _checkpoint(tmp_path)
    model = create_colorizer("adacolvit-t", **{**TINY, **options})
    with pytest.raises(ValueError, match=words) as error:
        initialize_from(model, str(path))
    assert "\n" not in str(error.value) and "does not fit adacolvit-t" in str(error.value)


def test_bad_sources_are_clear_errors(tmp_path: Path) -> None:
    model = create_colorizer("icolorit-t", **TINY)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        initialize_from(model, str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="not a colorizer checkpoint"):
        initialize_from(model, str(_save(tmp_path / "x.pt", {"weights": torch.zeros(1)})))
    with pytest.raises(ValueError, match="no shipped model named 'nope'"):
        initialize_from(model, "shipped:nope")
    with pytest.raises(ValueError, match="starts from scratch"):
        initialize_from(create_colorizer("swinir-t", image_size=32), str(_checkpoint(tmp_path)))


def test_shipped_weights_start_a_model_of_another_resolution() -> None:
    """The 224-px recipe's start: the shipped 112-px iColoriT-T (old linear head) into a 224-px one."""
    model = create_colorizer("icolorit-t", image_size=224)
    report = initialize_from(model, "shipped:icolorit-t-cpu")
    assert report.resampled == {"backbone.pos_embed": "7x7 -> 14x14"}
    assert report.as_dict()["new"] == {"head": 2} and report.as_dict()["dropped"] == {"head": 4}


def test_train_with_init_records_what_was_loaded_and_resumes(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path)
    config = make_config("smoke", RUN + ["model=adacolvit-t", f"init={path}"])
    whole = train(config, tmp_path / "whole")
    first = json.loads((tmp_path / "whole" / "log.jsonl").read_text().splitlines()[0])
    assert first["step"] == 0 and first["init"]["loaded"] > 0 and "gates" in first["init"]["new"]
    text = (tmp_path / "whole" / "config.yaml").read_text()
    assert "# init: loaded" in text and yaml.safe_load(text)["init"] == str(path)
    assert make_config(str(tmp_path / "whole" / "config.yaml")) == config   # the comment keeps it a recipe
    assert json.loads((tmp_path / "whole" / "init.json").read_text())["new_keys"]
    killed = train(config, tmp_path / "resumed", stop_at_step=3)
    assert killed["stopped"]
    resumed = train(config, tmp_path / "resumed")             # the resume does not load --init again
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["model"]
    assert resumed["step"] == whole["step"] == 4 and all(torch.equal(a[k], b[k]) for k in a)


def test_distillation_adds_a_term_toward_the_init_model(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path)
    config = make_config("smoke", RUN + ["model=adacolvit-t", f"init={path}", "distill_weight=0.5",
                                         "max_steps=2"])
    train(config, tmp_path / "run")
    lines = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [line for line in lines if "loss" in line]
    assert steps and all(line["distill"] > 0 for line in steps)
    assert all(line["loss"] == pytest.approx(line["huber"] + line["sparsity"] + 0.5 * line["distill"], rel=1e-5)
               for line in steps)
    with pytest.raises(ValueError, match="distill_weight needs a teacher"):
        make_config("smoke", ["distill_weight=0.5"])
    with pytest.raises(ValueError, match="works at 32 px"):
        train(make_config("smoke", RUN[1:] + ["image_size=64", "model=adacolvit-t", f"init={path}",
                                               "distill_weight=0.5"]), tmp_path / "other")
