"""adacolor reproduce: the tiny suite end to end, resumption, claim checks and the report."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from adacolor import estimate, report, reproduce
from adacolor.reproduce import (Training, collect, docs_page, make_scale, plan, run_done, run_suite, schedule,
                                select, train_dir, training_done)

KEYS = ("fig4", "table1", "table2", "table3", "table4", "fig6", "fig7", "fig8", "claims", "settings")
DOCS = Path(__file__).resolve().parents[2] / "docs"
SCALE_FORMS = (("tiny", "finetune"), ("tiny", "scratch"), ("cpu", "finetune"), ("cpu", "scratch"), ("paper", "scratch"))


# -- the plan --------------------------------------------------------------------------------

def test_every_result_key_has_runs_at_every_scale():
    for name, form in SCALE_FORMS:
        scale = make_scale(name, form=form)
        assert scale.form == form
        roles = {role for t in scale.trainings for role in t.roles}
        assert {"fig4", "table1", "table2", "table3", "table4", "fig6", "fig7", "fig8"} <= roles
        runs = plan(scale)
        assert len({r.name for r in runs}) == len(runs)
        kinds = {getattr(r, "kind", "train") for r in runs}
        assert kinds == {"train", "quality", "transfer", "compute", "random", "bench"}


def test_budget_twins_and_the_ablations_budget_at_each_scale():
    from adacolor.config import config_values, make_config

    for name, form in SCALE_FORMS:
        scale = make_scale(name, form=form)
        configs = {t.name: make_config(t.recipe, t.overrides) for t in scale.trainings}
        for t in scale.trainings:   # the torch-free values the plan compares are make_config's
            assert make_config(**config_values(t.recipe, t.overrides)) == configs[t.name]
        twins = [t for t in scale.trainings if "twin_of" in t.tag]
        assert twins and all(configs[t.name] != configs[t.tag["twin_of"]] for t in twins)   # no training twice
        g2 = [t.name for t in scale.trainings if "table4" in t.roles and t.tag.get("groups") == 2]
        ablations = [t for t in scale.trainings if configs[t.name].model == "adacolvit-t"
                     and (set(t.roles) & {"table3", "fig6"} or t.tag.get("groups", 2) != 2)]
        if name == "paper":   # every model with its recipe's budget; no per-sample twin of a per-sample model
            assert g2 == ["adacolvit-t"] and "adacolvit-t-sample" not in configs
            assert all(c.budget == configs["adacolvit-t"].budget for n, c in configs.items()
                       if c.model == "adacolvit-t" and "twin_of" not in dict(_training(scale, n).tags))
        else:                 # the cpu recipe's spread; the ablations and Table 4's G = 2 row on the batch mean
            assert configs["adacolvit-t"].budget == make_config("cpu-adacolvit-t").budget == "spread"
            if form == "scratch":   # AdaColViT-T's batch-mean twin, trained as long as the G = 4 / 8 rows
                assert g2 == ["adacolvit-t-batch"]
            else:   # the ablations fine-tuned at their own size: the Fig. 6 model at G = 2 and (0.5, 0.8)
                assert g2 == ["fig6-pl-p50-l80"] and configs["fig6-pl-p50-l80"].patch_groups is None
                assert (configs["fig6-pl-p50-l80"].beta_patch, configs["fig6-pl-p50-l80"].beta_layer) == (0.5, 0.8)
                assert configs["adacolvit-t-g4"].image_size == configs["fig6-pl-p50-l80"].image_size
            assert configs[g2[0]].budget == "batch"
            assert len(ablations) == 12 and all(configs[t.name].budget == "batch" for t in ablations)


def _training(scale, name):
    return next(t for t in scale.trainings if t.name == name)


def test_the_finetune_form_trains_the_dense_model_once_and_fine_tunes_from_it():
    from adacolor.config import config_values

    for name in ("tiny", "cpu"):
        scale = make_scale(name)   # the default form
        assert scale.form == "finetune"
        main, ablations = scale.sizes["main"], scale.sizes["ablations"]
        trainings = {t.name: t for t in scale.trainings}
        order = [t.name for t in scale.trainings]
        values = {t.name: config_values(t.recipe, t.overrides) for t in scale.trainings}
        for t in scale.trainings:
            assert values[t.name]["image_size"] == t.image_size and values[t.name]["model"] == t.model
        # one dense base trained from scratch; everything else with a ViT starts from a dense iColoriT-T
        scratch = [t.name for t in scale.trainings if t.form == "scratch"]
        assert scratch == ["icolorit-t-lowres", "swinir-t", "uformer-t"]
        assert trainings["icolorit-t"].base == "icolorit-t-lowres" and trainings["icolorit-t"].image_size == main
        for t in scale.trainings:
            if t.base is not None:
                base = trainings[t.base]
                assert order.index(t.base) < order.index(t.name)       # the plan trains the base first
                assert base.model == "icolorit-t" and base.form == "scratch" or base.name == "icolorit-t"
                assert base.image_size == t.image_size or t.name == "icolorit-t"   # the base brought to main
                assert values[t.name]["init"] == f"run:{t.base}"
        adaptive = [t for t in scale.trainings if t.model not in ("icolorit-t", "swinir-t", "uformer-t")]
        assert {t.model for t in adaptive} == {"adacolvit-t", "dynamicvit-t", "adavit-t", "avit-t"}
        assert all(t.form == "finetune" for t in adaptive)
        # the same number of steps for every fine-tune
        steps = {estimate.training_steps(values[t.name]["data"], values[t.name]["batch_size"], values[t.name]["epochs"],
                                         values[t.name]["max_steps"]) for t in scale.trainings if t.base}
        assert len(steps) == 1
        # the main pair (and its budget twins) at the main size, the ablations at theirs
        for t in scale.trainings:
            if t.tag.get("twin_of") == "adacolvit-t" or t.name == "adacolvit-t":
                assert t.image_size == main
            elif set(t.roles) & {"table3", "table4", "fig6"} or t.tag.get("twin_of"):
                assert t.image_size == ablations, t.name
        reference, = [t for t in scale.trainings if "reference" in t.roles]   # Table 3's dense model
        assert reference.image_size == ablations and reference.model == "icolorit-t"
        # SwinIR-T and Uformer-T: no ViT to start from; trained small and scored at the main size
        scored = {r.trainings[0]: r.image_size for r in plan(scale) if getattr(r, "kind", "") == "quality"}
        assert {n for n, size in scored.items() if size is not None} == {"swinir-t", "uformer-t"}
        assert all(scored[n] == main and trainings[n].image_size < main for n in ("swinir-t", "uformer-t"))
        bench = plan(scale)[-1]
        assert bench.name == "bench" and bench.image_size == main
    cpu = make_scale("cpu")
    assert cpu.sizes == {"main": 224, "ablations": 112}
    assert make_config_steps(cpu, "adacolvit-t") == make_config_steps(cpu, "dynamicvit-t") == 590
    assert make_config_steps(cpu, "icolorit-t-lowres") == 4130   # the base: 14 epochs from scratch


def make_config_steps(scale, name):
    from adacolor.config import config_values

    t = next(t for t in scale.trainings if t.name == name)
    v = config_values(t.recipe, t.overrides)
    return estimate.training_steps(v["data"], v["batch_size"], v["epochs"], v["max_steps"])


def test_the_scratch_form_is_the_earlier_plan():
    scale = make_scale("cpu", form="scratch")
    assert all(t.form == "scratch" and t.image_size == 112 for t in scale.trainings)
    assert all(t.recipe.startswith("cpu-") for t in scale.trainings)
    assert "icolorit-t-lowres" not in {t.name for t in scale.trainings}
    assert [t.name for t in scale.trainings if "reference" in t.roles] == ["icolorit-t"]
    assert all(isinstance(r, Training) or r.image_size is None for r in plan(scale))   # scored as trained
    with pytest.raises(ValueError, match="--form scratch"):
        make_scale("paper", form="finetune")
    with pytest.raises(ValueError, match="unknown form"):
        make_scale("cpu", form="warm")


def test_cpu_scale_estimate_comes_from_the_measured_rates():
    scale = make_scale("cpu")
    runs = plan(scale)
    by_name = {r.name: r for r in runs}
    # a training's minutes: its images over the rate measured for its model at its size
    assert by_name["adacolvit-t"].minutes == pytest.approx(590 * 32 / estimate.TRAIN_RATES["vit-tiny", 224].value / 60)
    assert by_name["dynamicvit-t"].minutes == pytest.approx(590 * 32 / estimate.TRAIN_RATES["dynamicvit-t", 112].value / 60)
    assert by_name["icolorit-t-lowres"].minutes == pytest.approx(4130 * 32 / estimate.TRAIN_RATES["icolorit-t", 112].value / 60)
    assert by_name["quality-adacolvit-t"].minutes == pytest.approx(
        estimate.evaluation_minutes(224, 500, 6, "shared:imagenette/val"))
    assert by_name["transfer-cub-200-swinir-t"].minutes == pytest.approx(   # scored at 224, 2,999 photos
        estimate.evaluation_minutes(224, 2999, 1, "shared:cub200-subset/test"))
    total = reproduce.estimated_minutes(scale)
    assert total == pytest.approx(sum(r.minutes for r in runs))
    assert scale.aim_minutes == reproduce.CPU_AIM_MINUTES == 600
    # the ablations' size is decided from the estimate: 224 px only if the whole suite then fits the aim
    choice = reproduce.ablation_choice()
    assert choice["minutes"][112] == pytest.approx(total)
    assert choice["size"] == (224 if choice["minutes"][224] <= 600 else 112) == scale.sizes["ablations"]
    assert choice["minutes"][224] > choice["minutes"][112]
    assert f"Tables 3, 4 and Fig. 6 are at {choice['size']} px" in scale.sizes_why
    assert report.estimate_text(500, 480).endswith("above the 8.0 h it is meant to fit in")
    assert report.estimate_text(400, 480).endswith("within the 8.0 h it is meant to fit in")
    assert report.estimate_text(400, None) == "estimated 6.7 h on a 2-core CPU for the whole suite"
    assert report.estimate_text(400, None, "from rates").endswith("suite (from rates)")


def test_the_ablations_move_to_224_px_when_the_rates_say_the_suite_fits(monkeypatch):
    fast = estimate.Measured(1000.0, "a made-up machine")
    for key in list(estimate.TRAIN_RATES):
        monkeypatch.setitem(estimate.TRAIN_RATES, key, fast)
    for size in (112, 224):
        monkeypatch.setitem(estimate.EVAL_PASS_SECONDS, size, estimate.Measured(0.001, "made up"))
    scale = make_scale("cpu")
    assert scale.sizes == {"main": 224, "ablations": 224}
    assert "within the 10.0 h" in scale.sizes_why
    names = {t.name: t for t in scale.trainings}
    assert names["dynamicvit-t"].image_size == 224 and names["dynamicvit-t"].base == "icolorit-t"
    assert "table4" in names["adacolvit-t-batch"].roles   # G = 2: AdaColViT-T's batch-mean twin again
    assert "reference" in names["icolorit-t"].roles and not names["icolorit-t-lowres"].roles
    assert make_scale("tiny").sizes == {"main": 64, "ablations": 64}   # the tiny scale mirrors the choice


def _help(capsys) -> str:
    from adacolor.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["reproduce", "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_help_prints_the_estimate_computed_from_the_rates(capsys, monkeypatch):
    text = _help(capsys)
    finetune = reproduce.estimated_minutes(make_scale("cpu"))
    scratch = reproduce.estimated_minutes(make_scale("cpu", form="scratch"))
    assert f"fine-tuned {finetune / 60:.1f} h" in text and f"from scratch {scratch / 60:.1f} h" in text
    assert "Tables 3, 4 and Fig. 6 at 112 px" in text
    # half the measured 224-px training rate: more hours, printed
    slow = estimate.TRAIN_RATES["vit-tiny", 224]
    monkeypatch.setitem(estimate.TRAIN_RATES, ("vit-tiny", 224), estimate.Measured(slow.value / 2, slow.where))
    slower = reproduce.estimated_minutes(make_scale("cpu"))
    assert slower > finetune + 60
    text = _help(capsys)
    assert f"fine-tuned {slower / 60:.1f} h" in text and f"fine-tuned {finetune / 60:.1f} h" not in text
    assert f"from scratch {scratch / 60:.1f} h" in text   # every scratch training is at 112 px


def test_only_selects_names_and_kinds_and_rejects_unknown():
    runs = plan(make_scale("tiny"))
    assert [r.name for r in select(runs, ["icolorit-t"])] == ["icolorit-t"]
    assert {r.name for r in select(runs, ["bench"])} == {"bench"}
    assert all(getattr(r, "kind", None) == "compute" for r in select(runs, ["compute"]))
    with pytest.raises(ValueError, match="unknown run"):
        select(runs, ["no-such-run"])


def test_schedule_runs_each_evaluation_as_soon_as_its_inputs_are_trained():
    runs = plan(make_scale("cpu", form="scratch"))
    order = [r.name for r in schedule(runs)]
    assert sorted(order) == sorted(r.name for r in runs)
    at = {name: i for i, name in enumerate(order)}
    for run in runs:
        if isinstance(run, Training):
            continue
        assert all(at[t] < at[run.name] for t in run.trainings), run.name
        if run.kind == "random":
            assert at[f"compute-{run.trainings[0]}"] < at[run.name]
    # a training's own evaluations follow it directly, before the next training starts
    assert order[:3] == ["icolorit-t", "quality-icolorit-t", "transfer-oxford-flowers-icolorit-t"]
    trainings = [r.name for r in runs if isinstance(r, Training)]
    assert [n for n in order if n in trainings] == trainings
    assert order.index("quality-fig6-pl-p30-l60") < order.index("fig6-pl-p50-l80")
    # bench needs every Table 2 model: it runs after the last of them
    table2 = [t.name for t in make_scale("cpu", form="scratch").trainings if "table2" in t.roles]
    last = max(at[t] for t in table2)
    assert last < at["bench"] and not any(n in trainings for n in order[last + 1:at["bench"]])
    # evaluations of models trained earlier (not in todo) go first; the rest follow their training
    named = {r.name: r for r in runs}
    left = [named[n] for n in ("quality-swinir-t", "swinir-t", "quality-adacolvit-t", "uformer-t")]
    assert [r.name for r in schedule(left)] == ["quality-adacolvit-t", "swinir-t", "quality-swinir-t", "uformer-t"]


def _finish(out, name):
    """What a finished training leaves in ``out``: its final checkpoint and its metrics."""
    folder = out / "train" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "checkpoint.pt").write_bytes(b"")
    (folder / "metrics.json").write_text("{}")


def test_a_result_another_suite_wrote_meanwhile_is_not_redone(tmp_path, monkeypatch):
    # two suites on one DIR: a run the other one finished after this one made its list is skipped
    import adacolor.reproduce as reproduce

    executed = []

    def execute(run, out, scale, lpips):
        executed.append(run.name)
        for name in (run.name, "quality-adacolvit-t"):   # the other suite finishes quality-adacolvit-t
            (out / "eval" / name).mkdir(parents=True, exist_ok=True)
            (out / "eval" / name / "result.json").write_text("{}")

    monkeypatch.setattr(reproduce, "_execute", execute)
    for t in make_scale("tiny").trainings:
        _finish(tmp_path, t.name)
    monkeypatch.setattr(reproduce, "_lpips", lambda: (None, None))
    status = run_suite(make_scale("tiny"), tmp_path, ["quality-icolorit-t", "quality-adacolvit-t"])
    assert executed == ["quality-icolorit-t"]
    assert status["done"] == ["quality-icolorit-t"] and status["skipped"] == ["quality-adacolvit-t"]


def test_a_run_another_suite_is_running_is_skipped_not_done_twice(tmp_path, monkeypatch):
    import adacolor.reproduce as reproduce
    from adacolor.runlock import claim

    executed = []
    monkeypatch.setattr(reproduce, "_execute", lambda run, out, scale, lpips: executed.append(run.name))
    monkeypatch.setattr(reproduce, "_lpips", lambda: (None, None))
    for t in make_scale("tiny").trainings:
        _finish(tmp_path, t.name)
    with claim(tmp_path / "locks" / "quality-icolorit-t.lock") as held:   # the other suite
        assert held is None
        status = run_suite(make_scale("tiny"), tmp_path, ["quality-icolorit-t", "quality-adacolvit-t"])
    assert executed == ["quality-adacolvit-t"] and status["blocked"] == ["quality-icolorit-t"]
    status = run_suite(make_scale("tiny"), tmp_path, ["quality-icolorit-t"])   # released: its turn now
    assert executed == ["quality-adacolvit-t", "quality-icolorit-t"] and status["done"] == ["quality-icolorit-t"]


def test_bench_is_redone_when_the_suite_trains_one_of_its_models(tmp_path, monkeypatch):
    # the bench covered every model finished when the suite started; the suite then trains one more
    import adacolor.reproduce as reproduce

    executed = []

    def execute(run, out, scale, lpips):
        executed.append(run.name)
        if isinstance(run, Training):
            _finish(out, run.name)

    monkeypatch.setattr(reproduce, "_execute", execute)
    scale = make_scale("tiny")
    trained = [t.name for t in scale.trainings if t.name != "icolorit-t"]
    for name in trained:
        _finish(tmp_path, name)
    bench = tmp_path / "eval" / "bench" / "result.json"
    bench.parent.mkdir(parents=True)
    bench.write_text(json.dumps({"models": {name: {} for name in trained}}))
    assert {r.name for r in reproduce.to_do(select(plan(scale), ["icolorit-t", "bench"]), tmp_path, scale)} == \
        {"icolorit-t", "bench"}
    assert reproduce.to_do(select(plan(scale), ["bench"]), tmp_path, scale) == []   # covers every finished model
    status = run_suite(scale, tmp_path, ["icolorit-t", "bench"])
    assert executed == ["icolorit-t", "bench"] and status["done"] == executed


def test_data_applies_to_the_paper_scale_only(tmp_path):
    with pytest.raises(ValueError, match="--data"):
        make_scale("cpu", str(tmp_path))
    scale = make_scale("paper", str(tmp_path))
    assert scale.eval_data == f"ctest10k:{tmp_path / 'val'}"
    assert all(f"data={tmp_path / 'train'}" in t.overrides for t in scale.trainings)


def test_reproduce_is_an_adacolor_command():
    from adacolor.cli import build_parser

    args = build_parser().parse_args(["reproduce", "--scale", "tiny", "--out", "x", "--only", "bench,icolorit-t"])
    assert args.command == "reproduce" and args.only == ["bench", "icolorit-t"]


# -- claims on hand-made numbers -------------------------------------------------------------

def test_efficiency_claim_holds_and_fails_on_numbers():
    ok = report.claim_efficiency({"psnr@10": 27.00, "gflops": 1.0}, {"psnr@10": 26.97, "gflops": 0.55})
    assert ok["holds"] is True and set(ok) == {"claim", "paper", "ours", "holds"}
    worse = report.claim_efficiency({"psnr@10": 27.00, "gflops": 1.0}, {"psnr@10": 26.90, "gflops": 0.55})
    assert worse["holds"] is False and "-0.100 dB" in worse["ours"]
    costly = report.claim_efficiency({"psnr@10": 27.00, "gflops": 1.0}, {"psnr@10": 27.1, "gflops": 0.7})
    assert costly["holds"] is False and "70.0%" in costly["ours"]
    assert report.claim_efficiency(None, {"psnr@10": 1, "gflops": 1})["holds"] is None


def test_baseline_groups_random_and_spread_claims():
    rows = [{"run": "adacolvit-t-t3", "label": "AdaColViT-T", "psnr@10": 27.0, "gflops": 1.2},
            {"run": "dynamicvit-t", "label": "DynamicViT-T", "psnr@10": 26.8, "gflops": 1.2},
            {"run": "adavit-t", "label": "AdaViT-T", "psnr@10": 26.9, "gflops": 1.15},
            {"run": "avit-t", "label": "A-ViT-T", "psnr@10": 26.5, "gflops": 1.2}]
    assert report.claim_beats_baselines(rows)["holds"] is True
    rows[2] = dict(rows[2], **{"psnr@10": 27.2})
    failed = report.claim_beats_baselines(rows)
    assert failed["holds"] is False and "AdaViT-T -0.200 dB" in failed["ours"]
    rows[2] = dict(rows[2], **{"psnr@10": 26.0, "gflops": 0.6})  # better, but at twice its GFLOPs
    assert report.claim_beats_baselines(rows)["holds"] is False
    partial = [rows[0], rows[1]]   # AdaViT-T and A-ViT-T not measured yet: wins so far leave the claim open
    assert report.claim_beats_baselines(partial)["holds"] is None
    assert "not measured: adavit-t, avit-t" in report.claim_beats_baselines(partial)["ours"]
    partial[1] = dict(rows[1], **{"psnr@10": 27.2})   # a loss to a measured one already fails it
    assert report.claim_beats_baselines(partial)["holds"] is False
    assert report.claim_beats_baselines(rows[1:])["holds"] is None   # AdaColViT itself missing

    groups = [{"groups": 2, "psnr@10": 27.0, "gflops": 0.8}, {"groups": 4, "psnr@10": 26.9, "gflops": 0.8},
              {"groups": 8, "psnr@10": 26.5, "gflops": 0.8}]
    assert report.claim_best_groups(groups)["holds"] is True
    groups[2]["psnr@10"] = 27.5
    assert report.claim_best_groups(groups)["holds"] is False

    def entry(learned: float, random: float) -> dict:
        return {"beta_patch": 0.5, "beta_layer": 0.8, "learned": {"psnr@10": learned}, "random": {"psnr@10": random}}

    variants = {"patch+layer": [entry(27, 26), entry(26, 25)], "patch": [entry(27, 26.5)], "layer": [entry(26, 26.2)]}
    lost = report.claim_learned_beats_random(variants)
    assert lost["holds"] is False and "not better at layer (0.5, 0.8)" in lost["ours"]
    variants["layer"] = [entry(26.3, 26.2)]
    assert report.claim_learned_beats_random(variants)["holds"] is True
    variants["layer"] = []
    assert report.claim_learned_beats_random(variants)["holds"] is None

    flat = report.spread([0.182] * 9 + [0.184])
    assert flat["p90/p10"] < 1.02 and report.claim_compute_varies(flat, 1)["holds"] is False
    wide = report.spread([0.1, 0.12, 0.15, 0.18, 0.2, 0.22, 0.25, 0.3, 0.35, 0.4, 0.5])
    assert wide["min"] == 0.1 and wide["max"] == 0.5 and wide["median"] == 0.22
    assert wide["p10"] == pytest.approx(0.12) and wide["p90"] == pytest.approx(0.4)
    assert report.claim_compute_varies(wide)["holds"] is True


def test_speed_transfer_and_pareto_claims():
    t2 = [{"run": "icolorit-t", "latency_ms_mean": 9.4, "latency_ms_std": 0.1},
          {"run": "adacolvit-t", "latency_ms_mean": 6.2, "latency_ms_std": 0.2}]
    assert report.claim_faster(t2)["holds"] is True
    t2[1].update(latency_ms_mean=9.3)  # within the noise
    assert report.claim_faster(t2)["holds"] is False
    t1 = [{"run": "icolorit-t", "A": {"psnr@10": 25.0}, "B": {"psnr@10": 24.0}},
          {"run": "adacolvit-t", "A": {"psnr@10": 24.99}, "B": {"psnr@10": 23.8}}]
    result = report.claim_transfer(t1, ["A", "B"])
    assert result["holds"] is False and "B -0.200 dB" in result["ours"]
    fig4 = [{"run": "adacolvit-t", "label": "AdaColViT-T", "gflops": 0.19, "psnr@10": 26.8},
            {"run": "icolorit-t", "label": "iColoriT-T", "gflops": 0.29, "psnr@10": 26.9},
            {"run": "swinir-t", "label": "SwinIR-T", "gflops": 0.18, "psnr@10": 26.85}]
    dominated = report.claim_pareto(fig4)
    assert dominated["holds"] is False and "SwinIR-T" in dominated["ours"]


# -- the report from a hand-made results.json --------------------------------------------------

def _hand_made() -> dict:
    rows = [{"run": "icolorit-t", "label": "iColoriT-T", "gflops": 0.287, "psnr@10": 26.90, "lpips@10": 0.1339},
            {"run": "adacolvit-t", "label": "AdaColViT-T", "gflops": 0.189, "psnr@10": 26.79, "lpips@10": 0.1361,
             "groups": 2, "beta_patch": 0.5}]
    results = {
        "fig4": {"ks": [10], "all_ks": [10], "rows": rows, "missing": ["swinir-t"]},
        "table1": {"datasets": ["Oxford flowers"], "k": 10, "missing": [],
                   "rows": [{"run": "icolorit-t", "label": "iColoriT-T", "Oxford flowers": {"psnr@10": 24.0, "images": 240}},
                            {"run": "adacolvit-t", "label": "AdaColViT-T", "Oxford flowers": {"psnr@10": 24.1, "images": 240}}]},
        "table2": {"rows": [{"run": "icolorit-t", "label": "iColoriT-T", "gflops": 0.287, "latency_ms_mean": 9.36,
                             "latency_ms_std": 0.05, "psnr@10": 26.9},
                            {"run": "adacolvit-t", "label": "AdaColViT-T", "gflops": 0.189, "latency_ms_mean": 6.19,
                             "latency_ms_std": 0.04, "psnr@10": 26.79}],
                   "missing": [], "settings": {"repeats": 5, "runs": 100, "warmup": 10, "torch": "2", "cpu": "x86"}},
        "table3": {"k": 10, "rows": [], "missing": ["dynamicvit-t", "adavit-t", "avit-t", "adacolvit-t-t3"]},
        "table4": {"k": 10, "rows": rows[1:], "missing": ["adacolvit-t-g4", "adacolvit-t-g8"]},
        "fig6": {"k": 10, "variants": {"patch+layer": [], "patch": [], "layer": []}, "missing": ["fig6-pl-p50-l80"]},
        "fig7": {"missing": ["compute-adacolvit-t"]},
        "fig8": {"missing": ["compute-adacolvit-t"]},
        "settings": {"scale": "cpu", "description": "cpu: 112 px", "train_data": "shared:imagenette/train",
                     "eval_data": "shared:imagenette/val", "eval_images": 500, "image_size": 112, "hint_seed": 0,
                     "hint_size": 2, "why": "because", "command": "adacolor reproduce --scale cpu --out DIR",
                     "transfer": {"Oxford flowers": "shared:flowers17-subset/test"}, "failed": []},
    }
    results["claims"] = report.check_claims(results)
    return results


def test_report_from_hand_made_results():
    results = _hand_made()
    claims = {c["claim"]: c for c in results["claims"]}
    efficiency = next(c for c in claims.values() if c["claim"].startswith("AdaColViT-T within 0.05 dB PSNR@10 of iColoriT-T at"))
    assert efficiency["holds"] is False  # -0.11 dB: the claim does not hold on these numbers
    text = report.build_report(results, present={"fig4"})
    for heading in ("Fig. 4", "Table 1", "Table 2", "Table 3", "Table 4", "Fig. 6", "Fig. 7", "Fig. 8", "claims"):
        assert f"## {heading}" in text or heading in text
    assert "| AdaColViT-T | 0.189 | 0.78 |" in text          # ours beside the paper's GFLOPs
    assert "6.19 ± 0.04" in text
    assert "**does not hold**" in text and "not measured" in text
    assert "Missing (not run yet, or failed): `swinir-t`" in text
    assert "![Fig. 4" in text and "`fig6.png` not made" in text
    assert "tiny (plumbing check" not in text
    assert "**Unfinished**" not in text   # results written before the count: no line
    partial = copy.deepcopy(results)
    partial["settings"]["runs"] = {"done": 19, "total": 89}
    assert "**Unfinished**: 19 of the suite's 89 runs are done" in report.build_report(partial)
    partial["settings"]["runs"] = {"done": 89, "total": 89}
    assert "**Unfinished**" not in report.build_report(partial)
    tiny = copy.deepcopy(results)
    tiny["settings"]["scale"] = "tiny"
    assert "tiny (plumbing check, not numbers)" in report.build_report(tiny)
    # Table 3 says where each method landed against the dense model's GFLOPs (Fig. 4's iColoriT-T)
    t3 = copy.deepcopy(results)
    t3["table3"]["rows"] = [{"run": "dynamicvit-t", "label": "DynamicViT-T", "gflops": 0.2441, "psnr@10": 26.85}]
    dense = next(r["gflops"] for r in t3["fig4"]["rows"] if r["run"] == "icolorit-t")
    assert f"| DynamicViT-T | 0.244 | {100 * 0.2441 / dense:.0f}% | 26.85 |" in report.build_report(t3)
    t3["fig4"]["rows"] = [r for r in t3["fig4"]["rows"] if r["run"] != "icolorit-t"]
    assert "| DynamicViT-T | 0.244 | - | 26.85 |" in report.build_report(t3)


def test_table2_has_a_latency_column_per_runtime_present():
    results = _hand_made()
    assert "| model | latency (ms) | GFLOPs | PSNR@10 |" in report.build_report(results)   # PyTorch only, as before
    t2 = results["table2"]
    t2["runtimes"] = ["torch", "onnxruntime", "openvino"]
    t2["settings"]["versions"] = {"onnxruntime": "1.2", "openvino": "3.4"}
    t2["rows"][0]["runtimes"] = {"onnxruntime": {"latency_ms_mean": 7.5, "latency_ms_std": 0.1},
                                 "openvino": {"latency_ms_mean": 6.0, "latency_ms_std": 0.2}}
    t2["rows"][1]["runtimes"] = {"onnxruntime": {"latency_ms_mean": 5.0, "latency_ms_std": 0.1}}
    t2["rows"].append({"run": "swinir-t", "label": "SwinIR-T", "gflops": 0.26, "latency_ms_mean": 45.7,
                       "latency_ms_std": 1.6, "psnr@10": 24.2, "runtimes": {},
                       "not_timed": {"onnxruntime": "does not export"}})
    text = report.build_report(results)
    assert ("| model | PyTorch latency (ms) | ONNX Runtime latency (ms) | OpenVINO latency (ms) | GFLOPs | PSNR@10 |"
            in text)
    assert "| iColoriT-T | 9.36 ± 0.05 | 7.50 ± 0.10 | 6.00 ± 0.20 | 0.287 | 26.90 |" in text
    assert "| AdaColViT-T | 6.19 ± 0.04 | 5.00 ± 0.10 | - | 0.189 |" in text    # not timed on OpenVINO
    assert "| SwinIR-T | 45.70 ± 1.60 | - | - | 0.260 |" in text
    assert "on ONNX Runtime 1.2, OpenVINO 3.4" in text and "SwinIR-T: not exported" in text
    assert report.latency_runtimes([{"runtimes": {"openvino": {}}}]) == ["torch", "openvino"]
    bench_row = {"model": "x", "runtime": "openvino", "threads": 1, "latency_ms": 5.0, "latency_std_ms": 0.5}
    assert report.runtime_latency({"runtimes": {"openvino": bench_row}}, "openvino") == "5.00 ± 0.50"
    # the claims are checked on PyTorch's latency
    assert report.check_claims(results) == report.check_claims(_hand_made())


def test_each_row_says_how_its_model_was_made():
    results = _hand_made()
    assert "| trained |" not in report.build_report(results)   # results from before the forms
    made = {"icolorit-t": ("finetune", "icolorit-t-lowres", 224, 224), "adacolvit-t": ("finetune", "icolorit-t", 224, 224)}
    for key in ("fig4", "table2"):
        for row in results[key]["rows"]:
            row.update(zip(("form", "init", "trained_at", "scored_at"), made[row["run"]]))
    results["fig4"]["rows"].append({"run": "swinir-t", "label": "SwinIR-T", "gflops": 0.26, "psnr@10": 24.2,
                                    "form": "scratch", "init": None, "trained_at": 112, "scored_at": 224})
    results["table3"]["rows"] = [{"run": "dynamicvit-t", "label": "DynamicViT-T", "gflops": 0.2441, "psnr@10": 26.85,
                                  "form": "finetune", "init": "icolorit-t-lowres", "trained_at": 112, "scored_at": 112}]
    results["table3"]["reference"] = {"run": "icolorit-t-lowres", "label": "iColoriT-T (112 px)", "gflops": 0.2870,
                                      "psnr@10": 26.9, "lpips@10": 0.13, "form": "scratch", "init": None,
                                      "trained_at": 112, "scored_at": 112}
    results["settings"].update(form="finetune", sizes={"main": 224, "ablations": 112, "why": "Tables 3, 4 and "
                                                       "Fig. 6 are at 112 px: because"})
    text = report.build_report(results)
    assert "| model | trained | GFLOPs |" in text and "|---|---|---:|" in text
    assert "| iColoriT-T | fine-tuned from `icolorit-t-lowres`, 224 px | 1.434 |" not in text   # its own numbers
    assert "| iColoriT-T | fine-tuned from `icolorit-t-lowres`, 224 px | 0.287 |" in text
    assert "| SwinIR-T | from scratch, 112 px (scored at 224 px) | 0.260 |" in text
    assert "| iColoriT-T | fine-tuned from `icolorit-t-lowres`, 224 px | 9.36 ± 0.05 |" in text   # Table 2
    # Table 3 states its GFLOPs against the dense model of its own size, not Fig. 4's
    assert f"| DynamicViT-T | fine-tuned from `icolorit-t-lowres`, 112 px | 0.244 | {100 * 0.2441 / 0.2870:.0f}% |" in text
    assert "The dense iColoriT-T of this table is `icolorit-t-lowres` (from scratch, 112 px): 0.287 GFLOPs" in text
    assert ("- Form: fine-tuned (`--form finetune`)" in text and "at 224 px; Tables 3, 4 and Fig. 6 are at 112 px: "
            "because." in text)
    results["settings"]["form"] = "scratch"
    assert "- Form: from scratch (`--form scratch`)" in report.build_report(results)
    assert report.trained_cell({"run": "x"}) == "-"


def test_fig7_section_states_the_spread_of_the_fig6_models_against_the_target():
    results = _hand_made()
    sp = {"min": 0.18, "p10": 0.18, "median": 0.19, "p90": 0.2, "max": 0.22, "mean": 0.19, "p90/p10": 1.11}
    results["fig7"] = {"run": "adacolvit-t", "label": "AdaColViT-T", "k": 10, "images": 5, "spread": sp,
                       "layer_patterns": 1, "missing": []}
    entry = {"beta_patch": 0.5, "beta_layer": 1.0, "random": {"gflops": 0.2, "psnr@10": 25.9},
             "learned": {"gflops": 0.2, "psnr@10": 26.0, "patch_keep": 0.5, "layer_keep": 1.0, "p90/p10": 1.05,
                         "layer_patterns": 1}}
    results["fig6"]["variants"]["patch"] = [{**copy.deepcopy(entry), "run": "a"},
                                            {**copy.deepcopy(entry), "run": "b"}]
    results["fig6"]["variants"]["patch"][1]["learned"]["p90/p10"] = 1.42
    text = report.build_report(results)
    assert "p90 / p10 of per-image GFLOPs is 1.050 (`a`) to 1.420 (`b`); 1 of them reach 1.3." in text


def test_budget_section_says_how_far_each_form_spreads_compute_and_what_it_costs():
    def row(form, psnr, ratio, run="", gflops=0.2):
        return {"budget": form, "run": f"{run}{form}", "gflops": gflops, "psnr@10": psnr, "p90/p10": ratio,
                "layer_patterns": 1}

    text = report.budget_section({"groups": [[row("batch", 26.0, 1.31), row("sample", 26.02, 1.01),
                                              row("spread", 25.9, 1.5, gflops=0.22)],
                                             [row("batch", 25.9, 1.0, "s-"), row("sample", 26.0, 1.2, "s-")]],
                                  "missing": []})
    first, second = text.split("\n- ")[1:]
    assert first.startswith("Against per sample (`sample`, p90 / p10 1.010): batch mean (`batch`): p90 / p10 "
                            "1.310, PSNR@10 -0.020 dB at 1.00x the GFLOPs; spread (`spread`): p90 / p10 1.500, "
                            "PSNR@10 -0.120 dB at 1.10x the GFLOPs.")
    assert first.rstrip().endswith("The batch mean form meets the target.")   # spread: too far below in PSNR
    assert second.rstrip().endswith("No form meets the target.")
    assert text.count("| batch |") == 2 and text.count("| sample |") == 2 and text.count("| spread |") == 1
    text = report.budget_section({"groups": [[row("batch", 26.0, 1.1)]], "missing": ["sample"]})
    assert "Missing (not run yet, or failed): `sample`." in text and "Against per sample" not in text
    assert report.budget_section({"groups": [], "missing": []}) == ""
    # a sweep of the spread half-width: one row and one verdict per width, none folded into another
    narrow, wide = row("spread", 26.0, 1.2) | {"budget_spread": 0.2}, row("spread", 26.0, 1.4, "w") | {"budget_spread": 0.5}
    text = report.budget_section({"groups": [[narrow, row("sample", 26.0, 1.0), wide]], "missing": []})
    assert text.count("| spread ±0.2 |") == 1 and text.count("| spread ±0.5 |") == 1
    assert "spread ±0.2 (`spread`): p90 / p10 1.200" in text and "spread ±0.5 (`wspread`): p90 / p10 1.400" in text
    assert text.rstrip().endswith("The spread ±0.5 form meets the target.")


def test_rank_correlation_and_what_compute_follows():
    import math

    assert report.ranks([0.3, 0.1, 0.3, 0.2]) == [3.5, 1.0, 3.5, 2.0]   # ties share their average rank
    assert report.rank_correlation([1, 2, 3, 4], [10, 20, 40, 80]) == pytest.approx(1.0)   # monotone, not linear
    assert report.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert report.rank_correlation([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.9486832980505139)  # scipy's spearmanr
    assert math.isnan(report.rank_correlation([0.2] * 4, [1, 2, 3, 4]))   # one decision for every image
    with pytest.raises(ValueError, match="equally long"):
        report.rank_correlation([1, 2], [1, 2, 3])
    chroma = [float(i) for i in range(20)]
    gflops = [0.3 - 0.005 * i + 0.02 * (i % 2) for i in range(20)]   # mostly less for the more colourful
    duller_costs_more = report.colour_dependence(gflops, chroma)
    assert duller_costs_more["tenth"] == 2 and -1 < duller_costs_more["spearman"] < -0.5
    assert duller_costs_more["least_colourful_gflops"] == pytest.approx((gflops[0] + gflops[1]) / 2)
    assert duller_costs_more["most_colourful_gflops"] == pytest.approx((gflops[18] + gflops[19]) / 2)
    results = _hand_made()
    results["fig7"] = {"run": "adacolvit-t", "label": "AdaColViT-T", "k": 10, "images": 20, "layer_patterns": 3,
                       "spread": report.spread(gflops), "colour": duller_costs_more, "least": [], "most": [],
                       "missing": []}
    text = report.build_report(results)
    assert f"Spearman's rho = {duller_costs_more['spearman']:+.2f} (the duller the photo, the more compute)" in text


def test_budget_target_needs_both_the_spread_and_the_psnr():
    sample = {"p90/p10": 1.0, "psnr@10": 26.0}
    assert report.meets_budget_target({"p90/p10": 1.3, "psnr@10": 25.95}, sample)
    assert not report.meets_budget_target({"p90/p10": 1.29, "psnr@10": 26.5}, sample)
    assert not report.meets_budget_target({"p90/p10": 2.0, "psnr@10": 25.94}, sample)


RESULT_PAGES = ("results.md", "results-scratch.md")   # the suite's Results page and the from-scratch suite's


@pytest.mark.parametrize("page", RESULT_PAGES)
def test_docs_page_is_generated_from_the_committed_results(page):
    """docs/<page> is docs_page(docs/<its folder>/results.json): the page cannot drift from its data."""
    folder = DOCS / Path(page).stem
    if not (DOCS / page).is_file():
        pytest.skip(f"no committed docs/{page}")
    results = json.loads((folder / "results.json").read_text())
    assert set(KEYS) <= set(results)
    present = {p.stem for p in (folder / "figures").glob("*.png")}
    assert (DOCS / page).read_text() == docs_page(results, present=present, page=page)


def test_docs_page_links_its_own_evidence_folder(monkeypatch):
    monkeypatch.setattr(report, "build_report", lambda results, figures, present, intro: f"{intro}FIGURES {figures}")
    text = docs_page({"settings": {"scale": "tiny", "form": "finetune"}}, page="results-scratch.md")
    assert "[results.json](results-scratch/results.json)" in text and "FIGURES results-scratch/figures" in text
    assert "--docs docs/results-scratch.md" in text and "--form finetune" in text


# -- the evidence: each run's result kept with the docs, restored into a fresh DIR --------------

def _evidence(tmp_path: Path, scale: str = "cpu") -> Path:
    """A hand-made docs/results/: one quality result of icolorit-t and its finished training."""
    folder = tmp_path / "docs" / "results"
    (folder / "runs" / "eval").mkdir(parents=True)
    (folder / "runs" / "train").mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"settings": {"scale": scale}}))
    result = {"run": "quality-icolorit-t", "kind": "quality", "gflops": 0.287, "psnr@10": 26.9, "lpips@10": 0.13}
    (folder / "runs" / "eval" / "quality-icolorit-t.json").write_text(json.dumps(result))
    (folder / "runs" / "eval" / "quality-not-a-run.json").write_text(json.dumps(result))
    (folder / "runs" / "train" / "icolorit-t.json").write_text(
        json.dumps({"run": "icolorit-t", "placed": None, "differences": {"epochs": 3}}))
    return folder


def test_restore_puts_kept_results_back_and_marks_them(tmp_path):
    from adacolor.evidence import restore

    scale = make_scale("cpu")
    names = {r.name for r in plan(scale)}
    kept, out = _evidence(tmp_path), tmp_path / "repro"
    assert restore(out, kept, "cpu", names) == {"eval": ["quality-icolorit-t"], "train": ["icolorit-t"], "figures": []}
    training = next(r for r in plan(scale) if r.name == "icolorit-t")
    quality = next(r for r in plan(scale) if r.name == "quality-icolorit-t")
    assert run_done(training, out, scale) and run_done(quality, out, scale)
    assert not training_done(train_dir(out, "icolorit-t"))          # no checkpoint came back
    assert not (out / "eval" / "quality-not-a-run").exists()          # not a run of this scale
    results = collect(scale, out)
    assert results["fig4"]["rows"][0]["psnr@10"] == 26.9 and "icolorit-t" not in results["fig4"]["missing"]
    settings = results["settings"]
    assert settings["restored"] == {"from": [str(kept)], "trainings": ["icolorit-t"], "results": ["quality-icolorit-t"]}
    assert "icolorit-t" in settings["trained"] and settings["trained_otherwise"] == {"icolorit-t": {"epochs": 3}}
    assert "1 of the results were measured by an earlier session's suite" in report.build_report(results, figures="f")
    assert restore(out, kept, "cpu", names) == {"eval": [], "train": [], "figures": []}   # what DIR has stays
    with pytest.raises(ValueError, match="'tiny' scale, not 'cpu'"):
        restore(tmp_path / "other", _evidence(tmp_path / "t", "tiny"), "cpu", names)
    with pytest.raises(FileNotFoundError, match="no results.json and runs/"):
        restore(tmp_path / "other", tmp_path / "nowhere", "cpu", names)


def test_evidence_saved_again_keeps_a_restored_result_as_it_was_measured(tmp_path):
    from adacolor.evidence import restore, save

    kept, out = _evidence(tmp_path), tmp_path / "repro"
    restore(out, kept, "cpu", {r.name for r in plan(make_scale("cpu"))})
    assert "restored_from" in json.loads((out / "eval" / "quality-icolorit-t" / "result.json").read_text())
    original = (kept / "runs" / "eval" / "quality-icolorit-t.json").read_text()
    assert "quality-icolorit-t" in save(out, kept, {"trained": []})
    assert json.loads((kept / "runs" / "eval" / "quality-icolorit-t.json").read_text()) == json.loads(original)


def test_restore_refuses_evidence_of_another_form(tmp_path):
    from adacolor.evidence import restore

    kept = _evidence(tmp_path)   # written before the forms: the scratch form
    names = {r.name for r in plan(make_scale("cpu"))}
    with pytest.raises(ValueError, match="of the scratch form, not finetune"):
        restore(tmp_path / "repro", kept, "cpu", names, "finetune")
    assert restore(tmp_path / "repro", kept, "cpu", names, "scratch")["eval"] == ["quality-icolorit-t"]
    # the command takes the evidence's form when none is given, and refuses another one
    assert reproduce.main(["--scale", "cpu", "--out", str(tmp_path / "other"), "--restore", str(kept), "--list"]) == 0
    with pytest.raises(ValueError, match="add --form scratch"):
        reproduce.main(["--scale", "cpu", "--form", "finetune", "--out", str(tmp_path / "third"), "--restore",
                        str(kept), "--list"])


def test_evaluation_of_a_restored_training_without_its_result_is_blocked(tmp_path):
    from adacolor.evidence import restore

    scale = make_scale("cpu")
    kept, out = _evidence(tmp_path), tmp_path / "repro"
    (kept / "runs" / "eval" / "quality-icolorit-t.json").unlink()
    restore(out, kept, "cpu", {r.name for r in plan(scale)})
    status = run_suite(scale, out, ["icolorit-t", "quality-icolorit-t"])
    assert status["skipped"] == ["icolorit-t"] and status["blocked"] == ["quality-icolorit-t"]


def test_a_bench_with_an_adaptive_model_restored_without_its_checkpoint_is_blocked_and_its_result_kept(
        tmp_path, monkeypatch, capsys):
    # the models of Table 2 are timed in one process: a bench without the adaptive model (whose
    # decisions depend on its weights) would overwrite the restored latencies of the others
    import adacolor.reproduce as reproduce
    from adacolor.evidence import restore

    scale = make_scale("cpu")
    kept, out = _evidence(tmp_path), tmp_path / "repro"
    (kept / "runs" / "train" / "adacolvit-t.json").write_text(
        json.dumps({"run": "adacolvit-t", "placed": None, "differences": {}}))
    bench = {"run": "bench", "kind": "bench", "models": {"icolorit-t": {"latency_ms_mean": 15.2}}}
    (kept / "runs" / "eval" / "bench.json").write_text(json.dumps(bench))
    restore(out, kept, "cpu", {r.name for r in plan(scale)})
    _finish(out, "uformer-t")   # trained again in this DIR
    executed = []
    monkeypatch.setattr(reproduce, "_execute", lambda run, out, scale, lpips: executed.append(run.name))
    status = run_suite(scale, out, ["bench"])
    assert executed == [] and status["blocked"] == ["bench"]
    assert json.loads((out / "eval" / "bench" / "result.json").read_text())["models"] == bench["models"]
    said = capsys.readouterr()
    assert f"delete {out / 'train' / 'adacolvit-t' / 'restored.json'} to retrain it" in said.out + said.err
    assert "icolorit-t" not in said.out + said.err   # dense: timed as built, it blocks nothing


def test_a_dense_model_restored_without_its_checkpoint_is_timed_as_built_from_its_recipe(tmp_path, monkeypatch):
    # a network without gates does the same work whatever its weights: the bench builds it, and
    # times it in PyTorch and, exported, on every other runtime installed (the bench's default)
    monkeypatch.setenv("ADAPRUNE_CACHE", str(tmp_path / "cache"))   # the exported graphs
    scale = make_scale("tiny")
    kept, out = _evidence(tmp_path, "tiny"), tmp_path / "repro"
    from adacolor.evidence import restore

    restore(out, kept, "tiny", {r.name for r in plan(scale)})
    status = run_suite(scale, out, ["bench"])
    assert status["done"] == ["bench"]
    bench = json.loads((out / "eval" / "bench" / "result.json").read_text())
    models = bench["models"]
    assert set(models) == {"icolorit-t"}   # the others are neither trained nor restored
    assert models["icolorit-t"]["weights"] == "architecture" and models["icolorit-t"]["image_size"] == 64
    assert len(models["icolorit-t"]["latency_ms"]) == scale.bench_repeats
    others = reproduce.bench_runtimes(scale)[1:]
    assert bench["runtimes"] == ["torch"] + others and set(models["icolorit-t"]["runtimes"]) == set(others)
    for timed in models["icolorit-t"]["runtimes"].values():
        assert len(timed["latency_ms"]) == scale.bench_repeats and timed["latency_ms_mean"] > 0
    results = collect(scale, out)
    assert [(r["run"], r["weights"]) for r in results["table2"]["rows"]] == [("icolorit-t", "architecture")]
    assert set(results["table2"]["rows"][0]["runtimes"]) == {"torch", *others}
    text = report.build_report(results)
    assert "iColoriT-T: timed as built from its recipe" in text
    if others:
        assert "| model | trained | PyTorch latency (ms) |" in text


def test_the_bench_runtimes_default_to_the_installed_ones_and_a_missing_one_is_one_line(monkeypatch):
    import importlib.util
    import dataclasses

    scale = make_scale("tiny")
    installed = [r for r in ("onnxruntime", "openvino") if importlib.util.find_spec(r) is not None]
    assert reproduce.bench_runtimes(scale) == ["torch"] + installed
    assert reproduce.bench_runtimes(dataclasses.replace(scale, bench_runtimes=("torch",))) == ["torch"]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(ValueError, match="openvino not installed"):
        reproduce.main(["--scale", "tiny", "--out", "unused", "--runtimes", "torch,openvino", "--list"])
    from adacolor.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["reproduce", "--out", "x", "--runtimes", "torch,tensorrt"])


@pytest.mark.parametrize("page", RESULT_PAGES)
def test_committed_evidence_restores_to_the_committed_results(tmp_path, page):
    """docs/<folder>/runs/ holds every result behind docs/<folder>/results.json: restored into an
    empty DIR and collected again, they give the same tables, figures' data and claims."""
    from adacolor.evidence import restore

    kept = DOCS / Path(page).stem
    if not (DOCS / page).is_file():
        pytest.skip(f"no committed docs/{page}")
    assert (kept / "runs" / "eval").is_dir(), f"{kept}/runs/ (the kept evidence) is missing from the checkout"
    committed = json.loads((kept / "results.json").read_text())
    form = committed["settings"].get("form", "scratch")   # results written before the forms: scratch
    scale = make_scale(committed["settings"]["scale"], form=form)
    restore(tmp_path, kept, scale.name, {r.name for r in plan(scale)}, form)
    again = collect(scale, tmp_path)
    assert {k: again[k] for k in KEYS if k != "settings"} == {k: committed[k] for k in KEYS if k != "settings"}
    for key in ("trained", "placed", "trained_otherwise", "runs"):
        if key in committed["settings"]:   # "runs": counted since the fine-tuned suite
            assert again["settings"][key] == committed["settings"][key]


