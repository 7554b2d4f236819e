"""Command-line entry point: argument parsing only; each command calls one library function.

Errors that are the user's (bad file, bad option, missing data) print one line
``jpegsr: ...`` and exit non-zero; they never dump a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from jpegsr.allocator import keep_freed_memory
from jpegsr.defaults import (
    AUTO_MODEL,
    BENCHMARK_ROOT,
    DATASETS_ROOT,
    DEFAULT_MAX_PIXELS,
    DEFAULT_QUALITY,
    DEFAULT_SETS,
    PRECISIONS,
    REPORT_NAMES,
    SCALES,
)

if TYPE_CHECKING:
    from jpegsr.batch import UpscaleSummary

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _cmd_train(args: argparse.Namespace) -> int:
    import signal

    from jpegsr.config import DenoiserTrainConfig, load_config
    from jpegsr.train import TrainingStopped, train

    overrides = {}
    if args.iterations is not None:
        overrides["iterations"] = args.iterations
    if args.out_dir is not None:
        overrides["out_dir"] = args.out_dir
    if args.threads is not None:
        overrides["threads"] = args.threads
    if args.device is not None:
        overrides["device"] = args.device
    if args.cuda_graph:
        overrides["cuda_graph"] = True
    config = load_config(args.config, overrides)
    try:
        if isinstance(config, DenoiserTrainConfig):
            from jpegsr.train_denoiser import train_denoiser

            path = train_denoiser(config, resume=args.resume, progress=not args.no_progress)
        else:
            path = train(config, resume=args.resume, progress=not args.no_progress)
    except TrainingStopped as stopped:  # Ctrl-C or SIGTERM: a checkpoint where it stopped
        print(f"jpegsr: train: {stopped}", file=sys.stderr)
        return 128 + int(getattr(signal, stopped.signal_name))
    print(f"weights written to {path}")
    return EXIT_OK


def _cmd_models(args: argparse.Namespace) -> int:
    from jpegsr import models
    from jpegsr.weights_io import shipped_models

    rows = models.list_models(args.scale)
    if args.json:
        print(json.dumps({"architectures": rows, "shipped": shipped_models()}, indent=2))
        return EXIT_OK
    print(f"{'name':<20} {'params':>10}  description")
    for r in rows:
        print(f"{r['name']:<20} {r['parameters']:>10,}  {r['description']}")
    print(f"shipped weights: {', '.join(shipped_models()) or 'none'}")
    return EXIT_OK


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from jpegsr.benchmark import run_benchmark_command

    return run_benchmark_command(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from jpegsr.serve.app import ServeOptions, create_app
    except ImportError as exc:
        print(f"jpegsr: serve needs the serve extra ({exc.name} is missing): "
              "pip install 'jpegsr[serve]'", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"jpegsr: warning: serving on {args.host}: other machines can reach this page",
              file=sys.stderr)  # fmt: skip
    from jpegsr.inference import resolve_model

    if args.model != AUTO_MODEL:  # one that cannot serve fails here, in one line; the app
        resolve_model(args.model)  # then finds it in resolve_model's cache
    options = ServeOptions(
        model=args.model,
        max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels or None,
        workers=args.workers,
        queue=args.queue,
        threads=args.threads,
    )
    print(f"jpegsr: serving http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(create_app(options), host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from jpegsr.weights_io import load_model

    try:
        from jpegsr.onnx_export import export_onnx
    except ImportError as exc:  # pragma: no cover - torch itself is always there
        print(f"jpegsr: export needs {exc.name}", file=sys.stderr)
        return EXIT_USAGE
    if args.out.exists() and not args.overwrite:  # never the weights it reads, nor any file
        print(f"jpegsr: {args.out} exists; --overwrite replaces it", file=sys.stderr)
        return EXIT_USAGE
    if args.out.suffix.lower() != ".onnx":
        print(f"jpegsr: -o must name an .onnx file, not {args.out}", file=sys.stderr)
        return EXIT_USAGE
    try:
        path = export_onnx(load_model(args.model), args.out, args.opset)
    except ImportError as exc:
        print(f"jpegsr: export onnx needs the onnx extra ({exc.name} is missing): "
              "pip install 'jpegsr[onnx]'", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    print(f"wrote {path} (opset {args.opset}; input lq: N x 3 x H x W RGB in [0, 1])")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from jpegsr import reports

    texts = reports.build(args.names)
    if args.check:
        stale = reports.stale(texts)
        for path in stale:
            print(f"jpegsr: {path}: differs from what `jpegsr report` builds", file=sys.stderr)
        return EXIT_FAILED if stale else EXIT_OK
    for path in reports.write(texts):
        print(f"wrote {path}")
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from jpegsr.validation import run_validate_command

    return run_validate_command(args)


def _cmd_upscale(args: argparse.Namespace) -> int:
    return upscale_command(args)


# --------------------------------------------------------------------------- upscale


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if abs(value) >= 2**62:
        raise argparse.ArgumentTypeError(f"out of range: {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _outscale(text: str) -> float:
    value = _float(text)
    if not 0 < value <= 4:
        raise argparse.ArgumentTypeError(f"must be in (0, 4], not {value:g}")
    return value


def _int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``low..high``."""

    def parse(text: str) -> int:
        value = _int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, not {value}")
        return value

    return parse


