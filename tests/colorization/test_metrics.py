"""PSNR per image: hand-computed values, independence of images, agreement with scikit-image."""

from __future__ import annotations

import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from adacolor.metrics import psnr


def test_constant_offset_gives_the_hand_computed_value() -> None:
    target = torch.rand(1, 3, 8, 8, dtype=torch.float64) * 0.8
    assert float(psnr(target + 0.1, target)[0]) == pytest.approx(20.0, abs=1e-9)   # MSE 0.01
    assert float(psnr(target + 0.01, target)[0]) == pytest.approx(40.0, abs=1e-9)  # MSE 1e-4
    assert float(psnr(target * 255 + 25.5, target * 255, max_value=255.0)[0]) == pytest.approx(20.0, abs=1e-9)


def test_identical_images_give_a_finite_100_db() -> None:
    image = torch.rand(2, 3, 4, 4)
    assert torch.equal(psnr(image, image), torch.full((2,), 100.0))
    assert torch.equal(psnr(image * 255, image * 255, max_value=255.0), torch.full((2,), 100.0))


def test_each_image_is_scored_on_its_own() -> None:
    torch.manual_seed(0)
    target = torch.rand(3, 3, 16, 16)
    pred = (target + 0.05 * torch.randn(3, 3, 16, 16)).clamp(0, 1)
    batch = psnr(pred, target)
    assert batch.shape == (3,)
    for i in range(3):
        assert torch.allclose(batch[i], psnr(pred[i:i + 1], target[i:i + 1])[0])
    pred[0] = target[0] + 0.1  # changing one image changes only its score
    changed = psnr(pred, target)
    assert torch.equal(changed[1:], batch[1:]) and float(changed[0]) == pytest.approx(20.0, abs=1e-4)


def test_agrees_with_skimage() -> None:
    generator = torch.Generator().manual_seed(1)
    target = torch.rand(4, 3, 20, 24, generator=generator, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn(4, 3, 20, 24, generator=generator, dtype=torch.float64)).clamp(0, 1)
    ours = psnr(pred, target)
    assert ours.dtype == torch.float64
    for i in range(4):
        theirs = peak_signal_noise_ratio(target[i].numpy(), pred[i].numpy(), data_range=1.0)
        assert float(ours[i]) == pytest.approx(theirs, abs=1e-9)
    half = psnr(pred.half(), target.half())
    assert half.dtype == torch.float32 and torch.allclose(half.double(), ours, atol=0.05)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="one shape"):
        psnr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError, match="one shape"):
        psnr(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="max_value"):
        psnr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), max_value=0.0)
