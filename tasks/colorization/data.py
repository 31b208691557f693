"""Image data for colorization: folders of photos, scikit-image's bundled photos, ctest10k.

Every dataset here yields ``{"rgb": (3, S, S) float in [0, 1], "index": int}``; the colour
space conversion (Lab, hints) happens downstream, in ``HintedItems`` and the evaluation.

    folder = ImageFolder("../shared/data/imagenette/train", image_size=224, train=True)
    photos = sample_photos(224)          # offline: scikit-image ships these files
    val = shared_dataset("imagenette/val", 224)

Real photo collections are messy: greyscale, 16-bit, CMYK, palette and transparent images are
all converted to 8-bit RGB by ``load_rgb``, and a truncated or non-image file is skipped with a
warning rather than ending a training run (see ``ImageFolder``).
"""

from __future__ import annotations

import math
import operator
import os
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, Subset

__all__ = [
    "resolve_data",
    "image_dataset",
    "evenly_spaced",
    "IMAGE_EXTENSIONS",
    "SAMPLE_PHOTO_FILES",
    "sample_photo_path",
    "BadImageWarning",
    "shared_data_root",
    "list_images",
    "load_rgb",
    "ImageFolder",
    "SamplePhotos",
    "sample_photos",
    "read_ctest10k",
    "ctest10k",
    "shared_dataset",
]

PathLike = Union[str, os.PathLike]

# lower-case suffixes, compared case-insensitively ("x.JPEG" is an image)
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".dib", ".webp", ".tif", ".tiff",
    ".gif", ".ppm", ".pgm", ".pbm", ".pnm", ".tga",
})

# colour photographs inside the scikit-image package itself (no pooch download); astronaut
# first: other code uses item 0 as "the sample photo"
SAMPLE_PHOTO_FILES = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
)

DATA_ENV = "ADAPRUNE_DATA"
CTEST10K_LIST = "ctest10k.txt"


class BadImageWarning(UserWarning):
    """An image file could not be decoded and was skipped."""


# -- locating and listing ---------------------------------------------------------------------

