"""Edge-aware upsampling: colour stays on its side of a lightness edge, shapes, streaming in bands."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adacolor.colorize import UserHint, colorize
from adacolor.model import create_colorizer
from adacolor.upsample import (apply_coefficients, box_filter, guided_coefficients, resize_rows, upsample_ab,
                               upsample_coefficients)

LEFT, RIGHT = (0.5, 0.2), (-0.3, 0.4)  # normalised ab of the two sides


def _two_sides(inside: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 1, H, W) lightness and (1, 2, H, W) ab of a scene with one sharp edge: ``inside``
    (H, W) bool is darker and has the LEFT colour, the rest is lighter and has the RIGHT one."""
    light = torch.where(inside, -0.2, 0.2)[None, None]
    ab = torch.stack([torch.where(inside, LEFT[i], RIGHT[i]) for i in range(2)])[None]
    return light, ab


def _reduced(ab: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(ab, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@pytest.mark.parametrize("scene", ["vertical", "disk"])
def test_colour_stays_on_its_side_of_a_lightness_edge(scene: str) -> None:
    size = 192
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    inside = cols < 93 if scene == "vertical" else (rows - 90.5) ** 2 + (cols - 101.5) ** 2 < 50.0 ** 2
    light, ab = _two_sides(inside)
    small = _reduced(ab, size // 4)  # the model's size: 4x fewer pixels per side
    error = {method: (upsample_ab(small, light, method) - ab).norm(dim=1)[0]
             for method in ("guided", "bilinear")}
    # pixels within 6 px of the edge, where bilinear spreads each colour over the other side
    mask = inside[None, None].float()
    near = (F.max_pool2d(mask, 13, 1, 6) + F.max_pool2d(-mask, 13, 1, 6))[0, 0] > 0  # dilated minus eroded
    assert near.sum() > 6 * size  # the band around the edge
    bleed = {method: float(e[near].mean()) for method, e in error.items()}
    assert bleed["bilinear"] > 0.1  # bilinear really bleeds here: the test can tell them apart
    assert bleed["guided"] < 0.25 * bleed["bilinear"]
    # one pixel beside the edge, each side keeps its own colour
    worst = {method: float(e[near].max()) for method, e in error.items()}
    assert worst["guided"] < 0.15 < 0.3 < worst["bilinear"]
    # away from the edge both give the true colour
    far = ~near
    assert float(error["guided"][far].max()) < 0.02 and float(error["bilinear"][far].max()) < 0.02


def test_guided_is_bilinear_where_the_lightness_is_flat_and_keeps_the_low_resolution_values() -> None:
    torch.manual_seed(0)
    small = torch.rand(2, 2, 12, 10) * 2 - 1
    flat = torch.full((2, 1, 37, 29), 0.1)
    assert torch.allclose(upsample_ab(small, flat, "guided"), upsample_ab(small, flat, "bilinear"), atol=1e-6)
    # at the model's own size the coefficients give back exactly what the model predicted
    guide = torch.rand(2, 1, 12, 10) - 0.5
    assert torch.allclose(upsample_ab(small, guide, "guided"), small, atol=1e-5)
    a, b = guided_coefficients(guide, small)
    assert torch.allclose(a * guide + b, small, atol=1e-5)
    assert a.abs().max() > 0.01  # random colour still leans on random lightness somewhere


def test_shapes_and_dtypes() -> None:
    torch.manual_seed(1)
    small, guide = torch.rand(3, 2, 14, 9), torch.rand(3, 1, 50, 41)
    for method in ("guided", "bilinear"):
        coefficients = upsample_coefficients(small, torch.rand(3, 1, 14, 9), method)
        assert coefficients.shape == (3, 4, 14, 9) and coefficients.dtype == torch.float32
        up = upsample_ab(small, guide, method)
        assert up.shape == (3, 2, 50, 41) and up.dtype == torch.float32 and up.abs().max() <= 1.0
    assert box_filter(guide, 2).shape == guide.shape and torch.equal(box_filter(guide, 0), guide)
    assert torch.allclose(box_filter(torch.ones(1, 1, 5, 5), 3), torch.ones(1, 1, 5, 5))  # border: mean inside


def test_bad_inputs_say_what_is_accepted() -> None:
    small, guide = torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="unknown upsampling 'nearest'; use one of guided, bilinear"):
        upsample_coefficients(small, guide, "nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="guided upsampling needs the guide"):
        upsample_coefficients(small, None, "guided")
    with pytest.raises(ValueError, match=r"must share B, h, w"):
        guided_coefficients(torch.rand(1, 1, 8, 9), small)
    with pytest.raises(ValueError, match=r"guide must be a floating tensor \(B, 1, H, W\), got \(1, 3, 8, 8\)"):
        upsample_ab(small, torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="eps must be > 0"):
        guided_coefficients(guide, small, eps=0.0)
    with pytest.raises(ValueError, match="radius must be >= 0"):
        box_filter(guide, -1)


@pytest.mark.parametrize("method", ["guided", "bilinear"])
def test_applying_the_coefficients_band_by_band_equals_the_whole_image(method: str) -> None:
    torch.manual_seed(2)
    small, guide = torch.rand(1, 2, 16, 12) * 2 - 1, torch.rand(1, 1, 83, 61) - 0.5
    guide_low = F.interpolate(guide, size=(16, 12), mode="bilinear", antialias=True, align_corners=False)
    whole = upsample_ab(small, guide, method, guide_low=guide_low)
    coefficients = upsample_coefficients(small, guide_low, method)
    wide = F.interpolate(coefficients, size=(16, 61), mode="bilinear", align_corners=False)
    bands = [apply_coefficients(resize_rows(wide, 83, top, min(top + 7, 83)), guide[:, :, top:top + 7])
             for top in range(0, 83, 7)]
    assert torch.allclose(torch.cat(bands, dim=2), whole, atol=1e-5)
    assert torch.allclose(resize_rows(wide, 83), F.interpolate(coefficients, size=(83, 61), mode="bilinear",
                                                               align_corners=False), atol=1e-5)


def test_colorize_takes_the_method_and_refuses_an_unknown_one() -> None:
    torch.manual_seed(0)
    model = create_colorizer("icolorit-t", image_size=32, patch_size=8, depth=2).eval()
    torch.manual_seed(3)
    rgb = torch.rand(3, 70, 90)
    hints = [UserHint(10, 20, ab=(40.0, -20.0))]
    guided, bilinear = colorize(model, rgb, hints), colorize(model, rgb, hints, upsample="bilinear")
    assert guided["rgb"].shape == bilinear["rgb"].shape == (3, 70, 90)
    assert not torch.allclose(guided["rgb"], bilinear["rgb"], atol=1e-3)  # the default is guided
    assert torch.equal(guided["rgb"], colorize(model, rgb, hints, upsample="guided")["rgb"])
    with pytest.raises(ValueError, match="unknown upsampling 'bicubic'"):
        colorize(model, rgb, hints, upsample="bicubic")  # type: ignore[arg-type]
