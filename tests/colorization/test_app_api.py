"""The app's HTTP API: uploads of every kind, every error, isolation, and the thin-layer promise."""

from __future__ import annotations

import io
import json
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from adacolor.app.serve import background
from adacolor.app.server import MAX_PREVIEW_SIDE, create_app, preview_size
from adacolor.colorize import (colorize, colorize_file, parse_user_hints, photo_lightness, predict, render_prediction,
                               resize_photo)
from adacolor.model import create_colorizer

SIZE = 64  # the models' input: small and untrained, so the suite stays fast


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {"adacolvit-t": create_colorizer("adacolvit-t", image_size=SIZE).eval(),
            "icolorit-t": create_colorizer("icolorit-t", image_size=SIZE).eval()}


@pytest.fixture(scope="module")
def client(models: dict[str, torch.nn.Module]) -> TestClient:
    return TestClient(create_app(models))


def photo_pixels(width: int = 90, height: int = 60, seed: int = 0) -> np.ndarray:
    """A smooth colour photo stand-in (H, W, 3) uint8."""
    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    image = np.stack([xx * 255 / width, yy * 255 / height, 128 + 60 * np.sin(xx / 7.0)], axis=-1)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_bytes(width: int = 90, height: int = 60) -> bytes:
    return encoded(Image.fromarray(photo_pixels(width, height)))


def upload(client: TestClient, data: bytes, name: str = "photo.png") -> dict:
    response = client.post("/api/images", files={"image": (name, data, "application/octet-stream")})
    assert response.status_code == 200, response.text
    return response.json()


def decode_png(content: bytes, kind: str = "PNG") -> np.ndarray:
    with Image.open(io.BytesIO(content)) as image:
        assert image.format == kind
        return np.asarray(image.convert("RGB"))


