"""Image data: listing, decoding odd image modes, bad files, augmentation seeds, bundled photos,
the shared data folder and the ctest10k list."""

from __future__ import annotations

import os
import random
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from adacolor.data import (
    BadImageWarning,
    ImageFolder,
    ctest10k,
    list_images,
    load_rgb,
    read_ctest10k,
    sample_photos,
    shared_data_root,
    shared_dataset,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _require_shared() -> Path:
    """The shared data folder; skip when it is missing, or fail where ADAPRUNE_REQUIRE_DATA=1."""
    root = shared_data_root()
    if root is None:
        reason = "the shared data folder is missing (looked for $ADAPRUNE_DATA, then ../shared/data)"
        if os.environ.get("ADAPRUNE_REQUIRE_DATA") == "1":
            pytest.fail(f"{reason}, and ADAPRUNE_REQUIRE_DATA=1 requires it")
        pytest.skip(reason)
    return root


def _save(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _halves(left: tuple, right: tuple, mode: str = "RGB", size: tuple[int, int] = (32, 24)) -> Image.Image:
    """A ``size`` image, its left half ``left``, its right half ``right``."""
    image = Image.new(mode, size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def _colour(rgb: torch.Tensor, columns: slice) -> torch.Tensor:
    """Mean colour (0..255) of some columns of a (3, S, S) tensor."""
    return rgb[:, :, columns].mean(dim=(1, 2)) * 255


# -- listing ----------------------------------------------------------------------------------

def test_list_images_is_recursive_sorted_and_skips_non_images(tmp_path: Path) -> None:
    for name in ["b_class/z.JPG", "b_class/a.png", "a_class/x.jpeg", "a_class/deep/w.webp", "loose.bmp",
                 "UPPER.TIFF", ".hidden.jpg", ".cache/y.png"]:
        _save(Image.new("RGB", (4, 4)), tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "a_class" / "labels.csv").write_text("x,1")
    expected = ["UPPER.TIFF", "a_class/deep/w.webp", "a_class/x.jpeg", "b_class/a.png", "b_class/z.JPG", "loose.bmp"]
    found = [path.relative_to(tmp_path).as_posix() for path in list_images(tmp_path)]
    assert found == expected
    assert list_images(str(tmp_path)) == list_images(tmp_path)


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_images(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"\.jpg.*\.png|\.png.*\.jpg"):
        list_images(tmp_path)


# -- decoding ---------------------------------------------------------------------------------

def _pgm16(path: Path, value: int) -> Path:
    """A 16-bit binary PGM (PIL opens it in mode I)."""
    pixels = np.full((24, 32), value, dtype=">u2")
    path.write_bytes(b"P5\n32 24\n65535\n" + pixels.tobytes())
    return path


def _palette_with_transparency(path: Path) -> Path:
    image = _halves(0, 1, mode="P")
    image.putpalette([*RED, *GREEN] + [0] * 762)
    return _save(image, path, transparency=1)  # index 1 (green) fully transparent


CASES = {
    # name: (make the file in a folder, expected colour of the left columns, of the right columns)
    "greyscale": (lambda d: _save(Image.new("L", (32, 24), 100), d / "g.png"), (100,) * 3, (100,) * 3),
    "greyscale_16bit_png": (lambda d: _save(Image.fromarray(np.full((24, 32), 30000, np.uint16)), d / "g16.png"),
                            (30000 / 257,) * 3, (30000 / 257,) * 3),
    "greyscale_16bit_pgm": (lambda d: _pgm16(d / "g16.pgm", 40000), (40000 / 257,) * 3, (40000 / 257,) * 3),
    "float_tiff": (lambda d: _save(Image.fromarray(np.full((24, 32), 0.5, np.float32)), d / "f.tif"),
                   (127.5,) * 3, (127.5,) * 3),
    "cmyk_jpeg": (lambda d: _save(_halves((0, 255, 255, 0), (255, 255, 0, 0), mode="CMYK"), d / "c.jpg", quality=95),
                  RED, BLUE),
    "palette_transparency": (lambda d: _palette_with_transparency(d / "p.png"), RED, WHITE),
    "rgba": (lambda d: _save(_halves((0, 0, 255, 255), (0, 0, 255, 0), mode="RGBA"), d / "a.png"), BLUE, WHITE),
    "la": (lambda d: _save(_halves((50, 255), (50, 0), mode="LA"), d / "la.png"), (50,) * 3, WHITE),
}


@pytest.mark.parametrize("case", list(CASES))
def test_image_modes_become_rgb_with_the_right_colours(tmp_path: Path, case: str) -> None:
    make, left, right = CASES[case]
    path = make(tmp_path)
    assert load_rgb(path).mode == "RGB"
    with warnings.catch_warnings():
        warnings.simplefilter("error", BadImageWarning)
        rgb = ImageFolder(tmp_path, image_size=8)[0]["rgb"]
    assert rgb.shape == (3, 8, 8) and rgb.dtype == torch.float32
    assert rgb.min() >= 0 and rgb.max() <= 1
    tolerance = 8 if case == "cmyk_jpeg" else 1.01  # JPEG; 8-bit rounding
    # the 32 x 24 image's centre 24 x 24 square: its left half is columns 0-3 of 8
    assert torch.allclose(_colour(rgb, slice(0, 2)), torch.tensor(left, dtype=torch.float32), atol=tolerance)
    assert torch.allclose(_colour(rgb, slice(6, 8)), torch.tensor(right, dtype=torch.float32), atol=tolerance)


# -- bad files --------------------------------------------------------------------------------

def _folder_with_bad_files(root: Path) -> Path:
    """a.jpg red, b.jpg truncated, c.jpg text, d.png blue."""
    _save(Image.new("RGB", (20, 20), RED), root / "a.jpg", quality=95)
    whole = _save(_noise(64, 64), root / "b.jpg", quality=95).read_bytes()
    (root / "b.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "c.jpg").write_text("this is not a JPEG\n")
    _save(Image.new("RGB", (20, 20), BLUE), root / "d.png")
    return root


def test_bad_files_are_skipped_with_one_warning_each(tmp_path: Path) -> None:
    dataset = ImageFolder(_folder_with_bad_files(tmp_path), image_size=8)
    with pytest.warns(BadImageWarning) as record:
        item = dataset[1]
    messages = [str(warning.message) for warning in record if warning.category is BadImageWarning]
    assert len(messages) == 2 and "b.jpg" in messages[0] and "c.jpg" in messages[1]
    assert item["index"] == 1  # the requested index, with the next loadable image (d.png)
    assert torch.equal(item["rgb"], dataset[3]["rgb"])
    assert [path.name for path, _ in dataset.skipped] == ["b.jpg", "c.jpg"]
    assert "truncated" in dataset.skipped[0][1].lower() and dataset.num_skipped == 2
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        assert torch.equal(dataset[2]["rgb"], dataset[3]["rgb"])  # known bad: no retry, no warning
    assert not [warning for warning in again if warning.category is BadImageWarning]

    fresh = ImageFolder(tmp_path, image_size=8)
    with pytest.warns(BadImageWarning):
        assert fresh.scan() == 2


@pytest.mark.parametrize("workers", [0, 2])
def test_a_dataloader_epoch_over_bad_files_does_not_crash(tmp_path: Path, workers: int) -> None:
    dataset = ImageFolder(_folder_with_bad_files(tmp_path), image_size=8, train=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadImageWarning)
        batches = list(DataLoader(dataset, batch_size=3, num_workers=workers))
    assert torch.cat([batch["index"] for batch in batches]).tolist() == [0, 1, 2, 3]
    rgb = torch.cat([batch["rgb"] for batch in batches])
    assert rgb.shape == (4, 3, 8, 8) and rgb.min() >= 0 and rgb.max() <= 1


def test_a_folder_of_only_bad_files_raises(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_text("no")
    (tmp_path / "y.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    dataset = ImageFolder(tmp_path, image_size=8)
    with pytest.warns(BadImageWarning), pytest.raises(ValueError, match=re.escape(str(tmp_path))):
        dataset[0]


# -- augmentation -----------------------------------------------------------------------------

def _seeded_item(dataset: ImageFolder, seed: int) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]):  # as the training code does
        torch.manual_seed(seed)
        return dataset[0]["rgb"]


def test_train_items_depend_on_the_torch_seed_only(tmp_path: Path) -> None:
    _save(_noise(40, 30), tmp_path / "noise.png")
    dataset = ImageFolder(tmp_path, image_size=16, train=True)
    first = _seeded_item(dataset, 3)
    random.seed(1)
    np.random.seed(1)
    assert torch.equal(_seeded_item(dataset, 3), first)
    others = [_seeded_item(dataset, seed) for seed in range(4, 9)]
    assert all(not torch.equal(first, other) for other in others)
    assert first.shape == (3, 16, 16) and first.min() >= 0 and first.max() <= 1


def test_train_items_are_flipped_about_half_the_time(tmp_path: Path) -> None:
    _save(_halves(RED, BLUE, size=(32, 32)), tmp_path / "split.png")
    dataset = ImageFolder(tmp_path, image_size=8, train=True)
    # every crop (area >= 1/2, aspect 3/4..4/3) spans the middle: column 0 shows the left half
    # unflipped, the right half flipped
    left_is_red = [bool(_seeded_item(dataset, seed)[0, :, 0].mean() > 0.5) for seed in range(20)]
    assert 0 < sum(left_is_red) < 20


def test_eval_items_are_the_deterministic_centre_crop(tmp_path: Path) -> None:
    bands = Image.new("RGB", (64, 32), GREEN)  # centre square: x 16..48
    bands.paste(RED, (0, 0, 12, 32))  # 4 px clear of it: bicubic at 1/2 scale reads 4 px around
    bands.paste(BLUE, (52, 0, 64, 32))
    _save(bands, tmp_path / "bands.png")
    dataset = ImageFolder(tmp_path, image_size=16)
    first = _seeded_item(dataset, 0)
    assert torch.equal(_seeded_item(dataset, 1), first)
    expected = torch.tensor(GREEN, dtype=torch.float32).view(3, 1, 1) / 255
    assert torch.allclose(first, expected.expand(3, 16, 16), atol=1 / 255)  # the red and blue bands are cut off


# -- scikit-image's photos ------------------------------------------------------------------

def test_sample_photos() -> None:
    from skimage.data import astronaut

    photos = sample_photos(32)
    assert len(photos) >= 5 and photos.names[0] == "astronaut"
    for index in range(len(photos)):
        item = photos[index]
        assert item["index"] == index and item["rgb"].shape == (3, 32, 32)
        assert item["rgb"].min() >= 0 and item["rgb"].max() <= 1 and item["rgb"].std() > 0.05
    full = sample_photos(None)
    assert len(full) == len(photos)
    assert torch.equal(full[0]["rgb"], torch.from_numpy(astronaut()).permute(2, 0, 1).float() / 255)
    assert len({tuple(full[index]["rgb"].shape) for index in range(len(full))}) > 1  # own sizes kept


# -- the shared data folder and ctest10k ------------------------------------------------------

def test_shared_data_root_follows_the_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAPRUNE_DATA", str(tmp_path))
    assert shared_data_root() == tmp_path.resolve()
    with pytest.raises(FileNotFoundError, match="imagenette/val"):
        shared_dataset("imagenette/val", 8)
    with pytest.raises(ValueError):
        shared_dataset("../elsewhere", 8)
    monkeypatch.setenv("ADAPRUNE_DATA", str(tmp_path / "missing"))
    assert shared_data_root() is None
    with pytest.raises(FileNotFoundError, match="ADAPRUNE_DATA"):
        shared_dataset("imagenette/val", 8)


def test_ctest10k_reads_its_list_and_names_missing_files(tmp_path: Path) -> None:
    listed = ["n01440764/ILSVRC2012_val_00000001.JPEG", "n01440764/ILSVRC2012_val_00000002.JPEG",
              "n09999999/ILSVRC2012_val_00000003.JPEG"]
    list_file = tmp_path / "list.txt"
    list_file.write_text("".join(f"/{path} {label}\n" for label, path in enumerate(listed)) + "\n")
    assert read_ctest10k(list_file) == [(path, label) for label, path in enumerate(listed)]
    root = tmp_path / "val"
    for path in listed[:2]:
        _save(_noise(20, 16), root / path, quality=90)
    with pytest.raises(FileNotFoundError, match=r"1 of the 3 .*ILSVRC2012_val_00000003"):
        ctest10k(root, list_file, image_size=8)
    _save(_noise(20, 16), root / "ILSVRC2012_val_00000003.JPEG", quality=90)  # flat layout is found too
    dataset = ctest10k(root, list_file, image_size=8)
    assert len(dataset) == 3 and not dataset.train and dataset[2]["rgb"].shape == (3, 8, 8)
    list_file.write_text("/a.JPEG one\n")
    with pytest.raises(ValueError, match="list.txt:1"):
        read_ctest10k(list_file)


def test_shared_imagenette_gives_real_photos() -> None:
    _require_shared()
    dataset = shared_dataset("imagenette/val", 64)
    assert len(dataset) > 3000
    for index in np.linspace(0, len(dataset) - 1, 6).round().astype(int).tolist():
        rgb = dataset[index]["rgb"]
        assert rgb.shape == (3, 64, 64) and rgb.min() >= 0 and rgb.max() <= 1 and rgb.std() > 0.01
    assert dataset.skipped == []
    train = shared_dataset("flowers17-subset/test", 32, train=True)
    assert train.train and train[0]["rgb"].shape == (3, 32, 32)


def test_shared_greyscale_imagenette_photos_load_as_grey_rgb() -> None:
    root = _require_shared()
    names = ["n01440764/n01440764_15560.JPEG", "n02102040/n02102040_1980.JPEG", "n02102040/n02102040_4070.JPEG"]
    folder = root / "imagenette" / "val"
    with Image.open(folder / names[0]) as image:
        assert image.mode == "L"  # the data still holds these greyscale photos
    dataset = ImageFolder(folder, image_size=32, files=names)
    for index in range(len(names)):
        rgb = dataset[index]["rgb"]
        assert rgb.shape == (3, 32, 32) and torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2])


def test_the_ctest10k_list_parses_and_needs_imagenet(tmp_path: Path) -> None:
    _require_shared()
    entries = read_ctest10k()
    assert len(entries) == 10_000 and len({path for path, _ in entries}) == 10_000
    assert all(re.fullmatch(r"n\d{8}/ILSVRC2012_val_\d{8}\.JPEG", path) for path, _ in entries)
    assert {label for _, label in entries} <= set(range(1000))
    with pytest.raises(FileNotFoundError, match="10000 of the 10000"):
        ctest10k(tmp_path, image_size=8)
