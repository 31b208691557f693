"""FLOPs: analytic per-sample counts against fvcore, dense and on the gathered path."""

from __future__ import annotations

import pytest
import torch

import adaprune
from adaprune.flops import attention_flops, fvcore_gflops, mlp_flops
from tests.conftest import record_and_fvcore_gflops, tiny_vit


def test_grouped_flops_formulas_reduce_to_dense():
    assert attention_flops(10, 10, 32, 32, groups=4) == attention_flops(10, 10, 32, 32, groups=1)
    assert mlp_flops(10, 10, 32, 64, groups=2) == mlp_flops(10, 10, 32, 64)
    # only group 1 (half the channels) for every token: half the projections' cost
    assert mlp_flops(10, 0, 32, 64, groups=2) == mlp_flops(10, 10, 32, 64) / 2


@pytest.mark.parametrize("overrides", [{}, dict(class_token=False), dict(reg_tokens=2, no_embed_class=True)])
def test_dense_analytic_flops_match_fvcore(overrides):
    vit = tiny_vit(img_size=64, embed_dim=64, num_heads=2, depth=2, **overrides)
    x = torch.randn(1, 4, 64, 64)
    counted = fvcore_gflops(vit, x, entry="forward_features")
    assert adaprune.vit_gflops(vit) == pytest.approx(counted, rel=0.02)



@pytest.mark.parametrize("mode", ["random", "keep_all", "drop_all"])
def test_record_gflops_match_fvcore_on_the_gathered_path(mode):
    vit = adaprune.wrap(tiny_vit(img_size=64, embed_dim=64, num_heads=2, depth=3), patch_groups=2, layer_skip=True)
    x = torch.randn(1, 4, 64, 64)
    with adaprune.policy(vit, mode, patch_keep=0.5, layer_keep=0.7):
        rec, counted = record_and_fvcore_gflops(vit, x, seed=2)
        recorded = float(rec.gflops[0])
    assert recorded == pytest.approx(counted, rel=0.02)


def test_learned_record_gflops_match_fvcore_and_fall_with_fewer_kept_tokens():
    vit = adaprune.wrap(tiny_vit(img_size=64, embed_dim=64, num_heads=2, depth=2), patch_groups=2)
    x = torch.randn(1, 4, 64, 64)
    for block in vit.blocks:  # a decision layer that keeps about half the tokens
        gate = block.adaprune_gate.patch
        for layer in (gate.attn_logits, gate.mlp_logits):
            torch.nn.init.normal_(layer.weight, std=1.0)
            torch.nn.init.zeros_(layer.bias)
    vit.forward_features(x)
    rec = adaprune.last_record(vit)
    assert 0 < float(rec.patch_keep) < 1
    assert float(rec.gflops) == pytest.approx(fvcore_gflops(vit, x, entry="forward_features"), rel=0.02)
    with adaprune.policy(vit, "keep_all"):
        vit.forward_features(x)
    assert float(adaprune.last_record(vit).gflops) > float(rec.gflops)
