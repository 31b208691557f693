"""The benchmark harness runs end to end (figures are for the CLI, never asserted as timings)."""

from __future__ import annotations

import copy
import json

import pytest
import timm
import torch

import adaprune
from adaprune.bench import format_breakdown, parse_options, prepared_steps_ms, run, sublayer_breakdown
from tests.conftest import tiny_vit


def test_bench_cli_writes_a_consistent_result(tmp_path, capsys):
    out = tmp_path / "bench.json"
    result = run(["--model", "vit_tiny_patch16_224", "--img-size", "96", "--batch", "2", "--warmup", "1",
                   "--runs", "3", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "speedup / FLOPs ratio" in printed
    saved = json.loads(out.read_text())
    assert saved["dense_ms"] > 0 and saved["wrapped_ms"] > 0
    assert saved["wrapped_gflops"] < saved["dense_gflops"]  # half the tokens at half width
    assert abs(saved["flops_ratio"] - result.dense_gflops / result.wrapped_gflops) < 1e-9


def test_options_parse_as_literals_and_reject_bare_words():
    assert parse_options(["keep_rate=0.7", "layers=(3, 6, 9)", "name=abc"]) == {
        "keep_rate": 0.7, "layers": (3, 6, 9), "name": "abc"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["keep_rate"])


def test_bench_cli_takes_a_method_and_its_options(tmp_path):
    result = run(["--img-size", "64", "--batch", "2", "--warmup", "1", "--runs", "2",
                  "--method", "adacolvit", "--option", "patch_groups=4", "--policy", "keep_all"])
    assert result.wrapped_gflops > result.dense_gflops * 0.99  # keep_all: the dense work, plus the gates


def test_breakdown_rows_compare_grouped_with_dense_sublayers():
    dense = timm.create_model("vit_tiny_patch16_224", img_size=64, in_chans=4, num_classes=0, global_pool="")
    wrapped = adaprune.wrap(copy.deepcopy(dense), patch_groups=2)
    rows = sublayer_breakdown(dense, wrapped, patch_keep=0.5, warmup=1, runs=3)
    assert [r[0] for r in rows] == ["attention sub-layer", "FFN sub-layer", "attention kernel (QK^T, softmax, AV)"]
    assert all(r[1] > 0 and r[2] > 0 and 0.5 < r[3] < 1.0 for r in rows)  # half the tokens at full width
    assert "FLOPs" in format_breakdown(rows)
    with pytest.raises(ValueError, match="patch_groups >= 2"):
        sublayer_breakdown(dense, adaprune.wrap(copy.deepcopy(dense), patch_groups=1))


def test_prepared_steps_time_against_dense_and_need_steps():
    dense = tiny_vit(depth=2)
    wrapped = adaprune.wrap(copy.deepcopy(dense), patch_groups=2)
    x = torch.randn(1, 4, 32, 32)
    dense_ms, steps_ms = prepared_steps_ms(dense, wrapped, x, warmup=1, runs=3)
    assert dense_ms > 0 and steps_ms > 0
    qk = adaprune.wrap(tiny_vit(depth=2, qk_norm=True), patch_groups=2)  # q/k norms: no compiled step
    with pytest.raises(ValueError, match="prepare no inference steps"):
        prepared_steps_ms(dense, qk, x, warmup=1, runs=1)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_bench_cli_runs_both_models_on_a_runtime(runtime, tmp_path, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip(runtime)
    path = tmp_path / "bench.json"
    result = run(["--img-size", "64", "--warmup", "1", "--runs", "3", "--runtime", runtime, "--policy", "random",
                  "--patch-keep", "0.5", "--quiet", "--json", str(path)])
    saved = json.loads(path.read_text())
    assert saved["runtime"] == runtime and result.batch == 1 and result.dense_ms > 0 and result.wrapped_ms > 0
    # the stand-in gates keep some tokens and drop others: fewer GFLOPs than dense, more than all dropped
    assert 1.0 < result.flops_ratio < 2.0
    out = capsys.readouterr()
    assert f"runtime={runtime}" in out.out and "def forward" not in out.err + out.out  # no traced graph printed


def test_random_gates_keep_about_the_fraction_asked(capsys):
    import copy

    import timm

    from adaprune import last_record, wrap
    from adaprune.bench import random_gates

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, in_chans=4, num_classes=0,
                            global_pool="").eval()
    for keep in (0.25, 0.75):
        wrapped = random_gates(wrap(copy.deepcopy(vit), patch_groups=2), patch_keep=keep)
        with torch.no_grad():
            wrapped.forward_features(torch.randn(4, 4, 64, 64))
        kept = float(last_record(wrapped).patch_keep.mean())
        assert abs(kept - keep) < 0.2, (keep, kept)
        assert float(last_record(wrapped).layer_keep.mean()) == 1.0


@pytest.mark.parametrize("argv, message", [
    (["--runtime", "onnxruntime", "--policy", "keep_all"], "an exported graph decides with its gates"),
    (["--runtime", "onnxruntime", "--breakdown"], "--breakdown times PyTorch kernels"),
])
def test_bench_cli_runtime_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit):
        run(["--img-size", "32", *argv])
    assert message in capsys.readouterr().err
