"""Each run's result kept beside the docs page, and put back into a suite's folder.

A suite's folder (``DIR``) holds checkpoints and is not committed; ``docs/results/`` is. So that a
suite can go on in a session where ``DIR`` is gone, ``write_outputs(..., docs=...)`` also keeps
every run's result there, and ``restore`` puts them back into a fresh ``DIR``:

    docs/results/runs/eval/<run>.json     DIR/eval/<run>/result.json (as written by the run)
    docs/results/runs/train/<run>.json    {"run", "placed", "differences"}: a finished training

    adacolor reproduce --scale cpu --out runs/repro --restore docs/results   # then go on

A restored evaluation counts as done and says where it came from (``restored_from``); a restored
training is recorded in ``DIR/train/<run>/restored.json`` and counts as done, but has no
checkpoint: evaluations of it that are not in the evidence are blocked until it is retrained
(delete ``restored.json``). The figures kept there are copied too, since Fig. 7 and 8 need the
compute run's images, which the evidence does not keep.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Optional, Union

from adacolor.reproduce import _read, _write, eval_dir, train_dir, training_done

__all__ = ["RESTORED", "save", "restore", "restored_training"]

RESTORED = "restored.json"     # in DIR/train/<run>/: a finished training known from the evidence only


def restored_training(folder: Path) -> Optional[dict[str, Any]]:
    """The evidence record of a training restored into ``folder`` (None: not restored)."""
    return _read(Path(folder) / RESTORED)


def save(out: Union[str, Path], evidence: Union[str, Path], settings: dict[str, Any]) -> list[str]:
    """Copies every evaluation result of ``out`` to ``evidence/runs/eval/`` and records each
    finished training (``settings``: ``results.json``'s) in ``evidence/runs/train/``.

    Returns:
        the run names written.
    """
    out, runs = Path(out), Path(evidence) / "runs"
    written = []
    for result in sorted((out / "eval").glob("*/result.json")) if (out / "eval").is_dir() else []:
        target = runs / "eval" / f"{result.parent.name}.json"
        kept = json.loads(result.read_text())
        if kept.pop("restored_from", None) is not None:   # came from evidence: kept as it was measured
            if _read(target) != kept:
                _write(target, kept)
        elif not target.is_file() or target.read_bytes() != result.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(result, target)
        written.append(result.parent.name)
    placed, differences = settings.get("placed") or {}, settings.get("trained_otherwise") or {}
    for name in settings.get("trained") or []:
        _write(runs / "train" / f"{name}.json",
               {"run": name, "placed": placed.get(name), "differences": differences.get(name, {})})
        written.append(name)
    return written


def restore(out: Union[str, Path], evidence: Union[str, Path], scale: str, runs: set[str],
            form: Optional[str] = None) -> dict[str, list[str]]:
    """Puts the results kept in ``evidence`` back into ``out`` where ``out`` has none.

    Args:
        out: the suite's folder.
        evidence: a folder written by ``save`` (``docs/results``), with its ``results.json``.
        scale: the suite's scale name; evidence of another scale is refused (ValueError).
        runs: the suite's run names; evidence of other runs is left out.
        form: the suite's form (``finetune`` / ``scratch``; None: any); evidence of another form,
            whose runs of the same names are other models, is refused (ValueError). Evidence
            written before forms existed is ``scratch``.

    Returns:
        ``{"eval": [...], "train": [...], "figures": [...]}``: what was restored.
    """
    out, evidence = Path(out), Path(evidence)
    kept = _read(evidence / "results.json")
    if kept is None or not (evidence / "runs").is_dir():
        raise FileNotFoundError(f"--restore {evidence}: no results.json and runs/ there; give the folder "
                                f"the docs page's evidence is in (e.g. docs/results)")
    if kept["settings"]["scale"] != scale:
        raise ValueError(f"--restore {evidence}: its results are of the {kept['settings']['scale']!r} scale, "
                         f"not {scale!r}")
    kept_form = kept["settings"].get("form", "scratch")
    if form is not None and kept_form != form:
        raise ValueError(f"--restore {evidence}: its results are of the {kept_form} form, not {form} (its runs "
                         f"are other models under the same names); add --form {kept_form}")
    done: dict[str, list[str]] = {"eval": [], "train": [], "figures": []}
    for path in sorted((evidence / "runs" / "eval").glob("*.json")):
        target = eval_dir(out, path.stem) / "result.json"
        if path.stem in runs and not target.is_file():
            result = json.loads(path.read_text())
            result.setdefault("restored_from", str(evidence))
            _write(target, result)
            done["eval"].append(path.stem)
    for path in sorted((evidence / "runs" / "train").glob("*.json")):
        folder = train_dir(out, path.stem)
        if path.stem in runs and not training_done(folder) and not (folder / RESTORED).is_file():
            _write(folder / RESTORED, json.loads(path.read_text()) | {"restored_from": str(evidence)})
            done["train"].append(path.stem)
    for png in sorted((evidence / "figures").glob("*.png")):
        target = out / "figures" / png.name
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, target)
            done["figures"].append(png.stem)
    return done