# -- the tiny suite end to end -----------------------------------------------------------------

@pytest.mark.slow
def test_tiny_suite_end_to_end_and_resumes(tmp_path, monkeypatch):
    import torch

    from adacolor import initialize
    from adacolor import train as train_module
    from adacolor.reproduce import main

    torch.set_num_threads(1)
    out = tmp_path / "repro"
    args = ["--scale", "tiny", "--out", str(out), "--runtimes", "torch"]   # the fine-tune form, the default
    # the suite is killed in the middle of a fine-tune (AdaColViT-T, from the dense iColoriT-T)
    real_train, real_init = train_module.train, initialize.initialize_from
    trained, inits, current = [], [], [None]

    def killed(config, out_dir, resume=True, **kwargs):
        current[0] = Path(out_dir).name
        trained.append(current[0])
        if current[0] == "adacolvit-t" and trained.count("adacolvit-t") == 1:
            real_train(config, out_dir, resume=resume, stop_at_step=5)
            raise KeyboardInterrupt   # what a kill leaves: its checkpoint at step 5
        return real_train(config, out_dir, resume=resume, **kwargs)

    monkeypatch.setattr(train_module, "train", killed)
    monkeypatch.setattr(initialize, "initialize_from", lambda model, source: inits.append(current[0])
                        or real_init(model, source))
    with pytest.raises(KeyboardInterrupt):
        main(args)
    before = list(trained)
    # the dense base, its fine-tune at the same size (the ablations' reference), the dense main model
    dense = ["icolorit-t-lowres", "icolorit-t-lowres-tuned", "icolorit-t"]
    assert before == dense + ["adacolvit-t"] and inits == dense[1:] + ["adacolvit-t"]
    assert main(args) == 0   # run again: goes on where it was killed
    again = trained[len(before):]
    assert not set(again) & set(dense)   # finished trainings are not trained again
    assert again.count("adacolvit-t") == 1 and inits.count("adacolvit-t") == 1   # resumed, not re-initialised
    assert torch.load(out / "train" / "adacolvit-t" / "checkpoint.pt", weights_only=True)["step"] == 8
    assert json.loads((out / "suite.json").read_text()) == {"scale": "tiny", "form": "finetune"}
    with pytest.raises(ValueError, match="holds the tiny scale's finetune suite"):
        main(args + ["--form", "scratch"])   # the same run names would be other models
    monkeypatch.setattr(train_module, "train", real_train)

    results = json.loads((out / "results.json").read_text())
    assert set(KEYS) <= set(results)
    assert {p.name for p in (out / "figures").glob("*.png")} == {"fig4.png", "fig6.png", "fig7.png", "fig8.png", "budget.png"}
    assert len(results["fig4"]["rows"]) == 4 and results["fig4"]["ks"] == [5, 10, 20, 50]
    assert {r["groups"] for r in results["table4"]["rows"]} == {2, 4, 8}
    assert len(results["table3"]["rows"]) == 4
    assert all(len(v) == 3 for v in results["fig6"]["variants"].values())
    assert len(results["table2"]["rows"]) == 4 and all(len(r["latency_ms"]) == 5 for r in results["table2"]["rows"])
    # the form of every row: the main pair at 64 px fine-tuned from the dense model of its size, the
    # restoration models from scratch at 32 px and scored at 64, the ablations fine-tuned at 32 px
    settings = results["settings"]
    assert settings["form"] == "finetune" and settings["sizes"]["main"] == 64 and settings["sizes"]["ablations"] == 32
    assert settings["runs"] == {"done": len(plan(make_scale("tiny"))), "total": len(plan(make_scale("tiny")))}
    how = {r["run"]: (r["form"], r["init"], r["trained_at"], r["scored_at"]) for r in results["fig4"]["rows"]}
    assert how == {"icolorit-t": ("finetune", "icolorit-t-lowres", 64, 64),
                   "adacolvit-t": ("finetune", "icolorit-t", 64, 64),
                   "swinir-t": ("scratch", None, 32, 64), "uformer-t": ("scratch", None, 32, 64)}
    assert all(r["form"] == "finetune" and r["init"] == "icolorit-t-lowres" and r["trained_at"] == 32
               for key in ("table3", "table4") for r in results[key]["rows"])
    assert all(e["form"] == "finetune" and e["trained_at"] == 32 for v in results["fig6"]["variants"].values() for e in v)
    assert [(r["run"], r["form"]) for r in results["table1"]["rows"]] == [(r["run"], r["form"]) for r in results["fig4"]["rows"]]
    assert {r["run"]: r["scored_at"] for r in results["table2"]["rows"]} == {r: 64 for r in how}
    reference = results["table3"]["reference"]
    # the ablations' dense reference had their fine-tune: the same base, steps and head, without gates
    assert reference["run"] == "icolorit-t-lowres-tuned" and reference["form"] == "finetune"
    assert reference["init"] == "icolorit-t-lowres" and reference["trained_at"] == 32
    assert results["table2"]["runtimes"] == ["torch"] and all(set(r["runtimes"]) == {"torch"} for r in results["table2"]["rows"])
    gates = results["fig7"]["layer_gates"]   # the tiny AdaColViT-T: 4 blocks, 2 sub-layers each
    assert gates["sublayers"] == 8 and gates["images"] == results["fig7"]["images"]
    assert gates["always_run"] + gates["never_run"] + gates["switching"] == 8
    assert all(low <= high for low, high in zip(gates["min"], gates["max"]))
    assert (gates["switching"] == 0) == (results["fig7"]["layer_patterns"] == 1)
    colour = results["fig7"]["colour"]   # what compute follows, over the tiny scale's 6 photos
    assert colour["tenth"] == 1
    assert results["fig7"]["spread"]["min"] <= colour["least_colourful_gflops"] <= results["fig7"]["spread"]["max"]
    spread = results["fig7"]["spread"]
    assert spread["min"] <= spread["p10"] <= spread["median"] <= spread["p90"] <= spread["max"]
    budget = results["fig7"]["budget"]   # each group: the model's own form first, then its twins
    assert [[(r["budget"], r["budget_spread"]) for r in group] for group in budget["groups"]] == [
        [("spread", 0.2), ("batch", None), ("sample", None), ("spread", 0.5)],  # AdaColViT-T: the cpu recipe's form
        [("batch", None), ("sample", None), ("spread", 0.2), ("spread", 0.35), ("spread", 0.5)]]   # a Fig. 6 budget
    assert [{r["trained_at"] for r in group} for group in budget["groups"]] == [{64}, {32}]
    assert [r["run"] for r in results["table4"]["rows"]][0] == "fig6-pl-p50-l80"   # G = 2: the Fig. 6 model
    assert {r["budget"] for r in results["table4"]["rows"]} == {"batch"}   # every G row at one form
    assert budget["missing"] == []
    assert len(results["claims"]) == 8 and all(set(c) == {"claim", "paper", "ours", "holds"} for c in results["claims"])
    text = (out / "report.md").read_text()
    assert "tiny (plumbing check, not numbers)" in text and "## The paper's claims, checked" in text
    assert "- Form: fine-tuned (`--form finetune`)" in text
    assert "| SwinIR-T | from scratch, 32 px (scored at 64 px) |" in text
    assert "The dense iColoriT-T of this table is `icolorit-t-lowres-tuned` (fine-tuned from `icolorit-t-lowres`, 32 px)" in text

    # the docs page keeps each run's result; a fresh DIR restored from it gives the same results
    from adacolor.reproduce import write_outputs

    write_outputs(out, results, tmp_path / "docs" / "results.md")
    fresh = tmp_path / "fresh"
    assert main(["--scale", "tiny", "--out", str(fresh), "--restore", str(tmp_path / "docs" / "results"),
                 "--report-only"]) == 0
    again = json.loads((fresh / "results.json").read_text())
    restored = again["settings"].pop("restored")
    assert len(restored["results"]) == len(plan(make_scale("tiny"))) - len(make_scale("tiny").trainings)
    assert {key: again[key] for key in KEYS if key != "settings"} == {key: results[key] for key in KEYS if key != "settings"}
    assert {p.name for p in (fresh / "figures").glob("*.png")} == {"fig4.png", "fig6.png", "fig7.png", "fig8.png", "budget.png"}

    # a second invocation trains and evaluates nothing
    def no_training(*args, **kwargs):
        raise AssertionError("a finished training was run again")

    monkeypatch.setattr(train_module, "train", no_training)
    scale = make_scale("tiny")
    status = run_suite(scale, out)
    assert status["done"] == [] and status["failed"] == [] and len(status["skipped"]) == len(plan(scale))

    # a removed result is redone alone; the report is rebuilt from the results
    (out / "eval" / "quality-icolorit-t" / "result.json").unlink()
    assert not run_done(next(r for r in plan(scale) if r.name == "quality-icolorit-t"), out, scale)
    assert run_suite(scale, out)["done"] == ["quality-icolorit-t"]
    assert collect(scale, out)["fig4"]["rows"] == results["fig4"]["rows"]


