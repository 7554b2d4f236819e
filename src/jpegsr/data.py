"""Training data: image folders -> cached degraded triplets -> aligned, augmented crops.

Every batch is a pure function of (seed, iteration, rank): resuming a run at iteration i
reproduces exactly the batches an uninterrupted run would have seen, with no sampler state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from jpegsr.degrade import degrade, imresize, jpeg_roundtrip
from jpegsr.imageio import IMAGE_SUFFIXES


class DataError(ValueError):
    """A data folder or image that cannot be used; the message is for the user."""


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder``, sorted, by extension."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    pattern = "**/*" if recursive else "*"
    files = [p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(p for p in files if p.is_file())


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as uint8 HxWx3 RGB (grayscale replicated), or a one-line DataError."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None


@dataclass
class Triplet:
    """One training image: clean LR, HR, and the compressed LR per JPEG quality."""

    lr: np.ndarray
    hr: np.ndarray
    compressed: dict[int, np.ndarray]


def build_triplets(
    paths: Iterable[Path],
    scale: int,
    qualities: Sequence[int],
    min_lr_side: int,
    hr_scales: Sequence[float] = (1.0,),
) -> list[Triplet]:
    """Degrade each image once (the cache): JPEG on the whole LR image, so its grid is real.

    Each factor in ``hr_scales`` adds a copy of the image downscaled (bicubic) by it first;
    copies whose LR side falls under ``min_lr_side`` are skipped.
    """
    triplets = []
    for path in paths:
        original = read_rgb(path)
        for factor in hr_scales:
            hr = _shrink(original, factor)
            _, lr, hr = degrade(hr, scale, quality=None)
            if min(lr.shape[:2]) < min_lr_side:
                continue
            compressed = {q: jpeg_roundtrip(lr, q) for q in qualities}
            triplets.append(Triplet(lr=lr, hr=hr, compressed=compressed))
    return triplets


def map_compressed(
    triplets: Iterable[Triplet], fn: Callable[[np.ndarray], np.ndarray]
) -> list[Triplet]:
    """The triplets with ``fn`` applied to every compressed LR image (e.g. a pre-denoiser:
    the network is then fed ``fn(JPEG)``); clean LR and HR are kept."""
    return [
        Triplet(lr=t.lr, hr=t.hr, compressed={q: fn(im) for q, im in t.compressed.items()})
        for t in triplets
    ]


def _shrink(image: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1.0:
        return image
    if not 0.0 < factor < 1.0:
        raise DataError(f"hr_scales must lie in (0, 1], got {factor}")
    h, w = image.shape[:2]
    size = (max(1, round(h * factor)), max(1, round(w * factor)))
    return imresize(image, size=size)


def split_train_val(paths: Sequence[Path], val_count: int) -> tuple[list[Path], list[Path]]:
    """Hold out every k-th image (deterministic, spread over folders) for validation."""
    paths = list(paths)
    if val_count <= 0:
        return paths, []
    if val_count >= len(paths):
        raise DataError(f"val_count {val_count} leaves no training images out of {len(paths)}")
    step = len(paths) / val_count
    val_idx = {int(i * step) for i in range(val_count)}
    train = [p for i, p in enumerate(paths) if i not in val_idx]
    val = [p for i, p in enumerate(paths) if i in val_idx]
    return train, val


def to_unit_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1] (on whatever device ``pixels`` is)."""
    return pixels.float().div_(255.0)


# The 8 flips/rotations of a square patch, numbered 2 * k + flip: np.rot90 by k quarter
# turns, then (flip = 1) a left-right mirror.
N_TRANSFORMS = 8


def transform_grid(patch: int) -> np.ndarray:
    """(8, patch, patch, 2) int64: for each transform, the source (row, col) of every output
    pixel, so ``crop[grid[t, ..., 0], grid[t, ..., 1]]`` is the transformed crop."""
    coords = np.stack(np.meshgrid(np.arange(patch), np.arange(patch), indexing="ij"), -1)
    grids = []
    for k in range(4):
        turned = np.rot90(coords, k, axes=(0, 1))
        grids += [turned, turned[:, ::-1]]
    return np.ascontiguousarray(np.stack(grids)).astype(np.int64)


@dataclass(frozen=True)
class CropPlan:
    """What one batch cuts: per sample the image, JPEG quality index, LR top-left corner and
    transform. Host integers (a few per sample), a pure function of (seed, iteration, rank)."""

    image: np.ndarray
    quality: np.ndarray
    y: np.ndarray
    x: np.ndarray
    transform: np.ndarray


