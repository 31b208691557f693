"""``adacolor``'s one error path: every anticipated mistake is one line on stderr naming what
was wrong and what is accepted, exit status 2, no traceback; and a fast start."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import torch

from adacolor.catalog import MODEL_DESCRIPTIONS
from adacolor.cli import build_parser, main
from adacolor.colorize import save_image
from adacolor.config import list_recipes
from adacolor.model import colorizer_state, create_colorizer, list_colorizers

ROOT = Path(__file__).resolve().parents[2]
TINY_TRAIN = ["--set", "image_size=32", "--set", "patch_size=8", "--set", "depth=2", "--set", "batch_size=4",
              "--set", "max_steps=2", "--set", "val_images=2", "--set", "eval_hints=1", "--set", "num_workers=0"]


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> str:
    """Runs ``adacolor argv`` in this process; asserts exit status 2 and one line on stderr,
    without a traceback, holding each of ``words``. Returns that line."""
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny checkpoint, a photo, and checkpoints that are not checkpoints."""
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = create_colorizer("icolorit-t", image_size=32, patch_size=8, depth=2)
    torch.save(colorizer_state(model), root / "model.pt")
    save_image(torch.rand(3, 40, 50), root / "photo.png")
    jpeg = root / "photo.jpg"
    save_image(torch.rand(3, 40, 50), jpeg)
    (root / "random.pt").write_bytes(os.urandom(4096))
    (root / "renamed-jpeg.pt").write_bytes(jpeg.read_bytes())
    whole = (root / "model.pt").read_bytes()
    (root / "truncated.pt").write_bytes(whole[: len(whole) // 2])
    (root / "empty.pt").write_bytes(b"")
    torch.save(torch.zeros(3), root / "tensor.pt")
    torch.save({"weights": torch.zeros(3)}, root / "not-a-colorizer.pt")
    (root / "text.jpg").write_text("not an image")
    return {path.stem: path for path in root.iterdir()}


BAD_CHECKPOINTS = {
    "random": "it is not a PyTorch file",
    "renamed-jpeg": "it is a JPEG image",
    "truncated": "its zip archive is truncated or damaged",
    "empty": "is an empty file",
}


@pytest.mark.parametrize("kind", sorted(BAD_CHECKPOINTS))
@pytest.mark.parametrize("command", ["colorize", "evaluate", "bench", "train"])
def test_a_bad_checkpoint_is_one_line_naming_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                      files: dict[str, Path], command: str, kind: str) -> None:
    checkpoint = files[kind]
    if command == "colorize":
        argv = ["colorize", str(files["photo"]), "--checkpoint", str(checkpoint), "--random-hints", "3",
                "--out", str(tmp_path / "out.png")]
    elif command == "evaluate":
        argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", "samples", "--out", str(tmp_path)]
    elif command == "bench":
        argv = ["bench", "--checkpoint", str(checkpoint)]
    else:  # resuming from a checkpoint.pt in --out
        (tmp_path / "checkpoint.pt").write_bytes(checkpoint.read_bytes())
        checkpoint = tmp_path / "checkpoint.pt"
        argv = ["train", "--recipe", "smoke", *TINY_TRAIN, "--out", str(tmp_path)]
    line = _fails(capsys, argv, f"adacolor {command}: error: checkpoint {checkpoint}", BAD_CHECKPOINTS[kind],
                  "expected a checkpoint.pt written by `adacolor train`")
    assert "weights_only=False" not in line and "weights_only` set to `False`" not in line


@pytest.mark.parametrize("kind, words", [
    ("tensor", ["holds a Tensor, not a dict"]),
    ("not-a-colorizer", ["is not a colorizer checkpoint", "'model_args' and 'model'"]),
    ("missing", ["no checkpoint at", "adacolor train --out DIR"]),
])
def test_other_files_that_are_not_colorizers(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             files: dict[str, Path], kind: str, words: list[str]) -> None:
    checkpoint = files.get(kind, tmp_path / "missing.pt")
    _fails(capsys, ["colorize", str(files["photo"]), "--checkpoint", str(checkpoint), "--random-hints", "3",
                    "--out", str(tmp_path / "out.png")], str(checkpoint), *words)


@pytest.mark.parametrize("text, words", [
    ("model: [icolorit-t\nepochs: 2\n", ["bad.yaml:2:7", "is not valid YAML", "'key: value'"]),
    ("model: icolorit-t\n  epochs: 2\n", ["bad.yaml:2:9", "is not valid YAML"]),
    ("- model\n- icolorit-t\n", ["must be a mapping of config keys, got list"]),
    ("inherit: [smoke]\n", ["'inherit' takes a recipe name"]),
    ("1: 2\n", ["keys must be config field names"]),
])
def test_a_malformed_recipe_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str,
                                        words: list[str]) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    _fails(capsys, ["train", "--recipe", str(recipe), "--out", str(tmp_path / "run")], "adacolor train: error: ",
           "recipe ", *words)
    assert not (tmp_path / "run").exists()  # nothing written


