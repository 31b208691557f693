"""Gates: per-block decision networks. Importing this package registers the built-in methods."""

from adaprune.gates._registry import get_gate, list_gates, register_gate
from adaprune.gates.adacolvit import AdaColViT
from adaprune.gates.base import BlockGate, decide
from adaprune.gates.grouped_patch import GroupedPatchGate
from adaprune.gates.layer_skip import LayerSkipGate, PolicyToken
from adaprune.gates.token_removal import block_forward, gathered_block

__all__ = [
    "AdaColViT", "BlockGate", "GroupedPatchGate", "LayerSkipGate", "PolicyToken",
    "block_forward", "decide", "gathered_block", "get_gate", "list_gates", "register_gate",
]
