"""A batch of image files: inputs found, outputs named, each file upscaled or failed alone.

The policy of ``jpegsr upscale``: files, folders and glob patterns in; ``OUTDIR/<stem><suffix>
.<ext>`` out, written atomically, never over an input; existing outputs refused, replaced
(``overwrite``) or kept (``skip_existing``); every per-file failure one line, never the end of
the batch. The pixels go through :func:`jpegsr.inference.upscale_image`.

:func:`upscale_files` runs every file in this process; :mod:`jpegsr.ray_engine` runs them on
Ray actors. Both drive the same :class:`Batch` (inputs, output folder, plan, report) and the
same per-file step, :func:`process_file`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import filecmp
import glob
import itertools
import os
import secrets
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from jpegsr import inference
from jpegsr.defaults import AUTO_MODEL, DEFAULT_MAX_PIXELS
from jpegsr.imageio import (
    IMAGE_SUFFIXES,
    SAVE_FORMATS,
    TEMP_PREFIX,
    ImageLoadError,
    ImageSaveError,
    load_image,
    remove_stale_temporaries,
    save_image,
)
from jpegsr.inference import DEFAULT_OVERLAP, ModelArg
from jpegsr.weights_io import LoadedModel


class OutputFolderError(ImageSaveError):
    """The output folder cannot be created or written: fatal for every file, reported once."""


@dataclass
class UpscaleSummary:
    """What happened to each input, for the final report and the exit code."""

    outdir: Path
    output_file: Path | None = None  # set when the one output was named (`-o NAME.png`)
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
            f"{len(self.skipped)} skipped; output in {self.output_file or self.outdir}"
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


def _glob_base(pattern: str) -> Path:
    """The folder a glob pattern starts from: its leading parts without wildcards."""
    parts = Path(pattern).parts
    fixed = [part for part in itertools.takewhile(lambda part: not _has_glob(part), parts)]
    return Path(*fixed) if fixed else Path()


@dataclass
class Inputs:
    """What :func:`collect_inputs` found: the image files, where each goes below the output
    folder (``places``: the sub-folder it was found in, relative to the folder or pattern
    named; absent = the output folder itself), and the inputs that failed or were skipped."""

    files: list[Path] = field(default_factory=list)
    places: dict[Path, Path] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)


def collect_inputs(
    inputs: Iterable[str | os.PathLike[str]], recursive: bool = False, exclude: Path | None = None
) -> Inputs:
    """Expand files, folders and glob patterns into :class:`Inputs`.

    Files named explicitly are always tried (a wrong one fails clearly when loaded); folders
    and patterns contribute only files with an image suffix. Repeats are skipped. Files found
    in sub-folders (``--recursive``, ``**``) keep their sub-folder below the output folder.
    """
    found = Inputs()
    files, problems, skipped = found.files, found.problems, found.skipped
    seen: set[Path] = set()

    def add(p: Path, base: Path | None = None) -> None:
        key = p.resolve()
        if key in seen:
            skipped.append((str(p), "listed more than once"))
            return
        seen.add(key)
        files.append(p)
        if base is not None:
            place = p.parent.relative_to(base)
            if place != Path():
                found.places[p] = place

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
                add(img, p)
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
            base = _glob_base(text)
            for img in images:
                add(img, base if img.is_relative_to(base) else None)
        else:
            problems.append((text, "no such file or directory"))
    return found


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
    output_quality: int | None = None  # JPEG/WebP encoder quality (None: 95)
    suffix: str = ""
    output_name: str | None = None  # the one output's file name (`-o NAME.png` with one input)
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
    batch = Batch(inputs, outdir, options, log, **fields)
    if not batch.files:
        return batch.summary
    model_for = model_picker(batch.options)
    model_for(None)  # a model that cannot be loaded fails before any output is written
    batch.open()
    opt = batch.options
    old_threads = torch.get_num_threads()
    if opt.threads:
        torch.set_num_threads(opt.threads)
    try:
        for src in tqdm(batch.files, file=sys.stderr, unit="img", disable=hide_bar(opt.progress)):
            planned = batch.plan(src)
            if isinstance(planned, Path):
                planned = process_file(src, planned, opt, batch.protect, model_for)
            batch.record(planned)
    finally:
        torch.set_num_threads(old_threads)
        batch.finish()
    return batch.summary


def plan_files(
    inputs: Sequence[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    options: BatchOptions | None = None,
    log: Callable[[str], None] | None = None,
    **fields: object,
) -> UpscaleSummary:
    """What :func:`upscale_files` would do, without loading a model or writing anything (the
    output folder is not even created): each planned (input, output) pair in ``ok``, the
    inputs it would refuse in ``failed`` and the ones it would keep in ``skipped``."""
    batch = Batch(inputs, outdir, options, log, **fields)
    for src in batch.files:
        planned = batch.plan(src)
        if isinstance(planned, Path):
            batch.summary.ok.append((src, planned))
        else:
            batch.record(planned)
    return batch.summary


def model_picker(opt: BatchOptions) -> Callable[[int | None], LoadedModel]:
    """The model ``opt`` asks for, per file's JPEG quality, for one batch or one actor. Each
    model is wrapped (onnxruntime backend, self-ensemble) once, so what inference derives
    from the wrapper (its fused copy) is made once, not once per file."""
    wrapped: dict[int, tuple[LoadedModel, LoadedModel]] = {}

    def model_for(jpeg_quality: int | None) -> LoadedModel:
        loaded = inference.resolve_model(opt.model, jpeg_quality)  # cached by name
        if id(loaded) not in wrapped:  # the pair keeps ``loaded`` alive: its id stays its own
            wrapped[id(loaded)] = (loaded, _wrapped(loaded, opt))
        return wrapped[id(loaded)][1]

    return model_for


def _wrapped(loaded: LoadedModel, opt: BatchOptions) -> LoadedModel:
    if opt.backend == "onnxruntime":
        from jpegsr.onnx_export import as_onnxruntime

        loaded = as_onnxruntime(loaded)
    return inference.with_self_ensemble(loaded) if opt.self_ensemble else loaded


@dataclass(frozen=True)
class FileResult:
    """What became of one input: the one record both engines report (:meth:`Batch.record`)."""

    source: str  # the input, as found
    status: str  # OK, FAILED or SKIPPED
    output: str = ""  # OK: the file written
    reason: str = ""  # FAILED, SKIPPED: why, one line
    warnings: tuple[str, ...] = ()


OK, FAILED, SKIPPED = "ok", "failed", "skipped"


class Batch:
    """One run of ``jpegsr upscale`` up to the pixels: inputs, output folder, plan and report.

    Both engines drive it the same way: :meth:`plan` each of :attr:`files` where the batch
    was started (output name, refusal of existing outputs), :func:`process_file` each planned
    (input, output) pair wherever the model runs, :meth:`record` each result, :meth:`finish`.
    Creating it expands the inputs and reports the ones that do not exist; :meth:`open`
    prepares the output folder.
    """

    def __init__(
        self,
        inputs: Sequence[str | os.PathLike[str]],
        outdir: str | os.PathLike[str],
        options: BatchOptions | None = None,
        log: Callable[[str], None] | None = None,
        **fields: object,
    ) -> None:
        if "bf16" in fields:  # the old name of precision
            fields["precision"] = inference.renamed_precision(None, {"bf16": fields.pop("bf16")})
        opt = dataclasses.replace(options or BatchOptions(), **fields)
        fmt = opt.fmt.lower()
        if fmt not in SAVE_FORMATS:
            raise ValueError(f"unsupported output format {fmt!r} (use png, webp or jpg)")
        if opt.output_quality is not None and (fmt == "png" or not 1 <= opt.output_quality <= 100):
            raise ValueError("an output quality (1..100) applies to jpg and webp, not png")
        self.options = dataclasses.replace(opt, fmt=fmt)
        if opt.output_name and (len(inputs) != 1 or not Path(inputs[0]).is_file()):
            raise ValueError("an output file name takes exactly one input file")
        self.outdir = Path(outdir)
        named = self.outdir / opt.output_name if opt.output_name else None
        self.summary = UpscaleSummary(outdir=self.outdir, output_file=named)
        self._log = log
        found = collect_inputs(inputs, opt.recursive, exclude=self.outdir.resolve())
        self.files, self.places = found.files, found.places
        self.summary.found = len(self.files)
        self.summary.skipped.extend(found.skipped)
        for name, reason in found.problems:
            self._report(self.summary.failed, name, reason)
        self.protect = [p.resolve() for p in self.files]
        self._protected = set(self.protect)  # checked once per file: a set, not the list
        self._claimed: dict[str, Path] = {}
        self._created = False

    def open(self) -> None:
        """Create the output folder (or raise :class:`OutputFolderError`) and remove this
        tool's temporaries left in it by a killed run."""
        self._created = not self.outdir.exists()
        _prepare_outdir(self.outdir)
        self.remove_stale_temporaries()

    def remove_stale_temporaries(self) -> None:
        """Remove temporaries of killed runs from the output folder and the sub-folders this
        batch writes to (never a wider search: the output folder may be any folder)."""
        for folder in sorted({self.outdir, *(self.outdir / p for p in self.places.values())}):
            if folder.is_dir():
                remove_stale_temporaries(folder)

    def plan(self, src: Path) -> Path | FileResult:
        """The output ``src`` is to be written to, or its result when it must not be."""
        name = str(src)
        try:  # every per-file failure, output naming included, is this file's alone
            opt = self.options
            if opt.output_name:
                dst = self.outdir / opt.output_name
            else:
                folder = self.outdir / self.places.get(src, Path())
                dst = output_path(folder, src, opt.fmt, opt.suffix)
            refusal = _refusal(src, dst, self._protected, self._claimed, self.options)
        except Exception as exc:
            return FileResult(name, FAILED, reason=failure_reason(exc))
        if refusal == SKIP:
            return FileResult(name, SKIPPED, reason=f"output {dst} exists")
        if refusal:
            return FileResult(name, FAILED, reason=refusal)
        return dst

    def record(self, result: FileResult) -> None:
        """Add one file's result to the summary; failures and warnings become log lines."""
        if result.status == OK:
            for note in result.warnings:
                self._report(self.summary.warnings, result.source, note, prefix="warning: ")
            self.summary.ok.append((Path(result.source), Path(result.output)))
        elif result.status == SKIPPED:
            self.summary.skipped.append((result.source, result.reason))
        else:
            self._report(self.summary.failed, result.source, result.reason)

    def finish(self) -> None:
        """Remove the output folder again when this run created it and wrote nothing."""
        if self._created and not self.summary.ok:
            with contextlib.suppress(OSError):
                self.outdir.rmdir()  # only if empty: nothing was written, leave no trace

    def _report(
        self, kind: list[tuple[str, str]], name: str, reason: str, prefix: str = ""
    ) -> None:
        kind.append((name, reason))
        if self._log is not None:
            self._log(f"jpegsr: {name}: {prefix}{reason}")


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


