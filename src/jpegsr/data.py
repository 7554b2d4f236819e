"""Training data: image folders -> cached degraded triplets -> aligned, augmented crops.

Every batch is a pure function of (seed, iteration, rank): resuming a run at iteration i
reproduces exactly the batches an uninterrupted run would have seen, with no sampler state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from jpegsr.degrade import degrade, imresize, jpeg_roundtrip

IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm")


class DataError(ValueError):
    """A data folder or image that cannot be used; the message is for the user."""


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder``, sorted, by extension."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    pattern = "**/*" if recursive else "*"
    files = [p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_EXTENSIONS]
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


def _augment(arrays: list[np.ndarray], rot: int, flip: bool) -> list[np.ndarray]:
    out = []
    for a in arrays:
        a = np.rot90(a, rot)
        if flip:
            a = a[:, ::-1]
        out.append(np.ascontiguousarray(a))
    return out


def to_unit_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1] (on whatever device ``pixels`` is)."""
    return pixels.float().div_(255.0)


def sample_batch(
    triplets: Sequence[Triplet],
    batch_size: int,
    lr_patch: int,
    scale: int,
    seed: int,
    iteration: int,
    rank: int = 0,
    as_uint8: bool = False,
) -> dict[str, torch.Tensor]:
    """Aligned random crops (compressed LR, LR, HR) with random rotation and flip.

    Returns float tensors in [0, 1]: ``lq`` and ``lr`` (N,3,p,p) and ``hr`` (N,3,sp,sp).
    A random JPEG quality is drawn per sample from those cached. ``as_uint8`` returns the
    pixels unconverted (a quarter of the bytes to move to a GPU; see :func:`to_unit_float`).
    """
    rng = np.random.default_rng([seed, iteration, rank])
    lq_b, lr_b, hr_b = [], [], []
    for _ in range(batch_size):
        t = triplets[rng.integers(len(triplets))]
        qs = sorted(t.compressed)
        q = qs[rng.integers(len(qs))]
        h, w = t.lr.shape[:2]
        y, x = int(rng.integers(h - lr_patch + 1)), int(rng.integers(w - lr_patch + 1))
        lr = t.lr[y : y + lr_patch, x : x + lr_patch]
        lq = t.compressed[q][y : y + lr_patch, x : x + lr_patch]
        hs, ws, hp = y * scale, x * scale, lr_patch * scale
        hr = t.hr[hs : hs + hp, ws : ws + hp]
        lq, lr, hr = _augment([lq, lr, hr], int(rng.integers(4)), bool(rng.integers(2)))
        lq_b.append(lq)
        lr_b.append(lr)
        hr_b.append(hr)
    batch = {"lq": lq_b, "lr": lr_b, "hr": hr_b}
    pixels = {k: torch.from_numpy(np.stack(v)).permute(0, 3, 1, 2) for k, v in batch.items()}
    return pixels if as_uint8 else {k: to_unit_float(v) for k, v in pixels.items()}
