"""Upscaling images with a loaded model: tiled inference, the Python API and the files command.

Tiling keeps memory bounded whatever the image size: the low-resolution (LR) image is cut into
tiles, each run with ``overlap`` pixels of real image context on every side, and only the
tile's own region of the result is kept. With an overlap wider than the network's receptive
field, the tiled result equals the untiled one (up to float rounding: within 1 grey level).

Size rules: the whole LR image is reflect-padded once, at the bottom and right, to a multiple
of ``descriptor.size_multiple`` (and at least ``descriptor.min_size``); tile and overlap are
rounded up to that multiple, so every forward pass already has a valid size and no tile needs
padding of its own. The padding is cropped off the result.

Grey images are replicated to RGB (the network only sees RGB) and the result is brought back
to one channel as BT.601 luma (0.299 R + 0.587 G + 0.114 B, Pillow's ``convert("L")``).
Alpha is not seen by the network: it is resized separately, bicubic, by Pillow.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from jpegsr.defaults import PRECISIONS
from jpegsr.imageio import (
    apply_orientation,
    arrays_to_image,
    exif_orientation,
    icc_colour_space,
    image_to_arrays,
    jpeg_quality,
)
from jpegsr.models.fused import fuse_for_inference, onednn_runs_bf16
from jpegsr.models.registry import sr_output
from jpegsr.weights_io import (
    AUTO_MODEL,
    LoadedModel,
    choose_shipped,
    load_model,
    trained_qualities,
)

# Auto tiling bounds every forward pass to about MAX_PASS_SIDE² LR pixels (512 x 512 LR is
# 2048 x 2048 SR): peak memory then no longer grows with the image. Larger passes are faster
# (less overlap, fewer calls; in both precisions a 480 x 320 image is one pass) and take more
# memory; bf16 passes hold half the bytes. The sizes keep a 4000 x 3000 output under 1.5 GB:
# benchmarks/pass_side.md (time and peak RSS per size; fp32 at 256 took over a third longer
# on an AVX2 CPU) and benchmarks/README.md (peak RSS per path).
MAX_PASS_SIDE = {"bf16": 512, "fp32": 448}
DEFAULT_OVERLAP = 16
# Mirrored context added on every side of the image and cropped off the result. The network
# pads each convolution with zeros, which the image's own borders would otherwise see: without
# it a flat image came back with corners 35 levels off and a 1x1 image in the wrong colour.
# 4 pixels fix that (flat images within 3 levels everywhere, tests/test_bad_inputs.py); on the
# benchmark sets, whose border crop hides corners, it costs a few thousandths of a dB
# (results/models/*.json were remeasured with it; git log shows the change).
BORDER = 4
# Context every pass reads beyond what it keeps, whatever overlap is asked for: the fused
# copy's folded tail differs from the trained module within 2 pixels of a pass's edge
# (jpegsr.models.fused.fold_linear_tail), so no kept pixel may lie there. BORDER covers the
# image's edges; this covers the seams between tiles.
MIN_CONTEXT = 2
# An RGB image whose channels never differ by more than this is grey content (JPEG chroma
# rounding of a grey image stays within it) and is upscaled as grey, output as R = G = B.
GREY_TOLERANCE = 4
_LUMA = (0.299, 0.587, 0.114)

ModelArg = str | os.PathLike[str] | LoadedModel


# --------------------------------------------------------------------------- model handling


@functools.lru_cache(maxsize=4)
def _load_cached(name: str) -> LoadedModel:
    """Load once per name or path: repeated ``upscale()`` calls must not re-read weights.
    An ``.onnx`` file (``jpegsr export onnx``) is run by onnxruntime."""
    if name.endswith(".onnx"):
        from jpegsr.onnx_export import load_onnx

        return load_onnx(name)
    return load_model(name)


def resolve_model(model: ModelArg = AUTO_MODEL, jpeg_quality: int | None = None) -> LoadedModel:
    """A :class:`LoadedModel` from itself, a shipped model name or a weights path (cached).

    ``"auto"`` picks the shipped model for ``jpeg_quality`` (see
    :func:`jpegsr.weights_io.choose_shipped`).
    """
    if isinstance(model, LoadedModel):
        return model
    name = os.fspath(model)
    if name == AUTO_MODEL:
        name = choose_shipped(jpeg_quality)
    return _load_cached(name)


class SelfEnsemble(torch.nn.Module):
    """Average a model's SR over the 8 flips/rotations of its input (geometric self-ensemble).

    8x the compute for a small, reliable PSNR gain; optional (``--self-ensemble``).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for k in range(4):
            for flip in (False, True):
                t = torch.rot90(x, k, dims=(-2, -1))
                t = t.flip(-1) if flip else t
                y = sr_output(self.model(t)).float()
                y = y.flip(-1) if flip else y
                y = torch.rot90(y, -k, dims=(-2, -1))
                total = y if total is None else total + y
        return total / 8


