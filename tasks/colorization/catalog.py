"""One-line descriptions of the registered colorizers, readable without importing torch.

``adacolor list`` must answer at once, so it cannot build the registry of ``model.py`` (which
imports torch and timm); this table is what it prints. A test checks that it names exactly
the registered colorizers, so a newly registered name needs its line here.
"""

from __future__ import annotations

__all__ = ["MODEL_DESCRIPTIONS"]

MODEL_DESCRIPTIONS: dict[str, str] = {
    "icolorit-t": "iColoriT-T: ViT-Tiny/16 (width 192, 3 heads), 12 blocks, dense",
    "icolorit-t-d6": "iColoriT-T with 6 blocks, dense",
    "icolorit-t-d24": "iColoriT-T with 24 blocks, dense",
    "icolorit-s": "iColoriT-S: ViT-Small/16 (width 384, 6 heads), 12 blocks, dense",
    "icolorit-s-d6": "iColoriT-S with 6 blocks, dense",
    "icolorit-s-d24": "iColoriT-S with 24 blocks, dense",
    "adacolvit-t": "AdaColViT-T: iColoriT-T with grouped patch selection (G=2) and layer skipping",
    "adacolvit-t-d24": "AdaColViT-T with 24 blocks",
    "adacolvit-s": "AdaColViT-S: iColoriT-S with grouped patch selection (G=2) and layer skipping",
    "dynamicvit-t": "DynamicViT on ViT-Tiny/16: hard token pruning at keep rate 0.87 (Table 3 baseline)",
    "avit-t": "A-ViT on ViT-Tiny/16: per-token halting, about 10 of 12 blocks (Table 3 baseline)",
    "adavit-t": "AdaViT on ViT-Tiny/16: patch, head and block usage gates at 90% (Table 3 baseline)",
    "swinir-s": "SwinIR-S: shifted-window restoration transformer as a colorizer (Table 2 baseline)",
    "swinir-t": "SwinIR-T: SwinIR-S with half the Swin layers",
    "uformer-s": "Uformer-S: U-shaped window transformer as a colorizer (Table 2 baseline)",
    "uformer-t": "Uformer-T: Uformer-S with one LeWin block per stage",
}
