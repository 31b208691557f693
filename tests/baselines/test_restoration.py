"""SwinIR and Uformer colorizers: shapes, window masks, relative positions, gradients, FLOPs."""

from __future__ import annotations

import pytest
import torch

from adaprune import fvcore_gflops
from adaprune_baselines.swinir import (SwinIR, SwinLayer, WindowAttention, additive_mask, relative_position_index,
                              shifted_window_mask, swinir_s, swinir_t, window_partition, window_reverse)
from adaprune_baselines.uformer import LeWinBlock, Uformer, padded_window_mask, uformer_s, uformer_t


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def tiny_swinir(**overrides) -> SwinIR:
    options = dict(embed_dim=8, depths=(2, 2), num_heads=(2, 2), window_size=4)
    return SwinIR(**{**options, **overrides}).eval()


def tiny_uformer(**overrides) -> Uformer:
    options = dict(embed_dim=4, depths=(1, 1, 1, 1, 1), num_heads=(1, 2, 4, 2, 1), win_size=4)
    return Uformer(**{**options, **overrides}).eval()


MODELS = {"swinir": tiny_swinir, "uformer": tiny_uformer}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("size", [(32, 32), (36, 44)])
def test_output_shape_and_range(name, size):
    model = MODELS[name]()
    last = model.conv_last if name == "swinir" else model.output_proj
    torch.nn.init.normal_(last.weight, std=10.0)  # push the logits far beyond tanh's linear range
    out = model(torch.randn(2, 4, *size))
    assert out.shape == (2, 2, *size)
    assert out.abs().max() <= 1.0
    assert out.abs().max() > 0.9


@pytest.mark.parametrize("name", MODELS)
def test_samples_are_independent_and_padding_is_cropped(name):
    model = MODELS[name]()
    x = torch.randn(2, 4, 36, 44)
    both = model(x)
    torch.testing.assert_close(both[1:], model(x[1:]), rtol=1e-4, atol=1e-5)


def test_window_partition_round_trips():
    x = torch.randn(2, 8, 12, 3)
    windows = window_partition(x, 4)
    assert windows.shape == (2, 6, 16, 3)
    torch.testing.assert_close(windows[0, 1], x[0, :4, 4:8].reshape(16, 3))  # second window of the first row
    torch.testing.assert_close(window_reverse(windows, 4, 8, 12), x)


@pytest.mark.parametrize("S", [2, 4, 7])
def test_relative_position_index_properties(S):
    index = relative_position_index(S)
    N, table = S * S, (2 * S - 1) ** 2
    center = (S - 1) * (2 * S - 1) + (S - 1)  # zero offset
    assert index.shape == (N, N)
    assert int(index.min()) == 0 and int(index.max()) == table - 1
    assert len(index.unique()) == table  # every offset used, each one its own entry
    assert (index.diagonal() == center).all()
    assert (index + index.T == 2 * center).all()  # offset (i, j) is minus offset (j, i)
    assert int(index[0, N - 1]) == 0  # (0,0) - (S-1,S-1): the most negative offset on both axes
    # equal offsets share an entry: (r, c)->(r, c+1) is the same for every pair of neighbours
    right = [int(index[r * S + c, r * S + c + 1]) for r in range(S) for c in range(S - 1)]
    assert len(set(right)) == 1


def _swin_regions(height: int, width: int, S: int, shift: int) -> torch.Tensor:
    """The Swin paper's labelling of the rolled image by slices: (H, W) region ids."""
    labels = torch.zeros(height, width, dtype=torch.long)
    count = 0
    for rows in (slice(0, -S), slice(-S, -shift), slice(-shift, None)):
        for cols in (slice(0, -S), slice(-S, -shift), slice(-shift, None)):
            labels[rows, cols] = count
            count += 1
    return labels


