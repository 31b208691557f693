"""The eval path's kernels: the compiled batch-1 block equals the eager path, the weight
copies follow the parameters, and nothing cached survives a copy or hides a gradient."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from timm.layers.activations import QuickGELU

import adaprune
from adaprune.gates.adacolvit import adacolvit_block_one
from adaprune.ops import group_major_order, scripted
from tests.conftest import VARIANTS, tiny_vit


def _half_keeping(vit):
    """Decision layers that keep about half the tokens (and skip some sub-layers)."""
    for block in vit.blocks:
        gate = block.adaprune_gate
        layers = [] if gate.patch is None else [gate.patch.attn_logits, gate.patch.mlp_logits]
        for layer in layers:
            torch.nn.init.normal_(layer.weight, std=1.0)
            torch.nn.init.zeros_(layer.bias)
        if gate.layer is not None:  # most sub-layers run, a few are skipped
            torch.nn.init.normal_(gate.layer.proj.weight, std=0.5)
            torch.nn.init.constant_(gate.layer.proj.bias, 1.0)
    return vit


@pytest.mark.parametrize("variant", ["plain", "no_class_token", "deit3_layerscale", "registers"])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_compiled_batch_one_block_equals_the_eager_batched_path(variant, groups):
    vit = _half_keeping(adaprune.wrap(tiny_vit(depth=3, **VARIANTS[variant]), patch_groups=groups))
    assert vit.blocks[0].adaprune_gate.prepare_inference(vit.blocks[0], torch.zeros(1, 18, 32),
                                                          adaprune.get_policy(vit)) is not None
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        one = vit.forward_features(x)  # the compiled kernel
        rec_one = adaprune.last_record(vit)
        two = vit.forward_features(torch.cat([x, torch.randn(1, 4, 32, 32)]))  # the eager path
        rec_two = adaprune.last_record(vit)
    torch.testing.assert_close(one[0], two[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(rec_one.gflops[0], rec_two.gflops[0])
    for a, b in zip(rec_one.blocks, rec_two.blocks):
        torch.testing.assert_close(a.layer_keep[0], b.layer_keep[0])
        if groups > 1:
            assert torch.equal(a.token_masks[0].bool(), b.token_masks[0].bool())
    if groups > 1:
        assert 0 < float(rec_one.patch_keep) < 1  # decisions did drop work


@pytest.mark.parametrize("act_layer", [torch.nn.ReLU, torch.nn.SiLU, QuickGELU])
def test_compiled_kernel_computes_other_ffn_activations(act_layer):
    vit = _half_keeping(adaprune.wrap(tiny_vit(depth=2, act_layer=act_layer), patch_groups=2))
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        one = vit.forward_features(x)
        two = vit.forward_features(x.expand(2, -1, -1, -1).contiguous())
    torch.testing.assert_close(one[0], two[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("groups", [2, 4])
@pytest.mark.parametrize("batch", [1, 3])
def test_keep_all_eval_equals_the_masked_training_path(groups, batch):
    # every token at full width: at batch 1 all channel groups run as one product
    vit = adaprune.wrap(tiny_vit(depth=2, **VARIANTS["qk_norm" if batch == 3 else "plain"]), patch_groups=groups)
    x = torch.randn(batch, 4, 32, 32)
    with adaprune.policy(vit, "keep_all"):
        gathered = vit.eval().forward_features(x)
        masked = vit.train().forward_features(x)
    torch.testing.assert_close(gathered, masked, atol=1e-5, rtol=0)


def test_weight_copies_follow_in_place_updates_loads_and_dtype_moves():
    dense = tiny_vit(depth=2)
    vit = adaprune.wrap(copy.deepcopy(dense), patch_groups=1, layer_skip=True)
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad(), adaprune.policy(vit, "keep_all"):
        torch.testing.assert_close(vit.forward_features(x), dense.forward_features(x), atol=1e-5, rtol=0)
        for model in (dense, vit):  # an optimizer-like in-place step
            model.blocks[1].mlp.fc1.weight.mul_(1.5)
            model.blocks[0].norm1.weight.add_(0.25)
        torch.testing.assert_close(vit.forward_features(x), dense.forward_features(x), atol=1e-5, rtol=0)
        state = {k: v * 0.5 if v.is_floating_point() else v for k, v in dense.state_dict().items()}
        dense.load_state_dict(state)
        vit.load_state_dict({**vit.state_dict(), **state})
        torch.testing.assert_close(vit.forward_features(x), dense.forward_features(x), atol=1e-5, rtol=0)
        dense.double(), vit.double()
        out = vit.forward_features(x.double())
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, dense.forward_features(x.double()), atol=1e-9, rtol=0)


def test_eval_with_gradients_reaches_the_weights_and_caches_nothing():
    vit = adaprune.wrap(tiny_vit(depth=2), patch_groups=2)
    out = vit.forward_features(torch.randn(1, 4, 32, 32))  # eval, gradients asked for
    out.square().sum().backward()
    assert vit.blocks[0].attn.qkv.weight.grad is not None and vit.blocks[0].mlp.fc2.weight.grad.abs().sum() > 0
    assert all(block.adaprune_gate._eval.key is None for block in vit.blocks)


def test_copies_and_pickles_start_with_an_empty_cache():
    vit = adaprune.wrap(tiny_vit(depth=2), patch_groups=2)
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        expected = vit.forward_features(x)
    assert vit.blocks[0].adaprune_gate._eval.key is not None
    for clone in (copy.deepcopy(vit), pickle.loads(pickle.dumps(vit))):
        assert clone.blocks[0].adaprune_gate._eval.key is None
        with torch.no_grad():
            torch.testing.assert_close(clone.forward_features(x), expected, atol=0, rtol=0)


def test_block_kernel_compiles_and_runs_eagerly_alike():
    compiled = scripted(adacolvit_block_one)
    assert compiled is not adacolvit_block_one  # TorchScript is there on the pinned torch
    vit = _half_keeping(adaprune.wrap(tiny_vit(depth=1), patch_groups=2))
    block = vit.blocks[0]
    with torch.no_grad():
        args = block.adaprune_gate._eval_state(block)[1]
        x = torch.randn(1, 17, 32)
        eager = adacolvit_block_one(x, 0, 0.5, 1.0, *args)
        fast = compiled(x, 0, 0.5, 1.0, *args)
    for a, b in zip(eager, fast):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_group_major_order_is_a_permutation_with_group_one_first():
    order = group_major_order(num_heads=3, head_dim=8, groups=2, parts=3)
    assert sorted(order.tolist()) == list(range(72))
    first = order[:36].view(3, 3, 4)  # (part, head, channel) of group 1
    assert torch.equal(first[1, 2], torch.arange(4) + 24 + 16)  # k, head 2, channels 0..3
