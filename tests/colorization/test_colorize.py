"""Colorize: strict hint points, and streaming a photo in bands equals one full-size pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from adacolor import colorize as colorize_module
from adacolor.color import lab_merge, lab_split
from adacolor.colorize import (AB_LIMIT, HINT_KEYS, HINT_SIZE_RANGE, UserHint, colorize, colorize_file,
                               hints_at_size, load_image, parse_user_hints, photo_lightness, predict,
                               render_photo, render_prediction, render_user_hints, resize_photo, save_image)
from adacolor.model import colorizer_state, create_colorizer
from adacolor.upsample import upsample_coefficients


def _tiny(name: str = "icolorit-t"):
    torch.manual_seed(0)
    return create_colorizer(name, image_size=32, patch_size=8, depth=2).eval()


# -- strict hints ------------------------------------------------------------------------------

BAD_HINTS = [
    ({"x": 1, "y": 2, "color": [200, 30, 30]}, r"unknown key\(s\) 'color'; the known keys are x, y, size, rgb, ab"),
    ({"x": "12", "y": 2}, "'x' must be a number"),
    ({"x": 1, "y": True}, "'y' must be a number"),
    ({"x": float("nan"), "y": 2}, "'x' must be a number"),
    ({"x": -3, "y": 2}, "'x' = -3 is outside the image"),
    ({"y": 2}, "'x' is missing"),
    ({"x": 1, "y": 2, "size": 1000}, "'size' must be an integer from 2 to 7"),
    ({"x": 1, "y": 2, "size": 1}, "'size' must be an integer from 2 to 7"),
    ({"x": 1, "y": 2, "size": 2.5}, "'size' must be an integer"),
    ({"x": 1, "y": 2, "size": "3"}, "'size' must be an integer"),
    ({"x": 1, "y": 2, "size": True}, "'size' must be an integer"),
    ({"x": 1, "y": 2, "ab": [500.0, 0.0]}, r"'ab' must be two numbers \(Lab a and b\), each in -110..110"),
    ({"x": 1, "y": 2, "ab": [0.0, -110.5]}, "'ab' must be two numbers"),
    ({"x": 1, "y": 2, "ab": ["10", 0]}, "'ab' must be two numbers"),
    ({"x": 1, "y": 2, "ab": [1]}, "'ab' must be two numbers"),
    ({"x": 1, "y": 2, "rgb": [300, 0, 0]}, "'rgb' must be three numbers in 0..255"),
    ({"x": 1, "y": 2, "rgb": ["255", 0, 0]}, "'rgb' must be three numbers"),
    ({"x": 1, "y": 2, "rgb": [False, 0, 0]}, "'rgb' must be three numbers"),
    ({"x": 1, "y": 2, "rgb": [255, 0, 0], "ab": [1.0, 2.0]}, "one colour, 'rgb' or 'ab', not both"),
    ([1, 2], "a hint is an object"),
]


@pytest.mark.parametrize("entry, message", BAD_HINTS)
def test_bad_hints_are_refused_and_say_what_is_accepted(entry: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        parse_user_hints([{"x": 0, "y": 0}, entry], "clicks.json")
    assert str(error.value).startswith("clicks.json hint 1: ")


def test_good_hints_at_the_edges_of_the_ranges() -> None:
    low, high = HINT_SIZE_RANGE
    assert (low, high) == (2, 7) and HINT_KEYS == ("x", "y", "size", "rgb", "ab") and AB_LIMIT == 110
    hints = parse_user_hints({"hints": [
        {"x": 0, "y": 0.5}, {"x": 3, "y": 4, "size": low, "ab": [-AB_LIMIT, AB_LIMIT]},
        {"x": 3, "y": 4, "size": high, "rgb": [0, 127.5, 255]}]})
    assert hints[0] == UserHint(0.0, 0.5, 2, None)  # the default size is iColoriT's 2x2
    assert hints[1] == UserHint(3.0, 4.0, 2, (-110.0, 110.0))
    assert hints[2].size == 7 and hints[2].ab is not None
    with pytest.raises(ValueError, match=r'expected a list of hints or \{"hints"'):
        parse_user_hints({"points": []})


def test_hints_outside_the_photo_are_refused_before_the_model_runs(tmp_path: Path) -> None:
    photo = save_image(torch.rand(3, 20, 30), tmp_path / "in.png")
    hints = tmp_path / "hints.json"
    hints.write_text(json.dumps([{"x": 30, "y": 5}]))
    with pytest.raises(ValueError, match=r"outside the 30x20 image \(x in 0..29, y in 0..19\)"):
        colorize_file(photo, tmp_path / "no-checkpoint.pt", tmp_path / "out.png", hint_file=hints)


# -- streaming in bands --------------------------------------------------------------------------

@pytest.fixture
def small_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of a few rows, so that small test photos stream through many of them."""
    monkeypatch.setattr(colorize_module, "BAND_PIXELS", 7 * 61)


