"""What a newcomer meets first: a mistyped path is told at once (before torch is imported),
and ``adacolor colorize --help`` shows the hint file's format with an example that parses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from adacolor.cli import main

# Runs adacolor in a fresh interpreter, then says on stderr's last line whether torch was imported.
RUN_AND_REPORT_TORCH = ("import sys; from adacolor.cli import main; code = main(sys.argv[1:]); "
                        "print('torch imported:', 'torch' in sys.modules, file=sys.stderr); sys.exit(code)")


@pytest.fixture()
def place(tmp_path: Path) -> Path:
    """A folder with files that exist (their contents are never read: the paths fail first)."""
    (tmp_path / "photo.png").write_bytes(b"not read")
    (tmp_path / "hints.json").write_text("[]")
    (tmp_path / "model.pt").write_bytes(b"not read")
    (tmp_path / "a-file").write_text("")
    return tmp_path


@pytest.mark.parametrize("argv, words", [
    (["colorize", "missing.jpg", "--random-hints", "10", "--out", "colorized.png"],
     ["adacolor colorize: error: no image at missing.jpg"]),
    (["colorize", "photo.png", "--hints", "missing.json", "--out", "colorized.png"],
     ["no hint file at missing.json"]),
    (["colorize", "photo.png", "--checkpoint", "missing.pt", "--random-hints", "3", "--out", "colorized.png"],
     ["no checkpoint at missing.pt", "adacolor train --out DIR"]),
    (["colorize", "photo.png", "--random-hints", "3", "--out", "a-file/colorized.png"],
     ["--out a-file/colorized.png", "is a file, not a folder"]),
    (["colorize", "photo.png", "--random-hints", "3", "--out", "o.png", "--figure", "a-file/deep/f.png"],
     ["--figure a-file/deep/f.png", "is a file, not a folder"]),
    (["evaluate", "--checkpoint", "missing.pt", "--data", "samples", "--out", "eval"],
     ["adacolor evaluate: error: no checkpoint at missing.pt"]),
    (["bench", "--checkpoint", "model.pt", "--checkpoint", "missing.pt"],
     ["adacolor bench: error: no checkpoint at missing.pt"]),
])
def test_a_missing_file_is_told_before_torch_is_imported(place: Path, argv: list[str], words: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", RUN_AND_REPORT_TORCH, *argv], capture_output=True, text=True,
                            cwd=place, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[-1] == "torch imported: False", result.stderr
    assert len(lines) == 2, result.stderr  # the error, one line, and the report
    for word in words:
        assert word in lines[0], lines[0]
    assert sorted(path.name for path in place.iterdir()) == ["a-file", "hints.json", "model.pt", "photo.png"]


def test_colorize_help_shows_a_hint_file_that_parses(capsys: pytest.CaptureFixture[str]) -> None:
    from adacolor.colorize import HINT_KEYS, parse_user_hints

    assert main(["colorize", "--help"]) == 0
    text = capsys.readouterr().out
    assert "hint file (--hints)" in text and '{"hints": [...]}' in text
    assert "adacolor colorize sample:astronaut --random-hints 10 --out colorized.png" in text
    start = text.index('[{"x"')
    example, _ = json.JSONDecoder().raw_decode(text[start:])  # the example as shown, line breaks and all
    hints = parse_user_hints(example, "the --help example")
    assert len(hints) == 3
    assert {key for point in example for key in point} == set(HINT_KEYS)  # every key a hint may have
    assert [hint.ab is None for hint in hints] == [False, False, True]  # rgb, ab, the photo's own colour
    assert max(hint.x for hint in hints) < 512 and max(hint.y for hint in hints) < 512  # inside the astronaut
