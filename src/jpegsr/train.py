"""The training loop behind ``jpegsr train CONFIG.yaml``.

:func:`train` reads as numbered steps: 1. the run (optionally distributed) -> 2. the data,
stored on the training device -> 3. model, EMA, Adam (resumed from the last checkpoint) ->
4. iterate :class:`jpegsr.train_step.TrainStep` with CSV logs, validation on held-out
training images and atomic checkpoints when due -> 5. export safetensors.
Exact resume: batches depend only on (seed, iteration, rank) and the checkpoint holds the
model, EMA and optimizer state, so a run killed and resumed logs the same losses as one
that never stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from tqdm import tqdm

from jpegsr import models
from jpegsr.config import ConfigError, DenoiserTrainConfig, OptimConfig, TrainConfig, to_dict
from jpegsr.data import (
    DataError,
    Triplet,
    TripletStore,
    build_triplets,
    list_images,
    map_compressed,
    split_train_val,
)
from jpegsr.denoisers import DEFAULT_DENOISER, make_denoiser
from jpegsr.inference import bf16_is_fast
from jpegsr.metrics import PSNR
from jpegsr.perf import cpu_model, widest_isa
from jpegsr.train_step import TrainStep
from jpegsr.weights_io import load_model, save_weights

LOG_FIELDS = ["iteration", "loss", "sr", "recover", "cycle", "lr", "sec_per_iter"]


def log_fields(config: TrainConfig) -> list[str]:
    """The training log's columns: the SSIM term's only where it is on (older logs resume)."""
    return LOG_FIELDS + ["ssim"] * bool(config.loss.ssim)


def learning_rate(cfg: OptimConfig, iteration: int, total: int) -> float:
    """The learning rate at ``iteration``: warmup, then step halving or cosine."""
    if cfg.warmup and iteration < cfg.warmup:
        return cfg.lr * (iteration + 1) / cfg.warmup
    if cfg.schedule == "step":
        return cfg.lr * 0.5 ** (iteration // cfg.halve_every)
    progress = (iteration - cfg.warmup) / max(1, total - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def load_data(config: TrainConfig) -> tuple[list[Triplet], list[Triplet]]:
    paths = [p for d in config.data.train_dirs for p in list_images(d)]
    if not paths:
        raise DataError(f"no images found in {config.data.train_dirs}")
    train_paths, val_paths = split_train_val(paths, config.data.val_count)
    train_paths += [p for d in config.data.extra_train_dirs for p in list_images(d)]
    qualities = sorted(set(config.data.qualities))
    train = build_triplets(
        train_paths, config.data.scale, qualities, config.data.lr_patch, config.data.hr_scales
    )
    val = build_triplets(val_paths, config.data.scale, [config.data.val_quality], 8)
    if not train:
        raise DataError(f"no training image is at least {config.data.lr_patch} px after downscale")
    if config.data.input == "denoised":  # the (M) rows: the same DnCNN as `dncnn+` at test
        denoise = make_denoiser(DEFAULT_DENOISER)
        train, val = map_compressed(train, denoise), map_compressed(val, denoise)
    return train, val


@torch.no_grad()
def validate(model: nn.Module, val: list[Triplet], config: TrainConfig) -> float:
    """Mean Y-PSNR (border = scale) of the model's SR on held-out training images."""
    model.eval()
    descriptor = models.describe(config.model, config.data.scale)
    psnr = PSNR(border=config.data.scale)
    scores = []
    for t in val:
        src = t.lr if config.data.input == "clean" else t.compressed[config.data.val_quality]
        x = torch.from_numpy(src.copy()).permute(2, 0, 1)[None].float().to(config.device) / 255
        with torch.autocast(config.device, dtype=torch.bfloat16, enabled=config.bf16):
            sr = descriptor.sr(model(x)).float().cpu()
        hr = torch.from_numpy(t.hr.copy()).permute(2, 0, 1)[None].float() / 255
        scores.append(float(psnr(sr, hr)))
    model.train()
    return float(np.mean(scores)) if scores else float("nan")


def machine_description(config: TrainConfig, world: int = 1) -> str:
    """Where and how the run trained, for the model card: the GPU or CPU model, cores, ranks
    and the arithmetic (bf16 autocast or fp32; see :func:`native_precision`)."""
    host = f"{platform.machine()}, {os.cpu_count()} cpu"
    if config.device == "cuda":
        chip = torch.cuda.get_device_name()
    else:  # one model name ("AMD EPYC") covers chips with and without native bf16
        chip, host = cpu_model(), f"{host}, {widest_isa() or 'no avx2'}"
    precision = "bf16" if config.bf16 else "fp32"
    return f"{chip} ({host}), world {world}, {precision}"


_TConfig = TypeVar("_TConfig", TrainConfig, DenoiserTrainConfig)