def test_a_binary_recipe_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_bytes(b"\xff\xfe\x00garbage\x81")
    _fails(capsys, ["train", "--recipe", str(recipe), "--out", str(tmp_path / "run")], "is not")


def test_cuda_without_cuda_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, files: dict[str, Path],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _fails(capsys, ["train", "--recipe", "smoke", *TINY_TRAIN, "--set", "device=cuda", "--out", str(tmp_path / "run")],
           "device=cuda", "no CUDA GPU", "device=cpu")
    _fails(capsys, ["evaluate", "--checkpoint", str(files["model"]), "--data", "samples", "--device", "cuda",
                    "--out", str(tmp_path / "eval")], "--device cuda", "no CUDA GPU", "--device cpu")


@pytest.mark.parametrize("hint, words", [
    ({"x": 3, "y": 4, "color": [200, 30, 30]}, ["unknown key(s) 'color'", "known keys are x, y, size, rgb, ab"]),
    ({"x": 3, "y": 4, "ab": [400.0, -300.0]}, ["'ab' must be two numbers", "-110..110"]),
    ({"x": "3", "y": 4}, ["'x' must be a number"]),
    ({"x": 3, "y": 4, "size": 1000}, ["'size' must be an integer from 2 to 7"]),
    ({"x": 300, "y": 4}, ["outside the 50x40 image"]),
])
def test_bad_hints_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, files: dict[str, Path],
                                hint: dict, words: list[str]) -> None:
    hints = tmp_path / "clicks.json"
    hints.write_text(json.dumps([hint]))
    _fails(capsys, ["colorize", str(files["photo"]), "--checkpoint", str(files["model"]), "--hints", str(hints),
                    "--out", str(tmp_path / "out.png")], "adacolor colorize: error: ", *words)
    assert not (tmp_path / "out.png").exists()


def test_bad_input_files_of_colorize(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     files: dict[str, Path]) -> None:
    model = str(files["model"])
    hints = tmp_path / "clicks.json"
    hints.write_text("[{x: 1}]")
    _fails(capsys, ["colorize", str(files["photo"]), "--checkpoint", model, "--hints", str(hints), "--out",
                    str(tmp_path / "o.png")], f"{hints} is not JSON")
    _fails(capsys, ["colorize", str(files["text"]), "--checkpoint", model, "--random-hints", "2", "--out",
                    str(tmp_path / "o.png")], f"{files['text']} is not a readable image")
    _fails(capsys, ["colorize", str(tmp_path / "none.jpg"), "--checkpoint", model, "--random-hints", "2", "--out",
                    str(tmp_path / "o.png")], "no image at")


@pytest.mark.parametrize("out", ["colorized", "colorized.txt"])
def test_an_output_without_an_image_extension_fails_before_any_work(capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path, files: dict[str, Path],
                                                                    out: str) -> None:
    import adacolor.cli as cli
    import adacolor.colorize as colorize

    work: list[str] = []   # what ran: loading the model, reading the photo
    real_load, real_read = cli._load_model, colorize._read_pixels
    monkeypatch.setattr(cli, "_load_model", lambda args: work.append("model") or real_load(args))
    monkeypatch.setattr(colorize, "_read_pixels", lambda image: work.append("photo") or real_read(image))
    _fails(capsys, ["colorize", str(files["photo"]), "--checkpoint", str(files["random"]), "--random-hints", "2",
                    "--out", str(tmp_path / out)], "--out", "use one of .png, .jpg")  # not the checkpoint's error
    assert work == []


