"""adaprune: input-adaptive Vision Transformers that really skip the work their gates drop.

    >>> import timm, adaprune
    >>> vit = timm.create_model("vit_tiny_patch16_224", num_classes=0)
    >>> adaprune.wrap(vit, patch_groups=2, layer_skip=True)
    >>> feats = vit.forward_features(x); adaprune.last_record(vit).gflops
"""

from adaprune._patch import unwrap, wrap
from adaprune.config import AdaColViTConfig, TokenLayout, WrapInfo, is_wrapped, wrap_info
from adaprune.export import export_onnx
from adaprune.flops import fvcore_gflops, vit_gflops
from adaprune.gates import AdaColViT, BlockGate, decide, get_gate, list_gates, register_gate
from adaprune.losses import DEFAULT_SPREAD, budget_loss, sparsity_loss, spread_quantiles
from adaprune.policy import Policy, get_policy, policy, set_policy
from adaprune.record import BlockDecision, Record, last_record

__version__ = "0.1.0"

__all__ = [
    "AdaColViT",
    "DEFAULT_SPREAD",
    "AdaColViTConfig",
    "BlockDecision",
    "BlockGate",
    "Policy",
    "Record",
    "TokenLayout",
    "WrapInfo",
    "budget_loss",
    "decide",
    "export_onnx",
    "fvcore_gflops",
    "get_gate",
    "get_policy",
    "is_wrapped",
    "last_record",
    "list_gates",
    "policy",
    "register_gate",
    "set_policy",
    "sparsity_loss",
    "spread_quantiles",
    "unwrap",
    "vit_gflops",
    "wrap",
    "wrap_info",
]
