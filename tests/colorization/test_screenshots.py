"""The pure parts of ``adacolor.app.screenshots``: the hint file and the composite (no browser)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from adacolor.app.screenshots import composite, main, read_hint_file
from adacolor.colorize import parse_user_hints

SHIPPED_HINTS = Path(__file__).resolve().parents[2] / "docs" / "figures" / "before-after" / "hints.json"


def test_the_docs_hint_file_reads_here_and_in_colorize() -> None:
    photo, hints = read_hint_file(SHIPPED_HINTS)
    assert photo == "sample:astronaut"
    assert 3 <= len(hints) <= 5
    assert all(set(h) == {"x", "y", "size", "rgb"} and 0 <= h["x"] < 512 and 0 <= h["y"] < 512 for h in hints)
    assert len(parse_user_hints(json.loads(SHIPPED_HINTS.read_text()))) == len(hints)  # adacolor colorize --hints


def test_a_bare_list_has_no_photo_and_size_defaults(tmp_path: Path) -> None:
    path = tmp_path / "hints.json"
    path.write_text(json.dumps([{"x": 3, "y": 4.5, "rgb": [1, 2, 3]}]))
    assert read_hint_file(path) == (None, [{"x": 3.0, "y": 4.5, "size": 2, "rgb": [1, 2, 3]}])


@pytest.mark.parametrize("content, message", [
    ("{not json", "not JSON"),
    (json.dumps({"photo": 3, "hints": []}), "'photo' must be a string"),
    (json.dumps({"hints": [{"x": 1, "y": 1}]}), "needs 'rgb'"),
    (json.dumps({"hints": [{"x": 1, "y": 1, "size": 99, "rgb": [0, 0, 0]}]}), "hint 0"),
])
def test_bad_hint_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "hints.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_hint_file(path)


def test_composite_puts_images_side_by_side_under_captions() -> None:
    red = Image.new("RGB", (40, 30), (255, 0, 0))
    blue = Image.new("RGB", (20, 50), (0, 0, 255))
    image = composite([("a", red), ("b", blue)], gap=5, caption_height=10, font_size=8)
    assert image.mode == "RGB" and image.size == (40 + 20 + 3 * 5, 50 + 10 + 2 * 5)
    assert image.getpixel((5, 15)) == (255, 0, 0) and image.getpixel((5 + 39, 15 + 29)) == (255, 0, 0)
    assert image.getpixel((50, 15)) == (0, 0, 255) and image.getpixel((50, 15 + 49)) == (0, 0, 255)
    assert image.getpixel((5, 15 + 30)) == (255, 255, 255)  # below the shorter image: white
    caption = image.crop((5, 0, 45, 15))
    assert caption.convert("L").getextrema()[0] < 128  # the caption is drawn


def test_composite_needs_a_panel() -> None:
    with pytest.raises(ValueError):
        composite([])


def test_the_command_refuses_a_hint_file_without_a_photo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hints.json"
    path.write_text("[]")
    assert main(["--models", "x", "--hints", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "no photo" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