def native_precision(config: _TConfig) -> _TConfig:
    """``bf16: true`` asks for bf16 autocast where the device runs it natively (a GPU, or a
    CPU with AVX-512 BF16 or AMX): there it is much faster than fp32 at the same quality.
    A CPU without it (AVX2 only) emulates bf16 many times slower than fp32
    (``benchmarks/train_speed.md``), so there the run trains in fp32 and says so once; the
    machine spans record which arithmetic trained which iterations."""
    if not config.bf16 or bf16_is_fast(torch.device(config.device)):
        return config
    print(
        f"jpegsr: train: {cpu_model()} has no native bf16 (AVX-512 BF16 or AMX): "
        "training in fp32 instead (bf16 would be emulated, many times slower)",
        file=sys.stderr,
    )
    return dataclasses.replace(config, bf16=False)


def with_span(spans: list[list], machine: str, first: int, last: int) -> list[list]:
    """A run's machines as ``[machine, first, last]`` iteration spans, extended by one more
    (merged into the last span when the same machine simply went on)."""
    if spans and spans[-1][0] == machine and spans[-1][2] == first:
        return [*spans[:-1], [machine, spans[-1][1], last]]
    return [*spans, [machine, first, last]]


def describe_spans(spans: list[list]) -> str:
    """One machine's name, or which machine trained which iterations of a resumed run."""
    if len(spans) == 1:
        return str(spans[0][0])
    return "; ".join(f"{m}: iterations {a:,}-{b:,}" for m, a, b in spans)


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def truncate_log(path: Path, after: int) -> None:
    """Drop log rows past the checkpoint so a resumed run's log has no duplicates."""
    if not path.exists():
        return
    with path.open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        fields = reader.fieldnames or LOG_FIELDS
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(r for r in rows if int(r["iteration"]) <= after)


