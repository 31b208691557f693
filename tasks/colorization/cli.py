"""``adacolor``: train, evaluate, colorize and benchmark user-guided colorization ViTs.

    adacolor demo --out runs/demo                         # smoke training, evaluation, one photo
    adacolor train --recipe cpu-icolorit-t --set epochs=2 --out runs/tiny
    adacolor evaluate --checkpoint runs/tiny/checkpoint.pt --data shared:imagenette/val --out runs/tiny/eval
    adacolor colorize photo.jpg --checkpoint runs/tiny/checkpoint.pt --random-hints 10 --out colorized.png
    adacolor bench --models icolorit-t,adacolvit-t --out runs/bench
    adacolor list                                         # recipes and models
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["main", "build_parser"]


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated hint counts like 1,10,100, got {text!r}") from None
    if not counts or any(k < 1 for k in counts):
        raise argparse.ArgumentTypeError(f"hint counts must be positive integers, got {text!r}")
    return counts


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The ``adacolor`` argument parser with its sub-commands."""
    parser = argparse.ArgumentParser(prog="adacolor", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[2:]))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a colorizer from a recipe")
    train.add_argument("--recipe", default="smoke", help="a shipped recipe name (adacolor list) or a YAML path")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field (repeatable), e.g. --set epochs=2 --set lr=1e-3")
    train.add_argument("--out", required=True, help="output folder: config.yaml, checkpoint.pt, log.jsonl")
    train.add_argument("--no-resume", action="store_true", help="start over even if --out has a checkpoint")

    evaluate = commands.add_parser("evaluate", help="PSNR@k / LPIPS@k / GFLOPs of a checkpoint")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--data", required=True, help="image folder, shared:REL, or 'samples'")
    evaluate.add_argument("--hints", type=_counts, default=(1, 10), help="hint counts k (default 1,10)")
    evaluate.add_argument("--out", required=True, help="output folder: metrics.json, metrics.md, hints.json")
    evaluate.add_argument("--images", type=int, default=None, help="evaluate this many images, spread evenly")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of newly drawn hint sets")
    evaluate.add_argument("--hint-file", default=None, help="hint sets to reuse or create (default OUT/hints.json)")
    evaluate.add_argument("--lpips", default="auto", choices=["auto", "alex", "vgg", "none"],
                          help="auto: AlexNet-LPIPS when its weights are present")
    evaluate.add_argument("--batch-size", type=int, default=16)
    evaluate.add_argument("--device", default="cpu")

    colorize = commands.add_parser("colorize", help="colorize one image of any size")
    colorize.add_argument("image")
    colorize.add_argument("--checkpoint", required=True)
    hints = colorize.add_mutually_exclusive_group(required=True)
    hints.add_argument("--hints", dest="hint_file", default=None,
                       help="JSON hint points in the image's pixel coordinates")
    hints.add_argument("--random-hints", type=int, default=None, metavar="K",
                       help="K hints drawn from the image's own colours")
    colorize.add_argument("--out", required=True, help="the colorized image (same size as the input)")
    colorize.add_argument("--figure", default=None, help="also save a side-by-side figure here")
    colorize.add_argument("--seed", type=int, default=0)

    bench = commands.add_parser("bench", help="single-thread batch-1 latency and GFLOPs")
    bench.add_argument("--models", type=_names, default=[], help="comma-separated registered names")
    bench.add_argument("--checkpoint", action="append", default=[], help="a trained checkpoint (repeatable)")
    bench.add_argument("--out", default=None, help="folder for bench.json")
    bench.add_argument("--image-size", type=int, default=224, help="size of the --models (checkpoints keep theirs)")
    bench.add_argument("--threads", type=int, default=1)
    bench.add_argument("--warmup", type=int, default=10)
    bench.add_argument("--runs", type=int, default=50)
    bench.add_argument("--policy", default="learned", choices=["learned", "keep_all", "drop_all", "random"],
                       help="decisions of adaptive models (random: a stand-in for trained gates)")
    bench.add_argument("--patch-keep", type=float, default=0.5)
    bench.add_argument("--layer-keep", type=float, default=1.0)

    demo = commands.add_parser("demo", help="smoke training, evaluation and one colorized photo")
    demo.add_argument("--out", required=True)

    commands.add_parser("list", help="shipped recipes and registered models")
    return parser


