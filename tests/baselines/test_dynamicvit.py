"""DynamicViT as an adaprune gate: schedule, exactness, masked == gathered, FLOPs, errors."""

from __future__ import annotations

import copy

import pytest
import torch

import adaprune
from adaprune_baselines.dynamicvit import (
    DynamicViTConfig,
    default_prune_layers,
    dynamicvit_loss,
    keep_count,
    keep_ratio_loss,
)
from tests.conftest import VARIANTS, record_and_fvcore_gflops, tiny_vit


def images(batch: int, size: int = 64) -> torch.Tensor:
    return torch.randn(batch, 4, size, size)


def small_vit(**overrides) -> torch.nn.Module:
    """64 px, patch 8: 64 patch tokens, depth 4 (stages before blocks 1, 2, 3)."""
    options = dict(img_size=64, depth=4)
    options.update(overrides)
    return tiny_vit(**options)



def _kept(vit: torch.nn.Module) -> list[list[float]]:
    """Patch tokens computed per block, per sample (attention sub-layer)."""
    return [b.token_masks[:, 0].sum(dim=1).tolist() for b in adaprune.last_record(vit).blocks]


def test_registered_and_schedule_helpers():
    assert "dynamicvit" in adaprune.list_gates()
    assert default_prune_layers(12) == (3, 6, 9)
    assert default_prune_layers(24) == (6, 12, 18)
    assert default_prune_layers(2) == (0, 1)
    assert [keep_count(196, 0.7, s) for s in (1, 2, 3)] == [137, 96, 67]
    assert keep_count(4, 0.1, 3) == 1  # never empties the sequence


@pytest.mark.parametrize("training", [False, True])
def test_keep_all_prunes_nothing(training):
    """(That keep_all equals the unwrapped model is tests/test_wrap.py's, for every method.)"""
    vit = adaprune.wrap(small_vit(), method="dynamicvit").train(training)
    with adaprune.policy(vit, "keep_all"):
        vit.forward_features(images(2))
    assert adaprune.last_record(vit).patch_keep.eq(1).all()


@pytest.mark.parametrize("keep_rate", [0.7, 0.5])
@pytest.mark.parametrize("class_token", [True, False])
def test_eval_keeps_exactly_the_schedule_and_nested_sets(keep_rate, class_token):
    vit = adaprune.wrap(small_vit(class_token=class_token), method="dynamicvit", keep_rate=keep_rate)
    vit.forward_features(images(3))
    expected = [64] + [round(keep_rate ** s * 64) for s in (1, 2, 3)]
    assert _kept(vit) == [[float(k)] * 3 for k in expected]
    masks = [b.token_masks[:, 0] for b in adaprune.last_record(vit).blocks]
    for before, after in zip(masks, masks[1:]):
        assert (after <= before).all()  # a dropped token never comes back


@pytest.mark.parametrize("variant", ["plain", "no_class_token", "qk_norm", "deit3_layerscale", "registers"])
@pytest.mark.parametrize("batch", [1, 3])
def test_masked_training_path_equals_gathered_eval_path(variant, batch):
    vit = adaprune.wrap(small_vit(**VARIANTS[variant]), method="dynamicvit", keep_rate=0.6)
    x = images(batch)
    with adaprune.policy(vit, "random"):  # the same draws in train and eval: the same decisions
        torch.manual_seed(1)
        gathered = vit.eval().forward_features(x)
        rec_eval = adaprune.last_record(vit)
        torch.manual_seed(1)
        masked = vit.train().forward_features(x)
        rec_train = adaprune.last_record(vit)
    torch.testing.assert_close(masked, gathered, atol=1e-5, rtol=0)
    for a, b in zip(rec_train.blocks, rec_eval.blocks):
        torch.testing.assert_close(a.token_masks, b.token_masks, atol=0, rtol=0)
    torch.testing.assert_close(rec_train.gflops, rec_eval.gflops)
    assert rec_eval.patch_keep.lt(1).all()


def test_learned_hard_decisions_masked_equal_gathered():
    """The learned eval decisions, replayed as a training mask, give the eval output."""
    vit = adaprune.wrap(small_vit(), method="dynamicvit")
    x = images(2)
    gathered = vit.forward_features(x)
    masks = [b.token_masks[:, 0] for b in adaprune.last_record(vit).blocks]
    from adaprune.gates.token_removal import block_forward
    from adaprune_baselines.dynamicvit import _masked_block

    h = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
    P = vit.num_prefix_tokens
    vit.train()
    for block, mask in zip(vit.blocks, masks):
        if mask.eq(1).all():
            h = block_forward(block, h)
        else:
            h = _masked_block(block, h, torch.cat([mask.new_ones(2, P), mask], dim=1))
    torch.testing.assert_close(vit.norm(h), gathered, atol=1e-5, rtol=0)


def test_dropped_tokens_keep_their_last_representation():
    vit = adaprune.wrap(small_vit(), method="dynamicvit", keep_rate=0.5)
    _, inter = vit.forward_intermediates(images(2), indices=4, output_fmt="NLC")
    masks = [b.token_masks[:, 0].bool() for b in adaprune.last_record(vit).blocks]
    for layer in range(1, 4):
        frozen = ~masks[layer]  # not computed in this block: unchanged by it
        torch.testing.assert_close(inter[layer][frozen], inter[layer - 1][frozen], atol=0, rtol=0)
        assert not torch.allclose(inter[layer][~frozen], inter[layer - 1][~frozen])


