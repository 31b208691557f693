"""Trained colorizers shipped inside the package: fp16 safetensors, each with a JSON card.

    >>> [card["name"] for card in list_shipped()]            # no torch import
    ['adacolvit-t-cpu', ...]
    >>> model = load_shipped()                              # DEFAULT_MODEL, in eval mode

A card (``NAME.json`` beside ``NAME.safetensors``) holds what rebuilds and vouches for the
weights: ``model_args`` (for ``create_colorizer``), the file's ``sha256`` and size, the training
run it came from and the metrics measured on it. The SHA-256 is checked at every load, so a
corrupt, truncated or replaced file is an error naming the file, never a silently wrong model.
``export_weights`` turns a training checkpoint into such a pair; ``shipped_checkpoint`` turns
a shipped model back into a (finished, weights-only) checkpoint.

Storage: ``float16`` (every tensor), or ``int8``: each weight matrix or convolution kernel of
at least ``INT8_MIN_NUMEL`` values is stored as int8 with one float16 scale per output channel
(symmetric, scale = max |w| / 127: ``quantize_int8``), everything else as float16. iColoriT's
head makes ViT-Tiny 12.3 MiB in float16; int8 keeps the 224-px models under the 12 MB bound.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

if TYPE_CHECKING:  # torch is imported only where weights are read or written
    import torch

    from adacolor.model import Colorizer

__all__ = [
    "WEIGHTS_DIR",
    "DEFAULT_MODEL",
    "MAX_SHIPPED_BYTES",
    "list_shipped",
    "shipped_card",
    "load_shipped",
    "load_weights_file",
    "export_weights",
    "shipped_checkpoint",
    "card_config",
    "SHIPPED_PREFIX",
    "origin_model",
    "file_sha256",
    "quantize_int8",
    "dequantize_int8",
    "STORAGE_DTYPES",
]

WEIGHTS_DIR = Path(__file__).parent
DEFAULT_MODEL = "adacolvit-t-224"
MAX_SHIPPED_BYTES = 12 * 1024 * 1024   # one shipped model (issue 9's bound; the 224-px ones ship as int8)
_METADATA_KEY = "adacolor.model_args"  # safetensors metadata: the model_args as JSON
STORAGE_DTYPES = ("float16", "int8")
INT8_MIN_NUMEL = 4096                  # smaller tensors (biases, norms, gates' vectors) stay float16
FP16_PREFIXES = ("head.",)             # the head writes the colours: its int8 error dominated (docs: Models)
SHIPPED_PREFIX = "shipped:"            # shipped:NAME names a shipped model (--init, a bench's weights)
_ORIGIN_PREFIX = "shipped weights "    # how a checkpoint built from shipped weights says so (``origin``)
_SCALE_SUFFIX = ".int8_scale"          # the per-output-channel scales of an int8 tensor KEY: KEY + this


def quantize_int8(weight: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """Symmetric per-output-channel int8: weight (O, ...) -> (q int8 (O, ...), scale float16 (O,)),
    with ``q = round(w / scale)`` in [-127, 127] and ``scale = max |w| of the channel / 127``."""
    import torch

    flat = weight.detach().float().reshape(weight.shape[0], -1)
    scale = (flat.abs().amax(dim=1) / 127).clamp_min(1e-12).to(torch.float16)
    q = torch.round(flat / scale.float()[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(weight.shape), scale


def dequantize_int8(q: "torch.Tensor", scale: "torch.Tensor") -> "torch.Tensor":
    """float32 weights from ``quantize_int8``'s (q (O, ...), scale (O,))."""
    return q.float() * scale.float().reshape(-1, *([1] * (q.ndim - 1)))


def _stored(state: dict[str, Any], dtype: str) -> dict[str, Any]:
    """The tensors as written: float16, or int8 with scales for the large weights."""
    import torch

    out: dict[str, Any] = {}
    for key, value in state.items():
        value = value.detach()
        if (dtype == "int8" and value.is_floating_point() and value.ndim >= 2 and value.numel() >= INT8_MIN_NUMEL
                and not key.startswith(FP16_PREFIXES)):
            out[key], out[key + _SCALE_SUFFIX] = quantize_int8(value)
        else:
            out[key] = value.to(torch.float16).contiguous()
    return out


