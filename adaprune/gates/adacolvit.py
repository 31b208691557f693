"""AdaColViT (WACV 2024): grouped patch selection plus attention / FFN skip, per block."""

from __future__ import annotations

import functools
from typing import Callable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm, LayerScale
from timm.layers.activations import QuickGELU
from torch import Tensor, nn

from adaprune.config import AdaColViTConfig, TokenLayout
from adaprune.flops import attention_flops, layer_norm_flops, mlp_flops
from adaprune.gates._registry import register_gate
from adaprune.gates.base import BlockGate, decide
from adaprune.gates.grouped_patch import (
    DerivedCache,
    GroupedPatchGate,
    InferenceWeights,
    attention_inference,
    inference_weights,
    is_plain_attention,
    is_plain_mlp,
    mlp_inference,
    parameter_key,
)
from adaprune.gates.layer_skip import LayerSkipGate, PolicyToken
from adaprune.ops import (
    ACTIVATIONS,
    POLICY_CODES,
    grouped_sublayer_graph,
    grouped_sublayer_one,
    prefixed_kept_index,
    random_keep,
    read_only_mask,
    scripted,
)
from adaprune.policy import Policy
from adaprune.record import BlockDecision

__all__ = ["AdaColViT", "adacolvit_block_graph", "adacolvit_block_one"]

# what the one-sample kernel computes from parameters: norms, layer scales, activations
_NORMS = (nn.LayerNorm, LayerNorm)
_SCALES = (nn.Identity, LayerScale)
_ACTIVATIONS = {(nn.GELU, "none"): ACTIVATIONS.index("gelu"), (nn.GELU, "tanh"): ACTIVATIONS.index("gelu_tanh"),
                (nn.ReLU, None): ACTIVATIONS.index("relu"), (nn.SiLU, None): ACTIVATIONS.index("silu"),
                (QuickGELU, None): ACTIVATIONS.index("quick_gelu")}


