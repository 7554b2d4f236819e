"""The training loop behind ``jpegsr train CONFIG.yaml``.

Reads top to bottom: set up (optionally distributed) -> data cache -> model, EMA, Adam ->
resume from the last checkpoint -> iterate (bf16 autocast, channels_last) with CSV logs,
validation on held-out training images and atomic checkpoints -> export safetensors.
Exact resume: batches depend only on (seed, iteration, rank) and the checkpoint holds the
model, EMA and optimizer state, so a run killed and resumed logs the same losses as one
that never stopped.
"""

from __future__ import annotations

import csv
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from tqdm import tqdm

from jpegsr import models
from jpegsr.config import ConfigError, OptimConfig, TrainConfig, to_dict
from jpegsr.data import (
    DataError,
    Triplet,
    TripletStore,
    build_triplets,
    list_images,
    split_train_val,
)
from jpegsr.metrics import PSNR
from jpegsr.train_step import TrainStep
from jpegsr.weights_io import load_model, save_weights

LOG_FIELDS = ["iteration", "loss", "sr", "recover", "cycle", "lr", "sec_per_iter"]


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


def _load_data(config: TrainConfig) -> tuple[list[Triplet], list[Triplet]]:
    paths = [p for d in config.data.train_dirs for p in list_images(d)]
    if not paths:
        raise DataError(f"no images found in {config.data.train_dirs}")
    train_paths, val_paths = split_train_val(paths, config.data.val_count)
    qualities = sorted(set(config.data.qualities))
    train = build_triplets(
        train_paths, config.data.scale, qualities, config.data.lr_patch, config.data.hr_scales
    )
    val = build_triplets(val_paths, config.data.scale, [config.data.val_quality], 8)
    if not train:
        raise DataError(f"no training image is at least {config.data.lr_patch} px after downscale")
    return train, val


@torch.no_grad()
def validate(model: nn.Module, val: list[Triplet], config: TrainConfig) -> float:
    """Mean Y-PSNR (border = scale) of the model's SR on held-out training images."""
    model.eval()
    psnr = PSNR(border=config.data.scale)
    scores = []
    for t in val:
        src = t.compressed[config.data.val_quality] if config.data.input == "compressed" else t.lr
        x = torch.from_numpy(src.copy()).permute(2, 0, 1)[None].float().to(config.device) / 255
        with torch.autocast(config.device, dtype=torch.bfloat16, enabled=config.bf16):
            sr = models.sr_output(model(x)).float().cpu()
        hr = torch.from_numpy(t.hr.copy()).permute(2, 0, 1)[None].float() / 255
        scores.append(float(psnr(sr, hr)))
    model.train()
    return float(np.mean(scores)) if scores else float("nan")


def _machine(config: TrainConfig, world: int) -> str:
    """Where the run trained, for the model card."""
    where = f"{platform.machine()} {os.cpu_count()} cpu"
    if config.device == "cuda":
        where += f", {torch.cuda.get_device_name()}"
    return f"{where}, world {world}"


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _truncate_log(path: Path, after: int) -> None:
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


def _append_row(path: Path, fields: list[str], row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerow(row)


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train per ``config``; returns the exported weights path."""
    rank, world = _distributed()
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda, but torch sees no GPU; use device: cpu")
    if config.batch_size % world:
        raise ConfigError(f"batch_size {config.batch_size} is not divisible by {world} ranks")
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = config.run_dir
    ckpt_path = run_dir / "checkpoint.pt"
    if ckpt_path.exists() and not resume:
        raise ConfigError(f"{run_dir} already has a checkpoint; pass --resume or another name")
    run_dir.mkdir(parents=True, exist_ok=True)

    train_set, val_set = _load_data(config)
    store = TripletStore(train_set, config.data.scale, config.device)
    del train_set  # the store holds the pixels now
    torch.manual_seed(config.seed)
    model = models.build(config.model, config.data.scale)
    if config.init_from:
        model.load_state_dict(load_model(config.init_from).module.state_dict())
    step = TrainStep(model, config, world)

    start = 0
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=config.device, weights_only=True)
        step.load_state(state)
        start = int(state["iteration"])
        elapsed_before = float(state.get("wall_seconds", 0.0))
    else:
        elapsed_before = 0.0
    log_path, val_path = run_dir / "train_log.csv", run_dir / "val_log.csv"
    if rank == 0:
        _truncate_log(log_path, start)
        _truncate_log(val_path, start)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))

    per_rank = config.batch_size // world
    bar = tqdm(
        total=config.iterations,
        initial=start,
        disable=not progress or rank != 0,
        desc=config.name,
        dynamic_ncols=True,
    )
    t0, t_last, it_last = time.time(), time.perf_counter(), start
    if config.device == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop shapes: pick the fastest kernels once
    for it in range(start, config.iterations):
        pixels = store.batch(per_rank, config.data.lr_patch, config.seed, it, rank)
        lr_now = learning_rate(config.optim, it, config.iterations)
        out = step(pixels, lr_now, it)
        done = it + 1
        bar.update(1)
        # reading a loss makes a GPU wait: only at log points
        if rank == 0 and (done % config.log_every == 0 or done == config.iterations):
            now = time.perf_counter()
            row = {"iteration": done, "loss": f"{float(out.loss):.6f}", "lr": f"{lr_now:.3e}"}
            row.update({k: f"{float(v):.6f}" for k, v in out.terms.items()})
            row["sec_per_iter"] = f"{(now - t_last) / (done - it_last):.4f}"
            t_last, it_last = now, done
            _append_row(log_path, LOG_FIELDS, row)
            bar.set_postfix(loss=row["loss"])
        if rank == 0 and (done % config.val_every == 0 or done == config.iterations):
            score = validate(step.exported, val_set, config)
            _append_row(
                val_path, ["iteration", "val_psnr"], {"iteration": done, "val_psnr": f"{score:.4f}"}
            )
        if done % config.checkpoint_every == 0 or done == config.iterations:
            if rank == 0:
                state = step.state()
                state["iteration"] = done
                state["wall_seconds"] = elapsed_before + time.time() - t0
                _save_checkpoint(ckpt_path, state)
            if world > 1:
                dist.barrier()
    bar.close()

    weights_path = run_dir / "model.safetensors"
    if rank == 0:
        wall = elapsed_before + time.time() - t0
        save_weights(
            step.exported,
            config.model,
            config.data.scale,
            weights_path,
            extra={
                "run": config.name,
                "iterations": str(config.iterations),
                "wall_seconds": f"{wall:.0f}",
                "machine": _machine(config, world),
                "device": config.device,
                "train_dirs": ",".join(config.data.train_dirs),
                "qualities": ",".join(map(str, config.data.qualities)),
                "input": config.data.input,
            },
        )
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return weights_path
