"""Training: exact resume after a kill or a signal, torchrun with 2 processes equals one, atomic checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from adacolor import train as train_module
from adacolor.config import make_config
from adacolor.train import WarmupCosine, epoch_order, save_checkpoint, train

ROOT = Path(__file__).resolve().parents[2]
# a tiny run on scikit-image's photos: 32 px, patch 8, 2 blocks; a few seconds on 2 cores
TINY = ["image_size=32", "patch_size=8", "depth=2", "batch_size=4", "max_steps=6", "lr=1e-3",
        "val_images=2", "eval_hints=1", "eval_every=3", "checkpoint_every=2", "log_every=1",
        "max_hints=8", "num_workers=0", "threads=1"]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.mark.parametrize("model", ["icolorit-t", "adacolvit-t"])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path: Path, model: str) -> None:
    config = make_config("smoke", TINY + [f"model={model}"])
    whole = train(config, tmp_path / "whole")
    killed = train(config, tmp_path / "resumed", stop_at_step=3)  # last checkpoint at step 2
    assert killed["stopped"] and killed["step"] == 3
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["step"] == 2
    resumed = train(config, tmp_path / "resumed")
    assert resumed["step"] == whole["step"] == 6
    a, b = _weights(tmp_path / "whole" / "checkpoint.pt"), _weights(tmp_path / "resumed" / "checkpoint.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the log of the resumed run holds each step once, as the uninterrupted one does
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == list(range(1, 7))
    assert whole["metrics"]["psnr@1"] == pytest.approx(resumed["metrics"]["psnr@1"], abs=1e-9)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_checkpoints_the_current_step_and_the_resumed_run_equals_the_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int) -> None:
    config = make_config("smoke", TINY + ["model=adacolvit-t"])  # checkpoints every 2 steps
    whole = train(config, tmp_path / "whole")
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    real_loss, calls = train_module.colorization_loss, []

    def signalled_in_step_3(*args, **kwargs):  # Ctrl-C / kill while step 3 computes its loss
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signum)
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train_module, "colorization_loss", signalled_in_step_3)
    stopped = train(config, tmp_path / "resumed")
    assert stopped["interrupted"] == signal.Signals(signum).name and stopped["stopped"]
    assert stopped["step"] == 3 and len(calls) == 3  # step 3 finished, step 4 never began
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["step"] == 3  # not 2
    assert {s: signal.getsignal(s) for s in before} == before  # the handlers are put back
    monkeypatch.undo()
    resumed = train(config, tmp_path / "resumed")
    assert resumed["step"] == whole["step"] == 6 and resumed["interrupted"] is None
    a, b = _weights(tmp_path / "whole" / "checkpoint.pt"), _weights(tmp_path / "resumed" / "checkpoint.pt")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert whole["metrics"]["psnr@1"] == pytest.approx(resumed["metrics"]["psnr@1"], abs=1e-9)


def test_ctrl_c_in_a_terminal_stops_adacolor_train_cleanly(tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C, with a DataLoader worker."""
    overrides = [item for item in TINY if not item.startswith(("max_steps", "num_workers"))]
    overrides += ["max_steps=100000", "num_workers=1", "eval_every=0", "checkpoint_every=0"]
    argv = ["train", "--recipe", "smoke", *[f"--set={item}" for item in overrides], "--out", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "adacolor", *argv], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    log = tmp_path / "log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and len(log.read_text().splitlines()) >= 3):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "Error" not in err, err[-3000:]
    step = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"]
    assert step == json.loads(log.read_text().splitlines()[-1])["step"] >= 3  # no step lost
    resume = f"resume with: adacolor train --recipe smoke {' '.join(f'--set {item}' for item in overrides)} " \
             f"--out {tmp_path}"
    assert f"[adacolor] stopped by SIGINT at step {step}; checkpoint: {tmp_path / 'checkpoint.pt'}; {resume}" in err


