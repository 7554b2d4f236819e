"""Command-line entry point: argument parsing only; each command calls one library function.

Errors that are the user's (bad file, bad option, missing data) print one line
``jpegsr: ...`` and exit non-zero; they never dump a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _cmd_train(args: argparse.Namespace) -> int:
    from jpegsr.config import load_config
    from jpegsr.train import train

    overrides = {}
    if args.iterations is not None:
        overrides["iterations"] = args.iterations
    if args.out_dir is not None:
        overrides["out_dir"] = args.out_dir
    if args.threads is not None:
        overrides["threads"] = args.threads
    if args.device is not None:
        overrides["device"] = args.device
    config = load_config(args.config, overrides)
    path = train(config, resume=args.resume, progress=not args.no_progress)
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


def _cmd_validate(args: argparse.Namespace) -> int:
    from jpegsr.validation import run_validate_command

    return run_validate_command(args)


def _cmd_upscale(args: argparse.Namespace) -> int:
    from jpegsr.inference import upscale_command

    return upscale_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jpegsr", description="x4 super-resolution of heavily compressed JPEGs"
    )
    from jpegsr import __version__

    parser.add_argument("--version", action="version", version=f"jpegsr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("upscale", help="upscale JPEG/PNG images x4 with a shipped model")
    from jpegsr.inference import add_upscale_arguments

    add_upscale_arguments(p)
    p.set_defaults(func=_cmd_upscale)

    p = sub.add_parser("validate", help="per-image validation scores; paired gains vs a model")
    from jpegsr.validation import add_validate_arguments

    add_validate_arguments(p)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("benchmark", help="PSNR/SSIM of a method on benchmark sets")
    from jpegsr.benchmark import add_benchmark_arguments

    add_benchmark_arguments(p)
    p.set_defaults(func=_cmd_benchmark)

    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("config", help="YAML training config (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    p.add_argument("--iterations", type=int, help="override the config's iteration count")
    p.add_argument("--out-dir", help="override the config's output folder")
    p.add_argument("--threads", type=int, help="torch CPU threads (does not change results)")
    p.add_argument(
        "--device", choices=["cpu", "cuda"], help="override the config's device (cpu or cuda)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("models", help="list architectures and shipped weights")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--scale", type=int, default=4)
    p.set_defaults(func=_cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from jpegsr.config import ConfigError
    from jpegsr.data import DataError
    from jpegsr.weights_io import WeightsError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DataError, WeightsError, FileNotFoundError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"jpegsr: error: {msg}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED
    except KeyboardInterrupt:
        print("jpegsr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
