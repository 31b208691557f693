"""Colorizer: a timm ViT backbone and iColoriT's local stabilizing head, by registered name.

    >>> model = create_colorizer("adacolvit-t", image_size=224)
    >>> ab = model(model_input(l_norm, hint_ab, hint_mask))   # (B, 4, 224, 224) -> (B, 2, 224, 224)
    >>> colorizer_gflops(model)                                # (B,) per sample, from the decisions

Heads (``head=``):
- ``"conv"`` (default): iColoriT's local stabilizing layer as its code defines it (``CnnHead``,
  ``head_mode='cnn'``): the tokens laid out as their (h, w) grid, a 3x3 convolution with
  reflect padding from the embedding width to 2 * P * P values per token, pixel shuffle, tanh.
  Each patch's pixels are computed from its eight neighbours' tokens too, so colour can
  change smoothly across a patch border.
- ``"linear"``: the head the first models here shipped with: ``Linear(C, 2 * P * P)`` per token,
  pixel shuffle, then a 3x3 convolution on the two ab channels. A token paints its own patch
  alone, and the 2-channel convolution cannot see past the border: outputs are a mosaic of
  P-pixel squares. Kept to load those models and to compare.
"""

from __future__ import annotations

import importlib
import pickle
import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Optional, Union

import timm
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

import adaprune
from adaprune.config import AdaColViTConfig

__all__ = [
    "ColorizerSpec",
    "Colorizer",
    "ImageColorizer",
    "ResizedColorizer",
    "resize_input",
    "check_input",
    "register_colorizer",
    "list_colorizers",
    "get_spec",
    "create_colorizer",
    "HEADS",
    "tokens_to_image",
    "tokens_to_grid",
    "head_gflops",
    "colorizer_gflops",
    "colorizer_state",
    "read_checkpoint",
    "with_head",
    "load_colorizer",
]


@dataclass(frozen=True)
class ColorizerSpec:
    """What a registered colorizer name stands for.

    Attributes:
        name: the registry name, e.g. ``adacolvit-t``.
        backbone: a timm ViT name; its width, heads and patch size are used (None for a
            whole image-to-image ``network``).
        depth: blocks (None: the timm model's own).
        adaptive: wrap the backbone with an adaprune method.
        patch_groups: AdaColViT's gate options (``method="adacolvit"`` only).
        layer_skip: AdaColViT's gate options (``method="adacolvit"`` only).
        beta_patch: AdaColViT's target keep ratios for the sparsity loss.
        beta_layer: AdaColViT's target keep ratios for the sparsity loss.
        method: the adaprune method the backbone is wrapped with (``adaprune.list_gates()``).
        method_options: that method's options, as ``((key, value), ...)``.
        method_loss: for methods other than AdaColViT, the method's own training loss on the
            wrapped backbone (read from its record), added to the Huber loss; None: none.
        network: ``"module:factory"`` of a whole image-to-image network (SwinIR, Uformer) used
            instead of a ViT backbone and head: ``factory(**options)`` maps (B, 4, H, W) to
            normalised ab (B, 2, H, W). None for ViT colorizers.
    """

    name: str
    backbone: Optional[str] = None
    depth: Optional[int] = None
    adaptive: bool = False
    patch_groups: int = 2
    layer_skip: bool = True
    beta_patch: float = 0.5
    beta_layer: float = 0.8
    method: str = "adacolvit"
    method_options: tuple[tuple[str, Any], ...] = ()
    method_loss: Optional[Callable[[nn.Module], Tensor]] = None
    network: Optional[str] = None


_REGISTRY: dict[str, ColorizerSpec] = {}


def register_colorizer(spec: ColorizerSpec) -> ColorizerSpec:
    """Adds ``spec`` to the registry under ``spec.name`` (a second registration warns and wins)."""
    if spec.name in _REGISTRY:
        warnings.warn(f"colorizer {spec.name!r} registered twice; the last registration is used", stacklevel=2)
    _REGISTRY[spec.name] = spec
    return spec