_jpeg_quality = _int_in(1, 100)


def _positive_up_to(high: int) -> Callable[[str], int]:
    """An argparse type: an integer >= 1 (said so when below) and at most ``high``."""

    def parse(text: str) -> int:
        value = _positive_int(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be in 1..{high}, not {value}")
        return value

    return parse


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


TRACEBACK_ENV = "JPEGSR_TRACEBACK"  # set: unexpected errors raise with their traceback
# threads or Ray actors: more is a typo (100,000 threads crashed the process)
MAX_COUNT = 1024


_count = _positive_up_to(MAX_COUNT)


MIN_TILE = 16  # LR pixels: smaller tiles spend nearly all their time on overlap


def _tile(text: str) -> int:
    value = _non_negative_int(text)
    if 0 < value < MIN_TILE:
        raise argparse.ArgumentTypeError(f"must be 0 (no tiling) or >= {MIN_TILE}, not {value}")
    return value


# the opsets torch's TorchScript-based ONNX exporter (jpegsr.onnx_export) writes
ONNX_OPSETS = (7, 20)


_opset = _int_in(*ONNX_OPSETS)
_port = _positive_up_to(65535)


def _megabytes(text: str) -> float:
    value = _float(text)
    if not 0 < value < 1e6:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be a number of MB above 0, not {text}")
    return value


def add_upscale_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``upscale`` command's arguments (the flags of :class:`jpegsr.batch.BatchOptions`)."""
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns"
    )
    parser.add_argument(
        "-o",
        "--outdir",
        default="upscaled",
        metavar="OUT",
        help="output folder (default: %(default)s), or with one input file the output file "
        "itself when OUT ends in .png, .webp, .jpg or .jpeg (its format then follows)",
    )
    parser.add_argument(
        "--model",
        default=AUTO_MODEL,
        help="shipped model name or .safetensors path; auto picks a shipped model per file "
        "from its JPEG quality (default: %(default)s)",
    )
    parser.add_argument(
        "--quality",
        type=_jpeg_quality,
        default=None,
        metavar="Q",
        help="choose the model as if each file were a JPEG of quality Q (1..100), whatever its "
        "quantisation tables say: for a JPEG re-saved at a higher quality, which keeps the "
        "artefacts of the lower one",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--outscale", type=_outscale, default=None, metavar="S",
                      help="output S x the input, 0 < S <= 4 (x4, then an antialiased "
                      "downscale; default 4)")  # fmt: skip
    size.add_argument("--width", type=_positive_int, default=None, metavar="W",
                      help="output W pixels wide, the aspect kept (at most 4x)")  # fmt: skip
    size.add_argument("--height", type=_positive_int, default=None, metavar="H",
                      help="output H pixels high, the aspect kept (at most 4x)")  # fmt: skip
    parser.add_argument(
        "--tile",
        type=_tile,
        default=None,
        metavar="PX",
        help="LR tile size in pixels; 0 = no tiling (default: automatic, bounded memory)",
    )
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=["png", "webp", "jpg"],
        default=None,
        help="output format (default: png)",
    )
    parser.add_argument(
        "--output-quality",
        type=_jpeg_quality,
        default=None,
        metavar="Q",
        help="JPEG or WebP encoder quality of the outputs, 1..100 (default 95; PNG is lossless)",
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
        "--dry-run",
        action="store_true",
        help="list where each input would be written (and what would be refused or kept) "
        "without loading a model or writing anything",
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
    parser.add_argument(
        "--backend",
        choices=["torch", "onnxruntime"],
        default="torch",
        help="run the model with PyTorch, or export it to ONNX and run it with onnxruntime "
        "(needs jpegsr[onnx]; fp32); an .onnx --model always runs on onnxruntime",
    )
    parser.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    parser.add_argument(
        "--threads",
        type=_count,
        default=None,
        metavar="N",
        help="CPU threads for torch; with --engine ray, of each actor (default 1, and the CPUs "
        "Ray reserves for it)",
    )
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="upscale in this process, or with a pool of Ray actors (needs jpegsr[ray]; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="--engine ray: HOST:PORT of a running cluster's head (default: start Ray locally "
        "for this run)",
    )
    parser.add_argument(
        "--actors",
        type=_count,
        default=None,
        metavar="N",
        help="--engine ray: actors upscaling at once, each loading the model once (default 1)",
    )
    parser.add_argument(
        "--max-pixels",
        type=_non_negative_int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help="refuse larger inputs (decompression-bomb guard); 0 = no limit (default: %(default)s)",
    )


