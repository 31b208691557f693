"""The sparsity budget per sample and on the batch mean (adaprune.budget_loss)."""

from __future__ import annotations

import pytest
import torch

import adaprune
from tests.conftest import tiny_vit


def test_per_sample_and_batch_mean_budgets_on_hand_made_ratios() -> None:
    patch = torch.tensor([0.2, 0.8])  # mean 0.5: on budget
    layer = torch.tensor([0.6, 1.0])  # mean 0.8: on budget
    batch = adaprune.budget_loss(patch, layer, 0.5, 0.8, reduction="batch")
    sample = adaprune.budget_loss(patch, layer, 0.5, 0.8, reduction="sample")
    assert float(batch) == pytest.approx(0.0, abs=1e-12)
    assert float(sample) == pytest.approx((0.09 + 0.04 + 0.09 + 0.04) / 2)
    assert float(adaprune.budget_loss(patch, layer, 0.5, 0.8)) == float(sample)  # default: eq. 13 per sample


def test_batch_mean_gradient_is_the_same_for_every_sample() -> None:
    patch = torch.tensor([0.2, 0.9, 0.7], requires_grad=True)
    layer = torch.tensor([0.5, 1.0, 0.9], requires_grad=True)
    adaprune.budget_loss(patch, layer, 0.5, 0.8, reduction="batch").backward()
    # d/dp_b (mean p - beta)^2 = 2 (mean p - beta) / B, identical across b
    torch.testing.assert_close(patch.grad, torch.full((3,), 2 * (0.6 - 0.5) / 3))
    torch.testing.assert_close(layer.grad, torch.full((3,), 2 * (0.8 - 0.8) / 3))
    patch.grad = None
    adaprune.budget_loss(patch, layer.detach(), 0.5, 0.8, reduction="sample").backward()
    torch.testing.assert_close(patch.grad, 2 * (patch.detach() - 0.5) / 3)


def test_unknown_reduction_is_refused() -> None:
    with pytest.raises(ValueError, match="reduction must be one of sample, batch"):
        adaprune.budget_loss(torch.ones(1), torch.ones(1), 0.5, 0.8, reduction="mean")


def _train_gates(reduction: str, steps: int = 80) -> tuple[torch.Tensor, torch.Tensor]:
    """Trains only the gates of a tiny wrapped ViT on the budget alone plus a per-image pull:
    images 0..3 are rewarded for keeping tokens, 4..7 for dropping them. Returns the final
    per-sample (patch_keep, layer_keep) under training-mode decisions."""
    torch.manual_seed(0)
    vit = adaprune.wrap(tiny_vit(), patch_groups=2, layer_skip=False).train()
    gates = [p for n, p in vit.named_parameters() if "adaprune" in n]
    opt = torch.optim.Adam(gates, lr=0.05)
    x = torch.randn(8, 4, 32, 32)
    x[:4] += 3.0  # two kinds of image the gates can tell apart
    pull = torch.tensor([1.0] * 4 + [-1.0] * 4)
    for _ in range(steps):
        vit.forward_features(x)
        record = adaprune.last_record(vit)
        task = -(pull * record.patch_keep).mean() * 0.2  # stands in for an image-dependent task loss
        loss = task + adaprune.sparsity_loss(vit, beta_patch=0.5, beta_layer=0.8, reduction=reduction)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        vit.forward_features(x)
        record = adaprune.last_record(vit)
    return record.patch_keep, pull


def test_batch_mean_budget_lets_samples_differ_while_the_mean_meets_it() -> None:
    keep_batch, pull = _train_gates("batch")
    keep_sample, _ = _train_gates("sample")
    gap_batch = float(keep_batch[pull > 0].mean() - keep_batch[pull < 0].mean())
    gap_sample = float(keep_sample[pull > 0].mean() - keep_sample[pull < 0].mean())
    assert gap_batch > 0.3                       # the images' ratios came apart
    assert gap_batch > gap_sample + 0.15         # far more than the per-sample budget allows
    assert float(keep_batch.mean()) == pytest.approx(0.5, abs=0.08)  # the mean is held to the budget