def test_killed_training_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    from adacolor import train as train_module
    from adacolor.config import make_config

    scale = make_scale("tiny")
    target = next(t for t in scale.trainings if t.name == "icolorit-t-lowres")   # the dense base, from scratch
    folder = train_dir(tmp_path, target.name)
    train_module.train(make_config(target.recipe, target.overrides), folder, stop_at_step=5)  # "killed" at 5
    assert (folder / "checkpoint.pt").is_file() and not training_done(folder)
    import torch

    calls = []
    real = train_module.train

    def spy(config, out_dir, resume=True, **kwargs):
        saved = torch.load(Path(out_dir) / "checkpoint.pt", weights_only=True)["step"]
        calls.append((resume, saved))
        return real(config, out_dir, resume=resume, **kwargs)

    monkeypatch.setattr(train_module, "train", spy)
    assert run_suite(scale, tmp_path, [target.name])["done"] == [target.name]
    (resume, saved), = calls
    assert resume is True and 0 < saved <= 5   # train's exact resume picks up the saved step
    assert training_done(folder)
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["step"] == 8
    (folder / "metrics.json").unlink()  # a finished checkpoint placed from elsewhere is done too
    assert training_done(folder)


def test_a_fine_tune_waits_for_its_base_and_resumes_from_its_own_checkpoint(tmp_path, monkeypatch):
    import torch

    from adacolor import initialize
    from adacolor import train as train_module
    from adacolor.config import make_config

    scale = make_scale("tiny")
    tune = next(t for t in scale.trainings if t.name == "dynamicvit-t")   # fine-tuned from the dense base
    assert tune.base == "icolorit-t-lowres"
    status = run_suite(scale, tmp_path, [tune.name])   # its base is not trained: it waits
    assert status["blocked"] == [tune.name] and not (train_dir(tmp_path, tune.name) / "checkpoint.pt").exists()
    assert run_suite(scale, tmp_path, [tune.base])["done"] == [tune.base]
    folder = train_dir(tmp_path, tune.name)
    base_checkpoint = (train_dir(tmp_path, tune.base) / "checkpoint.pt").resolve()
    assert reproduce.resolved_overrides(tune, tmp_path)[-1] == f"init={base_checkpoint}"
    # started from the base, then "killed" at step 5
    train_module.train(make_config(tune.recipe, reproduce.resolved_overrides(tune, tmp_path)), folder, stop_at_step=5)
    started = json.loads((folder / "init.json").read_text())
    assert started["loaded"] > 0 and set(started["new"]) == {"gates"} and str(base_checkpoint) in started["origin"]
    inits = []
    monkeypatch.setattr(initialize, "initialize_from", lambda *a, **k: inits.append(a) or pytest.fail("re-init"))
    # the base's checkpoint is gone meanwhile: a fine-tune with its own checkpoint does not need it
    (train_dir(tmp_path, tune.base) / "checkpoint.pt").rename(tmp_path / "away.pt")
    assert run_suite(scale, tmp_path, [tune.name])["done"] == [tune.name]
    assert inits == [] and training_done(folder)
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["step"] == 8
    log = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert sum("init" in line for line in log) == 1   # the one init, at its start; none on resuming
    # a DIR moved or spelled otherwise resumes with the init its checkpoint was written with
    (tmp_path / "away.pt").rename(train_dir(tmp_path, tune.base) / "checkpoint.pt")
    saved = torch.load(folder / "checkpoint.pt", weights_only=True)["config"]["init"]
    assert saved == str(base_checkpoint)
    moved = tmp_path / "moved"
    (tmp_path / "train").rename(moved / "train") if moved.mkdir() is None else None
    assert reproduce.resolved_overrides(tune, moved)[-1] == f"init={saved}"
    assert collect(scale, moved)["settings"]["trained_otherwise"] == {}


