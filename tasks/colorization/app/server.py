"""The app's HTTP API: a thin FastAPI layer over :func:`adacolor.colorize.colorize`.

A request becomes the same ``colorize`` call the ``adacolor colorize`` CLI makes; the server
only decodes photos, keeps them in memory, and encodes PNGs. ``create_app`` builds the app over
any mapping of colorizers::

    app = create_app({"adacolvit-t": load_shipped("adacolvit-t")})
    uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints (errors are JSON ``{"error": "..."}``; a photo id is a capability: whoever holds it
may use the photo, and there is no way to list ids):

- ``POST /api/images`` (multipart field ``image``) -> ``{"id", "width", "height"}``;
  400 not an image / truncated, 413 too many bytes or pixels.
- ``POST /api/samples/{name}`` -> the same, for a bundled sample photo; ``GET /api/samples``.
- ``POST /api/images/{id}/colorize`` with ``{"hints": [...], "model": NAME}`` (hints in the
  ``adacolor colorize --hints`` format; ``model`` optional) -> PNG at the photo's size, headers
  ``X-Adaprune-Latency-Ms``, ``X-Adaprune-GFLOPs``, ``X-Adaprune-Model``; 404 unknown id,
  422 bad hints or unknown model.
- ``GET /api/images/{id}/gray`` -> the photo's lightness as PNG (what the model sees).
- ``GET /api/images/{id}/compute-map`` -> PNG of the last colorization's per-patch compute
  (:mod:`adacolor.compute_map`; ``?scale=relative`` spans the map's own range);
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
from dataclasses import dataclass
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

from adacolor.colorize import HINT_SIZE_RANGE, UserHint, colorize, parse_user_hints
from adacolor.compute_map import ComputeMap, model_compute_map, render_compute_map
from adacolor.data import load_rgb

__all__ = ["ApiError", "PhotoStore", "create_app", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_IMAGES"]

DEFAULT_MAX_BYTES = 32 * 1024 * 1024   # an upload's size: a 24-MP JPEG is 5-15 MB
DEFAULT_MAX_PIXELS = 24_000_000        # decoded width x height (72 MB as 8-bit RGB)
DEFAULT_MAX_IMAGES = 16                # photos held in memory at once, least recently used dropped
MAX_HINTS = 1000                       # per request
_MAX_JSON_BYTES = 1024 * 1024          # a colorize request's body
_MULTIPART_SLACK = 64 * 1024           # multipart headers and boundaries around the image's bytes
_STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}


class ApiError(Exception):
    """A client's mistake: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Photo:
    """One photo in memory: ``pixels`` (H, W, 3) uint8 RGB, and what was derived from it."""

    pixels: np.ndarray
    gray_png: Optional[bytes] = None
    compute: Optional[tuple[str, ComputeMap]] = None  # (model, map) of the last colorization

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])

    def rgb(self) -> torch.Tensor:
        """(3, H, W) float in [0, 1], as ``adacolor.colorize.load_image`` gives."""
        return torch.from_numpy(self.pixels).permute(2, 0, 1).float().div_(255.0)


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
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


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
    return np.array(image, dtype=np.uint8, copy=True)