def shared_data_root() -> Optional[Path]:
    """The shared data folder, or None where there is none.

    Looked for, in order: the folder named by the ``ADAPRUNE_DATA`` environment variable (when
    set, it is the only candidate: a wrong value gives None rather than silently another
    folder); ``../shared/data`` beside the project root (the folder holding ``pyproject.toml``);
    ``../shared/data`` relative to the current directory.
    """
    value = os.environ.get(DATA_ENV, "").strip()
    if value:
        path = Path(value).expanduser()
        return path.resolve() if path.is_dir() else None
    project = Path(__file__).resolve().parents[2]
    candidates = []
    if (project / "pyproject.toml").is_file():
        candidates.append(project.parent / "shared" / "data")
    candidates.append(Path.cwd().parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    return None


def _where_shared_data_is_looked_for() -> str:
    value = os.environ.get(DATA_ENV, "").strip()
    if value:
        return f"${DATA_ENV} is set to {value!r}, which is not a folder"
    project = Path(__file__).resolve().parents[2]
    return (f"looked for ${DATA_ENV} (unset), then ../shared/data beside the project "
            f"({(project.parent / 'shared' / 'data')}), then ../shared/data from the current "
            f"directory ({(Path.cwd().parent / 'shared' / 'data')})")


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(root: PathLike) -> list[Path]:
    """Image files under ``root``, recursively, in a fixed order.

    Class sub-folders are optional (loose files and nested folders are both found). Hidden files
    and folders (a leading ``.``, e.g. ``._x.jpg`` from macOS, ``.ipynb_checkpoints``) are
    skipped; symbolic links to folders are followed once. Files are sorted by their path parts
    relative to ``root``, so the order does not depend on the file system.

    Args:
        root: a folder.

    Returns:
        Paths ``root / relative``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is a file.
        ValueError: no image file under ``root`` (the message lists the accepted extensions).
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} is a file, not an image folder")
    found: list[tuple[tuple[str, ...], Path]] = []
    visited: set[str] = set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:  # a link back up the tree
            subfolders[:] = []
            continue
        visited.add(real)
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        relative = Path(folder).relative_to(root).parts
        for name in names:
            if _is_image_name(name):
                found.append(((*relative, name), Path(folder, name)))
    if not found:
        raise ValueError(f"no image file under {str(root)!r}; accepted extensions (any case): "
                         f"{', '.join(sorted(IMAGE_EXTENSIONS))}")
    found.sort(key=lambda pair: pair[0])
    return [path for _, path in found]


# -- decoding ---------------------------------------------------------------------------------

def _grey_to_8bit(image: Image.Image) -> Image.Image:
    """Mode ``I;16*`` / ``I`` / ``F`` to ``L``, scaled rather than clipped.

    ``I;16*``: 0..65535 -> 0..255. ``I`` and ``F`` carry no range, so it is inferred: values
    within 0..255 are taken as 8-bit, ``F`` within 0..1 as unit range, ``I`` within 0..65535 as
    16-bit; anything else is stretched from its minimum to its maximum.
    """
    values = np.asarray(image).astype(np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode.startswith("I;16"):
        scale, offset = 255.0 / 65535.0, 0.0
    elif image.mode == "F" and low >= 0.0 and high <= 1.0:
        scale, offset = 255.0, 0.0
    elif low >= 0.0 and high <= 255.0:
        scale, offset = 1.0, 0.0
    elif image.mode == "I" and low >= 0.0 and high <= 65535.0:
        scale, offset = 255.0 / 65535.0, 0.0
    else:
        scale, offset = 255.0 / max(high - low, 1e-12), low
    grey = np.clip(np.rint((values - offset) * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(grey)  # uint8 (H, W) -> mode L


_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})


def _over_white(image: Image.Image) -> Image.Image:
    """Composite an image with transparency over white, to RGB."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def load_rgb(path: PathLike) -> Image.Image:
    """Decode an image file fully and convert it to 8-bit RGB.

    Greyscale (``1``, ``L``, 16-bit ``I;16``, ``I``, ``F``: scaled to 8 bits, not clipped),
    CMYK, YCbCr and palette images are converted; transparency (an alpha channel, or a palette
    or colour-key ``transparency`` entry) is composited over white. Multi-frame files give their
    first frame. EXIF orientation is not applied (as in the usual ImageNet pipelines).

    Truncated files raise rather than load as partly grey: decoding is forced here and PIL's
    ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left as it is (False by default).

    Args:
        path: an image file.

    Returns:
        A PIL image in mode ``RGB`` (a new image, not tied to the file).

    Raises:
        OSError: PIL cannot decode the file (``PIL.UnidentifiedImageError`` included);
            PIL may also raise ValueError or SyntaxError for a corrupt file.
    """
    with Image.open(path) as image:
        image.load()
        mode = image.mode
        if mode.startswith("I;16") or mode in ("I", "F"):
            image = _grey_to_8bit(image)
            mode = image.mode
        if mode in _ALPHA_MODES or "transparency" in image.info:
            return _over_white(image)
        if mode == "RGB":
            return image.copy()
        return image.convert("RGB")


def _to_tensor(image: Image.Image) -> Tensor:
    """RGB PIL image -> (3, H, W) float in [0, 1]."""
    array = np.array(image, dtype=np.uint8, copy=True)
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


def _centre_square(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size``, centre crop ``size x size``: one bicubic resample of the centred
    square (PIL's bicubic filter widens when shrinking, so it is antialiased)."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2.0, (height - side) / 2.0
    return image.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))


def _random_box(width: int, height: int, scale: tuple[float, float],
                ratio: tuple[float, float]) -> tuple[float, float, float, float]:
    """A random crop box (left, top, right, bottom) from torch's global generator.

    Area a uniform fraction in ``scale`` of the image's, aspect ratio (w / h) log-uniform in
    ``ratio``; ten tries, then the largest centred box with the aspect ratio clamped to
    ``ratio`` (as in torchvision's RandomResizedCrop, but with sub-pixel boxes).
    """
    area = float(width * height)
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        u_area, u_ratio, u_x, u_y = torch.rand(4, dtype=torch.float64).tolist()
        target = area * (scale[0] + (scale[1] - scale[0]) * u_area)
        aspect = math.exp(log_low + (log_high - log_low) * u_ratio)
        w, h = math.sqrt(target * aspect), math.sqrt(target / aspect)
        if w <= width and h <= height:
            left, top = u_x * (width - w), u_y * (height - h)
            return left, top, left + w, top + h
    aspect = min(max(width / height, ratio[0]), ratio[1])
    w, h = (float(width), width / aspect) if width / height <= aspect else (height * aspect, float(height))
    left, top = (width - w) / 2.0, (height - h) / 2.0
    return left, top, left + w, top + h


# -- datasets ---------------------------------------------------------------------------------

class ImageFolder(Dataset):
    """Photos from a folder (class sub-folders optional), as square RGB tensors.

    Items are ``{"rgb": (3, S, S) float in [0, 1], "index": int}``.

    - Eval (``train=False``): the shorter side resized to S and the centre S x S cropped (one
      bicubic, antialiased resample); deterministic.
    - Train: a random resized crop (area ``crop_scale`` of the image, aspect ratio
      ``crop_ratio``) to S x S, then a horizontal flip with probability 1/2. All randomness comes
      from torch's global generator, so ``torch.manual_seed`` right before ``dataset[i]`` fixes
      the item (Python's ``random`` and numpy are not used).

    A file that cannot be decoded (truncated, not an image...) never ends an epoch: it is
    recorded in ``skipped`` with the reason, a ``BadImageWarning`` is issued once for it, and
    the item is the next loadable file instead (index + 1, + 2, ..., wrapping around; "index"
    stays the requested one). Known-bad files are not retried. With DataLoader workers, each
    worker process has its own copy of the dataset and so its own ``skipped`` list; the
    main-process dataset only sees its own loads (``scan()`` checks every file up front).

    Args:
        root: the image folder; with ``files``, relative paths are taken from it.
        image_size: S, the output side in pixels.
        train: random crops and flips (True) or the deterministic centre crop (False).
        files: the image files to use, in this order (default: ``list_images(root)``).
        crop_scale: (min, max) fraction of the image area a training crop covers.
        crop_ratio: (min, max) aspect ratio (width / height) of a training crop.

    Raises:
        FileNotFoundError, NotADirectoryError, ValueError: from ``list_images``, or an empty
            ``files`` / a bad ``image_size`` or crop range.
    """

    def __init__(self, root: PathLike, image_size: int, train: bool = False,
                 files: Optional[Sequence[PathLike]] = None, *,
                 crop_scale: tuple[float, float] = (0.5, 1.0),
                 crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {crop_scale!r}")
        if not 0.0 < crop_ratio[0] <= crop_ratio[1]:
            raise ValueError(f"crop_ratio must satisfy 0 < min <= max, got {crop_ratio!r}")
        self.root = Path(root).expanduser()
        if files is None:
            self.files = tuple(list_images(self.root))
        else:
            self.files = tuple(self.root / Path(file) for file in files)  # absolute paths stay
            if not self.files:
                raise ValueError(f"files is empty: no image to use under {str(self.root)!r}")
        self.image_size = image_size
        self.train = bool(train)
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.crop_ratio = (float(crop_ratio[0]), float(crop_ratio[1]))
        self._bad: dict[Path, str] = {}  # path -> reason, in the order found

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, images={len(self)}, "
                f"image_size={self.image_size}, train={self.train})")

    @property
    def skipped(self) -> list[tuple[Path, str]]:
        """(path, reason) of every file that failed to load so far, in the order found."""
        return list(self._bad.items())

    @property
    def num_skipped(self) -> int:
        """How many files failed to load so far (in this process)."""
        return len(self._bad)

    def _mark_bad(self, path: Path, error: BaseException) -> None:
        reason = f"{type(error).__name__}: {error}"
        self._bad[path] = reason
        warnings.warn(f"skipping unreadable image {str(path)!r} ({reason}); "
                      f"using the next loadable image instead", BadImageWarning, stacklevel=3)

    def _try_load(self, path: Path) -> Optional[Image.Image]:
        if path in self._bad:
            return None
        try:
            image = load_rgb(path)
        except Exception as error:  # any decoder failure: PIL raises OSError, ValueError, SyntaxError...
            self._mark_bad(path, error)
            return None
        return image

    def load(self, index: int) -> Image.Image:
        """The RGB image of item ``index``, or of the next loadable file (wrapping around).

        Raises:
            ValueError: no file of the dataset can be loaded (bad input, not a bug).
        """
        count = len(self.files)
        for step in range(count):
            image = self._try_load(self.files[(index + step) % count])
            if image is not None:
                return image
        raise ValueError(f"none of the {count} image files under {str(self.root)!r} can be "
                           f"loaded; first failure: {self.skipped[0][0]} ({self.skipped[0][1]})")

    def scan(self) -> int:
        """Try to decode every file once (warning for each bad one); returns how many are bad."""
        for path in self.files:
            self._try_load(path)
        return len(self._bad)

    def transform(self, image: Image.Image) -> Tensor:
        """RGB PIL image -> (3, S, S) in [0, 1]: the eval or the (random) train transform."""
        size = self.image_size
        if not self.train:
            return _to_tensor(_centre_square(image, size))
        box = _random_box(image.width, image.height, self.crop_scale, self.crop_ratio)
        rgb = _to_tensor(image.resize((size, size), Image.Resampling.BICUBIC, box=box))
        if bool(torch.rand(()) < 0.5):
            rgb = rgb.flip(-1)
        return rgb

    def __getitem__(self, index: int) -> dict[str, Union[Tensor, int]]:
        index = operator.index(index)
        count = len(self.files)
        if not -count <= index < count:
            raise IndexError(f"index {index} out of range for {count} images")
        index %= count
        return {"rgb": self.transform(self.load(index)), "index": index}


class SamplePhotos(Dataset):
    """A few photos held in memory as tensors: ``{"rgb": (3, H, W) in [0, 1], "index": int}``.

    Args:
        images: (3, H, W) tensors (sizes may differ).
        names: one name per image (e.g. the file name).
    """

    def __init__(self, images: Sequence[Tensor], names: Sequence[str]) -> None:
        if len(images) != len(names):
            raise ValueError(f"{len(images)} images but {len(names)} names")
        self.images = list(images)
        self.names = list(names)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self.names)})"

    def __getitem__(self, index: int) -> dict[str, Union[Tensor, int]]:
        index = operator.index(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} photos")
        index %= len(self)
        return {"rgb": self.images[index].clone(), "index": index}


