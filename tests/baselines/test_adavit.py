"""AdaViT baseline: registration, exactness, masked == gathered, training, FLOPs, errors."""

from __future__ import annotations

import pytest
import torch

import adaprune
from adaprune_baselines.adavit import AdaViT, head_keep, usage_loss
from tests.conftest import VARIANTS, record_and_fvcore_gflops, tiny_vit


def images(batch: int, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, 4, size, size)



def _decisive(vit: torch.nn.Module, x: torch.Tensor | None = None, skip_block: int = 1,
              scale: float = 1e4) -> None:
    """Decision networks whose logits are input-dependent but far from 0 (|logit| >> the
    Gumbel noise), so train and eval take the same hard decisions. Block ``skip_block``'s
    run decision depends on the input (given a batch ``x``: the sample with the smallest block
    logit is dropped); the others always run."""
    for i, block in enumerate(vit.blocks):
        net = block.adaprune_gate.decision
        with torch.no_grad():
            net.patch.weight.normal_().mul_(scale)
            net.patch.bias.zero_()
            net.sample.weight.normal_().mul_(scale)
            net.sample.bias.zero_()
            if i != skip_block:
                net.sample.weight[0].zero_()
                net.sample.bias[0] = scale
    if x is None or x.shape[0] < 2:
        return
    with torch.no_grad():  # block ``skip_block`` drops the sample with the smallest block logit
        net = vit.blocks[skip_block].adaprune_gate.decision
        z = vit.eval().forward_intermediates(x, indices=[skip_block - 1], output_fmt="NLC",
                                             return_prefix_tokens=True, intermediates_only=True)[0]
        z = torch.cat([z[1], z[0]], dim=1) if isinstance(z, tuple) else z  # [prefix; patches]
        logits = net.sample_logits(vit.blocks[skip_block].norm1(z))[:, 0].sort().values
        net.sample.bias[0] = -(logits[0] + logits[1]) / 2


def _heads(rec: adaprune.Record) -> torch.Tensor:
    """(B, L, H) head decisions of the blocks that ran (zero elsewhere)."""
    return torch.stack([b.state["heads"] * b.layer_keep[:, :1] for b in rec.blocks], dim=1)


def test_registered_and_wraps():
    assert "adavit" in adaprune.list_gates()
    vit = adaprune.wrap(tiny_vit(), method="adavit")
    assert isinstance(vit.blocks[0].adaprune_gate, AdaViT)
    out = vit.forward_features(images(2))
    assert out.shape == (2, 17, 32)
    rec = adaprune.last_record(vit)
    assert rec.blocks[0].token_masks.shape == (2, 2, 16)
    assert rec.blocks[0].layer_keep.shape == (2, 2)
    assert head_keep(vit).shape == (2,)


@pytest.mark.parametrize("training", [False, True])
def test_keep_all_keeps_every_head(training):
    """(That keep_all equals the unwrapped model is tests/test_wrap.py's, for every method.)"""
    vit = adaprune.wrap(tiny_vit(num_heads=4), method="adavit").train(training)
    with adaprune.policy(vit, "keep_all"):
        vit.forward_features(images(2))
        assert torch.equal(head_keep(vit), torch.ones(2))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("variant", ["plain", "no_class_token", "qk_norm", "registers", "deit3_layerscale"])
def test_masked_training_path_equals_gathered_eval_path(batch, variant):
    torch.manual_seed(3)
    vit = adaprune.wrap(tiny_vit(num_heads=4, depth=3, **VARIANTS[variant]), method="adavit")
    x = images(batch)
    _decisive(vit, x)
    out_train = vit.train().forward_features(x)
    rec_train = adaprune.last_record(vit)
    with torch.no_grad():
        out_eval = vit.eval().forward_features(x)
    rec_eval = adaprune.last_record(vit)
    for a, b in zip(rec_train.blocks, rec_eval.blocks):
        torch.testing.assert_close(a.token_masks.detach(), b.token_masks, atol=0, rtol=0)
        torch.testing.assert_close(a.layer_keep.detach(), b.layer_keep, atol=0, rtol=0)
    torch.testing.assert_close(_heads(rec_train).detach(), _heads(rec_eval), atol=0, rtol=0)
    torch.testing.assert_close(out_train.detach(), out_eval, atol=1e-4, rtol=1e-4)
    # the decisions are not trivial: some tokens and heads dropped, and in a batch they differ
    masks = torch.stack([b.token_masks[:, 0] for b in rec_eval.blocks], dim=1)  # (B, L, Np)
    ran = torch.stack([b.layer_keep[:, 0] for b in rec_eval.blocks], dim=1)
    heads = _heads(rec_eval)
    assert 0 < float(masks.mean()) < 1 and 0 < float(heads.mean()) < 1
    if batch > 1:
        counts = masks.sum(dim=-1)
        assert bool((counts != counts[:1]).any()), "kept counts should differ between samples"
        assert bool((heads != heads[:1]).any(dim=-1).any()), "head sets should differ between samples"
        assert 0 < float(ran[:, 1].sum()) < batch, "block 1 should run for some samples only"


def test_gradients_reach_the_decision_networks():
    vit = adaprune.wrap(tiny_vit(num_heads=4, depth=2), method="adavit").train()
    out = vit.forward_features(images(2))
    (out.pow(2).mean() + usage_loss(vit)).backward()
    for block in vit.blocks:
        net = block.adaprune_gate.decision
        for name, param in (("sample", net.sample.weight), ("patch", net.patch.weight)):
            assert param.grad is not None and float(param.grad.abs().sum()) > 0, name


