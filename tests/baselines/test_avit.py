"""A-ViT as an adaprune method: halting semantics, both paths, losses, FLOPs, errors."""

from __future__ import annotations


import pytest
import torch

import adaprune
from adaprune_baselines import avit
from adaprune_baselines.avit import AViTConfig, HaltingState, depth_prior, halting_step
from tests.conftest import record_and_fvcore_gflops, tiny_vit


def images(batch: int, size: int = 64) -> torch.Tensor:
    return torch.randn(batch, 4, size, size)


def small_vit(**overrides) -> torch.nn.Module:
    options = dict(img_size=64, embed_dim=64, num_heads=2, depth=4)
    options.update(overrides)
    return tiny_vit(**options)


def counts(vit: torch.nn.Module) -> torch.Tensor:
    """(B, L) patch tokens each block computed in the last forward."""
    return torch.stack([b.token_masks[:, 0].sum(dim=1) for b in adaprune.last_record(vit).blocks], dim=1)



def test_registered():
    assert "avit" in adaprune.list_gates()
    assert adaprune.get_gate("avit") is avit.AViT


@pytest.mark.parametrize("training", [False, True])
def test_keep_all_halts_nothing_before_the_last_block(training):
    """(That keep_all equals the unwrapped model is tests/test_wrap.py's, for every method.)"""
    vit = adaprune.wrap(tiny_vit(depth=3), method="avit", beta=5.0).train(training)  # would halt nearly all
    with adaprune.policy(vit, "keep_all"):
        vit.forward_features(images(2, 32))
    assert counts(vit).eq(16).all()


def test_halting_is_monotone_and_every_token_halts_by_the_last_block():
    vit = adaprune.wrap(small_vit(depth=5), method="avit", beta=0.0)
    vit.forward_features(images(3))
    rec = adaprune.last_record(vit)
    masks = torch.stack([b.token_masks[:, 0] for b in rec.blocks], dim=1)  # (B, L, Np)
    assert (masks[:, 1:] <= masks[:, :-1]).all()  # a halted token stays halted
    assert masks[:, 0].eq(1).all() and masks[:, -1].lt(1).any()
    last = rec.blocks[-1].state
    assert not last.active.any()
    torch.testing.assert_close(last.depth, masks.sum(dim=1))
    assert ((last.ponder >= last.depth) & (last.ponder <= last.depth + 1)).all()


def test_halted_tokens_keep_their_representation():
    vit = adaprune.wrap(small_vit(depth=4), method="avit", beta=0.0, output="last")
    x = images(2)
    final, inter = vit.forward_intermediates(x, output_fmt="NLC")
    states = [b.state for b in adaprune.last_record(vit).blocks]
    for i in range(1, len(states)):
        halted = ~states[i - 1].active  # halted before block i: untouched by it
        assert halted.any()
        torch.testing.assert_close(inter[i][halted], inter[i - 1][halted], atol=0, rtol=0)


