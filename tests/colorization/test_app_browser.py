"""The page in a real browser: Playwright drives Debian's chromium against a real uvicorn server.

Opens the page, uploads a photo, clicks three hints and sees the result change, moves one by
dragging, undoes and redoes, toggles the compute map, downloads the PNG (what ``colorize`` makes
of the photo and the hints, pixel for pixel) and saves the hints; then opens a photo larger than
the page shows it and sees each click drawn as a preview at the displayed size.
Set ``ADAPRUNE_SCREENSHOT=docs/figures/app.png`` to write the screenshots the docs show (that
file, and ``app-compute-map.png`` beside it with the compute map on; with
the shipped models when there are any, or ``ADAPRUNE_APP_CHECKPOINT``'s model); otherwise it
goes to a temporary folder.
Missing chromium or Playwright skips the test, except where CI=true or ADAPRUNE_REQUIRE_DATA=1.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adacolor.app.serve import background
from adacolor.app.server import create_app, preview_size
from adacolor.colorize import colorize, load_image, parse_user_hints, save_image
from adacolor.data import sample_photos
from adacolor.model import create_colorizer

CHROMIUM = os.environ.get("ADAPRUNE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
REQUIRED = os.environ.get("CI", "").lower() == "true" or os.environ.get("ADAPRUNE_REQUIRE_DATA") == "1"


def _missing(what: str) -> None:
    message = (f"{what}; install it with `apt-get install chromium` and `pip install playwright` "
               f"(Playwright's own browser download is not needed)")
    if REQUIRED:
        pytest.fail(message + " (required here: CI=true or ADAPRUNE_REQUIRE_DATA=1)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed")
    if shutil.which(CHROMIUM) is None:
        _missing(f"no chromium at {CHROMIUM} (set ADAPRUNE_CHROMIUM to another binary)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=shutil.which(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _models() -> dict[str, torch.nn.Module]:
    from adacolor.app.cli import load_models

    if os.environ.get("ADAPRUNE_APP_CHECKPOINT"):  # a trained model to show, e.g. before it is shipped
        return load_models(checkpoint=os.environ["ADAPRUNE_APP_CHECKPOINT"])[0]
    if os.environ.get("ADAPRUNE_SCREENSHOT"):
        try:
            return load_models()[0]
        except ValueError:  # nothing shipped: the screenshot shows an untrained model
            pass
    torch.manual_seed(0)
    return {"adacolvit-t": create_colorizer("adacolvit-t", image_size=112).eval(),
            "icolorit-t": create_colorizer("icolorit-t", image_size=112).eval()}


RESULT_SUM = """() => {
  const c = document.getElementById('result');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let s = 0;
  for (let i = 0; i < d.length; i += 1) s = (s * 31 + d[i]) % 1000000007;
  return s;
}"""

IDLE = "n => Number(document.getElementById('result').dataset.generation || 0) >= n && document.getElementById('busy').hidden"


def test_the_page_end_to_end(browser, tmp_path: Path) -> None:
    photo = sample_photos(None)[2]["rgb"]  # chelsea, 451 x 300
    height, width = photo.shape[-2:]
    photo_path = save_image(photo, tmp_path / "chelsea.png")
    screenshot = Path(os.environ.get("ADAPRUNE_SCREENSHOT") or tmp_path / "app.png")
    with_map = screenshot.with_name(f"{screenshot.stem}-compute-map{screenshot.suffix}")

    models = _models()
    with background(create_app(models)) as url:
        page = browser.new_page(viewport={"width": 1360, "height": 760}, accept_downloads=True)
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:"))
                else problems.append(f"fetched from elsewhere: {r.url}"))
        page.goto(url)
        page.wait_for_function("() => document.getElementById('model').options.length > 0")
        assert page.locator("#empty").is_visible()

        page.set_input_files("#file", str(photo_path))
        page.wait_for_function(IDLE, arg=1)
        assert page.locator("#gray").is_visible() and page.locator("#result").is_visible()
        shown_h, shown_w = preview_size(page.evaluate("() => state.display"), (height, width))
        assert page.eval_on_selector("#gray", "i => [i.naturalWidth, i.naturalHeight]") == [shown_w, shown_h]
        assert page.eval_on_selector("#result", "c => [c.width, c.height]") == [shown_w, shown_h]
        before = page.evaluate(RESULT_SUM)

        box = page.locator("#gray").bounding_box()
        colours = ["#a0a030", "#8a6440", "#c08878"]  # eye, fur, nose: a tabby's colours
        for i, (fx, fy) in enumerate([(0.25, 0.3), (0.7, 0.25), (0.5, 0.8)]):
            page.evaluate("c => { const e = document.getElementById('color'); e.value = c; }", colours[i])
            generation = int(page.get_attribute("#result", "data-generation"))
            page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            page.wait_for_function(IDLE, arg=generation + 1)
        assert page.locator(".marker").count() == 3
        after = page.evaluate(RESULT_SUM)
        assert after != before, "three hints did not change the result"
        assert "GFLOPs" in page.inner_text("#stats") and "ms" in page.inner_text("#stats")
        assert page.locator("#suggested").is_enabled()  # the model's colour at the last click
        assert page.locator("#recent .swatch").count() == 3

        # drag the first hint, then undo and redo the move
        first = page.locator(".marker").nth(0).bounding_box()
        start = (first["x"] + first["width"] / 2, first["y"] + first["height"] / 2)
        hints_before = page.evaluate("() => state.hints.map(h => [h.x, h.y])")
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(start[0] + 60, start[1] + 40, steps=4)
        page.mouse.up()
        page.wait_for_function("() => !state.inFlight")
        moved = page.evaluate("() => state.hints.map(h => [h.x, h.y])")
        assert moved[0] != hints_before[0] and moved[1:] == hints_before[1:] and len(moved) == 3
        page.keyboard.press("Control+z")
        assert page.evaluate("() => state.hints.map(h => [h.x, h.y])") == hints_before
        page.keyboard.press("Control+Shift+z")
        assert page.evaluate("() => state.hints.map(h => [h.x, h.y])") == moved
        page.wait_for_function("() => !state.inFlight")

        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot))
        page.check("#show-map")
        page.wait_for_function("() => { const m = document.getElementById('map'); "
                               "return !m.hidden && m.naturalWidth > 0; }")
        assert page.locator("#blocks .block").count() == 12
        assert "sub-layers" in page.inner_text("#map-summary") or "dense" in page.inner_text("#map-summary")
        page.wait_for_function("() => !state.inFlight")
        page.screenshot(path=str(with_map))

        with page.expect_download() as download:
            page.click("#download")
        with Image.open(download.value.path()) as result:
            assert result.format == "PNG" and result.size == (width, height)
            shown = np.asarray(result.convert("RGB"))
        model = models[page.evaluate("() => document.getElementById('model').value")]
        placed = parse_user_hints(page.evaluate("() => state.hints"), "the page's hints")
        expected = colorize(model, load_image(photo_path), placed)["rgb"]  # what adacolor colorize writes
        np.testing.assert_array_equal(shown, (expected * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())

        with page.expect_download() as saved:
            page.click("#save-hints")
        hints = json.loads(Path(saved.value.path()).read_text())
        assert len(parse_user_hints(hints, "saved hints")) == 3  # the format `adacolor colorize --hints` reads
        assert all(set(h) == {"x", "y", "size", "rgb"} for h in hints)
        page.click("#clear")
        assert page.locator(".marker").count() == 0
        page.set_input_files("#hints-file", saved.value.path())
        page.wait_for_function("() => document.querySelectorAll('.marker').length === 3")
        page.wait_for_function("() => !state.inFlight")

        # a photo larger than the page shows it: each click comes back at the displayed size
        large_path = tmp_path / "chelsea-large.png"
        with Image.open(photo_path) as small:
            small.resize((4 * width, 4 * height), Image.Resampling.BICUBIC).save(large_path)
        opened = int(page.get_attribute("#result", "data-generation"))
        page.set_input_files("#file", str(large_path))
        page.wait_for_function(IDLE, arg=opened + 1)
        assert page.evaluate("() => [state.photo.width, state.photo.height]") == [4 * width, 4 * height]
        display = page.evaluate("() => state.display")
        assert display[0] < 4 * width and display[1] < 4 * height
        assert page.eval_on_selector("#gray", "i => [i.naturalWidth, i.naturalHeight]") == display
        box = page.locator("#gray").bounding_box()
        generation = int(page.get_attribute("#result", "data-generation"))
        page.mouse.click(box["x"] + 0.4 * box["width"], box["y"] + 0.6 * box["height"])
        page.wait_for_function(IDLE, arg=generation + 1)
        drawn = page.evaluate("() => state.timings[state.timings.length - 1]")
        assert [drawn["width"], drawn["height"]] == display
        assert page.eval_on_selector("#result", "c => [c.width, c.height]") == display
        assert drawn["hints"] == 1 and drawn["ms"] > 0 and drawn["bytes"] < 3 * display[0] * display[1]
        page.close()
    assert not problems, problems
    assert screenshot.is_file() and with_map.is_file()
