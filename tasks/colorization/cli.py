"""``adacolor``: train, evaluate, colorize and benchmark user-guided colorization ViTs.

    adacolor demo --out runs/demo                         # smoke training, evaluation, one photo
    adacolor train --recipe cpu-icolorit-t --set epochs=2 --out runs/tiny
    adacolor evaluate --checkpoint runs/tiny/checkpoint.pt --data shared:imagenette/val --out runs/tiny/eval
    adacolor colorize photo.jpg --random-hints 10 --out colorized.png   # the shipped model (--model / --checkpoint)
    adacolor bench --models icolorit-t,adacolvit-t --out runs/bench
    adacolor list                                         # recipes and models

Every anticipated mistake (a bad file, checkpoint, recipe, option value, device or hint) is one
line on stderr naming what was wrong and what is accepted, with exit status 2; Ctrl-C or
SIGTERM during training saves a checkpoint and exits with 130 / 143. This module imports
only the standard library: torch and the models are imported inside the commands that need
them, so ``--help``, ``--version``, ``list`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, NoReturn, Optional, Sequence

__all__ = ["main", "build_parser"]

# What a command raises for a bad input (a file, a value, a device): one line and exit status 2.
# Anything else is a bug and keeps its traceback.
# FloatingPointError: a training whose loss turned non-finite (the message says what to lower)
ANTICIPATED_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
                      FileExistsError, FloatingPointError)
USAGE_ERROR = 2


# -- argument types ------------------------------------------------------------------------

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


def _integer(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
    return value


def _positive(text: str) -> int:
    return _integer(text, 1)


def _non_negative(text: str) -> int:
    return _integer(text, 0)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value:g}")
    return value


def _device(text: str) -> str:
    kind, _, index = text.partition(":")
    if kind == "cpu" and not index or kind == "cuda" and (not index or index.isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")


def _folder(text: str) -> str:
    """An output folder: made when missing, refused when a file is in the way."""
    path = Path(text)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} cannot be a folder: {str(part)!r} is a file")
    return text


# -- the parser ----------------------------------------------------------------------------

class _HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default after its help (except where there is none to show:
    required options, flags, None, empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or not action.option_strings or action.required or default is None
                or default is False or default is argparse.SUPPRESS or default == "" or default == []):
            return text
        return f"{text} (default: %(default)s)"


class _RawHelpFormatter(argparse.RawDescriptionHelpFormatter, _HelpFormatter):
    """As ``_HelpFormatter``, keeping the line breaks of the description and epilog."""


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line (``adacolor train: error: ...``) and exit status 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Version(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the version and exit", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("adaprune")
        except PackageNotFoundError:
            number = "unknown (not installed)"
        print(f"adacolor {number}")
        parser.exit(0)


def _model_choice(parser: argparse.ArgumentParser) -> None:
    """``--model NAME`` (a shipped trained model, the default one when neither is given) or
    ``--checkpoint CKPT``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model", default=None, metavar="NAME",
                       help="a shipped trained model (adacolor list); default: the package's default model")
    group.add_argument("--checkpoint", default=None, help="a checkpoint.pt written by adacolor train")


def _runtime_option(parser: argparse.ArgumentParser, default: str) -> None:
    """``--runtime {auto,torch,onnxruntime,openvino}`` (``auto`` only where it is the default)."""
    choices = (["auto"] if default == "auto" else []) + ["torch", "onnxruntime", "openvino"]
    extra = ("; auto: the fastest installed here, measured once per model and thread count, among those "
             "it need not export" if default == "auto" else "")
    parser.add_argument("--runtime", default=default, choices=choices,
                        help=f"what runs the model: torch, or its exported ONNX graph on ONNX Runtime / OpenVINO "
                             f"(pip install 'adaprune[runtimes]'; the graph is exported once and cached){extra}")