def test_the_banded_resize_equals_one_interpolate(small_bands: None) -> None:
    torch.manual_seed(3)
    rgb = torch.rand(3, 83, 61)
    assert len(colorize_module._bands(83, 61)) == 12
    shrunk = colorize_module._shrink(rgb, (32, 24), lambda: None)
    whole = F.interpolate(rgb[None], size=(32, 24), mode="bilinear", antialias=True, align_corners=False)
    assert torch.allclose(shrunk, whole.clamp(0, 1), atol=1e-5)
    pred_ab = torch.rand(1, 2, 32, 24) * 2 - 1
    bilinear = upsample_coefficients(pred_ab, None, "bilinear")  # A = 0, b = ab: plain interpolation
    bands = list(colorize_module._recombine(rgb, bilinear, lambda: None))
    assert [top for top, *_ in bands] == list(range(0, 83, 7))
    colour = torch.cat([c for _, _, c, _ in bands], dim=1)
    up = F.interpolate(pred_ab, size=(83, 61), mode="bilinear", align_corners=False)
    light, _ = lab_split(rgb[None])
    assert torch.allclose(colour, lab_merge(light, up)[0], atol=1e-4)  # float32 rounding, 1/255 = 4e-3


def test_colorize_does_not_depend_on_the_bands_or_the_memory_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _tiny("adacolvit-t")
    torch.manual_seed(1)
    rgb = torch.rand(3, 45, 70)
    hints = [UserHint(10, 20, ab=(40.0, -20.0)), UserHint(3, 3, size=3)]
    one_band = colorize(model, rgb, hints)
    monkeypatch.setattr(colorize_module, "BAND_PIXELS", 5 * 70)
    banded = colorize(model, rgb, hints)
    assert torch.allclose(banded["rgb"], one_band["rgb"], atol=1e-4)
    channels_last = rgb.permute(1, 2, 0).contiguous().permute(2, 0, 1)  # as the app holds photos
    assert torch.equal(colorize(model, channels_last, hints)["rgb"], banded["rgb"])
    gray = banded["gray"]
    assert gray.shape == (3, 45, 70) and torch.equal(gray[0], gray[2])
    assert torch.allclose(gray, lab_merge(lab_split(rgb[None])[0], torch.zeros(1, 2, 45, 70))[0], atol=1e-4)
    assert banded["hint_mask"].sum() == 4 + 9 and banded["compute_map"].shape == (4, 4)


def test_colorize_file_writes_what_colorize_computes(tmp_path: Path, small_bands: None) -> None:
    model = _tiny()
    photo = save_image(torch.rand(3, 57, 61), tmp_path / "in.png")
    checkpoint = tmp_path / "model.pt"
    torch.save(colorizer_state(model), checkpoint)
    (tmp_path / "hints.json").write_text(json.dumps([{"x": 60, "y": 2, "rgb": [10, 200, 30], "size": 5}]))
    paths = colorize_file(photo, checkpoint, tmp_path / "out" / "colorized.png", hint_file=tmp_path / "hints.json",
                          figure=tmp_path / "figure.pdf")
    written = np.asarray(Image.open(paths["colorized"]))
    expected = colorize(model, load_image(photo), parse_user_hints([{"x": 60, "y": 2, "rgb": [10, 200, 30],
                                                                     "size": 5}]))
    save_image(expected["rgb"], tmp_path / "expected.png")
    assert np.array_equal(written, np.asarray(Image.open(tmp_path / "expected.png")))
    assert paths["figure"].read_bytes().startswith(b"%PDF")