class TripletStore:
    """Every training triplet as padded uint8 tensors on one device: the batch cache.

    Portrait images are stored turned a quarter (the 8 random transforms make that
    invisible to training), so one (N, H, W, 3) tensor per kind holds them all with little
    padding. :meth:`batch` cuts aligned, transformed crops of every sample by one tensor
    gather per kind on the device: no per-sample Python or NumPy in the training step.
    """

    def __init__(
        self,
        triplets: Sequence[Triplet],
        scale: int,
        device: str | torch.device = "cpu",
        quality_probabilities: Mapping[int, float] | None = None,
    ) -> None:
        """``quality_probabilities`` (quality -> probability) oversamples some qualities;
        None draws every stored quality equally often."""
        if not triplets:
            raise DataError("no training triplets to store")
        self.scale = scale
        self.device = torch.device(device)
        self.qualities = sorted(triplets[0].compressed)
        if any(sorted(t.compressed) != self.qualities for t in triplets):
            raise DataError("every triplet must hold the same JPEG qualities")
        self.quality_p: np.ndarray | None = None
        if quality_probabilities is not None:
            if sorted(quality_probabilities) != self.qualities:
                raise DataError("quality probabilities must name exactly the stored qualities")
            p = np.array([quality_probabilities[q] for q in self.qualities], np.float64)
            self.quality_p = p / p.sum()
        turned = [t.lr.shape[0] > t.lr.shape[1] for t in triplets]

        def upright(a: np.ndarray, turn: bool) -> np.ndarray:
            return np.rot90(a) if turn else a

        self.sizes = np.array(
            [upright(t.lr, r).shape[:2] for t, r in zip(triplets, turned, strict=True)]
        )
        h, w = self.sizes.max(axis=0)
        n, nq = len(triplets), len(self.qualities)
        lr = np.zeros((n, h, w, 3), np.uint8)
        lq = np.zeros((n, nq, h, w, 3), np.uint8)
        hr = np.zeros((n, h * scale, w * scale, 3), np.uint8)
        for i, (t, turn) in enumerate(zip(triplets, turned, strict=True)):
            th, tw = self.sizes[i]
            lr[i, :th, :tw] = upright(t.lr, turn)
            hr[i, : th * scale, : tw * scale] = upright(t.hr, turn)
            for j, q in enumerate(self.qualities):
                lq[i, j, :th, :tw] = upright(t.compressed[q], turn)
        self.lr = torch.from_numpy(lr).to(self.device)
        self.lq = torch.from_numpy(lq).to(self.device)
        self.hr = torch.from_numpy(hr).to(self.device)
        self._grids: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.sizes)

    def nbytes(self) -> int:
        return sum(t.numel() for t in (self.lr, self.lq, self.hr))

    def plan(
        self, batch_size: int, lr_patch: int, seed: int, iteration: int, rank: int = 0
    ) -> CropPlan:
        """The crops of batch (seed, iteration, rank): vectorised draws, no per-sample loop."""
        if (self.sizes < lr_patch).any():
            raise DataError(f"a stored image is smaller than the {lr_patch} px patch")
        rng = np.random.default_rng([seed, iteration, rank])
        image = rng.integers(len(self), size=batch_size)
        if self.quality_p is None:
            quality = rng.integers(len(self.qualities), size=batch_size)
        else:
            quality = rng.choice(len(self.qualities), size=batch_size, p=self.quality_p)
        h, w = self.sizes[image, 0], self.sizes[image, 1]
        y = rng.integers(0, h - lr_patch + 1)
        x = rng.integers(0, w - lr_patch + 1)
        transform = rng.integers(N_TRANSFORMS, size=batch_size)
        return CropPlan(image, quality, y, x, transform)

    def _grid(self, patch: int) -> torch.Tensor:
        if patch not in self._grids:
            self._grids[patch] = torch.from_numpy(transform_grid(patch)).to(self.device)
        return self._grids[patch]

    def cut(self, plan: CropPlan, lr_patch: int) -> dict[str, torch.Tensor]:
        """uint8 ``lq``, ``lr`` (N,3,p,p) and ``hr`` (N,3,sp,sp) on the store's device, in
        channels_last memory layout (a permuted view of N,H,W,3)."""
        s = self.scale
        ints = np.stack([plan.image, plan.quality, plan.y, plan.x, plan.transform])
        host = torch.from_numpy(ints)
        if self.device.type == "cuda":  # a pinned copy does not make the host wait
            host = host.pin_memory()
        image, quality, y, x, transform = host.to(self.device, non_blocking=True)
        g = self._grid(lr_patch)[transform]  # (N, p, p, 2)
        gh = self._grid(lr_patch * s)[transform]
        img = image[:, None, None]
        rows, cols = y[:, None, None] + g[..., 0], x[:, None, None] + g[..., 1]
        rows_h = (y * s)[:, None, None] + gh[..., 0]
        cols_h = (x * s)[:, None, None] + gh[..., 1]
        crops = {
            "lq": self.lq[img, quality[:, None, None], rows, cols],
            "lr": self.lr[img, rows, cols],
            "hr": self.hr[img, rows_h, cols_h],
        }
        return {k: v.permute(0, 3, 1, 2) for k, v in crops.items()}

    def batch(
        self,
        batch_size: int,
        lr_patch: int,
        seed: int,
        iteration: int,
        rank: int = 0,
    ) -> dict[str, torch.Tensor]:
        """Aligned random crops (compressed LR at a random stored quality, clean LR, HR),
        each sample under one of the 8 flips/rotations, as uint8 on the store's device
        (see :func:`to_unit_float`). The same (seed, iteration, rank) gives the same batch."""
        return self.cut(self.plan(batch_size, lr_patch, seed, iteration, rank), lr_patch)
