"""The sparsity budget per sample, on the batch mean and on the batch's spread (adaprune.budget_loss)."""

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


def test_spread_quantiles_are_uniform_around_the_budget_and_stay_in_range() -> None:
    like = torch.zeros(())
    torch.testing.assert_close(adaprune.spread_quantiles(4, 0.5, 0.2, like), torch.tensor([0.35, 0.45, 0.55, 0.65]))
    clipped = adaprune.spread_quantiles(10, 0.8, 0.3, like)   # half-width clipped to 1 - 0.8
    assert float(clipped.mean()) == pytest.approx(0.8)
    assert float(clipped.min()) > 0.6 and float(clipped.max()) < 1.0
    torch.testing.assert_close(adaprune.spread_quantiles(3, 1.0, 0.2, like), torch.ones(3))  # an off gate: no spread


def test_spread_budget_is_zero_on_its_targets_in_any_order_and_penalises_a_flat_batch() -> None:
    patch = torch.tensor([0.65, 0.35, 0.55, 0.45])  # the targets of beta 0.5, spread 0.2, shuffled
    layer = torch.tensor([0.85, 0.75, 0.95, 0.65])  # those of beta 0.8, spread 0.2 (0.65 ... 0.95)
    assert float(adaprune.budget_loss(patch, layer, 0.5, 0.8, "spread", spread=0.2)) == pytest.approx(0.0, abs=1e-12)
    flat = adaprune.budget_loss(torch.full((4,), 0.5), torch.full((4,), 0.8), 0.5, 0.8, "spread", spread=0.2)
    # every image on the budget, none apart: the loss is the targets' variance, twice
    assert float(flat) == pytest.approx(2 * (0.15 ** 2 + 0.05 ** 2) / 2)
    assert float(adaprune.budget_loss(torch.full((4,), 0.5), torch.full((4,), 0.8), 0.5, 0.8, "batch")) == 0.0


def test_spread_budget_of_zero_width_is_the_per_sample_budget() -> None:
    patch, layer = torch.rand(6), torch.rand(6)
    torch.testing.assert_close(adaprune.budget_loss(patch, layer, 0.4, 0.7, "spread", spread=0.0),
                               adaprune.budget_loss(patch, layer, 0.4, 0.7, "sample"))


def test_spread_budget_gradient_pushes_images_apart_in_their_own_order() -> None:
    patch = torch.tensor([0.51, 0.49, 0.50], requires_grad=True)
    adaprune.budget_loss(patch, torch.full((3,), 0.8), 0.5, 0.8, "spread", spread=0.3).backward()
    # descent moves the highest ratio up, the lowest down, the middle one not at all
    assert float(patch.grad[0]) < 0 < float(patch.grad[1])
    assert float(patch.grad[2]) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="spread must be >= 0"):
        adaprune.budget_loss(patch, patch, 0.5, 0.8, "spread", spread=-0.1)


def test_spread_budget_spreads_the_images_and_the_task_chooses_which_spend_more() -> None:
    keep, pull = _train_gates("spread")
    keep_batch, _ = _train_gates("batch")
    assert float(keep[pull > 0].min()) > float(keep[pull < 0].max())  # the pulled-up images got the top ratios
    assert float(keep.mean()) == pytest.approx(0.5, abs=0.08)           # the mean is held to the budget
    # the task's pull stretches the ends a little past the target's [0.3, 0.7], far less than the batch mean lets it
    assert float(keep.max() - keep.min()) < float(keep_batch.max() - keep_batch.min())