# -- a prediction kept and rendered at any size ---------------------------------------------------

def _photo_pixels(height: int, width: int, seed: int) -> torch.Tensor:
    """(3, H, W) uint8: smooth colour, a little noise and a sharp lightness edge down the middle,
    held channels-last as the app holds photos."""
    generator = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    smooth = torch.stack([50 + 30 * torch.sin(xx / 9), 60 + 25 * torch.cos(yy / 7),
                          45 + 20 * torch.sin((xx + yy) / 13)])
    pixels = smooth + torch.rand(3, height, width, generator=generator) * 6
    pixels[:, :, width // 2:] += 120
    return pixels.round().to(torch.uint8).permute(1, 2, 0).contiguous().permute(2, 0, 1)


def test_hints_at_the_models_size_are_drawn_where_the_photos_are() -> None:
    hints = [UserHint(0.0, 0.0, 2), UserHint(60.99, 44.5, 7, (10.0, 20.0)), UserHint(30.5, 21.3, 3),
             UserHint(61 * 5 / 24, 45 * 7 / 32, 4)]  # on the border of two model pixels at 32x24
    for size in [(32, 24), (8, 8), (45, 61)]:
        ab = torch.rand(1, 2, *size)
        moved = hints_at_size(hints, (45, 61), size)
        assert all(torch.equal(a, b) for a, b in zip(render_user_hints(hints, (45, 61), ab),
                                                      render_user_hints(moved, size, ab)))
    with pytest.raises(ValueError, match="outside the 61x45 image"):
        hints_at_size([UserHint(61.0, 3.0)], (45, 61), (32, 32))


@pytest.mark.parametrize("name", ["icolorit-t", "adacolvit-t"])
def test_a_kept_prediction_is_the_one_colorize_makes(name: str, tmp_path: Path, small_bands: None) -> None:
    """predict on the photo at the model's size is colorize's forward; rendered on the photo's own
    lightness it is colorize's image, and render_photo writes what colorize_file writes."""
    model = _tiny(name)
    pixels = _photo_pixels(57, 83, seed=4)
    hints = [UserHint(3.0, 50.0, 3, (40.0, -20.0)), UserHint(82.9, 0.5, 2), UserHint(41.5, 28.0, 5, (-30.0, 50.0))]
    rgb = pixels.float() / 255.0
    expected = colorize(model, rgb, hints)
    small = resize_photo(pixels, model.image_size)
    assert torch.equal(resize_photo(small, model.image_size), small)  # what the model sees, exactly
    prediction = predict(model, small, (57, 83), hints)
    assert prediction["gflops"] == expected["gflops"] and torch.equal(prediction["hint_mask"], expected["hint_mask"])
    shown = render_prediction(prediction["coefficients"], photo_lightness(pixels, (57, 83)))
    assert torch.equal(shown, expected["rgb"])
    photo = save_image(rgb, tmp_path / "photo.png")
    (tmp_path / "hints.json").write_text(json.dumps([{"x": h.x, "y": h.y, "size": h.size,
                                                      **({"ab": list(h.ab)} if h.ab else {})} for h in hints]))
    written = colorize_file(photo, model, tmp_path / "out.png", hint_file=tmp_path / "hints.json")["colorized"]
    assert np.array_equal(render_photo(pixels, prediction["coefficients"]), np.asarray(Image.open(written)))
    with pytest.raises(ValueError, match="the model's size"):
        predict(model, rgb, (57, 83), hints)
    with pytest.raises(ValueError, match="outside the 83x57 image"):
        predict(model, small, (57, 83), [UserHint(83.0, 1.0)])


def test_a_preview_is_the_full_result_at_the_displayed_size(small_bands: None) -> None:
    """A photo whose colour changes where its lightness does (dark red | light blue), predicted
    perfectly at the model's size: shown at a third of its size, the colour steps at the edge
    there as it does in the photo (guided by the preview's own lightness), where bilinear
    upsampling smears it; and the preview is the full-size result shrunk."""
    pixels = torch.empty(3, 90, 120, dtype=torch.uint8)
    pixels[:, :, :61] = torch.tensor([120, 40, 30], dtype=torch.uint8).view(3, 1, 1)
    pixels[:, :, 61:] = torch.tensor([150, 200, 250], dtype=torch.uint8).view(3, 1, 1)
    l_small, ab_small = lab_split(resize_photo(pixels, (32, 32))[None])
    _, truth = lab_split(resize_photo(pixels, (30, 40))[None])
    errors = {}
    for method in ("guided", "bilinear"):
        coefficients = upsample_coefficients(ab_small, l_small, method)
        preview = render_prediction(coefficients, photo_lightness(pixels, (30, 40)))
        assert preview.shape == (3, 30, 40)
        errors[method] = (lab_split(preview[None])[1] - truth).abs().max()
        full = render_prediction(coefficients, photo_lightness(pixels, (90, 120)))
        shrunk = F.interpolate(full[None], size=(30, 40), mode="bilinear", antialias=True, align_corners=False)[0]
        assert (preview - shrunk).abs().mean() < 0.005
    assert errors["guided"] < 0.025 and errors["guided"] < errors["bilinear"] / 2, errors


@pytest.mark.parametrize("out, message", [
    ("colorized", "--out .*colorized: the file type comes from the extension; use one of .png, .jpg"),
    ("colorized.txt", "the file type comes from the extension"),
    ("folder.png/", "is a folder"),
])
def test_output_paths_are_checked_before_anything_is_read(tmp_path: Path, out: str, message: str) -> None:
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ValueError, match=message):  # the image and checkpoint do not even exist
        colorize_file(tmp_path / "missing.jpg", tmp_path / "missing.pt", tmp_path / out, random_hints=3)
    with pytest.raises(ValueError, match="--figure .*figure.gif"):
        colorize_file(tmp_path / "missing.jpg", tmp_path / "missing.pt", tmp_path / "ok.png", random_hints=3,
                      figure=tmp_path / "figure.gif")


