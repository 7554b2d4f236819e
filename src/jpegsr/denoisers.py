"""The "(M)" pre-denoisers: run on the compressed input before an SR model (Table 1's (M)
rows train that model on the denoised input too: ``data.input: denoised``).

The paper pre-denoises with MATLAB 2018's default, the pretrained DnCNN
(``denoisingNetwork('DnCNN')``), applied to each RGB channel as MathWorks' colour example does.
Ours is the same network (:class:`jpegsr.models.DnCNN`), trained by us on the clean training
images (``configs/dncnn.yaml``; card: ``src/jpegsr/weights/denoisers/dncnn.md``). OpenCV's
non-local means, this project's earlier stand-in, stays selectable as ``nlm``.

Method names in ``jpegsr benchmark``: ``denoise+X`` runs :data:`DEFAULT_DENOISER` before
``X``; ``dncnn+X`` and ``nlm+X`` name the denoiser.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import torch

from jpegsr.defaults import DEFAULT_QUALITY
from jpegsr.weights_io import SHIPPED_DIR, LoadedModel, load_model

DENOISERS = ("dncnn", "nlm")
DEFAULT_DENOISER = "dncnn"
DNCNN_WEIGHTS = SHIPPED_DIR / "denoisers" / "dncnn.safetensors"

Denoiser = Callable[[np.ndarray], np.ndarray]


def split_method(name: str) -> tuple[str | None, str]:
    """(denoiser or None, base method) of a benchmark method name such as ``nlm+bicubic``."""
    head, plus, base = name.partition("+")
    if not plus:
        return None, name
    if head == "denoise":
        return DEFAULT_DENOISER, base
    if head in DENOISERS:
        return head, base
    raise ValueError(f"unknown pre-denoiser {head!r} in {name!r}; known: denoise, "
                     + ", ".join(DENOISERS))  # fmt: skip


def make_denoiser(name: str, quality: int = DEFAULT_QUALITY) -> Denoiser:
    """uint8 RGB -> uint8 RGB for a denoiser name (``quality`` sets NLM's strength)."""
    if name == "dncnn":
        loaded = load_dncnn()
        return lambda image: dncnn(image, loaded)
    if name == "nlm":
        return lambda image: nlm(image, quality)
    raise ValueError(f"unknown denoiser {name!r}; known: {', '.join(DENOISERS)}")


# --- DnCNN ------------------------------------------------------------------------------------


@cache
def load_dncnn(path: str | Path = DNCNN_WEIGHTS) -> LoadedModel:
    return load_model(path, task="denoise")


@torch.no_grad()
def dncnn(image: np.ndarray, loaded: LoadedModel) -> np.ndarray:
    """Each RGB channel of a uint8 image through the one-channel DnCNN (fp32, whole image,
    one channel at a time to bound memory), rounded back to uint8."""
    channels = []
    for c in range(image.shape[2]):
        x = torch.from_numpy(np.ascontiguousarray(image[..., c])).float()[None, None] / 255
        y = loaded.module(x)[0, 0]
        channels.append((y.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    return np.stack(channels, axis=-1)


# --- non-local means (the earlier stand-in) ----------------------------------------------------
# OpenCV's fastNlMeansDenoisingColored: deterministic, luma/chroma strengths. The (luma h,
# chroma hColor) per quality were grid-selected for the best Y-PSNR of nlm+bicubic on 12 BSD200
# training images (scripts/select_denoise_params.py -> results/denoise_params.json): strong
# filtering blurs more than it deblocks, so the selected strengths are mild and fall to the
# grid's minimum from q=30 on.
NLM_STRENGTH = {10: (6.0, 3.0), 20: (4.0, 3.0), 30: (2.0, 3.0), 50: (2.0, 3.0), 90: (2.0, 3.0)}


def nlm_strength(quality: int) -> tuple[float, float]:
    """(luma h, chroma h) for ``quality``, interpolated between the selected points."""
    qs = sorted(NLM_STRENGTH)
    hs = [NLM_STRENGTH[q][0] for q in qs]
    cs = [NLM_STRENGTH[q][1] for q in qs]
    return float(np.interp(quality, qs, hs)), float(np.interp(quality, qs, cs))


def nlm(
    image: np.ndarray,
    quality: int = DEFAULT_QUALITY,
    strength: tuple[float, float] | None = None,
) -> np.ndarray:
    """Non-local-means deblocking of a compressed uint8 RGB image."""
    import cv2

    h, hc = strength if strength is not None else nlm_strength(quality)
    return cv2.fastNlMeansDenoisingColored(
        np.ascontiguousarray(image), None, h=h, hColor=hc, templateWindowSize=7,
        searchWindowSize=21,
    )  # fmt: skip


# --- measuring a denoiser ----------------------------------------------------------------------


def gray(image: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of a uint8 RGB image as uint8 (what the grayscale denoiser trains on)."""
    y = image[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The central ``side`` x ``side`` square of an image (smaller if the image is)."""
    h, w = image.shape[:2]
    c = min(side, h, w)
    return image[(h - c) // 2 : (h - c) // 2 + c, (w - c) // 2 : (w - c) // 2 + c]


@torch.no_grad()
def denoising_psnr(
    loaded: LoadedModel, images: list[np.ndarray], sigma: float, seed: int = 0
) -> list[dict[str, float | None]]:
    """Per image: PSNR (dB, 0..255, no border) of the noisy input and of the denoised output,
    for Gaussian noise of standard deviation ``sigma`` (0..255 scale) on uint8 grayscale
    images, the noise drawn from ``seed`` (the same noise for every model compared).
    ``sigma`` 0 feeds the clean image (what the denoiser costs a clean input); its noisy
    PSNR is then None."""
    rows: list[dict[str, float | None]] = []
    for i, clean in enumerate(images):
        rng = np.random.default_rng([seed, i, int(round(sigma * 100))])
        x = torch.from_numpy(clean).double()[None, None] / 255
        noisy = x + torch.from_numpy(rng.standard_normal(clean.shape))[None, None] * sigma / 255
        out = loaded.module(noisy.float()).double().clamp(0, 1)
        noisy_psnr = _psnr(noisy, x) if sigma > 0 else None
        rows.append({"noisy_psnr": noisy_psnr, "denoised_psnr": _psnr(out, x)})
    return rows


def _psnr(a: torch.Tensor, reference: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / torch.mean((a - reference) ** 2)))