def _restored(stored: dict[str, Any]) -> dict[str, Any]:
    """float32 tensors from ``_stored``'s: int8 ones times their scales."""
    import torch

    state = {}
    for key, value in stored.items():
        if key.endswith(_SCALE_SUFFIX):
            continue
        if value.dtype == torch.int8:
            if key + _SCALE_SUFFIX not in stored:
                raise ValueError(f"int8 tensor {key} has no {key + _SCALE_SUFFIX}")
            state[key] = dequantize_int8(value, stored[key + _SCALE_SUFFIX])
        else:
            state[key] = value.to(torch.float32)
    return state


def file_sha256(path: Union[str, Path]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_card(path: Path) -> dict[str, Any]:
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"model card {path} is not readable JSON: {error}") from None
    missing = [key for key in ("name", "description", "model_args", "sha256", "weights") if key not in card]
    if missing:
        raise ValueError(f"model card {path} lacks {', '.join(missing)}")
    return card


def list_shipped(directory: Union[str, Path] = WEIGHTS_DIR) -> list[dict[str, Any]]:
    """The cards of the shipped models, sorted by name (reads JSON only; no torch).

    Each card has at least ``name``, ``description``, ``image_size``, ``model_args``,
    ``weights`` (file name), ``sha256`` and ``bytes``.
    """
    return sorted((_read_card(p) for p in Path(directory).glob("*.json")), key=lambda c: c["name"])


def shipped_card(name: Optional[str] = None, directory: Union[str, Path] = WEIGHTS_DIR) -> dict[str, Any]:
    """The card of one shipped model (None: ``DEFAULT_MODEL``); ValueError names the known ones."""
    name = DEFAULT_MODEL if name is None else name
    cards = {card["name"]: card for card in list_shipped(directory)}
    if name not in cards:
        known = ", ".join(cards) or "none (this installation ships no weights)"
        raise ValueError(f"no shipped model named {name!r}; shipped: {known}")
    return cards[name]


def load_weights_file(path: Union[str, Path], sha256: Optional[str] = None,
                      model_args: Optional[dict[str, Any]] = None) -> "Colorizer":
    """A colorizer from a safetensors file written by ``export_weights``, in eval mode.

    Args:
        path: the ``.safetensors`` file.
        sha256: the expected hex digest; checked before the file is parsed when given.
        model_args: ``create_colorizer`` arguments; None reads them from the file's metadata.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a digest mismatch, a file that is not safetensors (corrupt, truncated), or
            tensors that do not fit the model; the message names the file.
    """
    from safetensors import SafetensorError, safe_open

    from adacolor.model import create_colorizer, with_head

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256:
            raise ValueError(f"{path}: SHA-256 {actual[:12]}... does not match the expected {sha256[:12]}...; "
                             f"the file is corrupt, truncated or replaced (reinstall adaprune)")
    try:  # one read of the file: its metadata and its tensors
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable safetensors file ({error}); expected weights written by "
                         f"adacolor.weights.export_weights") from None
    if model_args is None:
        if _METADATA_KEY not in metadata:
            raise ValueError(f"{path} has no {_METADATA_KEY!r} metadata, so the model it belongs to is unknown; "
                             f"pass model_args")
        model_args = json.loads(metadata[_METADATA_KEY])
    try:
        state = _restored(state)
    except ValueError as error:
        raise ValueError(f"{path}: {error}; the file is damaged") from None
    args = with_head(dict(model_args), state)
    model = create_colorizer(args.pop("name"), **args)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise ValueError(f"{path} does not fit {model_args}: {first}") from None
    return model.eval()


def load_shipped(name: Optional[str] = None, directory: Union[str, Path] = WEIGHTS_DIR) -> "Colorizer":
    """A shipped colorizer by name (None: ``DEFAULT_MODEL``), its SHA-256 checked, in eval mode."""
    card = shipped_card(name, directory)
    return load_weights_file(Path(directory) / card["weights"], sha256=card["sha256"],
                             model_args=card["model_args"])


