"""Evaluation: PSNR@k, LPIPS@k and the seam ratio@k on fixed hint sets, the GFLOPs each image
cost, and the colourfulness of the model's first picture (0 hints) against the photos'.

    adacolor evaluate --checkpoint runs/tiny/checkpoint.pt --data shared:imagenette/val --hints 1,10 --out runs/tiny/eval

The hint sets of a dataset are drawn once from a seed and saved beside the outputs
(``hints.json``); a later evaluation into the same folder, or one given ``--hint-file``,
reuses them, so that every model is scored on identical hints.

Each readable image is scored once, with the hints of its own position in the set. A file that
cannot be decoded is skipped (never replaced by another image, as a training set does), and
the skipped files are counted and listed in ``metrics.json``.

Beside the hint counts asked for, each image gets one forward with no hint at all, the picture a
user sees first: ``chroma@0`` is its mean chroma (sqrt(a^2 + b^2) over pixels, Lab units,
``metrics.chroma``) and ``chroma_photos`` the photos' own, so a model that paints nearly grey
without hints shows as ``chroma@0`` far below ``chroma_photos``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from adacolor.model import Colorizer, colorizer_gflops

__all__ = ["IMAGE_NETWORK_PATCH", "evaluate", "seam_patch_size", "hint_sets_for", "markdown_table",
           "run_evaluation"]

# The seam ratio's grid for a colorizer without patches (SwinIR, Uformer: no ``patch_size``):
# the 16 pixels of the ViT colorizers' patches, so that every model is scored on one grid.
IMAGE_NETWORK_PATCH = 16


def seam_patch_size(model: nn.Module) -> int:
    """The patch side the seam ratio of ``model`` is measured on: its ``patch_size`` (ViT
    colorizers), else ``IMAGE_NETWORK_PATCH`` (image-to-image networks)."""
    return int(getattr(model, "patch_size", IMAGE_NETWORK_PATCH))


class _EachImageOnce(Dataset):
    """The items of an evaluation set by position, each file decoded once and never replaced.

    Items are ``{"rgb": (3, S, S), "position": i, "error": ""}``; for a file of an image folder
    that cannot be decoded, ``rgb`` is zeros and ``error`` says which file and why.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, position: int) -> dict[str, Any]:
        from adacolor.data import ImageFolder, load_rgb

        dataset, index = self.dataset, position
        while isinstance(dataset, Subset):
            dataset, index = dataset.dataset, dataset.indices[index]
        if not isinstance(dataset, ImageFolder):  # in memory: nothing to fail
            return {"rgb": self.dataset[position]["rgb"], "position": position, "error": ""}
        path = dataset.files[index]
        try:
            image = load_rgb(path)
        except Exception as error:  # any decoder failure (as ImageFolder): OSError, ValueError, SyntaxError...
            size = dataset.image_size
            return {"rgb": torch.zeros(3, size, size), "position": position,
                    "error": f"{path}: {type(error).__name__}: {error}"}
        return {"rgb": dataset.transform(image), "position": position, "error": ""}


