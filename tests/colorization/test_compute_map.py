"""compute_map: a record laid out per patch and per block, and its picture."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import adaprune
from adacolor.compute_map import (
    ComputeMap,
    dense_compute_map,
    from_record,
    model_compute_map,
    render_compute_map,
)
from adacolor.model import create_colorizer

SMALL = dict(image_size=32, patch_size=8, depth=3)


def _forward(model: torch.nn.Module) -> None:
    with torch.no_grad():
        model(torch.rand(1, 4, 32, 32))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_agrees_with_the_record(seed: int) -> None:
    model = create_colorizer("adacolvit-t", **SMALL).eval()
    torch.manual_seed(seed)
    with adaprune.policy(model.backbone, "random", patch_keep=0.5, layer_keep=0.5):
        _forward(model)
    record = adaprune.last_record(model.backbone)
    where = model_compute_map(model)
    assert where.adaptive and where.full_width.shape == (4, 4) and where.ran.shape == (3, 2)
    assert torch.equal(where.ran, torch.stack([b.layer_keep[0] for b in record.blocks]) > 0.5)
    # the mean over patches is the kept fraction over the sub-layers that ran, times how many ran
    expected_mean = float(record.patch_keep[0] * record.layer_keep[0])
    assert float(where.full_width.mean()) == pytest.approx(expected_mean, abs=1e-6)
    # a skipped sub-layer counts as no full width for every patch, as in the record's token map
    torch.testing.assert_close(where.full_width, record.token_map()[0].float())
    assert where.skipped() == [[name for name, ran in zip(("attention", "ffn"), row) if not ran]
                               for row in where.ran.tolist()]


def test_skipped_sub_layers_are_named() -> None:
    where = ComputeMap(full_width=torch.zeros(2, 2), ran=torch.tensor([[True, False], [False, False], [True, True]]),
                       adaptive=True)
    assert where.skipped() == [["ffn"], ["attention", "ffn"], []]
    data = json.loads(json.dumps(where.to_dict()))
    assert data["blocks"] == [{"attention": True, "ffn": False}, {"attention": False, "ffn": False},
                              {"attention": True, "ffn": True}]
    assert data["sublayers_ran"] == pytest.approx(0.5) and data["grid"] == [[0.0, 0.0], [0.0, 0.0]]


def test_a_method_without_token_decisions_keeps_every_token_of_a_sub_layer_that_ran() -> None:
    model = create_colorizer("adacolvit-t", **SMALL).eval()
    _forward(model)
    record = adaprune.last_record(model.backbone)
    blocks = tuple(type(b)(layer_keep=torch.tensor([[1.0, 0.0]]), token_masks=None, gflops_fn=b.gflops_fn)
                   for b in record.blocks)
    where = from_record(type(record)(blocks=blocks, base_gflops=record.base_gflops, grid_size=record.grid_size))
    torch.testing.assert_close(where.full_width, torch.full((4, 4), 0.5))


def test_dense_models_run_everything_at_full_width() -> None:
    model = create_colorizer("icolorit-t", **SMALL).eval()
    _forward(model)
    where = model_compute_map(model)
    assert not where.adaptive and torch.equal(where.full_width, torch.ones(4, 4))
    assert where.skipped() == [[], [], []]
    assert dense_compute_map((2, 3), 0).to_dict()["blocks"] == []


def test_render_lays_one_tile_per_patch_and_spans_the_colour_scale() -> None:
    full_width = torch.tensor([[0.0, 1.0, 0.5], [1.0, 0.0, 0.25]])
    picture = render_compute_map(full_width, (4, 9))
    assert picture.shape == (4, 9, 3) and picture.dtype == np.uint8
    for r in range(2):
        for c in range(3):
            tile = picture[2 * r:2 * r + 2, 3 * c:3 * c + 3].reshape(-1, 3)
            assert (tile == tile[0]).all()
    assert picture[0, 0].tolist() == [0, 0, 4] and picture[0, 3].tolist() == [252, 253, 191]
    brightness = [int(picture[0, 0].sum()), int(picture[2, 6].sum()), int(picture[0, 6].sum()), int(picture[0, 3].sum())]
    assert brightness == sorted(brightness) and len(set(brightness)) == 4  # 0 < 0.25 < 0.5 < 1
    # sizes that the grid does not divide still give every pixel a tile
    assert render_compute_map(full_width, (5, 7)).shape == (5, 7, 3)


def test_render_can_span_a_maps_own_range() -> None:
    full_width = torch.tensor([[0.4, 0.5], [0.45, 0.4]])
    picture = render_compute_map(full_width, (2, 2), value_range=(0.4, 0.5))
    assert picture[0, 0].tolist() == [0, 0, 4] and picture[0, 1].tolist() == [252, 253, 191]
    flat = render_compute_map(torch.full((2, 2), 0.3), (2, 2), value_range=(0.3, 0.3))
    assert (flat == flat[0, 0]).all() and flat[0, 0].tolist() == [183, 55, 121]  # mid-scale
