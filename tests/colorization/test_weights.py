"""Shipped weights: export to fp16 safetensors, SHA-256 checked loads, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adacolor.model import colorizer_state, create_colorizer
from adacolor.weights import (
    DEFAULT_MODEL,
    MAX_SHIPPED_BYTES,
    export_weights,
    file_sha256,
    list_shipped,
    load_shipped,
    load_weights_file,
    shipped_card,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, torch.nn.Module]:
    torch.manual_seed(0)
    model = create_colorizer("adacolvit-t", image_size=32).eval()
    folder = tmp_path_factory.mktemp("weights")
    checkpoint = folder / "checkpoint.pt"
    torch.save(colorizer_state(model), checkpoint)
    # iColoriT's head makes a full-width ViT-Tiny 12.3 MiB in float16: over the shipping bound
    card = export_weights(checkpoint, "tiny", "a test model", directory=folder, extra={"steps": 0},
                          max_bytes=2 * MAX_SHIPPED_BYTES)
    return folder, card, model


def test_int8_storage_is_within_the_bound_and_close_to_the_model(exported, tmp_path: Path) -> None:
    folder, fp16_card, model = exported
    with pytest.raises(ValueError, match="exceeds the 12 MiB bound"):
        export_weights(folder / "checkpoint.pt", "big", "fp16 at full width", directory=tmp_path)
    card = export_weights(folder / "checkpoint.pt", "small", "int8", directory=tmp_path, dtype="int8")
    assert card["dtype"] == "int8" and card["bytes"] <= MAX_SHIPPED_BYTES < fp16_card["bytes"]
    loaded = load_shipped("small", directory=tmp_path)
    for key, value in model.state_dict().items():  # per-channel int8: within half a step of each channel
        step = value.abs().reshape(value.shape[0], -1).amax(1) / 127 if value.ndim >= 2 else value.abs()
        error = (loaded.state_dict()[key] - value).abs().reshape(value.shape[0], -1).amax(1) if value.ndim else 0
        assert torch.all(error <= step * 0.5 + 1e-3), key
    x = torch.rand(1, 4, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), rtol=0.0, atol=5e-2)
    with pytest.raises(ValueError, match="dtype must be one of float16, int8"):
        export_weights(folder / "checkpoint.pt", "x", "x", directory=tmp_path, dtype="int4")


def test_quantize_int8_round_trip() -> None:
    from adacolor.weights import dequantize_int8, quantize_int8

    weight = torch.randn(6, 5, 3, 3) * torch.logspace(-3, 1, 6)[:, None, None, None]
    q, scale = quantize_int8(weight)
    assert q.dtype == torch.int8 and scale.shape == (6,) and int(q.abs().max()) == 127
    restored = dequantize_int8(q, scale)
    assert ((restored - weight).abs() <= scale.float()[:, None, None, None] * 0.51).all()
    assert torch.equal(dequantize_int8(*quantize_int8(torch.zeros(2, 3))), torch.zeros(2, 3))


def test_export_writes_fp16_with_a_card_that_vouches_for_it(exported) -> None:
    folder, card, model = exported
    weights = folder / card["weights"]
    assert card["sha256"] == file_sha256(weights) and card["bytes"] == weights.stat().st_size
    assert card["dtype"] == "float16" and card["steps"] == 0 and card["image_size"] == 32
    params = sum(v.numel() for v in model.state_dict().values())
    assert card["bytes"] < params * 2 + 64 * 1024  # two bytes a value plus a header
    assert [c["name"] for c in list_shipped(folder)] == ["tiny"]
    assert not list(folder.glob("*.tmp"))


def test_shipped_load_equals_the_model_rounded_to_fp16(exported) -> None:
    folder, _, model = exported
    loaded = load_shipped("tiny", directory=folder)
    assert not loaded.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value.half().float(), rtol=0, atol=0)
    x = torch.rand(1, 4, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), rtol=0.0, atol=2e-2)


def test_model_args_travel_in_the_file_metadata(exported) -> None:
    folder, card, _ = exported
    model = load_weights_file(folder / card["weights"])
    assert model.build_args == card["model_args"]


def test_unknown_name_lists_the_shipped_ones(exported) -> None:
    folder, _, _ = exported
    with pytest.raises(ValueError, match=r"no shipped model named 'nope'; shipped: tiny"):
        shipped_card("nope", directory=folder)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_weights_are_an_error_naming_the_file(exported, tmp_path: Path, damage: str) -> None:
    folder, card, _ = exported
    data = (folder / card["weights"]).read_bytes()
    damaged = {"truncate": data[: len(data) // 2], "flip": data[:-10] + bytes(10),
               "garbage": b"\x89PNG not weights" * 100, "empty": b""}[damage]
    path = tmp_path / card["weights"]
    path.write_bytes(damaged)
    (tmp_path / "tiny.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="SHA-256") as checked:
        load_shipped("tiny", directory=tmp_path)
    assert str(path) in str(checked.value)
    if damage == "flip":  # still well-formed: only the digest tells the values changed
        assert load_weights_file(path, model_args=card["model_args"]) is not None
        return
    with pytest.raises(ValueError, match="not a readable safetensors file") as unchecked:
        load_weights_file(path, model_args=card["model_args"])
    assert str(path) in str(unchecked.value)


def test_weights_of_another_model_do_not_fit(exported) -> None:
    folder, card, _ = exported
    with pytest.raises(ValueError, match="does not fit"):
        load_weights_file(folder / card["weights"], model_args={"name": "icolorit-t", "image_size": 32})


def test_export_refuses_weights_over_the_bound(exported, tmp_path: Path) -> None:
    folder, _, model = exported
    checkpoint = tmp_path / "checkpoint.pt"
    torch.save(colorizer_state(model), checkpoint)
    with pytest.raises(ValueError, match="exceeds"):
        export_weights(checkpoint, "big", "too big", directory=tmp_path, max_bytes=1000)
    assert not list(tmp_path.glob("*.safetensors")) and not list(tmp_path.glob("*.tmp"))


def test_the_package_ships_its_default_model_within_the_bounds() -> None:
    cards = list_shipped()
    assert DEFAULT_MODEL in [c["name"] for c in cards]
    assert sum(c["bytes"] for c in cards) <= 26 * 2**20  # four models; the 224-px ones keep an fp16 head
    for card in cards:
        assert card["bytes"] <= MAX_SHIPPED_BYTES and card["description"]
    model = load_shipped()
    assert model.build_args == shipped_card()["model_args"] and model.adaptive


def test_shipped_checkpoint_is_the_finished_training_it_came_from(exported, tmp_path: Path) -> None:
    from adacolor.model import load_colorizer
    from adacolor.weights import shipped_checkpoint

    folder, _, model = exported
    with pytest.raises(ValueError, match="records no training step"):
        shipped_checkpoint("tiny", directory=folder)
    checkpoint = folder / "checkpoint.pt"
    export_weights(checkpoint, "trained", "a test model", directory=folder, max_bytes=2 * MAX_SHIPPED_BYTES,
                   extra={"training": {"recipe": "smoke", "step": 8, "config": {"model": "adacolvit-t"}}})
    state = shipped_checkpoint("trained", directory=folder)
    assert state["step"] == state["total_steps"] == 8
    # the recorded config, completed by what the weights are (their model_args: older cards had no head)
    args = shipped_card("trained", directory=folder)["model_args"]
    assert state["config"] == {"model": "adacolvit-t", "image_size": args["image_size"], "backbone": args["backbone"],
                               "head": args["head"]}
    assert "shipped weights trained" in state["origin"]
    rebuilt = load_colorizer(state)
    for key, value in model.state_dict().items():
        assert rebuilt.state_dict()[key].dtype == value.dtype
        torch.testing.assert_close(rebuilt.state_dict()[key], value.half().float(), rtol=0, atol=0)
