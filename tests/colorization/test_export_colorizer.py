"""``adacolor export`` and the runtimes: an exported colorizer computes the PyTorch model's
colours (ab within 1e-4) and takes its decisions on ONNX Runtime and OpenVINO, and a bad file,
runtime or opset is a clear error."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import adaprune
from adacolor.cli import main
from adacolor.export import export_colorizer
from adacolor.model import colorizer_state, create_colorizer, load_colorizer

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from adaprune.runtimes import (  # noqa: E402 - after the skips: the runtimes are an optional extra
    RuntimeNotInstalled,
    fastest_runtime,
    installed_runtimes,
    load_exported,
    read_info,
)

SMALL = dict(image_size=32, patch_size=8, depth=2)
ATOL = 1e-4


def _varied(model):
    """Gates whose decisions differ from image to image: some tokens kept, some sub-layers skipped."""
    torch.manual_seed(3)
    for block in model.backbone.blocks:
        gate = block.adaprune_gate
        for layer in (gate.patch.attn_logits, gate.patch.mlp_logits, gate.layer.proj):
            torch.nn.init.normal_(layer.weight, std=1.0)
            torch.nn.init.zeros_(layer.bias)
    return model.eval()


def _inputs(count: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        x = torch.rand(1, 4, 32, 32, generator=generator) * 2 - 1
        x[:, 3] = (x[:, 3] > 0.8).float()  # a sparse hint mask
        x[:, 1:3] *= x[:, 3:]
        out.append(x)
    return out


def _eager(model, x):
    with torch.no_grad():
        ab = model(x)
    if not model.adaptive:
        return {"ab": ab.numpy()}
    record = adaprune.last_record(model.backbone)
    return {"ab": ab.numpy(), "layer_keep": (torch.cat([b.layer_keep for b in record.blocks]) > 0.5).numpy(),
            "token_keep": torch.cat([b.token_masks for b in record.blocks]).bool().numpy(),
            "gflops": record.gflops.numpy()}


def _assert_same(expected, got):
    assert list(got) == list(expected)
    np.testing.assert_allclose(got["ab"], expected["ab"], atol=ATOL, rtol=0)
    for name in ("layer_keep", "token_keep"):
        if name in expected:
            assert np.array_equal(got[name], expected[name]), name
    if "gflops" in expected:
        np.testing.assert_allclose(got["gflops"], expected["gflops"], rtol=1e-5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny adaptive colorizer's checkpoint."""
    path = tmp_path_factory.mktemp("export") / "checkpoint.pt"
    torch.save(colorizer_state(_varied(create_colorizer("adacolvit-t", **SMALL))), path)
    return path


@pytest.fixture(scope="module")
def adaptive(checkpoint):
    """The tiny adaptive colorizer and its graph written by the CLI."""
    path = checkpoint.parent / "adacolvit.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(path)]) == 0
    return load_colorizer(checkpoint).eval(), path


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_exported_adaptive_colorizer_equals_pytorch(adaptive, runtime):
    if runtime not in installed_runtimes():
        pytest.skip(f"{runtime} is not installed")
    model, path = adaptive
    exported = load_exported(path, runtime=runtime, threads=1)
    assert exported.adaptive and exported.image_size == (32, 32)
    assert exported.info["kind"] == "colorizer" and exported.info["name"] == "adacolvit-t"
    ran, kept = set(), []
    for x in _inputs(6):
        expected = _eager(model, x)
        _assert_same(expected, exported(x))
        ran |= set(expected["layer_keep"].ravel().tolist())
        kept.append(expected["token_keep"].mean())
    assert ran == {True, False} and 0 < min(kept) and max(kept) < 1  # both branches, dropped tokens