def with_self_ensemble(loaded: LoadedModel) -> LoadedModel:
    """The same model, predicting through :class:`SelfEnsemble`."""
    desc = dataclasses.replace(loaded.descriptor, two_stage=False)
    return LoadedModel(SelfEnsemble(loaded.module), desc, loaded.source, loaded.metadata)


def inference_module(
    loaded: LoadedModel, device: torch.device, half: bool, fuse: bool = True
) -> tuple[torch.nn.Module, torch.dtype | None]:
    """What :func:`upscale_array` runs, and the dtype to feed it: the model's fused copy
    (:mod:`jpegsr.models.fused`) with its weights in bf16 or fp32, made once per device and
    precision; or, for a model with nothing to fuse (or ``fuse=False``), the module itself,
    fed float32 (``None``) and run under bf16 autocast when ``half``."""
    if not fuse:
        return loaded.module, None
    dtype = torch.bfloat16 if half else torch.float32
    key = (str(device), str(dtype))
    if key not in loaded.prepared:
        loaded.prepared[key] = fuse_for_inference(loaded.module, dtype, device)
    fused = loaded.prepared[key]
    return (loaded.module, None) if fused is None else (fused, dtype)


def quality_mismatch(loaded: LoadedModel, jpeg_quality: int | None) -> list[str]:
    """A warning when a JPEG's quality is far from every quality the model was trained on."""
    trained = trained_qualities(loaded.metadata)
    if jpeg_quality is None or not trained:
        return []
    if min(abs(jpeg_quality - q) for q in trained) <= 15:
        return []
    return [
        f"JPEG quality looks like {jpeg_quality}, but model {loaded.descriptor.name} was trained "
        f"on quality {','.join(map(str, trained))}: the result may be over-smoothed"
    ]


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bfloat16 convolutions run natively here (AVX-512 BF16/AMX on CPU, or a GPU).

    Then bf16 autocast is much faster than fp32 and leaves Y-PSNR practically unchanged
    (benchmarks/README.md, results/precision/), so ``auto`` uses it.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and onednn_runs_bf16()


def renamed_precision(
    precision: bool | str | None, deprecated: dict[str, object]
) -> bool | str | None:
    """Accept the old keyword ``bf16=`` for ``precision=``; refuse any other extra keyword."""
    unknown = sorted(set(deprecated) - {"bf16"})
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {unknown}")
    if "bf16" in deprecated:
        warnings.warn("bf16= is now precision= (same values)", DeprecationWarning, stacklevel=3)
        return deprecated["bf16"]  # type: ignore[return-value]
    return precision