@pytest.mark.parametrize("overrides", [{}, dict(class_token=False), dict(reg_tokens=2, no_embed_class=True)])
@pytest.mark.parametrize("output", ["weighted", "last"])
def test_masked_training_path_equals_gathered_eval_path(overrides, output):
    vit = adaprune.wrap(small_vit(**overrides), method="avit", beta=-0.5, output=output)
    x = images(4)
    gathered = vit.eval().forward_features(x)
    rec_eval = adaprune.last_record(vit)
    masked = vit.train().forward_features(x)  # no dropout / drop_path: the same decisions
    rec_train = adaprune.last_record(vit)
    torch.testing.assert_close(masked, gathered, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(counts(vit), torch.stack(
        [b.token_masks[:, 0].sum(dim=1) for b in rec_eval.blocks], dim=1))
    torch.testing.assert_close(rec_train.gflops, rec_eval.gflops)
    torch.testing.assert_close(rec_train.blocks[-1].state.ponder, rec_eval.blocks[-1].state.ponder)
    per_block = counts(vit)
    assert (per_block[:, 1:] != per_block[:1, 1:]).any()  # samples differ in their counts
    assert (per_block < 64).any()


@pytest.mark.parametrize("overrides", [{}, dict(class_token=False)])
def test_a_batch_equals_each_sample_alone(overrides):
    vit = adaprune.wrap(small_vit(**overrides), method="avit", beta=-0.5).eval()
    x = images(3)
    batched = vit.forward_features(x)
    gflops = adaprune.last_record(vit).gflops
    for i in range(3):
        alone = vit.forward_features(x[i:i + 1])
        torch.testing.assert_close(alone, batched[i:i + 1], atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(adaprune.last_record(vit).gflops, gflops[i:i + 1])


@pytest.mark.parametrize("overrides", [{}, dict(class_token=False)])
@pytest.mark.parametrize("mode", ["learned", "keep_all", "drop_all", "random"])
def test_record_gflops_match_fvcore_on_the_gathered_path(overrides, mode):
    vit = adaprune.wrap(small_vit(depth=3, **overrides), method="avit", beta=0.0).eval()
    x = images(1)
    with adaprune.policy(vit, mode, patch_keep=0.5):
        rec, counted = record_and_fvcore_gflops(vit, x, seed=3)
        recorded = float(rec.gflops[0])
    assert recorded == pytest.approx(counted, rel=0.02)
    if mode == "learned":
        assert 0 < float(adaprune.last_record(vit).patch_keep[0]) < 1
        assert recorded < adaprune.vit_gflops(vit)


def test_controls_drop_all_and_random():
    vit = adaprune.wrap(small_vit(depth=4), method="avit").eval()
    x = images(2)
    with adaprune.policy(vit, "drop_all"):
        vit.forward_features(x)
    assert counts(vit).tolist() == [[64, 0, 0, 0]] * 2
    with adaprune.policy(vit, "random", patch_keep=0.5):
        vit.forward_features(x)
    assert counts(vit).tolist() == [[64, 32, 16, 8]] * 2  # half of the running ones each block
    with adaprune.policy(vit, "keep_all"):
        vit.forward_features(x)
    dense = adaprune.last_record(vit).gflops
    with adaprune.policy(vit, "drop_all"):
        vit.forward_features(x)
    assert (adaprune.last_record(vit).gflops < dense).all()


def test_gradients_reach_the_halting_channel_through_the_ponder_loss():
    vit = adaprune.wrap(small_vit(depth=3), method="avit", beta=-1.0).train()
    vit.forward_features(images(2))
    avit.ponder_loss(vit).backward()
    # block 1's output feeds the loss only through its halting channel (block 2 halts everything)
    grad = vit.blocks[1].mlp.fc2.bias.grad
    assert grad[0].abs() > 0
    assert grad[1:].abs().max() == 0
    assert vit.blocks[0].mlp.fc2.weight.grad.abs().sum() > 0


def test_ponder_loss_steps_reduce_mean_depth():
    vit = adaprune.wrap(small_vit(depth=4), method="avit", beta=-2.0).train()
    x = images(2)
    vit.forward_features(x)
    before = float(avit.mean_depth(vit).mean())
    optimizer = torch.optim.SGD(vit.parameters(), lr=0.5)
    for _ in range(5):
        optimizer.zero_grad()
        vit.forward_features(x)
        avit.ponder_loss(vit, weight=1.0).backward()
        optimizer.step()
    vit.forward_features(x)
    assert float(avit.mean_depth(vit).mean()) < before - 0.1


def test_distribution_prior_loss():
    target = depth_prior(12, 8)
    assert int(target.argmax()) == 8
    assert float(target[:8].sum()) == pytest.approx(0.98, abs=1e-6)
    vit = adaprune.wrap(small_vit(depth=4), method="avit", beta=-1.0).train()
    vit.forward_features(images(2))
    loss = avit.distribution_prior_loss(vit)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert vit.blocks[0].mlp.fc2.bias.grad[0].abs() > 0
    assert float(avit.distribution_prior_loss(vit, weight=0.0).detach()) == 0.0


def test_halting_step_maths():
    state = HaltingState(active=torch.tensor([[True, True, False]]), cumulative=torch.tensor([[0.5, 0.2, 1.0]]),
                         remainder=torch.tensor([[0.5, 0.8, 0.0]]), depth=torch.tensor([[1.0, 1.0, 1.0]]),
                         ponder=torch.tensor([[2.0, 2.0, 1.5]]), scores=torch.zeros(1, 3),
                         accumulated=torch.tensor([[[1.0], [2.0], [3.0]]]))
    tokens = torch.tensor([[[10.0], [20.0], [30.0]]])
    new, out = halting_step(state, tokens, torch.tensor([[0.6, 0.3, 0.9]]), eps=0.01)
    assert new.active.tolist() == [[False, True, False]]  # 0.5 + 0.6 >= 0.99 halts; 0.2 + 0.3 goes on
    torch.testing.assert_close(new.remainder, torch.tensor([[0.5, 0.5, 0.0]]))
    torch.testing.assert_close(new.ponder, torch.tensor([[2.5, 2.8, 1.5]]))
    torch.testing.assert_close(out, torch.tensor([[[1.0 + 0.5 * 10.0], [20.0], [30.0]]]))
    torch.testing.assert_close(new.accumulated, torch.tensor([[[1.0], [2.0 + 0.3 * 20.0], [3.0]]]))
    last, out = halting_step(new, tokens, torch.zeros(1, 3), eps=0.01, last=True)
    assert not last.active.any()
    torch.testing.assert_close(out[0, 1], torch.tensor([8.0 + 0.5 * 20.0]))


def test_bad_options_raise_clear_errors():
    for options, match in [(dict(gamma=0.0), "gamma"), (dict(eps=1.0), "eps"), (dict(beta=float("nan")), "beta"),
                           (dict(channel=-1), "channel"), (dict(output="mean"), "output")]:
        with pytest.raises(ValueError, match=match):
            AViTConfig(**options)
    with pytest.raises(ValueError, match="channel 64"):
        adaprune.wrap(small_vit(), method="avit", channel=64)
    with pytest.raises(TypeError, match="unknown option"):
        adaprune.wrap(small_vit(), method="avit", keep_rate=0.5)
    other = adaprune.wrap(small_vit(depth=2), patch_groups=2)
    other.forward_features(images(1))
    with pytest.raises(ValueError, match="method='avit'"):
        avit.ponder_loss(other)
    vit = adaprune.wrap(small_vit(depth=3), method="avit")
    vit.forward_features(images(1))
    with pytest.raises(ValueError, match="target_depth"):
        avit.distribution_prior_loss(vit, target_depth=5)


def test_gradient_checkpointing_matches():
    vit = adaprune.wrap(small_vit(depth=3), method="avit", beta=-0.5).train()
    x = images(2)
    plain = vit.forward_features(x)
    vit.set_grad_checkpointing(True)
    checkpointed = vit.forward_features(x)
    torch.testing.assert_close(checkpointed, plain)
    avit.ponder_loss(vit).backward()
    assert vit.blocks[0].mlp.fc2.bias.grad[0].abs() > 0