def list_colorizers() -> list[str]:
    """Registered colorizer names, sorted."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> ColorizerSpec:
    """The spec of a registered name; ValueError listing the known names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown colorizer {name!r}; known: {', '.join(list_colorizers())}") from None


# iColoriT-T/S are ViT-Tiny/Small (192 / 3 heads, 384 / 6 heads), patch 16, 224 px, no class token.
for _size, _timm_name in (("t", "vit_tiny_patch16_224"), ("s", "vit_small_patch16_224")):
    for _depth in (12, 6, 24):
        _suffix = "" if _depth == 12 else f"-d{_depth}"
        register_colorizer(ColorizerSpec(f"icolorit-{_size}{_suffix}", _timm_name, _depth))
for _name, _timm_name, _depth in (("adacolvit-t", "vit_tiny_patch16_224", 12),
                                  ("adacolvit-t-d24", "vit_tiny_patch16_224", 24),
                                  ("adacolvit-s", "vit_small_patch16_224", 12)):
    register_colorizer(ColorizerSpec(_name, _timm_name, _depth, adaptive=True))


# The paper's Table 3 baselines: hard-removal ViT-Tiny colorizers, trained with their own
# budget losses toward about 84% of the dense compute (the paper compares them at ~1.2 of
# iColoriT-T's 1.43 GFLOPs). Their gates live in ``baselines`` (adaprune methods).
def _dynamicvit_loss(backbone: nn.Module) -> Tensor:
    from adaprune_baselines.dynamicvit import dynamicvit_loss
    return dynamicvit_loss(backbone)


def _avit_loss(backbone: nn.Module) -> Tensor:
    from adaprune_baselines.avit import distribution_prior_loss, ponder_loss
    depth = len(backbone.blocks)
    target = min(max(1.0, AVIT_TARGET_DEPTH_FRACTION * depth), depth - 1.0)
    return ponder_loss(backbone) + distribution_prior_loss(backbone, target_depth=target)


def _adavit_loss(backbone: nn.Module) -> Tensor:
    from adaprune_baselines.adavit import usage_loss
    return usage_loss(backbone, **ADAVIT_TARGETS)


DYNAMICVIT_KEEP_RATE = 0.87        # rho: 1.05 of 1.26 backbone GFLOPs at 224 px
AVIT_TARGET_DEPTH_FRACTION = 0.75  # prior's mean halting block: 9 (0-based) of 12, ~10 blocks per token
ADAVIT_TARGETS = dict(target_patch=0.9, target_head=0.9, target_block=1.0)
register_colorizer(ColorizerSpec("dynamicvit-t", "vit_tiny_patch16_224", 12, adaptive=True, method="dynamicvit",
                                 method_options=(("keep_rate", DYNAMICVIT_KEEP_RATE),),
                                 method_loss=_dynamicvit_loss))
register_colorizer(ColorizerSpec("avit-t", "vit_tiny_patch16_224", 12, adaptive=True, method="avit",
                                 method_loss=_avit_loss))
register_colorizer(ColorizerSpec("adavit-t", "vit_tiny_patch16_224", 12, adaptive=True, method="adavit",
                                 method_loss=_adavit_loss))

# The paper's restoration-transformer colorizers (Table 2, Figure 4), written in ``baselines``.
for _name, _factory in (("swinir-s", "adaprune_baselines.swinir:swinir_s"), ("swinir-t", "adaprune_baselines.swinir:swinir_t"),
                        ("uformer-s", "adaprune_baselines.uformer:uformer_s"), ("uformer-t", "adaprune_baselines.uformer:uformer_t")):
    register_colorizer(ColorizerSpec(_name, network=_factory))


