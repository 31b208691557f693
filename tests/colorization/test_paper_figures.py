"""The paper's numbers: read from data (``adacolor/paper_figures.json``), a missing one reads ``-``
in the report, and the claims' "paper" cells are the claim checks run on the paper's tables."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from adacolor import paper, report
from adacolor.paper import paper_value

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "paper" / "figures.json"
DATA = ROOT / "tasks" / "colorization" / paper.FIGURES_FILE
KEYS = {"table1": ("dataset", "method"), "table2": ("method",), "table3": ("method",), "table4": ("groups",)}


def _raw() -> dict:
    return json.loads(DATA.read_text())


# -- the data --------------------------------------------------------------------------------

def test_the_copy_kept_in_the_package_is_the_papers_figures_json():
    if not SHARED.is_file():
        pytest.skip(f"{SHARED} is not here (the package's copy is used alone)")
    assert json.loads(SHARED.read_text()) == _raw() == paper.load_figures()


def test_every_value_read_equals_the_data():
    raw = _raw()
    checked = 0
    for table, keys in KEYS.items():
        columns = raw[table]["columns"]
        for row in raw[table]["rows"]:
            cells = dict(zip(columns, row))
            key = cells["method"] if keys == ("method",) else {k: cells[k] for k in keys}
            for column in columns:
                assert paper_value(table, key, column) == cells[column], (table, key, column)
                checked += 1
    assert checked == 8 * 5 + 5 * 7 + 4 * 3 + 3 * 4


def test_the_tables_number_is_used_where_the_text_differs():
    assert paper_value("table2", "AdaColViT-T", "gflops") == 0.78              # the text: 0.79
    assert paper_value("table2", "AdaColViT-T-d24", "latency_ms") == 48        # the text: 47
    note = paper.text_differs()["table2"]
    assert "1.75x" in note and "0.79" in note and set(paper.text_differs()) == {"table2"}
    assert report.paper_lines().count("this report uses the table: Table 2: The text says") == 1


def test_a_number_the_paper_does_not_give_is_none_and_a_typo_is_an_error():
    assert paper_value("table2", "SwinIR-T", "psnr10") is None                 # no such row
    assert paper_value("table2", "iColoriT-T", "gflops_std") is None           # an empty cell
    assert paper_value("table4", {"groups": 16}, "psnr10") is None
    assert paper_value("table1", {"dataset": "CUB-200", "method": "iColoriT-T"}, "psnr10") == 29.60
    with pytest.raises(KeyError, match="no column 'psnr@10'"):
        paper_value("table2", "iColoriT-T", "psnr@10")
    with pytest.raises(KeyError):
        paper_value("table5", "iColoriT-T", "psnr10")
    with pytest.raises(ValueError, match="matches 2 rows"):
        paper_value("table1", "iColoriT-T", "psnr10")                           # one per dataset
    assert paper.source("table3").startswith("Table 3 (Patch-removal methods")


def test_load_figures_gives_a_fresh_dict():
    figures = paper.load_figures()
    figures["table2"]["rows"].clear()
    assert paper_value("table2", "iColoriT-T", "latency_ms") == 61


# -- the report's paper columns ----------------------------------------------------------------

def _results() -> dict:
    """A hand-made results.json: Fig. 4 / Tables 1-4 with our runs, Figs. 6-8 missing."""
    fig4 = [{"run": "icolorit-t", "label": "iColoriT-T", "gflops": 0.30, "psnr@10": 27.00, "lpips@10": 0.13},
            {"run": "adacolvit-t", "label": "AdaColViT-T", "gflops": 0.16, "psnr@10": 26.98, "lpips@10": 0.14},
            {"run": "swinir-t", "label": "SwinIR-T", "gflops": 0.26, "psnr@10": 24.00, "lpips@10": 0.17}]
    bench = {"icolorit-t": (16.0, 0.3), "adacolvit-t": (12.0, 0.2), "swinir-t": (45.0, 1.0)}
    t1 = [{"run": r["run"], "label": r["label"], "Oxford flowers": {"psnr@10": 21.0 + i, "lpips@10": 0.2, "images": 9},
           "CUB-200": {"psnr@10": 25.0 + i, "lpips@10": 0.1, "images": 9}} for i, r in enumerate(fig4)]
    t3 = [{"run": run, "label": label, "gflops": 0.25, "psnr@10": psnr} for run, label, psnr in
          (("dynamicvit-t", "DynamicViT-T", 26.0), ("adavit-t", "AdaViT-T", 25.5), ("avit-t", "A-ViT-T", 25.8),
           ("adacolvit-t-t3", "AdaColViT-T", 26.5))]
    t4 = [{"run": f"adacolvit-t-g{g}", "groups": g, "beta_patch": 0.5, "budget": "batch", "gflops": 0.19,
           "psnr@10": psnr, "lpips@10": 0.14} for g, psnr in ((2, 26.7), (4, 26.8), (8, 26.6))]
    results = {
        "fig4": {"ks": [10], "all_ks": [10], "rows": fig4, "missing": []},
        "table1": {"datasets": ["Oxford flowers", "CUB-200"], "k": 10, "rows": t1, "missing": []},
        "table2": {"rows": [r | {"latency_ms_mean": bench[r["run"]][0], "latency_ms_std": bench[r["run"]][1]}
                            for r in fig4], "missing": [], "settings": {}},
        "table3": {"k": 10, "rows": t3, "missing": []},
        "table4": {"k": 10, "rows": t4, "missing": []},
        "fig6": {"k": 10, "variants": {"patch+layer": [], "patch": [], "layer": []}, "missing": ["fig6-pl-p50-l80"]},
        "fig7": {"missing": ["compute-adacolvit-t"]}, "fig8": {"missing": ["compute-adacolvit-t"]},
        "settings": {"scale": "cpu", "description": "cpu: 112 px", "train_data": "t", "eval_data": "e",
                     "eval_images": 9, "image_size": 112, "hint_seed": 0, "hint_size": 2, "why": "because",
                     "command": "adacolor reproduce --scale cpu --out DIR",
                     "transfer": {"Oxford flowers": "f", "CUB-200": "c"}, "failed": []},
    }
    results["claims"] = report.check_claims(results)
    return results


def _row(text: str, section: str, label: str) -> list[str]:
    """The cells of the row starting with ``label`` in the table under ``## section``."""
    part = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    line = next(line for line in part.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_paper_columns_are_read_from_the_data_and_a_missing_number_reads_a_dash():
    text = report.build_report(_results())
    assert _row(text, "Fig. 4", "iColoriT-T")[2] == "1.43" and _row(text, "Fig. 4", "iColoriT-T")[-1] == "28.81"
    assert _row(text, "Fig. 4", "SwinIR-T")[2] == "-" and _row(text, "Fig. 4", "SwinIR-T")[-1] == "-"
    assert _row(text, "Table 1", "AdaColViT-T")[-4:] == ["24.71", "29.63", "0.128", "0.089"]
    assert _row(text, "Table 1", "SwinIR-T")[-4:] == ["-", "-", "-", "-"]
    assert _row(text, "Table 2", "AdaColViT-T")[-3:] == ["34 ± 8", "0.78 ± 0.01", "28.83 ± 0.01"]
    assert _row(text, "Table 2", "iColoriT-T")[-3:] == ["61 ± 6", "1.43", "28.81 ± 0.01"]   # no GFLOPs std given
    assert _row(text, "Table 2", "SwinIR-T")[-3:] == ["-", "-", "-"]
    assert _row(text, "Table 3", "DynamicViT-T")[-3:] == ["1.24", "87%", "28.75"]
    assert _row(text, "Table 3", "AdaColViT-T")[-3:] == ["1.18", "83%", "29.03"]
    assert _row(text, "Table 4", "8")[-3:] == ["0.75", "28.67", "0.086"]
    assert "its best is G = 2 (28.71 dB PSNR@10 at 0.74 GFLOPs)" in text
    assert "this report uses the table: Table 2" in text


def test_a_number_taken_out_of_the_data_reads_a_dash_never_a_guess(monkeypatch):
    figures = paper.load_figures()
    row = next(r for r in figures["table2"]["rows"] if r[0] == "AdaColViT-T")
    row[1] = None                                               # its latency, gone
    figures["table4"]["rows"] = [r for r in figures["table4"]["rows"] if r[1] != 8]
    monkeypatch.setattr(paper, "_text", lambda: json.dumps(figures))
    results = _results()
    text = report.build_report(results)
    assert _row(text, "Table 2", "AdaColViT-T")[-3:] == ["-", "0.78 ± 0.01", "28.83 ± 0.01"]
    assert _row(text, "Table 4", "8")[-3:] == ["-", "-", "-"]
    faster = next(c for c in results["claims"] if c["claim"].startswith("AdaColViT-T is faster"))
    assert faster["paper"] == report.claim_faster([])["paper"]   # no numbers: the paper's words, not a guess
    assert "ms" not in faster["paper"]


# -- the claims on hand-made numbers, with the paper's cells ---------------------------------------

def test_each_claims_paper_cell_is_the_same_check_on_the_papers_tables():
    claims = {c["claim"].split(" (")[0]: c for c in _results()["claims"]}
    assert len(claims) == 8
    efficiency = claims["AdaColViT-T within 0.05 dB PSNR@10 of iColoriT-T at <= 60% of its GFLOPs"]
    assert efficiency["paper"] == "Table 2: +0.020 dB at 54.5% of the GFLOPs (0.780 / 1.430)"
    assert efficiency["ours"] == "-0.020 dB at 53.3% of the GFLOPs (0.160 / 0.300)" and efficiency["holds"] is True
    transfer = next(c for c in claims.values() if "on Oxford flowers and CUB-200" in c["claim"])
    assert transfer["paper"] == "Table 1: Oxford 102flowers +0.040 dB, CUB-200 +0.030 dB" and transfer["holds"] is True
    faster = claims["AdaColViT-T is faster than iColoriT-T"]
    assert faster["paper"] == "Table 2: 34 ± 8 ms against 61 ± 6 ms (1.79x)"   # the table's 1.79x, not the text's 1.75x
    assert faster["holds"] is True
    front = next(c for c in claims.values() if "front of Fig. 4" in c["claim"])
    assert front["paper"] == "Table 2's models (Fig. 4 is a plot): not dominated (28.83 dB at 0.780 GFLOPs among 5 models)"
    beats = claims["AdaColViT beats DynamicViT, AdaViT and A-ViT in PSNR@10 at about equal GFLOPs"]
    assert beats["paper"].startswith("Table 3: DynamicViT +0.280 dB at 0.95x its GFLOPs;") and beats["holds"] is True
    groups = next(c for c in claims.values() if c["claim"].startswith("G = 2"))
    assert groups["paper"].startswith("Table 4: G=2: 28.71 dB at 0.740 GFLOPs") and groups["holds"] is False
    for plot in ("Fig. 6", "Fig. 7"):
        cell = next(c["paper"] for c in claims.values() if c["paper"].startswith(plot))
        assert "no numbers in the text" in cell
    assert [c["holds"] for c in claims.values()][-2:] == [None, None]   # Figs. 6-7 missing here


def test_the_paper_cell_follows_the_data_and_says_when_the_papers_numbers_fail():
    figures = paper.load_figures()
    for row in figures["table4"]["rows"]:
        if row[1] == 4:
            row[2] = 28.90                           # G = 4 made the paper's best
    for row in figures["table2"]["rows"]:
        if row[0] == "iColoriT-T":
            row[5] = 28.70
    claims = report.check_claims(_results(), figures)
    efficiency, groups = claims[0], claims[5]
    assert efficiency["paper"] == "Table 2: +0.130 dB at 54.5% of the GFLOPs (0.780 / 1.430)"
    assert groups["paper"].endswith("(the paper's own numbers fail this check)")
    assert groups["holds"] is False                  # ours: G = 4 best, whatever the paper's numbers
    assert report.check_claims(_results())[5]["paper"] != groups["paper"]   # the packaged data is untouched


def test_paper_results_put_the_tables_under_our_runs():
    theirs = report.paper_results()
    assert {r["run"] for r in theirs["table3"]["rows"]} == {"dynamicvit-t", "adavit-t", "avit-t", "adacolvit-t-t3"}
    assert {r["run"] for r in theirs["table2"]["rows"]} == {"uformer-s", "swinir-s", "icolorit-t", "adacolvit-t",
                                                            "adacolvit-t-d24"}
    assert theirs["table1"]["datasets"] == ["Oxford 102flowers", "CUB-200"]
    assert [r["groups"] for r in theirs["table4"]["rows"]] == [2, 4, 8]
    figures = paper.load_figures()
    figures["table3"]["rows"][0][2] = None           # DynamicViT's PSNR@10 gone: its row is left out
    assert "dynamicvit-t" not in {r["run"] for r in report.paper_results(figures)["table3"]["rows"]}
    beats = report.check_claims(_results(), copy.deepcopy(figures))[4]
    assert beats["paper"] == report.claim_beats_baselines([])["paper"]   # the paper's words, no partial check


@pytest.mark.parametrize("folder", ["results", "results-scratch"])
def test_the_committed_claims_carry_the_papers_cells_of_the_data(folder):
    """docs/<folder>/results.json's claims are check_claims of its own numbers: its paper cells are
    the data's as it is now (``adacolor reproduce --report-only`` checks them again)."""
    data = ROOT / "docs" / folder / "results.json"
    if not data.is_file():
        pytest.skip(f"no committed docs/{folder}")
    results = json.loads(data.read_text())
    assert results["claims"] == report.check_claims(results)