@torch.no_grad()
def evaluate(
        model: Colorizer,
        dataset: Dataset,
        hint_sets: Any,
        ks: Sequence[int] = (1, 10),
        batch_size: int = 16,
        lpips: Optional[Callable[[Tensor, Tensor], Tensor]] = None,
        device: Union[str, torch.device] = "cpu",
        progress: bool = False,
) -> dict[str, Any]:
    """Scores ``model`` on ``dataset`` with ``k`` hints per image, for each k in ``ks``.

    Args:
        model: a colorizer at the dataset's image size (put in eval mode here).
        dataset: items ``{"rgb": (3, S, S)}``; image i gets the hints of entry i of the sets.
            Files of an image folder that cannot be decoded are skipped, not replaced.
        hint_sets: from ``hints.make_eval_hint_sets(len(dataset), S, S, counts)`` with every k.
        ks: hint counts to score.
        batch_size: images per forward.
        lpips: ``(pred, target) -> (B,)`` in [0, 1] (e.g. ``lpips.LPIPS("alex")``); None: skipped.
        device: where the model runs.
        progress: show a progress bar on stderr (only when it is a terminal).

    Returns:
        ``{"images": n scored, "skipped": files skipped, "skipped_files": ["path: reason", ...],
        "psnr@k": mean dB, "lpips@k": mean, "seam@k": mean seam ratio of the predicted ab
        (``metrics.seam_ratio`` on ``seam_patch_size(model)``; left out when the image size is
        not a multiple of that patch, with two patches or more), "gflops@k": mean per image,
        "gflops": mean over all k, "chroma@0": mean chroma of the prediction with no hint,
        "chroma_photos": the photos' own mean chroma}``; GFLOPs are those the decisions
        actually cost (the 0-hint forward is not counted in them); chroma in Lab units.

    Raises:
        ValueError: the dataset is empty or none of its images can be read.
    """
    from adacolor.color import AB_SCALE, lab_merge, lab_split
    from adacolor.hints import model_input, render_hints
    from adacolor.metrics import chroma, psnr, seam_ratio

    if len(dataset) == 0:
        raise ValueError("the evaluation dataset is empty")
    model.eval()
    device = torch.device(device)
    patch = seam_patch_size(model)
    seams = all(side % patch == 0 for side in model.image_size) and min(model.image_size) >= 2 * patch
    sums: dict[str, float] = {}
    count = 0
    skipped: list[str] = []
    loader = DataLoader(_EachImageOnce(dataset), batch_size=batch_size, shuffle=False)
    with tqdm(total=len(dataset), desc="evaluate", unit="img", disable=None if progress else True,
              dynamic_ncols=True) as bar:
        for batch in loader:
            bar.update(len(batch["error"]))
            skipped += [error for error in batch["error"] if error]
            keep = [i for i, error in enumerate(batch["error"]) if not error]
            if not keep:
                continue
            rgb = batch["rgb"][keep].to(device)
            positions = [int(batch["position"][i]) for i in keep]
            B = rgb.shape[0]
            l_norm, ab = lab_split(rgb)
            no_hints = torch.zeros_like(ab), torch.zeros_like(ab[:, :1])
            first = model(model_input(l_norm, *no_hints))  # the picture before any click
            scores = {"chroma@0": chroma(first * AB_SCALE), "chroma_photos": chroma(ab * AB_SCALE)}
            for k in ks:
                points = [_points(hint_sets, k, position) for position in positions]
                hint_ab, hint_mask = render_hints(ab, points)
                pred_ab = model(model_input(l_norm, hint_ab.to(device), hint_mask.to(device)))
                out = lab_merge(l_norm, pred_ab).clamp(0.0, 1.0)
                scores.update({f"psnr@{k}": psnr(out, rgb), f"gflops@{k}": colorizer_gflops(model, B)})
                if seams:
                    scores[f"seam@{k}"] = seam_ratio(pred_ab, patch)
                if lpips is not None:
                    scores[f"lpips@{k}"] = lpips(out, rgb)
            for name, values in scores.items():
                sums[name] = sums.get(name, 0.0) + float(values.double().sum())
            count += B
    if count == 0:
        raise ValueError(f"none of the {len(dataset)} images of the evaluation set can be read; "
                         f"first: {skipped[0]}")
    metrics: dict[str, Any] = {"images": count, "skipped": len(skipped), "skipped_files": skipped}
    metrics.update({name: total / count for name, total in sorted(sums.items())})
    metrics["gflops"] = sum(metrics[f"gflops@{k}"] for k in ks) / len(ks)
    return metrics


def _points(hint_sets: Any, k: int, index: int) -> Any:
    """The hint points of image ``index`` in the set of ``k`` hints."""
    try:
        return hint_sets[k][index]
    except (KeyError, IndexError):
        raise ValueError(f"the hint sets have no entry for {k} hints and image {index}; draw them for "
                         f"every k evaluated and every image (make_eval_hint_sets)") from None


