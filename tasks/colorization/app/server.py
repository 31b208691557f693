"""The app's HTTP API: a thin FastAPI layer over the functions of :mod:`adacolor.colorize`.

A click becomes the model's forward ``colorize`` makes (:func:`~adacolor.colorize.predict`, at
the model's size) shown at the size the page displays (:func:`~adacolor.colorize.render_prediction`
on the photo's lightness at that size: the same edge-aware upsampling, so colour follows the
edges there too); only a download renders full resolution, the image ``adacolor colorize``
writes (:func:`~adacolor.colorize.render_photo`). The photo's full-resolution pixels stay on the
server, with what each click reuses (the photo at the model's size, its lightness at the
displayed size); the server only decodes photos, keeps them in memory, and encodes images.
``create_app`` builds the app over any mapping of colorizers::

    app = create_app({"adacolvit-t": load_shipped("adacolvit-t")})
    uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints (errors are JSON ``{"error": "..."}``; a photo id is a capability: whoever holds it
may use the photo, and there is no way to list ids):

- ``POST /api/images`` (multipart field ``image``) -> ``{"id", "width", "height"}``;
  400 not an image / truncated, 413 too many bytes or pixels.
- ``POST /api/samples/{name}`` -> the same, for a bundled sample photo; ``GET /api/samples``.
- ``POST /api/images/{id}/colorize`` with ``{"hints": [...], "model": NAME, "display": [W, H],
  "format": "png" | "jpeg"}`` (hints in the ``adacolor colorize --hints`` format; the rest
  optional) -> the preview at the displayed size (``display``, clamped to the photo's size and
  ``MAX_PREVIEW_SIDE`` on the long side; default the photo's size so clamped), headers
  ``X-Adaprune-Latency-Ms``, ``X-Adaprune-GFLOPs``, ``X-Adaprune-Model``; 404 unknown id,
  422 bad hints, unknown model, bad display size or format.
- ``POST /api/images/{id}/download`` with ``{"hints": [...], "model": NAME}`` -> the PNG at the
  photo's full size, pixel for pixel what ``adacolor colorize`` writes for these hints.
- ``GET /api/images/{id}/gray?display=W,H`` -> the photo's lightness as PNG (what the model
  sees), at the preview's size.
- ``GET /api/images/{id}/compute-map?display=W,H`` -> PNG of the last colorization's per-patch
  compute (:mod:`adacolor.compute_map`; ``&scale=relative`` spans the map's own range);
  ``.../compute-map.json`` -> the grid and per-block skips.
- ``DELETE /api/images/{id}``; ``GET /api/models`` (and the hint sizes accepted); ``GET /`` the page.
"""

from __future__ import annotations

import io
import json
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Optional

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from torch import nn

from adacolor.colorize import (HINT_SIZE_RANGE, UserHint, hints_at_size, parse_user_hints, photo_lightness, predict,
                               render_photo, render_prediction, resize_photo)
from adacolor.compute_map import ComputeMap, model_compute_map, render_compute_map
from adacolor.data import load_rgb

__all__ = ["ApiError", "PhotoStore", "create_app", "preview_size", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_PIXELS",
           "DEFAULT_MAX_IMAGES", "MAX_PREVIEW_SIDE", "PREVIEW_FORMATS", "FULL_SIZE_SLOTS",
           "PREVIEW_SLOTS"]

DEFAULT_MAX_BYTES = 32 * 1024 * 1024   # an upload's size: a 24-MP JPEG is 5-15 MB
DEFAULT_MAX_PIXELS = 24_000_000        # decoded width x height (72 MB as 8-bit RGB)
DEFAULT_MAX_IMAGES = 16                # photos held in memory at once, least recently used dropped
MAX_HINTS = 1000                       # per request
_MAX_JSON_BYTES = 1024 * 1024          # a colorize request's body
_MULTIPART_SLACK = 64 * 1024           # multipart headers and boundaries around the image's bytes
_STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
MAX_PREVIEW_SIDE = 2048                # a preview's long side at most (a 4K screen's panel), in pixels
_MAX_DISPLAY = 1 << 16                 # a display size asked may be up to this per side (then clamped)
PREVIEW_FORMATS = {"png": "image/png", "jpeg": "image/jpeg"}
_JPEG_QUALITY = 95                     # the page's previews: ~1 ms to encode where PNG takes ~30 ms
# Photos decoded, and full-size images rendered, at once. A decode holds the file decoded and
# two copies of it for a moment (about 10 bytes a pixel), a download the float temporaries of a
# band of rows, the 8-bit result, PIL's copy of it and the PNG (about 20 bytes a pixel: 224 MB
# for 12 megapixels), so memory stays bounded however many clients upload or download together;
# more would not be faster on a few cores anyway.
FULL_SIZE_SLOTS = 2
# Previews rendered at once: each holds a few float copies of the preview, and the first one of
# a photo (or of a new display size) reads the whole photo, band by band (about 12 bytes a pixel).
PREVIEW_SLOTS = 2


