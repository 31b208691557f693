"""Before / after screenshots of the app: the same photo and hints, clicked into the page, per model.

    python -m adacolor.app.screenshots --models adacolvit-t-cpu,icolorit-t-224 \\
        --hints docs/figures/before-after/hints.json --out docs/figures/before-after

The app is used as a person would: the real server (uvicorn on 127.0.0.1, a free port, in a
thread) serves the chosen models, Chromium opens the page (Playwright), picks the model and the
photo, and clicks each hint of the hint file onto the grey photo with its colour and size. Once
the result is shown it writes, per model, ``MODEL.png`` (the page's two panels: grey photo with
the hint markers, and the result with its latency and GFLOPs) and, for all models,
``before-after.png``: the grey photo with its hints, then each model's result, side by side
under captions. ``screenshots.json`` records what the page showed (the hints it placed, its
stats line) and the set-up.

The hint file is the ``adacolor colorize --hints`` format, with the photo beside the hints::

    {"photo": "sample:astronaut", "hints": [{"x": 200, "y": 330, "size": 3, "rgb": [220, 103, 65]}]}

so ``adacolor colorize`` on the same photo and file gives each model's result from the command
line. ``--photo`` overrides the file's photo: ``sample:NAME`` (``adacolor.data.sample_photos``)
or a path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from PIL import Image, ImageDraw, ImageFont

__all__ = ["read_hint_file", "composite", "open_page", "take_screenshots", "main"]

CHROMIUM = os.environ.get("ADAPRUNE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1360, "height": 800}
COMPOSITE_NAME = "before-after.png"
TIMEOUT_MS = 300_000  # per page action: a busy 2-core machine takes seconds per colorize
SAMPLE_PREFIX = "sample:"

# a result has been shown for the n-th time and no request is in flight
_IDLE = ("n => Number(document.getElementById('result').dataset.generation || 0) >= n"
         " && document.getElementById('busy').hidden && !state.inFlight")


def read_hint_file(path: str | os.PathLike[str]) -> tuple[Optional[str], list[dict[str, Any]]]:
    """The photo and the hints of a hint file.

    Args:
        path: JSON, either ``{"photo": "sample:NAME" | PATH, "hints": [...]}`` or a bare list of
            hints; each hint ``{"x", "y", "size", "rgb"}`` in the photo's pixels (the ``adacolor
            colorize --hints`` format, every field given: the page clicks a colour and a size).

    Returns:
        (the photo, or None when the file names none; the hints as dicts).

    Raises:
        ValueError: not JSON, or a hint the ``--hints`` format rejects or that lacks a colour.
    """
    from adacolor.colorize import parse_user_hints

    where = str(path)
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not JSON ({error})") from None
    photo = data.get("photo") if isinstance(data, dict) else None
    if photo is not None and not isinstance(photo, str):
        raise ValueError(f"{where}: 'photo' must be a string, sample:NAME or a path; got {photo!r}")
    parse_user_hints(data, where)  # the same checks `adacolor colorize --hints` makes
    hints = data["hints"] if isinstance(data, dict) else data
    for i, hint in enumerate(hints):
        if "rgb" not in hint:
            raise ValueError(f"{where} hint {i}: the page clicks a colour, so each hint needs 'rgb' [r, g, b]")
    return photo, [{"x": float(h["x"]), "y": float(h["y"]), "size": int(h.get("size", 2)),
                    "rgb": [int(c) for c in h["rgb"]]} for h in hints]


def _font(size: int) -> ImageFont.ImageFont:
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def composite(panels: Sequence[tuple[str, Image.Image]], gap: int = 12, caption_height: int = 34,
              font_size: int = 20) -> Image.Image:
    """Images side by side on white, each under its caption, tops aligned.

    Args:
        panels: (caption, image) in order, left to right.
        gap: white pixels around and between the images.
        caption_height: the band above the images that holds the captions.
        font_size: the captions' size (DejaVu Sans where installed, else PIL's own font).

    Returns:
        An RGB image ``sum(widths) + gap * (n + 1)`` wide, ``max(heights) + caption_height + 2 * gap`` high.
    """
    if not panels:
        raise ValueError("composite needs at least one (caption, image)")
    images = [image.convert("RGB") for _, image in panels]
    width = sum(image.width for image in images) + gap * (len(images) + 1)
    height = max(image.height for image in images) + caption_height + 2 * gap
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(font_size)
    x = gap
    for (caption, _), image in zip(panels, images):
        draw.text((x, gap + caption_height // 2), caption, fill="black", font=font, anchor="lm")
        canvas.paste(image, (x, gap + caption_height))
        x += image.width + gap
    return canvas


def _load_models(names: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Shipped models by name, or a checkpoint path (served under its model's name)."""
    from adacolor.app.cli import load_models

    models: dict[str, Any] = {}
    descriptions: dict[str, str] = {}
    for name in names:
        found = load_models(checkpoint=name) if Path(name).suffix == ".pt" else load_models(model=name)
        models.update(found[0])
        descriptions.update(found[1])
    return models, descriptions


def _open_photo(page: Any, photo: str) -> None:
    if photo.startswith(SAMPLE_PREFIX):
        page.select_option("#sample", photo[len(SAMPLE_PREFIX):])
    else:
        page.set_input_files("#file", photo)


