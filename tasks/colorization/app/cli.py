"""``adacolor app``: the interactive colorization page on a shipped model or a checkpoint.

    adacolor app                                # every shipped model, the default first
    adacolor app --model adacolvit-t            # one shipped model
    adacolor app --checkpoint runs/ada/checkpoint.pt --port 8001
    adacolor app --runtime openvino --threads 1   # exported graphs on OpenVINO from the first request

It prints its URL once the port accepts connections. Only argparse is imported here at module
level, so building ``adacolor``'s parser stays fast; the server and torch load in :func:`run`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
from typing import Any, Callable, Optional

__all__ = ["add_arguments", "load_models", "switch_to_fastest", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds ``app``'s options to ``parser`` (a sub-command's parser); returns it."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default=None, metavar="NAME",
                        help="serve this shipped model (adacolor list); default: all shipped models")
    source.add_argument("--checkpoint", default=None, metavar="CKPT",
                        help="serve a training checkpoint (adacolor train --out DIR writes DIR/checkpoint.pt)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; 127.0.0.1 is this machine only (the app has no login)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one")
    parser.add_argument("--max-images", type=int, default=16,  # server.DEFAULT_MAX_IMAGES, without importing it
                        help="photos kept in memory; the least recently used is dropped")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the runtime; omit for torch's choice")
    parser.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnxruntime", "openvino"],
                        help="what runs the models: torch, or their exported ONNX graphs on ONNX Runtime / "
                             "OpenVINO (pip install 'adaprune[runtimes]'); auto (default): serve on torch at once, "
                             "export each model in the background (once, cached), measure, and switch each to "
                             "the fastest installed runtime")
    return parser


def _low_priority(command: list[str]) -> list[str]:
    """``command`` run under ``nice -n 10`` where the system has ``nice``.

    Not ``preexec_fn``: a server with runtime and torch threads running should not fork and run
    Python in the child (CPython documents it as unsafe with threads); a plain command is
    started with vfork / exec instead."""
    nice = shutil.which("nice")
    return [nice, "-n", "10", *command] if nice else command


def switch_to_fastest(models: dict[str, Any], replace: Callable[[str, Any], None], threads: Optional[int],
                      say: Callable[[str], object], export_args: dict[str, list[str]]) -> None:
    """For each model: export it once (cached) in a child process at low priority (``adacolor
    export`` with ``export_args[name]``, so the server's own requests never share a process
    with the exporter's tracing), time torch and every installed runtime here, and serve it on
    the fastest (``replace(name, model)``); says one line per model. A model that cannot move (it
    does not export, no runtime installed, the export failed) stays on torch, said why."""
    from adacolor.exported import cached_graph, select_runtime

    for name, model in list(models.items()):
        try:
            if getattr(model, "backbone", None) is not None and cached_graph(model) is None:
                say(f"{name}: exporting it to ONNX in the background (once, cached; an adaptive ViT-Tiny takes "
                    f"about 2 minutes on 2 cores), serving it on torch meanwhile")
                done = subprocess.run(_low_priority([sys.executable, "-m", "adacolor", "export", *export_args[name]]),
                                      capture_output=True, text=True)
                if done.returncode != 0:
                    last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                    say(f"{name}: staying on torch (the export failed: {last})")
                    continue
            fast, line = select_runtime(model, "auto", threads, export=False)
        except Exception as error:  # noqa: BLE001 - the app keeps serving on torch whatever happened
            say(f"{name}: staying on torch ({type(error).__name__}: {error})")
            continue
        if fast is not model:
            replace(name, fast)
        say(f"{name}: {line}")


def load_models(model: Optional[str] = None, checkpoint: Optional[str] = None,
                weights_dir: Optional[str] = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The colorizers to serve and a line describing each.

    Args:
        model: a shipped model's name; None with no checkpoint: every shipped model.
        checkpoint: a training checkpoint to serve instead.
        weights_dir: where shipped models are looked for (default: the package's own).

    Returns:
        (name -> colorizer in eval mode, the default first; name -> description).

    Raises:
        ValueError: an unknown shipped model, corrupt weights, or none shipped and no
            checkpoint given.
        FileNotFoundError: no checkpoint at that path.
    """
    if checkpoint is not None:
        from adacolor.model import load_colorizer

        colorizer = load_colorizer(checkpoint)
        name = colorizer.build_args["name"]
        return {name: colorizer.eval()}, {name: f"checkpoint {checkpoint}"}

    from adacolor.weights import DEFAULT_MODEL, WEIGHTS_DIR, list_shipped, load_shipped

    directory = WEIGHTS_DIR if weights_dir is None else weights_dir
    cards = {card["name"]: card for card in list_shipped(directory)}
    if not cards:
        raise ValueError("this installation ships no trained colorizer; serve a checkpoint instead: "
                         "adacolor app --checkpoint runs/ada/checkpoint.pt (train one with adacolor train)")
    names = [model] if model is not None else sorted(cards, key=lambda n: n != DEFAULT_MODEL)
    models = {name: load_shipped(name, directory).eval() for name in names}  # ValueError names the choices
    return models, {name: str(cards[name].get("description", "")) for name in names}


def run(args: argparse.Namespace) -> int:
    """Loads the models, prints the URL and serves until Ctrl+C; returns the exit status."""
    from adacolor.app.serve import bind, serve, url_of
    from adacolor.app.server import create_app

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    models, descriptions = load_models(args.model, args.checkpoint)
    if args.runtime not in ("auto", "torch"):  # asked for: exported (once) before the first request
        from adacolor.exported import on_runtime

        models = {name: on_runtime(model, args.runtime, args.threads, say=_say) for name, model in models.items()}
    app = create_app(models, max_images=args.max_images, descriptions=descriptions)
    try:
        sock = bind(args.host, args.port)
    except OSError as error:
        raise ValueError(f"cannot listen on {args.host}:{args.port} ({error.strerror or error}); "
                         f"is another server running there? try --port 0 for any free port") from None
    url = url_of(sock)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"adacolor app: warning: listening on {args.host}, so other machines can reach this app "
              f"(it has no login)", file=sys.stderr)
    runtime = {"auto": "torch until a faster runtime is measured"}.get(args.runtime, args.runtime)
    print(f"adacolor app: serving {', '.join(models)} at {url} on {runtime}  (Ctrl+C to stop)", flush=True)
    if args.runtime == "auto":
        export_args = {name: (["--checkpoint", args.checkpoint] if args.checkpoint is not None else ["--model", name])
                       for name in models}
        threading.Thread(target=switch_to_fastest, args=(models, app.state.replace_model, args.threads, _say,
                                                         export_args), name="adacolor-runtime", daemon=True).start()
    try:
        serve(app, sock)
    except KeyboardInterrupt:
        pass
    return 0


def _say(text: str) -> None:
    print(f"adacolor app: {text}", file=sys.stderr, flush=True)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m adacolor.app.cli``: the same as ``adacolor app``."""
    parser = add_arguments(argparse.ArgumentParser(prog="adacolor app", description=__doc__.split("\n")[0]))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"adacolor app: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