class ApiError(Exception):
    """A client's mistake: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class _View:
    """A photo as the page shows it: at ``size`` (h, w), its lightness ``light`` (1, 1, h, w),
    on which each click's prediction is rendered, and that lightness as a grey PNG."""

    size: tuple[int, int]
    light: torch.Tensor
    gray_png: bytes


@dataclass
class _Photo:
    """One photo in memory: ``pixels`` (H, W, 3) uint8 RGB, and what was derived from it.

    Clicks reuse ``small`` (the photo at each model's size, what the model sees) and ``view``
    (the lightness at the last size shown), so no click reads the full-size pixels.
    """

    pixels: np.ndarray
    compute: Optional[tuple[str, ComputeMap]] = None  # (model, map) of the last colorization
    small: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)
    view: Optional[_View] = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # fills the two above

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])

    def chw(self) -> torch.Tensor:
        """(3, H, W) uint8: a view of the pixels, no copy."""
        return torch.from_numpy(self.pixels).permute(2, 0, 1)

    def at_model_size(self, size: tuple[int, int]) -> torch.Tensor:
        """(3, h, w) the photo at a model's input size (computed once per size)."""
        with self.lock:
            if size not in self.small:
                self.small[size] = resize_photo(self.chw(), size)
            return self.small[size]

    def shown_at(self, size: tuple[int, int]) -> _View:
        """The photo at a preview size (h, w); only the last size asked is kept."""
        with self.lock:
            if self.view is None or self.view.size != size:
                light = photo_lightness(self.chw(), size)
                grey = render_prediction(torch.zeros(1, 4, 1, 1), light)  # no colour: the lightness alone
                self.view = _View(size, light, _png(_to_pixels(grey)))
            return self.view


class PhotoStore:
    """A bounded least-recently-used store of photos in memory, keyed by unguessable ids.

    Ids are ``secrets.token_urlsafe(16)`` (128 random bits): knowing an id is what lets a client
    use a photo, and the store offers no listing, so clients cannot reach each other's photos.

    Args:
        max_images: how many photos are kept; adding one more drops the least recently used.
    """

    def __init__(self, max_images: int) -> None:
        if max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {max_images}")
        self.max_images = max_images
        self._photos: OrderedDict[str, _Photo] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._photos)

    def add(self, pixels: np.ndarray) -> str:
        """Stores (H, W, 3) uint8 pixels; returns the new id."""
        photo_id = secrets.token_urlsafe(16)
        with self._lock:
            self._photos[photo_id] = _Photo(pixels)
            while len(self._photos) > self.max_images:
                self._photos.popitem(last=False)
        return photo_id

    def get(self, photo_id: str) -> _Photo:
        """The photo (now the most recently used). Raises ApiError 404 for an unknown id."""
        with self._lock:
            photo = self._photos.get(photo_id)
            if photo is None:
                raise ApiError(404, f"no photo with id {photo_id!r}: it was never uploaded here, or it was "
                                    f"dropped to make room (this server keeps the {self.max_images} most "
                                    f"recently used photos); upload it again with POST /api/images")
            self._photos.move_to_end(photo_id)
            return photo

    def remove(self, photo_id: str) -> None:
        """Forgets a photo. Raises ApiError 404 for an unknown id."""
        self.get(photo_id)
        with self._lock:
            self._photos.pop(photo_id, None)


