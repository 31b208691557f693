"""User-guided colorization with (adaptive) Vision Transformers: the AdaColViT paper's task.

Modules: color (sRGB <-> Lab), data (image folders), hints (user-hint simulation), model
(colorizers by name), loss, metrics (PSNR), lpips, train, evaluate, colorize, bench, reproduce
(the paper's comparisons; runlock keeps two suites off one run), cli (`adacolor`).
"""