def test_resuming_with_another_config_is_refused(tmp_path: Path) -> None:
    train(make_config("smoke", TINY), tmp_path, stop_at_step=3)  # checkpoint at step 2
    with pytest.raises(ValueError, match="lr"):
        train(make_config("smoke", TINY + ["lr=2e-3"]), tmp_path)


def test_two_torchrun_processes_equal_one(tmp_path: Path) -> None:
    overrides = [f"--set={item}" for item in TINY + ["max_steps=3", "checkpoint_every=0", "eval_every=0"]]
    one = make_config("smoke", [o.removeprefix("--set=") for o in overrides])
    train(one, tmp_path / "one")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
               "-m", "adacolor", "train", "--recipe", "smoke", *overrides, "--out", str(tmp_path / "two")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    assert state["world_size"] == 2 and state["step"] == 3
    losses = [_losses(tmp_path / name / "log.jsonl") for name in ("one", "two")]
    assert len(losses[0]) == 3 and losses[0] == pytest.approx(losses[1], rel=1e-5)
    a, b = _weights(tmp_path / "one" / "checkpoint.pt"), state["model"]
    for key in a:  # the same global batch, split in two: equal up to float summation order,
        # which AdamW's m / sqrt(v) amplifies for near-zero gradients to a fraction of one step
        # (lr 1e-3); a wrong shard or a missing all-reduce moves weights by whole steps
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=2e-4, msg=key)


def _losses(log: Path) -> list[float]:
    return [row["loss"] for row in map(json.loads, log.read_text().splitlines()) if "loss" in row]


def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"step": 1}, path)

    def crash(*args, **kwargs):  # a kill in the middle of writing
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"step": 2}, path)
    assert torch.load(path, weights_only=True)["step"] == 1  # the old checkpoint survives whole


def test_schedule_warms_up_then_decays_to_the_floor() -> None:
    schedule = WarmupCosine(total_steps=100, warmup_steps=10, floor=0.01)
    factors = [schedule(s) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    assert schedule(100) == pytest.approx(0.01)


def test_epoch_order_is_a_seeded_permutation_cut_into_batches() -> None:
    order = epoch_order(10, 4, seed=0, epoch=0)
    assert order.shape == (2, 4) and len(set(order.flatten().tolist())) == 8
    assert torch.equal(order, epoch_order(10, 4, seed=0, epoch=0))
    assert not torch.equal(order, epoch_order(10, 4, seed=0, epoch=1))
    assert epoch_order(3, 8, seed=0, epoch=0).shape == (1, 8)  # a tiny dataset is repeated


@pytest.mark.parametrize("model, extra", [
    ("dynamicvit-t", ["patch_size=8", "depth=4"]),   # a hard-removal gate and its budget loss
    ("swinir-t", []),                                # an image-to-image network, no ViT
])
def test_baselines_train_resume_and_evaluate(tmp_path: Path, model: str, extra: list[str]) -> None:
    from adacolor.evaluate import run_evaluation
    from adacolor.model import load_colorizer

    base = [item for item in TINY if not item.startswith(("patch_size", "depth"))]
    config = make_config("smoke", base + extra + [f"model={model}", "max_steps=4", "eval_every=0"])
    killed = train(config, tmp_path / "run", stop_at_step=3)  # checkpoint at step 2
    assert killed["stopped"]
    done = train(config, tmp_path / "run")
    assert done["step"] == 4 and done["train"]["loss"] > 0
    if model == "dynamicvit-t":
        assert "sparsity" in done["train"]  # DynamicViT's keep-ratio loss was trained
    run_evaluation(load_colorizer(done["checkpoint"]), "samples", tmp_path / "eval", ks=(1,),
                   num_images=2, lpips="none", name=model)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["model"] == model and metrics["images"] == 2
    assert 5 < metrics["psnr@1"] < 60 and metrics["gflops@1"] > 0