OUTPUT_FILE_FORMATS = {".png": "png", ".webp": "webp", ".jpg": "jpg", ".jpeg": "jpg"}
STDIO = "-"  # an input of "-" is standard input; -o - is standard output


def output_file(args: argparse.Namespace) -> tuple[str, str | None, str] | str:
    """Where ``upscale`` writes: (folder, file name or None, format), or why it cannot.

    ``-o`` names a folder, unless it ends in an image suffix and is not an existing folder:
    then it is the output file of the one input file, in the format its suffix names."""
    out = Path(args.outdir)
    suffix_format = OUTPUT_FILE_FORMATS.get(out.suffix.lower())
    if suffix_format is None or out.is_dir():
        return args.outdir, None, args.fmt or "png"
    if len(args.inputs) != 1 or not (args.inputs[0] == STDIO or Path(args.inputs[0]).is_file()):
        return (f"-o {args.outdir} names an output file, which takes exactly one input file "
                "(give -o a folder for several)")  # fmt: skip
    if args.fmt and args.fmt != suffix_format:
        return f"--format {args.fmt} contradicts -o {args.outdir}"
    if args.suffix:
        return "--suffix applies to outputs named after their inputs, not to -o FILE"
    return str(out.parent), out.name, suffix_format


def stdio_problem(args: argparse.Namespace) -> str | None:
    """Why standard input/output cannot be used as asked (None: it can, or is not asked)."""
    if STDIO not in args.inputs and args.outdir != STDIO:
        return None
    if len(args.inputs) != 1:
        return "'-' (standard input) and -o - (standard output) take exactly one input"
    if args.suffix:
        return "--suffix applies to outputs named after their inputs, not to -o -"
    if args.engine == "ray":
        return "--engine ray reads and writes files, not standard input or output"
    if args.dry_run:
        return "--dry-run lists files to be written, not standard input or output"
    if args.outdir == STDIO and sys.stdout.isatty():
        return "-o - would write image data to a terminal: redirect it to a file or a pipe"
    return None