def test_gradients_reach_every_prediction_module():
    vit = adaprune.wrap(small_vit(), method="dynamicvit").train()
    out = vit.forward_features(images(4))
    (out.square().mean() + dynamicvit_loss(vit)).backward()
    names = [n for n, _ in vit.named_parameters() if "predictor" in n]
    assert {n.split(".")[1] for n in names} == {"1", "2", "3"}  # blocks with a stage only
    for name, p in vit.named_parameters():
        if "predictor" in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_task_loss_alone_reaches_the_prediction_modules():
    """The masks take part in the forward (keys and updates), not only in the ratio loss."""
    vit = adaprune.wrap(small_vit(), method="dynamicvit").train()
    vit.forward_features(images(4)).square().mean().backward()
    fc3 = vit.blocks[1].adaprune_gate.predictor.fc3.weight
    assert fc3.grad is not None and fc3.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["learned", "random", "keep_all", "drop_all"])
@pytest.mark.parametrize("class_token", [True, False])
def test_record_gflops_match_fvcore_on_the_gathered_path(mode, class_token):
    vit = adaprune.wrap(small_vit(embed_dim=64, num_heads=2, class_token=class_token), method="dynamicvit")
    x = images(1)
    with adaprune.policy(vit, mode):
        rec, counted = record_and_fvcore_gflops(vit, x, seed=2)
        recorded = float(rec.gflops[0])
    assert recorded == pytest.approx(counted, rel=0.02)
    if mode != "keep_all":
        assert recorded < adaprune.vit_gflops(vit)


def test_eval_is_batch_size_consistent():
    vit = adaprune.wrap(small_vit(reg_tokens=1, no_embed_class=True), method="dynamicvit")
    x = images(3)
    batched = vit.forward_features(x)
    masks = torch.stack([b.token_masks for b in adaprune.last_record(vit).blocks], dim=1)
    for i in range(3):
        single = vit.forward_features(x[i:i + 1])
        torch.testing.assert_close(single[0], batched[i], atol=1e-5, rtol=0)
        alone = torch.stack([b.token_masks for b in adaprune.last_record(vit).blocks], dim=1)
        torch.testing.assert_close(alone[0], masks[i], atol=0, rtol=0)


def test_drop_all_computes_only_prefix_tokens_after_the_first_stage():
    vit = adaprune.wrap(small_vit(), method="dynamicvit")
    x = images(2)
    with adaprune.policy(vit, "drop_all"):
        out = vit.forward_features(x)
    assert _kept(vit) == [[64.0, 64.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    assert torch.isfinite(out).all()


def test_ratio_loss_is_zero_on_target_and_pulls_the_keep_rate():
    masks = [torch.tensor([[1.0, 1.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0, 0.0]])]
    assert float(keep_ratio_loss(masks, [0.5, 0.25])) == 0
    assert float(keep_ratio_loss(masks, [1.0, 0.25])) == pytest.approx(0.125)
    vit = adaprune.wrap(small_vit(), method="dynamicvit", keep_rate=0.3).train()
    params = [p for n, p in vit.named_parameters() if "predictor" in n]
    opt = torch.optim.Adam(params, lr=0.05)
    x = images(4)
    kept = []
    for _ in range(15):
        vit.forward_features(x)
        loss = dynamicvit_loss(vit)
        kept.append(float(adaprune.last_record(vit).blocks[-1].token_masks.detach().mean()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert kept[-1] < kept[0]  # starts near 0.5**3 * ... toward 0.3**3


def test_loss_needs_a_dynamicvit_model():
    vit = adaprune.wrap(small_vit(), patch_groups=2)
    vit.forward_features(images(1))
    with pytest.raises(ValueError, match="dynamicvit"):
        dynamicvit_loss(vit)


@pytest.mark.parametrize("options, error", [
    (dict(keep_rate=0.0), ValueError),
    (dict(keep_rate=1.5), ValueError),
    (dict(keep_rate="0.7"), ValueError),
    (dict(temperature=0.0), ValueError),
    (dict(prune_layers=(2, 1)), ValueError),
    (dict(prune_layers=()), ValueError),
    (dict(prune_layers=(-1, 2)), ValueError),
    (dict(prune_layers=3), ValueError),
    (dict(prune_layers=(1, 4)), ValueError),  # beyond depth 4
    (dict(keep_ratio=0.7), TypeError),        # unknown option
])
def test_bad_options_raise_clear_errors(options, error):
    vit = small_vit()
    with pytest.raises(error):
        adaprune.wrap(vit, method="dynamicvit", **options)
    assert not adaprune.is_wrapped(vit) and not hasattr(vit.blocks[0], "adaprune_gate")


def test_config_accepts_lists_and_custom_layers():
    assert DynamicViTConfig(prune_layers=[0, 2]).prune_layers == (0, 2)
    vit = adaprune.wrap(small_vit(), method="dynamicvit", prune_layers=(0, 2), keep_rate=0.5)
    assert [b.adaprune_gate.stage for b in vit.blocks] == [1, None, 2, None]
    vit.forward_features(images(1))
    assert _kept(vit) == [[32.0], [32.0], [16.0], [16.0]]


def test_gradient_checkpointing_matches():
    vit = adaprune.wrap(small_vit(), method="dynamicvit").train()
    twin = copy.deepcopy(vit)
    twin.set_grad_checkpointing(True)
    x = images(2)
    torch.manual_seed(3)
    a = vit.forward_features(x)
    torch.manual_seed(3)
    b = twin.forward_features(x)
    torch.testing.assert_close(a, b)
    (a.square().mean() + dynamicvit_loss(vit)).backward()
    (b.square().mean() + dynamicvit_loss(twin)).backward()
    for (name, p), q in zip(vit.named_parameters(), twin.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-4, msg=name)
