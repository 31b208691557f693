"""Shared fixtures: tiny timm ViTs that run in milliseconds on a 2-core CPU."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

import adaprune


def tiny_vit(**overrides: Any) -> VisionTransformer:
    """A timm VisionTransformer small enough for property tests: 32 px, patch 8, width 32."""
    options = dict(img_size=32, patch_size=8, in_chans=4, embed_dim=32, depth=2, num_heads=2,
                   mlp_ratio=2.0, num_classes=0, global_pool="")
    options.update(overrides)
    return VisionTransformer(**options).eval()


def record_and_fvcore_gflops(vit: VisionTransformer, x: torch.Tensor, seed: int) -> tuple[adaprune.Record, float]:
    """The record of one forward of a wrapped ViT on x (batch 1) and fvcore's GFLOPs of the
    same forward, traced with the same seed so that random decisions repeat."""
    torch.manual_seed(seed)
    vit.forward_features(x)
    record = adaprune.last_record(vit)
    torch.manual_seed(seed)
    return record, adaprune.fvcore_gflops(vit, x, entry="forward_features")


VARIANTS = {
    "plain": {},
    "no_class_token": dict(class_token=False),
    "deit3_layerscale": dict(init_values=0.1, no_embed_class=True),
    "qk_norm": dict(qk_norm=True),
    "registers": dict(reg_tokens=2, no_embed_class=True),
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
