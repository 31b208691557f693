"""The seam ratio: colour jumps across patch borders against jumps inside patches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adacolor.color import lab_split
from adacolor.metrics import SEAM_EPS, chroma, seam_ratio


def test_a_hand_computed_example() -> None:
    # a = 0, 1 | 5, 6 across each row (patch 2), b = 0, constant down the columns:
    # across borders: 4 horizontal pairs of 4 and 4 vertical pairs of 0 -> mean 2;
    # inside: 8 horizontal pairs of 1 and 8 vertical pairs of 0 -> mean 0.5
    ab = torch.zeros(1, 2, 4, 4)
    ab[0, 0] = torch.tensor([0.0, 1.0, 5.0, 6.0])
    assert seam_ratio(ab, 2).item() == pytest.approx((2.0 + SEAM_EPS) / (0.5 + SEAM_EPS))
    # the norm of the (a, b) difference: the same steps on b as well give sqrt(2) each, ratio unchanged
    ab[0, 1] = ab[0, 0]
    assert seam_ratio(ab, 2).item() == pytest.approx(4.0, rel=1e-5)


def test_smooth_images_score_about_one_and_blocky_ones_far_more() -> None:
    torch.manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 96), indexing="ij")
    smooth = torch.stack([0.5 * torch.sin(3 * x + y), 0.4 * torch.cos(2 * y - x)])[None]
    smooth = smooth + 0.002 * torch.randn(1, 2, 64, 96)
    blocky = torch.rand(1, 2, 4, 6).repeat_interleave(16, dim=2).repeat_interleave(16, dim=3)
    blocky = blocky + 0.01 * torch.randn(1, 2, 64, 96)
    ratios = seam_ratio(torch.cat([smooth, blocky]), 16)
    assert ratios.shape == (2,)
    assert 0.9 < ratios[0] < 1.1
    assert ratios[1] > 10.0
    # each image is scored on its own: the batch does not mix them
    assert torch.allclose(seam_ratio(blocky, 16), ratios[1:])


def test_a_natural_photo_scores_about_one() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    rgb = torch.from_numpy(skimage_data.astronaut().copy()).permute(2, 0, 1).float()[None] / 255
    rgb = F.interpolate(rgb, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    _, ab = lab_split(rgb.clamp(0, 1))
    assert 0.8 < seam_ratio(ab, 16).item() < 1.25


def test_a_flat_image_scores_one_and_a_constant_patchwork_stays_finite() -> None:
    assert torch.equal(seam_ratio(torch.zeros(3, 2, 32, 32), 16), torch.ones(3))
    assert torch.equal(seam_ratio(torch.full((1, 2, 32, 32), 0.3), 8), torch.ones(1))
    patchwork = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).repeat_interleave(8, 0).repeat_interleave(8, 1)
    value = seam_ratio(torch.stack([patchwork, patchwork])[None], 8)
    assert torch.isfinite(value).all() and value.item() > 1e5


def test_units_and_dtypes() -> None:
    torch.manual_seed(1)
    ab = torch.rand(2, 2, 32, 48) * 2 - 1
    assert torch.allclose(seam_ratio(ab, 8), seam_ratio(ab * 110.0, 8), rtol=1e-4)  # unit-free
    assert seam_ratio(ab.half(), 8).dtype == torch.float32
    assert seam_ratio(ab.double(), 8).dtype == torch.float64


@pytest.mark.parametrize("shape, patch, message", [
    ((2, 32, 32), 16, r"pred_ab must be ab of shape \(B, 2, H, W\), got \(2, 32, 32\)"),
    ((1, 3, 32, 32), 16, r"\(B, 2, H, W\), got \(1, 3, 32, 32\)"),
    ((1, 2, 32, 32), 1, "patch_size must be an integer >= 2"),
    ((1, 2, 32, 32), True, "patch_size must be an integer >= 2"),
    ((1, 2, 32, 32), 16.0, "patch_size must be an integer >= 2"),
    ((1, 2, 30, 32), 16, "must be multiples of patch_size 16 with two patches or more, got 30x32"),
    ((1, 2, 16, 16), 16, "two patches or more, got 16x16"),
])
def test_bad_shapes_say_what_is_accepted(shape: tuple[int, ...], patch: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        seam_ratio(torch.zeros(shape), patch)  # type: ignore[arg-type]


def test_chroma_is_the_mean_distance_from_grey() -> None:
    ab = torch.zeros(2, 2, 4, 4)
    ab[0, 0], ab[0, 1] = 3.0, 4.0  # chroma 5 everywhere
    assert torch.allclose(chroma(ab), torch.tensor([5.0, 0.0]))
    with pytest.raises(ValueError, match=r"ab must be of shape \(B, 2, H, W\)"):
        chroma(torch.zeros(1, 3, 4, 4))