def append_row(path: Path, fields: list[str], row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerow(row)


def run_metadata(
    config: TrainConfig, iterations: int, wall_seconds: float, machine: str
) -> dict[str, str]:
    """What a run's weights file records about the run (model cards and budgets read it)."""
    d = config.data
    meta = {
        "run": config.name,
        "iterations": str(iterations),
        "batch_size": str(config.batch_size),
        "lr_patch": str(d.lr_patch),
        "wall_seconds": f"{wall_seconds:.0f}",
        "machine": machine,
        "device": config.device,
        "train_dirs": ",".join(d.train_dirs),
        "qualities": ",".join(map(str, d.qualities)),
        "input": d.input,
    }
    if d.quality_weights:
        meta["quality_weights"] = ",".join(f"{w:g}" for w in d.quality_weights)
    if d.extra_train_dirs:
        meta["extra_train_dirs"] = ",".join(d.extra_train_dirs)
    return meta


@dataclass
class Run:
    """Where a run stands: its folder, ranks, the iteration it (re)starts at, its clock."""

    dir: Path
    rank: int
    world: int
    start: int = 0
    seconds_before: float = 0.0  # wall time of the run before this resume
    machines: list[list] = field(default_factory=list)  # [machine, first, last] before it
    t0: float = field(default_factory=time.time)

    @property
    def checkpoint(self) -> Path:
        return self.dir / "checkpoint.pt"

    @property
    def seconds(self) -> float:
        return self.seconds_before + time.time() - self.t0


def open_run(config: TrainConfig, resume: bool) -> Run:
    rank, world = _distributed()
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda, but torch sees no GPU; use device: cpu")
    if config.batch_size % world:
        raise ConfigError(f"batch_size {config.batch_size} is not divisible by {world} ranks")
    if isinstance(config, TrainConfig) and config.cuda_graph:  # a denoiser has no graph
        if config.device != "cuda" or world > 1 or config.compile:
            raise ConfigError("cuda_graph needs device: cuda, one process and compile: false")
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.device == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop shapes: pick the fastest kernels once
    run = Run(config.run_dir, rank, world)
    if run.checkpoint.exists() and not resume:
        raise ConfigError(f"{run.dir} already has a checkpoint; pass --resume or another name")
    run.dir.mkdir(parents=True, exist_ok=True)
    return run


def _build_step(config: TrainConfig, run: Run, asked: TrainConfig) -> TrainStep:
    """``config`` as run (:func:`native_precision`); ``asked``, as the user wrote it, is what
    the run folder's config.yaml keeps, so a resume on another machine decides afresh."""
    torch.manual_seed(config.seed)
    model = models.build(config.model, config.data.scale)
    if config.init_from:
        model.load_state_dict(load_model(config.init_from).module.state_dict())
    step = TrainStep(model, config, run.world)
    if run.checkpoint.exists():  # only reached with resume (see open_run)
        state = torch.load(run.checkpoint, map_location=config.device, weights_only=True)
        step.load_state(state)
        run.start = int(state["iteration"])
        run.seconds_before = float(state.get("wall_seconds", 0.0))
        unrecorded = [["machine not recorded", 0, run.start]] if run.start else []
        run.machines = state.get("machines", unrecorded)
    if run.rank == 0:
        truncate_log(run.dir / "train_log.csv", run.start)
        truncate_log(run.dir / "val_log.csv", run.start)
        (run.dir / "config.yaml").write_text(yaml.safe_dump(to_dict(asked), sort_keys=False))
    return step


class _Board:
    """TensorBoard scalars beside the CSV logs (losses, lr, s/iter, validation PSNR) when the
    ``tensorboard`` package is installed; nothing otherwise."""

    def __init__(self, folder: Path | None) -> None:
        self.writer = None
        if folder is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self.writer = SummaryWriter(str(folder))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class TrainingStopped(Exception):
    """The run was asked to stop (Ctrl-C, SIGTERM) and saved a checkpoint where it stopped."""

    def __init__(self, signal_name: str, iteration: int, checkpoint: Path) -> None:
        super().__init__(
            f"stopped by {signal_name} after iteration {iteration}; checkpoint saved in "
            f"{checkpoint.parent} (the same command with --resume continues exactly)"
        )
        self.signal_name, self.iteration, self.checkpoint = signal_name, iteration, checkpoint


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM ask the loop to stop after the current iteration, with a
    checkpoint there, instead of losing everything since the last one; a second signal stops
    at once. Only in the main thread of a one-process run: the ranks of a distributed run
    must stop together, so they keep the default behaviour."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if self.enabled:
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        if self.signal_name is not None:  # asked again: stop now
            signal.signal(signum, self._previous[signum])  # type: ignore[arg-type]
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *_: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def _due(done: int, every: int, config: TrainConfig) -> bool:
    return done % every == 0 or done == config.iterations


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train per ``config``; returns the exported weights path."""
    # 1. the run: ranks, device, folder (refusing to overwrite one without --resume)
    run = open_run(config, resume)
    # 2. the data, degraded once and stored on the training device
    train_set, val_set = load_data(config)
    store = TripletStore(
        train_set, config.data.scale, config.device, config.data.quality_probabilities()
    )
    del train_set
    # 3. model, EMA, optimizer, loss in the arithmetic this device runs fast; state and logs
    #    from the checkpoint when resuming
    asked, config = config, native_precision(config)
    step = _build_step(config, run, asked)
    # 4. iterate: one step per batch; log, validate and checkpoint when due
    main_rank = run.rank == 0
    bar = tqdm(total=config.iterations, initial=run.start, desc=config.name,
               disable=not progress or not main_rank, dynamic_ncols=True)  # fmt: skip
    board = _Board(run.dir / "tensorboard" if main_rank else None)
    machine = machine_description(config, run.world)
    try:
        with StopRequest(enabled=run.world == 1) as stop:
            _iterate(config, run, store, step, val_set, bar, board, machine, stop)
    finally:
        bar.close()
        board.close()
    # 5. export the weights (the EMA when kept) with the run's metadata
    weights_path = run.dir / "model.safetensors"
    if main_rank:
        spans = with_span(run.machines, machine, run.start, config.iterations)
        meta = run_metadata(config, config.iterations, run.seconds, describe_spans(spans))
        save_weights(step.exported, config.model, config.data.scale, weights_path, extra=meta)
    if run.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return weights_path


def _iterate(
    config: TrainConfig,
    run: Run,
    store: TripletStore,
    step: TrainStep,
    val_set: list[Triplet],
    bar: tqdm,
    board: _Board,
    machine: str,
    stop: StopRequest,
) -> None:
    """Step 4 of :func:`train`: the iterations from ``run.start``, with logs, validation and
    checkpoints when due, and a checkpoint wherever ``stop`` asks the run to end early."""
    per_rank = config.batch_size // run.world
    main_rank = run.rank == 0
    t_last, it_last = time.perf_counter(), run.start
    for it in range(run.start, config.iterations):
        pixels = store.batch(per_rank, config.data.lr_patch, config.seed, it, run.rank)
        lr_now = learning_rate(config.optim, it, config.iterations)
        out = step(pixels, lr_now, it)
        done = it + 1
        bar.update(1)
        if main_rank and _due(done, config.log_every, config):
            # reading a loss makes a GPU wait: only here
            now = time.perf_counter()
            row = {"iteration": done, "loss": f"{float(out.loss):.6f}", "lr": f"{lr_now:.3e}"}
            row.update({k: f"{float(v):.6f}" for k, v in out.terms.items()})
            row["sec_per_iter"] = f"{(now - t_last) / (done - it_last):.4f}"
            t_last, it_last = now, done
            append_row(run.dir / "train_log.csv", log_fields(config), row)
            board.scalars(done, {k: float(v) for k, v in row.items() if k != "iteration"})
            bar.set_postfix(loss=row["loss"])
        if main_rank and val_set and _due(done, config.val_every, config):
            score = validate(step.exported, val_set, config)
            append_row(run.dir / "val_log.csv", ["iteration", "val_psnr"],
                        {"iteration": done, "val_psnr": f"{score:.4f}"})  # fmt: skip
            board.scalars(done, {"val_psnr": score})
        stopping = stop.signal_name is not None and done < config.iterations
        if _due(done, config.checkpoint_every, config) or stopping:
            if main_rank:
                spans = with_span(run.machines, machine, run.start, done)
                state = step.state() | {
                    "iteration": done,
                    "wall_seconds": run.seconds,
                    "machines": spans,
                }
                save_checkpoint(run.checkpoint, state)
            if run.world > 1:
                dist.barrier()
        if stopping:
            raise TrainingStopped(str(stop.signal_name), done, run.checkpoint)