def tokens_to_image(tokens: Tensor, grid: tuple[int, int], patch_size: int) -> Tensor:
    """Lays per-token pixel values out as an image (pixel shuffle).

    Args:
        tokens: (B, h * w, c * P * P), tokens in row-major grid order; the channels of a token
            are ordered (c, i, j): channel ``c * P * P + i * P + j`` is pixel (i, j) of channel c.
        grid: (h, w) tokens per column and row.
        patch_size: P.

    Returns:
        (B, c, h * P, w * P); token (r, s) fills pixels [r*P:(r+1)*P, s*P:(s+1)*P].
    """
    h, w = grid
    if tokens.shape[1] != h * w or tokens.shape[2] % (patch_size * patch_size):
        raise ValueError(f"tokens of shape {tuple(tokens.shape)} do not fit a {h}x{w} grid with "
                         f"patch size {patch_size}")
    return F.pixel_shuffle(tokens_to_grid(tokens, grid), patch_size)  # (B, c*P*P, h, w) -> image


def tokens_to_grid(tokens: Tensor, grid: tuple[int, int]) -> Tensor:
    """Lays tokens out as a feature map: (B, h * w, C) in row-major grid order -> (B, C, h, w)."""
    B, N, C = tokens.shape
    h, w = grid
    if N != h * w:
        raise ValueError(f"{N} tokens do not fit a {h}x{w} grid")
    return tokens.transpose(1, 2).reshape(B, C, h, w)


HEADS = ("conv", "linear")


def check_input(x: Tensor, size: tuple[int, int]) -> None:
    """Raises a ValueError unless x is (B, 4, H, W) at the model's (H, W)."""
    if x.ndim != 4 or x.shape[1] != 4 or tuple(x.shape[-2:]) != tuple(size):
        raise ValueError(f"expected input (B, 4, {size[0]}, {size[1]}) (L, hint ab, hint mask at the model's "
                         f"size), got {tuple(x.shape)}")


class Colorizer(nn.Module):
    """User-guided colorization ViT: (L, hint ab, hint mask) -> normalised ab.

    Args:
        backbone: a timm ``VisionTransformer`` with ``in_chans=4`` (adaprune-wrapped or not).
        spec: the registry entry it was built from (kept for the loss's betas); optional.
        head: ``"conv"`` (iColoriT's: 3x3 convolution over the token grid to 2 * P * P values
            per token) or ``"linear"`` (per-token Linear, then a 3x3 convolution on the two ab
            channels after pixel shuffle); see the module docstring.
    """

    def __init__(self, backbone: VisionTransformer, spec: Optional[ColorizerSpec] = None,
                 head: str = "conv") -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
        if not isinstance(backbone, VisionTransformer):
            raise TypeError(f"the backbone must be a timm VisionTransformer, got {type(backbone).__name__}")
        in_chans = backbone.patch_embed.proj.in_channels
        if in_chans != 4:
            raise ValueError(f"the backbone must take 4 input channels (L, hint a, hint b, hint mask), "
                             f"got in_chans={in_chans}")
        self.backbone = backbone
        self.spec = spec
        self.patch_size = int(backbone.patch_embed.patch_size[0])
        self.head_kind = head
        out_channels = 2 * self.patch_size ** 2
        self.stabilizer: Optional[nn.Conv2d] = None
        if head == "conv":
            # iColoriT's CnnHead: PyTorch's default Conv2d init, as in its code
            self.head: nn.Module = nn.Conv2d(backbone.embed_dim, out_channels, kernel_size=3, padding=1,
                                             padding_mode="reflect")
        else:
            self.head = nn.Linear(backbone.embed_dim, out_channels)
            self.stabilizer = nn.Conv2d(2, 2, kernel_size=3, padding=1, padding_mode="reflect")
            nn.init.xavier_uniform_(self.head.weight)
            nn.init.zeros_(self.head.bias)
            # identity at init: the stabilizer learns a correction on top of the shuffled pixels
            nn.init.dirac_(self.stabilizer.weight)
            nn.init.zeros_(self.stabilizer.bias)

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) the model takes."""
        return tuple(int(s) for s in self.backbone.patch_embed.img_size)

    @property
    def grid_size(self) -> tuple[int, int]:
        """(h, w) tokens."""
        return tuple(int(s) for s in self.backbone.patch_embed.grid_size)

    @property
    def adaptive(self) -> bool:
        """Whether the backbone is wrapped by adaprune."""
        return adaprune.is_wrapped(self.backbone)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, 4, H, W) = [L_norm, hint a, hint b, hint mask] -> ab_norm (B, 2, H, W) in (-1, 1)."""
        check_input(x, self.image_size)
        tokens = self.backbone.forward_features(x)[:, self.backbone.num_prefix_tokens:]  # (B, N, C)
        return torch.tanh(self.head_pixels(tokens))

    def head_pixels(self, tokens: Tensor) -> Tensor:
        """The head before tanh: patch tokens (B, h * w, C) -> ab logits (B, 2, H, W)."""
        if self.stabilizer is None:  # conv: 3x3 over the grid, then each token's P x P pixels in place
            return F.pixel_shuffle(self.head(tokens_to_grid(tokens, self.grid_size)), self.patch_size)
        return self.stabilizer(tokens_to_image(self.head(tokens), self.grid_size, self.patch_size))


