"""The reproduction's report: ``results.json`` -> ``report.md`` text, and the paper's claims as
checks on our numbers. Pure functions of plain data; nothing here runs a model.

    >>> claims = check_claims(results)       # [{"claim", "paper", "ours", "holds"}, ...]
    >>> text = build_report(results)         # markdown, every table beside the paper's figures

A claim whose numbers are missing has ``holds: None`` and says so; a claim that our numbers do
not support has ``holds: False`` and the report says "does not hold". The paper's numbers come
from data (``adacolor.paper``): its columns beside ours, and each claim's "paper" cell the same
check run on its tables (``paper_results``); a number the paper does not give reads ``-``.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional, Sequence

from adacolor.paper import CITATION, load_figures, paper_value, source, table_rows, table_title, text_differs
from adacolor.weights import SHIPPED_PREFIX

__all__ = [
    "PAPER_NAMES",
    "PAPER_DATASETS",
    "paper_results",
    "spread",
    "ranks",
    "rank_correlation",
    "colour_dependence",
    "gate_margins",
    "claim_efficiency",
    "claim_transfer",
    "claim_faster",
    "claim_pareto",
    "claim_beats_baselines",
    "claim_best_groups",
    "claim_learned_beats_random",
    "claim_compute_varies",
    "check_claims",
    "paper_cell",
    "paper_lines",
    "budget_form",
    "meets_budget_target",
    "budget_section",
    "trained_cell",
    "form_lines",
    "latency_runtimes",
    "runtime_latency",
    "table2_section",
    "build_report",
]

# Our runs under the paper's names for the same model (a run not named here has no paper row;
# the paper spells the Table 3 baselines without a size, and gives no number for a -T SwinIR /
# Uformer, nor for the 6- / 24-block iColoriT or the Small models: those read `-`).
PAPER_NAMES: dict[str, str] = {
    "icolorit-t": "iColoriT-T", "adacolvit-t": "AdaColViT-T", "adacolvit-t-d24": "AdaColViT-T-d24",
    "swinir-t": "SwinIR-T", "uformer-t": "Uformer-T", "swinir-s": "SwinIR-S", "uformer-s": "Uformer-S",
    "icolorit-t-d6": "iColoriT-T-d6", "icolorit-t-d24": "iColoriT-T-d24", "icolorit-s": "iColoriT-S",
    "adacolvit-s": "AdaColViT-S",
    "dynamicvit-t": "DynamicViT", "adavit-t": "AdaViT", "avit-t": "A-ViT", "adacolvit-t-t3": "AdaColViT-T",
}
# Table 1's datasets: ours (the transfer labels of adacolor.reproduce) -> the paper's
PAPER_DATASETS: dict[str, str] = {"Oxford flowers": "Oxford 102flowers", "CUB-200": "CUB-200"}


def _paper_run(name: str, table: str) -> str:
    """Our run that is the paper's model ``name`` in ``table`` (Table 3's AdaColViT-T is the
    ``adacolvit-t-t3`` run, trained at that table's budget)."""
    runs = [run for run, paper in PAPER_NAMES.items() if paper == name]
    return "adacolvit-t-t3" if table == "table3" and "adacolvit-t-t3" in runs else runs[0]


def paper_results(figures: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The paper's Tables 1-4 in ``results.json``'s shape, so that the claims are checked on its
    numbers exactly as on ours. Fig. 4's rows are Table 2's models at 10 hints on ctest10k (Fig. 4
    itself is a plot, as are Figs. 6-8, whose sections stay empty). A row that misses a number
    the checks use is left out, never filled in.

    Args:
        figures: the paper's numbers (default: ``adacolor.paper``'s data).
    """
    figures = load_figures() if figures is None else figures
    known = set(PAPER_NAMES.values())

    def complete(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rows if all(v is not None for v in r.values())]

    t2 = [r for r in table_rows("table2", figures) if r["method"] in known]
    fig4 = complete({"run": _paper_run(r["method"], "table2"), "label": r["method"], "gflops": r["gflops"],
                     "psnr@10": r["psnr10"]} for r in t2)
    table2 = complete({"run": _paper_run(r["method"], "table2"), "label": r["method"], "gflops": r["gflops"],
                       "latency_ms_mean": r["latency_ms"], "latency_ms_std": r["latency_std_ms"],
                       "psnr@10": r["psnr10"]} for r in t2)
    datasets = list(dict.fromkeys(r["dataset"] for r in table_rows("table1", figures)))
    table1: dict[str, dict[str, Any]] = {}
    for r in table_rows("table1", figures):
        if r["method"] in known and r["psnr10"] is not None:
            row = table1.setdefault(r["method"], {"run": _paper_run(r["method"], "table1"), "label": r["method"]})
            row[r["dataset"]] = {"psnr@10": r["psnr10"], "lpips@10": r["lpips10"], "gflops": r["gflops"]}
    table3 = complete({"run": _paper_run(r["method"], "table3"), "label": r["method"], "gflops": r["gflops"],
                       "psnr@10": r["psnr10"]} for r in table_rows("table3", figures) if r["method"] in known)
    table4 = complete({"run": "adacolvit-t" if r["groups"] == 2 else f"adacolvit-t-g{r['groups']}",
                       "groups": r["groups"], "gflops": r["gflops"], "psnr@10": r["psnr10"]}
                      for r in table_rows("table4", figures))
    return {"fig4": {"ks": [10], "rows": fig4, "missing": []},
            "table1": {"datasets": datasets, "k": 10, "rows": list(table1.values()), "missing": []},
            "table2": {"rows": table2, "missing": []},
            "table3": {"k": 10, "rows": table3, "missing": []},
            "table4": {"k": 10, "rows": table4, "missing": []},
            "fig6": {"k": 10, "variants": {}, "missing": []}, "fig7": {"missing": []}, "fig8": {"missing": []}}


def spread(values: Sequence[float]) -> dict[str, float]:
    """min, p10, median, p90, max, mean and p90 / p10 of per-image values (linear percentiles)."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        raise ValueError("spread of no values")

    def percentile(q: float) -> float:
        position = (len(ordered) - 1) * q
        low, high = math.floor(position), math.ceil(position)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    p10, p90 = percentile(0.1), percentile(0.9)
    return {"min": ordered[0], "p10": p10, "median": percentile(0.5), "p90": p90, "max": ordered[-1],
            "mean": sum(ordered) / len(ordered), "p90/p10": p90 / p10 if p10 > 0 else math.inf}


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks of ``values``, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start:end + 1]:
            out[i] = (start + end) / 2 + 1
        start = end + 1
    return out


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: the Pearson correlation of the ranks (ties averaged); nan when either is
    constant. ValueError for lengths that differ or under 2 values."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"rank correlation needs two equally long sequences of 2 or more, got {len(x)} and {len(y)}")
    rx, ry = ranks(x), ranks(y)
    mean = (len(rx) + 1) / 2
    cov = sum((a - mean) * (b - mean) for a, b in zip(rx, ry))
    norm = math.sqrt(sum((a - mean) ** 2 for a in rx) * sum((b - mean) ** 2 for b in ry))
    return cov / norm if norm > 0 else math.nan


