"""sRGB <-> Lab: round trips, agreement with scikit-image, finite gradients, shapes and dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data as skdata
from skimage.color import rgb2lab

from adacolor.color import (AB_SCALE, L_CENTER, L_SCALE, denormalize_lab, lab_merge, lab_split,
                                      lab_to_rgb, normalize_lab, rgb_to_lab)


def _photo(name: str) -> torch.Tensor:
    """(1, 3, H, W) float64 in [0, 1] from scikit-image's sample data."""
    array = getattr(skdata, name)()
    return torch.from_numpy(array).permute(2, 0, 1)[None].double() / 255.0


def test_round_trip_random_images_float32() -> None:
    rgb = torch.rand(4, 3, 32, 48)
    back = lab_to_rgb(rgb_to_lab(rgb))
    assert back.dtype == torch.float32
    assert (back - rgb).abs().max() < 1e-3


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_round_trip_photos(name: str) -> None:
    rgb = _photo(name)
    back32 = lab_to_rgb(rgb_to_lab(rgb.float()))
    assert (back32 - rgb.float()).abs().max() < 1e-3
    back64 = lab_to_rgb(rgb_to_lab(rgb))
    assert back64.dtype == torch.float64
    assert (back64 - rgb).abs().max() < 1e-9


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_agrees_with_skimage_on_photos(name: str) -> None:
    rgb = _photo(name)
    ours = rgb_to_lab(rgb)[0].permute(1, 2, 0).numpy()
    theirs = rgb2lab(rgb[0].permute(1, 2, 0).numpy(), illuminant="D65")
    assert np.abs(ours - theirs).max() < 1e-2


def test_agrees_with_skimage_on_the_colour_cube() -> None:
    levels = torch.linspace(0, 1, 18, dtype=torch.float64)  # includes black and the dark linear segment
    cube = torch.stack(torch.meshgrid(levels, levels, levels, indexing="ij"), dim=0).reshape(1, 3, 18, 324)
    ours = rgb_to_lab(cube)[0].permute(1, 2, 0).numpy()
    theirs = rgb2lab(cube[0].permute(1, 2, 0).numpy(), illuminant="D65")
    assert np.abs(ours - theirs).max() < 1e-2


def test_known_colours() -> None:
    rgb = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [1.0, 0.0, 0.0]],
                       dtype=torch.float64).T.reshape(1, 3, 1, 4)
    lab = rgb_to_lab(rgb)[0, :, 0].T
    assert torch.allclose(lab[0], torch.zeros(3, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(lab[1], torch.tensor([100.0, 0.0, 0.0], dtype=torch.float64), atol=1e-2)
    assert abs(float(lab[2, 0]) - 53.39) < 0.05 and lab[2, 1:].abs().max() < 1e-2  # grey: no colour
    assert float(lab[3, 1]) > 75 and float(lab[3, 2]) > 60                         # red: a, b > 0


@pytest.mark.parametrize("value", [0.0, 1.0, 0.04045, 0.5])
def test_gradients_are_finite_at_black_white_and_the_gamma_knee(value: float) -> None:
    rgb = torch.full((1, 3, 2, 2), value, requires_grad=True)
    rgb_to_lab(rgb).sum().backward()
    assert torch.isfinite(rgb.grad).all()
    lab = torch.tensor([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [50.0, 120.0, -120.0]]).T.reshape(1, 3, 1, 3)
    lab.requires_grad_(True)
    for clamp in (True, False):
        lab.grad = None
        lab_to_rgb(lab, clamp=clamp).sum().backward()
        assert torch.isfinite(lab.grad).all()


def test_gradients_through_split_and_merge_are_finite() -> None:
    rgb = torch.rand(2, 3, 8, 8)
    rgb[0, :, :2] = 0.0
    rgb[1, :, :2] = 1.0
    rgb.requires_grad_(True)
    l_norm, ab_norm = lab_split(rgb)
    lab_merge(l_norm, ab_norm * 0.9).square().sum().backward()
    assert torch.isfinite(rgb.grad).all() and rgb.grad.abs().sum() > 0


def test_clamp_flag() -> None:
    out_of_gamut = torch.tensor([50.0, 120.0, -120.0]).view(1, 3, 1, 1)
    raw = lab_to_rgb(out_of_gamut, clamp=False)
    assert raw.min() < 0 or raw.max() > 1
    clamped = lab_to_rgb(out_of_gamut)
    assert clamped.min() >= 0 and clamped.max() <= 1


def test_normalisation_and_split_merge_round_trip() -> None:
    rgb = torch.rand(3, 3, 16, 20, dtype=torch.float64)
    l_norm, ab_norm = lab_split(rgb)
    assert l_norm.shape == (3, 1, 16, 20) and ab_norm.shape == (3, 2, 16, 20)
    assert l_norm.dtype == ab_norm.dtype == torch.float64
    lab = rgb_to_lab(rgb)
    assert torch.allclose(l_norm, (lab[:, :1] - L_CENTER) / L_SCALE)
    assert torch.allclose(ab_norm, lab[:, 1:] / AB_SCALE)
    assert -0.5 - 1e-9 <= float(l_norm.min()) and float(l_norm.max()) <= 0.5 + 1e-9
    assert float(ab_norm.abs().max()) <= 1.0
    assert torch.allclose(denormalize_lab(*normalize_lab(lab)), lab)
    merged = lab_merge(l_norm, ab_norm)
    assert merged.dtype == torch.float64 and (merged - rgb).abs().max() < 1e-9


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_is_kept(dtype: torch.dtype) -> None:
    rgb = torch.rand(1, 3, 4, 4).to(dtype)
    lab = rgb_to_lab(rgb)
    assert lab.dtype == dtype and lab_to_rgb(lab).dtype == dtype
    assert (lab_to_rgb(lab).float() - rgb.float()).abs().max() < 2e-2


@pytest.mark.parametrize("bad", [(3, 8, 8), (1, 4, 8, 8), (1, 1, 8, 8), (1, 3, 8, 8, 1)])
def test_bad_rgb_shapes_raise(bad: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*got shape"):
        rgb_to_lab(torch.zeros(bad))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        lab_to_rgb(torch.zeros(bad))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        normalize_lab(torch.zeros(bad))


def test_bad_split_merge_arguments_raise() -> None:
    with pytest.raises(ValueError, match="share B, H and W"):
        lab_merge(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="share B, H and W"):
        denormalize_lab(torch.zeros(2, 1, 8, 8), torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match=r"l_norm.*\(B, 1, H, W\)"):
        lab_merge(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match=r"ab_norm.*\(B, 2, H, W\)"):
        lab_merge(torch.zeros(1, 1, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="floating-point"):
        rgb_to_lab(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(1, 9), width=st.integers(1, 9), seed=st.integers(0, 2 ** 31))
def test_round_trip_on_random_shapes(batch: int, height: int, width: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.rand(batch, 3, height, width, generator=generator, dtype=torch.float64)
    lab = rgb_to_lab(rgb)
    assert lab.shape == rgb.shape
    assert float(lab[:, 0].min()) >= -1e-9 and float(lab[:, 0].max()) <= 100 + 1e-6
    assert float(lab[:, 1:].abs().max()) <= 110
    assert (lab_to_rgb(lab) - rgb).abs().max() < 1e-9
    l_norm, ab_norm = lab_split(rgb)
    assert (lab_merge(l_norm, ab_norm) - rgb).abs().max() < 1e-9