def test_output_folders_that_are_files(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       files: dict[str, Path]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _fails(capsys, ["train", "--out", str(blocker / "run")], "argument --out", "is a file")
    _fails(capsys, ["evaluate", "--checkpoint", str(files["model"]), "--data", "samples", "--out", str(blocker)],
           "argument --out", "is a file")
    _fails(capsys, ["bench", "--models", "icolorit-t", "--out", str(blocker)], "argument --out", "is a file")


@pytest.mark.parametrize("argv, words", [
    (["evaluate", "--checkpoint", "c.pt", "--data", "samples", "--out", "o", "--hints", "0,1"], ["--hints"]),
    (["evaluate", "--checkpoint", "c.pt", "--data", "samples", "--out", "o", "--images", "0"], ["--images", ">= 1"]),
    (["evaluate", "--checkpoint", "c.pt", "--data", "samples", "--out", "o", "--device", "gpu"], ["cpu, cuda"]),
    (["bench", "--models", "icolorit-t", "--patch-keep", "2"], ["--patch-keep", "[0, 1]"]),
    (["bench", "--runs", "many"], ["--runs", "integer"]),
    (["colorize", "p.png", "--checkpoint", "c.pt", "--random-hints", "-1", "--out", "o.png"], ["--random-hints"]),
    (["colorize", "p.png", "--checkpoint", "c.pt", "--out", "o.png"], ["one of the arguments --hints"]),
    (["train"], ["required: --out", "see adacolor train --help"]),
    (["paint"], ["invalid choice: 'paint'"]),
    ([], ["required: COMMAND"]),
    (["train", "--recipe", "no-such-recipe", "--out", "o"], ["shipped: ", "smoke"]),
    (["train", "--recipe", "smoke", "--set", "epochs=zero", "--out", "o"], ["epochs: expected int"]),
    (["train", "--recipe", "smoke", "--set", "epoch=3", "--out", "o"], ["unknown config key(s) epoch"]),
    (["bench"], ["nothing to benchmark"]),
])
def test_bad_option_values_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, argv: list[str], words: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    _fails(capsys, argv, *words)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_evaluate_reports_a_missing_data_folder_and_lpips_weights(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                                 files: dict[str, Path],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    model = str(files["model"])
    _fails(capsys, ["evaluate", "--checkpoint", model, "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)],
           "data folder", "nowhere", "'samples'")
    monkeypatch.setenv("ADAPRUNE_CACHE", str(tmp_path / "empty-cache"))
    _fails(capsys, ["evaluate", "--checkpoint", model, "--data", "samples", "--lpips", "vgg", "--out",
                    str(tmp_path / "eval")], "LPIPS-vgg weights not found", "python -m adacolor.lpips fetch")


# -- help, version, list ---------------------------------------------------------------------------

OWN_COMMANDS = ("train", "evaluate", "colorize", "bench", "demo", "list")


def test_every_option_has_help_showing_its_default() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in OWN_COMMANDS:
        text = commands[name].format_help()
        for action in commands[name]._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"adacolor {name} {action.option_strings[0]} has no help"
            meaningful = action.default not in (None, False, "", []) and not action.required
            if meaningful:
                assert "(default: " in text.split(action.option_strings[-1], 1)[1], (name, action.option_strings)
    assert "(default: 1,10)" in commands["evaluate"].format_help()
    assert "(default: smoke)" in commands["train"].format_help()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"adacolor {version('adaprune')}"


def test_list_describes_each_recipe_and_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert set(MODEL_DESCRIPTIONS) == set(list_colorizers())  # the torch-free table is the registry's
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    described = {line.split()[0]: line.split(None, 1)[1] for line in lines if line.startswith("  ") and
                 len(line.split()) > 1}
    for name in list_recipes() + list_colorizers():
        assert len(described.get(name, "")) > 10, name
    assert "A few steps on scikit-image's bundled photos" in described["smoke"]


START_SCRIPT = """
import sys
from adacolor.cli import main
code = main(sys.argv[1:])
sys.stderr.write("\\ntorch imported: %s\\n" % ("torch" in sys.modules))
sys.exit(code)
"""


@pytest.mark.parametrize("argv, code", [
    (["--help"], 0), (["--version"], 0), (["list"], 0), (["train", "--help"], 0),
    (["train"], 2), (["colorize", "photo.jpg", "--out", "x.png"], 2), (["bench", "--runs", "0"], 2),
])
def test_a_fast_start_without_torch(argv: list[str], code: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", START_SCRIPT, *argv], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=60)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("torch imported: False")   # torch is the slow import


def test_a_training_set_of_unreadable_files_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "broken"
    data.mkdir()
    for i in range(3):
        (data / f"photo{i}.jpg").write_text("not an image")
    _fails(capsys, ["train", "--recipe", "smoke", *TINY_TRAIN, "--set", f"data={data}", "--set", f"val_data={data}",
                    "--out", str(tmp_path / "run")], "none of the 3 image files", str(data))


def test_a_non_finite_loss_is_one_line_with_the_remedy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _fails(capsys, ["train", "--recipe", "smoke", *TINY_TRAIN, "--set", "lr=1e30", "--set", "max_steps=3",
                    "--out", str(tmp_path / "run")], "not finite", "lower lr")
