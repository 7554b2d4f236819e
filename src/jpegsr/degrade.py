"""The degradation: HR -> MATLAB-style bicubic LR -> Pillow JPEG.

One implementation serves training, evaluation and users, so that a number measured
anywhere in jpegsr means the same thing. All public functions take and return uint8 HxWx3
arrays, except :func:`imresize_torch`, the differentiable twin used by the cycle loss.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, features

from jpegsr.defaults import DEFAULT_QUALITY, SCALES

if TYPE_CHECKING:  # torch only for the cycle loss's twin, imported when that is called
    import torch


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, as MATLAB's ``imresize``."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    inner = 1.5 * ax3 - 2.5 * ax2 + 1.0
    outer = -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    return np.where(ax <= 1, inner, np.where(ax <= 2, outer, 0.0))


@lru_cache(maxsize=64)
def resize_matrix(in_length: int, out_length: int) -> np.ndarray:
    """The (out x in) float64 matrix of MATLAB's bicubic ``imresize`` along one axis.

    When shrinking, the kernel is widened by 1/scale (antialiasing); borders are mirrored
    symmetrically as MATLAB does, which folds out-of-range taps back into the matrix.
    """
    scale = out_length / in_length
    kernel_width = 4.0
    if scale < 1:
        kernel_width /= scale
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(np.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    weights = scale * _cubic(dist * scale) if scale < 1 else _cubic(dist)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_length)]
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.repeat(np.arange(out_length), taps)
    np.add.at(matrix, (rows, cols.ravel()), weights.ravel())
    matrix.setflags(write=False)
    return matrix


def imresize(image: np.ndarray, scale: float | None = None, size: tuple[int, int] | None = None):
    """MATLAB-compatible bicubic resize of a uint8 HxW[xC] image, rounded back to uint8.

    Give either ``scale`` (e.g. 1/4 or 4) or the output ``size`` as (height, width).
    """
    if image.dtype != np.uint8:
        raise TypeError(f"imresize expects uint8, got {image.dtype}")
    h, w = image.shape[:2]
    if size is None:
        if scale is None:
            raise ValueError("give scale or size")
        size = (int(np.ceil(h * scale)), int(np.ceil(w * scale)))
    out = resize_float(image.astype(np.float64), size)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def resize_float(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a float HxW[xC] array without rounding (rows first, as MATLAB)."""
    rh = resize_matrix(image.shape[0], size[0])
    rw = resize_matrix(image.shape[1], size[1])
    out = np.tensordot(rh, image, axes=(1, 0))
    out = np.moveaxis(np.tensordot(rw, out, axes=(1, 1)), 0, 1)
    return out


def imresize_torch(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Differentiable bicubic resize of NCHW floats, identical to :func:`resize_float`."""
    rh = _resize_matrix_torch(x.shape[-2], size[0], x.device)
    rw = _resize_matrix_torch(x.shape[-1], size[1], x.device)
    return rh @ x.float() @ rw.T


@lru_cache(maxsize=64)
def _resize_matrix_torch(in_length: int, out_length: int, device: torch.device) -> torch.Tensor:
    """Cached per device: copying it to a GPU every step would make the host wait."""
    import torch

    matrix = torch.tensor(resize_matrix(in_length, out_length), dtype=torch.float32)
    return matrix.to(device)


def crop_to_scale(hr: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so both sides are multiples of ``scale`` (the usual SR crop)."""
    h, w = hr.shape[:2]
    return hr[: h - h % scale, : w - w % scale]


def downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """LR image of a scale-cropped HR image: exact 1/scale size, MATLAB bicubic."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale}")
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"HR size {w}x{h} is not a multiple of {scale}; crop_to_scale first")
    return imresize(hr, size=(h // scale, w // scale))


def jpeg_encode(image: np.ndarray, quality: int = DEFAULT_QUALITY) -> bytes:
    """Pillow JPEG bytes of ``image`` at ``quality`` with 4:2:0 chroma subsampling, set
    explicitly (Pillow's default depends on quality)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality, subsampling="4:2:0")
    return buf.getvalue()


def jpeg_roundtrip(image: np.ndarray, quality: int = DEFAULT_QUALITY) -> np.ndarray:
    """Encode the whole image with :func:`jpeg_encode` and decode it back to uint8."""
    with Image.open(io.BytesIO(jpeg_encode(image, quality))) as im:
        return np.asarray(im.convert(image_mode(image)))


# Annex K luminance table of the JPEG standard (natural order): libjpeg scales it by quality.
_IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
])  # fmt: skip


def ijg_luma_table(quality: int) -> np.ndarray:
    """libjpeg's luminance quantisation table at ``quality`` (what Pillow writes)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((_IJG_LUMA * scale + 50) // 100, 1, 255)


def estimate_jpeg_quality(luma_table: Sequence[int]) -> int:
    """The libjpeg quality whose luminance table is closest to a file's (in log ratio).

    Exact for files written by libjpeg/Pillow; an approximation for other encoders.
    """
    table = np.maximum(np.asarray(luma_table, dtype=np.float64), 1)
    errors = [np.abs(np.log(table / ijg_luma_table(q))).mean() for q in range(1, 101)]
    return int(np.argmin(errors)) + 1


def image_mode(image: np.ndarray) -> str:
    return "L" if image.ndim == 2 else "RGB"


def degrade(hr: np.ndarray, scale: int = 4, quality: int | None = DEFAULT_QUALITY):
    """(compressed LR, clean LR, cropped HR) from an HR uint8 RGB image.

    ``quality=None`` skips the JPEG step (compressed LR == clean LR).
    """
    hr = crop_to_scale(hr, scale)
    lr = downscale(hr, scale)
    lq = lr if quality is None else jpeg_roundtrip(lr, quality)
    return lq, lr, hr


def versions() -> dict[str, str]:
    """Library versions that change the degradation; recorded with every result."""
    import cv2
    import PIL
    import torch

    return {
        "pillow": PIL.__version__,
        "libjpeg": str(features.version("jpg")),
        "libjpeg_turbo": str(features.version("libjpeg_turbo")),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
