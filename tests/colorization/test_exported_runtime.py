"""A colorizer on a runtime (``adacolor.exported``) and ``--runtime`` / ``--runtimes`` in the CLI:
the same colours, GFLOPs and compute map as PyTorch, the graph cached once, the fastest runtime
measured and said, and a runtime that is missing or unknown a one-line error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from adacolor.cli import main
from adacolor.colorize import colorize, random_user_hints
from adacolor.compute_map import model_compute_map, token_compute_map
from adacolor.model import colorizer_gflops, colorizer_state, create_colorizer

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from adacolor import exported  # noqa: E402 - after the skips: the runtimes are an optional extra
from adaprune.runtimes import RuntimeNotInstalled, installed_runtimes  # noqa: E402

SMALL = dict(image_size=32, patch_size=8, depth=2)


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    """One graph cache for this module, never the user's."""
    folder = tmp_path_factory.getbasetemp() / "adaprune-cache"
    monkeypatch.setenv("ADAPRUNE_CACHE", str(folder))
    return folder


def _varied(model):
    """Gates that keep some tokens and skip some sub-layers, differently per image."""
    torch.manual_seed(3)
    for block in model.backbone.blocks:
        gate = block.adaprune_gate
        for layer in (gate.patch.attn_logits, gate.patch.mlp_logits, gate.layer.proj):
            torch.nn.init.normal_(layer.weight, std=1.0)
            torch.nn.init.zeros_(layer.bias)
    return model.eval()


@pytest.fixture(scope="module")
def adaptive():
    torch.manual_seed(0)
    return _varied(create_colorizer("adacolvit-t", **SMALL))