def process_file(
    src: Path,
    dst: Path,
    opt: BatchOptions,
    protect: Sequence[Path],
    model_for: Callable[[int | None], LoadedModel],
    *,
    same_output_is_done: bool = False,
) -> FileResult:
    """Upscale one planned file into ``dst``: the per-file step of every engine.

    Never raises for the file's own problems: they come back as the result's one-line
    reason. ``same_output_is_done`` makes a rerun of the item idempotent: when ``dst`` has
    appeared since it was planned and holds exactly the bytes this run writes, the earlier
    attempt is taken as done instead of failing with "output exists" (the Ray engine's
    retries after a worker died; see :mod:`jpegsr.ray_engine`).
    """
    name = str(src)
    try:
        notes = _upscale_file(src, dst, opt.fmt, protect, opt, model_for, same_output_is_done)
    except Exception as exc:  # one bad image must not stop the batch
        return FileResult(name, FAILED, reason=failure_reason(exc))
    return FileResult(name, OK, output=str(dst), warnings=tuple(notes))


def _upscale_file(
    src: Path,
    dst: Path,
    fmt: str,
    protect: Sequence[Path],
    opt: BatchOptions,
    model_for: Callable[[int | None], LoadedModel],
    same_output_is_done: bool = False,
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

    def save(path: Path, overwrite: bool) -> list[str]:
        return save_image(
            path,
            pixels,
            alpha,
            icc_profile=image.icc_profile,
            exif=image.exif,
            format=fmt,
            overwrite=overwrite,
            protect=protect,
            xmp=image.xmp,
            quality=opt.output_quality,
        )

    dst.parent.mkdir(parents=True, exist_ok=True)  # a sub-folder kept from the inputs
    try:
        return notes + save(dst, opt.overwrite)
    except ImageSaveError:
        if opt.overwrite or not same_output_is_done or not dst.is_file():
            raise
        saved = _saved_before(dst, save)
        if saved is None:
            raise
        return notes + saved


def _saved_before(dst: Path, save: Callable[[Path, bool], list[str]]) -> list[str] | None:
    """``save``'s warnings if ``dst`` already holds exactly the bytes it writes (encoded
    beside ``dst`` under a temporary name and compared), else None."""
    check = dst.parent / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        notes = save(check, False)
        return notes if filecmp.cmp(check, dst, shallow=False) else None
    finally:
        check.unlink(missing_ok=True)


def failure_reason(exc: BaseException) -> str:
    """The one-line reason a file failed, from the exception its processing raised."""
    if isinstance(exc, (ImageLoadError, ImageSaveError)):
        return str(exc)
    if isinstance(exc, ValueError):  # e.g. a --width beyond 4x this file's width
        return (str(exc).splitlines() or [type(exc).__name__])[0]
    return _failure_reason(exc)


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


def hide_bar(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` for a progress option: None (only on a terminal), or its opposite."""
    return None if progress is None else not progress
