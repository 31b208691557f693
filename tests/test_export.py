"""ONNX export of timm ViTs with the decisions in the graph: the runtimes compute the same
features and take the same decisions as PyTorch's eager eval, the dropped work is control
flow in the graph (not masks), and what cannot be exported says so in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import adaprune
from adaprune.export import METADATA_KEY, export_onnx
from adaprune.runtimes import load_exported
from tests.conftest import VARIANTS, tiny_vit

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ATOL = 1e-4


def _varied(vit):
    """Decision layers with zero bias: per image, about half the tokens kept and half the
    sub-layers run, so that random inputs take both branches of every decision."""
    torch.manual_seed(1)
    for block in vit.blocks:
        gate = block.adaprune_gate
        for layer in ([] if gate.patch is None else [gate.patch.attn_logits, gate.patch.mlp_logits]):
            torch.nn.init.normal_(layer.weight, std=1.0)
            torch.nn.init.zeros_(layer.bias)
        if gate.layer is not None:
            torch.nn.init.normal_(gate.layer.proj.weight, std=1.0)
            torch.nn.init.zeros_(gate.layer.proj.bias)
    return vit


def _forced(vit):
    """Fixed decisions whatever the input: block 0 runs both sub-layers keeping no patch,
    block 1 skips its attention and runs its FFN keeping every patch."""
    big = 1e4
    for index, block in enumerate(vit.blocks):
        gate = block.adaprune_gate
        for layer in [gate.patch.attn_logits, gate.patch.mlp_logits]:
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.constant_(layer.bias, -big if index == 0 else big)
        torch.nn.init.zeros_(gate.layer.proj.weight)
        gate.layer.proj.bias.data = torch.tensor([big, big] if index == 0 else [-big, big])
    return vit


def _eager(vit, x):
    """Features and the decisions of eager eval, as the exported graph outputs them."""
    with torch.no_grad():
        features = vit.forward_features(x)
    if not adaprune.is_wrapped(vit):
        return [features.numpy()]
    record = adaprune.last_record(vit)
    outputs = [features.numpy(), (torch.cat([b.layer_keep for b in record.blocks]) > 0.5).numpy()]
    if record.blocks[0].token_masks is not None:
        outputs.append(torch.cat([b.token_masks for b in record.blocks]).bool().numpy())
    return outputs + [record.gflops.numpy()]


def _onnxruntime(path):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": x.numpy()})


def _openvino(path):
    pytest.importorskip("openvino")
    model = load_exported(path, "openvino")  # float32, and the thread's signal stack kept (test_runtimes)
    return lambda x: list(model(x.numpy()).values())


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _assert_same(expected, got):
    assert len(got) == len(expected)
    np.testing.assert_allclose(got[0], expected[0], atol=ATOL, rtol=0)
    for e, g in zip(expected[1:-1], got[1:-1]):  # the decisions: exactly the same
        assert g.dtype == np.bool_ and np.array_equal(g, e)
    if len(expected) > 1:  # GFLOPs of the decisions taken
        np.testing.assert_allclose(got[-1], expected[-1], rtol=1e-5)


def _ops(graph) -> set[str]:
    """Every op type in an ONNX graph, its branches included."""
    found = set()
    for node in graph.node:
        found.add(node.op_type)
        for attribute in node.attribute:
            if attribute.HasField("g"):
                found |= _ops(attribute.g)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["plain", "no_class_token", "registers", "deit3_layerscale"])
def test_wrapped_vit_exports_its_decisions_and_runtimes_agree(tmp_path, variant):
    vit = _varied(adaprune.wrap(tiny_vit(**VARIANTS[variant]), patch_groups=2, layer_skip=True))
    path = export_onnx(vit, tmp_path / "vit.onnx", torch.randn(1, 4, 32, 32))
    model = onnx.load(str(path))
    assert [o.name for o in model.graph.output] == ["features", "layer_keep", "token_keep", "gflops"]
    # decided in the graph: sub-layers as branches, kept tokens selected by a dynamic count
    top = [node.op_type for node in model.graph.node]
    assert top.count("If") == 2 * len(vit.blocks)
    assert {"NonZero", "Gather", "ScatterND"} <= _ops(model.graph)
    info = json.loads({p.key: p.value for p in model.metadata_props}[METADATA_KEY])
    assert info["adaptive"] and info["method"] == "adacolvit"

    runners = [_onnxruntime(path)] + ([_openvino(path)] if _has("openvino") else [])
    seen_run, seen_keep = set(), []
    torch.manual_seed(2)
    for _ in range(6):
        x = torch.randn(1, 4, 32, 32)
        expected = _eager(vit, x)
        for run in runners:
            _assert_same(expected, run(x))
        seen_run |= set(expected[1].ravel().tolist())
        seen_keep.append(expected[2].mean())
    assert seen_run == {True, False}  # both branches of the sub-layer decisions were compared
    assert 0 < min(seen_keep) and max(seen_keep) < 1  # and some tokens were dropped


@pytest.mark.parametrize("variant", ["plain", "no_class_token"])
def test_forced_decisions_skip_a_sub_layer_and_keep_no_or_every_token(tmp_path, variant):
    vit = _forced(adaprune.wrap(tiny_vit(**VARIANTS[variant]), patch_groups=2))
    path = export_onnx(vit, tmp_path / "vit.onnx", torch.randn(1, 4, 32, 32))
    x = torch.randn(1, 4, 32, 32)
    expected = _eager(vit, x)
    assert expected[1].tolist() == [[True, True], [False, True]]
    assert not expected[2][0].any() and not expected[2][1, 0].any() and expected[2][1, 1].all()
    _assert_same(expected, _onnxruntime(path)(x))
    if _has("openvino"):
        _assert_same(expected, _openvino(path)(x))


def test_layer_skip_only_and_patch_groups_only_export(tmp_path):
    for name, options, outputs in [("skip", dict(patch_groups=1, layer_skip=True), 3),
                                   ("groups", dict(patch_groups=2, layer_skip=False), 4)]:
        vit = _varied(adaprune.wrap(tiny_vit(), **options))
        path = export_onnx(vit, tmp_path / f"{name}.onnx", torch.randn(1, 4, 32, 32))
        assert len(onnx.load(str(path)).graph.output) == outputs
        x = torch.randn(1, 4, 32, 32)
        _assert_same(_eager(vit, x), _onnxruntime(path)(x))


def test_dense_vit_exports_its_features(tmp_path):
    vit = tiny_vit(class_token=True, reg_tokens=1)
    path = export_onnx(vit, tmp_path / "dense.onnx", torch.randn(1, 4, 32, 32))
    x = torch.randn(1, 4, 32, 32)
    got = _onnxruntime(path)(x)
    assert len(got) == 1
    _assert_same(_eager(vit, x), got)


def test_export_restores_training_mode_and_leaves_eager_results_alone(tmp_path):
    vit = _varied(adaprune.wrap(tiny_vit(), patch_groups=2)).train()
    x = torch.randn(1, 4, 32, 32)
    before = _eager(vit.eval(), x)
    vit.train()
    export_onnx(vit, tmp_path / "vit.onnx", x)
    assert vit.training
    _assert_same(before, _eager(vit.eval(), x))


# -- what cannot be exported: one line naming it ----------------------------------------------

def _one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_a_method_that_decides_on_the_host_is_refused_by_name(tmp_path):
    pytest.importorskip("adaprune_baselines.dynamicvit")
    vit = adaprune.wrap(tiny_vit(), method="dynamicvit")
    with pytest.raises(TypeError) as error:
        export_onnx(vit, tmp_path / "vit.onnx", torch.randn(1, 4, 32, 32))
    assert "'dynamicvit'" in _one_line(error) and "adacolvit" in str(error.value)
    assert not (tmp_path / "vit.onnx").exists()


def test_a_block_the_kernel_does_not_compute_is_refused(tmp_path):
    vit = adaprune.wrap(tiny_vit(**VARIANTS["qk_norm"]), patch_groups=2)
    with pytest.raises(TypeError) as error:
        export_onnx(vit, tmp_path / "vit.onnx", torch.randn(1, 4, 32, 32))
    assert "block 0" in _one_line(error) and "q/k norm" in str(error.value)


def test_bad_arguments_are_one_line_errors(tmp_path):
    vit = adaprune.wrap(tiny_vit(), patch_groups=2)
    x = torch.randn(1, 4, 32, 32)
    with pytest.raises(ValueError) as error:
        export_onnx(vit, tmp_path / "a.onnx", torch.randn(2, 4, 32, 32))
    assert "(1, 4, 32, 32)" in _one_line(error)
    with pytest.raises(ValueError) as error:
        export_onnx(vit, tmp_path / "a.onnx", x, opset=13)
    assert ">= 18" in _one_line(error)
    with pytest.raises(FileNotFoundError) as error:
        export_onnx(vit, tmp_path / "missing" / "a.onnx", x)
    assert "does not exist" in _one_line(error)
    with pytest.raises(IsADirectoryError):
        export_onnx(vit, tmp_path, x)
    with adaprune.policy(vit, "random", patch_keep=0.5):
        with pytest.raises(ValueError) as error:
            export_onnx(vit, tmp_path / "a.onnx", x)
    assert "learned policy" in _one_line(error)
    with pytest.raises(TypeError) as error:
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "a.onnx", x)
    assert "VisionTransformer" in _one_line(error)
