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

import argparse
import contextlib
import dataclasses
import errno
import functools
import glob
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from jpegsr.imageio import (
    DEFAULT_MAX_PIXELS,
    SAVE_FORMATS,
    ImageLoadError,
    ImageSaveError,
    apply_orientation,
    arrays_to_image,
    exif_orientation,
    icc_colour_space,
    image_to_arrays,
    jpeg_quality,
    load_image,
    remove_stale_temporaries,
    save_image,
)
from jpegsr.models.registry import sr_output
from jpegsr.weights_io import (
    AUTO_MODEL,
    DEFAULT_MODEL,
    LoadedModel,
    WeightsError,
    choose_shipped,
    load_model,
    trained_qualities,
)

# Auto tiling bounds every forward pass to about this many LR pixels per side (256 x 256 LR
# is 1024 x 1024 SR): peak memory then no longer grows with the image.
MAX_PASS_SIDE = 256
DEFAULT_OVERLAP = 16
# Mirrored context added on every side of the image and cropped off the result. The network
# pads each convolution with zeros, which the image's own borders would otherwise see: without
# it a flat image came back with corners 35 levels off and a 1x1 image in the wrong colour.
BORDER = 8
# An RGB image whose channels never differ by more than this is grey content (JPEG chroma
# rounding of a grey image stays within it) and is upscaled as grey, output as R = G = B.
GREY_TOLERANCE = 4
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
)
_LUMA = (0.299, 0.587, 0.114)

ModelArg = str | os.PathLike[str] | LoadedModel


# --------------------------------------------------------------------------- model handling


@functools.lru_cache(maxsize=4)
def _load_cached(name: str) -> LoadedModel:
    """Load once per name or path: repeated ``upscale()`` calls must not re-read weights."""
    return load_model(name)


def resolve_model(model: ModelArg = DEFAULT_MODEL, jpeg_quality: int | None = None) -> LoadedModel:
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
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


PRECISIONS = ("auto", "fp32", "bf16")


