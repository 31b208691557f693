"""wrap / unwrap: shapes, exactness, the masked-equals-gathered contract, training, errors."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings, strategies as st
from timm.models.vision_transformer import ResPostBlock

import adaprune
from adaprune.gates.grouped_patch import attention_inference, inference_weights, mlp_inference
from adaprune.ops import kept_index
from tests.conftest import VARIANTS, tiny_vit


def images(batch: int, size: int = 32, chans: int = 4) -> torch.Tensor:
    return torch.randn(batch, chans, size, size)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 3),
    depth=st.integers(1, 3),
    heads=st.sampled_from([1, 2]),
    head_dim=st.sampled_from([4, 8]),
    groups=st.sampled_from([1, 2, 4]),
    layer_skip=st.booleans(),
    class_token=st.booleans(),
    reg_tokens=st.sampled_from([0, 2]),
    training=st.booleans(),
)
def test_shapes_and_record(batch, depth, heads, head_dim, groups, layer_skip, class_token, reg_tokens, training):
    if groups == 1 and not layer_skip:
        layer_skip = True
    vit = tiny_vit(depth=depth, num_heads=heads, embed_dim=heads * head_dim, class_token=class_token,
                   reg_tokens=reg_tokens, no_embed_class=reg_tokens > 0)
    x = images(batch)
    expected = vit.forward_features(x).shape
    adaprune.wrap(vit, patch_groups=groups, layer_skip=layer_skip).train(training)
    out = vit.forward_features(x)
    assert out.shape == expected and out.dtype == x.dtype
    rec = adaprune.last_record(vit)
    assert len(rec.blocks) == depth
    for name in ("patch_keep", "layer_keep", "gflops"):
        value = getattr(rec, name)
        assert value.shape == (batch,), name
    assert ((rec.patch_keep >= 0) & (rec.patch_keep <= 1)).all()
    assert ((rec.layer_keep >= 0) & (rec.layer_keep <= 1)).all()
    assert (rec.gflops > 0).all()
    token_map = rec.token_map()
    assert (token_map is None) == (groups == 1)
    if token_map is not None:
        assert token_map.shape == (batch, 4, 4)
    assert vit(x).shape[0] == batch  # timm's forward (head included) still works


# every installed method under keep_all computes what the original model did (AdaColViT: a
# layer-skip-only wrap; A-ViT with a halting shift that would halt nearly everything if it decided)
KEEP_ALL_METHODS = {"adacolvit": dict(patch_groups=1, layer_skip=True), "dynamicvit": {}, "avit": dict(beta=5.0),
                    "adavit": {}}


@pytest.mark.parametrize("method", sorted(KEEP_ALL_METHODS))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("training", [False, True])
def test_keep_all_equals_original(variant, training, method):
    vit = tiny_vit(**VARIANTS[variant], img_size=64, depth=4, num_heads=4).train(training)
    x = images(2, size=64)
    expected = vit.forward_features(x)
    adaprune.wrap(vit, method=method, **KEEP_ALL_METHODS[method])
    with adaprune.policy(vit, "keep_all"):
        out = vit.forward_features(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert adaprune.last_record(vit).layer_keep.eq(1).all()


def test_grouped_ffn_keep_all_equals_original_ffn():
    vit = tiny_vit()
    adaprune.wrap(vit, patch_groups=4)
    block = vit.blocks[0]
    gate = block.adaprune_gate.patch
    h = torch.randn(3, 17, 32)
    keep = torch.ones(3, 17)
    torch.testing.assert_close(gate.mlp_masked(block.mlp, h, keep), block.mlp(h), atol=1e-6, rtol=0)
    weights = inference_weights(block.attn, block.mlp, 4)
    torch.testing.assert_close(mlp_inference(h, weights), block.mlp(h), atol=1e-6, rtol=0)
    index, valid = kept_index(keep.bool())
    torch.testing.assert_close(mlp_inference(h, weights, index, valid), block.mlp(h), atol=1e-6, rtol=0)


@pytest.mark.parametrize("variant", ["plain", "qk_norm", "deit3_layerscale", "registers"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("groups", [2, 4])
def test_masked_training_path_equals_gathered_inference_path(variant, batch, groups):
    vit = adaprune.wrap(tiny_vit(depth=3, **VARIANTS[variant]), patch_groups=groups, layer_skip=True)
    x = images(batch)
    with adaprune.policy(vit, "random", patch_keep=0.4, layer_keep=0.6):
        torch.manual_seed(1)
        gathered = vit.eval().forward_features(x)
        rec_eval = adaprune.last_record(vit)
        torch.manual_seed(1)
        masked = vit.train().forward_features(x)  # same random numbers: same decisions
        rec_train = adaprune.last_record(vit)
    torch.testing.assert_close(masked, gathered, atol=1e-5, rtol=0)
    torch.testing.assert_close(rec_train.gflops, rec_eval.gflops)
    torch.testing.assert_close(rec_train.layer_keep, rec_eval.layer_keep)
    assert rec_eval.layer_keep.lt(1).any() and rec_eval.patch_keep.lt(1).all()  # decisions did drop work


def test_gathered_and_masked_attention_agree_for_learned_hard_decisions():
    vit = adaprune.wrap(tiny_vit(), patch_groups=2)
    gate = vit.blocks[0].adaprune_gate.patch
    attn = vit.blocks[0].attn
    h = torch.randn(4, 17, 32)
    keep = torch.rand(4, 17) > 0.5
    keep[:, 0] = True
    masked = gate.attention_masked(attn, h, keep.float())
    gathered = attention_inference(h, inference_weights(attn, vit.blocks[0].mlp, 2), *kept_index(keep))
    torch.testing.assert_close(masked, gathered, atol=1e-5, rtol=0)


def test_eval_is_deterministic_and_drop_all_skips_everything():
    vit = adaprune.wrap(tiny_vit(), patch_groups=2, layer_skip=True)
    x = images(2)
    torch.testing.assert_close(vit.forward_features(x), vit.forward_features(x), atol=0, rtol=0)
    with adaprune.policy(vit, "drop_all"):
        vit.forward_features(x)
    rec = adaprune.last_record(vit)
    assert rec.layer_keep.eq(0).all() and rec.patch_keep.eq(0).all()
    with adaprune.policy(vit, "keep_all"):
        vit.forward_features(x)
    assert adaprune.last_record(vit).gflops.gt(rec.gflops).all()


@pytest.mark.parametrize("method", ["adacolvit", "dynamicvit", "avit", "adavit"])  # the installed methods
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_unwrap_restores_outputs_and_state_dict(variant, method):
    vit = tiny_vit(**VARIANTS[variant], img_size=64, depth=4)
    x = images(2, size=64)
    expected = vit.forward_features(x)
    keys = list(vit.state_dict())
    cls, block_cls = type(vit), type(vit.blocks[0])
    adaprune.wrap(vit, method=method)
    assert set(keys) <= set(vit.state_dict())  # A-ViT adds no parameters
    vit.forward_features(x)
    adaprune.unwrap(vit)
    assert type(vit) is cls and type(vit.blocks[0]) is block_cls
    assert list(vit.state_dict()) == keys
    torch.testing.assert_close(vit.forward_features(x), expected, atol=0, rtol=0)
    assert not adaprune.is_wrapped(vit)


def test_gradient_checkpointing_matches_and_trains():
    vit = adaprune.wrap(tiny_vit(depth=3), patch_groups=2).train()
    twin = copy.deepcopy(vit)
    twin.set_grad_checkpointing(True)
    x = images(2)
    torch.manual_seed(3)
    a = vit.forward_features(x)
    loss_a = a.square().mean() + adaprune.sparsity_loss(vit)
    torch.manual_seed(3)
    b = twin.forward_features(x)
    loss_b = b.square().mean() + adaprune.sparsity_loss(twin)
    torch.testing.assert_close(a, b)
    loss_a.backward()
    loss_b.backward()
    for (name, p), q in zip(vit.named_parameters(), twin.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-4, msg=name)


def test_forward_intermediates_when_wrapped():
    vit = adaprune.wrap(tiny_vit(depth=3, reg_tokens=1, no_embed_class=True), patch_groups=2)
    x = images(2)
    final, inter = vit.forward_intermediates(x, indices=2)
    assert final.shape == vit.forward_features(x).shape
    assert [t.shape for t in inter] == [(2, 32, 4, 4)] * 2
    nlc = vit.forward_intermediates(x, indices=[0], output_fmt="NLC", intermediates_only=True,
                                    return_prefix_tokens=True)
    assert nlc[0][0].shape == (2, 16, 32) and nlc[0][1].shape == (2, 2, 32)
    out = vit.forward_intermediates(x, output_dict=True, stop_early=True, indices=1)
    assert set(out) == {"image_intermediates", "image_features"}
    assert out["image_intermediates"][0].shape == (2, 32, 4, 4)


def test_gradients_reach_every_decision_layer():
    vit = adaprune.wrap(tiny_vit(), patch_groups=2, layer_skip=True).train()
    out = vit.forward_features(images(4))
    (out.square().mean() + adaprune.sparsity_loss(vit)).backward()
    for name, p in vit.named_parameters():
        if "adaprune" in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_sparsity_loss_moves_keep_ratios_toward_budget():
    vit = adaprune.wrap(tiny_vit(), patch_groups=2, layer_skip=True).train()
    gates = [p for n, p in vit.named_parameters() if "adaprune" in n]
    opt = torch.optim.Adam(gates, lr=0.05)
    x = images(8)

    def ratios() -> tuple[float, float]:
        with torch.no_grad():
            torch.manual_seed(5)
            vit.forward_features(x)
            rec = adaprune.last_record(vit)
        return float(rec.patch_keep.mean()), float(rec.layer_keep.mean())

    patch0, layer0 = ratios()
    for _ in range(30):
        vit.forward_features(x)
        loss = adaprune.sparsity_loss(vit, beta_patch=0.3, beta_layer=0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    patch1, layer1 = ratios()
    assert abs(patch1 - 0.3) < abs(patch0 - 0.3) - 0.1
    assert abs(layer1 - 0.5) < abs(layer0 - 0.5) - 0.1


def test_unsupported_models_and_options_raise_clear_errors():
    with pytest.raises(TypeError, match="VisionTransformer"):
        adaprune.wrap(torch.nn.Linear(3, 3))
    with pytest.raises(TypeError, match="ResPostBlock"):
        adaprune.wrap(tiny_vit(block_fn=ResPostBlock))
    with pytest.raises(ValueError, match="head dim"):
        adaprune.wrap(tiny_vit(), patch_groups=3)
    with pytest.raises(ValueError, match="positive integer"):
        adaprune.wrap(tiny_vit(), patch_groups=0)
    with pytest.raises(TypeError, match="accepted: .*patch_groups"):
        adaprune.wrap(tiny_vit(), patch_group=2)
    with pytest.raises(ValueError, match="registered: .*adacolvit"):
        adaprune.wrap(tiny_vit(), method="nope")
    vit = adaprune.wrap(tiny_vit())
    with pytest.raises(ValueError, match="already wrapped"):
        adaprune.wrap(vit)
    with pytest.raises(ValueError, match=r"expected images \(B, 4, H, W\)"):
        vit.forward_features(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="accepted: learned"):
        adaprune.policy(vit, "sometimes").__enter__()
    with pytest.raises(ValueError, match="patch_keep"):
        adaprune.policy(vit, "random", patch_keep=1.5).__enter__()
    with pytest.raises(TypeError, match="not wrapped"):
        adaprune.last_record(tiny_vit())
    with pytest.raises(RuntimeError, match="not run a forward"):
        adaprune.last_record(adaprune.wrap(tiny_vit()))


@dataclass(frozen=True)
class _NoOptions:
    pass


class _Dense(adaprune.BlockGate):
    """A method that decides nothing: runs the block's own submodules, every sub-layer."""

    config_class = _NoOptions

    def forward(self, block, x, policy, previous=None):
        x = x + block.drop_path1(block.ls1(block.attn(block.norm1(x))))
        x = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
        ran = x.new_ones(x.shape[0], 2)
        depth = 1 if previous is None else previous.state + 1  # running state travels block to block
        return x, adaprune.BlockDecision(ran, None, lambda kept, run: run.sum(dim=1) * 1e-3, state=depth)


def test_registry_plugs_in_a_new_method():
    assert "adacolvit" in adaprune.list_gates()
    adaprune.register_gate("dense-test")(_Dense)
    assert "dense-test" in adaprune.list_gates()
    vit = tiny_vit()
    x = images(2)
    expected = vit.forward_features(x)
    adaprune.wrap(vit, method="dense-test")
    torch.testing.assert_close(vit.forward_features(x), expected)
    rec = adaprune.last_record(vit)
    assert rec.layer_keep.eq(1).all() and rec.patch_keep.eq(1).all() and rec.token_map() is None
    assert [b.state for b in rec.blocks] == list(range(1, len(vit.blocks) + 1))
    with pytest.warns(UserWarning, match="registered again"):
        adaprune.register_gate("dense-test")(type("OtherDense", (_Dense,), {}))
    with pytest.raises(TypeError, match="BlockGate"):
        adaprune.register_gate("not-a-gate")(int)