def _click_hints(page: Any, hints: Sequence[dict[str, Any]]) -> None:
    """Each hint as a person gives it: nothing selected (Esc), pick the colour and the size, click."""
    width, height = page.evaluate("() => [state.photo.width, state.photo.height]")
    box = page.locator("#gray").bounding_box()
    for hint in hints:
        page.keyboard.press("Escape")  # a selected hint would take the new colour
        page.fill("#color", "#" + "".join(f"{c:02x}" for c in hint["rgb"]))
        page.evaluate("v => { const s = document.getElementById('size'); s.value = v;"
                      " s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); }",
                      str(hint["size"]))
        generation = int(page.get_attribute("#result", "data-generation") or 0)
        page.mouse.click(box["x"] + (hint["x"] + 0.5) / width * box["width"],
                         box["y"] + (hint["y"] + 0.5) / height * box["height"])
        page.wait_for_function(_IDLE, arg=generation + 1)
    page.keyboard.press("Escape")  # no selection outline in the screenshot


def open_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    """The app's page at ``url`` in a new Playwright page of ``browser`` (``VIEWPORT``, actions
    waiting up to ``TIMEOUT_MS``), and the list its page errors and console errors go to."""
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    page.goto(url)
    return page, problems


def take_screenshots(models: Sequence[str], photo: str, hints: Sequence[dict[str, Any]], out: Path,
                     chromium: str = CHROMIUM) -> dict[str, Any]:
    """Serves ``models``, clicks ``hints`` onto ``photo`` in Chromium once per model, writes the PNGs.

    Returns:
        What was written and shown: per model its PNG, the hints the page placed, its stats line.

    Raises:
        RuntimeError: no Chromium or no Playwright, or the page reported an error.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise RuntimeError("Playwright is not installed: pip install playwright (its browser download is "
                           "not needed; Chromium comes from the system, apt-get install chromium)") from None
    if shutil.which(chromium) is None:
        raise RuntimeError(f"no Chromium at {chromium}: apt-get install chromium, or set ADAPRUNE_CHROMIUM")

    from adacolor.app.serve import background
    from adacolor.app.server import create_app

    served, descriptions = _load_models(models)
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"photo": photo, "models": {}}
    frames: dict[str, Image.Image] = {}
    grey: Optional[Image.Image] = None
    with background(create_app(served, descriptions=descriptions)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which(chromium), args=CHROMIUM_ARGS)
        try:
            for name in served:
                page, problems = open_page(browser, url)
                page.wait_for_function("() => document.getElementById('model').options.length > 0"
                                       " && document.getElementById('sample').options.length > 1")
                page.select_option("#model", name)
                _open_photo(page, photo)
                page.wait_for_function(_IDLE, arg=1)
                _click_hints(page, hints)
                status = page.inner_text("#status")
                if problems or "failed" in status or "could not" in status:
                    raise RuntimeError(f"{name}: the page reported {problems or status!r}")
                shot = out / f"{name}.png"
                page.locator("#stage").screenshot(path=str(shot))
                if grey is None:
                    grey = _element(page, "#input-frame", out / ".grey.png")
                frames[name] = _element(page, "#result-frame", out / ".result.png")
                record["models"][name] = {
                    "screenshot": shot.name,
                    "description": descriptions.get(name, ""),
                    "stats": page.inner_text("#stats"),
                    "hints_placed": page.evaluate("() => state.hints"),
                }
                page.close()
        finally:
            browser.close()
    assert grey is not None
    image = composite([("grey photo + hints", grey), *frames.items()])
    image.save(out / COMPOSITE_NAME, optimize=True)
    record["composite"] = COMPOSITE_NAME
    return record


def _element(page: Any, selector: str, scratch: Path) -> Image.Image:
    """A screenshot of one element as a PIL image (through a scratch file, removed)."""
    page.locator(selector).screenshot(path=str(scratch))
    with Image.open(scratch) as image:
        image.load()
        copy = image.copy()
    scratch.unlink()
    return copy


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m adacolor.app.screenshots``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m adacolor.app.screenshots", description=__doc__.split("\n")[0])
    parser.add_argument("--models", required=True, metavar="A,B",
                        help="shipped models (adacolor list) or checkpoint paths (*.pt), comma-separated, in order")
    parser.add_argument("--hints", required=True, metavar="JSON",
                        help='{"photo": "sample:NAME", "hints": [{"x", "y", "size", "rgb"}, ...]}')
    parser.add_argument("--photo", default=None, help="sample:NAME or a path; default: the hint file's 'photo'")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the PNGs and screenshots.json go")
    args = parser.parse_args(argv)
    try:
        file_photo, hints = read_hint_file(args.hints)
    except (OSError, ValueError) as error:
        print(f"screenshots: error: {error}", file=sys.stderr)
        return 2
    photo = args.photo or file_photo
    if photo is None:
        print("screenshots: error: no photo: give --photo or a 'photo' in the hint file", file=sys.stderr)
        return 2
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    started = time.time()
    try:
        record = take_screenshots(models, photo, hints, Path(args.out))
    except (RuntimeError, ValueError, FileNotFoundError) as error:
        print(f"screenshots: error: {error}", file=sys.stderr)
        return 1
    record["command"] = "python -m adacolor.app.screenshots " + " ".join(argv if argv is not None else sys.argv[1:])
    record["hint_file"] = str(args.hints)
    record["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                         "load_average": list(os.getloadavg()), "seconds": round(time.time() - started, 1)}
    (Path(args.out) / "screenshots.json").write_text(json.dumps(record, indent=1) + "\n")
    for name, entry in record["models"].items():
        print(f"{name}: {Path(args.out) / entry['screenshot']}  ({entry['stats']})")
    print(f"composite: {Path(args.out) / COMPOSITE_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
