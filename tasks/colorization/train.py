"""Training: AdamW with warm-up and cosine decay, periodic PSNR, atomic resumable checkpoints.

    adacolor train --recipe cpu-icolorit-t --out runs/tiny        # one process
    torchrun --nproc_per_node=2 -m adacolor train --recipe smoke --out runs/ddp

Everything random is a function of the seed and of where the run is, so that a resumed run
equals an uninterrupted one bit for bit (CPU, same thread count), and W processes equal one at
the same global batch (up to float summation order):
- the data order of an epoch is a permutation drawn from (seed, epoch); each global batch is
  cut into W contiguous shards, one per process;
- the training hints and augmentations of an item come from (seed, epoch, position in epoch);
- in-model noise (the gates' Gumbel noise, drop path) from (seed, step, rank).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Union

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from adacolor.config import BOOKKEEPING, TrainConfig, config_dict, save_config
from adacolor.data import evenly_spaced, image_dataset
from adacolor.loss import colorization_loss, huber_loss
from adacolor.model import Colorizer, colorizer_state, create_colorizer, load_colorizer, read_checkpoint

__all__ = [
    "epoch_order",
    "mix_seed",
    "HintedItems",
    "ShardBatches",
    "WarmupCosine",
    "param_groups",
    "Context",
    "StopRequest",
    "train_one_epoch",
    "train",
    "save_checkpoint",
]

CHECKPOINT = "checkpoint.pt"


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (SplitMix64 steps); different tuples give unrelated seeds."""
    state = 0x9E3779B97F4A7C15
    mask = (1 << 64) - 1
    for part in parts:
        state = (state ^ (int(part) & mask)) * 0xBF58476D1CE4E5B9 & mask
        state = (state ^ (state >> 31)) * 0x94D049BB133111EB & mask
        state ^= state >> 29
    return state >> 1


def epoch_order(num_items: int, global_batch: int, seed: int, epoch: int) -> Tensor:
    """(steps, global_batch) item indices of an epoch: a permutation drawn from (seed, epoch),
    cut into full batches (the remainder is dropped; a dataset smaller than one batch is
    repeated). Any process computes the same table."""
    generator = torch.Generator().manual_seed(mix_seed(seed, epoch, 0x0DA7A))
    order = torch.randperm(num_items, generator=generator)
    if num_items < global_batch:
        order = order.repeat(math.ceil(global_batch / num_items))
    steps = len(order) // global_batch
    return order[:steps * global_batch].view(steps, global_batch)


class HintedItems(Dataset):
    """Training items with hints: keyed by ``(index, item_seed)``.

    Returns ``{"input": (4, S, S), "ab": (2, S, S)}``; the augmentation and the hints of an item
    are drawn from ``item_seed`` alone, whatever process or worker loads it.
    """

    def __init__(self, images: Dataset, hint_config: Any) -> None:
        self.images = images
        self.hint_config = hint_config

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        from adacolor.color import lab_split
        from adacolor.hints import model_input, sample_hints

        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # random crops / flips of the image folder use torch's RNG
            rgb = self.images[index]["rgb"]
        l_norm, ab = lab_split(rgb[None])
        generator = torch.Generator().manual_seed(mix_seed(seed, 0x417))
        hint_ab, hint_mask = sample_hints(ab, self.hint_config, generator=generator)
        return {"input": model_input(l_norm, hint_ab, hint_mask)[0], "ab": ab[0]}


