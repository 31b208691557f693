"""Draws the figures of the docs from adaprune's own FLOPs functions.

    python docs/figures/make_figures.py      # writes docs/figures/*.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import timm  # noqa: E402

from adaprune.flops import attention_flops, layer_norm_flops, mlp_flops, vit_gflops  # noqa: E402

HERE = Path(__file__).parent


def gflops_at(vit, groups: int, patch_keep: float, layer_keep: float) -> float:
    """Analytic GFLOPs of the wrapped model (policy token included, no decision layers)."""
    n = vit.patch_embed.num_patches + vit.num_prefix_tokens + 1
    dim = vit.embed_dim
    kept = 1 + vit.num_prefix_tokens + patch_keep * vit.patch_embed.num_patches
    block = vit.blocks[0]
    attn = attention_flops(n, kept, dim, dim, groups) + layer_norm_flops(n, dim)
    mlp = mlp_flops(n, kept, dim, block.mlp.fc1.out_features, groups) + layer_norm_flops(n, dim)
    base = vit_gflops(vit) * 1e9  # the dense count; its blocks are replaced below
    dense_blocks = sum(attention_flops(n - 1, n - 1, dim, dim) + mlp_flops(n - 1, n - 1, dim, block.mlp.fc1.out_features)
                       + 2 * layer_norm_flops(n - 1, dim) for _ in vit.blocks)
    outside = base - dense_blocks
    return (outside + len(vit.blocks) * layer_keep * (attn + mlp)) / 1e9


def main() -> None:
    vit = timm.create_model("vit_tiny_patch16_224", in_chans=4, num_classes=0, class_token=False, global_pool="")
    keeps = np.linspace(0, 1, 21)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    dense = vit_gflops(vit)
    ax.axhline(dense, color="black", lw=1, ls="--", label="dense ViT-Tiny/16")
    for groups in (2, 4):
        for layer_keep, style in ((1.0, "-"), (0.75, ":")):
            ax.plot(keeps, [gflops_at(vit, groups, k, layer_keep) for k in keeps], style,
                    label=f"G={groups}, layer_keep={layer_keep}")
    ax.set_xlabel("patch_keep (fraction of tokens at full width)")
    ax.set_ylabel("GFLOPs per image")
    ax.set_title("ViT-Tiny/16, 224 px, 4 channels: FLOPs the decisions leave")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(HERE / "gflops_vs_keep.png", dpi=120)


if __name__ == "__main__":
    main()