def _runtimes(text: str) -> list[str]:
    """A comma-separated list of runtimes."""
    names = [item.strip() for item in text.split(",") if item.strip()]
    accepted = ("torch", "onnxruntime", "openvino")
    wrong = [name for name in names if name not in accepted]
    if not names or wrong:
        raise argparse.ArgumentTypeError(f"{', '.join(wrong) or 'nothing'}: not a runtime; accepted: "
                                         f"{', '.join(accepted)}, comma-separated")
    return list(dict.fromkeys(names))


def _on_runtime(model: Any, args: argparse.Namespace) -> Any:
    """``model`` on ``args.runtime`` (``adacolor.exported.select_runtime``), said in one line."""
    if args.runtime == "torch":
        return model
    from adacolor.exported import select_runtime

    try:
        source = f"--checkpoint {args.checkpoint}" if args.checkpoint is not None else f"--model {_shipped_name(args)}"
        model, line = select_runtime(model, args.runtime, getattr(args, "threads", None), say=_say,
                                     export_command=f"adacolor export {source}")
    except (TypeError, ImportError) as error:  # a model that does not export, a runtime not installed
        raise ValueError(str(error)) from None
    _say(line)
    return model


def _shipped_name(args: argparse.Namespace) -> str:
    """The shipped model ``--model`` names (the default one without it)."""
    if args.model is not None:
        return args.model
    from adacolor.weights import DEFAULT_MODEL

    return DEFAULT_MODEL


def _load_model(args: argparse.Namespace) -> Any:
    """The colorizer ``--model`` / ``--checkpoint`` name (the default shipped model without either)."""
    if args.checkpoint is not None:
        from adacolor.model import load_colorizer

        return load_colorizer(args.checkpoint)
    from adacolor.weights import load_shipped

    return load_shipped(args.model)


def _image_path(text: str) -> str:
    """A photo path, with ``sample:NAME`` resolved to scikit-image's bundled file."""
    if text.startswith("sample:"):
        from adacolor.data import sample_photo_path

        return str(sample_photo_path(text[len("sample:"):]))
    return text


def _check_input_file(path: Optional[str], missing: str) -> None:
    """FileNotFoundError ``missing`` when ``path`` (None: not given) is not a file, PermissionError
    when it cannot be read: told before torch is imported (seconds), not after it."""
    if path is None:
        return
    if not Path(path).is_file():
        raise FileNotFoundError(missing)
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{path}: permission denied (the file cannot be read)")


def _check_checkpoint(path: Optional[str]) -> None:
    """A missing ``--checkpoint`` in the words ``read_checkpoint`` uses, before torch is imported."""
    _check_input_file(path, f"no checkpoint at {path}; train one with `adacolor train --out DIR` "
                            f"(it writes DIR/checkpoint.pt)")


def _check_writable(path: Optional[str], option: str) -> None:
    """An output file's folder: its nearest existing ancestor must be a folder this user can write in."""
    if path is None:
        return
    folder = next(parent for parent in Path(path).absolute().parents if parent.exists())
    if not folder.is_dir():
        raise ValueError(f"{option} {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {path}: cannot write in {folder} (permission denied)")


def _check_colorize_paths(args: argparse.Namespace) -> None:
    """The files ``colorize`` reads and the folders it writes in, checked with the standard
    library only: a mistyped path is told at once, not after torch's import (seconds)."""
    if not args.image.startswith("sample:"):
        _check_input_file(args.image, f"no image at {args.image}")
    _check_input_file(args.hint_file, f"no hint file at {args.hint_file}")
    _check_checkpoint(args.checkpoint)
    _check_writable(args.out, "--out")
    _check_writable(args.figure, "--figure")


_HINTS_EPILOG = """\
hint file (--hints): JSON, a list of points in the photo's own pixel coordinates
(or {"hints": [...]}). Each point has "x" and "y" (pixels); optionally "size", the
side of its square at the model's resolution (an integer 2 to 7, default 2); and
one colour, "rgb" (three numbers 0-255) or "ab" (Lab a and b, each within +-110).
A point without a colour takes the photo's own colour there (grey on a grey photo).
Any other key is an error. For example (the app's "Save hints" writes this format):

  [{"x": 120, "y": 64, "rgb": [200, 30, 30]},
   {"x": 40, "y": 200, "size": 5, "ab": [10.0, 45.0]},
   {"x": 5, "y": 9}]

examples:
  adacolor colorize sample:astronaut --random-hints 10 --out colorized.png
  adacolor colorize photo.jpg --hints hints.json --out colorized.png --figure figure.png
"""