# -- hints that take the colour of a grey photo ------------------------------------------------------

def test_random_hints_on_a_grey_photo_say_why_the_result_is_grey(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from adacolor.cli import main

    checkpoint = tmp_path / "model.pt"
    torch.save(colorizer_state(_tiny()), checkpoint)
    torch.manual_seed(4)
    grey = save_image(torch.rand(1, 50, 60).expand(3, 50, 60), tmp_path / "grey.png")
    colour = save_image(torch.rand(3, 50, 60), tmp_path / "colour.png")
    (tmp_path / "coloured.json").write_text(json.dumps([{"x": 5, "y": 5, "rgb": [200, 30, 30]}]))
    (tmp_path / "colourless.json").write_text(json.dumps([{"x": 5, "y": 5}]))

    def run(photo: Path, *hints: str) -> str:
        assert main(["colorize", str(photo), "--checkpoint", str(checkpoint), *hints,
                     "--out", str(tmp_path / "out.png")]) == 0
        said = capsys.readouterr().err
        # every colorize says which runtime runs the model (one line of its own); the rest is the hints'
        assert said.startswith("[adacolor] runtime torch"), said
        return said.split("\n", 1)[1]

    said = run(grey, "--random-hints", "5")
    assert said.count("\n") == 1 and "Traceback" not in said
    assert ("warning: the hints are grey because the photo is grey: --random-hints take the photo's own colour, "
            "and it has none; pass --hints with colours ('rgb' or 'ab' per point)") in said
    assert "hints without 'rgb' or 'ab' take the photo's own colour" in run(grey, "--hints",
                                                                           str(tmp_path / "colourless.json"))
    assert run(grey, "--hints", str(tmp_path / "coloured.json")) == ""  # coloured hints: nothing to say
    assert run(colour, "--random-hints", "5") == ""                       # a colour photo: nothing to say
    assert run(grey, "--random-hints", "0") == ""                         # no hint, no grey hint


def test_is_grey_tells_grey_from_faint_colour() -> None:
    from adacolor.colorize import GREY_CHROMA, is_grey

    ab = torch.zeros(1, 2, 20, 20)
    assert is_grey(ab)
    ab[:, :, :1, :2] = 0.5  # 2 of 400 pixels coloured: a speck, under the 1% that may be
    assert is_grey(ab)
    ab[:, 0] += 1.5 * GREY_CHROMA / 110.0  # a faint tint everywhere, above the threshold
    assert not is_grey(ab)