def colour_dependence(gflops: Sequence[float], chroma: Sequence[float]) -> dict[str, float]:
    """Whether per-image compute follows the photo's colourfulness: Spearman's rho of GFLOPs
    against mean chroma, and the mean GFLOPs of the least and the most colourful tenth."""
    by_chroma = sorted(range(len(chroma)), key=lambda i: chroma[i])
    tenth = max(1, len(by_chroma) // 10)
    return {"spearman": rank_correlation(gflops, chroma),
            "least_colourful_gflops": sum(gflops[i] for i in by_chroma[:tenth]) / tenth,
            "most_colourful_gflops": sum(gflops[i] for i in by_chroma[-tenth:]) / tenth, "tenth": tenth}


def gate_margins(logits: Sequence[Sequence[float]]) -> dict[str, Any]:
    """How far learned layer gates are from changing their decision between images.

    Args:
        logits: (N images, S sub-layers) eval-mode layer-gate logits; a sub-layer runs where its
            logit is > 0 (sigmoid > 0.5).

    Returns:
        ``{"sublayers": S, "images": N, "always_run", "never_run", "switching"}`` (counts of
        sub-layers: running for every image, for none, for some), ``"min"`` / ``"max"`` (S
        logits over the images) and ``"closest"``: over the sub-layers whose decision is the
        same for every image, the smallest |logit| any image gave (None if there are none).
    """
    rows = [[float(v) for v in row] for row in logits]
    if not rows or not rows[0]:
        raise ValueError("gate margins of no logits")
    columns = list(zip(*rows))
    low, high = [min(c) for c in columns], [max(c) for c in columns]
    always = sum(1 for lo in low if lo > 0)
    never = sum(1 for hi in high if hi <= 0)
    constant = [min(abs(lo), abs(hi)) for lo, hi in zip(low, high) if lo > 0 or hi <= 0]
    return {"sublayers": len(columns), "images": len(rows), "always_run": always, "never_run": never,
            "switching": len(columns) - always - never, "min": low, "max": high,
            "closest": min(constant) if constant else None}


def _claim(claim: str, paper: str, ours: str, holds: Optional[bool]) -> dict[str, Any]:
    return {"claim": claim, "paper": paper, "ours": ours, "holds": holds}


def _missing(claim: str, paper: str, what: str) -> dict[str, Any]:
    return _claim(claim, paper, f"not measured: {what} missing", None)


def claim_efficiency(reference: Optional[dict[str, float]], adaptive: Optional[dict[str, float]],
                     tolerance_db: float = 0.05, max_ratio: float = 0.6) -> dict[str, Any]:
    """AdaColViT-T within ``tolerance_db`` PSNR@10 of iColoriT-T at <= ``max_ratio`` of its GFLOPs.

    Args:
        reference: iColoriT-T's ``{"psnr@10", "gflops"}``; adaptive: AdaColViT-T's.
    """
    claim = f"AdaColViT-T within {tolerance_db:g} dB PSNR@10 of iColoriT-T at <= {max_ratio:.0%} of its GFLOPs"
    paper = "Table 2: AdaColViT-T at about iColoriT-T's PSNR@10 with fewer GFLOPs"
    if not reference or not adaptive:
        return _missing(claim, paper, "iColoriT-T or AdaColViT-T")
    gap = adaptive["psnr@10"] - reference["psnr@10"]
    ratio = adaptive["gflops"] / reference["gflops"]
    ours = f"{gap:+.3f} dB at {ratio:.1%} of the GFLOPs ({adaptive['gflops']:.3f} / {reference['gflops']:.3f})"
    return _claim(claim, paper, ours, gap >= -tolerance_db and ratio <= max_ratio)


def claim_transfer(rows: Sequence[dict[str, Any]], datasets: Sequence[str], tolerance_db: float = 0.05) -> dict[str, Any]:
    """On every Table 1 dataset, AdaColViT-T's PSNR@10 is within ``tolerance_db`` of iColoriT-T's.

    Args:
        rows: Table 1 rows ``{"run", dataset: {"psnr@10", ...}}``.
    """
    claim = f"AdaColViT-T within {tolerance_db:g} dB PSNR@10 of iColoriT-T on {' and '.join(datasets)} (no training there)"
    paper = "Table 1: AdaColViT-T about matches iColoriT-T on Oxford 102 flowers and CUB-200"
    by_run = {r["run"]: r for r in rows}
    ref, ada = by_run.get("icolorit-t", {}), by_run.get("adacolvit-t", {})
    gaps = {}
    for name in datasets:
        if name in ref and name in ada:
            gaps[name] = ada[name]["psnr@10"] - ref[name]["psnr@10"]
    if len(gaps) < len(datasets):
        return _missing(claim, paper, "a Table 1 evaluation")
    ours = ", ".join(f"{name} {gap:+.3f} dB" for name, gap in gaps.items())
    return _claim(claim, paper, ours, all(g >= -tolerance_db for g in gaps.values()))


def _ms(value: float) -> str:
    """Milliseconds to 2 decimals; a whole number given as an int (the paper's) as it is."""
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def claim_faster(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """AdaColViT-T's single-thread batch-1 latency is below iColoriT-T's by more than their stds."""
    claim = "AdaColViT-T is faster than iColoriT-T (single thread, batch 1)"
    paper = "Table 2: AdaColViT-T has the lowest latency among the compared colorizers"
    by_run = {r["run"]: r for r in rows}
    ref, ada = by_run.get("icolorit-t"), by_run.get("adacolvit-t")
    if not ref or not ada:
        return _missing(claim, paper, "a Table 2 benchmark")
    speedup = ref["latency_ms_mean"] / ada["latency_ms_mean"]
    margin = ref["latency_ms_mean"] - ada["latency_ms_mean"] - ref["latency_ms_std"] - ada["latency_ms_std"]
    ours = (f"{_ms(ada['latency_ms_mean'])} ± {_ms(ada['latency_ms_std'])} ms against "
            f"{_ms(ref['latency_ms_mean'])} ± {_ms(ref['latency_ms_std'])} ms ({speedup:.2f}x)")
    return _claim(claim, paper, ours, margin > 0)


def claim_pareto(rows: Sequence[dict[str, Any]], run: str = "adacolvit-t", k: int = 10) -> dict[str, Any]:
    """No other model of Fig. 4 has both at most the GFLOPs and at least the PSNR@k of ``run``."""
    claim = f"AdaColViT-T is on the PSNR@{k} / GFLOPs front of Fig. 4 (no model is both cheaper and better)"
    paper = "Fig. 4: AdaColViT gives the best PSNR for its GFLOPs at every hint count"
    by_run = {r["run"]: r for r in rows}
    own = by_run.get(run)
    if own is None or len(rows) < 2:
        return _missing(claim, paper, "Fig. 4 models")
    key = f"psnr@{k}"
    better = [r["label"] for r in rows if r["run"] != run and r["gflops"] <= own["gflops"] and r[key] >= own[key]]
    ours = (f"dominated by {', '.join(better)}" if better else
            f"not dominated ({own[key]:.2f} dB at {own['gflops']:.3f} GFLOPs among {len(rows)} models)")
    return _claim(claim, paper, ours, not better)


def claim_beats_baselines(rows: Sequence[dict[str, Any]], run: str = "adacolvit-t-t3", k: int = 10,
                          gflops_tolerance: float = 0.1,
                          baselines: Sequence[str] = ("dynamicvit-t", "adavit-t", "avit-t")) -> dict[str, Any]:
    """AdaColViT beats every other Table 3 method in PSNR@k at about equal (or fewer) GFLOPs:
    its GFLOPs at most ``1 + gflops_tolerance`` times each method's.

    With some of ``baselines`` missing, the ones measured are compared: a loss to any of them
    already fails the claim (False); wins over all of them so far leave it open (None)."""
    claim = "AdaColViT beats DynamicViT, AdaViT and A-ViT in PSNR@10 at about equal GFLOPs"
    paper = "Table 3: AdaColViT has the best PSNR@10 of the adaptive ViTs at about equal GFLOPs"
    by_run = {r["run"]: r for r in rows}
    own = by_run.get(run)
    others = [by_run[b] for b in baselines if b in by_run]
    if own is None or not others:
        return _missing(claim, paper, "Table 3 models")
    key = f"psnr@{k}"
    parts, ok = [], True
    for r in others:
        wins = own[key] > r[key] and own["gflops"] <= (1 + gflops_tolerance) * r["gflops"]
        ok &= wins
        parts.append(f"{r['label']} {own[key] - r[key]:+.3f} dB at {own['gflops'] / r['gflops']:.2f}x its GFLOPs")
    missing = [b for b in baselines if b not in by_run]
    if missing:
        parts.append(f"not measured: {', '.join(missing)}")
    return _claim(claim, paper, "; ".join(parts), ok if not ok or not missing else None)


SPREAD_TARGET = 1.3   # p90 / p10 of per-image GFLOPs that counts as compute following the image


def claim_best_groups(rows: Sequence[dict[str, Any]], k: int = 10, best: int = 2) -> dict[str, Any]:
    """G = ``best`` has the highest PSNR@k of the Table 4 rows (each ``{"groups", "psnr@k", "gflops"}``)."""
    claim = f"G = {best} is the best number of groups (Table 4, PSNR@{k} at about equal GFLOPs)"
    paper = "Table 4: G = 2 gives the best PSNR@10 and LPIPS@10"
    if len({r.get("groups") for r in rows}) < 2 or best not in {r.get("groups") for r in rows}:
        return _missing(claim, paper, "Table 4 models")
    key = f"psnr@{k}"
    top = max(rows, key=lambda r: r[key])
    ours = ", ".join(f"G={r['groups']}: {r[key]:.2f} dB at {r['gflops']:.3f} GFLOPs" for r in rows)
    return _claim(claim, paper, ours, top["groups"] == best)


def claim_learned_beats_random(variants: dict[str, Sequence[dict[str, Any]]], k: int = 10) -> dict[str, Any]:
    """Learned selection has a higher PSNR@k than random selection at the same keep ratios, at
    every budget of every variant (entries ``{"learned": {"psnr@k"}, "random": {"psnr@k"}}``)."""
    claim = "learned selection beats random selection at every budget (patch and layer, patch only, layer only)"
    paper = "Fig. 6 (a plot, no numbers in the text): the learned gates are above random selection at every budget"
    points = [(v, e) for v, entries in variants.items() for e in entries]
    if not points or any(not entries for entries in variants.values()):
        return _missing(claim, paper, "Fig. 6 models")
    key = f"psnr@{k}"
    losses = [f"{v} ({e['beta_patch']:g}, {e['beta_layer']:g})" for v, e in points
              if not e["learned"][key] > e["random"][key]]
    gaps = [e["learned"][key] - e["random"][key] for _, e in points]
    ours = (f"learned - random: {min(gaps):+.3f} to {max(gaps):+.3f} dB over {len(points)} budgets"
            + (f"; not better at {', '.join(losses)}" if losses else ""))
    return _claim(claim, paper, ours, not losses)


def claim_compute_varies(stats: Optional[dict[str, float]], patterns: Optional[int] = None,
                         min_ratio: float = SPREAD_TARGET) -> dict[str, Any]:
    """Compute differs between images: p90 / p10 of per-image GFLOPs >= ``min_ratio``."""
    claim = f"compute differs between images (p90 / p10 of per-image GFLOPs >= {min_ratio:g})"
    paper = ("Fig. 7 (pictures, no numbers in the text): images with the least and the most GFLOPs differ "
             "visibly in content and in cost")
    if not stats:
        return _missing(claim, paper, "the per-image compute")
    ours = (f"p10 {stats['p10']:.4f}, p90 {stats['p90']:.4f} GFLOPs: p90 / p10 = {stats['p90/p10']:.3f}; "
            f"min {stats['min']:.4f}, max {stats['max']:.4f}"
            + (f"; {patterns} distinct layer-decision pattern(s)" if patterns is not None else ""))
    return _claim(claim, paper, ours, stats["p90/p10"] >= min_ratio)


def _checks(results: dict[str, Any]) -> list[tuple[Optional[str], dict[str, Any]]]:
    """Every claim checked on a ``results.json``-shaped dict, each with the paper's table that
    gives the same numbers (None: a plot, no numbers)."""
    fig4 = {r["run"]: r for r in results.get("fig4", {}).get("rows", [])}
    table1 = results.get("table1", {})
    fig7 = results.get("fig7", {})
    return [
        ("Table 2", claim_efficiency(fig4.get("icolorit-t"), fig4.get("adacolvit-t"))),
        ("Table 1", claim_transfer(table1.get("rows", []), table1.get("datasets", []))),
        ("Table 2", claim_faster(results.get("table2", {}).get("rows", []))),
        ("Table 2's models (Fig. 4 is a plot)", claim_pareto(results.get("fig4", {}).get("rows", []))),
        ("Table 3", claim_beats_baselines(results.get("table3", {}).get("rows", []))),
        ("Table 4", claim_best_groups(results.get("table4", {}).get("rows", []))),
        (None, claim_learned_beats_random(results.get("fig6", {}).get("variants", {}))),
        (None, claim_compute_varies(fig7.get("spread"), fig7.get("layer_patterns"))),
    ]


def paper_cell(claim: dict[str, Any], on_paper: dict[str, Any], table: Optional[str]) -> str:
    """A claim's "paper" cell: the same check run on the paper's numbers (``on_paper``) from
    ``table``, in the words of ours, and whether those numbers pass it; where the paper gives no
    numbers for it (a plot, or a number missing), the claim's own description of the paper."""
    if table is None or on_paper["holds"] is None:
        return claim["paper"]
    return f"{table}: {on_paper['ours']}" + ("" if on_paper["holds"] else " (the paper's own numbers fail this check)")


def check_claims(results: dict[str, Any], figures: Optional[dict[str, Any]] = None) -> list[dict[str, Any]]:
    """Every claim checked on a ``results.json`` dict; its "paper" cell is the same check on the
    paper's tables (``paper_results(figures)``; see ``paper_cell``)."""
    theirs = _checks(paper_results(figures))
    return [claim | {"paper": paper_cell(claim, on_paper, table)}
            for (table, claim), (_, on_paper) in zip(_checks(results), theirs)]


# -- markdown --------------------------------------------------------------------------------

def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _minutes(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} min" if value < 90 else f"{value / 60:.1f} h"


def estimate_text(estimated: Optional[float], aim: Optional[float], source: Optional[str] = None) -> str:
    """The suite's estimated time (minutes), and whether it is above the time it was meant to fit
    in; ``source``: where the estimate comes from (e.g. the measured rates)."""
    text = f"estimated {_minutes(estimated)} on a 2-core CPU for the whole suite"
    if source:
        text += f" ({source})"
    if estimated is not None and aim is not None:
        text += f", {'above' if estimated > aim else 'within'} the {_minutes(aim)} it is meant to fit in"
    return text


def trained_cell(row: dict[str, Any]) -> str:
    """How a row's model was made: ``from scratch, 112 px``, ``fine-tuned from `icolorit-t`, 224
    px``, with ``(scored at 224 px)`` where it is scored at another size than it was trained at;
    ``-`` for a row that does not say (results written before the forms)."""
    form = row.get("form")
    if form is None:
        return "-"
    text = "from scratch" if form == "scratch" else f"fine-tuned from `{row.get('init')}`"
    if row.get("trained_at"):
        text += f", {row['trained_at']} px"
    if row.get("scored_at") and row.get("trained_at") and row["scored_at"] != row["trained_at"]:
        text += f" (scored at {row['scored_at']} px)"
    return text


def _with_trained(header: list[str], rows: list[list[str]],
                  data: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """A ``trained`` column after the first, where the rows say how their models were made."""
    if not any("form" in r for r in data):
        return header, rows
    return ([header[0], "trained"] + header[1:],
            [[row[0], trained_cell(r)] + row[1:] for row, r in zip(rows, data)])


def form_lines(settings: dict[str, Any]) -> str:
    """The report's lines on the form (fine-tuned or from scratch) and the sizes, from
    ``results.json``'s settings (results without a form were trained from scratch)."""
    form = settings.get("form")
    sizes = settings.get("sizes") or {}
    if form == "finetune":
        text = ("- Form: fine-tuned (`--form finetune`): the dense iColoriT-T is trained once and every adaptive "
                "model is fine-tuned from the dense model of its size (`--init`, the gates new), the same number "
                "of steps each; a model that has no ViT to start from is trained from scratch. The `trained` "
                "column of each table says which.")
    elif form == "scratch":
        text = ("- Form: from scratch (`--form scratch`): every model is trained from its random initialisation by "
                "its recipe.")
    else:
        return ""
    if sizes and sizes["main"] == sizes.get("ablations", sizes["main"]) and form == "scratch":
        text += f" Every model at {sizes['main']} px."
    elif sizes:
        text += (f" Sizes: the main comparison (Fig. 4, Tables 1 and 2, Figs. 7 and 8) at {sizes['main']} px; "
                 f"{sizes.get('why') or ''}".rstrip() + ".")
    return text.rstrip(".") + ".\n"


def latency_runtimes(rows: Sequence[dict[str, Any]], listed: Optional[Sequence[str]] = None) -> list[str]:
    """The runtimes Table 2 has a latency column for: ``listed`` (the bench's) or those any row
    has, torch first; ``["torch"]`` for results timed in PyTorch only."""
    seen = list(listed or []) + [rt for r in rows for rt in (r.get("runtimes") or {})]
    found = list(dict.fromkeys(["torch"] + seen))
    return found


def runtime_latency(row: dict[str, Any], runtime: str) -> str:
    """``mean ± std`` ms of a Table 2 row on ``runtime``, ``-`` where it was not timed there (a
    torch row written before runtimes: its own latency). An entry may also be in the shape of
    ``adacolor.bench``'s rows (``latency_ms``, ``latency_std_ms``)."""
    timed = (row.get("runtimes") or {}).get(runtime)
    if timed is None and runtime == "torch" and "latency_ms_mean" in row:
        timed = row
    if timed is None:
        return "-"
    mean = timed.get("latency_ms_mean", timed.get("latency_ms"))   # or a row of adacolor.bench's --json
    std = timed.get("latency_ms_std", timed.get("latency_std_ms"))
    return f"{_num(mean)} ± {_num(std)}"


def table2_section(t2: dict[str, Any]) -> str:
    """Table 2: one latency column per runtime present (``latency (ms)`` alone when PyTorch is the
    only one), GFLOPs, PSNR@10, the paper's columns, and the bench's settings."""
    st = t2.get("settings", {})
    runtimes = latency_runtimes(t2["rows"], t2.get("runtimes"))
    names = {"torch": "PyTorch", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
    latency = ["latency (ms)"] if runtimes == ["torch"] else [f"{names.get(rt, rt)} latency (ms)" for rt in runtimes]
    rows = [[r["label"]] + [runtime_latency(r, rt) for rt in runtimes] + [_num(r["gflops"], 3), _num(r.get("psnr@10")),
             _paper("table2", PAPER_NAMES.get(r["run"]), "latency_ms", 0, "latency_std_ms"),
             _paper("table2", PAPER_NAMES.get(r["run"]), "gflops", 2, "gflops_std"),
             _paper("table2", PAPER_NAMES.get(r["run"]), "psnr10", 2, "psnr10_std")]
            for r in t2["rows"]]
    header, rows = _with_trained(["model"] + latency + ["GFLOPs", "PSNR@10", "paper latency (ms)", "paper GFLOPs",
                                                        "paper PSNR@10"], rows, t2["rows"])
    out = [_table(header, rows), f"\nThe paper's columns are its {source('table2')}.\n"]
    if st.get("repeats"):
        out.append(f"\nMean ± std over {st['repeats']} repeats, each the median of {st['runs']} timed runs after "
                   f"{st['warmup']} warm-up runs, in one process (torch {st['torch']}, {st['cpu']}), all on one "
                   f"input (`adacolor.bench.bench_input`: scikit-image's astronaut with 10 hints): an adaptive "
                   f"model's GFLOPs and latency here are those of its decisions on that photo, and its PSNR@10 "
                   f"and the GFLOPs of Fig. 4 are means over the evaluation photos.\n")
    if runtimes != ["torch"]:
        versions = st.get("versions") or {}
        others = ", ".join(f"{names.get(rt, rt)}" + (f" {versions[rt]}" if versions.get(rt) else "")
                           for rt in runtimes if rt != "torch")
        out.append(f"\nBeside PyTorch, each model's exported graph (`adacolor export`, its decisions inside) on "
                   f"{others}, single-threaded; the claims are checked on the PyTorch column.")
        skipped = [r["label"] for r in t2["rows"] if r.get("not_timed")]
        out.append((f" {', '.join(skipped)}: not exported (only ViT colorizers export), `-` there." if skipped
                    else "") + "\n")
    return "".join(out)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: bool = True) -> str:
    """A markdown table; numeric columns (all but the first and ``trained``) are right-aligned."""
    rule = "|".join("---" if i == 0 or not numeric or header[i] == "trained" else "---:" for i in range(len(header)))
    lines = ["| " + " | ".join(header) + " |", "|" + rule + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _missing_line(section: dict[str, Any]) -> str:
    missing = section.get("missing") or []
    return f"\nMissing (not run yet, or failed): {', '.join(f'`{m}`' for m in missing)}.\n" if missing else ""


def _paper(table: str, row: Any, column: str, digits: int = 2, std: Optional[str] = None) -> str:
    """A paper cell: ``adacolor.paper.paper_value`` (with `` ± `` its ``std`` column where the paper
    gives one); ``-`` where the paper gives no number or ``row`` is None (no paper row)."""
    value = None if row is None else paper_value(table, row, column)
    if value is None:
        return "-"
    spread = paper_value(table, row, std) if std else None
    return _num(value, digits) + ("" if spread is None else f" ± {_num(spread, digits)}")


def _paper_share(table: str, row: Any, whole: Optional[float]) -> str:
    """The paper's GFLOPs of ``row`` in ``table`` as a percentage of ``whole``; ``-`` without either."""
    part = None if row is None else paper_value(table, row, "gflops")
    return "-" if part is None else _percent(part, whole)


def _paper_dataset_row(dataset: str, run: str) -> Optional[dict[str, str]]:
    """Table 1's row for our ``dataset`` label and ``run``; None where the paper has neither."""
    if dataset not in PAPER_DATASETS or run not in PAPER_NAMES:
        return None
    return {"dataset": PAPER_DATASETS[dataset], "method": PAPER_NAMES[run]}


def paper_lines() -> str:
    """The report's lines on the paper's numbers: where they come from, at which settings, what a
    ``-`` means, and which number is used where the text and a table differ (the table's)."""
    settings = load_figures()["settings"]
    out = [f"- Paper's figures: {CITATION}, its Tables 1-4 as typed once in `adacolor/paper_figures.json` (a copy "
           f"of the paper folder's `figures.json`, read by `adacolor.paper`), at the paper's settings "
           f"({settings['image_size']} px; trained on {settings['train_data']}; tested on {settings['test_data']}). "
           f"A `-` in a paper column is a number the paper does not give (Fig. 4 and Figs. 6-8 are plots; it gives "
           f"no numbers for SwinIR-T and Uformer-T), never a guess.\n"]
    for table, note in text_differs().items():
        out.append(f"- Where the paper's text and its tables differ, this report uses the table: "
                   f"{table_title(table)}: {note}\n")
    return "".join(out)


def _percent(part: float, whole: Optional[float]) -> str:
    """``part`` as a whole percentage of ``whole``; ``-`` when ``whole`` was not measured."""
    return "-" if not whole else f"{100 * part / whole:.0f}%"


def _figure(name: str, caption: str, figures: str, present: Optional[set[str]]) -> str:
    if present is not None and name not in present:
        return f"\n(Figure `{name}.png` not made: its data is missing.)\n"
    return f"\n![{caption}]({figures}/{name}.png)\n"


_FORM_NAMES = {"batch": "batch mean", "sample": "per sample", "spread": "spread"}
BUDGET_PSNR_SLACK = 0.05   # dB of PSNR@10 below the per-sample form that the adaptivity target allows


def budget_form(row: dict[str, Any], long: bool = False) -> str:
    """A budget row's form: ``batch``, ``sample`` or ``spread ±0.2`` (its half-width when kept);
    ``long``: in words (``batch mean``, ``per sample``, ``spread ±0.2``)."""
    name = _FORM_NAMES.get(row["budget"], row["budget"]) if long else row["budget"]
    width = row.get("budget_spread")
    return f"{name} ±{width:g}" if row["budget"] == "spread" and width is not None else name


def meets_budget_target(row: dict[str, Any], sample: dict[str, Any]) -> bool:
    """The adaptivity target of a budget form against the per-sample form at the same betas and
    length: p90 / p10 of per-image GFLOPs >= ``SPREAD_TARGET`` with PSNR@10 no more than
    ``BUDGET_PSNR_SLACK`` dB below the per-sample form's."""
    return row["p90/p10"] >= SPREAD_TARGET and round(row["psnr@10"] - sample["psnr@10"], 6) >= -BUDGET_PSNR_SLACK


def budget_section(forms: dict[str, Any]) -> str:
    """The report's comparison of the budget forms (``results["fig7"]["budget"]``): a table, and
    per group (same betas, same length) how far each form lets compute follow the image and
    what PSNR@10 it costs against the per-sample form (eq. 13 as written), and which forms
    meet the target (``meets_budget_target``)."""
    if not forms["groups"] and not forms["missing"]:
        return ""
    out = ["\n### The budget: per sample, on the batch mean, or spread\n\n"]
    table = [r for group in forms["groups"] for r in group]
    if table:
        out.append(_table(*_with_trained(["budget", "run", "GFLOPs", "PSNR@10", "GFLOPs p90 / p10", "layer patterns"],
                                         [[budget_form(r), f"`{r['run']}`", _num(r["gflops"], 3), _num(r["psnr@10"]),
                                           _num(r["p90/p10"], 3), str(r["layer_patterns"])] for r in table], table)))
        out.append("\nEach group has the same betas and training length; the sparsity budget is held per image "
                   "(`sample`, eq. 13 as written), on the batch mean (`batch`) or on the batch's distribution, "
                   "uniform around the betas with the half-width given, clipped so that it stays in [0, 1] "
                   "(`spread`, a distributional prior that asks for compute to differ between images). The "
                   f"target: p90 / p10 >= {SPREAD_TARGET:g} with PSNR@10 no more than "
                   f"{BUDGET_PSNR_SLACK:g} dB below the per-sample form.\n")
    for group in forms["groups"]:
        sample = next((r for r in group if r["budget"] == "sample"), None)
        others = [r for r in group if r is not sample]
        if sample is None or not others:
            continue
        parts = []
        for r in others:
            delta = r["psnr@10"] - sample["psnr@10"]
            parts.append(f"{budget_form(r, long=True)} (`{r['run']}`): p90 / p10 {r['p90/p10']:.3f}, "
                         f"PSNR@10 {delta:+.3f} dB at {r['gflops'] / sample['gflops']:.2f}x the GFLOPs")
        meets = [f"the {budget_form(r, long=True)} form" for r in others if meets_budget_target(r, sample)]
        verdict = f"{' and '.join(meets) or 'no form'} {'meets' if len(meets) < 2 else 'meet'} the target"
        out.append(f"\n- Against per sample (`{sample['run']}`, p90 / p10 {sample['p90/p10']:.3f}): " + "; ".join(parts)
                   + f". {verdict[0].upper()}{verdict[1:]}.\n")
    out.append(_missing_line(forms))
    return "".join(out)


def build_report(results: dict[str, Any], figures: str = "figures", present: Optional[set[str]] = None,
                 intro: str = "") -> str:
    """``report.md``: scale and data, every table beside the paper's figures, the figures, the claims.

    Args:
        results: a ``results.json`` dict.
        figures: the figures' folder, relative to where the markdown lives.
        present: figure names that exist (None: assume all); a missing one is said to be missing.
        intro: a paragraph put after the title.
    """
    s = results["settings"]
    out = [f"# Reproduction of AdaColViT (WACV 2024): {s['scale']} scale\n\n", intro]
    if s["scale"] == "tiny":
        out.append("> **tiny (plumbing check, not numbers)**: shrunk models trained for a few steps on a few photos. "
                   "The tables and figures below check that every comparison is produced end to end; they say "
                   "nothing about the methods.\n\n")
    out.append(f"- Scale: {s['description']}.\n- Training data: `{s['train_data']}`; evaluation: `{s['eval_data']}` "
               f"({s['eval_images'] or 'all'} images, {s['image_size']} px), hint sets drawn once "
               f"(seed {s['hint_seed']}, {s['hint_size']}x{s['hint_size']} squares) and shared by every model.\n"
               f"- Models: {s['why']}\n" + form_lines(s)
               + f"- Command: `{s['command']}` (resumable; `--only NAME,...`); "
               f"{estimate_text(s.get('estimated_minutes'), s.get('aim_minutes'), s.get('estimate'))}.\n"
               + paper_lines())
    for run, diff in (s.get("trained_otherwise") or {}).items():
        settings = ", ".join(f"{key}={value}" for key, value in diff.items())
        out.append(f"- `{run}` was trained with {settings} (its checkpoint's config, not the plan's).\n")
    for run, origin in (s.get("placed") or {}).items():
        out.append(f"- `{run}` was not trained by this command: its checkpoint is the {origin}, "
                   f"trained earlier with the same training values from the same start (`--from-shipped`).\n")
    restored = s.get("restored") or {}
    if restored.get("results") or restored.get("trainings"):
        out.append(f"- {len(restored['results'])} of the results were measured by an earlier session's suite and "
                   f"restored from its committed evidence ({', '.join(f'`{f}`' for f in restored['from'])}; "
                   f"`--restore`), with {len(restored['trainings'])} trainings whose checkpoints are not in DIR.\n")
    if s.get("failed"):
        out.append(f"- Failed runs (tracebacks in `DIR/failed/`): {', '.join(s['failed'])}.\n")
    runs = s.get("runs")
    if runs and runs["done"] < runs["total"]:
        out.append(f"- **Unfinished**: {runs['done']} of the suite's {runs['total']} runs are done; what the others "
                   f"would give reads `-` or is listed as missing under each table, and a claim without its "
                   f"numbers reads \"not measured\". The same command goes on with the rest.\n")

    # Fig. 4
    fig4 = results["fig4"]
    ks = fig4.get("all_ks", fig4["ks"])
    out.append("\n## Fig. 4: PSNR and LPIPS against GFLOPs\n\n")
    has_lpips = any(f"lpips@{k}" in r for r in fig4["rows"] for k in ks)
    header = ["model", "GFLOPs", "paper GFLOPs"] + [f"PSNR@{k}" for k in ks] + \
             ([f"LPIPS@{k}" for k in ks] if has_lpips else []) + ["paper PSNR@10"]
    rows = [[r["label"], _num(r["gflops"], 3), _paper("table2", PAPER_NAMES.get(r["run"]), "gflops")]
            + [_num(r.get(f"psnr@{k}")) for k in ks] + ([_num(r.get(f"lpips@{k}"), 4) for k in ks] if has_lpips else [])
            + [_paper("table2", PAPER_NAMES.get(r["run"]), "psnr10")] for r in fig4["rows"]]
    out.append(_table(*_with_trained(header, rows, fig4["rows"])))
    out.append("\nThe paper's columns are its Table 2 (ctest10k, 10 hints, 224 px): Fig. 4 itself is a plot, "
               "without numbers in the text.\n" + _missing_line(fig4))
    out.append(_figure("fig4", "Fig. 4: PSNR@k and LPIPS@k against GFLOPs", figures, present))

    # Table 1
    t1 = results["table1"]
    out.append(f"\n## Table 1: other datasets at {t1['k']} hints (no training on them)\n\n")
    header = (["model"] + [f"{d} PSNR@{t1['k']}" for d in t1["datasets"]] + [f"{d} LPIPS@{t1['k']}" for d in t1["datasets"]]
              + [f"paper {PAPER_DATASETS.get(d, d)} PSNR@10" for d in t1["datasets"]]
              + [f"paper {PAPER_DATASETS.get(d, d)} LPIPS@10" for d in t1["datasets"]])
    rows = [[r["label"]] + [_num(r.get(d, {}).get(f"psnr@{t1['k']}")) for d in t1["datasets"]]
            + [_num(r.get(d, {}).get(f"lpips@{t1['k']}"), 4) for d in t1["datasets"]]
            + [_paper("table1", _paper_dataset_row(d, r["run"]), "psnr10") for d in t1["datasets"]]
            + [_paper("table1", _paper_dataset_row(d, r["run"]), "lpips10", 3) for d in t1["datasets"]]
            for r in t1["rows"]]
    out.append(_table(*_with_trained(header, rows, t1["rows"])))
    out.append(f"\nThe paper's columns are its {source('table1')}; our photos are the test sets named below, "
               f"not the paper's.\n" + _missing_line(t1))
    if t1["rows"] and any(t1["rows"][0].get(d) for d in t1["datasets"]):
        sizes = ", ".join(f"{d}: {next((r[d]['images'] for r in t1['rows'] if d in r), '-')} images" for d in t1["datasets"])
        out.append(f"\n({sizes}; `{', '.join(s['transfer'].values())}`.)\n")

    # Table 2
    t2 = results["table2"]
    out.append("\n## Table 2: latency (1 thread, batch 1), GFLOPs, PSNR@10\n\n")
    out.append(table2_section(t2))
    built = [r["label"] for r in t2["rows"] if r.get("weights") == "architecture"]
    if built:
        out.append(f"\n{', '.join(built)}: timed as built from {'its' if len(built) == 1 else 'their'} recipe, "
                   f"{'its' if len(built) == 1 else 'their'} checkpoint being gone (results restored from the "
                   f"evidence); a network without gates does the same work whatever its weights, so its latency "
                   f"is that of the trained one. PSNR@10 is the trained model's.\n")
    twins = [(r["label"], r["weights"][len(SHIPPED_PREFIX):]) for r in t2["rows"]
             if str(r.get("weights", "")).startswith(SHIPPED_PREFIX)]
    for label, shipped in twins:
        out.append(f"\n{label}: timed on the shipped weights `{shipped}`, trained with the same values from the "
                   f"same start as this suite's model, whose checkpoint is gone (its results restored from the "
                   f"evidence); they are stored in int8, so its gates' decisions, and its time, may differ a "
                   f"little from those of the model its PSNR@10 is of.\n")
    out.append(_missing_line(t2))

    # Table 3
    t3 = results["table3"]
    k = t3["k"]
    out.append("\n## Table 3: adaptive ViTs at about equal GFLOPs\n\n")
    reference = t3.get("reference")   # the dense iColoriT-T at Table 3's size (older results: Fig. 4's)
    if reference is None and "reference" not in t3:
        reference = next((r for r in results["fig4"]["rows"] if r["run"] == "icolorit-t"), None)
    dense = reference["gflops"] if reference else None
    paper_dense = paper_value("table2", "iColoriT-T", "gflops")
    rows = [[r["label"], _num(r["gflops"], 3), _percent(r["gflops"], dense), _num(r.get(f"psnr@{k}")),
             _num(r.get(f"lpips@{k}"), 4), _paper("table3", PAPER_NAMES.get(r["run"]), "gflops"),
             _paper_share("table3", PAPER_NAMES.get(r["run"]), paper_dense),
             _paper("table3", PAPER_NAMES.get(r["run"]), "psnr10")] for r in t3["rows"]]
    out.append(_table(*_with_trained(["method", "GFLOPs", "% of iColoriT-T GFLOPs", f"PSNR@{k}", f"LPIPS@{k}",
                                      "paper GFLOPs", "paper % of iColoriT-T GFLOPs", "paper PSNR@10"],
                                     rows, t3["rows"])))
    out.append(f"\nThe paper's columns are its {source('table3')}, against iColoriT-T's "
               f"{_num(paper_dense)} GFLOPs of its Table 2; here every method is trained toward about 85% of the "
               f"dense compute (iColoriT-T's GFLOPs), and the third column says where each one landed.\n")
    if t3.get("reference"):
        out.append(f"\nThe dense iColoriT-T of this table is `{reference['run']}` ({trained_cell(reference)}): "
                   f"{_num(reference['gflops'], 3)} GFLOPs, PSNR@{k} {_num(reference.get(f'psnr@{k}'))}, "
                   f"LPIPS@{k} {_num(reference.get(f'lpips@{k}'), 4)}.\n")
    out.append(_missing_line(t3))

    # Table 4
    t4 = results["table4"]
    k = t4["k"]
    out.append("\n## Table 4: number of channel groups G\n\n")
    def paper_groups(r: dict[str, Any]) -> Optional[dict[str, Any]]:
        return {"groups": r["groups"]} if "groups" in r else None

    rows = [[str(r.get("groups", "-")), str(r.get("beta_patch", "-")), f"`{r['run']}`", r.get("budget", "-"),
             _num(r["gflops"], 3), _num(r.get(f"psnr@{k}")), _num(r.get(f"lpips@{k}"), 4),
             _paper("table4", paper_groups(r), "gflops"), _paper("table4", paper_groups(r), "psnr10"),
             _paper("table4", paper_groups(r), "lpips10", 3)] for r in t4["rows"]]
    out.append(_table(*_with_trained(["G", "beta_patch", "run", "budget", "GFLOPs", f"PSNR@{k}", f"LPIPS@{k}",
                                      "paper GFLOPs", "paper PSNR@10", "paper LPIPS@10"], rows, t4["rows"])))
    best = max((r for r in table_rows("table4") if r["psnr10"] is not None), key=lambda r: r["psnr10"], default=None)
    out.append(f"\nbeta_patch per G is chosen for about equal GFLOPs. The paper's columns are its "
               f"{source('table4')}" + ("" if best is None else
                                        f"; its best is G = {best['groups']} ({_num(best['psnr10'])} dB PSNR@10 at "
                                        f"{_num(best['gflops'])} GFLOPs)") + ".\n" + _missing_line(t4))

    # Fig. 6
    f6 = results["fig6"]
    out.append("\n## Fig. 6: learned against random selection\n\n")
    rows = []
    for variant, entries in f6["variants"].items():
        for e in entries:
            rows.append([variant, f"({e['beta_patch']:g}, {e['beta_layer']:g})",
                         _num(e["learned"]["patch_keep"], 3), _num(e["learned"]["layer_keep"], 3),
                         _num(e["learned"]["gflops"], 3), _num(e["learned"]["psnr@10"]),
                         _num(e["random"]["gflops"], 3), _num(e["random"]["psnr@10"]),
                         f"{e['learned']['psnr@10'] - e['random']['psnr@10']:+.3f}",
                         _num(e["learned"].get("p90/p10"), 3), str(e["learned"].get("layer_patterns", "-"))])
    out.append(_table(["selection", "betas (patch, layer)", "patch keep", "layer keep", "learned GFLOPs",
                       "learned PSNR@10", "random GFLOPs", "random PSNR@10", "learned - random (dB)",
                       "GFLOPs p90 / p10", "layer patterns"], rows))
    out.append("\nThe random control is the same trained model under `adaprune.policy(\"random\")` at the keep "
               "ratios its learned gates used on the same images. The last two columns are the learned model's "
               "per-image compute: p90 / p10 of per-image GFLOPs and the number of distinct layer-decision "
               "patterns over the images (1: every image skips the same sub-layers). Each budget is a training of "
               "its own (a short one below the paper scale), so the absolute PSNR of one budget against another "
               "carries training noise and need not rise with GFLOPs; learned - random compares one model with "
               "itself.\n")
    made = sorted({trained_cell(e) for entries in f6["variants"].values() for e in entries if "form" in e})
    if made:
        out.append(f"\nTrained: {'; '.join(made)}.\n")
    out.append(_missing_line(f6))
    out.append(_figure("fig6", "Fig. 6: learned against random selection", figures, present))

    # Fig. 7
    f7 = results["fig7"]
    out.append("\n## Fig. 7: per-image compute\n\n")
    if "spread" in f7:
        sp = f7["spread"]
        out.append(f"{f7['label']} at {f7['k']} hints over {f7['images']} images: per-image GFLOPs\n\n")
        out.append(_table(["min", "p10", "median", "p90", "max", "mean", "p90 / p10", "layer patterns"],
                          [[_num(sp["min"], 4), _num(sp["p10"], 4), _num(sp["median"], 4), _num(sp["p90"], 4),
                            _num(sp["max"], 4), _num(sp["mean"], 4), _num(sp["p90/p10"], 3),
                            str(f7["layer_patterns"])]]))
        gates = f7.get("layer_gates")
        if gates is not None:
            closest = "" if gates["closest"] is None else (
                f" Of those that never switch, the closest any image came to flipping one is |logit| = "
                f"{gates['closest']:.2f} (probability {1 / (1 + math.exp(-gates['closest'])):.3f} of the decision taken).")
            out.append(f"\nLayer gates (eval, sigmoid > 0.5): of {gates['sublayers']} attention / FFN sub-layers, "
                       f"{gates['always_run']} run for every image, {gates['never_run']} for none and "
                       f"{gates['switching']} switch between images.{closest}\n")
        colour = f7.get("colour")
        if colour is not None and not math.isnan(colour["spearman"]):
            rho = colour["spearman"]
            trend = ("the more colourful the photo, the more compute" if rho > 0.1 else
                     "the duller the photo, the more compute" if rho < -0.1 else "no clear trend")
            out.append(f"\nWhat compute follows: against the photo's colourfulness (the mean chroma of its true "
                       f"colours), Spearman's rho = {rho:+.2f} ({trend}); the least colourful tenth of the photos "
                       f"({colour['tenth']}) averages {colour['least_colourful_gflops']:.4f} GFLOPs, the most "
                       f"colourful tenth {colour['most_colourful_gflops']:.4f}.\n")
        others = [(e["run"], e["learned"]["p90/p10"]) for rows in results.get("fig6", {}).get("variants", {}).values()
                  for e in rows if e["learned"].get("p90/p10") is not None]
        if others:
            low, high = min(others, key=lambda o: o[1]), max(others, key=lambda o: o[1])
            reach = sum(ratio >= SPREAD_TARGET for _, ratio in others)
            out.append(f"\nThe other trained gates: over the {len(others)} Fig. 6 models (other betas and "
                       f"selections), p90 / p10 of per-image GFLOPs is {low[1]:.3f} (`{low[0]}`) to "
                       f"{high[1]:.3f} (`{high[0]}`); {reach} of them reach {SPREAD_TARGET:g}.\n")
        out.append(_figure("fig7", "Fig. 7: the images with the least and the most GFLOPs", figures, present))
    out.append(_missing_line(f7))
    forms = f7.get("budget", {"groups": [], "missing": []})
    out.append(budget_section(forms))
    if any(forms["groups"]):
        out.append(_figure("budget", "Budget forms: per-image GFLOPs", figures, present))

    # Fig. 8
    f8 = results["fig8"]
    out.append("\n## Fig. 8: token keep masks of block 3's FFN\n\n")
    if f8.get("maps") is not None:
        fractions = ", ".join(_num(v, 2) for v in f8["keep_fraction"])
        out.append(f"{f8['label']}, block {f8['block']} (counted from 1), FFN: fraction of tokens kept at full "
                   f"width per photo: {fractions}.\n")
        out.append(_figure("fig8", "Fig. 8: per-token keep masks of block 3's FFN", figures, present))
    elif not f8.get("missing"):
        out.append("The model makes no token decisions in that block.\n")
    out.append(_missing_line(f8))

    # claims
    out.append("\n## The paper's claims, checked\n\n")
    verdict = {True: "holds", False: "**does not hold**", None: "not measured"}
    rows = [[c["claim"], c["paper"], c["ours"], verdict[c["holds"]]] for c in results["claims"]]
    out.append(_table(["claim", "paper", "ours", "verdict"], rows, numeric=False))
    out.append("\nA paper cell that names a table is the same check run on the paper's own numbers from that table "
               "(`adacolor.report.paper_results`), and says so where those numbers fail it; a plot's cell says what "
               "the paper shows, without numbers.\n")
    return "".join(out)
