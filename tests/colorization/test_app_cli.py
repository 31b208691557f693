"""``adacolor app``: options, the models it serves, and a real start that prints a working URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch

from adacolor.app.cli import load_models
from adacolor.app.serve import bind
from adacolor.app.server import DEFAULT_MAX_IMAGES
from adacolor.cli import build_parser, main
from adacolor.model import colorizer_state, create_colorizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("app") / "checkpoint.pt"
    torch.save(colorizer_state(create_colorizer("adacolvit-t", image_size=32, patch_size=8, depth=2)), path)
    return path


def test_options_and_defaults() -> None:
    args = build_parser().parse_args(["app", "--checkpoint", "c.pt"])
    assert (args.command, args.checkpoint, args.model, args.host, args.port) == ("app", "c.pt", None, "127.0.0.1", 8000)
    assert args.max_images == DEFAULT_MAX_IMAGES


def test_model_and_checkpoint_exclude_each_other(capsys: pytest.CaptureFixture) -> None:
    assert main(["app", "--model", "adacolvit-t", "--checkpoint", "c.pt"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_checkpoint_is_served_under_its_model_name(checkpoint: Path) -> None:
    models, descriptions = load_models(checkpoint=str(checkpoint))
    assert list(models) == ["adacolvit-t"] and not models["adacolvit-t"].training
    assert str(checkpoint) in descriptions["adacolvit-t"]


def test_shipped_models_are_served_the_default_first(checkpoint: Path, tmp_path: Path) -> None:
    from adacolor.weights import DEFAULT_MODEL, export_weights

    export_weights(checkpoint, "another-model", "a second model", directory=tmp_path)
    export_weights(checkpoint, DEFAULT_MODEL, "the default model", directory=tmp_path)
    models, descriptions = load_models(weights_dir=str(tmp_path))
    assert list(models) == [DEFAULT_MODEL, "another-model"]
    assert descriptions == {DEFAULT_MODEL: "the default model", "another-model": "a second model"}
    one, _ = load_models("another-model", weights_dir=str(tmp_path))
    assert list(one) == ["another-model"] and not one["another-model"].training
    with pytest.raises(ValueError, match="another-model"):
        load_models("no-such-model", weights_dir=str(tmp_path))
    with pytest.raises(ValueError, match="ships no trained colorizer"):
        load_models(weights_dir=str(tmp_path / "empty"))


def test_mistakes_are_one_line(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["app", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adacolor app: error:") and "missing.pt" in err and len(err.strip().splitlines()) == 1
    taken = bind("127.0.0.1", 0)
    try:
        assert main(["app", "--checkpoint", str(checkpoint), "--port", str(taken.getsockname()[1])]) == 2
        assert "--port 0" in capsys.readouterr().err
    finally:
        taken.close()


@pytest.mark.slow
def test_the_command_prints_a_url_that_serves_the_page(checkpoint: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "adacolor.cli", "app", "--checkpoint", str(checkpoint),
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert "serving adacolvit-t at http://127.0.0.1:" in line, line + process.stderr.read()
        url = line.split(" at ")[1].split()[0]
        assert httpx.get(url, timeout=30).status_code == 200
        models = httpx.get(url + "api/models", timeout=30).json()
        assert [m["name"] for m in models["models"]] == ["adacolvit-t"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