def upscale_command(args: argparse.Namespace) -> int:
    """Run the ``upscale`` command; returns 0 all ok, 1 any failure, 2 usage error.

    Standard input (``-``) and output (``-o -``) are staged through a private temporary
    folder, so the one code path that handles files handles them too."""
    import tempfile

    problem = stdio_problem(args)
    if problem:
        print(f"jpegsr: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if STDIO not in args.inputs and args.outdir != STDIO:
        return _upscale(args, {}, sys.stdout)
    with tempfile.TemporaryDirectory(prefix="jpegsr-") as tmp:
        staged, names = vars(args).copy(), {}
        if args.inputs == [STDIO]:
            from jpegsr.imageio import max_bytes_for

            limit = max_bytes_for(args.max_pixels or None)
            data = sys.stdin.buffer.read() if limit is None else sys.stdin.buffer.read(limit + 1)
            if limit is not None and len(data) > limit:
                too_large = f"larger than {limit} bytes, the limit that goes with --max-pixels"
                print(f"jpegsr: standard input: {too_large}", file=sys.stderr)
                return EXIT_FAILED
            src = Path(tmp) / "stdin"
            src.write_bytes(data)
            staged["inputs"], names[str(src)] = [str(src)], "standard input"
        if args.outdir == STDIO:
            fmt = args.fmt or "png"
            dst = Path(tmp) / "out" / f"stdout.{fmt}"
            staged["outdir"], names[str(dst)] = str(dst), "standard output"
        # the image itself may go to standard output: the summary then goes to standard error
        report = sys.stderr if args.outdir == STDIO else sys.stdout
        code = _upscale(argparse.Namespace(**staged), names, report)
        if args.outdir == STDIO and code == EXIT_OK:
            sys.stdout.buffer.write(dst.read_bytes())
            sys.stdout.buffer.flush()
        return code


def _upscale(args: argparse.Namespace, names: dict[str, str], report: TextIO) -> int:
    """``upscale`` on files; ``names`` renames staged temporaries in what it reports, and
    the summary line goes to ``report``."""
    from tqdm import tqdm

    from jpegsr.batch import BatchOptions, OutputFolderError, plan_files, upscale_files
    from jpegsr.weights_io import WeightsError

    def shown(line: str) -> str:
        for path, name in names.items():
            line = line.replace(path, name)
        return line

    def log(line: str) -> None:
        tqdm.write(shown(line), file=sys.stderr)

    target = output_file(args)
    if isinstance(target, str):
        print(f"jpegsr: {shown(target)}", file=sys.stderr)
        return EXIT_USAGE
    outdir, output_name, fmt = target
    if args.suffix and (Path(args.suffix).name != args.suffix or args.suffix in (".", "..")):
        print(f"jpegsr: --suffix is appended to file names: no folders ({args.suffix!r})",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    if args.output_quality is not None and fmt == "png":
        print("jpegsr: --output-quality applies to jpg and webp outputs; PNG is lossless",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    options = BatchOptions(
        model=args.model,
        assume_quality=args.quality,
        outscale=args.outscale,
        width=args.width,
        height=args.height,
        tile=args.tile,
        precision=args.precision,
        backend=args.backend,
        self_ensemble=args.self_ensemble,
        fmt=fmt,
        output_quality=args.output_quality,
        suffix=args.suffix,
        output_name=output_name,
        overwrite=args.overwrite,
        skip_existing=args.skip_existing,
        recursive=args.recursive,
        threads=args.threads,
        max_pixels=args.max_pixels or None,
    )
    ray_flags = {"--ray-address": args.ray_address, "--actors": args.actors}
    ray_only = [flag for flag, value in ray_flags.items() if value is not None]
    if args.engine != "ray" and ray_only:
        verb = "apply" if len(ray_only) > 1 else "applies"
        print(f"jpegsr: {' and '.join(ray_only)} only {verb} to --engine ray", file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run:  # the plan is the same whatever engine would run it
        summary = plan_files(args.inputs, outdir, options, log=log)
        for src, dst in summary.ok:
            print(f"{src} -> {dst}")
        if _nothing_found(summary):
            return EXIT_USAGE
        print(f"jpegsr: dry run: {len(summary.ok)} would be upscaled, {len(summary.failed)} "
              f"refused, {len(summary.skipped)} skipped; nothing written", file=report)  # fmt: skip
        return summary.exit_code
    try:
        if args.engine == "ray":
            from jpegsr import ray_engine

            missing = ray_engine.missing_dependency()
            if missing is not None:
                print(f"jpegsr: --engine ray needs the ray extra ({missing} is missing): "
                      "pip install 'jpegsr[ray]'", file=sys.stderr)  # fmt: skip
                return EXIT_USAGE
            try:
                summary = ray_engine.upscale_files_ray(
                    args.inputs,
                    outdir,
                    options,
                    address=args.ray_address,
                    actors=args.actors or 1,
                    log=log,
                )
            except ray_engine.RayEngineError as exc:
                print(f"jpegsr: {exc}", file=sys.stderr)
                return exc.exit_code
        else:
            summary = upscale_files(args.inputs, outdir, options, log=log)
    except WeightsError as exc:
        print(f"jpegsr: model {args.model}: {exc}", file=sys.stderr)
        return 2
    except OutputFolderError as exc:
        print(f"jpegsr: {outdir}: {exc}", file=sys.stderr)
        return 1
    if _nothing_found(summary):
        return EXIT_USAGE
    print(shown(summary.line()), file=report)
    return summary.exit_code


def _nothing_found(summary: UpscaleSummary) -> bool:
    """True when no input image was found. Says so in one line, unless each input's own line
    (a missing file, a folder with none) already has."""
    if summary.found:
        return False
    if not summary.failed:
        print("jpegsr: no input images found", file=sys.stderr)
    return True


# --------------------------------------------------------------------------- benchmark, validate


def add_benchmark_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--method",
        required=True,
        help="bicubic, a shipped model name, auto (what upscale picks for --quality) or a "
        ".safetensors file; prefix 'denoise+' to "
        "pre-denoise the compressed input (the paper's (M) rows)",
    )
    p.add_argument("--sets", default=",".join(DEFAULT_SETS), help="comma-separated set names")
    p.add_argument("--scale", type=int, default=4, choices=SCALES)
    p.add_argument("--quality", type=_jpeg_quality, default=DEFAULT_QUALITY, help="JPEG quality")
    p.add_argument("--data-root", type=Path, help=f"folder of set folders ({BENCHMARK_ROOT})")
    p.add_argument("--json", type=Path, help="write the summary as JSON here")
    p.add_argument("--out", type=Path, help="write per-image CSVs into this folder")
    p.add_argument("--rgb", action="store_true", help="measure on RGB, not Y (AIM 2022 style)")
    p.add_argument("--tile", type=_tile, help="tile size for model inference (default: auto)")
    p.add_argument(
        "--self-ensemble", action="store_true", help="models: average over 8 flips/rotations"
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "auto"),
        default="fp32",
        help="models: arithmetic (default %(default)s, the reference on every machine)",
    )
    p.add_argument("--no-progress", action="store_true")


def add_validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("weights", nargs="+", help="shipped model names or .safetensors paths")
    p.add_argument("--against", help="reference model: print paired gains and the ship rule")
    p.add_argument("--against-label",
                   help="name for the reference's results (default: its stem), e.g. the run "
                   "that made a weights file, whose scores are then reused")  # fmt: skip
    p.add_argument("--data-root", type=Path, default=DATASETS_ROOT,
                   help="folder holding validation/SunHays80 and train/{BSD200,T91}")  # fmt: skip
    p.add_argument("--images", type=Path,
                   help="score on this folder's images instead of Sun-Hays 80 + held-out "
                   "training images (e.g. .extra_photos/holdout)")  # fmt: skip
    p.add_argument("--out", type=Path,
                   help="per-image scores folder, reused for unchanged weights (default "
                   "results/validation, or results/validation/<images folder name>)")  # fmt: skip
    p.add_argument("--label", action="append", default=[],
                   help="name for each weights file's results (default: its stem)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true")


# --------------------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jpegsr", description="x4 super-resolution of heavily compressed JPEGs"
    )
    from jpegsr import __version__

    parser.add_argument("--version", action="version", version=f"jpegsr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("upscale", help="upscale JPEG/PNG images x4 with a shipped model")
    add_upscale_arguments(p)
    p.set_defaults(func=_cmd_upscale)

    p = sub.add_parser("serve", help="a local web page and HTTP API (needs jpegsr[serve])")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=_port, default=8000)
    p.add_argument("--model", default=AUTO_MODEL, help="default model (default: %(default)s)")
    p.add_argument("--max-upload-mb", type=_megabytes, default=20.0, metavar="MB",
                   help="larger uploads get 413 (default: %(default)s)")  # fmt: skip
    p.add_argument("--max-pixels", type=_non_negative_int, default=DEFAULT_MAX_PIXELS,
                   metavar="N", help="larger images get 400; 0 = no limit")  # fmt: skip
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="images upscaled at once (default: %(default)s)")  # fmt: skip
    p.add_argument("--queue", type=_positive_int, default=8,
                   help="requests in progress before 503 (default: %(default)s)")  # fmt: skip
    p.add_argument("--threads", type=_count, default=None, help="CPU threads for torch")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("export", help="export a model for other runtimes (ONNX)")
    p.add_argument("format", choices=["onnx"])
    p.add_argument("model", help="shipped model name or .safetensors path")
    p.add_argument("-o", "--out", type=Path, required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=_opset, default=17)
    p.add_argument("--overwrite", action="store_true", help="replace an existing -o file")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("report", help="rebuild derived tables from committed results")
    p.add_argument("names", nargs="+", choices=[*REPORT_NAMES, "all"], metavar="NAME",
                   help=f"one or more of {', '.join(REPORT_NAMES)}, or all")  # fmt: skip
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if a committed file differs")  # fmt: skip
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("validate", help="per-image validation scores; paired gains vs a model")
    add_validate_arguments(p)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("benchmark", help="PSNR/SSIM of a method on benchmark sets")
    add_benchmark_arguments(p)
    p.set_defaults(func=_cmd_benchmark)

    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("config", help="YAML training config (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    p.add_argument("--iterations", type=_positive_int, help="override the config's iteration count")
    p.add_argument("--out-dir", help="override the config's output folder")
    p.add_argument("--threads", type=_count, help="torch CPU threads (does not change results)")
    p.add_argument(
        "--device", choices=["cpu", "cuda"], help="override the config's device (cpu or cuda)"
    )
    p.add_argument(
        "--cuda-graph", action="store_true", help="replay the step as one CUDA graph (GPU only)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("models", help="list architectures and shipped weights")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--scale", type=int, default=4, choices=SCALES)
    p.set_defaults(func=_cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    keep_freed_memory()  # this process is ours: reuse freed memory instead of faulting it in
    with warnings.catch_warnings():
        warnings.showwarning = _print_warning
        return _run(args)


def _print_warning(message: Warning | str, *_: object, **__: object) -> None:
    """A warning as one line: ``jpegsr: warning: ...`` (no file, line or category)."""
    print(f"jpegsr: warning: {str(message).removeprefix('jpegsr: ')}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from jpegsr.config import ConfigError
    from jpegsr.data import DataError
    from jpegsr.weights_io import WeightsError

    try:
        return args.func(args)
    except (ConfigError, DataError, WeightsError, FileNotFoundError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"jpegsr: error: {msg}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED
    except OSError as exc:  # a file or folder it cannot read or write: one line
        where = f": {exc.filename}" if exc.filename else ""
        print(f"jpegsr: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("jpegsr: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - anything else: one line, never a traceback
        if os.environ.get(TRACEBACK_ENV):
            raise
        text = str(exc).strip()
        first = text.splitlines()[0] if text else ""
        print(f"jpegsr: error: {type(exc).__name__}: {first} (set {TRACEBACK_ENV}=1 for the "
              "traceback)", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