def to_8bit(rgb: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8, rounded as ``adacolor colorize`` writes it."""
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def assert_error(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    assert isinstance(message, str) and message
    for word in words:
        assert word.lower() in message.lower(), message
    return message


# -- the happy path ----------------------------------------------------------------------------

def test_upload_colorize_returns_a_png_at_the_photos_size_with_latency_and_gflops(client: TestClient) -> None:
    """Without a display size the preview is the photo's own size (a small photo: its full size)."""
    photo = upload(client, png_bytes(90, 60))
    assert (photo["width"], photo["height"]) == (90, 60) and len(photo["id"]) >= 20
    response = client.post(f"/api/images/{photo['id']}/colorize",
                           json={"hints": [{"x": 10, "y": 20, "size": 3, "rgb": [220, 30, 30]}]})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert decode_png(response.content).shape == (60, 90, 3)
    assert float(response.headers["X-Adaprune-Latency-Ms"]) > 0
    assert float(response.headers["X-Adaprune-GFLOPs"]) > 0
    assert response.headers["X-Adaprune-Model"] == "adacolvit-t"


@pytest.mark.parametrize("model_name", ["adacolvit-t", "icolorit-t"])
def test_the_server_is_the_colorize_call_and_nothing_else(client: TestClient, models: dict,
                                                          model_name: str) -> None:
    pixels = photo_pixels(77, 51, seed=3)
    photo = upload(client, encoded(Image.fromarray(pixels)))
    hints = [{"x": 5, "y": 7, "rgb": [20, 200, 40]}, {"x": 70.5, "y": 40, "size": 5, "ab": [30.0, -20.0]}]
    response = client.post(f"/api/images/{photo['id']}/colorize", json={"hints": hints, "model": model_name})
    assert response.status_code == 200, response.text
    rgb = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0
    expected = colorize(models[model_name], rgb, parse_user_hints(hints))
    np.testing.assert_array_equal(decode_png(response.content), to_8bit(expected["rgb"]))
    assert float(response.headers["X-Adaprune-GFLOPs"]) == pytest.approx(expected["gflops"], rel=1e-3)


def test_hints_change_the_result(client: TestClient) -> None:
    photo = upload(client, png_bytes())
    plain = client.post(f"/api/images/{photo['id']}/colorize", json={"hints": []})
    hinted = client.post(f"/api/images/{photo['id']}/colorize",
                         json={"hints": [{"x": 45, "y": 30, "size": 7, "rgb": [0, 0, 255]}]})
    assert plain.status_code == hinted.status_code == 200
    assert not np.array_equal(decode_png(plain.content), decode_png(hinted.content))


def test_gray_and_compute_map(client: TestClient) -> None:
    photo = upload(client, png_bytes(90, 60))
    gray = decode_png(client.get(f"/api/images/{photo['id']}/gray").content)
    assert gray.shape == (60, 90, 3)
    assert np.abs(gray.astype(int) - gray[..., :1]).max() <= 1  # neutral: R = G = B
    picture = client.get(f"/api/images/{photo['id']}/compute-map")
    assert picture.status_code == 200 and decode_png(picture.content).shape == (60, 90, 3)
    relative = client.get(f"/api/images/{photo['id']}/compute-map?scale=relative")
    assert relative.status_code == 200 and decode_png(relative.content).shape == (60, 90, 3)
    assert_error(client.get(f"/api/images/{photo['id']}/compute-map?scale=log"), 422, "relative")
    info = client.get(f"/api/images/{photo['id']}/compute-map.json").json()
    assert info["adaptive"] and info["model"] == "adacolvit-t" and len(info["blocks"]) == 12
    assert len(info["grid"]) == SIZE // 16 and all(0.0 <= v <= 1.0 for row in info["grid"] for v in row)
    # the map follows the last colorization: a dense model runs everything at full width
    client.post(f"/api/images/{photo['id']}/colorize", json={"hints": [], "model": "icolorit-t"})
    dense = client.get(f"/api/images/{photo['id']}/compute-map.json").json()
    assert dense["model"] == "icolorit-t" and not dense["adaptive"]
    assert dense["full_width_mean"] == 1.0 and all(b == {"attention": True, "ffn": True} for b in dense["blocks"])


def test_models_samples_and_the_page(client: TestClient) -> None:
    models = client.get("/api/models").json()
    assert models["default"] == "adacolvit-t" and models["hint_size_range"] == [2, 7]
    assert [(m["name"], m["adaptive"], m["image_size"]) for m in models["models"]] == [
        ("adacolvit-t", True, [SIZE, SIZE]), ("icolorit-t", False, [SIZE, SIZE])]
    samples = client.get("/api/samples").json()["samples"]
    assert "astronaut" in samples
    photo = client.post("/api/samples/astronaut").json()
    assert (photo["width"], photo["height"]) == (512, 512)
    assert client.post(f"/api/images/{photo['id']}/colorize", json={"hints": []}).status_code == 200
    assert_error(client.post("/api/samples/..%2F..%2Fetc%2Fpasswd"), 404)
    assert_error(client.post("/api/samples/nope"), 404, "astronaut")
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text and "/static/style.css" in page.text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").status_code == 200
    for probe in ("/static/index.html", "/static/..%2Fserver.py", "/static/%2E%2E/server.py"):
        assert client.get(probe).status_code == 404


# -- previews at the displayed size, full resolution for Download ------------------------------

PREVIEWS = [  # display [W, H] asked of a 300x200 photo -> (H, W) of the preview
    ([150, 100], (100, 150)),   # as asked
    ([120, 100], (100, 120)),   # as asked, though not the photo's aspect (the page asks its own)
    ([300, 200], (200, 300)),
    ([600, 400], (200, 300)),   # never larger than the photo
    ([3000, 1000], (100, 300)),  # scaled down, aspect kept
    ([1, 1], (1, 1)),
]


def test_a_click_answers_a_preview_at_the_displayed_size(client: TestClient, models: dict) -> None:
    pixels = photo_pixels(300, 200, seed=5)
    photo = upload(client, encoded(Image.fromarray(pixels)))
    url = f"/api/images/{photo['id']}/colorize"
    hints = [{"x": 20, "y": 30, "size": 4, "rgb": [220, 40, 30]}, {"x": 250.5, "y": 150, "ab": [-30.0, 40.0]}]
    for display, want in PREVIEWS:
        response = client.post(url, json={"hints": hints, "display": display})
        assert response.status_code == 200, response.text
        assert decode_png(response.content).shape == (*want, 3), display
        assert float(response.headers["X-Adaprune-GFLOPs"]) > 0
        assert response.headers["X-Adaprune-Model"] == "adacolvit-t"
        assert decode_png(client.get(f"/api/images/{photo['id']}/gray?display={display[0]},{display[1]}").content
                          ).shape == (*want, 3)
    # the preview is the model's forward rendered on the photo's lightness at that size, nothing else
    response = client.post(url, json={"hints": hints, "display": [150, 100], "model": "icolorit-t"})
    chw = torch.from_numpy(pixels).permute(2, 0, 1)
    model = models["icolorit-t"]
    prediction = predict(model, resize_photo(chw, model.image_size), (200, 300), parse_user_hints(hints))
    expected = render_prediction(prediction["coefficients"], photo_lightness(chw, (100, 150)))
    np.testing.assert_array_equal(decode_png(response.content), to_8bit(expected))
    # JPEG, as the page asks: the same picture, faster to encode and decode
    jpeg = client.post(url, json={"hints": hints, "display": [150, 100], "model": "icolorit-t", "format": "jpeg"})
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert np.abs(decode_png(jpeg.content, "JPEG").astype(int) - to_8bit(expected)).mean() < 3
    mapped = client.get(f"/api/images/{photo['id']}/compute-map?scale=relative&display=150,100")
    assert mapped.status_code == 200 and decode_png(mapped.content).shape == (100, 150, 3)


def test_a_photo_larger_than_a_preview_is_never_sent_whole_per_click(client: TestClient) -> None:
    wide = photo_pixels(MAX_PREVIEW_SIDE + 300, 40, seed=2)
    photo = upload(client, encoded(Image.fromarray(wide)))
    response = client.post(f"/api/images/{photo['id']}/colorize", json={"hints": [{"x": 2000, "y": 20}]})
    assert decode_png(response.content).shape == (round(40 * MAX_PREVIEW_SIDE / (MAX_PREVIEW_SIDE + 300)),
                                                  MAX_PREVIEW_SIDE, 3)
    assert decode_png(client.get(f"/api/images/{photo['id']}/gray").content).shape[1] == MAX_PREVIEW_SIDE
    full = client.post(f"/api/images/{photo['id']}/download", json={"hints": [{"x": 2000, "y": 20}]})
    assert decode_png(full.content).shape == (40, MAX_PREVIEW_SIDE + 300, 3)


@settings(max_examples=200, deadline=None)
@given(photo=st.tuples(st.integers(1, 6000), st.integers(1, 6000)),
       display=st.tuples(st.integers(1, 1 << 16), st.integers(1, 1 << 16)))
def test_a_preview_is_never_larger_than_asked_the_photo_or_the_limit(photo: tuple[int, int],
                                                                      display: tuple[int, int]) -> None:
    height, width = preview_size(display, photo)
    assert 1 <= height <= min(display[1], photo[0]) and 1 <= width <= min(display[0], photo[1])
    assert max(height, width) <= MAX_PREVIEW_SIDE
    if display[1] <= photo[0] and display[0] <= photo[1] and max(display) <= MAX_PREVIEW_SIDE:
        assert (height, width) == (display[1], display[0])  # what the page asks, exactly
    elif min(height, width) > 50:  # scaled down with its aspect (to the rounding of a pixel)
        assert abs(width / height - display[0] / display[1]) <= 2 * display[0] / display[1] / min(height, width)
    assert preview_size(None, photo) == preview_size((photo[1], photo[0]), photo)


@pytest.mark.parametrize("model_name", ["adacolvit-t", "icolorit-t"])
def test_download_is_what_adacolor_colorize_writes(client: TestClient, models: dict, model_name: str,
                                                   tmp_path: Path) -> None:
    pixels = photo_pixels(97, 61, seed=6)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    photo = upload(client, path.read_bytes())
    hints = [{"x": 5, "y": 7, "size": 3, "rgb": [20, 200, 40]}, {"x": 96.5, "y": 60, "ab": [30.0, -20.0]},
             {"x": 50, "y": 30, "size": 6}]
    (tmp_path / "hints.json").write_text(json.dumps(hints))
    response = client.post(f"/api/images/{photo['id']}/download", json={"hints": hints, "model": model_name})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png" and "attachment" in response.headers["content-disposition"]
    assert response.headers["X-Adaprune-Model"] == model_name and float(response.headers["X-Adaprune-GFLOPs"]) > 0
    downloaded = decode_png(response.content)
    assert downloaded.shape == (61, 97, 3)
    written = colorize_file(path, models[model_name], tmp_path / "cli.png", hint_file=tmp_path / "hints.json")
    with Image.open(written["colorized"]) as cli:
        np.testing.assert_array_equal(downloaded, np.asarray(cli.convert("RGB")))
    result = colorize(models[model_name], torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0,
                      parse_user_hints(hints))
    np.testing.assert_array_equal(downloaded, to_8bit(result["rgb"]))
    # a preview asked at the photo's own size is that same image
    same = client.post(f"/api/images/{photo['id']}/colorize", json={"hints": hints, "model": model_name,
                                                                     "display": [97, 61]})
    np.testing.assert_array_equal(decode_png(same.content), downloaded)


BAD_DISPLAYS = [[0, 10], [-5, 10], [10], [10, 10, 10], [1.5, 10], [True, 10], ["640", "480"], "640,480",
                {"w": 640, "h": 480}, [70000, 10], 640]


@pytest.mark.parametrize("display", BAD_DISPLAYS, ids=[json.dumps(d) for d in BAD_DISPLAYS])
def test_bad_display_sizes_are_422_and_say_what_is_accepted(client: TestClient, display: object) -> None:
    photo = upload(client, png_bytes(90, 60))
    url = f"/api/images/{photo['id']}/colorize"
    assert_error(client.post(url, json={"hints": [], "display": display}), 422, "display", "[W, H]", "2048", "aspect")
    assert client.post(url, json={"hints": [], "display": [45, 30]}).status_code == 200


def test_bad_query_display_sizes_and_formats_are_422(client: TestClient) -> None:
    photo = upload(client, png_bytes(90, 60))
    for query in ("0,5", "abc", "640x480", "5,5,5", "-1,4", "", "1e3,5"):
        assert_error(client.get(f"/api/images/{photo['id']}/gray", params={"display": query}), 422, "display=W,H")
        assert_error(client.get(f"/api/images/{photo['id']}/compute-map", params={"display": query}), 422,
                     "display=W,H")
    url = f"/api/images/{photo['id']}/colorize"
    assert_error(client.post(url, json={"hints": [], "format": "gif"}), 422, "'png'", "'jpeg'")
    assert_error(client.post(f"/api/images/{photo['id']}/download", json={"hints": [], "display": [9, 6]}), 422,
                 "unknown keys", "'model'")
    assert_error(client.post(f"/api/images/{photo['id']}/download", json={"hints": [{"x": 90, "y": 1}]}), 422,
                 "outside")
    assert client.get(f"/api/images/{photo['id']}/gray", params={"display": "9,6"}).status_code == 200


def test_a_slow_model_does_not_stop_the_server_answering(models: dict) -> None:
    """While one request waits on a model that takes its time, bad requests are answered with
    their errors (they are checked before any model is waited for) and other models work."""
    slow = create_colorizer("icolorit-t", image_size=SIZE).eval()
    forward = slow.forward
    running, release = threading.Event(), threading.Event()

    def held(x: torch.Tensor) -> torch.Tensor:
        running.set()
        release.wait(120)
        return forward(x)

    slow.forward = held
    with background(create_app({"slow": slow, **models})) as url, httpx.Client(base_url=url, timeout=120) as http, \
            httpx.Client(base_url=url, timeout=120) as other, ThreadPoolExecutor(1) as pool:
        photo = http.post("/api/images", files={"image": ("p.png", png_bytes(90, 60), "image/png")}).json()
        colorize_url = f"/api/images/{photo['id']}/colorize"
        pending = pool.submit(other.post, colorize_url, json={"hints": [], "model": "slow"})
        try:
            assert running.wait(60)
            assert_error(http.post(colorize_url, json={"hints": [], "model": "slow", "display": [0, 5]}), 422,
                         "display")
            assert_error(http.post(colorize_url, json={"hints": [{"x": 99, "y": 1}], "model": "slow"}), 422, "outside")
            assert_error(http.post(f"/api/images/{photo['id']}/download",
                                   json={"hints": [], "model": "slow", "format": "png"}), 422, "unknown keys")
            assert_error(http.post(colorize_url, json={"hints": [], "model": "nope"}), 422, "unknown model")
            assert_error(http.post(colorize_url, content=b"{"), 400, "not json")
            assert_error(http.post("/api/images/nB1k6_3fOAZ1yqvR7m3w8g/colorize", json={"hints": []}), 404)
            assert_error(http.post("/api/images", files={"image": ("t.txt", b"text", "text/plain")}), 400)
            assert http.post(colorize_url, json={"hints": [], "model": "adacolvit-t"}).status_code == 200
            assert http.get("/api/models").status_code == 200
            assert not pending.done()  # all the above was answered while the slow model ran
        finally:
            release.set()
        assert pending.result().status_code == 200


# -- photos of every kind ----------------------------------------------------------------------

def _kinds() -> dict[str, bytes]:
    rgb = Image.fromarray(photo_pixels(40, 30))
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (30, 1))))
    grey16 = Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257)  # mode I;16
    return {
        "grey": encoded(rgb.convert("L")),
        "grey16": encoded(grey16),
        "cmyk-jpeg": encoded(rgb.convert("CMYK"), "JPEG", quality=90),
        "palette": encoded(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)),
        "palette-transparent": encoded(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=32), transparency=0),
        "alpha": encoded(rgba),
        "grey-alpha": encoded(rgba.convert("LA")),
        "jpeg": encoded(rgb, "JPEG"),
        "webp": encoded(rgb, "WEBP"),
        "gif": encoded(rgb.convert("P"), "GIF"),
        "bmp": encoded(rgb, "BMP"),
        "tiff": encoded(rgb, "TIFF"),
    }