def _train(args: argparse.Namespace) -> int:
    from adacolor.config import make_config
    from adacolor.train import train

    config = make_config(args.recipe, args.overrides)
    result = train(config, args.out, resume=not args.no_resume)
    if result["rank"] != 0:
        return 0
    if result.get("metrics"):
        _say(f"trained {config.model} for {result['step']} steps: "
             + ", ".join(f"{k} {v:.3f}" for k, v in result["metrics"].items() if isinstance(v, float)))
    _say(f"checkpoint: {result['checkpoint']}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from adacolor.evaluate import run_evaluation
    from adacolor.model import load_colorizer

    model = load_colorizer(args.checkpoint)
    result = run_evaluation(model, args.data, args.out, ks=args.hints, num_images=args.images, seed=args.seed,
                            hint_file=args.hint_file, lpips=args.lpips, batch_size=args.batch_size,
                            device=args.device, name=model.build_args["name"])
    print((Path(args.out) / "metrics.md").read_text(), end="")
    if "note" in result:
        print(result["note"], file=sys.stderr)
    print(f"wrote {Path(args.out) / 'metrics.json'}")
    return 0


def _colorize(args: argparse.Namespace) -> int:
    from adacolor.colorize import colorize_file

    paths = colorize_file(args.image, args.checkpoint, args.out, hint_file=args.hint_file,
                          random_hints=args.random_hints, figure=args.figure, seed=args.seed)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from adacolor.bench import run_bench

    run_bench(args.models, args.checkpoint, args.out, args.image_size, args.threads, args.warmup, args.runs,
              args.policy, args.patch_keep, args.layer_keep)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from adacolor.colorize import colorize_file, save_image
    from adacolor.config import make_config
    from adacolor.data import sample_photos
    from adacolor.evaluate import run_evaluation
    from adacolor.model import load_colorizer
    from adacolor.train import train

    out = Path(args.out)
    start = time.perf_counter()
    _say("1/3 training the smoke recipe on scikit-image's photos")
    result = train(make_config("smoke"), out / "train")
    _say("2/3 evaluating it (PSNR@1, PSNR@10)")
    model = load_colorizer(result["checkpoint"])
    run_evaluation(model, "samples", out / "eval", ks=(1, 10), name=model.build_args["name"])
    _say("3/3 colorizing a photo at its full size with 10 hints")
    photo = out / "photo.png"
    save_image(sample_photos(None)[0]["rgb"], photo)
    paths = colorize_file(photo, result["checkpoint"], out / "colorized.png", random_hints=10,
                          figure=out / "colorized_figure.png")
    print((out / "eval" / "metrics.md").read_text(), end="")
    print(f"\ndone in {time.perf_counter() - start:.0f} s; results in {out}/")
    print(f"  checkpoint : {result['checkpoint']}")
    print(f"  training   : {out / 'train' / 'log.jsonl'} (config: {out / 'train' / 'config.yaml'})")
    print(f"  metrics    : {out / 'eval' / 'metrics.json'}, {out / 'eval' / 'metrics.md'}")
    for kind, path in paths.items():
        print(f"  {kind:<11}: {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from adacolor.config import list_recipes
    from adacolor.model import list_colorizers

    print("recipes: " + ", ".join(list_recipes()))
    print("models:  " + ", ".join(list_colorizers()))
    return 0


def _say(text: str) -> None:
    print(f"[adacolor] {text}", file=sys.stderr, flush=True)


_COMMANDS = {"train": _train, "evaluate": _evaluate, "colorize": _colorize, "bench": _bench,
             "demo": _demo, "list": _list}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs ``adacolor`` with ``argv`` (default: the command line); returns the exit status.

    Mistakes in the arguments or files (ValueError, FileNotFoundError, TypeError raised for
    what was given) print ``adacolor: error: ...`` and return 2.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError) as error:
        print(f"adacolor {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
