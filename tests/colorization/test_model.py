"""Colorizer: registry, shapes and range, head layout, GFLOPs, checkpoint round trip."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

import adaprune
from adacolor.model import (
    Colorizer,
    ImageColorizer,
    colorizer_gflops,
    colorizer_state,
    create_colorizer,
    get_spec,
    head_gflops,
    list_colorizers,
    load_colorizer,
    tokens_to_image,
)

SMALL = dict(image_size=32, patch_size=8, depth=1)


def test_registry_holds_the_papers_models() -> None:
    expected = {"icolorit-t", "icolorit-t-d6", "icolorit-t-d24", "icolorit-s", "icolorit-s-d6",
                "icolorit-s-d24", "adacolvit-t", "adacolvit-t-d24", "adacolvit-s"}
    assert expected <= set(list_colorizers())
    assert get_spec("icolorit-t-d6").depth == 6 and get_spec("adacolvit-t-d24").depth == 24
    assert get_spec("adacolvit-s").adaptive and not get_spec("icolorit-s").adaptive
    assert (get_spec("adacolvit-t").beta_patch, get_spec("adacolvit-t").beta_layer) == (0.5, 0.8)


VIT_NAMES = [name for name in list_colorizers() if get_spec(name).network is None]
NETWORK_NAMES = [name for name in list_colorizers() if get_spec(name).network is not None]


def test_registry_holds_the_baselines() -> None:
    assert {"dynamicvit-t", "avit-t", "adavit-t"} <= set(VIT_NAMES)
    assert {get_spec(n).method for n in ("dynamicvit-t", "avit-t", "adavit-t")} == {"dynamicvit", "avit", "adavit"}
    assert set(NETWORK_NAMES) == {"swinir-s", "swinir-t", "uformer-s", "uformer-t"}


@pytest.mark.parametrize("name", VIT_NAMES)
def test_every_name_maps_4_channels_to_ab_in_range(name: str) -> None:
    model = create_colorizer(name, **SMALL)
    assert model.adaptive == get_spec(name).adaptive
    if model.adaptive:
        assert adaprune.wrap_info(model.backbone).method == get_spec(name).method
    width = 192 if "-t" in name else 384
    assert model.backbone.embed_dim == width and model.backbone.num_prefix_tokens == 0
    x = torch.randn(3, 4, 32, 32)
    for mode in (model.train(), model.eval()):
        ab = mode(x)
        assert ab.shape == (3, 2, 32, 32)
        assert torch.isfinite(ab).all() and ab.abs().max() < 1.0


def test_full_size_tiny_is_vit_tiny_without_class_token() -> None:
    model = create_colorizer("icolorit-t")
    vit = model.backbone
    assert model.image_size == (224, 224) and model.patch_size == 16 and model.grid_size == (14, 14)
    assert len(vit.blocks) == 12 and vit.blocks[0].attn.num_heads == 3 and vit.embed_dim == 192
    assert vit.cls_token is None and vit.pos_embed.shape[1] == 196
    assert model.head_kind == "conv" and model.stabilizer is None
    assert model.head.in_channels == 192 and model.head.out_channels == 2 * 16 * 16
    assert model.head.kernel_size == (3, 3) and model.head.padding_mode == "reflect"


def test_adaptive_names_are_wrapped_with_the_papers_gates() -> None:
    model = create_colorizer("adacolvit-s", **SMALL)
    info = adaprune.wrap_info(model.backbone)
    assert info.config.patch_groups == 2 and info.config.layer_skip
    assert len(model.backbone.blocks) == 1 and model.backbone.blocks[0].attn.num_heads == 6


def test_tokens_to_image_puts_each_token_on_its_patch() -> None:
    B, h, w, P, C = 2, 3, 4, 2, 2
    tokens = torch.randn(B, h * w, C * P * P)
    image = tokens_to_image(tokens, (h, w), P)
    assert image.shape == (B, C, h * P, w * P)
    assert torch.equal(image, rearrange(tokens, "b (h w) (c p q) -> b c (h p) (w q)", h=h, p=P, q=P))
    # token (r, s), channel c, in-patch pixel (i, j) lands on pixel (r*P + i, s*P + j)
    r, s, c, i, j = 2, 1, 1, 0, 1
    assert image[1, c, r * P + i, s * P + j] == tokens[1, r * w + s, c * P * P + i * P + j]


def test_head_layout_in_the_model() -> None:
    """With a constant backbone output, the head's bias alone paints every patch identically."""
    model = create_colorizer("icolorit-t", head="linear", **SMALL).eval()
    P = model.patch_size
    with torch.no_grad():
        model.head.weight.zero_()
        pattern = torch.linspace(-0.9, 0.9, 2 * P * P)
        model.head.bias.copy_(torch.atanh(pattern))
        model.stabilizer.weight.zero_()
        model.stabilizer.weight[0, 0, 1, 1] = 1.0
        model.stabilizer.weight[1, 1, 1, 1] = 1.0
        ab = model(torch.randn(1, 4, 32, 32))
    expected = pattern.view(2, P, P).repeat(1, 32 // P, 32 // P)
    torch.testing.assert_close(ab[0], expected, atol=1e-5, rtol=0)


def test_conv_head_layout_in_the_model() -> None:
    """iColoriT's head: the bias alone paints every patch identically, as the linear head's does."""
    model = create_colorizer("icolorit-t", **SMALL).eval()
    P = model.patch_size
    with torch.no_grad():
        model.head.weight.zero_()
        pattern = torch.linspace(-0.9, 0.9, 2 * P * P)
        model.head.bias.copy_(torch.atanh(pattern))
        ab = model(torch.randn(1, 4, 32, 32))
    torch.testing.assert_close(ab[0], pattern.view(2, P, P).repeat(1, 32 // P, 32 // P), atol=1e-5, rtol=0)


def test_conv_head_sees_the_neighbouring_tokens() -> None:
    """A patch's pixels depend on its 3x3 token neighbourhood (the linear head: on its own token
    only): changing one token changes the pixels of the eight patches around it, and no others."""
    for head, reach in (("conv", 1), ("linear", 0)):
        model = create_colorizer("icolorit-t", head=head, image_size=40, patch_size=8, depth=1).eval()
        tokens = torch.randn(1, 25, 192)
        changed = tokens.clone()
        changed[0, 2 * 5 + 2] += 1.0  # the centre token of the 5x5 grid
        with torch.no_grad():
            diff = (model.head_pixels(changed) - model.head_pixels(tokens)).abs().sum(1)[0]  # (40, 40)
        per_patch = diff.view(5, 8, 5, 8).sum((1, 3)) > 1e-6                                 # (5, 5)
        rows, cols = torch.meshgrid(torch.arange(5), torch.arange(5), indexing="ij")
        expected = ((rows - 2).abs() <= reach) & ((cols - 2).abs() <= reach)
        assert torch.equal(per_patch, expected), head


def test_head_choice_errors() -> None:
    with pytest.raises(ValueError, match="head must be one of conv, linear"):
        create_colorizer("icolorit-t", head="mlp", **SMALL)
    with pytest.raises(TypeError, match="no ViT head"):
        create_colorizer("swinir-t", head="linear", image_size=32)


def test_stabilizer_starts_as_identity() -> None:
    model = create_colorizer("icolorit-t", head="linear", **SMALL).eval()
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        shuffled = tokens_to_image(model.head(model.backbone.forward_features(x)), model.grid_size, 8)
        torch.testing.assert_close(model(x), torch.tanh(shuffled))


def test_unknown_names_and_bad_sizes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="known: .*icolorit-t"):
        create_colorizer("icolorit-xl")
    with pytest.raises(ValueError, match="multiple of"):
        create_colorizer("icolorit-t", image_size=40, patch_size=16, depth=1)
    with pytest.raises(TypeError, match="not adaptive"):
        create_colorizer("icolorit-t", patch_groups=2, **SMALL)
    model = create_colorizer("icolorit-t", **SMALL)
    with pytest.raises(ValueError, match=r"expected input \(B, 4, 32, 32\)"):
        model(torch.randn(1, 3, 32, 32))


def test_any_timm_vit_can_be_the_backbone() -> None:
    model = create_colorizer("adacolvit-t", backbone="vit_small_patch16_224", **SMALL)
    assert model.backbone.embed_dim == 384 and model.adaptive
    assert model(torch.randn(1, 4, 32, 32)).shape == (1, 2, 32, 32)
    with pytest.raises(TypeError, match="VisionTransformer"):
        Colorizer(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("head", ["conv", "linear"])
def test_dense_gflops_match_fvcore(head: str) -> None:
    model = create_colorizer("icolorit-t", head=head, image_size=32, patch_size=8, depth=2).eval()
    counted = adaprune.fvcore_gflops(model, torch.randn(1, 4, 32, 32))
    assert colorizer_gflops(model, 3).shape == (3,)
    assert float(colorizer_gflops(model)[0]) == pytest.approx(counted, rel=1e-6)
    expected = 16 * 192 * 128 * 9 if head == "conv" else 16 * 192 * 128 + 32 * 32 * 2 * 2 * 9
    assert head_gflops(model) == pytest.approx(expected / 1e9)


def test_icolorit_t_at_224_counts_the_papers_gflops() -> None:
    """ViT-Tiny/16 at 224 px plus iColoriT's head: the paper's 1.43 GFLOPs for iColoriT-T."""
    model = create_colorizer("icolorit-t")
    assert head_gflops(model) == pytest.approx(196 * 192 * 512 * 9 / 1e9)
    assert float(colorizer_gflops(model)[0]) == pytest.approx(1.43, abs=0.005)


def test_adaptive_gflops_follow_the_decisions() -> None:
    model = create_colorizer("adacolvit-t", image_size=32, patch_size=8, depth=2).eval()
    dense = float(colorizer_gflops(create_colorizer("icolorit-t", image_size=32, patch_size=8, depth=2))[0])
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad(), adaprune.policy(model.backbone, "keep_all"):
        model(x)
        keep_all = colorizer_gflops(model)
    with torch.no_grad(), adaprune.policy(model.backbone, "drop_all"):
        model(x)
        drop_all = colorizer_gflops(model)
    assert keep_all.shape == (2,)
    assert dense < keep_all[0] < 1.1 * dense  # + the policy token (17 tokens instead of 16)
    assert (drop_all < 0.5 * keep_all).all()


def test_checkpoint_round_trip_rebuilds_the_same_model() -> None:
    model = create_colorizer("adacolvit-t", beta_patch=0.3, **SMALL).eval()
    state = colorizer_state(model)
    again = load_colorizer(state)
    assert again.spec == model.spec and again.spec.beta_patch == 0.3
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    with pytest.raises(ValueError, match="model_args"):
        load_colorizer({"model": {}})


def test_unreadable_checkpoints_are_value_errors_naming_the_file(tmp_path) -> None:
    model = create_colorizer("icolorit-t", **SMALL)
    good = tmp_path / "good.pt"
    torch.save(colorizer_state(model), good)
    whole = good.read_bytes()
    cases = {"random.pt": (bytes(range(256)) * 8, "not a PyTorch file"),
             "photo.pt": (b"\xff\xd8\xff\xe0" + bytes(100), "a JPEG image"),
             "truncated.pt": (whole[: len(whole) // 2], "truncated or damaged"),
             "empty.pt": (b"", "an empty file")}
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=f"checkpoint {tmp_path / name}.*{reason}") as error:
            load_colorizer(tmp_path / name)
        assert "weights_only" not in str(error.value)
    state = colorizer_state(model)
    state["model"].pop(next(iter(state["model"])))
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=f"checkpoint {tmp_path / 'other.pt'} does not rebuild a colorizer"):
        load_colorizer(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_colorizer(tmp_path / "missing.pt")


@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_restoration_colorizers_map_4_channels_to_ab(name: str) -> None:
    model = create_colorizer(name, image_size=32)
    assert isinstance(model, ImageColorizer) and not model.adaptive and model.image_size == (32, 32)
    ab = model(torch.randn(2, 4, 32, 32))
    assert ab.shape == (2, 2, 32, 32) and torch.isfinite(ab).all() and ab.abs().max() < 1.0
    with pytest.raises(ValueError, match=r"expected input \(B, 4, 32, 32\)"):
        model(torch.randn(1, 4, 48, 48))
    counted = adaprune.fvcore_gflops(model.network.eval(), torch.zeros(1, 4, 32, 32))
    assert colorizer_gflops(model, 3).tolist() == pytest.approx([counted] * 3)
    rebuilt = load_colorizer(colorizer_state(model))
    torch.testing.assert_close(rebuilt(torch.ones(1, 4, 32, 32)), model.eval()(torch.ones(1, 4, 32, 32)))


def test_baseline_losses_reach_their_gates() -> None:
    from adacolor.loss import colorization_loss

    for name in ("dynamicvit-t", "avit-t", "adavit-t"):
        model = create_colorizer(name, image_size=32, patch_size=8, depth=4).train()
        x, target = torch.randn(2, 4, 32, 32), torch.rand(2, 2, 32, 32) * 2 - 1
        terms = colorization_loss(model, model(x), target)
        assert "sparsity" in terms and terms["sparsity"].requires_grad, name
        terms["loss"].backward()


def test_resize_input_keeps_every_hint_with_its_colour() -> None:
    from adacolor.model import resize_input

    x = torch.zeros(1, 4, 64, 64)
    x[:, 0] = torch.linspace(-1, 1, 64)[None, :]        # L ramps left to right
    x[:, 1:3, 10:12, 20:22] = torch.tensor([0.3, -0.2])[:, None, None]
    x[:, 3, 10:12, 20:22] = 1.0                          # one 2x2 hint at 64 px
    small = resize_input(x, (32, 32))
    assert small.shape == (1, 4, 32, 32)
    assert float(small[0, 3].sum()) == 1.0 and float(small[0, 3, 5, 10]) == 1.0
    torch.testing.assert_close(small[0, 1:3, 5, 10], torch.tensor([0.3, -0.2]))
    assert float(small[0, 1:3].abs().sum()) == pytest.approx(0.5)   # no colour where there is no hint
    torch.testing.assert_close(small[0, 0].mean(), x[0, 0].mean())


def test_a_resized_colorizer_is_scored_at_the_outer_size() -> None:
    from adacolor.model import ResizedColorizer

    inner = create_colorizer("adacolvit-t", **SMALL).eval()          # 32 px
    model = ResizedColorizer(inner, 64).eval()
    with torch.no_grad():
        ab = model(torch.randn(2, 4, 64, 64))
    assert ab.shape == (2, 2, 64, 64) and model.image_size == (64, 64) and model.adaptive
    assert model.patch_size == 2 * inner.patch_size
    torch.testing.assert_close(colorizer_gflops(model, 2), colorizer_gflops(inner, 2))
    with pytest.raises(ValueError, match=r"expected input \(B, 4, 64, 64\)"):
        model(torch.randn(1, 4, 32, 32))
