"""Choose which shipped model `--model auto` uses at each JPEG quality, on validation data.

    python scripts/select_auto_models.py

Every shipped model that takes compressed input is scored on the validation images `jpegsr
validate` uses (Sun-Hays 80 plus the 10 training images every config holds out: never the
benchmark sets) at JPEG qualities 10..90; the best mean Y-PSNR wins each quality, and the best
mean over all qualities is the choice when a file's quality is unknown. Per-image scores are
kept (and reused) in results/validation/NAME.json, the files `jpegsr validate` keeps; the
winner's paired gain over the runner-up, with its standard error, says how clear each choice
is. Writes the numbers to results/auto_selection.json and the choice table to
src/jpegsr/weights/auto.json.

`--evaluate` is the older, quicker check on the 10 held-out training images alone, kept so the
experiments recorded with it (results/experiments/README.md) can be run again; new candidates
are judged with `jpegsr validate CANDIDATE --against SHIPPED`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from jpegsr import metrics
from jpegsr.data import DataError, Triplet, build_triplets, list_images, split_train_val
from jpegsr.defaults import DATASETS_ROOT
from jpegsr.inference import upscale_array
from jpegsr.reports.common import write_atomic
from jpegsr.validation import RESULTS, paired_gains, scores_for, validation_images
from jpegsr.weights_io import (
    SHIPPED_DIR,
    LoadedModel,
    load_model,
    read_metadata,
    shipped_models,
    trained_qualities,
)

TRAIN_DIRS = ["../shared/datasets/train/BSD200", "../shared/datasets/train/T91"]
QUALITIES = [10, 20, 30, 40, 50, 60, 70, 80, 90]


def validation_psnr(loaded: LoadedModel, val: list[Triplet]) -> dict[str, float]:
    """Mean Y-PSNR (fp32) per JPEG quality on the validation triplets."""
    return {
        str(q): float(np.mean([
            metrics.psnr(upscale_array(loaded, t.compressed[q], precision="fp32"), t.hr, border=4)
            for t in val
        ]))
        for q in QUALITIES
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", type=Path, default=DATASETS_ROOT)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--train-dirs", nargs="+", default=TRAIN_DIRS, help="with --evaluate")
    ap.add_argument("--val-count", type=int, default=10, help="with --evaluate")
    ap.add_argument(
        "--evaluate",
        nargs="+",
        metavar="WEIGHTS",
        help="only print these candidates' validation PSNR (JSON); choose and write nothing",
    )
    ap.add_argument(
        "--on-training-images",
        action="store_true",
        help="with --evaluate: score as many *training* images instead (spread the same way), "
        "to see how far the models fit what they were trained on",
    )
    args = ap.parse_args()
    if args.on_training_images and not args.evaluate:
        ap.error("--on-training-images needs --evaluate")
    try:
        if args.evaluate:
            evaluate(args.evaluate, args.train_dirs, args.val_count, args.on_training_images)
        else:
            select(args.data_root, not args.no_progress)
    except DataError as exc:  # a missing data root or image folder: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def select(data_root: Path, progress: bool) -> None:
    """Score every shipped model taking compressed input; write auto.json and its numbers."""
    images = [str(p) for p in validation_images(data_root)]  # a missing data root fails here
    # the header says which models take compressed input: no model is built just to ask
    names = [
        n for n in shipped_models()
        if trained_qualities(read_metadata(SHIPPED_DIR / f"{n}.safetensors"))
    ]  # fmt: skip
    scores = {
        n: scores_for(n, n, data_root, RESULTS, progress, qualities=QUALITIES).psnr for n in names
    }
    psnr = {n: {str(q): float(np.mean([s[str(q)] for s in scores[n].values()])) for q in QUALITIES}
            for n in names}  # fmt: skip
    for name in names:
        print(name, {q: round(v, 3) for q, v in psnr[name].items()}, flush=True)
    by_quality, margins = {}, {}
    for q in QUALITIES:
        ranked = sorted(names, key=lambda n: psnr[n][str(q)], reverse=True)
        by_quality[str(q)] = ranked[0]
        if len(ranked) > 1:
            (gain,) = paired_gains(scores[ranked[0]], scores[ranked[1]], [q])
            margins[str(q)] = {"runner_up": ranked[1], "gain_db": gain.mean_db,
                               "se_db": gain.se_db, "n": gain.n}  # fmt: skip
    unknown = max(names, key=lambda n: np.mean(list(psnr[n].values())))
    command = "python scripts/select_auto_models.py"
    write_atomic(Path("results/auto_selection.json"), json.dumps({
        "val_images": images, "y_psnr": psnr, "by_quality": by_quality,
        "margin_over_runner_up": margins, "unknown": unknown, "command": command,
    }, indent=2) + "\n")  # fmt: skip
    write_atomic(SHIPPED_DIR / "auto.json", json.dumps({
        "by_quality": by_quality, "unknown": unknown,
        "made_by": f"{command} (numbers: results/auto_selection.json)",
    }, indent=2) + "\n")  # fmt: skip
    print(json.dumps(by_quality), "unknown:", unknown)


def evaluate(
    weights: list[str], train_dirs: list[str], val_count: int, on_training_images: bool
) -> None:
    """Print the candidates' mean Y-PSNR on the held-out training images (JSON); the older
    check, its reference numbers in git history (results/experiments/README.md)."""
    paths = [p for d in train_dirs for p in list_images(d)]
    train_paths, val_paths = split_train_val(paths, val_count)
    if on_training_images:
        _, val_paths = split_train_val(train_paths, val_count)
    val = build_triplets(val_paths, 4, QUALITIES, 8)
    scores = {w: validation_psnr(load_model(w), val) for w in weights}
    print(json.dumps({"val_images": [str(p) for p in val_paths], "y_psnr": scores}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