def test_same_training_ignores_bookkeeping_and_init_only():
    from adacolor.config import config_values
    from adacolor.reproduce import same_training

    a = config_values("cpu-adacolvit-t")
    assert same_training(a, {**a, "log_every": 1, "checkpoint_every": 7, "threads": 2, "init": "shipped:x"})
    assert not same_training(a, {**a, "lr": 2 * a["lr"]})
    assert not same_training(a, {**a, "head": "linear"})
    assert not same_training(a, {k: v for k, v in a.items() if k != "budget"})


def test_from_shipped_places_the_trainings_the_shipped_models_are_twins_of(tmp_path):
    from adacolor.reproduce import place_shipped, shipped_twin

    scale = make_scale("cpu", form="finetune")
    # the 112-px base is the shipped icolorit-t-cpu (linear head, no init); the 224-px pair started
    # from it and from each other as the shipped 224-px pair did, with the same training values
    expected = {"icolorit-t-lowres": "icolorit-t-cpu", "icolorit-t": "icolorit-t-224", "adacolvit-t": "adacolvit-t-224"}
    assert place_shipped(scale, tmp_path) == expected
    assert {t.name for t in scale.trainings if training_done(train_dir(tmp_path, t.name))} == set(expected)
    assert place_shipped(scale, tmp_path) == {}  # done trainings are left alone
    settings = collect(scale, tmp_path)["settings"]
    assert set(settings["placed"]) == set(expected) and settings["trained_otherwise"] == {}
    assert all(f"shipped weights {expected[run]}" in origin for run, origin in settings["placed"].items())
    text = report.build_report(collect(scale, tmp_path), figures="figures")
    assert all(f"`{run}` was not trained by this command" in text for run in expected)
    # another value is another training; so is a fine-tune whose base is not the twin's base
    tune = next(t for t in scale.trainings if t.name == "adacolvit-t")
    empty = tmp_path / "empty"
    assert shipped_twin(scale, tune, empty) == "adacolvit-t-224"   # its base's twin is placeable
    assert shipped_twin(scale, dataclasses.replace(tune, overrides=tune.overrides + ("lr=0.001",)), empty) is None
    # ... but the checkpoint in DIR says how the weights there were trained, whatever the plan says
    assert shipped_twin(scale, dataclasses.replace(tune, overrides=tune.overrides + ("lr=0.001",)), tmp_path) \
        == "adacolvit-t-224"
    other = tmp_path / "other"
    (train_dir(other, "icolorit-t")).mkdir(parents=True)
    (train_dir(other, "icolorit-t") / "restored.json").write_text(
        json.dumps({"run": "icolorit-t", "placed": None, "differences": {"epochs": 3}}))
    assert shipped_twin(scale, tune, other) is None
    # the from-scratch form's models have iColoriT's conv head, the shipped 112-px ones the linear one
    assert place_shipped(make_scale("cpu", form="scratch"), tmp_path / "scratch") == {}


