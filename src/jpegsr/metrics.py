"""Image quality metrics: PSNR and SSIM on the BT.601 Y channel, the SR literature's way.

Conventions (fixed, golden-tested): the output is rounded and clipped to uint8 before
measuring; ``border`` pixels (usually the scale) are cropped from every side; Y is
``16 + (65.481 R + 128.553 G + 24.966 B) / 255`` kept in float (not re-rounded); SSIM uses an
11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255 and valid filtering, and
is computed per image (set averages are means of per-image values).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma (16..235) of a uint8 RGB image, as float64."""
    if image.ndim == 2:
        return image.astype(np.float64)
    rgb = image.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """:func:`rgb_to_y` for [0, 1] RGB tensors (N, 3, H, W), kept differentiable (no rounding):
    (N, 1, H, W) in 16..235 (the training loss's SSIM term measures on it)."""
    w = rgb.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    return 16.0 + (rgb * w).sum(1, keepdim=True)


def _prepare(output: np.ndarray, reference: np.ndarray, border: int, y_channel: bool):
    if output.shape != reference.shape:
        raise ValueError(f"shape mismatch: output {output.shape} vs reference {reference.shape}")
    out = np.clip(np.round(output.astype(np.float64)), 0, 255)
    ref = reference.astype(np.float64)
    if y_channel:
        out, ref = rgb_to_y(out), rgb_to_y(ref)
    if border:
        out, ref = out[border:-border, border:-border], ref[border:-border, border:-border]
    return out, ref


def psnr(output: np.ndarray, reference: np.ndarray, border: int = 0, y_channel: bool = True):
    """PSNR in dB between two 0..255 images (Y channel by default; RGB is the AIM 2022 way)."""
    out, ref = _prepare(output, reference, border, y_channel)
    mse = np.mean((out - ref) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The normalised 1-D Gaussian; the 2-D window is its outer product (separable)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(output: np.ndarray, reference: np.ndarray, border: int = 0, y_channel: bool = True):
    """Mean SSIM (Wang et al. 2004) with the Gaussian window, on Y by default.

    On RGB (``y_channel=False``) it is the mean of the per-channel SSIMs.
    """
    out, ref = _prepare(output, reference, border, y_channel)
    x = torch.from_numpy(np.ascontiguousarray(out))
    y = torch.from_numpy(np.ascontiguousarray(ref))
    if x.ndim == 2:
        x, y = x[None, None], y[None, None]
    else:
        x, y = x.permute(2, 0, 1)[:, None], y.permute(2, 0, 1)[:, None]
    return float(ssim_map(x, y).mean(dim=(1, 2, 3)).mean())


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """Per-pixel SSIM of (N, 1, H, W) tensors, valid filtering (no padding)."""
    g = gaussian_window().to(x)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    # filter the five moment images in one grouped, separable pass
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    rows = F.conv2d(stack, g.view(1, 1, -1, 1).repeat(5, 1, 1, 1), groups=5)
    mu_x, mu_y, exx, eyy, exy = F.conv2d(
        rows, g.view(1, 1, 1, -1).repeat(5, 1, 1, 1), groups=5
    ).split(1, dim=1)
    sxx, syy, sxy = exx - mu_x**2, eyy - mu_y**2, exy - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return num / den


class PSNR(nn.Module):
    """PSNR of batches of [0, 1] RGB tensors on Y (for validation during training)."""

    def __init__(self, border: int = 0) -> None:
        super().__init__()
        self.border = border

    def forward(self, output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        def y(t: torch.Tensor) -> torch.Tensor:
            t = (t.clamp(0, 1) * 255).round().double()
            w = t.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
            return 16.0 + (t * w).sum(1) / 255.0

        b = self.border
        yo, yr = y(output), y(reference)
        if b:
            yo, yr = yo[..., b:-b, b:-b], yr[..., b:-b, b:-b]
        mse = ((yo - yr) ** 2).mean(dim=(-2, -1))
        return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


class SSIM(nn.Module):
    """SSIM of batches of 0..255 single-channel tensors; wraps :func:`ssim_map`."""

    def forward(self, output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return ssim_map(output.double(), reference.double()).mean(dim=(1, 2, 3))