def test_usage_loss_steps_move_usage_towards_the_targets():
    vit = adaprune.wrap(tiny_vit(num_heads=4, depth=3), method="adavit")
    params = [p for b in vit.blocks for p in b.adaprune_gate.parameters()]
    optimizer = torch.optim.Adam(params, lr=0.05)
    x = images(4)
    targets = dict(target_patch=0.3, target_head=0.4, target_block=0.6)

    def usage() -> tuple[float, float, float, float]:
        with torch.no_grad():
            vit.eval().forward_features(x)
        rec = adaprune.last_record(vit)
        return (float(usage_loss(vit, **targets)), float(rec.patch_keep.mean()), float(head_keep(vit).mean()),
                float(rec.layer_keep.mean()))

    before = usage()
    for _ in range(30):
        vit.train().forward_features(x)
        loss = usage_loss(vit, **targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = usage()
    assert after[0] < before[0] / 4
    assert abs(after[1] - 0.3) < abs(before[1] - 0.3)
    assert abs(after[2] - 0.4) < abs(before[2] - 0.4)
    assert abs(after[3] - 0.6) < abs(before[3] - 0.6)


@pytest.mark.parametrize("mode", ["learned", "learned_skip", "random", "keep_all", "drop_all"])
@pytest.mark.parametrize("class_token", [True, False])
def test_record_gflops_match_fvcore_at_batch_1(mode, class_token):
    vit = adaprune.wrap(tiny_vit(img_size=64, embed_dim=64, num_heads=4, depth=3, class_token=class_token),
                        method="adavit")
    _decisive(vit)
    for block in vit.blocks:  # head 1 always dropped, head 2 always kept
        block.adaprune_gate.decision.sample.bias.data[1:3] = torch.tensor([-1e8, 1e8])
    if mode == "learned_skip":  # block 1 skipped: only its decision network runs
        vit.blocks[1].adaprune_gate.decision.sample.weight.data[0] = 0.0
        vit.blocks[1].adaprune_gate.decision.sample.bias.data[0] = -1e8
        mode = "learned"
    x = images(1, 64)
    with adaprune.policy(vit, mode, patch_keep=0.5, layer_keep=0.7):
        rec, counted = record_and_fvcore_gflops(vit, x, seed=2)
        recorded = float(rec.gflops[0])
    assert recorded == pytest.approx(counted, rel=0.02)
    if mode == "learned":
        assert 0 < float(rec.patch_keep) < 1 and 0 < float(head_keep(vit)) < 1
        assert recorded < adaprune.vit_gflops(vit)
        if vit.blocks[1].adaprune_gate.decision.sample.bias[0] < 0:
            assert float(rec.blocks[1].layer_keep.sum()) == 0


def test_random_policy_meaning():
    vit = adaprune.wrap(tiny_vit(num_heads=4, depth=4), method="adavit")
    with adaprune.policy(vit, "random", patch_keep=0.25, layer_keep=1.0):
        vit.forward_features(images(3))
        rec = adaprune.last_record(vit)
        assert torch.allclose(rec.patch_keep, torch.full((3,), 0.25))
        assert torch.equal(head_keep(vit), torch.ones(3))
    x = images(2)
    with adaprune.policy(vit, "random", patch_keep=0.5, layer_keep=0.0):
        out = vit.forward_features(x)
        assert float(adaprune.last_record(vit).layer_keep.sum()) == 0
    with adaprune.policy(vit, "drop_all"):
        torch.testing.assert_close(vit.forward_features(x), out)  # every block skipped
        assert torch.equal(head_keep(vit), torch.zeros(2))


@pytest.mark.parametrize("training", [False, True])
def test_dropped_tokens_keep_their_representation(training):
    vit = adaprune.wrap(tiny_vit(num_heads=4), method="adavit").train(training)
    block = vit.blocks[0]
    x = torch.randn(3, 17, 32)
    torch.manual_seed(1)
    out, decision = block.adaprune_gate(block, x, adaprune.Policy("random", patch_keep=0.5, layer_keep=1.0))
    dropped = decision.token_masks[:, 0] == 0
    assert bool(dropped.any())
    torch.testing.assert_close(out[:, 1:][dropped], x[:, 1:][dropped], atol=0, rtol=0)
    assert not torch.allclose(out[:, 1:][~dropped], x[:, 1:][~dropped])


def test_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match="temperature"):
        adaprune.wrap(tiny_vit(), method="adavit", temperature=0.0)
    with pytest.raises(ValueError, match="init_keep_logit"):
        adaprune.wrap(tiny_vit(), method="adavit", init_keep_logit="high")
    with pytest.raises(TypeError, match="unknown option"):
        adaprune.wrap(tiny_vit(), method="adavit", keep_rate=0.5)
    with pytest.raises(TypeError, match="scale_norm"):
        adaprune.wrap(tiny_vit(scale_attn_norm=True), method="adavit")
    vit = adaprune.wrap(tiny_vit(), method="adavit")
    with pytest.raises(RuntimeError, match="forward"):
        usage_loss(vit)
    vit.forward_features(images(1))
    with pytest.raises(ValueError, match="target_head"):
        usage_loss(vit, target_head=1.5)
    other = adaprune.wrap(tiny_vit(), method="adacolvit")
    other.forward_features(images(1))
    with pytest.raises(TypeError, match="adavit"):
        head_keep(other)