def _json_body(body: bytes) -> dict[str, Any]:
    """The colorize request: ``{"hints": [...], "model": optional name}``."""
    if not body.strip():
        return {"hints": []}
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the body is not JSON ({error}); send {{\"hints\": [...]}} with "
                            f"Content-Type application/json") from None
    if not isinstance(data, dict):
        raise ApiError(422, 'the body must be a JSON object {"hints": [...], "model": optional name}; '
                            f"got {type(data).__name__}")
    unknown = sorted(set(data) - {"hints", "model"})
    if unknown:
        raise ApiError(422, f"unknown keys {unknown}; a colorize request has 'hints' and optionally 'model'")
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

    def run_model(name: str, photo: _Photo, hints: list[UserHint]) -> tuple[dict[str, Any], ComputeMap]:
        """``colorize`` and the compute map of that same forward, under the model's lock (the
        float copy of the photo is made inside it too, so waiting requests hold no big buffers)."""
        model = served[name]
        with locks[name]:
            try:
                result = colorize(model, photo.rgb(), hints)
            except ValueError as error:  # hints outside the photo
                raise ApiError(422, f"bad hints: {error}") from None
            return result, model_compute_map(model)

    def model_name(value: Any) -> str:
        if value is None:
            return default
        if not isinstance(value, str) or value not in served:
            raise ApiError(422, f"unknown model {value!r}; this server serves {sorted(served)}")
        return value

    def parse_hints(value: Any) -> list[UserHint]:
        if not isinstance(value, list):
            raise ApiError(422, 'bad hints: "hints" must be a list of {"x", "y", "size", "rgb"} objects')
        if len(value) > MAX_HINTS:
            raise ApiError(422, f"bad hints: {len(value)} hints; at most {MAX_HINTS} per request")
        try:
            return parse_user_hints(value, "request")
        except (ValueError, TypeError) as error:
            raise ApiError(422, f"bad hints: {error}") from None

    def colorize_photo(photo: _Photo, name: str, hints: list[UserHint]) -> dict[str, Any]:
        result, where = run_model(name, photo, hints)
        photo.compute = (name, where)
        if photo.gray_png is None:
            photo.gray_png = _png(_to_pixels(result["gray"]))
        return result

    def last_compute(photo: _Photo) -> tuple[str, ComputeMap]:
        if photo.compute is None:
            colorize_photo(photo, default, [])
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
        pixels = await run_in_threadpool(
            lambda: _decode(_image_part(body, content_type, max_bytes), max_bytes, max_pixels))
        return add_photo(pixels)

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

    @app.post("/api/images/{photo_id}/colorize")
    async def colorize_endpoint(photo_id: str, request: Request) -> Response:
        """The colorized photo as PNG at its own size, for the hints of the JSON body."""
        start = time.perf_counter()
        photo = photos.get(photo_id)
        data = _json_body(await read_body(request, _MAX_JSON_BYTES, "request body"))
        name = model_name(data.get("model"))
        hints = parse_hints(data.get("hints", []))

        def work() -> tuple[bytes, float]:
            result = colorize_photo(photo, name, hints)
            return _png(_to_pixels(result["rgb"])), float(result["gflops"])

        png, gflops = await run_in_threadpool(work)
        latency_ms = (time.perf_counter() - start) * 1000.0
        return Response(png, media_type="image/png", headers={
            "X-Adaprune-Latency-Ms": f"{latency_ms:.2f}", "X-Adaprune-GFLOPs": f"{gflops:.4f}",
            "X-Adaprune-Model": name, "Cache-Control": "no-store"})

    @app.get("/api/images/{photo_id}/gray")
    async def gray(photo_id: str) -> Response:
        """The photo's lightness (the grey input the model colorizes) as PNG."""
        photo = photos.get(photo_id)
        if photo.gray_png is None:
            await run_in_threadpool(colorize_photo, photo, default, [])
        return Response(photo.gray_png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/images/{photo_id}/compute-map")
    async def compute_map_png(photo_id: str, scale: str = "absolute") -> Response:
        """Per patch, the fraction of sub-layers at full width in the last colorization of this
        photo (no hints on the default model if none yet), as a magma PNG at the photo's size:
        ``scale=absolute`` draws 0 to 1, ``scale=relative`` the map's own minimum to maximum."""
        if scale not in ("absolute", "relative"):
            raise ApiError(422, f"scale must be 'absolute' (0 to 1) or 'relative' (the map's own range), got {scale!r}")
        photo = photos.get(photo_id)
        name, where = await run_in_threadpool(last_compute, photo)
        ends = (0.0, 1.0) if scale == "absolute" else (float(where.full_width.min()), float(where.full_width.max()))
        png = await run_in_threadpool(lambda: _png(render_compute_map(where, photo.size, ends)))
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
