"""The reproduction's figures (matplotlib, Agg): Fig. 4, 6, 7 and 8 and the budget forms'
per-image compute, from ``results.json``.

    >>> write_figures(results, out_dir / "figures", images=out_dir / "eval/compute-adacolvit-t/images.npz")

Fig. 4 and Fig. 6 are plots of numbers in ``results.json``; Fig. 7 and Fig. 8 also show photos,
which the compute run saved as ``images.npz`` (least / most GFLOPs images and their
colorizations; photos and their FFN keep maps). Without that file they are not redrawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from adacolor.report import budget_form

__all__ = ["fig4", "fig6", "fig7", "fig8", "budget", "write_figures"]

_DPI = 90  # small PNGs: the cpu-scale figures are committed


def _save(plt: Any, fig: Any, path: Path) -> Path:
    """Lays out, writes and closes a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(results: dict[str, Any]) -> str:
    scale = results["settings"]["scale"]
    return f"{scale} scale" + (" (plumbing check, not numbers)" if scale == "tiny" else "")


def fig4(results: dict[str, Any], path: Path) -> Optional[Path]:
    """PSNR@k (top) and LPIPS@k (bottom) against GFLOPs, one column per k in 5/10/20/50."""
    rows, ks = results["fig4"]["rows"], results["fig4"]["ks"]
    if not rows or not ks:
        return None
    plt = _pyplot()
    has_lpips = any(f"lpips@{k}" in r for r in rows for k in ks)
    metrics = ["psnr", "lpips"] if has_lpips else ["psnr"]
    fig, axes = plt.subplots(len(metrics), len(ks), figsize=(3.2 * len(ks), 2.9 * len(metrics)), squeeze=False)
    markers = "osD^v<>ph*"
    for col, k in enumerate(ks):
        for row, metric in enumerate(metrics):
            ax = axes[row][col]
            for i, r in enumerate(rows):
                if f"{metric}@{k}" in r:
                    ax.scatter(r["gflops"], r[f"{metric}@{k}"], marker=markers[i % len(markers)], s=40,
                               label=r["label"], zorder=3)
            ax.margins(0.2)  # points at the ends stay inside the frame
            ax.set_title(f"{k} hints", fontsize=9)
            ax.set_xlabel("GFLOPs per image", fontsize=8)
            ax.set_ylabel("PSNR (dB)" if metric == "psnr" else "LPIPS (lower is better)", fontsize=8)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"Fig. 4: quality against compute ({_title(results)})", fontsize=10)
    return _save(plt, fig, path)