def _png(pixels: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes (fast compression: the page wants it now, not small)."""
    return _encode(pixels, "png")


def _encode(pixels: np.ndarray, kind: str) -> bytes:
    """(H, W, 3) uint8 -> ``png`` (lossless, fast compression) or ``jpeg`` (quality 95, colour
    kept at full resolution: no chroma subsampling, so colour edges stay where they were)."""
    buffer = io.BytesIO()
    if kind == "jpeg":
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=_JPEG_QUALITY, subsampling=0)
    else:
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


_DISPLAY_RULE = (f"two whole numbers of pixels, each 1 to {_MAX_DISPLAY}; the preview is that size, scaled "
                 f"down (aspect kept) to fit the photo's own size and {MAX_PREVIEW_SIDE} px on the long side")


def _display_pair(value: Any, query: bool = False) -> tuple[int, int]:
    """(width, height) of a request's display size: ``[W, H]`` in JSON, ``"W,H"`` in a query
    (``query``); ApiError 422 saying what is accepted."""
    if query:
        pair: Any = [int(p) if p.strip().isdigit() else p for p in str(value).split(",")]
        where = "display=W,H (e.g. display=640,480)"
    else:
        pair, where = value, '"display": [W, H] (e.g. [640, 480])'
    if not (isinstance(pair, list) and len(pair) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= _MAX_DISPLAY for v in pair)):
        raise ApiError(422, f"bad display size {value!r}: give {where}, {_DISPLAY_RULE}")
    return int(pair[0]), int(pair[1])


def preview_size(display: Optional[tuple[int, int]], photo_hw: tuple[int, int],
                 max_side: int = MAX_PREVIEW_SIDE) -> tuple[int, int]:
    """(h, w) of a preview: the displayed size asked, scaled down with its aspect kept so that it
    is no larger than the photo and than ``max_side`` on its long side.

    Args:
        display: (width, height) asked, or None: the photo's own size.
        photo_hw: (H, W) of the photo.
        max_side: the longest side a preview may have.
    """
    height, width = photo_hw
    asked_w, asked_h = (width, height) if display is None else display
    scale = min(1.0, width / asked_w, height / asked_h, max_side / max(asked_w, asked_h))
    if scale >= 1.0:
        return asked_h, asked_w
    return (max(1, min(height, max_side, round(asked_h * scale))),
            max(1, min(width, max_side, round(asked_w * scale))))


def _to_pixels(rgb: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return (rgb.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()


def _image_part(body: bytes, content_type: str, max_bytes: int) -> bytes:
    """The bytes of the multipart field ``image``, parsed in memory (nothing spills to disk)."""
    from python_multipart.multipart import FormParser, parse_options_header

    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise ApiError(400, f"expected a multipart/form-data upload with the photo in the field 'image' "
                            f"(curl -F image=@photo.jpg), got Content-Type {content_type or 'none'!r}")
    found: dict[str, bytes] = {}

    def on_part(part: Any) -> None:
        name = part.field_name.decode("utf-8", "replace") if part.field_name else ""
        if hasattr(part, "file_object"):
            part.file_object.seek(0)
            found[name] = part.file_object.read()
        else:
            found[name] = part.value or b""

    config = {"MAX_MEMORY_FILE_SIZE": max_bytes + _MULTIPART_SLACK + 1, "MAX_BODY_SIZE": len(body) + 1}
    try:
        parser = FormParser("multipart/form-data", on_part, on_part, boundary=options[b"boundary"], config=config)
        parser.write(body)
        parser.finalize()
    except Exception as error:  # python-multipart raises its own errors (and ValueError) for bad bodies
        raise ApiError(400, f"the multipart body could not be parsed: {error}") from None
    if "image" not in found:
        raise ApiError(400, f"the upload has no field 'image' (fields: {sorted(found) or 'none'}); "
                            f"send the photo as multipart field 'image' (curl -F image=@photo.jpg)")
    return found["image"]


def _decode(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """An uploaded file -> (H, W, 3) uint8 RGB through ``adacolor.data.load_rgb`` (greyscale,
    CMYK, palette and alpha converted as everywhere in adacolor)."""
    if len(data) > max_bytes:
        raise ApiError(413, f"the photo is {len(data)} bytes; this server accepts at most {max_bytes} bytes")
    if not data:
        raise ApiError(400, "the field 'image' is empty; send an image file (PNG, JPEG, WebP, TIFF, BMP, GIF ...)")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except Image.DecompressionBombError:
        raise ApiError(413, f"the photo has far more pixels than the {max_pixels} this server accepts") from None
    except Exception:
        raise ApiError(400, "the upload is not an image this server can read; send PNG, JPEG, WebP, TIFF, "
                            "BMP or GIF") from None
    if width * height > max_pixels:
        raise ApiError(413, f"the photo is {width}x{height} = {width * height} pixels; this server accepts at "
                            f"most {max_pixels} pixels (e.g. {math.isqrt(max_pixels)}x{math.isqrt(max_pixels)})")
    try:
        image = load_rgb(io.BytesIO(data))
    except Exception as error:  # PIL raises OSError, and ValueError / SyntaxError for corrupt files
        raise ApiError(400, f"the image is truncated or corrupt and cannot be decoded ({error}); "
                            f"send the complete file") from None
    pixels = np.array(image, dtype=np.uint8, copy=True)
    image.close()
    return pixels


def _json_body(body: bytes, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    """A request's JSON object, ``{"hints": [...], ...}`` with only ``keys`` in it."""
    if not body.strip():
        return {"hints": []}
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the body is not JSON ({error}); send {{\"hints\": [...]}} with "
                            f"Content-Type application/json") from None
    optional = ", ".join(repr(k) for k in keys if k != "hints")
    if not isinstance(data, dict):
        raise ApiError(422, f'the body must be a JSON object {{"hints": [...]}} (optionally {optional}); '
                            f"got {type(data).__name__}")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ApiError(422, f"unknown keys {unknown}; a {what} request has 'hints' and optionally {optional}")
    return data


def create_app(models: Mapping[str, nn.Module], max_bytes: int = DEFAULT_MAX_BYTES,
               max_pixels: int = DEFAULT_MAX_PIXELS, max_images: int = DEFAULT_MAX_IMAGES,
               descriptions: Optional[Mapping[str, str]] = None) -> FastAPI:
    """The app serving ``models`` (the first is the default) and the page.

    Args:
        models: name -> colorizer (``adacolor.model.Colorizer`` or ``ImageColorizer``); each is put
            in eval mode and called by one request at a time (a lock per model).
        max_bytes: the largest upload accepted, in bytes (413 above).
        max_pixels: the largest decoded photo accepted, width x height (413 above).
        max_images: photos held in memory at once (least recently used dropped).
        descriptions: name -> a line shown for the model (e.g. a shipped model's card).

    Returns:
        The FastAPI app; ``app.state.photos`` is its :class:`PhotoStore`.
    """
    if not models:
        raise ValueError("create_app needs at least one model to serve")
    served = dict(models)
    for model in served.values():
        model.eval()
    locks = {name: threading.Lock() for name in served}
    full_size = threading.BoundedSemaphore(FULL_SIZE_SLOTS)  # decodes and full-size renders at once
    previews = threading.BoundedSemaphore(PREVIEW_SLOTS)      # previews (and views of a photo) rendered at once
    default = next(iter(served))
    photos = PhotoStore(max_images)
    static = resources.files("adacolor.app") / "static"
    files = {name: (static / name).read_bytes() for name in ("index.html", *_STATIC_FILES)}
    samples: dict[str, np.ndarray] = {}
    samples_lock = threading.Lock()

    app = FastAPI(title="adaprune colorization app", version="1", docs_url=None, redoc_url=None)
    app.state.photos = photos

    def replace_model(name: str, model: nn.Module) -> None:
        """Serves ``model`` under ``name`` from the next request on (e.g. the same colorizer on a
        faster runtime, ``adacolor.exported``); a request running on the old one finishes first."""
        if name not in served:
            raise KeyError(f"no model {name!r} is served")
        with locks[name]:
            served[name] = model.eval()

    app.state.replace_model = replace_model

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = {404: f"no such endpoint {request.method} {request.url.path}",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(error.status_code, error.detail)
        return JSONResponse({"error": message}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": f"bad request: {error.errors()}"}, status_code=422)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error ({type(error).__name__}: {error}); the server is still "
                                      f"running"}, status_code=500)

    def run_model(name: str, photo: _Photo, hints: list[UserHint]) -> dict[str, Any]:
        """The model's forward for the photo (``predict``, on the photo at the model's size) under
        the model's lock, and the compute map of that same forward kept for the photo; resizing
        the photo (once per model size) and rendering happen outside the lock."""
        with previews:  # the first time, it reads the whole photo
            small = photo.at_model_size(tuple(served[name].image_size))
        with locks[name]:
            model = served[name]
            if tuple(small.shape[-2:]) != tuple(model.image_size):  # replaced by one of another size
                small = photo.at_model_size(tuple(model.image_size))
            try:
                prediction = predict(model, small, photo.size, hints)
            except ValueError as error:  # hints outside the photo
                raise ApiError(422, f"bad hints: {error}") from None
            photo.compute = (name, model_compute_map(model))
            return prediction

    def model_name(value: Any) -> str:
        if value is None:
            return default
        if not isinstance(value, str) or value not in served:
            raise ApiError(422, f"unknown model {value!r}; this server serves {sorted(served)}")
        return value

    def parse_hints(value: Any, photo: _Photo) -> list[UserHint]:
        """The hints of a request, checked against the photo before any model is waited for."""
        if not isinstance(value, list):
            raise ApiError(422, 'bad hints: "hints" must be a list of {"x", "y", "size", "rgb"} objects')
        if len(value) > MAX_HINTS:
            raise ApiError(422, f"bad hints: {len(value)} hints; at most {MAX_HINTS} per request")
        try:
            hints = parse_user_hints(value, "request")
            hints_at_size(hints, photo.size, photo.size)  # raises for a hint outside the photo
        except (ValueError, TypeError) as error:
            raise ApiError(422, f"bad hints: {error}") from None
        return hints

    def display_of(value: Any, photo: _Photo, query: bool = False) -> tuple[int, int]:
        """(h, w) of the preview for a request's display size (None: the photo's own, clamped)."""
        return preview_size(None if value is None else _display_pair(value, query), photo.size)

    def last_compute(photo: _Photo) -> tuple[str, ComputeMap]:
        if photo.compute is None:
            run_model(default, photo, [])
        return photo.compute

    async def read_body(request: Request, limit: int, what: str) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"the {what} is {declared} bytes; this server accepts at most {limit} bytes")
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise ApiError(413, f"the {what} is over {limit} bytes, the most this server accepts")
            chunks.append(chunk)
        return b"".join(chunks)

    def add_photo(pixels: np.ndarray) -> dict[str, Any]:
        return {"id": photos.add(pixels), "width": int(pixels.shape[1]), "height": int(pixels.shape[0])}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(files["index.html"])

    @app.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str) -> Response:
        if name not in _STATIC_FILES:  # a fixed set read at start-up: no client path reaches the disk
            raise ApiError(404, f"no static file {name!r}")
        return Response(files[name], media_type=_STATIC_FILES[name])

    @app.get("/api/models")
    async def list_models() -> dict[str, Any]:
        """The models served, the default first."""
        entries = []
        for name, model in served.items():
            spec = getattr(model, "spec", None)
            entries.append({"name": name, "architecture": spec.name if spec is not None else type(model).__name__,
                            "adaptive": bool(getattr(model, "adaptive", False)),
                            "runtime": str(getattr(model, "runtime", "torch")),
                            "image_size": list(model.image_size),
                            "description": (descriptions or {}).get(name, ""), "default": name == default})
        return {"models": entries, "default": default, "hint_size_range": list(HINT_SIZE_RANGE)}

    @app.post("/api/images")
    async def upload(request: Request) -> dict[str, Any]:
        """Stores an uploaded photo (multipart field ``image``) and returns its id and size."""
        body = await read_body(request, max_bytes + _MULTIPART_SLACK, "upload")
        content_type = request.headers.get("content-type", "")

        def decode() -> np.ndarray:
            with full_size:
                return _decode(_image_part(body, content_type, max_bytes), max_bytes, max_pixels)

        return add_photo(await run_in_threadpool(decode))

    @app.get("/api/samples")
    async def list_samples() -> dict[str, Any]:
        """The bundled sample photos (scikit-image's), by name."""
        return {"samples": sorted(await run_in_threadpool(load_samples))}

    @app.post("/api/samples/{name}")
    async def open_sample(name: str) -> dict[str, Any]:
        """Stores a copy of a bundled sample photo, as an upload would."""
        available = await run_in_threadpool(load_samples)
        if name not in available:
            raise ApiError(404, f"no sample photo {name!r}; samples: {sorted(available)}")
        return add_photo(available[name].copy())

    def load_samples() -> dict[str, np.ndarray]:
        with samples_lock:
            if not samples:
                from adacolor.data import sample_photos

                photos_ = sample_photos(None)
                for i, name in enumerate(photos_.names):
                    samples[name] = _to_pixels(photos_[i]["rgb"])
            return samples

    def result_headers(start: float, prediction: dict[str, Any], name: str) -> dict[str, str]:
        latency_ms = (time.perf_counter() - start) * 1000.0
        return {"X-Adaprune-Latency-Ms": f"{latency_ms:.2f}", "X-Adaprune-GFLOPs": f"{float(prediction['gflops']):.4f}",
                "X-Adaprune-Model": name, "Cache-Control": "no-store"}

    @app.post("/api/images/{photo_id}/colorize")
    async def colorize_endpoint(photo_id: str, request: Request) -> Response:
        """The colorized photo at the displayed size, for the hints of the JSON body: the model at
        its size, its colour rendered on the photo's lightness at the preview's size."""
        start = time.perf_counter()
        photo = photos.get(photo_id)
        data = _json_body(await read_body(request, _MAX_JSON_BYTES, "request body"),
                          ("hints", "model", "display", "format"), "colorize")
        name = model_name(data.get("model"))
        hints = parse_hints(data.get("hints", []), photo)
        size = display_of(data.get("display"), photo)
        kind = data.get("format", "png")
        if kind not in PREVIEW_FORMATS:
            raise ApiError(422, f"bad format {kind!r}: \"format\" is 'png' (lossless, the default) or 'jpeg' "
                                f"(quality {_JPEG_QUALITY}, no chroma subsampling: faster to encode and decode)")

        def work() -> tuple[bytes, dict[str, Any]]:
            prediction = run_model(name, photo, hints)
            with previews:
                shown = photo.shown_at(size)
                pixels = _to_pixels(render_prediction(prediction["coefficients"], shown.light))
            return _encode(pixels, kind), prediction

        image, prediction = await run_in_threadpool(work)
        return Response(image, media_type=PREVIEW_FORMATS[kind], headers=result_headers(start, prediction, name))

    @app.post("/api/images/{photo_id}/download")
    async def download(photo_id: str, request: Request) -> Response:
        """The colorized photo at its full size as PNG, for the hints of the JSON body: pixel for
        pixel what ``adacolor colorize --hints`` writes for the same photo, hints and model."""
        start = time.perf_counter()
        photo = photos.get(photo_id)
        data = _json_body(await read_body(request, _MAX_JSON_BYTES, "request body"), ("hints", "model"), "download")
        name = model_name(data.get("model"))
        hints = parse_hints(data.get("hints", []), photo)

        def work() -> tuple[bytes, dict[str, Any]]:
            prediction = run_model(name, photo, hints)
            with full_size:
                return _png(render_photo(photo.chw(), prediction["coefficients"])), prediction

        png, prediction = await run_in_threadpool(work)
        headers = result_headers(start, prediction, name)
        headers["Content-Disposition"] = 'attachment; filename="colorized.png"'
        return Response(png, media_type="image/png", headers=headers)

    @app.get("/api/images/{photo_id}/gray")
    async def gray(photo_id: str, display: Optional[str] = None) -> Response:
        """The photo's lightness (the grey input the model colorizes) as PNG, at the preview's
        size for ``display=W,H`` (default: the photo's size, clamped)."""
        photo = photos.get(photo_id)
        size = display_of(display, photo, query=True)
        def work() -> _View:
            with previews:
                return photo.shown_at(size)

        view = await run_in_threadpool(work)
        return Response(view.gray_png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/images/{photo_id}/compute-map")
    async def compute_map_png(photo_id: str, scale: str = "absolute", display: Optional[str] = None) -> Response:
        """Per patch, the fraction of sub-layers at full width in the last colorization of this
        photo (no hints on the default model if none yet), as a magma PNG at the preview's size
        (``display=W,H``, as for the grey photo): ``scale=absolute`` draws 0 to 1,
        ``scale=relative`` the map's own minimum to maximum."""
        if scale not in ("absolute", "relative"):
            raise ApiError(422, f"scale must be 'absolute' (0 to 1) or 'relative' (the map's own range), got {scale!r}")
        photo = photos.get(photo_id)
        size = display_of(display, photo, query=True)
        name, where = await run_in_threadpool(last_compute, photo)
        ends = (0.0, 1.0) if scale == "absolute" else (float(where.full_width.min()), float(where.full_width.max()))
        png = await run_in_threadpool(lambda: _png(render_compute_map(where, size, ends)))
        return Response(png, media_type="image/png", headers={"X-Adaprune-Model": name, "Cache-Control": "no-store"})

    @app.get("/api/images/{photo_id}/compute-map.json")
    async def compute_map_json(photo_id: str) -> dict[str, Any]:
        """The same map as numbers, and per block whether attention and FFN ran."""
        photo = photos.get(photo_id)
        name, where = await run_in_threadpool(last_compute, photo)
        return {"model": name, **where.to_dict()}

    @app.delete("/api/images/{photo_id}")
    async def forget(photo_id: str) -> dict[str, Any]:
        """Drops a photo from memory."""
        photos.remove(photo_id)
        return {"deleted": photo_id}

    return app