def _quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (none is drawn when stderr is not a terminal)")


def build_parser() -> argparse.ArgumentParser:
    """The ``adacolor`` argument parser with its sub-commands."""
    parser = _Parser(prog="adacolor", description=__doc__.split("\n")[0].replace("``", ""),
                     epilog="\n".join(__doc__.split("\n")[2:9]), formatter_class=_RawHelpFormatter)
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a colorizer from a recipe",
                                description="Train a colorizer from a recipe; run it again to resume. Ctrl-C or "
                                            "SIGTERM saves a checkpoint at the current step and exits.")
    train.add_argument("--recipe", default="smoke", help="a shipped recipe name (adacolor list) or a YAML path")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field (repeatable), e.g. --set epochs=2 --set lr=1e-3")
    train.add_argument("--out", required=True, type=_folder,
                       help="output folder: config.yaml, checkpoint.pt, log.jsonl, metrics.json")
    train.add_argument("--no-resume", action="store_true", help="start over even if --out has a checkpoint")
    train.add_argument("--init", default=None, metavar="CHECKPOINT|shipped:NAME",
                       help="start from trained weights (same as --set init=...): a checkpoint.pt or a shipped "
                            "model; what fits loads, position embeddings are resampled to the run's grid, "
                            "gates and a head of another kind start new (log.jsonl and config.yaml say which)")

    evaluate = commands.add_parser("evaluate", help="PSNR@k / LPIPS@k / GFLOPs of a checkpoint",
                                   description="Score a checkpoint on fixed hint sets; unreadable images are "
                                               "skipped and counted in metrics.json, never replaced.")
    _model_choice(evaluate)
    evaluate.add_argument("--data", required=True, help="image folder, shared:REL, or 'samples'")
    evaluate.add_argument("--hints", type=_counts, default="1,10", help="hint counts k, comma-separated")
    evaluate.add_argument("--out", required=True, type=_folder,
                          help="output folder: metrics.json, metrics.md, hints.json")
    evaluate.add_argument("--images", type=_positive, default=None,
                          help="evaluate this many images, spread evenly (default: all)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of newly drawn hint sets")
    evaluate.add_argument("--hint-file", default=None,
                          help="hint sets to reuse or create (default: OUT/hints.json)")
    evaluate.add_argument("--lpips", default="auto", choices=["auto", "alex", "vgg", "none"],
                          help="auto: AlexNet-LPIPS when its weights are present")
    evaluate.add_argument("--batch-size", type=_positive, default=16, help="images per forward")
    evaluate.add_argument("--image-size", type=_positive, default=None,
                          help="score at this size (default: the model's); a model of another size sees the "
                               "photos and hints resized to its own and its ab is resized back (bilinear)")
    evaluate.add_argument("--device", type=_device, default="cpu", help="cpu, cuda or cuda:N")
    _runtime_option(evaluate, "torch")
    _quiet(evaluate)

    colorize = commands.add_parser("colorize", help="colorize one image of any size",
                                   description="Colorize one image at its own size from hint points.",
                                   epilog=_HINTS_EPILOG, formatter_class=_RawHelpFormatter)
    colorize.add_argument("image", help="the input photo (colour or greyscale, any size), or sample:NAME for "
                                        "a photo bundled with scikit-image (sample:astronaut, sample:coffee ...)")
    _model_choice(colorize)
    hints = colorize.add_mutually_exclusive_group(required=True)
    hints.add_argument("--hints", dest="hint_file", default=None,
                       help="JSON hint points in the image's pixel coordinates (format: below)")
    hints.add_argument("--random-hints", type=_non_negative, default=None, metavar="K",
                       help="K hints drawn from the image's own colours")
    colorize.add_argument("--out", required=True,
                          help="the colorized image, the input's size (.png, .jpg, .tif, .bmp ...)")
    colorize.add_argument("--figure", default=None, help="also save a side-by-side figure here (.png, .pdf ...)")
    colorize.add_argument("--seed", type=int, default=0, help="seed of --random-hints")
    _runtime_option(colorize, "auto")
    colorize.add_argument("--threads", type=_positive, default=None, help="CPU threads of the runtime (default: "
                                                                             "torch's choice)")
    colorize.add_argument("--upsample", default="guided", choices=["guided", "bilinear"],
                          help="how the model's colour reaches the photo's size: guided by the photo's own "
                               "lightness (colour stops at its edges) or plain bilinear")
    _quiet(colorize)

    bench = commands.add_parser("bench", help="single-thread batch-1 latency and GFLOPs",
                                description="Latency (median after warm-up) and GFLOPs of colorizers, in one "
                                            "process, on one photo with 10 hints.")
    bench.add_argument("--models", type=_names, default="", help="comma-separated registered names")
    bench.add_argument("--checkpoint", action="append", default=[], help="a trained checkpoint (repeatable)")
    bench.add_argument("--out", default=None, type=_folder, help="folder for bench.json (default: print only)")
    bench.add_argument("--runtimes", type=_runtimes, default="torch",
                       help="comma-separated runtimes to time each model on: torch, onnxruntime, openvino "
                            "(the last two run its exported graph, cached after the first export)")
    bench.add_argument("--data", default=None, help="time on photos of this image folder, shared:REL or "
                                                    "'samples' (default: scikit-image's astronaut)")
    bench.add_argument("--images", type=_positive, default=20, help="--data: how many photos, spread evenly")
    bench.add_argument("--json", default=None, metavar="PATH",
                       help='write {"rows": [{"model", "runtime", "threads", "latency_ms", "latency_std_ms", '
                            '"gflops"}, ...]} here')
    bench.add_argument("--image-size", type=_positive, default=224,
                       help="size of the --models (checkpoints keep theirs)")
    bench.add_argument("--threads", type=_positive, default=1, help="torch threads while timing")
    bench.add_argument("--warmup", type=_non_negative, default=10, help="untimed runs per model")
    bench.add_argument("--runs", type=_positive, default=50, help="timed runs per model")
    bench.add_argument("--policy", default="learned", choices=["learned", "keep_all", "drop_all", "random"],
                       help="decisions of adaptive models (random: a stand-in for trained gates)")
    bench.add_argument("--patch-keep", type=_fraction, default=0.5, help="--policy random: tokens kept")
    bench.add_argument("--layer-keep", type=_fraction, default=1.0, help="--policy random: sub-layers run")
    _quiet(bench)

    export = commands.add_parser("export", help="write a colorizer as one ONNX graph, its decisions inside",
                                 description="Export a colorizer (backbone, head, tanh) at batch 1 and its image "
                                             "size; an adaptive one decides per image inside the graph and also "
                                             "outputs its decisions (layer_keep, token_keep, gflops).")
    _model_choice(export)
    export.add_argument("--format", default="onnx", choices=["onnx"], help="the graph format")
    export.add_argument("--out", default=None,
                        help="the file to write (.onnx); default: the cache that --runtime reads "
                             "($ADAPRUNE_CACHE or ~/.cache/adaprune)")
    export.add_argument("--opset", type=_positive, default=18, help="ONNX opset (18 or later)")

    demo = commands.add_parser("demo", help="smoke training, evaluation and one colorized photo")
    demo.add_argument("--out", required=True, type=_folder, help="output folder")

    commands.add_parser("list", help="shipped recipes and registered models, one line each")

    # -- sub-commands defined in other modules: they import only the standard library at
    #    module level (the parser is built for every call, --help included) --
    from adacolor.reproduce import add_arguments as reproduce_arguments  # standard library only at import
    reproduce_arguments(commands.add_parser("reproduce", help="the paper's comparisons: runs, results.json, "
                                                              "report.md, figures"))
    from adacolor.app.cli import add_arguments as app_arguments  # standard library only at import
    app_arguments(commands.add_parser("app", help="the interactive web app: click colour hints on a photo",
                                      description="Serve the interactive colorization page (prints its URL)."))
    return parser


