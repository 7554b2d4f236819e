"""A batch of image files: inputs found, outputs named, each file upscaled or failed alone.

The policy of ``jpegsr upscale``: files, folders and glob patterns in; ``OUTDIR/<stem><suffix>
.<ext>`` out, written atomically, never over an input; existing outputs refused, replaced
(``overwrite``) or kept (``skip_existing``); every per-file failure one line, never the end of
the batch. The pixels go through :func:`jpegsr.inference.upscale_image`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import glob
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from jpegsr import inference
from jpegsr.imageio import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    SAVE_FORMATS,
    ImageLoadError,
    ImageSaveError,
    load_image,
    remove_stale_temporaries,
    save_image,
)
from jpegsr.inference import DEFAULT_OVERLAP, ModelArg
from jpegsr.weights_io import AUTO_MODEL, LoadedModel


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


@dataclass(frozen=True)
class BatchOptions:
    """How a batch of files is upscaled (the ``jpegsr upscale`` flags, one field each)."""

    model: ModelArg = AUTO_MODEL  # "auto": a shipped model per file from its JPEG quality
    # choose the model as if every file were a JPEG of this quality (a JPEG re-saved at a
    # higher quality keeps the artefacts of the lower one its tables no longer show)
    assume_quality: int | None = None
    outscale: float | None = None  # output size: outscale x the input (at most 4) ...
    width: int | None = None  # ... or this width, the aspect kept ...
    height: int | None = None  # ... or this height
    tile: int | None = None  # LR tile side; None automatic, 0 whole image
    overlap: int = DEFAULT_OVERLAP
    precision: str = "auto"  # auto | fp32 | bf16
    backend: str = "torch"  # torch | onnxruntime (the model exported to ONNX first)
    self_ensemble: bool = False
    fmt: str = "png"  # png | webp | jpg
    suffix: str = ""
    overwrite: bool = False  # replace existing outputs
    skip_existing: bool = False  # keep existing outputs, counted as skipped (resume a batch)
    recursive: bool = False
    threads: int | None = None  # torch threads for the duration
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # None: no limit
    progress: bool | None = None  # None: a bar only on a terminal


def upscale_files(
    inputs: Sequence[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    options: BatchOptions | None = None,
    log: Callable[[str], None] | None = None,
    **fields: object,
) -> UpscaleSummary:
    """Upscale every image found in ``inputs`` into ``outdir``; one failure never stops the rest.

    ``options`` (or :class:`BatchOptions` fields given by keyword) say how. Raises
    :class:`OutputFolderError` (once) when ``outdir`` cannot be created or written, and
    :class:`~jpegsr.weights_io.WeightsError` when the model cannot be loaded; every other
    problem is recorded per file in the summary and, when given, passed to ``log`` as one line
    ``jpegsr: <file>: <reason>``. ``skip_existing`` keeps outputs that already exist and
    counts them as skipped (resuming an interrupted batch); this tool's temporaries left by a
    killed run are removed in every case.
    """
    if "bf16" in fields:  # the old name of precision
        fields["precision"] = inference.renamed_precision(None, {"bf16": fields.pop("bf16")})
    opt = dataclasses.replace(options or BatchOptions(), **fields)
    fmt = opt.fmt.lower()
    if fmt not in SAVE_FORMATS:
        raise ValueError(f"unsupported output format {fmt!r} (use png, webp or jpg)")
    out_dir = Path(outdir)
    summary = UpscaleSummary(outdir=out_dir)

    def report(kind: list[tuple[str, str]], name: str, reason: str, prefix: str = "") -> None:
        kind.append((name, reason))
        if log is not None:
            log(f"jpegsr: {name}: {prefix}{reason}")

    files, problems, skipped = collect_inputs(inputs, opt.recursive, exclude=out_dir.resolve())
    summary.found = len(files)
    summary.skipped.extend(skipped)
    for name, reason in problems:
        report(summary.failed, name, reason)
    if not files:
        return summary

    def model_for(jpeg_quality: int | None) -> LoadedModel:
        loaded = inference.resolve_model(opt.model, jpeg_quality)
        if opt.backend == "onnxruntime":
            from jpegsr.onnx_export import as_onnxruntime

            loaded = as_onnxruntime(loaded)
        return inference.with_self_ensemble(loaded) if opt.self_ensemble else loaded

    model_for(None)  # a model that cannot be loaded fails before any output is written
    created = not out_dir.exists()
    _prepare_outdir(out_dir)
    remove_stale_temporaries(out_dir)  # left by a run killed mid-write
    protect = [p.resolve() for p in files]
    protected = set(protect)  # checked once per file: a set, not the list
    claimed: dict[str, Path] = {}
    old_threads = torch.get_num_threads()
    if opt.threads:
        torch.set_num_threads(opt.threads)
    try:
        for src in tqdm(files, file=sys.stderr, unit="img", disable=_disable(opt.progress)):
            name = str(src)
            try:  # every per-file failure, output naming included, is this file's alone
                dst = output_path(out_dir, src, fmt, opt.suffix)
                refusal = _refusal(src, dst, protected, claimed, opt)
                if refusal == SKIP:
                    summary.skipped.append((name, f"output {dst} exists"))
                elif refusal:
                    report(summary.failed, name, refusal)
                else:
                    for note in _upscale_file(src, dst, fmt, protect, opt, model_for):
                        report(summary.warnings, name, note, prefix="warning: ")
                    summary.ok.append((src, dst))
            except (ImageLoadError, ImageSaveError) as exc:
                report(summary.failed, name, str(exc))
            except ValueError as exc:  # e.g. a --width beyond 4x this file's width
                report(summary.failed, name, str(exc).splitlines()[0])
            except Exception as exc:  # one bad image must not stop the batch
                report(summary.failed, name, _failure_reason(exc))
    finally:
        torch.set_num_threads(old_threads)
        if created and not summary.ok:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only if empty: nothing was written, leave no trace
    return summary


SKIP = "skip"  # _refusal's answer for an existing output kept under skip_existing


def _refusal(
    src: Path, dst: Path, protected: set[Path], claimed: dict[str, Path], opt: BatchOptions
) -> str:
    """Why ``src`` must not be written to ``dst`` ("" when it may, SKIP to keep dst)."""
    resolved = dst.resolve()
    key = os.path.normcase(str(resolved))
    if resolved in protected:
        return f"output {dst} would overwrite an input file"
    if key in claimed:
        return (
            f"output {dst} is already produced from {claimed[key]} "
            "(rename one of them or use --suffix)"
        )
    claimed[key] = src
    if not opt.overwrite and dst.exists():
        if opt.skip_existing:
            return SKIP
        return f"output {dst} exists (use --skip-existing to keep it, --overwrite to replace it)"
    return ""


def _upscale_file(
    src: Path,
    dst: Path,
    fmt: str,
    protect: list[Path],
    opt: BatchOptions,
    model_for: Callable[[int | None], LoadedModel],
) -> list[str]:
    """Load, upscale and atomically save one file; returns its warnings."""
    image = load_image(src, opt.max_pixels)
    quality = opt.assume_quality if opt.assume_quality is not None else image.jpeg_quality
    loaded = model_for(quality)
    notes = [*image.warnings, *inference.quality_mismatch(loaded, quality)]
    pixels, alpha = inference.upscale_image(
        loaded,
        image.pixels,
        image.alpha,
        tile=opt.tile,
        overlap=opt.overlap,
        precision=opt.precision,
        outscale=opt.outscale,
        width=opt.width,
        height=opt.height,
    )
    notes += save_image(
        dst,
        pixels,
        alpha,
        icc_profile=image.icc_profile,
        exif=image.exif,
        format=fmt,
        overwrite=opt.overwrite,
        protect=protect,
        xmp=image.xmp,
    )
    return notes


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
