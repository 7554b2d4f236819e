"""Training a blind Gaussian denoiser (the (M) rows' DnCNN): ``jpegsr train configs/dncnn.yaml``.

:func:`train_denoiser` reads as numbered steps: 1. the run folder (refusing to overwrite one
without --resume) -> 2. grayscale training images, stored once as one padded uint8 tensor on
the training device -> 3. model and Adam, resumed from the last checkpoint -> 4. iterate: a
batch of transformed crops with Gaussian noise of a random strength per crop, mean squared
error, CSV log and held-out PSNR, atomic checkpoints -> 5. export safetensors.
Exact resume: crops, strengths and noise depend only on (seed, iteration).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from tqdm import tqdm

from jpegsr import degrade, models
from jpegsr.config import DenoiserTrainConfig, to_dict
from jpegsr.data import (
    N_TRANSFORMS,
    DataError,
    list_images,
    read_rgb,
    split_train_val,
    transform_grid,
)
from jpegsr.denoisers import centre_crop, gray
from jpegsr.train import (
    Run,
    StopRequest,
    TrainingStopped,
    append_row,
    learning_rate,
    machine_description,
    native_precision,
    open_run,
    save_checkpoint,
    truncate_log,
)
from jpegsr.train_step import make_optimizer
from jpegsr.weights_io import save_weights

LOG_FIELDS = ["iteration", "loss", "lr", "val_psnr_sigma25", "sec_per_iter"]
VAL_SIGMA = 25.0  # the held-out PSNR logged while training (0..255 scale)
VAL_CROP = 128  # centre crops of the held-out images, to keep the check cheap


class GrayStore:
    """Grayscale training images as one padded (N, H, W) uint8 tensor on the device (portrait
    images turned a quarter); :meth:`batch` cuts transformed crops by one gather."""

    def __init__(self, images: list[np.ndarray], device: str | torch.device = "cpu") -> None:
        if not images:
            raise DataError("no training images to store")
        upright = [np.rot90(a) if a.shape[0] > a.shape[1] else a for a in images]
        self.sizes = np.array([a.shape for a in upright])
        h, w = self.sizes.max(axis=0)
        pixels = np.zeros((len(upright), h, w), np.uint8)
        for i, a in enumerate(upright):
            pixels[i, : a.shape[0], : a.shape[1]] = a
        self.device = torch.device(device)
        self.pixels = torch.from_numpy(pixels).to(self.device)
        self._grids: dict[int, torch.Tensor] = {}

    def batch(
        self, batch_size: int, patch: int, sigma_max: float, seed: int, iteration: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(clean, noisy) float crops (N, 1, patch, patch) in [0, 1] (noisy unclipped): a pure
        function of (seed, iteration)."""
        if (self.sizes < patch).any():
            raise DataError(f"a stored image is smaller than the {patch} px patch")
        rng = np.random.default_rng([seed, iteration])
        image = rng.integers(len(self.sizes), size=batch_size)
        y = rng.integers(0, self.sizes[image, 0] - patch + 1)
        x = rng.integers(0, self.sizes[image, 1] - patch + 1)
        transform = rng.integers(N_TRANSFORMS, size=batch_size)
        sigma = rng.uniform(0.0, sigma_max, size=batch_size) / 255
        noise = rng.standard_normal((batch_size, 1, patch, patch), dtype=np.float32)
        if patch not in self._grids:
            self._grids[patch] = torch.from_numpy(transform_grid(patch)).to(self.device)
        g = self._grids[patch][torch.from_numpy(transform).to(self.device)]
        idx = torch.from_numpy(np.stack([image, y, x])).to(self.device)
        rows = idx[1][:, None, None] + g[..., 0]
        cols = idx[2][:, None, None] + g[..., 1]
        clean = self.pixels[idx[0][:, None, None], rows, cols][:, None].float() / 255
        scaled = torch.from_numpy(noise * sigma[:, None, None, None].astype(np.float32))
        return clean, clean + scaled.to(self.device)


def split_paths(config: DenoiserTrainConfig) -> tuple[list[Path], list[Path]]:
    """(training, held-out) image files of a run: the held-out ones are never trained on."""
    paths = [p for d in config.train_dirs for p in list_images(d)]
    if not paths:
        raise DataError(f"no images found in {config.train_dirs}")
    return split_train_val(paths, config.val_count)