# -- the commands --------------------------------------------------------------------------

def _check_device(device: str, option: str) -> None:
    """ValueError naming ``option`` when ``device`` is CUDA and torch sees no GPU."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"{option} {device}: torch sees no CUDA GPU on this machine; use {option} cpu")


def _train(args: argparse.Namespace) -> int:
    from adacolor.config import make_config
    from adacolor.train import train
    from adacolor.weights import SHIPPED_PREFIX

    if args.init is not None and not args.init.startswith(SHIPPED_PREFIX):
        _check_checkpoint(args.init)
    config = make_config(args.recipe, args.overrides + ([f"init={args.init}"] if args.init is not None else []))
    result = train(config, args.out, resume=not args.no_resume)
    if result.get("interrupted"):
        if result["rank"] == 0:
            _say(f"stopped by {result['interrupted']} at step {result['step']}; checkpoint: {result['checkpoint']}; "
                 f"resume with: {_resume_command(args)}")
        return 130 if result["interrupted"] == "SIGINT" else 143
    if result["rank"] != 0:
        return 0
    if result.get("metrics"):
        _say(f"trained {config.model} for {result['step']} steps: "
             + ", ".join(f"{k} {v:.3f}" for k, v in result["metrics"].items() if isinstance(v, float)))
    _say(f"checkpoint: {result['checkpoint']}")
    return 0


def _resume_command(args: argparse.Namespace) -> str:
    """The command that continues an interrupted ``adacolor train`` (the same, less --no-resume)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "the same torchrun command again (without --no-resume)"
    words = ["adacolor", "train", "--recipe", args.recipe]
    for item in args.overrides:
        words += ["--set", item]
    if args.init is not None:
        words += ["--init", args.init]
    return shlex.join(words + ["--out", args.out])


