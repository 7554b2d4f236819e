"""The evaluation harness behind ``jpegsr benchmark``: any method -> a PSNR/SSIM table.

For each HR image of a set: crop to a multiple of the scale, degrade (MATLAB bicubic down,
Pillow JPEG at ``quality``), run the method on the compressed LR, round to uint8, measure
Y-PSNR/SSIM with ``scale`` border pixels cropped. A method is ``bicubic``, a shipped model
name, ``auto`` (the shipped model ``jpegsr upscale`` picks for that quality) or a weights
file, optionally prefixed ``denoise+`` (the "(M)" rows: the compressed
input is first pre-denoised by the DnCNN of :mod:`jpegsr.denoisers`), or ``dncnn+`` / ``nlm+``
to name the pre-denoiser.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from jpegsr import degrade, metrics
from jpegsr.data import DataError, list_images, read_rgb
from jpegsr.defaults import BENCHMARK_ROOT

DATA_HELP = (
    "get the benchmark sets (Set5, Set14, BSD100, Urban100) from e.g. the EDSR/BasicSR "
    "benchmark bundle or https://github.com/jbhuang0604/SelfExSR (Urban100), place one "
    "folder per set under a root and pass --data-root ROOT (or set JPEGSR_DATA_ROOT)"
)

Method = Callable[[np.ndarray], np.ndarray]


@dataclass
class SetResult:
    name: str
    psnr: float
    ssim: float
    n: int
    rows: list[dict[str, object]] = field(default_factory=list)


def split_method(name: str) -> tuple[str | None, str]:
    """(pre-denoiser or None, base method) of a method name; a bad prefix is a DataError."""
    from jpegsr.denoisers import split_method as split

    try:
        return split(name)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def make_method(
    name: str,
    scale: int,
    quality: int,
    tile: int | None = None,
    self_ensemble: bool = False,
    precision: str = "fp32",
) -> Method:
    """A function compressed-LR uint8 -> SR uint8 for a method name (see module docstring)."""
    pre_denoiser, base = split_method(name)
    if base == "bicubic":

        def run(lq: np.ndarray) -> np.ndarray:
            h, w = lq.shape[:2]
            return degrade.imresize(lq, size=(h * scale, w * scale))

    else:
        from jpegsr.inference import upscale_array, with_self_ensemble
        from jpegsr.weights_io import load_model

        loaded = load_model(model_for(base, quality))
        if self_ensemble:
            loaded = with_self_ensemble(loaded)
        if loaded.descriptor.scale != scale:
            raise DataError(f"{base} is a x{loaded.descriptor.scale} model, not x{scale}")

        def run(lq: np.ndarray) -> np.ndarray:
            return upscale_array(loaded, lq, tile=tile, precision=precision)

    if pre_denoiser is None:
        return run
    from jpegsr.denoisers import make_denoiser

    denoise = make_denoiser(pre_denoiser, quality)
    return lambda lq: run(denoise(lq))


def resolve_set(data_root: Path | None, name: str) -> Path:
    """The folder of set ``name``: a path itself, or a subfolder of the data root."""
    if Path(name).is_dir():
        return Path(name)
    if data_root is None:
        env = os.environ.get("JPEGSR_DATA_ROOT")
        data_root = Path(env) if env else BENCHMARK_ROOT
        if not data_root.is_dir():
            raise DataError(f"no data root given and {data_root} does not exist; {DATA_HELP}")
    if not data_root.is_dir():
        raise DataError(f"data root not found: {data_root}; {DATA_HELP}")
    folder = data_root / name
    if not folder.is_dir():
        raise DataError(f"set {name!r} not found under {data_root}")
    return folder


def evaluate_set(
    method: Method,
    folder: Path,
    scale: int,
    quality: int,
    y_channel: bool = True,
    progress: bool = True,
    name: str | None = None,
) -> SetResult:
    """Per-image and mean PSNR/SSIM of ``method`` on the images in ``folder``."""
    paths = list_images(folder)
    if not paths:
        raise DataError(f"no images in {folder}")
    name = name or folder.name
    rows = []
    for path in tqdm(paths, desc=name, disable=not progress, leave=False, file=sys.stderr):
        hr = read_rgb(path)
        lq, _, hr = degrade.degrade(hr, scale, quality)
        sr = method(lq)
        if sr.shape != hr.shape:
            raise DataError(f"{path}: method returned {sr.shape}, expected {hr.shape}")
        rows.append(
            {
                "image": path.name,
                "psnr": metrics.psnr(sr, hr, border=scale, y_channel=y_channel),
                "ssim": metrics.ssim(sr, hr, border=scale, y_channel=y_channel),
            }
        )
    return SetResult(
        name=name,
        psnr=float(np.mean([r["psnr"] for r in rows])),
        ssim=float(np.mean([r["ssim"] for r in rows])),
        n=len(rows),
        rows=rows,
    )


def markdown_table(method: str, results: list[SetResult]) -> str:
    head = "| method | " + " | ".join(r.name for r in results) + " |"
    sep = "|---|" + "---|" * len(results)
    cells = " | ".join(f"{r.psnr:.2f}/{r.ssim:.4f}" for r in results)
    return f"{head}\n{sep}\n| {method} | {cells} |"


def run_benchmark_command(args: argparse.Namespace) -> int:
    if not 1 <= args.quality <= 100:
        raise DataError(f"--quality must be in 1..100, got {args.quality}")
    set_names = [s.strip() for s in args.sets.split(",") if s.strip()]
    if not set_names:
        raise DataError(f"--sets names no set: {args.sets!r}")
    # checked before the run: a summary must not land on an image, nor fail after hours
    if args.json and (args.json.suffix.lower() != ".json" or args.json.is_dir()):
        raise DataError(f"--json must name a .json file, not {args.json}")
    if args.out and args.out.exists() and not args.out.is_dir():
        raise DataError(f"--out must name a folder, not the file {args.out}")
    folders = [resolve_set(args.data_root, s) for s in set_names]
    if args.self_ensemble and split_method(args.method)[1] == "bicubic":
        raise DataError("--self-ensemble applies to models, not bicubic")
    method = make_method(
        args.method, args.scale, args.quality, args.tile, args.self_ensemble, args.precision
    )
    results = []
    for set_name, folder in zip(set_names, folders, strict=True):
        res = evaluate_set(
            method,
            folder,
            args.scale,
            args.quality,
            not args.rgb,
            not args.no_progress,
            name=Path(set_name).name,
        )
        results.append(res)
        if args.out:
            write_csv(args.out / f"{res.name}.csv", res.rows)
    print(markdown_table(args.method, results))
    if args.json:
        summary = {
            "method": args.method,
            "scale": args.scale,
            "quality": args.quality,
            "channel": "rgb" if args.rgb else "y",
            "self_ensemble": args.self_ensemble,
            "precision": args.precision,
            "pre_denoiser": split_method(args.method)[0],
            "training": training_record(args.method, args.quality),
            "sets": {r.name: {"psnr": r.psnr, "ssim": r.ssim, "n": r.n} for r in results},
            "versions": degrade.versions() | {"python": platform.python_version()},
            "command": command_line(args),
        }
        write_text_atomic(args.json, json.dumps(summary, indent=2) + "\n")
    return 0


# what a benchmark JSON repeats from a weights file's metadata: the model's training budget
TRAINING_KEYS = ("run", "iterations", "batch_size", "lr_patch", "wall_seconds", "device",
                 "machine")  # fmt: skip


def training_record(method: str, quality: int) -> dict[str, str] | None:
    """How the method's model was trained (None for bicubic; keys its weights do not record
    are left out)."""
    base = split_method(method)[1]
    if base == "bicubic":
        return None
    from jpegsr.weights_io import read_metadata, resolve

    meta = read_metadata(resolve(model_for(base, quality)))
    return {k: meta[k] for k in TRAINING_KEYS if k in meta}


def model_for(base: str, quality: int) -> str:
    """The model a method names; "auto" is what `jpegsr upscale` picks for a file of this
    quality (Pillow-written JPEGs have exactly the quality their tables imply)."""
    from jpegsr.defaults import AUTO_MODEL
    from jpegsr.weights_io import choose_shipped

    return choose_shipped(quality) if base == AUTO_MODEL else base


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this result (recorded in the JSON)."""
    parts = ["jpegsr benchmark", f"--method {args.method}", f"--sets {args.sets}"]
    parts += [f"--scale {args.scale}", f"--quality {args.quality}"]
    if args.data_root:
        parts.append(f"--data-root {args.data_root}")
    if args.rgb:
        parts.append("--rgb")
    if args.self_ensemble:
        parts.append("--self-ensemble")
    if args.precision != "fp32":
        parts.append(f"--precision {args.precision}")
    return " ".join(parts)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "psnr", "ssim"])
        w.writeheader()
        for r in rows:
            w.writerow(
                {"image": r["image"], "psnr": f"{r['psnr']:.4f}", "ssim": f"{r['ssim']:.5f}"}
            )
    os.replace(tmp, path)