def _batch(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(count, 4, 32, 32, generator=generator) * 2 - 1
    x[:, 3] = (x[:, 3] > 0.8).float()
    x[:, 1:3] *= x[:, 3:]
    return x


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_colorizer_on_a_runtime_answers_as_pytorch(adaptive, runtime):
    if runtime not in installed_runtimes():
        pytest.skip(f"{runtime} is not installed")
    fast = exported.on_runtime(adaptive, runtime, threads=1)
    assert exported.runtime_of(fast) == runtime and exported.runtime_of(adaptive) == "torch"
    assert fast.image_size == adaptive.image_size and fast.adaptive and fast.grid_size == (4, 4)
    x = _batch(4)
    with torch.no_grad():
        expected = adaptive(x)
        expected_gflops = colorizer_gflops(adaptive, 4)
    got = fast(x)
    assert got.shape == (4, 2, 32, 32)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(colorizer_gflops(fast, 4).numpy(), expected_gflops.numpy(), rtol=1e-5)
    assert len(set(colorizer_gflops(fast, 4).tolist())) > 1  # per image, not one figure for all
    with torch.no_grad():
        adaptive(x[:1])
    fast(x[:1])
    assert torch.equal(model_compute_map(fast).ran, model_compute_map(adaptive).ran)
    assert torch.allclose(model_compute_map(fast).full_width, model_compute_map(adaptive).full_width)
    assert torch.allclose(token_compute_map(fast), token_compute_map(adaptive))


def test_colorize_on_a_runtime_gives_the_pytorch_picture(adaptive):
    rgb = torch.rand(3, 45, 70)
    hints = random_user_hints(45, 70, 5, seed=1)
    expected = colorize(adaptive, rgb, hints)
    got = colorize(exported.on_runtime(adaptive, "onnxruntime", threads=1), rgb, hints)
    assert (got["rgb"] - expected["rgb"]).abs().max() < 1e-3
    assert got["gflops"] == pytest.approx(expected["gflops"], rel=1e-5)
    assert torch.allclose(got["compute_map"], expected["compute_map"])


def test_a_dense_colorizer_on_a_runtime_counts_its_fixed_gflops():
    model = create_colorizer("icolorit-t", **SMALL).eval()
    fast = exported.on_runtime(model, "onnxruntime", threads=1)
    x = _batch(2)
    with torch.no_grad():
        expected = model(x)
    np.testing.assert_allclose(fast(x).numpy(), expected.numpy(), atol=1e-4, rtol=0)
    assert colorizer_gflops(fast, 2).tolist() == pytest.approx(colorizer_gflops(model, 2).tolist())
    where = model_compute_map(fast)
    assert not where.adaptive and where.ran.shape == (2, 2) and bool(where.full_width.eq(1).all())


def test_the_graph_is_exported_once_and_keyed_by_the_weights(adaptive, cache):
    path = exported.export_cached(adaptive)
    assert path.parent == cache / "exported" and path == exported.cached_graph(adaptive)
    stamp = path.stat().st_mtime_ns
    said = []
    assert exported.export_cached(adaptive, say=said.append) == path and path.stat().st_mtime_ns == stamp
    assert said == []  # found, not exported again
    other = create_colorizer("adacolvit-t", **SMALL)
    other.load_state_dict(adaptive.state_dict())
    with torch.no_grad():
        other.head.bias.add_(0.5)  # other weights: another graph
    assert exported.cached_graph(other) is None
    assert not list(cache.glob("exported/*.tmp")) and not list(cache.glob("exported/tmp*"))


def test_auto_leaves_out_runtimes_whose_graph_is_not_cached_and_says_how_to_add_them():
    torch.manual_seed(5)
    model = create_colorizer("icolorit-t", **SMALL).eval()
    chosen, line = exported.select_runtime(model, "auto", threads=1, export=False)
    assert chosen is model and line.startswith("runtime torch") and "adacolor export --model icolorit-t" in line


def test_auto_measures_every_installed_runtime_once_and_uses_the_fastest(adaptive, monkeypatch):
    exported.export_cached(adaptive)
    chosen, line = exported.select_runtime(adaptive, "auto", threads=1)
    runtime = exported.runtime_of(chosen)
    assert line.startswith(f"runtime {runtime} (the fastest here at 1 thread: ")
    for name in ["torch", *installed_runtimes()]:
        assert f"{name} " in line and " ms" in line
    # the measurement is kept: a second choice does not time again
    monkeypatch.setattr(exported, "fastest_runtime", lambda *a, **k: pytest.fail("measured twice"))
    again, line_again = exported.select_runtime(adaptive, "auto", threads=1)
    assert exported.runtime_of(again) == runtime and line_again == line


def test_an_unknown_or_missing_runtime_is_a_clear_error(adaptive, monkeypatch):
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'; accepted: torch, onnxruntime, openvino"):
        exported.on_runtime(adaptive, "tensorrt")
    import importlib

    real = importlib.import_module

    def without_openvino(name, *args, **kwargs):
        if name == "openvino":
            raise ImportError("No module named 'openvino'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", without_openvino)
    with pytest.raises(RuntimeNotInstalled, match=r"openvino is not installed; .*pip install 'adaprune\[runtimes\]'"):
        exported.on_runtime(adaptive, "openvino")


def test_an_image_to_image_colorizer_stays_on_torch_and_says_why():
    model = create_colorizer("swinir-t", image_size=32).eval()
    chosen, line = exported.select_runtime(model, "auto", threads=1)
    assert chosen is model and "does not export to ONNX" in line


# -- the CLI -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, adaptive):
    path = tmp_path_factory.mktemp("runtime-cli") / "checkpoint.pt"
    torch.save(colorizer_state(adaptive), path)
    return path


def test_colorize_runs_on_the_runtime_asked_for_and_says_so(checkpoint, tmp_path, capsys):
    out = tmp_path / "colour.png"
    assert main(["colorize", "sample:astronaut", "--checkpoint", str(checkpoint), "--random-hints", "3",
                 "--runtime", "onnxruntime", "--out", str(out)]) == 0
    assert "[adacolor] runtime onnxruntime (asked for)" in capsys.readouterr().err
    assert out.is_file()


def test_colorize_auto_says_which_runtime_and_why(checkpoint, tmp_path, capsys):
    assert main(["colorize", "sample:astronaut", "--checkpoint", str(checkpoint), "--random-hints", "3",
                 "--out", str(tmp_path / "a.png")]) == 0
    err = capsys.readouterr().err
    assert "[adacolor] runtime " in err
    assert "the fastest here" in err or f"adacolor export --checkpoint {checkpoint}" in err


def test_evaluate_on_a_runtime_scores_as_torch(checkpoint, tmp_path, capsys):
    scores = {}
    for runtime in ("torch", "onnxruntime"):
        out = tmp_path / runtime
        assert main(["evaluate", "--quiet", "--checkpoint", str(checkpoint), "--data", "samples", "--images", "2",
                     "--hints", "1,5", "--lpips", "none", "--runtime", runtime, "--out", str(out)]) == 0
        scores[runtime] = json.loads((out / "metrics.json").read_text())
    assert "psnr@5" in scores["torch"]
    for key, value in scores["torch"].items():
        if key.startswith(("psnr@", "gflops@", "seam@", "chroma@")):
            assert scores["onnxruntime"][key] == pytest.approx(value, abs=1e-3), key


def test_bench_writes_one_row_per_model_and_runtime(tmp_path, capsys):
    path = tmp_path / "bench.json"
    runtimes = ["torch", *installed_runtimes()]
    assert main(["bench", "--quiet", "--models", "icolorit-t,adacolvit-t", "--image-size", "32", "--runs", "3",
                 "--warmup", "1", "--runtimes", ",".join(runtimes), "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["rows"]
    assert [(r["model"], r["runtime"]) for r in rows] == [(m, r) for m in ("icolorit-t", "adacolvit-t")
                                                        for r in runtimes]
    for row in rows:
        assert set(row) >= {"model", "runtime", "threads", "latency_ms", "latency_std_ms", "gflops"}
        assert row["threads"] == 1 and row["latency_ms"] > 0 and row["latency_std_ms"] >= 0
    by_model = {}
    for row in rows:
        by_model.setdefault(row["model"], set()).add(round(row["gflops"], 6))
    assert all(len(g) == 1 for g in by_model.values())  # the same decisions on every runtime
    out = capsys.readouterr().out
    assert "onnxruntime" in out and f"wrote {path}" in out


@pytest.mark.parametrize("argv, message", [
    (["bench", "--models", "icolorit-t", "--runtimes", "torch,tensorrt"],
     "tensorrt: not a runtime; accepted: torch, onnxruntime, openvino"),
    (["bench", "--models", "adacolvit-t", "--image-size", "32", "--runtimes", "onnxruntime", "--policy", "random"],
     "an exported graph decides with the learned policy only"),
    (["colorize", "sample:astronaut", "--runtime", "tvm", "--out", "x.png"], "invalid choice: 'tvm'"),
])
def test_runtime_arguments_are_checked(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bench_over_photos_averages_what_each_photo_costs(tmp_path):
    path = tmp_path / "photos.json"
    assert main(["bench", "--quiet", "--models", "adacolvit-t", "--image-size", "32", "--runs", "2",
                 "--warmup", "1", "--runtimes", "torch,onnxruntime", "--data", "samples", "--images", "3",
                 "--json", str(path)]) == 0
    saved = json.loads(path.read_text())
    assert saved["settings"]["data"] == "samples" and saved["settings"]["images"] == 3
    assert [row["photos"] for row in saved["rows"]] == [3, 3]
    assert saved["rows"][0]["gflops"] == pytest.approx(saved["rows"][1]["gflops"], rel=1e-5)


def test_the_app_exports_in_a_child_process_and_moves_each_model_to_the_fastest(checkpoint, tmp_path, monkeypatch):
    from adacolor.app.cli import switch_to_fastest
    from adacolor.model import load_colorizer

    monkeypatch.setenv("ADAPRUNE_CACHE", str(tmp_path / "fresh-cache"))  # nothing exported yet
    model = load_colorizer(checkpoint).eval()
    served, said = {"tiny": model}, []
    switch_to_fastest({"tiny": model}, served.__setitem__, 1, said.append,
                      {"tiny": ["--checkpoint", str(checkpoint)]})
    assert exported.cached_graph(model) is not None  # the child process filled the cache
    assert said[0].startswith("tiny: exporting it to ONNX in the background")
    runtime = exported.runtime_of(served["tiny"])
    assert said[-1].startswith(f"tiny: runtime {runtime} (the fastest here at 1 thread: ")
    assert (served["tiny"] is model) == (runtime == "torch")


def test_the_app_keeps_serving_on_torch_when_a_model_cannot_move(tmp_path, monkeypatch):
    from adacolor.app.cli import switch_to_fastest

    monkeypatch.setenv("ADAPRUNE_CACHE", str(tmp_path / "cache"))
    model = create_colorizer("swinir-t", image_size=32).eval()
    served, said = {"swin": model}, []
    switch_to_fastest({"swin": model}, served.__setitem__, 1, said.append, {"swin": ["--model", "none"]})
    assert served["swin"] is model and said == ["swin: runtime torch (swinir-t does not export to ONNX)"]