@pytest.mark.parametrize("height,width,S", [(8, 8, 4), (12, 8, 4), (14, 21, 7)])
def test_shifted_window_mask_matches_the_slice_labelling(height, width, S):
    shift = S // 2
    mask = shifted_window_mask(height, width, S, (shift, shift))
    regions = window_partition(_swin_regions(height, width, S, shift).view(1, height, width, 1), S)[0, :, :, 0]
    expected = regions[:, :, None] == regions[:, None, :]
    assert mask.shape == ((height // S) * (width // S), S * S, S * S)
    assert torch.equal(mask, expected)
    assert not mask[-1].all()  # the last window mixes wrapped pixels: some pairs are blocked
    assert mask[0].all()  # the first window holds no wrapped pixel
    assert shifted_window_mask(height, width, S, (0, 0)).all()


def test_non_shifted_layer_keeps_windows_apart():
    layer = SwinLayer(dim=8, num_heads=2, window_size=4, shift=False).eval()
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[0, 1, 2] += 3 * torch.randn(8)  # a pixel of the top-left window
    changed = (layer(x) - layer(y)).abs().amax(-1)[0] > 1e-6  # (H, W)
    assert changed[:4, :4].sum() > 1  # more than the perturbed pixel (a layer norm ignores a uniform shift)
    assert not changed[4:].any() and not changed[:, 4:].any()


def test_shifted_layer_mask_blocks_wrapped_neighbours():
    S, H = 4, 8
    layer = SwinLayer(dim=8, num_heads=2, window_size=S, shift=True).eval()
    x = torch.randn(1, H, H, 8)
    y = x.clone()
    y[0, 0, 0] += 3 * torch.randn(8)  # after the roll this pixel shares a window with the bottom-right corner
    changed = (layer(x) - layer(y)).abs().amax(-1)[0] > 1e-6
    assert changed[S // 2 - 1, S // 2 - 1]  # its own (unwrapped) neighbour in the shifted window
    assert not changed[H - 1, H - 1]  # the far corner: same rolled window, blocked by the mask
    no_mask = torch.ones(H * H // S ** 2, S * S, S * S, dtype=torch.bool)
    leaked = (layer(x, no_mask) - layer(y, no_mask)).abs().amax(-1)[0] > 1e-6
    assert leaked[H - 1, H - 1]  # without the mask the corner would see it


def test_bool_and_additive_masks_agree():
    layer = SwinLayer(dim=8, num_heads=2, window_size=4, shift=True).eval()
    mask = shifted_window_mask(8, 8, 4, (2, 2))
    assert torch.equal(additive_mask(mask) == 0, mask)
    x = torch.randn(2, 8, 8, 8)
    torch.testing.assert_close(layer(x, mask), layer(x, additive_mask(mask)))
    torch.testing.assert_close(layer(x), layer(x, mask))  # built by the layer when not given


def test_shift_is_dropped_along_an_axis_with_one_window():
    layer = SwinLayer(dim=8, num_heads=2, window_size=4, shift=True)
    assert layer.shift(4, 12) == (0, 2)
    assert layer.shift(8, 8) == (2, 2)
    assert SwinLayer(dim=8, num_heads=2, window_size=4, shift=False).shift(8, 8) == (0, 0)


def test_padded_window_mask_hides_padding_keys():
    assert padded_window_mask(8, 12, 4) is None
    mask = padded_window_mask(6, 5, 4)  # padded to 8 x 8: 4 windows
    assert mask.shape == (4, 16, 16)
    assert mask[0].all()  # the top-left window is all real
    real_cols = torch.tensor([c < 1 for _ in range(4) for c in range(4)])  # window (0, 1): column 4 only
    assert torch.equal(mask[1][0], real_cols)


def test_masked_padding_does_not_reach_real_tokens():
    attn = WindowAttention(dim=8, num_heads=2, window_size=4).eval()
    mask = padded_window_mask(4, 2, 4)  # one window, its right half padding
    real = mask[0, 0].view(1, 1, 16, 1)
    x = torch.randn(1, 1, 16, 8)
    y = torch.where(real, x, torch.randn_like(x))  # other contents in the padded positions
    torch.testing.assert_close(attn(x, mask)[:, :, real.flatten()], attn(y, mask)[:, :, real.flatten()])
    assert not torch.allclose(attn(x)[:, :, real.flatten()], attn(y)[:, :, real.flatten()])


def test_lewin_block_crops_padding():
    block = LeWinBlock(dim=8, num_heads=2, window_size=4).eval()
    assert block(torch.randn(2, 6, 5, 8)).shape == (2, 6, 5, 8)


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name):
    model = MODELS[name]().train()
    model(torch.randn(2, 4, 32, 32)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    table = next(p for n, p in model.named_parameters() if n.endswith("relative_position_bias_table"))
    assert table.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODELS)
def test_bad_inputs_raise_clear_errors(name):
    model = MODELS[name]()
    label = "SwinIR" if name == "swinir" else "Uformer"
    with pytest.raises(ValueError, match=rf"{label} expects an image batch \(B, 4, H, W\)"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="expects an image batch"):
        model(torch.randn(4, 32, 32))
    with pytest.raises(ValueError, match="accepts images of at least"):
        model(torch.randn(1, 4, 2, 32))


def test_bad_configurations_raise_clear_errors():
    with pytest.raises(ValueError, match="same length"):
        SwinIR(depths=(2, 2), num_heads=(2,))
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        SwinIR(embed_dim=10, depths=(2,), num_heads=(3,))
    with pytest.raises(ValueError, match="odd length"):
        Uformer(depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 1))


TARGETS = {"swinir_s": 1.96, "uformer_s": 2.46}  # AdaColViT, Table 2, GFLOPs at 224 px


@pytest.mark.parametrize("small,tiny,factories", [
    ("swinir_s", "swinir_t", (swinir_s, swinir_t)),
    ("uformer_s", "uformer_t", (uformer_s, uformer_t)),
])
def test_factory_gflops_match_the_paper(small, tiny, factories):
    x = torch.zeros(1, 4, 224, 224)
    s_gflops = fvcore_gflops(factories[0]().eval(), x)
    t_gflops = fvcore_gflops(factories[1]().eval(), x)
    assert s_gflops == pytest.approx(TARGETS[small], rel=0.05)
    assert 0.4 < t_gflops / s_gflops < 0.65  # the T variant: about half