def hint_sets_for(path: Path, num_images: int, size: int, ks: Sequence[int], hint_size: int = 2,
                  seed: int = 0) -> Any:
    """The hint sets stored at ``path``, or new ones drawn from ``seed`` and saved there.

    Raises:
        ValueError: the stored sets do not fit (other image count or size, a k missing).
    """
    from adacolor.hints import load_hint_sets, make_eval_hint_sets, save_hint_sets

    if path.is_file():
        sets = load_hint_sets(path)
        missing = [k for k in ks if k not in sets]
        if missing or any(len(sets[k]) != num_images for k in ks):
            raise ValueError(f"{path} holds hint sets for {len(next(iter(sets.values()), []))} images and "
                             f"k={sorted(sets)}; this evaluation needs {num_images} images and k={list(ks)}: "
                             f"delete it, or evaluate into another --out")
        return sets
    sets = make_eval_hint_sets(num_images, size, size, tuple(ks), size=hint_size, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_hint_sets(sets, path)
    return sets


def markdown_table(rows: Sequence[dict[str, Any]], ks: Sequence[int]) -> str:
    """One row per evaluated model: PSNR@k, LPIPS@k and Seam@k (each when measured), GFLOPs, and
    the chroma at 0 hints against the photos' (when measured)."""
    def has(key: str) -> bool:
        return any(key in row for row in rows)

    header = ["model", "images"] + [f"PSNR@{k}" for k in ks]
    columns: list[tuple[str, str, str]] = []  # (header, key, format) of the optional columns
    for name, key, form in (("LPIPS", "lpips", ".4f"), ("Seam", "seam", ".2f")):
        columns += [(f"{name}@{k}", f"{key}@{k}", form) for k in ks if has(f"{key}@{k}")]
    header += [title for title, _, _ in columns] + ["GFLOPs"]
    chroma = has("chroma@0")
    if chroma:
        header += ["chroma@0", "chroma photos"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row.get("model", "")), str(row["images"])] + [f"{row[f'psnr@{k}']:.2f}" for k in ks]
        cells += [format(row[key], form) if key in row else "-" for _, key, form in columns]
        cells.append(f"{row['gflops']:.3f}")
        if chroma:
            cells += [f"{row[key]:.1f}" if key in row else "-" for key in ("chroma@0", "chroma_photos")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _lpips_metric(net: Optional[str], device: torch.device) -> tuple[Optional[nn.Module], Optional[str]]:
    """(metric, note): ``auto`` uses AlexNet-LPIPS when its weights are present, else skips."""
    if net in (None, "none"):
        return None, None
    from adacolor.lpips import LPIPS

    try:
        return LPIPS(net="alex" if net == "auto" else net).to(device).eval(), None
    except FileNotFoundError as error:
        if net != "auto":
            raise
        return None, f"LPIPS skipped: {error}"


def run_evaluation(
        model: Colorizer,
        data: str,
        out_dir: Union[str, Path],
        ks: Sequence[int] = (1, 10),
        num_images: Optional[int] = None,
        seed: int = 0,
        hint_file: Optional[Union[str, Path]] = None,
        lpips: Optional[str] = "auto",
        batch_size: int = 16,
        device: Union[str, torch.device] = "cpu",
        name: str = "",
        progress: bool = False,
) -> dict[str, Any]:
    """Evaluates on a data spec and writes ``metrics.json`` and ``metrics.md`` in ``out_dir``.

    Args:
        model: the colorizer (its image size is the evaluation size).
        data: an image folder, ``shared:REL`` or ``samples`` (see ``data.resolve_data``).
        out_dir: output folder; the hint sets go to ``out_dir/hints.json`` unless ``hint_file``.
        ks: hint counts. num_images: the first images evenly spread (None: all).
        seed: seed of new hint sets. hint_file: where hint sets are read or saved.
        lpips: ``alex``, ``vgg``, ``auto`` (alex when its weights are present) or ``none``.
        batch_size: images per forward.
        device: where it runs.
        name: the model's label in the table.
        progress: show a progress bar on stderr (only when it is a terminal).

    Returns:
        What ``metrics.json`` holds: the model, data, image size, hint file, seed and the
        metrics of ``evaluate`` (images scored, files skipped, PSNR@k...), and a ``note`` when
        LPIPS was skipped or images were.
    """
    from adacolor.data import evenly_spaced, image_dataset

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    model = model.to(device)
    size = model.image_size[0]
    dataset = image_dataset(data, size, train=False)
    if num_images is not None:
        dataset = evenly_spaced(dataset, num_images)
    metric, note = _lpips_metric(lpips, device)
    hint_path = Path(hint_file) if hint_file is not None else out / "hints.json"
    hint_size = 2
    sets = hint_sets_for(hint_path, len(dataset), size, ks, hint_size, seed)
    metrics = evaluate(model, dataset, sets, ks, batch_size, metric, device, progress=progress)
    if metrics["skipped"]:
        skip_note = (f"{metrics['skipped']} of {len(dataset)} images could not be read and were skipped "
                     f"(not replaced); the {metrics['images']} others were scored; metrics.json lists them")
        note = f"{note}; {skip_note}" if note else skip_note
    label = name or (model.spec.name if model.spec is not None else "colorizer")
    result = {"model": label, "data": data, "image_size": size, "hint_file": str(hint_path),
              "seed": seed, **metrics}
    if note:
        result["note"] = note
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown_table([result], ks)
    (out / "metrics.md").write_text(f"Evaluation on `{data}` ({metrics['images']} images, {size} px, "
                                    f"hints from `{hint_path.name}`)\n\n" + table
                                    + (f"\n{note}\n" if note else ""))
    return result