def origin_model(origin: Optional[str]) -> Optional[str]:
    """The shipped model a checkpoint's ``origin`` (``shipped_checkpoint``'s) names, e.g.
    ``"shipped weights icolorit-t-cpu (int8, ...)"`` -> ``"icolorit-t-cpu"``; None for any other."""
    if not origin or not origin.startswith(_ORIGIN_PREFIX):
        return None
    return origin[len(_ORIGIN_PREFIX):].split(" ", 1)[0]


def card_config(card: dict[str, Any]) -> dict[str, Any]:
    """The training config a card records, completed from its ``model_args`` (``model``,
    ``image_size``, ``backbone``, ``head``: what the weights are, whatever the recipe says now;
    older cards record no ``head``). Empty when the card records no training."""
    training = card.get("training") or {}
    if not training:
        return {}
    args = card.get("model_args") or {}
    built = {"model": args.get("name"), **{k: args[k] for k in ("image_size", "backbone", "head") if k in args}}
    return {**{k: v for k, v in built.items() if v is not None or k == "backbone"}, **(training.get("config") or {})}


def shipped_checkpoint(name: Optional[str] = None, directory: Union[str, Path] = WEIGHTS_DIR) -> dict[str, Any]:
    """A shipped model as the checkpoint of its finished training, for ``load_colorizer``.

    The weights are the shipped fp16 ones cast to fp32 (no optimizer state: it evaluates, it
    does not resume). ``step`` and ``total_steps`` are the card's final step, ``config`` the
    card's training config (``card_config``), and ``origin`` says where the weights came from.
    """
    card = shipped_card(name, directory)
    model = load_shipped(card["name"], directory)
    training = card.get("training") or {}
    step = training.get("step")
    if step is None:
        raise ValueError(f"shipped model {card['name']}: its card records no training step, so it is not "
                         f"known to be a finished training")
    return {"model_args": dict(card["model_args"]), "model": model.state_dict(), "step": int(step),
            "total_steps": int(step), "config": card_config(card),
            "origin": f"{_ORIGIN_PREFIX}{card['name']} ({card.get('dtype', 'float16')}, sha256 {card['sha256'][:12]})"}


def export_weights(checkpoint: Union[str, Path], name: str, description: str,
                   directory: Union[str, Path] = WEIGHTS_DIR, extra: Optional[dict[str, Any]] = None,
                   max_bytes: int = MAX_SHIPPED_BYTES, dtype: str = "float16") -> dict[str, Any]:
    """Writes ``NAME.safetensors`` (``dtype``: float16 or int8, see the module docstring) and
    ``NAME.json`` from a training checkpoint.

    Both files are written to temporary names and renamed, so a failure leaves no half file.

    Args:
        checkpoint: a ``checkpoint.pt`` written by ``adacolor train``.
        name: the shipped model's name (``adacolor colorize --model NAME``).
        description: one line for ``adacolor list``.
        directory: where to write (default: this package's folder).
        extra: more card fields (training run, metrics).
        max_bytes: refuse to write weights larger than this.
        dtype: ``"float16"`` or ``"int8"`` (large weights per-channel int8, the rest float16).

    Returns:
        The card written.
    """
    from safetensors.torch import save_file

    from adacolor.model import load_colorizer

    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(STORAGE_DTYPES)}, got {dtype!r}")
    model = load_colorizer(checkpoint)
    state = _stored(model.state_dict(), dtype)
    args = dict(model.build_args)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{name}.safetensors"
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={_METADATA_KEY: json.dumps(args)})
        size = Path(tmp).stat().st_size
        if size > max_bytes:
            raise ValueError(f"{name}: {size / 2**20:.1f} MiB of {dtype} weights exceeds the {max_bytes / 2**20:.0f} MiB "
                             f"bound for a shipped model")
        digest = file_sha256(tmp)
        os.chmod(tmp, 0o644)  # package data: readable by all, like the files beside it
        os.replace(tmp, weights)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    card = {"name": name, "description": description, "image_size": int(args["image_size"]),
            "model_args": args, "weights": weights.name, "dtype": dtype, "bytes": size, "sha256": digest,
            **(extra or {})}
    card_path = directory / f"{name}.json"
    tmp_card = card_path.with_suffix(".json.tmp")
    tmp_card.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp_card, card_path)
    return card