def _evaluate(args: argparse.Namespace) -> int:
    _check_checkpoint(args.checkpoint)  # before torch is imported
    _check_device(args.device, "--device")
    from adacolor.data import resolve_data
    from adacolor.evaluate import run_evaluation
    resolve_data(args.data)  # a missing folder is reported before the model is loaded
    model = _load_model(args)
    name = model.build_args["name"]
    model = _on_runtime(model, args)
    if args.image_size is not None and args.image_size != model.image_size[0]:
        from adacolor.model import ResizedColorizer
        model = ResizedColorizer(model, args.image_size)
    result = run_evaluation(model, args.data, args.out, ks=args.hints, num_images=args.images, seed=args.seed,
                            hint_file=args.hint_file, lpips=args.lpips, batch_size=args.batch_size,
                            device=args.device, name=name, progress=not args.quiet)
    print((Path(args.out) / "metrics.md").read_text(), end="")
    if "note" in result:
        _say(result["note"])
    print(f"wrote {Path(args.out) / 'metrics.json'}")
    return 0


def _colorize(args: argparse.Namespace) -> int:
    _check_colorize_paths(args)  # standard library only: before colorize_file's import brings torch
    import warnings

    from adacolor.colorize import GreyPhotoWarning, colorize_file

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GreyPhotoWarning)
        paths = colorize_file(_image_path(args.image), lambda: _on_runtime(_load_model(args), args), args.out,
                              hint_file=args.hint_file, random_hints=args.random_hints, figure=args.figure,
                              seed=args.seed, progress=not args.quiet, upsample=args.upsample)
    for warning in caught:  # ours as one line; any other shown as Python would have shown it
        if issubclass(warning.category, GreyPhotoWarning):
            _say(f"warning: {warning.message}")
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    for checkpoint in args.checkpoint:  # before torch is imported
        _check_checkpoint(checkpoint)
    _check_writable(args.json, "--json")
    if args.data is not None:
        from adacolor.data import resolve_data

        resolve_data(args.data)  # a missing folder is told before any model loads
    from adacolor.bench import run_bench

    run_bench(args.models, args.checkpoint, args.out, args.image_size, args.threads, args.warmup, args.runs,
              args.policy, args.patch_keep, args.layer_keep, progress=not args.quiet, runtimes=args.runtimes,
              json_path=args.json, say=_say, data=args.data, images=args.images)
    return 0


