"""Evaluation on fixed hint sets, colorize at any size, the bench table and the ``adacolor`` CLI."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from adacolor.bench import run_bench
from adacolor.cli import main
from adacolor.colorize import (UserHint, colorize, colorize_file, load_image, load_user_hints,
                                         render_user_hints, save_image)
from adacolor.data import shared_data_root
from adacolor.evaluate import IMAGE_NETWORK_PATCH, run_evaluation, seam_patch_size
from adacolor.model import colorizer_state, create_colorizer


def _tiny(name: str = "icolorit-t"):
    torch.manual_seed(0)
    return create_colorizer(name, image_size=32, patch_size=8, depth=2).eval()


def _require_shared() -> Path:
    root = shared_data_root()
    if root is None or not (root / "imagenette" / "val").is_dir():
        if os.environ.get("ADAPRUNE_REQUIRE_DATA") == "1":
            pytest.fail("ADAPRUNE_REQUIRE_DATA=1 but ../shared/data/imagenette/val is missing")
        pytest.skip("../shared/data is not beside the project (set ADAPRUNE_DATA to its path)")
    return root


def test_evaluate_on_shared_images_with_saved_hint_sets(tmp_path: Path) -> None:
    _require_shared()
    dense, adaptive = _tiny("icolorit-t"), _tiny("adacolvit-t")
    first = run_evaluation(dense, "shared:imagenette/val", tmp_path / "dense", ks=(1, 10), num_images=6,
                           lpips="none", batch_size=4)
    assert first["images"] == 6
    assert 5.0 < first["psnr@1"] < 60.0 and 5.0 < first["psnr@10"] < 60.0
    saved = json.loads((tmp_path / "dense" / "metrics.json").read_text())
    assert saved["psnr@10"] == pytest.approx(first["psnr@10"])
    assert "PSNR@10" in (tmp_path / "dense" / "metrics.md").read_text()
    # a second model, the same hint file: identical hints, and its own GFLOPs from its decisions
    hint_file = tmp_path / "dense" / "hints.json"
    before = hint_file.read_bytes()
    other = run_evaluation(adaptive, "shared:imagenette/val", tmp_path / "ada", ks=(1, 10), num_images=6,
                           hint_file=hint_file, lpips="none", batch_size=3)
    assert hint_file.read_bytes() == before
    assert other["gflops"] > 0 and other["gflops"] != pytest.approx(first["gflops"])
    again = run_evaluation(dense, "shared:imagenette/val", tmp_path / "dense", ks=(1, 10), num_images=6,
                           lpips="none", batch_size=5)  # another batching, the same hints and scores
    assert again["psnr@1"] == pytest.approx(first["psnr@1"], abs=1e-4)
    with pytest.raises(ValueError, match="hint sets"):
        run_evaluation(dense, "shared:imagenette/val", tmp_path / "dense", ks=(1, 10), num_images=5, lpips="none")


def test_unreadable_images_are_skipped_counted_and_never_replaced(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(5)
    good, broken = tmp_path / "good", tmp_path / "broken"
    for folder in (good, broken):
        folder.mkdir()
    for name in ("a", "b", "c"):
        image = torch.rand(3, 40, 48)
        save_image(image, good / f"{name}.png")
        save_image(image, broken / f"{name}.png")
    whole = (good / "a.png").read_bytes()
    (broken / "d-truncated.png").write_bytes(whole[: len(whole) // 3])  # the last position: hints 0..2 agree
    (broken / "e-text.jpg").write_text("not an image")
    model = _tiny()
    clean = run_evaluation(model, str(good), tmp_path / "clean", ks=(1, 10), lpips="none", batch_size=2)
    assert clean["images"] == 3 and clean["skipped"] == 0 and "note" not in clean
    assert main(["evaluate", "--checkpoint", str(_checkpoint(model, tmp_path)), "--data", str(broken),
                 "--out", str(tmp_path / "skipping"), "--lpips", "none", "--batch-size", "2"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "%|" not in captured.err  # no progress bar off a terminal
    assert "2 of 5 images could not be read and were skipped (not replaced)" in captured.err
    saved = json.loads((tmp_path / "skipping" / "metrics.json").read_text())
    assert saved["images"] == 3 and saved["skipped"] == 2
    assert [entry.split(": ")[0] for entry in saved["skipped_files"]] == [str(broken / "d-truncated.png"),
                                                                           str(broken / "e-text.jpg")]
    for k in (1, 10):  # the three readable images, each scored once with its own hints
        assert saved[f"psnr@{k}"] == pytest.approx(clean[f"psnr@{k}"], abs=1e-6)
    assert "skipped" in (tmp_path / "skipping" / "metrics.md").read_text()
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    for name in ("x.png", "y.jpg"):
        (unreadable / name).write_text("not an image")
    with pytest.raises(ValueError, match="none of the 2 images of the evaluation set can be read; first: .*x.png"):
        run_evaluation(model, str(unreadable), tmp_path / "none", ks=(1,), lpips="none")


def test_seam_ratio_and_the_chroma_at_zero_hints_are_reported(tmp_path: Path) -> None:
    torch.manual_seed(6)
    colour, grey = tmp_path / "colour", tmp_path / "grey"
    for folder in (colour, grey):
        folder.mkdir()
    for name in ("a", "b", "c"):
        save_image(torch.rand(3, 40, 48), colour / f"{name}.png")
        save_image(torch.rand(1, 40, 48).expand(3, 40, 48), grey / f"{name}.png")
    model = _tiny()
    result = run_evaluation(model, str(colour), tmp_path / "colour-eval", ks=(1, 10), lpips="none", batch_size=2)
    for key in ("seam@1", "seam@10", "chroma@0", "chroma_photos"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["chroma_photos"] > 10.0  # random pixels are colourful
    table = (tmp_path / "colour-eval" / "metrics.md").read_text()
    assert "| Seam@1 | Seam@10 |" in table and "| chroma@0 | chroma photos |" in table
    saved = json.loads((tmp_path / "colour-eval" / "metrics.json").read_text())
    assert saved["seam@10"] == pytest.approx(result["seam@10"])
    on_grey = run_evaluation(model, str(grey), tmp_path / "grey-eval", ks=(1,), lpips="none")
    assert on_grey["chroma_photos"] < 0.01  # R = G = B: no chroma at all
    assert on_grey["chroma@0"] > 1.0  # the model's own colour, measured apart from the photos'
    assert seam_patch_size(model) == 8 and seam_patch_size(torch.nn.Identity()) == IMAGE_NETWORK_PATCH == 16


def _checkpoint(model, folder: Path) -> Path:
    path = folder / "model.pt"
    torch.save(colorizer_state(model), path)
    return path


def test_lpips_is_reported_when_asked(tmp_path: Path, lpips_weights: dict[str, Path]) -> None:
    _require_shared()
    result = run_evaluation(_tiny(), "shared:imagenette/val", tmp_path, ks=(2,), num_images=2, lpips="alex")
    assert 0.0 < result["lpips@2"] < 1.5


def test_colorize_keeps_the_input_size_and_full_resolution_lightness(tmp_path: Path) -> None:
    model = _tiny("adacolvit-t")
    torch.manual_seed(1)
    rgb = torch.rand(3, 37, 50)
    result = colorize(model, rgb, [UserHint(10, 20, ab=(40.0, -20.0)), UserHint(3, 3)])
    assert result["rgb"].shape == (3, 37, 50)
    assert result["compute_map"].shape == (4, 4) and result["gflops"] > 0
    from adacolor.color import rgb_to_lab

    light_in, light_out = rgb_to_lab(rgb[None])[:, 0], rgb_to_lab(result["rgb"][None])[:, 0]
    inside = (result["rgb"] > 0.02).all(0) & (result["rgb"] < 0.98).all(0)  # not clipped by the gamut
    assert (light_in - light_out)[0][inside].abs().max() < 0.5
    assert result["hint_mask"].sum() == 8  # two 2x2 squares


def test_user_hints_file_formats_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "hints.json"
    path.write_text(json.dumps({"hints": [{"x": 1, "y": 2, "rgb": [255, 0, 0]}, {"x": 5, "y": 6, "ab": [1, 2],
                                                                                  "size": 3}]}))
    hints = load_user_hints(path)
    assert hints[0].ab[0] > 60  # red: a strongly positive
    assert hints[1] == UserHint(5.0, 6.0, 3, (1.0, 2.0))
    path.write_text(json.dumps([{"x": 1}]))
    with pytest.raises(ValueError, match="'x' and 'y'"):
        load_user_hints(path)
    with pytest.raises(ValueError, match="outside"):
        render_user_hints([UserHint(40, 1)], (32, 32), torch.zeros(1, 2, 8, 8))


def test_colorize_file_writes_the_image_and_figure(tmp_path: Path) -> None:
    model = _tiny()
    photo = save_image(torch.rand(3, 45, 61), tmp_path / "in.png")
    checkpoint = tmp_path / "model.pt"
    torch.save(colorizer_state(model), checkpoint)
    paths = colorize_file(photo, checkpoint, tmp_path / "out.png", random_hints=5, figure=tmp_path / "fig.png")
    assert load_image(paths["colorized"]).shape == (3, 45, 61)
    assert paths["figure"].stat().st_size > 1000
    with pytest.raises(ValueError, match="exactly one"):
        colorize_file(photo, model, tmp_path / "x.png")


def test_bench_writes_latency_and_gflops_per_model(tmp_path: Path) -> None:
    results = run_bench(["icolorit-t-d6", "adacolvit-t"], out_dir=tmp_path, image_size=32, warmup=1, runs=2,
                        policy="random")
    saved = json.loads((tmp_path / "bench.json").read_text())["models"]
    assert set(saved) == {"icolorit-t-d6", "adacolvit-t"}
    for row in saved.values():
        assert row["gflops"] > 0 and row["latency_ms"] > 0
    assert results["adacolvit-t"]["policy"] == "random"


def test_cli_lists_and_reports_bad_input_clearly(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["list"]) == 0
    assert "adacolvit-t" in capsys.readouterr().out
    assert main(["train", "--recipe", "no-such-recipe", "--out", str(tmp_path)]) == 2
    assert "shipped:" in capsys.readouterr().err
    assert main(["train", "--recipe", "smoke", "--set", "epochs=zero", "--out", str(tmp_path)]) == 2
    assert "epochs: expected int" in capsys.readouterr().err
