"""Ship a trained checkpoint: ``python -m adacolor.weights export CKPT --name NAME --description TEXT``.

    python -m adacolor.weights export runs/cpu-adacolvit-t/checkpoint.pt --name adacolvit-t-cpu \\
        --description "AdaColViT-T, 112 px, Imagenette (cpu recipe)" --metrics runs/eval/metrics.json
    python -m adacolor.weights list

The card records the checkpoint's training config and step, and the metrics file's numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence


def _training_facts(checkpoint: Path) -> dict:
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    facts = {"step": state.get("step")}
    if isinstance(state.get("config"), dict):
        config = state["config"]
        keep = ("model", "data", "image_size", "head", "init", "distill_weight", "batch_size", "epochs", "lr", "budget",
                "budget_spread", "beta_patch", "beta_layer", "min_hints", "max_hints", "hint_size", "seed")
        facts["config"] = {key: config[key] for key in keep if key in config}
    return facts


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the ``export`` or ``list`` sub-command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m adacolor.weights", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write NAME.safetensors (float16 or int8) and NAME.json")
    export.add_argument("checkpoint", type=Path)
    export.add_argument("--name", required=True)
    export.add_argument("--description", required=True, help="one line for `adacolor list`")
    export.add_argument("--metrics", type=Path, action="append", default=[],
                        help="an `adacolor evaluate` metrics.json to record on the card (repeatable)")
    export.add_argument("--recipe", default=None, help="the recipe the checkpoint was trained with")
    export.add_argument("--directory", type=Path, default=None, help="default: the package's weights folder")
    export.add_argument("--dtype", default="float16", choices=["float16", "int8"],
                        help="storage: float16, or int8 per-channel for the large weights (the rest float16)")
    commands.add_parser("list", help="the shipped models' cards")
    args = parser.parse_args(argv)

    from adacolor.weights import WEIGHTS_DIR, export_weights, list_shipped

    if args.command == "list":
        for card in list_shipped():
            print(f"{card['name']:<20} {card['bytes'] / 2**20:5.1f} MiB  {card['description']}")
        return 0
    try:
        extra = {"training": {"recipe": args.recipe, **_training_facts(args.checkpoint)},
                 "metrics": [json.loads(p.read_text()) for p in args.metrics]}
        card = export_weights(args.checkpoint, args.name, args.description,
                              directory=args.directory or WEIGHTS_DIR, extra=extra, dtype=args.dtype)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"python -m adacolor.weights export: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {card['weights']} ({card['bytes'] / 2**20:.1f} MiB, sha256 {card['sha256'][:12]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