def fig6(results: dict[str, Any], path: Path) -> Optional[Path]:
    """PSNR@10 against GFLOPs for learned and random selection, one panel per variant."""
    variants = results["fig6"]["variants"]
    if not any(variants.values()):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(variants), figsize=(3.6 * len(variants), 3.1), squeeze=False)
    titles = {"patch+layer": "(a) patch and layer", "patch": "(b) patch only", "layer": "(c) layer only"}
    for ax, (variant, entries) in zip(axes[0], variants.items()):
        for policy, style in (("learned", "o-"), ("random", "s--")):
            points = sorted((e[policy]["gflops"], e[policy]["psnr@10"]) for e in entries)
            if points:
                ax.plot(*zip(*points), style, label=policy)
        ax.set_title(titles.get(variant, variant), fontsize=9)
        ax.set_xlabel("GFLOPs per image", fontsize=8)
        ax.set_ylabel("PSNR@10 (dB)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:  # a panel whose models have not run yet has none
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not run yet", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    fig.suptitle(f"Fig. 6: learned against random selection ({_title(results)})", fontsize=10)
    return _save(plt, fig, path)


def fig7(results: dict[str, Any], images: dict[str, Any], path: Path) -> Optional[Path]:
    """The least and most GFLOPs images (photo above its colorization) and the per-image spread."""
    f7 = results["fig7"]
    if "spread" not in f7 or "fig7_truth" not in images:
        return None
    plt = _pyplot()
    truth, pred = images["fig7_truth"], images["fig7_pred"]
    entries = f7["least"] + f7["most"]
    n = len(entries)
    gates = f7.get("layer_gates")
    fig = plt.figure(figsize=(1.7 * n + (6.4 if gates else 3.2), 3.8))
    grid = fig.add_gridspec(2, n + (4 if gates else 2))
    for i, entry in enumerate(entries):
        for row, array in enumerate((truth, pred)):
            ax = fig.add_subplot(grid[row, i])
            ax.imshow(array[i])
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                kind = "least" if i < len(f7["least"]) else "most"
                ax.set_title(f"{kind}\n{entry['gflops']:.4f} GFLOPs", fontsize=7)
            if i == 0:
                ax.set_ylabel("photo" if row == 0 else f"{f7['k']} hints", fontsize=7)
    ax = fig.add_subplot(grid[:, n:n + 2])
    sp = f7["spread"]
    low, high = sp["min"], sp["max"]
    pad = max(1e-4, 0.02 * low) if high - low < 1e-9 else 0.0  # one value: a visible bar around it
    ax.hist(f7["gflops_per_image"], bins=min(30, max(5, len(f7["gflops_per_image"]) // 10)),
            range=(low - pad, high + pad), color="tab:blue")
    for key, style in (("p10", ":"), ("median", "-"), ("p90", ":")):
        ax.axvline(sp[key], color="k", linestyle=style, linewidth=1)
    ax.set_title(f"per-image GFLOPs, p90/p10 = {sp['p90/p10']:.3f}", fontsize=8)
    ax.set_xlabel("GFLOPs", fontsize=8)
    ax.tick_params(labelsize=7)
    if gates:
        _gate_ranges(fig.add_subplot(grid[:, n + 2:]), gates)
    fig.suptitle(f"Fig. 7: {f7['label']}, least and most compute over {f7['images']} images ({_title(results)})",
                 fontsize=9)
    return _save(plt, fig, path)


def _gate_ranges(ax: Any, gates: dict[str, Any]) -> None:
    """Per sub-layer, the range of its layer-gate logit over the images; it runs above 0."""
    for i, (low, high) in enumerate(zip(gates["min"], gates["max"])):
        color = "tab:green" if low > 0 else "tab:red" if high <= 0 else "tab:orange"
        ax.plot([i, i], [low, high], color=color, linewidth=3, solid_capstyle="butt")
        ax.plot([i], [(low + high) / 2], marker="_", color="k", markersize=4)
    ax.axhline(0, color="k", linewidth=0.8)
    blocks = gates["sublayers"] // 2
    ax.set_xticks(range(0, gates["sublayers"], 2), [str(b + 1) for b in range(blocks)], fontsize=6)
    ax.set_xlabel("block (attention, FFN)", fontsize=8)
    ax.set_ylabel("layer-gate logit (runs if > 0)", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.set_title(f"gate logits over {gates['images']} images: {gates['switching']} of {gates['sublayers']} "
                 f"switch", fontsize=8)


def fig8(results: dict[str, Any], images: dict[str, Any], path: Path) -> Optional[Path]:
    """Photos with the keep mask of block 3's FFN laid over them (kept tokens bright)."""
    f8 = results["fig8"]
    if f8.get("maps") is None or "fig8_maps" not in images:
        return None
    import numpy as np

    plt = _pyplot()
    photos, maps = images["fig8_photos"], images["fig8_maps"]
    n = len(photos)
    columns = min(n, 4)
    rows = -(-n // columns)
    fig, axes = plt.subplots(2 * rows, columns, figsize=(2.1 * columns, 4.2 * rows), squeeze=False)
    for i in range(n):
        r, c = 2 * (i // columns), i % columns
        axes[r][c].imshow(photos[i])
        size = photos[i].shape[0]
        mask = np.kron(maps[i], np.ones((size // maps[i].shape[0], size // maps[i].shape[1])))
        axes[r + 1][c].imshow(photos[i].mean(axis=-1), cmap="gray")
        axes[r + 1][c].imshow(mask, cmap="viridis", alpha=0.55, vmin=0, vmax=1)
        axes[r + 1][c].set_title(f"kept {float(maps[i].mean()):.0%}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat:
        if not ax.images:
            ax.set_visible(False)
    fig.suptitle(f"Fig. 8: {f8['label']}, block {f8['block']} FFN token keep mask ({_title(results)})", fontsize=9)
    return _save(plt, fig, path)


def budget(results: dict[str, Any], path: Path) -> Optional[Path]:
    """Per-image GFLOPs of each budget form, one panel per group (same betas and length): box
    from p10 to p90, whiskers to min and max, median line; PSNR@10 under each form's name. A
    row whose result kept only p90 / p10 (older evidence) is named, without a box. Each panel has its
    own GFLOPs axis: groups may be trained at different sizes (the title says which)."""
    groups = [g for g in results["fig7"].get("budget", {}).get("groups", [])
              if any("median" in r.get("spread", {}) for r in g)]
    if not groups:
        return None
    plt = _pyplot()
    widths = [max(1, sum("median" in r.get("spread", {}) for r in g)) for g in groups]   # boxes per panel
    fig, axes = plt.subplots(1, len(groups), figsize=(1.25 * sum(widths) + 1.2 * len(groups), 3.4), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for ax, group in zip(axes[0], groups):
        stats = [{"med": r["spread"]["median"], "q1": r["spread"]["p10"], "q3": r["spread"]["p90"],
                  "whislo": r["spread"]["min"], "whishi": r["spread"]["max"],
                  "label": f"{budget_form(r)}\n{r['psnr@10']:.2f} dB\np90/p10 {r['p90/p10']:.2f}"}
                 for r in group if "median" in r.get("spread", {})]
        ax.bxp(stats, showfliers=False, widths=0.5)
        unboxed = [f"{budget_form(r)}: p90/p10 {r['p90/p10']:.3f}, {r['psnr@10']:.2f} dB (no quantiles kept)"
                   for r in group if "median" not in r.get("spread", {})]
        if unboxed:
            ax.set_xlabel("\n".join(unboxed), fontsize=6)
        size = f" ({group[0]['trained_at']} px)" if group[0].get("trained_at") else ""
        ax.set_title(f"{group[0]['run']}\nand its twins{size}", fontsize=8)
        ax.set_ylabel("GFLOPs per image", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"Budget forms: per-image compute, box p10-p90, whiskers min-max ({_title(results)})", fontsize=9)
    return _save(plt, fig, path)


def write_figures(results: dict[str, Any], folder: Union[str, Path],
                  images: Optional[Union[str, Path]] = None) -> dict[str, Path]:
    """Writes every figure whose data is there into ``folder``; returns ``{name: path}``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {}
    if images is not None:
        import numpy as np

        with np.load(images) as loaded:
            arrays = {key: loaded[key] for key in loaded.files}
    written = {"fig4": fig4(results, folder / "fig4.png"), "fig6": fig6(results, folder / "fig6.png"),
               "fig7": fig7(results, arrays, folder / "fig7.png"), "fig8": fig8(results, arrays, folder / "fig8.png"),
               "budget": budget(results, folder / "budget.png")}
    return {name: path for name, path in written.items() if path is not None}