class ImageColorizer(nn.Module):
    """A colorizer that is one image-to-image network (SwinIR, Uformer), not a ViT and a head.

    It keeps the interface the task uses (``image_size``, ``adaptive``, ``spec``): training,
    evaluation, colorizing and benchmarking treat it as any dense colorizer.

    Args:
        network: maps (B, 4, H, W) to normalised ab (B, 2, H, W) in (-1, 1).
        image_size: the square input size it is trained and evaluated at.
        spec: the registry entry it was built from.
    """

    adaptive = False

    def __init__(self, network: nn.Module, image_size: int, spec: Optional[ColorizerSpec] = None) -> None:
        super().__init__()
        self.network = network
        self.spec = spec
        self._size = int(image_size)

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) the model takes."""
        return self._size, self._size

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, 4, H, W) = [L_norm, hint a, hint b, hint mask] -> ab_norm (B, 2, H, W)."""
        check_input(x, self.image_size)
        return self.network(x)

    def gflops(self) -> float:
        """GFLOPs of one image, counted once by fvcore (attention matmuls included) and cached."""
        cached = self.__dict__.get("_gflops")
        if cached is None:
            reference = next(self.parameters())
            probe = torch.zeros(1, 4, *self.image_size, device=reference.device, dtype=reference.dtype)
            was_training = self.training
            cached = adaprune.fvcore_gflops(self.network.eval(), probe)
            self.network.train(was_training)
            self.__dict__["_gflops"] = cached
        return cached