class ShardBatches:
    """Batch sampler: this process's shard of each global batch of the epoch, from a step on.

    Args:
        order: (steps, global_batch) from ``epoch_order``.
        seed: for the per-item seeds.
        epoch: for the per-item seeds.
        rank: this process's shard is the rank-th contiguous slice of each batch.
        world_size: this process's shard is the rank-th contiguous slice of each batch.
        start: first step to yield (steps before it were done before a resume).
    """

    def __init__(self, order: Tensor, seed: int, epoch: int, rank: int, world_size: int, start: int = 0) -> None:
        steps, global_batch = order.shape
        if global_batch % world_size:
            raise ValueError(f"batch_size {global_batch} must be divisible by the {world_size} processes")
        self.order, self.seed, self.epoch, self.start = order, seed, epoch, start
        shard = global_batch // world_size
        self.columns = range(rank * shard, (rank + 1) * shard)

    def __len__(self) -> int:
        return max(0, self.order.shape[0] - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        global_batch = self.order.shape[1]
        for step in range(self.start, self.order.shape[0]):
            yield [(int(self.order[step, c]), mix_seed(self.seed, self.epoch, step * global_batch + c))
                   for c in self.columns]


# -- optimisation -----------------------------------------------------------------------------

@dataclass
class WarmupCosine:
    """Learning-rate factor of a step: linear warm-up from 0, then cosine down to ``floor``.

    A callable object (not a lambda) so that ``LambdaLR.state_dict`` saves it.
    """

    total_steps: int
    warmup_steps: int
    floor: float = 0.0  # min_lr / lr

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: weights (decayed) and biases, norms, tokens, position embeddings (not)."""
    skip = {"pos_embed", "cls_token", "reg_token", "token"}
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.split(".")[-1] in skip:
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# -- processes --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Context:
    """Where this process runs: rank among ``world_size`` processes, and its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _start_processes(config: TrainConfig) -> tuple[Context, bool]:
    """Joins the torchrun process group when launched by torchrun. Returns the context and
    whether this call started the group (and so must end it)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda, but torch sees no CUDA GPU on this machine; use device=cpu or "
                         "device=auto (--set device=auto)")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    started = False
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
        started = True
    rank = dist.get_rank() if dist.is_initialized() else 0
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    if config.batch_size % world_size:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {world_size} processes")
    return Context(rank, world_size, device), started


def _mean_over_processes(values: dict[str, float], context: Context) -> dict[str, float]:
    if context.world_size == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64,
                     device=context.device if context.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return {k: float(v) / context.world_size for k, v in zip(keys, t.tolist())}


class StopRequest:
    """SIGINT (Ctrl-C) and SIGTERM during training, turned into a request to stop cleanly.

    While active (a ``with`` block, in the main thread), the first of these signals is only
    remembered: the loop finishes the step it is in, writes a checkpoint there and returns.
    The handlers in place before are put back at once, so a second signal acts as usual
    (Ctrl-C raises KeyboardInterrupt, SIGTERM ends the process). In other threads (where
    signals cannot be caught) nothing is installed and no stop is ever requested.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal_name: Optional[str] = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._restore()

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name
        self._restore()

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def agreed(self, context: "Context") -> bool:
        """Whether to stop now; with several processes, whether any of them was signalled (all
        must stop at the same step, since the checkpoint gathers from every process)."""
        requested = self.signal_name is not None
        if context.world_size == 1:
            return requested
        flag = torch.tensor([1.0 if requested else 0.0],
                            device=context.device if context.device.type == "cuda" else "cpu")
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() > 0 and self.signal_name is None:
            self.signal_name = "a signal to another process"
        return bool(flag.item() > 0)


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the training process (which stops after its step);
    a worker that died of it would end the run before the checkpoint is written."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _bare(model: nn.Module) -> Colorizer:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# -- the loop ---------------------------------------------------------------------------------

def train_one_epoch(
        model: nn.Module,
        loader: Iterable[dict[str, Tensor]],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        config: TrainConfig,
        context: Context,
        step: int,
        after_step: Optional[Callable[[int, dict[str, float]], bool]] = None,
        teacher: Optional[nn.Module] = None,
) -> dict[str, Any]:
    """Trains on the batches of ``loader`` (one epoch, or what is left of it).

    Args:
        model: the colorizer, or its DDP wrapper.
        loader: batches ``{"input": (b, 4, S, S), "ab": (b, 2, S, S)}``, b = this process's shard.
        optimizer: stepped once per batch.
        scheduler: stepped once per batch.
        config: the loss options, ``clip_grad`` and ``seed``.
        context: rank and device.
        step: global steps done before this call.
        after_step: called with (step, loss terms) after each step (terms averaged over the
            processes); returning True stops the epoch there.
        teacher: a frozen colorizer (eval mode) whose ab is a second target, weighted by
            ``config.distill_weight`` (the ``"distill"`` term); None: none.

    Returns:
        ``{"step": last step done, "stopped": bool, "steps": steps run, "loss": mean, ...}``
        (mean loss terms over the steps run, averaged over processes).
    """
    model.train()
    bare = _bare(model)
    sums: dict[str, float] = {}
    steps, stopped = 0, False
    for batch in loader:
        step += 1
        torch.manual_seed(mix_seed(config.seed, step, context.rank, 0x5EED))  # gate noise, drop path
        x = batch["input"].to(context.device, non_blocking=True)
        target = batch["ab"].to(context.device, non_blocking=True)
        pred = model(x)
        terms = colorization_loss(bare, pred, target, delta=config.huber_delta,
                                  sparsity_weight=config.sparsity_weight,
                                  beta_patch=config.beta_patch, beta_layer=config.beta_layer,
                                  budget=config.budget, budget_spread=config.budget_spread)
        if teacher is not None:
            with torch.no_grad():
                taught = teacher(x)
            terms["distill"] = huber_loss(pred, taught, config.huber_delta)
            terms["loss"] = terms["loss"] + config.distill_weight * terms["distill"]
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        if config.clip_grad is not None:
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
        optimizer.step()
        scheduler.step()
        values = _mean_over_processes({k: float(v.detach()) for k, v in terms.items()}, context)
        if not all(math.isfinite(v) for v in values.values()):
            raise FloatingPointError(f"loss is not finite at step {step}: {values}; lower lr (now "
                                     f"{config.learning_rate:g}) or set clip_grad")
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        steps += 1
        if after_step is not None and after_step(step, values):
            stopped = True
            break
    return {"step": step, "steps": steps, "stopped": stopped,
            **{k: v / max(1, steps) for k, v in sums.items()}}


def _rng_state() -> dict[str, Any]:
    """This process's RNG states as plain Python values (bytes, ints, tuples): they pickle
    through ``all_gather_object`` and load with ``torch.load(weights_only=True)``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": bytes(torch.get_rng_state().tolist()),
            "numpy": (name, keys.tolist(), int(pos), int(has_gauss), float(cached)),
            "python": random.getstate(),
            "cuda": [bytes(s.tolist()) for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(list(state["torch"]), dtype=torch.uint8))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(list(s), dtype=torch.uint8) for s in state["cuda"]])


def save_checkpoint(state: dict[str, Any], path: Union[str, Path]) -> Path:
    """Writes ``state`` with torch.save to a temporary file, then renames it over ``path``: a
    reader (or a resume after a kill) sees the old checkpoint or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def _append_log(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    """Drops log lines past ``step``: what a killed run logged after its last checkpoint."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(line + "\n" for line in lines if json.loads(line).get("step", 0) <= step))


def _check_resumable(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    current = config_dict(config)
    changed = sorted(k for k in current if k not in BOOKKEEPING and saved.get(k) != current[k])
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
        raise ValueError(f"{path} was written with another config ({detail}); resume with the same "
                         f"settings, or train into a new --out directory")


def _initialize(model: Colorizer, source: str, out: Path, log_path: Path, context: Context) -> None:
    """Loads ``--init`` weights into a fresh model and records what was done (main process)."""
    from adacolor.initialize import initialize_from

    report = initialize_from(model, source)
    if context.is_main:
        record = report.as_dict()
        _append_log(log_path, {"step": 0, "init": record})
        (out / "init.json").write_text(json.dumps({**record, "loaded_keys": report.loaded, "new_keys": report.new,
                                                   "dropped_keys": report.dropped}, indent=2) + "\n")
        with open(out / "config.yaml", "a") as f:
            f.write(f"# init: {report.summary()}\n")
        tqdm.write(f"init: {report.summary()}")


def _teacher_state(source: str) -> dict[str, Any]:
    """The ``--init`` model as a checkpoint dict, to distil from."""
    from adacolor.initialize import read_init_source

    teacher = read_init_source(source)
    return {"model_args": teacher.model_args, "model": teacher.state}


def train(config: TrainConfig, out_dir: Union[str, Path], resume: bool = True,
          stop_at_step: Optional[int] = None) -> dict[str, Any]:
    """Trains ``config`` into ``out_dir``; picks up ``out_dir/checkpoint.pt`` when present.

    Writes ``config.yaml``, ``checkpoint.pt`` (model, optimizer, scheduler, RNG states, data
    position), ``log.jsonl`` (training and evaluation lines) and, at the end, ``metrics.json``.
    With ``config.init`` the model starts from those trained weights (``adacolor.initialize``):
    what was loaded, resampled and newly initialised is the first line of ``log.jsonl``, a
    comment at the end of ``config.yaml`` and ``init.json``.

    Args:
        config: the run.
        out_dir: output folder (made if missing).
        resume: continue from the checkpoint in ``out_dir`` when there is one; False starts
            over (and overwrites).
        stop_at_step: return after this global step without saving anything more, as if
            killed there (tests, and time-boxed runs that resume later).

    SIGINT (Ctrl-C) or SIGTERM, when called from the main thread, stops the run after the
    current step with a checkpoint at that step (see ``StopRequest``); running the same call
    again resumes it, and the result equals an uninterrupted run.

    Returns:
        ``{"step", "out_dir", "checkpoint", "metrics" (the last evaluation; empty off rank 0),
        "train" (mean loss terms of the last epoch run), "stopped", "interrupted" (the signal's
        name, e.g. ``"SIGINT"``, or None), "rank"}``.

    Raises:
        ValueError: a bad config for this machine (``device=cuda`` without CUDA), data that
            cannot be used, or a checkpoint in ``out_dir`` that cannot be read or resumed.
    """
    from adacolor.evaluate import evaluate
    from adacolor.hints import HintConfig, make_eval_hint_sets

    out = Path(out_dir)
    context, started = _start_processes(config)
    try:
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        if context.is_main:
            out.mkdir(parents=True, exist_ok=True)
            save_config(config, out / "config.yaml")
        checkpoint_path, log_path = out / CHECKPOINT, out / "log.jsonl"

        torch.manual_seed(config.seed)  # the same initial weights in every process
        model = create_colorizer(config.model, **config.model_options()).to(context.device)
        hint_config = HintConfig(max_hints=config.max_hints, min_hints=config.min_hints,
                                 min_size=config.hint_size, max_size=config.hint_size)
        images = image_dataset(config.data, config.image_size, train=True)
        items = HintedItems(images, hint_config)
        steps_per_epoch = epoch_order(len(images), config.batch_size, config.seed, 0).shape[0]
        total_steps = config.max_steps if config.max_steps is not None else config.epochs * steps_per_epoch
        lr = config.learning_rate
        optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=lr, betas=config.adam_betas)
        schedule = WarmupCosine(total_steps, int(round(config.warmup * total_steps)), min(1.0, config.min_lr / lr))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

        step = 0
        if resume and checkpoint_path.is_file():
            state = read_checkpoint(checkpoint_path, map_location=str(context.device))
            missing = sorted({"model", "optimizer", "scheduler", "rng", "step", "config"} - set(state))
            if missing:
                raise ValueError(f"checkpoint {checkpoint_path} is not a training checkpoint (no "
                                 f"{', '.join(missing)}); train into a new --out, or pass --no-resume")
            _check_resumable(state["config"], config, checkpoint_path)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            step = int(state["step"])
            rng = state["rng"]
            _set_rng_state(rng[context.rank] if len(rng) == context.world_size else rng[0])
            if context.is_main:
                _truncate_log(log_path, step)
        elif context.is_main and log_path.exists():
            log_path.unlink()
        if config.init is not None and step == 0:
            _initialize(model, config.init, out, log_path, context)
        teacher = None
        if config.distill_weight:
            teacher = load_colorizer(_teacher_state(config.init)).to(context.device).requires_grad_(False)
            if teacher.image_size != model.image_size:
                raise ValueError(f"distill_weight: the --init model works at {teacher.image_size[0]} px, this run at "
                                 f"{config.image_size}; distil from a model of the run's image size")

        if context.world_size > 1:
            ddp_model: nn.Module = nn.parallel.DistributedDataParallel(
                model, device_ids=[context.device.index] if context.device.type == "cuda" else None)
        else:
            ddp_model = model

        val_set = evenly_spaced(image_dataset(config.val_data or config.data, config.image_size, train=False),
                                config.val_images)
        size = config.image_size
        hint_sets = make_eval_hint_sets(len(val_set), size, size, config.eval_hints, size=config.hint_size,
                                        seed=config.seed) if context.is_main else None

        def evaluate_now(at: int) -> dict[str, Any]:
            metrics: dict[str, Any] = {}
            if context.is_main:
                metrics = evaluate(model, val_set, hint_sets, ks=config.eval_hints, device=context.device)
                metrics = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
                _append_log(log_path, {"step": at, "epoch": at / steps_per_epoch, "eval": metrics})
                model.train()
            if context.world_size > 1:
                dist.barrier()
            return metrics

        def checkpoint_now(at: int) -> None:
            rng = [_rng_state()]
            if context.world_size > 1:
                gathered: list[Any] = [None] * context.world_size
                dist.all_gather_object(gathered, rng[0])
                rng = gathered
            if context.is_main:
                save_checkpoint({
                    **colorizer_state(model),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rng,
                    "step": at,
                    "epoch": at // steps_per_epoch,
                    "step_in_epoch": at % steps_per_epoch,
                    "steps_per_epoch": steps_per_epoch,
                    "total_steps": total_steps,
                    "world_size": context.world_size,
                    "config": config_dict(config),
                }, checkpoint_path)
            if context.world_size > 1:
                dist.barrier()

        bar = tqdm(total=total_steps, initial=step, desc=config.model, unit="step", dynamic_ncols=True,
                   disable=None if context.is_main else True)  # None: drawn only on a terminal
        metrics: dict[str, Any] = {}
        last: dict[str, Any] = {}
        window = {"time": time.perf_counter(), "step": step}

        def after_step(at: int, values: dict[str, float]) -> bool:
            nonlocal metrics
            bar.update(1)
            bar.set_postfix(loss=f"{values['loss']:.4f}")
            end_of_epoch = at % steps_per_epoch == 0
            if context.is_main and (at % config.log_every == 0 or at == total_steps):
                now = time.perf_counter()
                rate = (at - window["step"]) * config.batch_size / max(1e-9, now - window["time"])
                window.update(time=now, step=at)
                _append_log(log_path, {"step": at, "epoch": at / steps_per_epoch,
                                       "lr": optimizer.param_groups[0]["lr"], "img_per_s": rate, **values})
            if stop_at_step is not None and at >= stop_at_step:
                return True
            if at == total_steps:
                return True
            stopping = stop.agreed(context)
            if not stopping and ((config.eval_every and at % config.eval_every == 0)
                                 or (not config.eval_every and end_of_epoch)):
                metrics = evaluate_now(at)
            if stopping or (config.checkpoint_every and at % config.checkpoint_every == 0) or \
                    (not config.checkpoint_every and end_of_epoch):
                checkpoint_now(at)
            return stopping

        with StopRequest() as stop:
            while step < total_steps:
                epoch, start = divmod(step, steps_per_epoch)
                order = epoch_order(len(images), config.batch_size, config.seed, epoch)
                batches = ShardBatches(order, config.seed, epoch, context.rank, context.world_size, start)
                loader = DataLoader(items, batch_sampler=batches, num_workers=config.num_workers,
                                    pin_memory=context.device.type == "cuda",
                                    worker_init_fn=_ignore_sigint if config.num_workers else None)
                last = train_one_epoch(ddp_model, loader, optimizer, scheduler, config, context, step,
                                       after_step, teacher)
                step = last["step"]
                interrupted = last["stopped"] and stop.signal_name is not None and step < total_steps
                if interrupted or (last["stopped"] and stop_at_step is not None and step >= stop_at_step
                                   and step < total_steps):
                    bar.close()
                    return {"step": step, "out_dir": str(out), "checkpoint": str(checkpoint_path),
                            "metrics": metrics, "train": last, "stopped": True,
                            "interrupted": stop.signal_name if interrupted else None, "rank": context.rank}
        bar.close()
        metrics = evaluate_now(step)
        checkpoint_now(step)
        if context.is_main:
            (out / "metrics.json").write_text(json.dumps({"step": step, **metrics}, indent=2) + "\n")
        return {"step": step, "out_dir": str(out), "checkpoint": str(checkpoint_path), "metrics": metrics,
                "train": last, "stopped": False, "interrupted": None, "rank": context.rank}
    finally:
        if started:
            dist.destroy_process_group()