def adacolvit_block_one(
        x: Tensor,
        policy: int,
        patch_keep: float,
        layer_keep: float,
        layer_weight: Optional[Tensor],
        layer_bias: Optional[Tensor],
        grouped: bool,
        norm1_weight: Optional[Tensor],
        norm1_bias: Optional[Tensor],
        norm1_eps: float,
        gamma1: Optional[Tensor],
        decision1_weight: Optional[Tensor],
        decision1_bias: Optional[Tensor],
        norm2_weight: Optional[Tensor],
        norm2_bias: Optional[Tensor],
        norm2_eps: float,
        gamma2: Optional[Tensor],
        decision2_weight: Optional[Tensor],
        decision2_bias: Optional[Tensor],
        prefix: Tensor,
        num_read_only: int,
        groups: int,
        heads: int,
        group_dim: int,
        act: int,
        qkv: Tensor,
        qkv_bias: Optional[Tensor],
        proj: Tensor,
        proj_bias: Optional[Tensor],
        fc1: Tensor,
        fc1_bias: Optional[Tensor],
        fc2: Tensor,
        fc2_bias: Optional[Tensor],
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """One AdaColViT block on one sample at inference, in one call (compiled with
    ``adaprune.ops.scripted``): the layer decisions from the policy token, then each sub-layer
    that runs (``adaprune.ops.grouped_sublayer_one``). Random draws come in the training
    path's order, so that both decide alike under a seed.

    The arguments after ``x``: the policy (``policy`` as ``adaprune.ops.POLICY_CODES``,
    ``patch_keep``, ``layer_keep``); the layer-skip decision layer (``layer_weight`` (2, C) and
    ``layer_bias``, None without layer skip); ``grouped``, whether the block makes patch
    decisions (G > 1); per sub-layer (1: attention, 2: FFN) its LayerNorm, LayerScale gamma
    (or None) and patch decision layer (1, C); then ``prefix`` ... ``act`` as
    ``grouped_sublayer_one`` takes them, and the block's ``InferenceWeights`` tensors.

    Args:
        x: (1, N, C) tokens, policy token first.

    Returns:
        The new x, the (1, 2) sub-layers run and the (1, 2, Np) bool patch keep masks (None
        without patch decisions).
    """
    n = int(x.shape[1]) - int(prefix.shape[0])  # plain ints, also under jit tracing
    if layer_weight is None or policy == 1:
        run = torch.ones(1, 2, dtype=x.dtype, device=x.device)
    elif policy == 0:
        run = (F.linear(x[:, 0], layer_weight, layer_bias) > 0).to(x.dtype)
    elif policy == 2:
        run = torch.zeros(1, 2, dtype=x.dtype, device=x.device)
    else:
        run = torch.bernoulli(torch.full([1, 2], layer_keep, dtype=x.dtype, device=x.device))
    decided: List[List[float]] = run.tolist()  # one read of the decisions on the host
    ran = decided[0]
    masks: Optional[Tensor] = None
    if grouped:
        masks = torch.zeros(1, 2, n, dtype=torch.bool, device=x.device)
    scores: Optional[Tensor] = None
    if grouped and policy == 3 and int(round(patch_keep * n)) > 0:
        # both sub-layers' draws at once: the numbers the training path draws one after the
        # other, a skipped sub-layer's included (a draw whose result went unused would be
        # dropped by the compiler)
        scores = torch.rand(2, n, device=x.device)
    for which in range(2):
        keep_out: Optional[Tensor] = None
        if masks is not None:
            keep_out = masks[:, which]
        if ran[which] <= 0.5:
            continue
        row: Optional[Tensor] = None
        if scores is not None:
            row = scores[which:which + 1]
        if which == 0:
            x = grouped_sublayer_one(x, True, norm1_weight, norm1_bias, norm1_eps, gamma1, policy, patch_keep,
                                     decision1_weight, decision1_bias, row, keep_out, prefix, num_read_only, groups,
                                     heads, group_dim, act, qkv, qkv_bias, proj, proj_bias)
        else:
            x = grouped_sublayer_one(x, False, norm2_weight, norm2_bias, norm2_eps, gamma2, policy, patch_keep,
                                     decision2_weight, decision2_bias, row, keep_out, prefix, num_read_only, groups,
                                     heads, group_dim, act, fc1, fc1_bias, fc2, fc2_bias)
    return x, run, masks


def adacolvit_block_graph(x: Tensor, args: tuple) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """``adacolvit_block_one`` with learned decisions, written for ``torch.export``: a
    sub-layer that may be skipped is a ``torch.cond`` on its decision (an ONNX ``If``), and
    each sub-layer selects its kept tokens in the graph (``adaprune.ops.grouped_sublayer_graph``).
    Nothing is read on the host, so the exported graph decides per image as eager eval does.

    Args:
        x: (1, N, C) tokens, policy token first.
        args: ``adacolvit_block_one``'s arguments after the three policy ones, as
            ``AdaColViT._one_args`` gives them.

    Returns:
        The new x, the (1, 2) sub-layers run (0/1 in x's dtype) and the (1, 2, Np) bool patch
        keep masks (False where a sub-layer is skipped; None without patch decisions).
    """
    layer_weight, layer_bias, grouped = args[:3]
    gatings = (args[3:9], args[9:15])
    prefix = args[15]
    layout = args[15:21]
    weights = (args[21:25], args[25:29])
    n = int(x.shape[1]) - int(prefix.shape[0])
    if layer_weight is None:
        run = torch.ones(1, 2, dtype=x.dtype, device=x.device)
    else:
        run = (F.linear(x[:, 0], layer_weight, layer_bias) > 0).to(x.dtype)
    masks = []
    for which in range(2):
        gating = gatings[which] if grouped else (*gatings[which][:4], None, None)

        def computed(x: Tensor, which: int = which, gating: tuple = gating) -> tuple[Tensor, ...]:
            x, keep = grouped_sublayer_graph(x, which == 0, gating, layout, weights[which])
            return (x,) if keep is None else (x, keep)

        def skipped(x: Tensor) -> tuple[Tensor, ...]:
            return (x.clone(),) if not grouped else (x.clone(), torch.zeros(1, n, dtype=torch.bool, device=x.device))

        out = computed(x) if layer_weight is None else torch.cond(run[0, which] > 0.5, computed, skipped, (x,))
        x = out[0]
        if grouped:
            masks.append(out[1])
    return x, run, torch.stack(masks, dim=1) if grouped else None


@register_gate("adacolvit")
class AdaColViT(BlockGate):
    """AdaColViT's gates for one block.

    In ``train()`` decisions are Gumbel-sigmoid samples with straight-through hard values and
    the work is masked (everything computed, so gradients reach every decision layer); in
    ``eval()`` decisions are ``sigmoid > 0.5`` and the dropped work is not done.
    """

    config_class = AdaColViTConfig
    num_method_tokens = 1  # the policy token

    def __init__(self, block: nn.Module, config: AdaColViTConfig, layout: TokenLayout, index: int = 0,
                 depth: int = 1) -> None:
        super().__init__(block, config, layout, index, depth)
        dim = block.norm1.normalized_shape[0] if hasattr(block.norm1, "normalized_shape") else block.attn.qkv.in_features
        self.config = config
        self.patch = GroupedPatchGate(dim, config.patch_groups, config.init_keep_logit) if config.patch_groups > 1 else None
        self.layer = LayerSkipGate(dim, config.init_keep_logit) if config.layer_skip else None
        attn = block.attn
        self._dims = (dim, attn.num_heads * attn.head_dim, block.mlp.fc1.out_features)
        self._plain_attention = is_plain_attention(attn)
        # eval runs plain blocks from split, transposed weight copies (grouped_patch.InferenceWeights)
        self._plain = self._plain_attention and is_plain_mlp(block.mlp)
        self._eval = DerivedCache()  # (InferenceWeights, adacolvit_block_one's arguments or ())

    @classmethod
    def check(cls, block: nn.Module, config: AdaColViTConfig) -> None:
        if config.patch_groups > 1:
            GroupedPatchGate.check(block, config.patch_groups)

    @classmethod
    def make_method_tokens(cls, embed_dim: int, config: AdaColViTConfig) -> Optional[nn.Module]:
        return PolicyToken(embed_dim)

    def prepare_inference(self, block: nn.Module, x: Tensor,
                          policy: Policy) -> Optional[Callable[[Tensor], tuple[Tensor, BlockDecision]]]:
        """At batch 1, on a block the one-sample kernel covers: one compiled call
        (``adacolvit_block_one``); otherwise None."""
        if self.training or x.shape[0] != 1 or not self._plain:
            return None
        args = self._eval_state(block)[1]
        if not args:
            return None
        cost = functools.partial(self._gflops, x.shape[1], policy.mode == "learned")
        if torch.compiler.is_exporting():  # decisions as graph control flow (adaprune.export)
            if policy.mode != "learned":
                raise ValueError(f"an exported model decides with the learned policy, not {policy.mode!r}; "
                                 f"export outside adaprune.policy(...)")

            def graph_step(x: Tensor) -> tuple[Tensor, BlockDecision]:
                x, run, masks = adacolvit_block_graph(x, args)
                return x, BlockDecision(run, masks, cost)

            return graph_step
        # eager while traced, so that tracers (fvcore) see the kernel's ops
        kernel = adacolvit_block_one if torch.jit.is_tracing() else scripted(adacolvit_block_one)
        head = (POLICY_CODES[policy.mode], policy.patch_keep, policy.layer_keep)

        def step(x: Tensor) -> tuple[Tensor, BlockDecision]:
            x, run, masks = kernel(x, *head, *args)
            return x, BlockDecision(run, masks, cost)

        return step

    def export_blocker(self, block: nn.Module) -> Optional[str]:
        if self._plain and self._eval_state(block)[1]:
            return None
        return (f"block {self.index} has parts the exported kernel does not compute (supported: timm's Attention "
                f"without q/k norm, Mlp with GELU / ReLU / SiLU / QuickGELU, LayerNorm, LayerScale)")

    def forward(self, block: nn.Module, x: Tensor, policy: Policy,
                previous: Optional[BlockDecision] = None) -> tuple[Tensor, BlockDecision]:
        step = self.prepare_inference(block, x, policy)
        if step is not None:  # at batch 1, one compiled call
            return step(x)
        B = x.shape[0]
        temperature = self.config.temperature
        if self.layer is not None:
            run = decide(lambda: self.layer(x[:, 0]), B, 2, x, policy, "layer", self.training, temperature)
        else:
            run = x.new_ones(B, 2)
        if self.training:
            x, mask_attn = self._masked(0, block, x, run[:, 0], policy)
            x, mask_mlp = self._masked(1, block, x, run[:, 1], policy)
            masks = None if self.patch is None else torch.stack([mask_attn, mask_mlp], dim=1)
        else:  # the run decisions are read on the host once per block (one small copy)
            ran = [[r > 0.5 for r in sample] for sample in run.tolist()]
            weights = self._eval_state(block)[0]
            # the sub-layers write their decisions into one buffer: no stack, no cast per block
            masks = None if self.patch is None else torch.zeros(B, 2, x.shape[1] - self.layout.num_prefix,
                                                                dtype=torch.bool, device=x.device)
            x = self._gathered(0, block, x, [r[0] for r in ran], policy, weights, masks)
            x = self._gathered(1, block, x, [r[1] for r in ran], policy, weights, masks)
        cost = functools.partial(self._gflops, x.shape[1], policy.mode == "learned")
        return x, BlockDecision(run, masks, cost)

    def _eval_state(self, block: nn.Module) -> tuple[Optional[InferenceWeights], tuple]:
        """The block's ``InferenceWeights`` and ``adacolvit_block_one``'s arguments after the
        policy (() where the kernel does not cover the block), built from the current
        parameters; cached while none of them changes and no gradient is asked for."""
        if not self._plain:
            return None, ()
        if torch.compiler.is_exporting() and self._eval.key is not None:
            # parameters are fake while torch.export traces: the copies made by the eager forward
            # that adaprune.export_onnx runs first go into the graph as constants
            return self._eval.value
        b = block._modules
        attn, mlp = b["attn"], b["mlp"]
        modules = [attn._modules[k] for k in ("qkv", "proj", "q_norm", "k_norm")]
        modules += [mlp._modules["fc1"], mlp._modules["fc2"], b["norm1"], b["ls1"], b["norm2"], b["ls2"]]
        modules += [m for m in (self.patch, self.layer) if m is not None]
        key = parameter_key(modules)
        if not torch.is_grad_enabled() and key == self._eval.key:
            return self._eval.value
        weights = inference_weights(attn, mlp, self.config.patch_groups)
        state = (weights, self._one_args(block, weights))
        if not torch.is_grad_enabled():  # copies that would hide a gradient are never kept
            self._eval.key, self._eval.value = key, state
        return state

    def _one_args(self, block: nn.Module, w: InferenceWeights) -> tuple:
        """``adacolvit_block_one``'s arguments after the policy, or () where the block has
        norms, layer scales, q/k norms or an activation that the kernel does not compute."""
        act = getattr(block.mlp.act, "approximate", None)
        code = _ACTIVATIONS.get((type(block.mlp.act), act))
        parts = (block.norm1, block.ls1, block.norm2, block.ls2)
        if (code is None or type(parts[0]) not in _NORMS or type(parts[2]) not in _NORMS
                or type(parts[1]) not in _SCALES or type(parts[3]) not in _SCALES
                or not isinstance(block.attn.q_norm, nn.Identity) or not isinstance(block.attn.k_norm, nn.Identity)):
            return ()
        per_sublayer = []
        for which, (norm, scale) in enumerate(((parts[0], parts[1]), (parts[2], parts[3]))):
            decision = None if self.patch is None else (self.patch.attn_logits, self.patch.mlp_logits)[which]
            per_sublayer += [norm.weight, norm.bias, norm.eps, None if type(scale) is nn.Identity else scale.gamma,
                             None if decision is None else decision.weight, None if decision is None else decision.bias]
        layer = (None, None) if self.layer is None else (self.layer.proj.weight, self.layer.proj.bias)
        prefix = torch.arange(self.layout.num_prefix, device=w.qkv.device)
        return (*layer, self.patch is not None, *per_sublayer, prefix, self.layout.num_method_tokens, w.groups,
                w.heads, w.group_dim, code, w.qkv, w.qkv_bias, w.proj, w.proj_bias, w.fc1, w.fc1_bias, w.fc2,
                w.fc2_bias)

    @staticmethod
    def _parts(which: int, block: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        """(norm, attention or FFN, layer scale, drop path) of sub-layer ``which`` (0 or 1)."""
        if which == 0:
            return block.norm1, block.attn, block.ls1, block.drop_path1
        return block.norm2, block.mlp, block.ls2, block.drop_path2

    def _drawn(self, x: Tensor, policy: Policy, out: Optional[Tensor] = None) -> Optional[Tensor]:
        """(B, Np) patch decisions of a control policy, drawn for the whole batch first so that
        train and eval use the same random numbers; None for the learned policy. Float 0/1 in
        training; in eval bool, written into ``out`` (B, Np), zeros on entry."""
        if self.patch is None or policy.mode == "learned":
            return None
        B, N, _ = x.shape
        n = N - self.layout.num_prefix
        if self.training:
            return decide(None, B, n, x, policy, "patch", True, self.config.temperature)
        if policy.mode == "random":
            return random_keep(B, n, policy.patch_keep, x.device, torch.bool, out=out)
        return out.fill_(1) if policy.mode == "keep_all" else out

    def _masked(self, which: int, block: nn.Module, x: Tensor, run: Tensor,
                policy: Policy) -> tuple[Tensor, Optional[Tensor]]:
        """Training: sub-layer ``which`` for every sample and token, the dropped work multiplied
        by 0 (so gradients reach every decision). Returns the new x and the (B, Np) patch keep
        mask (None without token decisions)."""
        norm, fn, scale, drop_path = self._parts(which, block)
        B = x.shape[0]
        P = self.layout.num_prefix
        drawn = self._drawn(x, policy)
        h = norm(x)
        keep = drawn if drawn is not None or self.patch is None else self._learned(which, h, policy)
        if keep is None:
            y = self._dense(which, fn, h)
        else:
            full = torch.cat([keep.new_ones(B, P), keep], dim=1)
            y = (self.patch.attention_masked(fn, h, full, self.layout.num_method_tokens) if which == 0
                 else self.patch.mlp_masked(fn, h, full))
        x = x + run[:, None, None] * drop_path(scale(y))
        return x, None if keep is None else keep * run[:, None]

    def _gathered(self, which: int, block: nn.Module, x: Tensor, ran: list[bool], policy: Policy,
                  weights: Optional[InferenceWeights], masks: Optional[Tensor]) -> Tensor:
        """Eval: sub-layer ``which`` for the samples that run it (``ran``), groups 2..G for the
        kept tokens only; returns the new x. The patch decisions go into ``masks[:, which]``
        (bool, False for samples that skip the sub-layer).

        At batch 1 each tensor op costs microseconds of dispatch, as much as some of the
        arithmetic a gate saves, so decisions go straight from logits or draws to positions:
        no float masks, no checks on the device."""
        norm, fn, scale, _ = self._parts(which, block)  # drop path is the identity in eval
        B = x.shape[0]
        P = self.layout.num_prefix
        out = None if masks is None else masks[:, which]
        drawn = self._drawn(x, policy, out)
        running = sum(ran)
        if running == 0:
            if drawn is not None:
                out.fill_(0)
            return x
        rows = None
        if running < B:
            rows = torch.tensor([i for i, r in enumerate(ran) if r], device=x.device)
            if drawn is not None:  # drawn for every sample (same random numbers as training)
                drawn = drawn.index_select(0, rows)
                out.fill_(0).index_copy_(0, rows, drawn)
        h = norm(x if rows is None else x.index_select(0, rows))
        keep = drawn
        if keep is None and self.patch is not None:
            logits = (self.patch.attn_logits if which == 0 else self.patch.mlp_logits)(h[:, P:]).squeeze(-1)
            if rows is None:
                keep = torch.gt(logits, 0, out=out)  # sigmoid > 0.5
            else:
                keep = logits > 0
                out.index_copy_(0, rows, keep)
        if weights is None:  # a block the inference kernels do not cover: its own modules
            y = self._dense(which, fn, h)
        else:
            index, valid = ((None, None) if keep is None or policy.mode == "keep_all"
                            else prefixed_kept_index(keep, P))
            y = (attention_inference(h, weights, index, valid, self.layout.num_method_tokens) if which == 0
                 else mlp_inference(h, weights, index, valid))
        if not isinstance(scale, nn.Identity):
            y = scale(y)
        return x + y if rows is None else x.index_add(0, rows, y)

    def _dense(self, which: int, fn: nn.Module, h: Tensor) -> Tensor:
        """The block's own attention / FFN module; the policy token reads but is not read (a
        mask hides it from the keys)."""
        if which == 1:
            return fn(h)
        return fn(h, attn_mask=read_only_mask(h.shape[1], self.layout.num_method_tokens, h.device))

    def _learned(self, which: int, h: Tensor, policy: Policy) -> Tensor:
        """Token keep decisions (B, Np) of the decision layer of sub-layer ``which``."""
        P = self.layout.num_prefix
        logits = self.patch.attn_logits if which == 0 else self.patch.mlp_logits
        return decide(lambda: logits(h[:, P:]).squeeze(-1), h.shape[0], h.shape[1] - P, h, policy, "patch",
                      self.training, self.config.temperature)

    def _gflops(self, n: int, learned: bool, kept: Optional[Tensor], run: Tensor) -> Tensor:
        """(B,) GFLOPs of this block per sample: ``kept`` (B, 2) patch tokens at full width per
        sub-layer (None: all), ``run`` (B, 2) sub-layers run."""
        dim, attn_dim, hidden = self._dims
        P = self.layout.num_prefix
        groups = self.config.patch_groups
        full = run.new_full(run.shape, float(n)) if kept is None else P + kept
        gate = (n - P) * dim if (self.patch is not None and learned) else 0
        attn = (attention_flops(n, full[:, 0], dim, attn_dim, groups, self.layout.num_method_tokens)
                + layer_norm_flops(n, dim) + gate)
        mlp = mlp_flops(n, full[:, 1], dim, hidden, groups) + layer_norm_flops(n, dim) + gate
        total = run[:, 0] * attn + run[:, 1] * mlp
        if self.layer is not None and learned:
            total = total + 2 * dim
        return total / 1e9