def resize_input(x: Tensor, size: tuple[int, int]) -> Tensor:
    """A model input at another size: (B, 4, H, W) [L, hint a, hint b, mask] -> (B, 4, h, w).

    L is area-averaged (bilinear when enlarging). A hint survives where any of its pixels falls
    (max-pooled mask), with the mean colour of the hint pixels there, so a 2x2 hint at 224 px is
    one 1x1 hint at 112.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = x.shape[-2] >= size[0] and x.shape[-1] >= size[1]
    mode = "area" if shrink else "bilinear"
    l_norm, ab, mask = x[:, :1], x[:, 1:3], x[:, 3:]
    small_l = F.interpolate(l_norm, size=size, mode=mode)
    if shrink:
        small_mask = F.adaptive_max_pool2d(mask, size)
        weight = F.interpolate(mask, size=size, mode="area")
        small_ab = F.interpolate(ab * mask, size=size, mode="area") / weight.clamp_min(1e-8) * small_mask
    else:
        small_mask = F.interpolate(mask, size=size, mode="nearest")
        small_ab = F.interpolate(ab, size=size, mode="nearest") * small_mask
    return torch.cat([small_l, small_ab, small_mask], dim=1)


class ResizedColorizer(nn.Module):
    """A colorizer scored at another size: the input is resized to the model's (``resize_input``)
    and its ab resized back (bilinear), e.g. a 112-px model compared at 224 px.

    Args:
        model: the colorizer (ViT or image-to-image).
        image_size: the square size it is used at.
    """

    def __init__(self, model: nn.Module, image_size: int) -> None:
        super().__init__()
        self.inner = model
        self._size = int(image_size)

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) it takes and returns."""
        return self._size, self._size

    @property
    def spec(self) -> Optional[ColorizerSpec]:
        return self.inner.spec

    @property
    def adaptive(self) -> bool:
        return bool(self.inner.adaptive)

    @property
    def patch_size(self) -> int:
        """The inner model's patch, in this size's pixels (16 at 112 px is 32 at 224)."""
        inner = getattr(self.inner, "patch_size", 16)
        return max(1, round(inner * self._size / self.inner.image_size[0]))

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, 4, S, S) at this size -> ab_norm (B, 2, S, S)."""
        check_input(x, self.image_size)
        ab = self.inner(resize_input(x, self.inner.image_size))
        return F.interpolate(ab, size=self.image_size, mode="bilinear", align_corners=False).clamp(-1, 1)


def _build_network(spec: ColorizerSpec, image_size: int, overrides: dict[str, Any]) -> ImageColorizer:
    module_name, _, factory_name = spec.network.partition(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    try:
        network = factory(**overrides)
    except TypeError as error:
        raise TypeError(f"{spec.name} ({spec.network}) rejected the options {sorted(overrides)}: {error}") from error
    return ImageColorizer(network, image_size, spec)


_GATE_OPTIONS = {f.name for f in fields(AdaColViTConfig)}


def _gate_options(method: str) -> set[str]:
    """The option names of a registered adaprune method."""
    return {f.name for f in fields(adaprune.get_gate(method).config_class)}
_SPEC_OPTIONS = {"beta_patch", "beta_layer"}


def create_colorizer(name: str, image_size: int = 224, backbone: Optional[str] = None,
                     head: str = "conv", **overrides: Any) -> Colorizer:
    """Builds a registered colorizer, randomly initialised.

    Args:
        name: a registered name (``list_colorizers()``).
        image_size: input resolution (square); must be a multiple of the patch size.
        backbone: any timm VisionTransformer name to use instead of the registry's (its depth is
            then the timm model's unless ``depth`` is given).
        head: ``"conv"`` (iColoriT's local stabilizing layer) or ``"linear"`` (``HEADS``; ViT
            colorizers only).
        **overrides: ``patch_groups``, ``layer_skip``, ``temperature``, ``init_keep_logit``
            (gate options, adaptive models), ``beta_patch``, ``beta_layer`` (loss targets), and
            anything else goes to ``timm.create_model`` (``patch_size``, ``depth``,
            ``embed_dim``, ``num_heads``, ``drop_path_rate`` ...).

    Raises:
        ValueError: unknown name, or an image size that the patch size does not divide.
        TypeError: an override neither the gates nor timm accept.
    """
    spec = get_spec(name)
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    if spec.network is not None:
        if backbone is not None:
            raise TypeError(f"{name} is a whole image-to-image network; it takes no ViT backbone")
        if head != "conv":
            raise TypeError(f"{name} is a whole image-to-image network; it has no ViT head to choose")
        model = _build_network(spec, image_size, overrides)
        model.build_args = dict(name=name, image_size=image_size, **overrides)
        return model
    known_gate_options = _gate_options(spec.method) if spec.adaptive else _GATE_OPTIONS
    gate_options = {k: overrides.pop(k) for k in list(overrides) if k in known_gate_options}
    spec_options = {k: overrides.pop(k) for k in list(overrides) if k in _SPEC_OPTIONS}
    if spec.method == "adacolvit" and ("patch_groups" in gate_options or "layer_skip" in gate_options):
        spec_options.update({k: gate_options[k] for k in ("patch_groups", "layer_skip") if k in gate_options})
    if gate_options and not spec.adaptive:
        raise TypeError(f"{name} is not adaptive; gate option(s) {', '.join(sorted(gate_options))} apply only "
                        f"to: {', '.join(n for n in list_colorizers() if _REGISTRY[n].adaptive)}")
    if backbone is not None:
        spec = replace(spec, backbone=backbone, depth=overrides.get("depth"))
    spec = replace(spec, **spec_options)
    timm_kwargs: dict[str, Any] = dict(pretrained=False, in_chans=4, num_classes=0, class_token=False,
                                       global_pool="", img_size=image_size)
    if spec.depth is not None:
        timm_kwargs["depth"] = spec.depth
    timm_kwargs.update(overrides)
    if "depth" in overrides:
        spec = replace(spec, depth=overrides["depth"])
    patch = timm_kwargs.get("patch_size")
    if patch is not None and image_size % patch:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch}")
    try:
        vit = timm.create_model(spec.backbone, **timm_kwargs)
    except TypeError as error:
        raise TypeError(f"timm model {spec.backbone!r} rejected the options "
                        f"{sorted(k for k in timm_kwargs if k != 'pretrained')}: {error}") from error
    except RuntimeError as error:  # timm: unknown model name
        raise ValueError(f"backbone {spec.backbone!r}: {error}") from error
    if not isinstance(vit, VisionTransformer):
        raise TypeError(f"backbone {spec.backbone!r} is a {type(vit).__name__}; a timm VisionTransformer "
                        f"(vit_*, deit_*, ...) is needed")
    if image_size % vit.patch_embed.patch_size[0]:
        raise ValueError(f"image_size {image_size} is not a multiple of the patch size "
                         f"{vit.patch_embed.patch_size[0]} of {spec.backbone}")
    if spec.adaptive and spec.method == "adacolvit":
        adaprune.wrap(vit, patch_groups=spec.patch_groups, layer_skip=spec.layer_skip,
                      **{k: v for k, v in gate_options.items() if k not in ("patch_groups", "layer_skip")})
    elif spec.adaptive:
        adaprune.wrap(vit, method=spec.method, **{**dict(spec.method_options), **gate_options})
    model = Colorizer(vit, spec, head=head)
    model.build_args = dict(name=name, image_size=image_size, backbone=backbone, head=head,
                            **gate_options, **{k: v for k, v in spec_options.items() if k in _SPEC_OPTIONS},
                            **overrides)
    return model


def head_gflops(model: Colorizer) -> float:
    """GFLOPs of the head for one image, in multiply-adds (fvcore's convention: biases, pixel
    shuffle and tanh are not counted).

    ``conv``: the 3x3 convolution over the token grid, N * C * 2P^2 * 9 (iColoriT-T at 224 px:
    196 * 192 * 512 * 9 = 0.173 GFLOPs, which with ViT-Tiny's 1.26 makes the paper's 1.43).
    ``linear``: the token Linear (N * C * 2P^2) and the 2-channel 3x3 stabilizer (H * W * 2 * 2 * 9).
    """
    (h, w), (H, W) = model.grid_size, model.image_size
    if model.stabilizer is None:
        conv = model.head
        return h * w * conv.in_channels * conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1] / 1e9
    linear = h * w * model.head.in_features * model.head.out_features
    conv = H * W * model.stabilizer.out_channels * model.stabilizer.in_channels * 9
    return (linear + conv) / 1e9


def colorizer_gflops(model: Union[Colorizer, ImageColorizer], batch_size: int = 1) -> Tensor:
    """(B,) GFLOPs per sample of the whole colorizer: backbone plus head (``head_gflops``).

    Image-to-image networks (SwinIR, Uformer): fvcore's count of one image, repeated.
    Wrapped backbone: what the last forward actually spent per sample (adaprune's record,
    which counts the gates, the policy token and the work the decisions left; B is that
    forward's batch). Dense backbone: ``adaprune.vit_gflops`` (patch embedding, blocks with
    attention matmuls, norms), repeated ``batch_size`` times. One multiply-add is one FLOP.

    Raises:
        RuntimeError: a wrapped model that has not run a forward yet.
    """
    if isinstance(model, ResizedColorizer):
        return colorizer_gflops(model.inner, batch_size)
    if hasattr(model, "spent_gflops"):  # an exported graph on a runtime (adacolor.exported) counts its own
        return model.spent_gflops()
    if isinstance(model, ImageColorizer):
        return torch.full((batch_size,), model.gflops())
    head = head_gflops(model)
    if model.adaptive:
        return adaprune.last_record(model.backbone).gflops.detach().float().cpu() + head
    return torch.full((batch_size,), adaprune.vit_gflops(model.backbone) + head)


def colorizer_state(model: Colorizer) -> dict[str, Any]:
    """``{"model_args": ..., "model": state_dict}``: enough for ``load_colorizer``."""
    args = getattr(model, "build_args", None)
    if args is None:
        raise ValueError("this Colorizer was not made by create_colorizer, so it cannot be rebuilt "
                         "from a checkpoint; build it with create_colorizer(name, ...)")
    return {"model_args": dict(args), "model": model.state_dict()}


_FILE_KINDS = ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"GIF8", "a GIF image"),
               (b"RIFF", "a RIFF file (WebP, WAV...)"), (b"%PDF", "a PDF document"))


def read_checkpoint(path: Union[str, Path], map_location: str = "cpu") -> dict[str, Any]:
    """A checkpoint's dict, read with ``torch.load(weights_only=True)`` (tensors and plain
    containers only, so a file cannot run code).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: naming the file and what is wrong with it (empty, truncated, an image, not
            a torch file, not a dict).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `adacolor train --out DIR` "
                                f"(it writes DIR/checkpoint.pt)")
    accepted = "expected a checkpoint.pt written by `adacolor train`"
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is an empty file; {accepted}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for a bad file
        with open(path, "rb") as f:
            head = f.read(8)
        kind = next((name for magic, name in _FILE_KINDS if head.startswith(magic)), None)
        if kind is not None:
            reason = f"it is {kind}"
        elif head.startswith(b"PK"):
            reason = "its zip archive is truncated or damaged"
        elif isinstance(error, pickle.UnpicklingError) and "Unsupported global" in str(error):
            reason = "it holds Python objects other than tensors and plain containers, which are never loaded"
        else:
            reason = f"it is not a PyTorch file ({type(error).__name__})"
        raise ValueError(f"checkpoint {path} cannot be read: {reason}; {accepted}") from None
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, not a dict; {accepted}")
    return state