def _bundled_sample_files() -> dict[str, Path]:
    """Stem -> file of the ``SAMPLE_PHOTO_FILES`` inside the installed scikit-image, in order;
    found without importing it (importing skimage.data costs about a second)."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("sample photos come from scikit-image: pip install 'adaprune[colorization]'")
    folder = Path(spec.origin).parent / "data"
    return {Path(f).stem: folder / f for f in SAMPLE_PHOTO_FILES if (folder / f).is_file()}


def sample_photo_path(name: str) -> Path:
    """The file of one of scikit-image's bundled photos by stem (``"astronaut"``), for
    ``adacolor colorize sample:astronaut``; ValueError lists the names bundled here."""
    try:
        bundled = _bundled_sample_files()
    except ModuleNotFoundError as error:
        raise ValueError(str(error)) from None
    if name not in bundled:
        raise ValueError(f"no bundled sample photo {name!r}; bundled: {', '.join(bundled) or 'none'}")
    return bundled[name]


def sample_photos(image_size: Optional[int]) -> SamplePhotos:
    """scikit-image's bundled colour photographs (astronaut first), read with no network access.

    The files are those of ``SAMPLE_PHOTO_FILES`` that sit inside the installed ``skimage.data``
    package (downloadable datasets are never fetched); at least one must be there.

    Args:
        image_size: S: shorter side resized to S and centre-cropped as in ``ImageFolder``'s eval
            mode, giving (3, S, S); None keeps each photo's own size, (3, H, W).

    Raises:
        ModuleNotFoundError: scikit-image is not installed.
        RuntimeError: none of the photos is bundled with the installed scikit-image.
    """
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 1):
        raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
    images, names = [], []
    for name, path in _bundled_sample_files().items():
        image = load_rgb(path)
        if image_size is not None:
            image = _centre_square(image, image_size)
        images.append(_to_tensor(image))
        names.append(name)
    if not images:
        raise RuntimeError(f"none of {', '.join(SAMPLE_PHOTO_FILES)} is bundled with scikit-image; "
                           f"use an image folder instead")
    return SamplePhotos(images, names)


# -- benchmark lists and the shared data ------------------------------------------------------

def _default_ctest10k_list() -> Path:
    root = shared_data_root()
    if root is None or not (root / CTEST10K_LIST).is_file():
        where = _where_shared_data_is_looked_for() if root is None else f"not in {root}"
        raise FileNotFoundError(f"{CTEST10K_LIST} not found ({where}); pass list_file=")
    return root / CTEST10K_LIST


def read_ctest10k(list_file: Optional[PathLike] = None) -> list[tuple[str, int]]:
    """The ctest10k benchmark list: ``(relative path, ImageNet label)`` per line.

    Lines read ``/n04286575/ILSVRC2012_val_00042961.JPEG 818``; the leading ``/`` is dropped, so
    paths are relative to an ImageNet validation root. Blank lines are ignored.

    Args:
        list_file: the list (default: ``ctest10k.txt`` in the shared data folder).

    Raises:
        FileNotFoundError: no list file.
        ValueError: a line is not ``path label``.
    """
    path = Path(list_file).expanduser() if list_file is not None else _default_ctest10k_list()
    entries = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                raise ValueError(f"{path}:{number}: expected '<path> <label>', got {line.strip()!r}")
            entries.append((fields[0].lstrip("/"), int(fields[1])))
    return entries


def ctest10k(imagenet_val_root: PathLike, list_file: Optional[PathLike] = None,
             image_size: int = 224) -> ImageFolder:
    """The ctest10k colorization benchmark: 10,000 ImageNet validation images, eval mode.

    Args:
        imagenet_val_root: ImageNet's validation set as ``<root>/<wnid>/ILSVRC2012_val_*.JPEG``
            (the list's layout); a flat ``<root>/ILSVRC2012_val_*.JPEG`` is accepted too.
        list_file: the list (default: ``ctest10k.txt`` in the shared data folder).
        image_size: S.

    Returns:
        An eval-mode ``ImageFolder`` over the listed files, in list order.

    Raises:
        FileNotFoundError: the root is missing, or listed files are not under it (the message
            says how many and shows the first few).
    """
    root = Path(imagenet_val_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"ImageNet validation folder {str(root)!r} does not exist")
    entries = read_ctest10k(list_file)
    files, missing = [], []
    for relative, _ in entries:
        path = root / relative
        if not path.is_file():
            flat = root / Path(relative).name
            if not flat.is_file():
                missing.append(relative)
                continue
            path = flat
        files.append(path)
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise FileNotFoundError(f"{len(missing)} of the {len(entries)} ctest10k images are missing under "
                                f"{str(root)!r} (expected <root>/<wnid>/ILSVRC2012_val_*.JPEG): {shown}")
    return ImageFolder(root, image_size=image_size, train=False, files=files)


def shared_dataset(name: str, image_size: int, train: bool = False) -> ImageFolder:
    """An ``ImageFolder`` over a folder of the shared data (``shared_data_root()``).

    Args:
        name: a folder relative to the shared data root, e.g. ``"imagenette/val"``,
            ``"flowers17-subset/test"``.
        image_size: S.
        train: random crops and flips, or the eval centre crop.

    Raises:
        FileNotFoundError: no shared data folder (it looks for ``$ADAPRUNE_DATA``, then
            ``../shared/data``), or no ``name`` inside it.
        ValueError: ``name`` is absolute or leaves the shared folder.
    """
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"name must be a folder relative to the shared data root, got {name!r}")
    root = shared_data_root()
    if root is None:
        raise FileNotFoundError(f"shared data folder not found: {_where_shared_data_is_looked_for()}")
    folder = root / relative
    if not folder.is_dir():
        available = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
        raise FileNotFoundError(f"{name!r} is not a folder of the shared data {str(root)!r} "
                                f"(its folders: {', '.join(available) or 'none'})")
    return ImageFolder(folder, image_size=image_size, train=train)


# -- data specs: what the command line and recipes name -------------------------------------

def resolve_data(spec: str) -> Union[str, Path]:
    """``samples`` stays; ``shared:REL`` is REL under the shared data folder; else a path.

    Raises:
        FileNotFoundError: the folder does not exist (the message says what is accepted).
    """
    if spec == "samples":
        return spec
    if spec.startswith("shared:"):
        root = shared_data_root()
        if root is None:
            raise FileNotFoundError(f"{spec!r} needs the shared data folder (../shared/data beside the project), "
                                    f"which is missing; give an image folder path or 'samples' instead")
        path = Path(root) / spec.split(":", 1)[1]
    else:
        path = Path(spec).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"data folder {str(path)!r} not found; give an image folder (--set data=PATH), "
                                f"'shared:imagenette/train' or 'samples' (scikit-image's photos)")
    return path


def image_dataset(spec: str, image_size: int, train: bool) -> Dataset:
    """Items ``{"rgb": (3, S, S) in [0, 1], "index": int}`` from a data spec (``resolve_data``)."""
    source = resolve_data(spec)
    if source == "samples":
        return sample_photos(image_size)
    return ImageFolder(source, image_size=image_size, train=train)


def evenly_spaced(dataset: Dataset, count: int) -> Dataset:
    """``count`` items spread evenly over ``dataset`` (all of it when smaller): a fixed val set
    that covers every class folder."""
    n = len(dataset)
    if count >= n:
        return dataset
    return Subset(dataset, torch.linspace(0, n - 1, count).round().long().tolist())