def use_bf16(precision: str | bool | None, device: torch.device) -> bool:
    """Resolve a precision choice: ``auto``/``None`` (bf16 where fast), ``fp32``, ``bf16``."""
    if isinstance(precision, bool):
        return precision
    if precision is None or precision == "auto":
        return bf16_is_fast(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return precision == "bf16"


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


def auto_tile(height: int, width: int, overlap: int, size_multiple: int = 1) -> int:
    """Tile size (0 = whole image) keeping every forward pass within ~MAX_PASS_SIDE² LR pixels."""
    if height * width <= MAX_PASS_SIDE * MAX_PASS_SIDE:
        return 0
    ov = _round_up(overlap, size_multiple)
    return max(size_multiple, (MAX_PASS_SIDE - 2 * ov) // size_multiple * size_multiple)


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
    bf16: bool | str | None = None,
) -> np.ndarray:
    """Super-resolve uint8 pixels (H x W, H x W x 1 or H x W x 3); same layout, ``scale`` x size.

    ``tile=None`` picks a tile size automatically (see :func:`auto_tile`), ``tile=0`` runs the
    whole image in one pass. ``bf16``: ``True``/``"bf16"`` bfloat16 autocast, ``False``/
    ``"fp32"`` full precision, ``None``/``"auto"`` bf16 where the hardware runs it natively.
    The module is put in eval mode and channels-last memory format.
    """
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise TypeError("pixels must be a uint8 numpy array")
    if pixels.ndim == 2:
        return upscale_array(loaded_model, pixels[:, :, None], tile, overlap, bf16)[:, :, 0]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise ValueError(f"pixels must be H x W, H x W x 1 or H x W x 3, not {pixels.shape}")
    if (tile is not None and tile < 0) or overlap < 0:
        raise ValueError("tile and overlap must be >= 0")
    if pixels.shape[2] == 3 and is_grey_content(pixels):
        # grey stored as colour (a scanned print saved as a colour JPEG): upscale its luma and
        # keep R = G = B, instead of letting the network invent colour speckles
        luma = np.asarray(Image.fromarray(pixels, "RGB").convert("L"))[:, :, None]
        return np.repeat(upscale_array(loaded_model, luma, tile, overlap, bf16), 3, axis=2)
    desc = loaded_model.descriptor
    module = loaded_model.module
    s, m = desc.scale, max(1, desc.size_multiple)
    h, w, c = pixels.shape
    if h == 0 or w == 0:
        raise ValueError("image has no pixels")
    b = BORDER  # mirrored context on every side, cropped off the result
    hp = max(_round_up(h + 2 * b, m), _round_up(desc.min_size, m))
    wp = max(_round_up(w + 2 * b, m), _round_up(desc.min_size, m))
    ov = _round_up(overlap, m)
    if tile is None:
        tile = auto_tile(hp, wp, overlap, m)
    elif tile > 0:
        tile = _round_up(max(tile, desc.min_size), m)
    min_ctx = _round_up(desc.min_size, m)

    device = _model_device(module)
    module.eval()
    module.to(memory_format=torch.channels_last)
    if not pixels.flags.writeable:  # e.g. np.asarray(pil_image); torch warns on those
        pixels = pixels.copy()
    x = torch.from_numpy(pixels).to(device).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    if c == 1:
        x = x.expand(1, 3, h, w)
    x = _pad_border(x, b)
    x = _pad_bottom_right(x, hp - h - 2 * b, wp - w - 2 * b)
    luma = torch.tensor(_LUMA, device=device).view(1, 3, 1, 1)
    out = np.empty((h * s, w * s, c), dtype=np.uint8)

    half = use_bf16(bf16, device)
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=half):
        for y0, y1, cy0, cy1 in _spans(hp, tile, ov, min_ctx):
            ky0, ky1 = max(y0, b), min(y1, b + h)  # the rows of this tile the image keeps
            if ky0 >= ky1:
                continue
            for x0, x1, cx0, cx1 in _spans(wp, tile, ov, min_ctx):
                kx0, kx1 = max(x0, b), min(x1, b + w)
                if kx0 >= kx1:
                    continue
                patch = x[:, :, cy0:cy1, cx0:cx1].contiguous(memory_format=torch.channels_last)
                sr = sr_output(module(patch)).float()
                if sr.shape[-2:] != (patch.shape[-2] * s, patch.shape[-1] * s):
                    raise RuntimeError(
                        f"model {desc.name} returned {tuple(sr.shape)} for input "
                        f"{tuple(patch.shape)}; expected x{s}"
                    )
                sr = sr[:, :, (ky0 - cy0) * s : (ky1 - cy0) * s, (kx0 - cx0) * s : (kx1 - cx0) * s]
                if c == 1:
                    sr = (sr * luma).sum(dim=1, keepdim=True)
                tile_u8 = sr.clamp(0, 1).mul(255).round().to(torch.uint8)
                oy, ox = (ky0 - b) * s, (kx0 - b) * s
                out[oy : oy + tile_u8.shape[2], ox : ox + tile_u8.shape[3]] = (
                    tile_u8[0].permute(1, 2, 0).cpu().numpy()
                )
    return out


def upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Resize an alpha plane bicubically: the network is trained on colour, not masks."""
    h, w = alpha.shape
    im = Image.fromarray(np.ascontiguousarray(alpha), "L")
    return np.asarray(im.resize((w * scale, h * scale), Image.Resampling.BICUBIC)).copy()


# --------------------------------------------------------------------------- public API


def upscale(
    image: Image.Image | np.ndarray,
    model: ModelArg = AUTO_MODEL,
    *,
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    bf16: bool | str | None = None,
) -> Image.Image | np.ndarray:
    """Upscale a PIL image or a uint8 array; returns the same kind.

    PIL in gives PIL out in the same mode family: grey (``1``, ``L``, ``I;16``, ...) gives
    ``L``, ``LA`` gives ``LA``, colour gives ``RGB``, and any alpha (``RGBA``, palette with
    transparency) gives ``RGBA``; an ICC profile is carried in ``info``. EXIF orientation is not
    applied (that is a file property; :func:`jpegsr.imageio.load_image` handles it). A numpy
    array (H x W, or H x W x C with C in 1, 3, 4; uint8) gives an array of the same dtype, ndim
    and channels. ``model`` is a shipped name, a weights path or a :class:`LoadedModel`;
    ``"auto"`` picks by the JPEG quality of a PIL JPEG (arrays: the blind model).
    """
    quality = jpeg_quality(image) if isinstance(image, Image.Image) else None
    loaded = resolve_model(model, quality)
    s = loaded.descriptor.scale
    if isinstance(image, Image.Image):
        notes: list[str] = []
        orientation, exif = exif_orientation(image, notes)
        pixels, alpha, conversion_notes = image_to_arrays(image)
        pixels, alpha = apply_orientation(pixels, alpha, orientation)
        for note in notes + conversion_notes:
            warnings.warn(f"jpegsr: {note}", stacklevel=2)
        out = upscale_array(loaded, pixels, tile, overlap, bf16)
        result = arrays_to_image(out, None if alpha is None else upscale_alpha(alpha, s))
        icc = image.info.get("icc_profile")
        if icc and icc_colour_space(icc) == ("GRAY" if out.shape[2] == 1 else "RGB"):
            result.info["icc_profile"] = icc
        if exif:
            result.info["exif"] = exif
        return result
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"arrays must be uint8, not {image.dtype}")
        if image.ndim == 3 and image.shape[2] == 4:
            rgb = upscale_array(loaded, np.ascontiguousarray(image[:, :, :3]), tile, overlap, bf16)
            return np.dstack([rgb, upscale_alpha(image[:, :, 3], s)])
        return upscale_array(loaded, image, tile, overlap, bf16)
    raise TypeError(f"expected a PIL.Image or a numpy array, not {type(image).__name__}")


# --------------------------------------------------------------------------- files


class OutputFolderError(ImageSaveError):
    """The output folder cannot be created or written: fatal for every file, reported once."""


@dataclass
class UpscaleSummary:
    """What happened to each input, for the final report and the exit code."""

    outdir: Path
    found: int = 0  # image files found among the inputs
    ok: list[tuple[Path, Path]] = field(default_factory=list)  # (input, output)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (input, warning)

    @property
    def exit_code(self) -> int:
        """0 all done, 1 any failure, 2 nothing to do (no input image found)."""
        if self.found == 0:
            return 2
        return 1 if self.failed else 0

    def line(self) -> str:
        return (
            f"jpegsr: {len(self.ok)} upscaled, {len(self.failed)} failed, "
            f"{len(self.skipped)} skipped; output in {self.outdir}"
        )


def _has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _is_within(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def _images_in(
    folder: Path, recursive: bool, exclude: Path | None, others: list[Path] | None = None
) -> list[Path]:
    """Image files (by suffix) in ``folder``; hidden files and the output folder are left out.
    Other visible files are appended to ``others`` (reported as skipped)."""
    found = []
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    for p in sorted(candidates):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if _is_within(p.resolve(), exclude):
            continue
        if p.suffix.lower() in IMAGE_SUFFIXES:
            found.append(p)
        elif others is not None:
            others.append(p)
    return found


def collect_inputs(
    inputs: Iterable[str | os.PathLike[str]], recursive: bool = False, exclude: Path | None = None
) -> tuple[list[Path], list[tuple[str, str]], list[tuple[str, str]]]:
    """Expand files, folders and glob patterns into (images, problems, skipped).

    Files named explicitly are always tried (a wrong one fails clearly when loaded); folders
    and patterns contribute only files with an image suffix. Repeats are skipped.
    """
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key in seen:
            skipped.append((str(p), "listed more than once"))
        else:
            seen.add(key)
            files.append(p)

    for raw in inputs:
        text = os.fspath(raw)
        p = Path(text)
        if p.is_dir():
            others: list[Path] = []
            images = _images_in(p, recursive, exclude, others)
            skipped.extend((str(o), "no image file suffix") for o in others)
            if not images:
                problems.append((text, "no image files in this folder"))
            for img in images:
                add(img)
        elif p.exists():
            add(p)
        elif _has_glob(text):
            # "**" means "any depth" whether or not --recursive is given (glob's own rule would
            # read it as "*" and silently skip deeper files); --recursive also descends into
            # the folders a pattern matches
            matched = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            images = [m for m in matched if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
            if recursive:
                for d in (m for m in matched if m.is_dir()):
                    images.extend(_images_in(d, True, exclude))
            if not images:
                problems.append((text, "no image files match this pattern"))
            for img in images:
                add(img)
        else:
            problems.append((text, "no such file or directory"))
    return files, problems, skipped


def output_path(outdir: Path, source: Path, fmt: str, suffix: str = "") -> Path:
    """``OUTDIR/<stem><suffix>.<ext>`` with ``jpeg`` written as ``.jpg``."""
    ext = "jpg" if fmt.lower() in ("jpg", "jpeg") else fmt.lower()
    return outdir / f"{source.stem}{suffix}.{ext}"


def _prepare_outdir(outdir: Path) -> None:
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputFolderError("output folder path exists and is not a folder") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputFolderError(f"cannot create output folder: {reason}") from None
    if not os.access(outdir, os.W_OK | os.X_OK):
        raise OutputFolderError("output folder is not writable")


def upscale_files(
    inputs: Sequence[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    model: ModelArg = AUTO_MODEL,
    tile: int | None = None,
    fmt: str = "png",
    suffix: str = "",
    overwrite: bool = False,
    recursive: bool = False,
    threads: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    *,
    skip_existing: bool = False,
    overlap: int = DEFAULT_OVERLAP,
    bf16: bool | str | None = None,
    self_ensemble: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> UpscaleSummary:
    """Upscale every image found in ``inputs`` into ``outdir``; one failure never stops the rest.

    Raises :class:`OutputFolderError` (once) when ``outdir`` cannot be created or written, and
    :class:`~jpegsr.weights_io.WeightsError` when the model cannot be loaded; every other
    problem is recorded per file in the summary and, when given, passed to ``log`` as one line
    ``jpegsr: <file>: <reason>``. ``threads`` sets torch's thread count for the duration.
    ``progress=None`` shows the bar only on a terminal. ``model="auto"`` picks a shipped
    model per file from the JPEG quality in its quantisation tables. ``skip_existing`` keeps
    outputs that already exist and counts them as skipped (resuming an interrupted batch);
    this tool's temporaries left by a killed run are removed in every case.
    """
    fmt = fmt.lower()
    if fmt not in SAVE_FORMATS:
        raise ValueError(f"unsupported output format {fmt!r} (use png, webp or jpg)")
    out_dir = Path(outdir)
    summary = UpscaleSummary(outdir=out_dir)

    def report(kind: list[tuple[str, str]], name: str, reason: str, prefix: str = "") -> None:
        kind.append((name, reason))
        if log is not None:
            log(f"jpegsr: {name}: {prefix}{reason}")

    files, problems, skipped = collect_inputs(inputs, recursive, exclude=out_dir.resolve())
    summary.found = len(files)
    summary.skipped.extend(skipped)
    for name, reason in problems:
        report(summary.failed, name, reason)
    if not files:
        return summary

    def model_for(jpeg_quality: int | None) -> LoadedModel:
        loaded = resolve_model(model, jpeg_quality)
        return with_self_ensemble(loaded) if self_ensemble else loaded

    model_for(None)  # a model that cannot be loaded fails before any output is written
    created = not out_dir.exists()
    _prepare_outdir(out_dir)
    remove_stale_temporaries(out_dir)  # left by a run killed mid-write
    protect = [p.resolve() for p in files]
    protected = set(protect)
    claimed: dict[str, Path] = {}
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        for src in tqdm(files, file=sys.stderr, unit="img", disable=_disable(progress)):
            name = str(src)
            try:  # every per-file failure, output naming included, is this file's alone
                dst = output_path(out_dir, src, fmt, suffix)
                key = os.path.normcase(str(dst.resolve()))
                if dst.resolve() in protected:
                    report(summary.failed, name, f"output {dst} would overwrite an input file")
                    continue
                if key in claimed:
                    report(
                        summary.failed,
                        name,
                        f"output {dst} is already produced from {claimed[key]} "
                        "(rename one of them or use --suffix)",
                    )
                    continue
                claimed[key] = src
                if not overwrite and dst.exists():
                    if skip_existing:
                        summary.skipped.append((name, f"output {dst} exists"))
                    else:
                        report(
                            summary.failed,
                            name,
                            f"output {dst} exists (use --skip-existing to keep it, "
                            "--overwrite to replace it)",
                        )
                    continue
                image = load_image(src, max_pixels)
                loaded = model_for(image.jpeg_quality)
                for note in [*image.warnings, *quality_mismatch(loaded, image.jpeg_quality)]:
                    report(summary.warnings, name, note, prefix="warning: ")
                pixels = upscale_array(loaded, image.pixels, tile, overlap, bf16)
                alpha = None
                if image.alpha is not None:
                    alpha = upscale_alpha(image.alpha, loaded.descriptor.scale)
                notes = save_image(
                    dst,
                    pixels,
                    alpha,
                    icc_profile=image.icc_profile,
                    exif=image.exif,
                    format=fmt,
                    overwrite=overwrite,
                    protect=protect,
                )
                for note in notes:
                    report(summary.warnings, name, note, prefix="warning: ")
                summary.ok.append((src, dst))
            except (ImageLoadError, ImageSaveError) as exc:
                report(summary.failed, name, str(exc))
            except Exception as exc:  # one bad image must not stop the batch
                report(summary.failed, name, _failure_reason(exc))
    finally:
        torch.set_num_threads(old_threads)
        if created and not summary.ok:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only if empty: nothing was written, leave no trace
    return summary


def _failure_reason(exc: BaseException) -> str:
    """One line for an unexpected per-file failure; allocation failures say what to do."""
    text = str(exc)
    if isinstance(exc, MemoryError) or any(
        marker in text
        for marker in ("out of memory", "alloc_cpu", "DefaultCPUAllocator", "not enough memory")
    ):
        return "out of memory (try a smaller --tile)"
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        return "output file name too long for the file system (use a shorter --suffix or rename)"
    first = (text.strip().splitlines() or [""])[0]
    return f"unexpected error: {type(exc).__name__}: {first}"


def _disable(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


# --------------------------------------------------------------------------- command line


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def add_upscale_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``upscale`` command's arguments (the caller owns the parser and subcommands)."""
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns"
    )
    parser.add_argument(
        "-o", "--outdir", default="upscaled", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--model",
        default=AUTO_MODEL,
        help="shipped model name or .safetensors path; auto picks a shipped model per file "
        "from its JPEG quality (default: %(default)s)",
    )
    parser.add_argument(
        "--tile",
        type=_non_negative_int,
        default=None,
        metavar="PX",
        help="LR tile size in pixels; 0 = no tiling (default: automatic, bounded memory)",
    )
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=["png", "webp", "jpg"],
        default="png",
        help="output format (default: %(default)s)",
    )
    parser.add_argument(
        "--suffix", default="", metavar="TEXT", help="appended to each output file's stem"
    )
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    existing.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep outputs that already exist, counted as skipped (resume a batch)",
    )
    parser.add_argument(
        "--self-ensemble",
        action="store_true",
        help="average over 8 flips/rotations: slightly better, 8x slower",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="arithmetic: auto = bf16 where the CPU runs it natively (faster, same quality: "
        "see benchmarks/README.md), else fp32 (default: %(default)s)",
    )
    parser.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    parser.add_argument(
        "--threads", type=_positive_int, default=None, metavar="N", help="CPU threads for torch"
    )
    parser.add_argument(
        "--max-pixels",
        type=_non_negative_int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help="refuse larger inputs (decompression-bomb guard); 0 = no limit (default: %(default)s)",
    )


def upscale_command(args: argparse.Namespace) -> int:
    """Run the ``upscale`` command; returns 0 all ok, 1 any failure, 2 usage error."""

    def log(line: str) -> None:
        tqdm.write(line, file=sys.stderr)

    try:
        summary = upscale_files(
            args.inputs,
            args.outdir,
            model=args.model,
            self_ensemble=args.self_ensemble,
            tile=args.tile,
            fmt=args.fmt,
            suffix=args.suffix,
            overwrite=args.overwrite,
            skip_existing=args.skip_existing,
            recursive=args.recursive,
            threads=args.threads,
            max_pixels=args.max_pixels or None,
            bf16=args.precision,
            log=log,
        )
    except WeightsError as exc:
        print(f"jpegsr: model {args.model}: {exc}", file=sys.stderr)
        return 2
    except OutputFolderError as exc:
        print(f"jpegsr: {args.outdir}: {exc}", file=sys.stderr)
        return 1
    if summary.found == 0:
        print("jpegsr: no input images found", file=sys.stderr)
        return 2
    print(summary.line())
    return summary.exit_code