def with_head(model_args: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """``model_args`` with the ``head`` its weights were trained with.

    Checkpoints written before heads were selectable name none; theirs is ``"linear"``, which
    their weights show (a ``stabilizer`` convolution). Arguments that name a head, and
    image-to-image networks, are returned as they are.
    """
    if "head" in model_args or get_spec(model_args.get("name", "")).network is not None:
        return dict(model_args)
    return {**model_args, "head": "linear" if "stabilizer.weight" in state else "conv"}


def load_colorizer(checkpoint: Union[str, Path, dict[str, Any]], map_location: str = "cpu") -> Colorizer:
    """Rebuilds a colorizer from a checkpoint (a path, or the loaded dict) written by training.

    Returns the model in eval mode.

    Raises:
        FileNotFoundError: no file at the path.
        ValueError: naming the file: not a readable checkpoint (``read_checkpoint``), or not a
            colorizer's (no model, or weights that do not fit it).
    """
    where = "the checkpoint" if isinstance(checkpoint, dict) else f"checkpoint {checkpoint}"
    state = checkpoint if isinstance(checkpoint, dict) else read_checkpoint(checkpoint, map_location)
    if "model_args" not in state or "model" not in state:
        raise ValueError(f"{where} is not a colorizer checkpoint: it needs 'model_args' and 'model', "
                         f"has {sorted(map(str, state))}")
    try:
        args = with_head(dict(state["model_args"]), state["model"])
        model = create_colorizer(args.pop("name"), **args)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{where} does not rebuild a colorizer: {first}") from None
    return model.eval()