def test_dense_colorizer_exports_and_equals_pytorch(tmp_path):
    model = create_colorizer("icolorit-t", **SMALL).eval()
    path = export_colorizer(model, tmp_path / "dense.onnx")
    exported = load_exported(path)
    assert exported.output_names == ["ab"] and not exported.adaptive
    for x in _inputs(2, seed=1):
        _assert_same(_eager(model, x), exported(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adacolvit-t-224", "icolorit-t-224", "adacolvit-t-cpu", "icolorit-t-cpu"])
def test_shipped_models_export_and_equal_pytorch(name, tmp_path):
    """Every shipped model: the CLI's graph equals PyTorch (ab within 1e-4, the same decisions)
    on a real photo with 0, 1 and 10 hints, on each installed runtime. An adaptive ViT-Tiny takes
    about two minutes to export on 2 cores; a dense one seconds."""
    from adacolor.bench import bench_input
    from adacolor.weights import load_shipped

    path = tmp_path / f"{name}.onnx"
    assert main(["export", "--model", name, "--out", str(path)]) == 0
    model = load_shipped(name)
    inputs = [bench_input(model.image_size[0], hints=k, seed=k) for k in (0, 1, 10)]
    for runtime in installed_runtimes():
        exported = load_exported(path, runtime=runtime, threads=1)
        assert exported.adaptive == model.adaptive and exported.info["name"] == model.build_args["name"]
        for x in inputs:
            _assert_same(_eager(model, x), exported(x))


def test_fastest_runtime_is_an_installed_one(adaptive):
    name, latencies = fastest_runtime(adaptive[1], runs=2)
    assert name in installed_runtimes() and set(latencies) == set(installed_runtimes())


# -- errors --------------------------------------------------------------------------------------

def test_a_runtime_that_is_not_installed_names_the_extra(adaptive, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    with pytest.raises(RuntimeNotInstalled, match=r"openvino is not installed.*adaprune\[runtimes\]"):
        load_exported(adaptive[1], runtime="openvino")
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'; accepted: onnxruntime, openvino"):
        load_exported(adaptive[1], runtime="tensorrt")


def test_files_that_are_not_our_graphs_are_refused(adaptive, tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n" * 20)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(adaptive[1].read_bytes()[:5000])
    for path in (text, truncated):
        with pytest.raises(ValueError, match="not a valid ONNX model"):
            load_exported(path)
    foreign = tmp_path / "foreign.onnx"
    node = onnx.helper.make_node("Relu", ["x"], ["y"])
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), str(foreign))
    with pytest.raises(ValueError, match="not one exported by adaprune"):
        load_exported(foreign)
    with pytest.raises(FileNotFoundError, match="no exported model at"):
        load_exported(tmp_path / "missing.onnx")
    vit_kind = tmp_path / "vit.onnx"
    proto = onnx.load(str(adaptive[1]))
    entry = next(p for p in proto.metadata_props if p.key == "adaprune")
    entry.value = json.dumps({**json.loads(entry.value), "kind": "vit"})
    onnx.save(proto, str(vit_kind))
    with pytest.raises(ValueError, match="is an exported vit, not a colorizer"):
        load_exported(vit_kind, kind="colorizer")
    assert load_exported(vit_kind).info["kind"] == "vit"   # no kind asked: any adaprune graph
    assert read_info(vit_kind, kind=None)["kind"] == "vit"


def test_an_opset_the_runtime_lacks_is_a_clear_error(adaptive, tmp_path):
    # ONNX Runtime checks the opset stamp; OpenVINO reads any stamp and fails only on an op it
    # lacks, which is reported in the same words
    runtime = "onnxruntime"
    proto = onnx.load(str(adaptive[1]))
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = 99
    path = tmp_path / "future.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ValueError, match=rf"{runtime} .* cannot load .*ONNX opset 99.*--opset 18") as error:
        load_exported(path, runtime=runtime)
    assert "\n" not in str(error.value)


def test_a_wrong_input_shape_is_refused(adaptive):
    with pytest.raises(ValueError, match=r"takes one input of shape \(1, 4, 32, 32\), got \(1, 4, 16, 16\)"):
        load_exported(adaptive[1])(np.zeros((1, 4, 16, 16), dtype=np.float32))


def test_cli_export_errors_are_one_line(checkpoint, tmp_path, capsys):
    checkpoint = str(checkpoint)
    cases = [
        (["--checkpoint", checkpoint, "--out", str(tmp_path / "missing" / "m.onnx")], "does not exist"),
        (["--checkpoint", checkpoint, "--out", str(tmp_path)], "is a folder"),
        (["--checkpoint", checkpoint, "--out", str(tmp_path / "m.onnx"), "--opset", "13"], ">= 18"),
        (["--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m.onnx")], "no checkpoint at"),
        (["--checkpoint", checkpoint, "--format", "tflite", "--out", str(tmp_path / "m.onnx")], "invalid choice"),
    ]
    for argv, message in cases:
        assert main(["export", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_an_image_to_image_colorizer_is_refused_by_name(tmp_path, capsys):
    checkpoint = tmp_path / "swinir.pt"
    torch.save(colorizer_state(create_colorizer("swinir-t", image_size=32)), checkpoint)
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "s.onnx")]) == 2
    err = capsys.readouterr().err
    assert "swinir-t: only ViT colorizers" in err and len(err.strip().splitlines()) == 1