def use_bf16(precision: str | bool | None, device: torch.device) -> bool:
    """Resolve a precision choice: ``auto``/``None`` (bf16 where fast), ``fp32``, ``bf16``."""
    if isinstance(precision, bool):
        return precision
    if precision is None or precision == "auto":
        return bf16_is_fast(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "bf16" and device.type == "cpu" and not bf16_is_fast(device):
        warnings.warn(EMULATED_BF16, stacklevel=2)
    return precision == "bf16"


EMULATED_BF16 = (
    "this CPU has no native bf16 (AVX-512 BF16 or AMX): precision bf16 runs emulated, many "
    "times slower than fp32 (auto picks fp32 here)"
)


def _model_device(module: torch.nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


# --------------------------------------------------------------------------- tiled inference


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _pad_bottom_right(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """Reflect padding where the image is big enough for it, edge replication otherwise."""
    if pw:
        x = F.pad(x, (0, pw, 0, 0), mode="reflect" if pw < x.shape[-1] else "replicate")
    if ph:
        x = F.pad(x, (0, 0, 0, ph), mode="reflect" if ph < x.shape[-2] else "replicate")
    return x


def _pad_border(x: torch.Tensor, b: int) -> torch.Tensor:
    """Mirror ``b`` pixels on every side (edge replication where the image is smaller)."""
    if b == 0:
        return x
    small = min(x.shape[-2:]) <= b
    return F.pad(x, (b, b, b, b), mode="replicate" if small else "reflect")


def _spans(size: int, tile: int, overlap: int, min_size: int) -> list[tuple[int, int, int, int]]:
    """(start, stop) of each tile along one axis and (start, stop) of its context."""
    if tile <= 0 or tile >= size:
        return [(0, size, 0, size)]
    spans = []
    for start in range(0, size, tile):
        stop = min(start + tile, size)
        c0, c1 = max(0, start - overlap), min(size, stop + overlap)
        c0 = max(0, min(c0, c1 - min_size))  # a context never falls below the model minimum
        c1 = min(size, max(c1, c0 + min_size))
        spans.append((start, stop, c0, c1))
    return spans


def auto_tile(
    height: int, width: int, overlap: int, size_multiple: int = 1, max_side: int = 256
) -> int:
    """Tile size (0 = whole image) keeping every forward pass within ~``max_side``² LR pixels
    (:data:`MAX_PASS_SIDE` of the precision)."""
    if height * width <= max_side * max_side:
        return 0
    ov = _round_up(overlap, size_multiple)
    return max(size_multiple, (max_side - 2 * ov) // size_multiple * size_multiple)


def is_grey_content(pixels: np.ndarray, rows: int = 256) -> bool:
    """Whether every pixel of an RGB image has its channels within ``GREY_TOLERANCE`` levels
    of each other (checked in blocks of rows, stopping at the first colourful one)."""
    for y in range(0, pixels.shape[0], rows):
        block = pixels[y : y + rows]
        spread = np.maximum(np.maximum(block[..., 0], block[..., 1]), block[..., 2])
        spread -= np.minimum(np.minimum(block[..., 0], block[..., 1]), block[..., 2])
        if spread.max() > GREY_TOLERANCE:
            return False
    return True


def upscale_array(
    loaded_model: LoadedModel,
    pixels: np.ndarray,
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    precision: bool | str | None = None,
    fuse: bool = True,
    **deprecated: object,
) -> np.ndarray:
    """Super-resolve uint8 pixels (H x W, H x W x 1 or H x W x 3); same layout, ``scale`` x size.

    ``tile=None`` picks a tile size automatically (see :func:`auto_tile`), ``tile=0`` runs the
    whole image in one pass. ``precision``: ``"bf16"``/``True`` bfloat16 autocast,
    ``"fp32"``/``False`` full precision, ``"auto"``/``None`` bf16 where the hardware runs it
    natively. (``bf16=`` is the old name of ``precision=`` and still accepted.) ``fuse``: run
    the model's fused inference copy where it has one (the same function, faster; see
    :func:`inference_module`); ``False`` runs the module as trained.
    The module is put in eval mode and channels-last memory format.
    """
    precision = renamed_precision(precision, deprecated)
    if not isinstance(pixels, np.ndarray) or pixels.dtype not in (np.uint8, np.uint16):
        raise TypeError("pixels must be a uint8 or uint16 numpy array")
    if pixels.ndim == 2:
        grey = upscale_array(loaded_model, pixels[:, :, None], tile, overlap, precision, fuse)
        return grey[:, :, 0]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise ValueError(f"pixels must be H x W, H x W x 1 or H x W x 3, not {pixels.shape}")
    if (tile is not None and tile < 0) or overlap < 0:
        raise ValueError("tile and overlap must be >= 0")
    if pixels.dtype == np.uint8 and pixels.shape[2] == 3 and is_grey_content(pixels):
        # grey stored as colour (a scanned print saved as a colour JPEG): upscale its luma and
        # keep R = G = B, instead of letting the network invent colour speckles
        luma = np.asarray(Image.fromarray(pixels, "RGB").convert("L"))[:, :, None]
        grey = upscale_array(loaded_model, luma, tile, overlap, precision, fuse)
        return np.repeat(grey, 3, axis=2)
    desc = loaded_model.descriptor
    module = loaded_model.module
    s, m = desc.scale, max(1, desc.size_multiple)
    h, w, c = pixels.shape
    if h == 0 or w == 0:
        raise ValueError("image has no pixels")
    b = BORDER  # mirrored context on every side, cropped off the result
    hp = max(_round_up(h + 2 * b, m), _round_up(desc.min_size, m))
    wp = max(_round_up(w + 2 * b, m), _round_up(desc.min_size, m))
    ov = _round_up(max(overlap, MIN_CONTEXT), m)
    device = _model_device(module)
    half = use_bf16(precision, device) and desc.bf16  # the descriptor says if it can
    if tile is None:
        tile = auto_tile(hp, wp, overlap, m, MAX_PASS_SIDE["bf16" if half else "fp32"])
    elif tile > 0:
        tile = _round_up(max(tile, desc.min_size), m)
    min_ctx = _round_up(desc.min_size, m)

    module.eval()
    if any(p.dim() == 4 and not p.is_contiguous(memory_format=torch.channels_last)
           for p in module.parameters()):  # fmt: skip
        module.to(memory_format=torch.channels_last)  # once: a module-wide pass costs ms
    if not pixels.flags.writeable:  # e.g. np.asarray(pil_image); torch warns on those
        pixels = pixels.copy()
    top = float(np.iinfo(pixels.dtype).max)  # 255, or 65535 for 16-bit pixels
    x = torch.from_numpy(pixels.astype(np.float32) if top > 255 else pixels)
    x = x.to(device).permute(2, 0, 1).unsqueeze(0).float().div_(top)
    if c == 1:
        x = x.expand(1, 3, h, w)
    x = _pad_border(x, b)
    x = _pad_bottom_right(x, hp - h - 2 * b, wp - w - 2 * b)
    luma = torch.tensor(_LUMA, device=device).view(1, 3, 1, 1)
    out = np.empty((h * s, w * s, c), dtype=pixels.dtype)

    run, dtype = inference_module(loaded_model, device, half, fuse)
    autocast = half and dtype is None
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=autocast):
        for y0, y1, cy0, cy1 in _spans(hp, tile, ov, min_ctx):
            ky0, ky1 = max(y0, b), min(y1, b + h)  # the rows of this tile the image keeps
            if ky0 >= ky1:
                continue
            for x0, x1, cx0, cx1 in _spans(wp, tile, ov, min_ctx):
                kx0, kx1 = max(x0, b), min(x1, b + w)
                if kx0 >= kx1:
                    continue
                patch = x[:, :, cy0:cy1, cx0:cx1].contiguous(memory_format=torch.channels_last)
                sr = desc.sr(run(patch if dtype is None else patch.to(dtype)))
                if sr.shape[-2:] != (patch.shape[-2] * s, patch.shape[-1] * s):
                    raise RuntimeError(
                        f"model {desc.name} returned {tuple(sr.shape)} for input "
                        f"{tuple(patch.shape)}; expected x{s}"
                    )
                # the kept region in float32, then levels in place: one large allocation
                # instead of one per step (each a few dozen MB of fresh pages)
                sr = sr[:, :, (ky0 - cy0) * s : (ky1 - cy0) * s, (kx0 - cx0) * s : (kx1 - cx0) * s]
                sr = (sr.float() * luma).sum(dim=1, keepdim=True) if c == 1 else sr.float()
                levels = sr.clamp_(0, 1).mul_(top).round_()[0].permute(1, 2, 0)
                oy, ox = (ky0 - b) * s, (kx0 - b) * s
                region = out[oy : oy + levels.shape[0], ox : ox + levels.shape[1]]
                if out.dtype == np.uint8:
                    torch.from_numpy(region).copy_(levels)  # whole levels: exact
                else:
                    region[...] = levels.to(torch.int32).cpu().numpy()
    return out


def upscale_alpha(alpha: np.ndarray, scale: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """Resize an alpha plane bicubically (to ``scale`` x, or to ``size`` = (height, width)):
    the network is trained on colour, not masks."""
    h, w = alpha.shape
    th, tw = size or (h * scale, w * scale)
    if alpha.dtype != np.uint8:
        import cv2

        return np.clip(cv2.resize(alpha, (tw, th), interpolation=cv2.INTER_CUBIC), 0, 65535)
    im = Image.fromarray(np.ascontiguousarray(alpha), "L")
    return np.asarray(im.resize((tw, th), Image.Resampling.BICUBIC)).copy()


def upscale_image(
    loaded: LoadedModel,
    pixels: np.ndarray,
    alpha: np.ndarray | None = None,
    *,
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    precision: bool | str | None = None,
    outscale: float | None = None,
    width: int | None = None,
    height: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels (H x W x C, uint8) and an optional alpha plane, upscaled to the output size
    (:func:`output_size`): the network's x4, then an antialiased downscale if smaller."""
    h, w = pixels.shape[:2]
    size = output_size(h, w, loaded.descriptor.scale, outscale, width, height)
    out = resize_result(upscale_array(loaded, pixels, tile, overlap, precision), size)
    return out, None if alpha is None else upscale_alpha(alpha, 0, size)


def output_size(
    height: int,
    width: int,
    scale: int,
    outscale: float | None = None,
    out_width: int | None = None,
    out_height: int | None = None,
) -> tuple[int, int]:
    """(height, width) of the result: ``scale`` x by default, else ``outscale`` x the input
    (0 < outscale <= scale), or a width or a height with the aspect kept (at most ``scale`` x)."""
    given = [v is not None for v in (outscale, out_width, out_height)]
    if sum(given) > 1:
        raise ValueError("give one of outscale, width and height")
    if outscale is not None:
        if not 0 < outscale <= scale:
            raise ValueError(f"outscale must be in (0, {scale}], not {outscale}")
        return max(1, round(height * outscale)), max(1, round(width * outscale))
    if out_width is not None:
        if not 0 < out_width <= scale * width:
            raise ValueError(f"width must be in 1..{scale * width} ({scale}x), not {out_width}")
        return max(1, round(height * out_width / width)), out_width
    if out_height is not None:
        if not 0 < out_height <= scale * height:
            raise ValueError(f"height must be in 1..{scale * height} ({scale}x), not {out_height}")
        return out_height, max(1, round(width * out_height / height))
    return scale * height, scale * width


def resize_result(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an upscaled H x W x C result to ``size`` (height, width) with Pillow's
    antialiased Lanczos filter (OpenCV's Lanczos for 16-bit pixels); unchanged when it
    already has that size."""
    if pixels.shape[:2] == size:
        return pixels
    c = pixels.shape[2]
    if pixels.dtype != np.uint8:
        import cv2

        out = cv2.resize(pixels, (size[1], size[0]), interpolation=cv2.INTER_LANCZOS4)
        return out.reshape(size + (c,))
    im = Image.fromarray(pixels[:, :, 0] if c == 1 else pixels, "L" if c == 1 else "RGB")
    out = np.asarray(im.resize((size[1], size[0]), Image.Resampling.LANCZOS))
    return out[:, :, None] if c == 1 else out


# --------------------------------------------------------------------------- public API


def upscale(
    image: Image.Image | np.ndarray,
    model: ModelArg = AUTO_MODEL,
    *,
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    precision: bool | str | None = None,
    assume_quality: int | None = None,
    outscale: float | None = None,
    width: int | None = None,
    height: int | None = None,
    **deprecated: object,
) -> Image.Image | np.ndarray:
    """Upscale a PIL image or a uint8 array; returns the same kind.

    PIL in gives PIL out in the same mode family: grey (``1``, ``L``, ``I;16``, ...) gives
    ``L``, ``LA`` gives ``LA``, colour gives ``RGB``, and any alpha (``RGBA``, palette with
    transparency) gives ``RGBA``; an ICC profile is carried in ``info``. EXIF orientation is not
    applied (that is a file property; :func:`jpegsr.imageio.load_image` handles it). A numpy
    array (H x W, or H x W x C with C in 1, 3, 4; uint8) gives an array of the same dtype, ndim
    and channels. ``model`` is a shipped name, a weights path or a :class:`LoadedModel`;
    ``"auto"`` picks by the JPEG quality of a PIL JPEG (arrays: the blind model), or by
    ``assume_quality``. The result is ``scale`` x the input, or ``outscale`` x, or ``width`` /
    ``height`` pixels with the aspect kept (x4, then an antialiased downscale).
    """
    precision = renamed_precision(precision, deprecated)
    quality = jpeg_quality(image) if isinstance(image, Image.Image) else None
    if assume_quality is not None:  # as `jpegsr upscale --quality Q`
        quality = assume_quality
    loaded = resolve_model(model, quality)
    if isinstance(image, Image.Image):
        notes: list[str] = []
        orientation, exif = exif_orientation(image, notes)
        pixels, alpha, conversion_notes = image_to_arrays(image)
        pixels, alpha = apply_orientation(pixels, alpha, orientation)
        for note in notes + conversion_notes:
            warnings.warn(f"jpegsr: {note}", stacklevel=2)
        out, alpha = upscale_image(loaded, pixels, alpha, tile=tile, overlap=overlap,
                                   precision=precision, outscale=outscale, width=width,
                                   height=height)  # fmt: skip
        result = arrays_to_image(out, alpha)
        icc = image.info.get("icc_profile")
        if icc and icc_colour_space(icc) == ("GRAY" if out.shape[2] == 1 else "RGB"):
            result.info["icc_profile"] = icc
        if exif:
            result.info["exif"] = exif
        return result
    if isinstance(image, np.ndarray):
        if image.dtype not in (np.uint8, np.uint16):
            raise TypeError(f"arrays must be uint8 or uint16, not {image.dtype}")
        sizes = {"outscale": outscale, "width": width, "height": height}
        if image.ndim == 3 and image.shape[2] == 4:
            rgb, alpha = upscale_image(loaded, np.ascontiguousarray(image[:, :, :3]),
                                       image[:, :, 3], tile=tile, overlap=overlap,
                                       precision=precision, **sizes)  # fmt: skip
            return np.dstack([rgb, alpha])
        flat = image.ndim == 2
        pixels = image[:, :, None] if flat else image
        out, _ = upscale_image(loaded, pixels, None, tile=tile, overlap=overlap,
                               precision=precision, **sizes)  # fmt: skip
        return out[:, :, 0] if flat else out
    raise TypeError(f"expected a PIL.Image or a numpy array, not {type(image).__name__}")