def _export(args: argparse.Namespace) -> int:
    _check_checkpoint(args.checkpoint)  # before torch is imported
    _check_writable(args.out, "--out")
    if args.out is not None and Path(args.out).is_dir():
        raise IsADirectoryError(f"--out {args.out} is a folder; give the file to write (.onnx)")
    from adacolor.export import export_colorizer
    from adacolor.exported import export_cached

    model = _load_model(args)
    try:
        if args.out is None:
            if args.opset != 18:
                raise ValueError("--opset applies to --out files; the cache holds opset-18 graphs")
            path = export_cached(model, say=_say)
        else:
            path = export_colorizer(model, args.out, opset=args.opset)
    except (TypeError, ImportError) as error:  # a model or method it cannot handle, a missing extra: one line
        raise ValueError(str(error)) from None
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, {args.format}, opset {args.opset})")
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
    if result.get("interrupted"):
        _say(f"stopped by {result['interrupted']} at step {result['step']}; run the same command again to resume")
        return 130 if result["interrupted"] == "SIGINT" else 143
    _say("2/3 evaluating it (PSNR@1, PSNR@10)")
    model = load_colorizer(result["checkpoint"])
    run_evaluation(model, "samples", out / "eval", ks=(1, 10), name=model.build_args["name"], progress=True)
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
    """Recipes and models with one line each; reads files and tables only (no torch)."""
    import importlib

    from adacolor.catalog import MODEL_DESCRIPTIONS
    from adacolor.config import list_recipes, recipe_description

    def table(title: str, rows: Sequence[tuple[str, str]]) -> None:
        print(title)
        width = max((len(name) for name, _ in rows), default=0)
        for name, text in rows:
            print(f"  {name:<{width}}  {text}".rstrip())

    table("recipes (adacolor train --recipe NAME):", [(name, recipe_description(name)) for name in list_recipes()])
    table("models (adacolor train --set model=NAME):", list(MODEL_DESCRIPTIONS.items()))
    list_shipped = getattr(importlib.import_module("adacolor.weights"), "list_shipped", None)
    if list_shipped is not None:
        shipped = [(card["name"], card.get("description", "")) for card in list_shipped()]
        table("shipped trained models (in the package):", shipped or [("(none yet)", "")])
    return 0


def _say(text: str) -> None:
    print(f"[adacolor] {text}", file=sys.stderr, flush=True)


def _reproduce(args: argparse.Namespace) -> int:
    from adacolor.reproduce import run

    return run(args)


def _app(args: argparse.Namespace) -> int:
    from adacolor.app.cli import run

    return run(args)


_COMMANDS = {"train": _train, "evaluate": _evaluate, "colorize": _colorize, "bench": _bench,
             "export": _export, "demo": _demo, "list": _list, "reproduce": _reproduce, "app": _app}


def _one_line(error: BaseException) -> str:
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs ``adacolor`` with ``argv`` (default: the command line); returns the exit status.

    0: done. 2: a bad argument, file, checkpoint, recipe, option value, device or hint, told in
    one line on stderr (``adacolor COMMAND: error: ...``). 130 / 143: stopped by Ctrl-C /
    SIGTERM (training saves a checkpoint first). An unexpected exception keeps its traceback.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or an argument error already printed
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else USAGE_ERROR)
    try:
        return _COMMANDS[args.command](args)
    except ANTICIPATED_ERRORS as error:
        print(f"adacolor {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"\nadacolor {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