def test_a_restored_adaptive_model_with_a_shipped_twin_is_timed_on_the_twin(tmp_path):
    scale = make_scale("cpu", form="finetune")
    out = tmp_path / "repro"
    for name, placed in (("icolorit-t-lowres", "shipped weights icolorit-t-cpu (int8, sha256 cd10512b920f)"),
                         ("icolorit-t", None), ("adacolvit-t", None), ("adacolvit-t-sample", None)):
        train_dir(out, name).mkdir(parents=True)
        (train_dir(out, name) / "restored.json").write_text(json.dumps(
            {"run": name, "placed": placed, "differences": {}, "restored_from": "docs/results"}))
    source = {t.name: reproduce._bench_source(t, out, scale) for t in scale.trainings}
    assert source["adacolvit-t"] == "shipped:adacolvit-t-224" and source["icolorit-t"] == "architecture"
    assert source["adacolvit-t-sample"] is None and source["swinir-t"] is None   # no twin; not trained
    bench = next(r for r in plan(scale) if r.name == "bench")
    assert reproduce._missing_inputs(bench, out, scale) == []
    timed = {"gflops": 1.02, "latency_ms_mean": 30.0, "latency_ms_std": 0.5, "latency_ms": [30.0, 30.0],
             "weights": "shipped:adacolvit-t-224"}
    (out / "eval" / "bench").mkdir(parents=True)
    (out / "eval" / "bench" / "result.json").write_text(json.dumps({"run": "bench", "models": {"adacolvit-t": timed}}))
    text = report.build_report(collect(scale, out))
    assert "AdaColViT-T: timed on the shipped weights `adacolvit-t-224`" in text