def _load_images(config: DenoiserTrainConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Grayscale training images (with their downscaled copies) and held-out centre crops."""
    train_paths, val_paths = split_paths(config)
    train = []
    for path in train_paths:
        rgb = read_rgb(path)
        for s in config.hr_scales:
            img = gray(rgb if s == 1.0 else degrade.imresize(rgb, scale=s))
            if min(img.shape) >= config.patch:
                train.append(img)
    val = [centre_crop(gray(read_rgb(path)), VAL_CROP) for path in val_paths]
    return train, val


@torch.no_grad()
def _held_out_psnr(model: nn.Module, val: list[np.ndarray], device: str) -> float:
    """Mean PSNR of the model on the held-out crops under fixed noise of VAL_SIGMA."""
    model.eval()
    scores = []
    for i, clean in enumerate(val):
        noise = np.random.default_rng([1234, i]).standard_normal(clean.shape) * VAL_SIGMA
        x = torch.from_numpy(clean).float()[None, None].to(device) / 255
        noisy = x + torch.from_numpy(noise).float()[None, None].to(device) / 255
        out = model(noisy).clamp(0, 1)
        scores.append(float(10 * torch.log10(1 / torch.mean((out - x) ** 2))))
    model.train()
    return float(np.mean(scores)) if scores else float("nan")


def _build(
    config: DenoiserTrainConfig, run: Run, asked: DenoiserTrainConfig
) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(config.seed)
    model = models.build(config.model, 1).to(config.device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config.optim.lr, config.optim.betas)
    if run.checkpoint.exists():  # only reached with resume (see open_run)
        state = torch.load(run.checkpoint, map_location=config.device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        run.start = int(state["iteration"])
        run.seconds_before = float(state.get("wall_seconds", 0.0))
    truncate_log(run.dir / "train_log.csv", run.start)
    (run.dir / "config.yaml").write_text(yaml.safe_dump(to_dict(asked), sort_keys=False))
    return model, optimizer


def _state(model: nn.Module, optimizer: torch.optim.Optimizer, done: int, run: Run) -> dict:
    """What a checkpoint holds: model, Adam, the iteration reached and the wall time so far."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "iteration": done, "wall_seconds": run.seconds}  # fmt: skip


def train_denoiser(
    config: DenoiserTrainConfig, resume: bool = False, progress: bool = True
) -> Path:
    """Train per ``config``; returns the exported weights path."""
    # 1. the run folder (one process: a denoiser trains on one device)
    run = open_run(config, resume)  # type: ignore[arg-type]  # the fields it reads are shared
    if run.world > 1:
        raise DataError("a denoiser trains in one process; run it without torchrun")
    # 2. the data: grayscale images stored once on the device, held-out crops for the log
    train, val = _load_images(config)
    if not train:
        raise DataError(f"no training image is at least {config.patch} px")
    store = GrayStore(train, config.device)
    del train
    # 3. model and Adam in the arithmetic this device runs fast, resumed from the checkpoint
    asked, config = config, native_precision(config)
    model, optimizer = _build(config, run, asked)
    model.train()
    # 4. iterate
    bar = tqdm(total=config.iterations, initial=run.start, desc=config.name,
               disable=not progress, dynamic_ncols=True)  # fmt: skip
    t_last, it_last = time.perf_counter(), run.start
    with bar, StopRequest() as stop:
        for it in range(run.start, config.iterations):
            clean, noisy = store.batch(
                config.batch_size, config.patch, config.sigma_max, config.seed, it
            )
            if config.channels_last:
                noisy = noisy.contiguous(memory_format=torch.channels_last)
            lr_now = learning_rate(config.optim, it, config.iterations)
            for group in optimizer.param_groups:
                group["lr"] = lr_now
            with torch.autocast(config.device, dtype=torch.bfloat16, enabled=config.bf16):
                out = model(noisy)
            loss = torch.mean((out.float() - clean) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done = it + 1
            bar.update(1)
            log_due = done % config.log_every == 0 or done == config.iterations
            ckpt_due = done % config.checkpoint_every == 0 or done == config.iterations
            if log_due or ckpt_due:
                now = time.perf_counter()
                row = {"iteration": done, "loss": f"{float(loss.detach()):.7f}",
                       "lr": f"{lr_now:.3e}",
                       "sec_per_iter": f"{(now - t_last) / max(1, done - it_last):.4f}",
                       "val_psnr_sigma25": ""}  # fmt: skip
                if ckpt_due:
                    row["val_psnr_sigma25"] = f"{_held_out_psnr(model, val, config.device):.3f}"
                    save_checkpoint(run.checkpoint, _state(model, optimizer, done, run))
                append_row(run.dir / "train_log.csv", LOG_FIELDS, row)
                t_last, it_last = time.perf_counter(), done
            stopping = stop.signal_name is not None and done < config.iterations
            if stopping:
                if not ckpt_due:  # a checkpoint where it stops; the log stays as it was
                    save_checkpoint(run.checkpoint, _state(model, optimizer, done, run))
                raise TrainingStopped(str(stop.signal_name), done, run.checkpoint)
    # 5. export with the run's metadata
    weights_path = run.dir / "model.safetensors"
    meta = {
        "run": config.name,
        "iterations": str(config.iterations),
        "wall_seconds": f"{run.seconds:.0f}",
        "machine": machine_description(config),  # type: ignore[arg-type]
        "device": config.device,
        "train_dirs": ",".join(config.train_dirs),
        "noise": f"gaussian, sigma uniform in [0, {config.sigma_max:g}] of 255",
        "patch": str(config.patch),
        "batch_size": str(config.batch_size),
    }
    save_weights(model.eval(), config.model, 1, weights_path, extra=meta)
    return weights_path