@pytest.mark.parametrize("kind", sorted(_kinds()))
def test_every_kind_of_photo_works(client: TestClient, kind: str) -> None:
    photo = upload(client, _kinds()[kind], f"photo-{kind}")
    assert (photo["width"], photo["height"]) == (40, 30)
    response = client.post(f"/api/images/{photo['id']}/colorize", json={"hints": [{"x": 3, "y": 4, "rgb": [9, 9, 200]}]})
    assert response.status_code == 200, response.text
    assert decode_png(response.content).shape == (30, 40, 3)


# -- every error, and the server stays up --------------------------------------------------------

def test_not_an_image_truncated_and_malformed_uploads_are_400(client: TestClient) -> None:
    assert_error(client.post("/api/images", files={"image": ("a.txt", b"hello, I am text", "text/plain")}),
                 400, "not an image", "png")
    whole = png_bytes(90, 60)
    assert_error(client.post("/api/images", files={"image": ("cut.png", whole[: len(whole) // 2], "image/png")}),
                 400, "truncated")
    jpeg = encoded(Image.fromarray(photo_pixels(90, 60)), "JPEG")
    assert_error(client.post("/api/images", files={"image": ("cut.jpg", jpeg[: len(jpeg) // 2], "image/jpeg")}),
                 400, "truncated")
    assert_error(client.post("/api/images", files={"image": ("empty.png", b"", "image/png")}), 400, "empty")
    assert_error(client.post("/api/images", files={"photo": ("p.png", whole, "image/png")}), 400, "field 'image'")
    assert_error(client.post("/api/images", content=whole, headers={"content-type": "image/png"}), 400, "multipart")
    assert_error(client.post("/api/images", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"}),
                 400)
    assert client.get("/api/models").status_code == 200


def test_too_many_bytes_or_pixels_is_413(models: dict) -> None:
    small = TestClient(create_app(models, max_bytes=5000, max_pixels=50 * 50))
    big = encoded(Image.fromarray(photo_pixels(200, 150)))
    assert len(big) > 5000
    assert_error(small.post("/api/images", files={"image": ("big.png", big, "image/png")}), 413, "5000 bytes")
    wide = encoded(Image.fromarray(np.zeros((10, 400, 3), np.uint8)))  # 4000 pixels, compresses to little
    assert len(wide) < 5000
    assert_error(small.post("/api/images", files={"image": ("wide.png", wide, "image/png")}), 413, "2500 pixels")
    # a declared Content-Length over the bound is refused before the body is read
    response = small.post("/api/images", content=b"x" * 200_000,
                          headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(response, 413)
    ok = encoded(Image.fromarray(photo_pixels(40, 30)))
    assert small.post("/api/images", files={"image": ("ok.png", ok, "image/png")}).status_code == 200


def test_unknown_ids_are_404(client: TestClient) -> None:
    ghost = "nB1k6_3fOAZ1yqvR7m3w8g"
    assert_error(client.post(f"/api/images/{ghost}/colorize", json={"hints": []}), 404, "no photo")
    assert_error(client.post(f"/api/images/{ghost}/download", json={"hints": []}), 404, "no photo")
    for path in ("gray", "compute-map", "compute-map.json"):
        assert_error(client.get(f"/api/images/{ghost}/{path}"), 404, "no photo")
    assert_error(client.delete(f"/api/images/{ghost}"), 404)
    assert_error(client.get("/api/nothing-here"), 404)


BAD_HINTS = {
    "outside": ([{"x": 90, "y": 10}], "outside"),
    "negative": ([{"x": -1, "y": 10}], "outside"),
    "bad colour range": ([{"x": 1, "y": 1, "rgb": [300, 0, 0]}], "rgb"),
    "bad colour type": ([{"x": 1, "y": 1, "rgb": "red"}], "rgb"),
    "short colour": ([{"x": 1, "y": 1, "rgb": [1, 2]}], "rgb"),
    "bad ab": ([{"x": 1, "y": 1, "ab": [1]}], "ab"),
    "size zero": ([{"x": 1, "y": 1, "size": 0}], "size"),
    "size too big": ([{"x": 1, "y": 1, "size": 8}], "size"),
    "no y": ([{"x": 1}], "'y'"),
    "x not a number": ([{"x": "left", "y": 1}], ""),
    "not a list": ({"x": 1, "y": 1}, "list"),
    "not objects": ([[1, 2]], "object"),
}


@pytest.mark.parametrize("case", sorted(BAD_HINTS))
def test_bad_hints_are_422_and_say_what_is_accepted(client: TestClient, case: str) -> None:
    photo = upload(client, png_bytes(90, 60))
    hints, word = BAD_HINTS[case]
    assert_error(client.post(f"/api/images/{photo['id']}/colorize", json={"hints": hints}), 422, "hint", word)
    assert client.post(f"/api/images/{photo['id']}/colorize", json={"hints": []}).status_code == 200


def test_bad_requests_to_colorize(client: TestClient) -> None:
    photo = upload(client, png_bytes(90, 60))
    url = f"/api/images/{photo['id']}/colorize"
    assert_error(client.post(url, json={"hints": [], "model": "gpt-9"}), 422, "unknown model", "icolorit-t")
    assert_error(client.post(url, json={"hints": [], "colour": "red"}), 422, "unknown keys")
    assert_error(client.post(url, json=[{"x": 1, "y": 1}]), 422, "object")
    assert_error(client.post(url, content=b"{not json", headers={"content-type": "application/json"}), 400, "not json")
    assert_error(client.post(url, json={"hints": [{"x": 1, "y": 1}] * 1001}), 422, "at most")
    assert_error(client.post(url, content=b" " * (2 * 1024 * 1024)), 413)
    assert_error(client.get(url), 405)
    assert client.post(url, json={"hints": [{"x": 1, "y": 1}]}).status_code == 200


# -- memory, isolation, no disk ----------------------------------------------------------------

def test_photos_live_in_a_bounded_lru(models: dict) -> None:
    client = TestClient(create_app(models, max_images=2))
    first, second = upload(client, png_bytes()), upload(client, png_bytes())
    assert client.get(f"/api/images/{first['id']}/gray").status_code == 200  # first is now the most recent
    third = upload(client, png_bytes())
    assert_error(client.get(f"/api/images/{second['id']}/gray"), 404, "2 most recently used")
    for photo in (first, third):
        assert client.get(f"/api/images/{photo['id']}/gray").status_code == 200
    assert len(client.app.state.photos) == 2
    assert client.delete(f"/api/images/{first['id']}").status_code == 200
    assert_error(client.get(f"/api/images/{first['id']}/gray"), 404)


def test_a_client_cannot_list_or_read_another_clients_photos(models: dict) -> None:
    app = create_app(models)
    alice, bob = TestClient(app), TestClient(app)
    mine = upload(alice, png_bytes(90, 60))
    theirs = upload(bob, encoded(Image.fromarray(photo_pixels(50, 40, seed=9))))
    assert mine["id"] != theirs["id"]
    for listing in ("/api/images", "/api/images/"):
        response = bob.get(listing)
        assert response.status_code in (404, 405) and mine["id"] not in response.text
    for public in ("/api/models", "/api/samples", "/"):
        assert mine["id"] not in bob.get(public).text
    # ids are 128 random bits: a neighbouring id reaches nothing
    near = mine["id"][:-1] + ("A" if mine["id"][-1] != "A" else "B")
    assert_error(bob.get(f"/api/images/{near}/gray"), 404)
    # each sees its own photo only through its own id
    assert decode_png(bob.get(f"/api/images/{theirs['id']}/gray").content).shape == (40, 50, 3)
    assert decode_png(alice.get(f"/api/images/{mine['id']}/gray").content).shape == (60, 90, 3)
    ids = {upload(alice, png_bytes())["id"] for _ in range(20)}
    assert len(ids) == 20 and all(len(i) >= 22 for i in ids)


def test_uploads_never_touch_the_disk(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server wrote a temporary file")

    for name in ("TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(noise), compress_level=0)
    assert len(data) > 1_400_000  # over the 1 MB at which multipart parsers usually spill to disk
    photo = upload(client, data)
    assert (photo["width"], photo["height"]) == (700, 700)


def test_a_failing_model_is_a_json_500_and_the_server_carries_on(models: dict) -> None:
    broken = create_colorizer("icolorit-t", image_size=SIZE).eval()

    def fail(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("the model broke")

    broken.forward = fail
    client = TestClient(create_app({"broken": broken, **models}), raise_server_exceptions=False)
    photo = upload(client, png_bytes())
    assert_error(client.post(f"/api/images/{photo['id']}/colorize", json={"hints": [], "model": "broken"}),
                 500, "the model broke")
    ok = client.post(f"/api/images/{photo['id']}/colorize", json={"hints": [], "model": "adacolvit-t"})
    assert ok.status_code == 200