def test_gate_margins_count_switching_sublayers_and_the_closest_constant_one():
    logits = [[2.0, -1.0, 0.5, -3.0],
              [1.5, -0.2, -0.5, -4.0],
              [3.0, -2.0, 1.0, -0.1]]
    m = report.gate_margins(logits)
    assert (m["always_run"], m["never_run"], m["switching"]) == (1, 2, 1)
    assert m["min"] == [1.5, -2.0, -0.5, -4.0] and m["max"] == [3.0, -0.2, 1.0, -0.1]
    assert m["closest"] == pytest.approx(0.1)   # sub-layer 4 came within 0.1 of running
    assert report.gate_margins([[1.0, -1.0], [-1.0, 1.0]])["closest"] is None
    with pytest.raises(ValueError):
        report.gate_margins([])


def test_a_training_stopped_by_a_signal_ends_the_suite(tmp_path, monkeypatch, capsys):
    # SIGTERM (a session's end) or Ctrl-C stops the training at a checkpoint: the suite must end there,
    # not count the training done and start the next one
    import adacolor.reproduce as reproduce
    import adacolor.train as train_module

    started = []

    def stopped_train(config, out, resume=False):
        started.append(Path(out).name)
        return {"step": 3, "out_dir": str(out), "stopped": True, "interrupted": "SIGTERM"}

    monkeypatch.setattr(train_module, "train", stopped_train)
    monkeypatch.setattr(reproduce, "_lpips", lambda: (None, None))
    with pytest.raises(reproduce.SuiteInterrupted) as stop:
        run_suite(make_scale("tiny"), tmp_path, ["train"])
    assert started == [make_scale("tiny").trainings[0].name]
    assert stop.value.exit_code == 143 and stop.value.step == 3
    assert reproduce.SuiteInterrupted("x", "SIGINT", 1).exit_code == 130   # Ctrl-C, as a shell reports it
    assert not (tmp_path / "failed").exists()   # not a failure: the run resumes from its checkpoint
    code = reproduce.main(["--scale", "tiny", "--out", str(tmp_path), "--only", "train"])
    assert code == 143 and len(started) == 2
    err = capsys.readouterr().err
    assert "stopped by SIGTERM at step 3" in err and "run the same command again" in err
    assert "results.json" not in {p.name for p in tmp_path.iterdir()}
