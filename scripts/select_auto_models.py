"""Choose which shipped model `--model auto` uses at each JPEG quality, on validation data.

    python scripts/select_auto_models.py

Every shipped model that takes compressed input is run on the held-out validation images of
the training folders (the same split `jpegsr train` holds out: never the benchmark sets) at
JPEG qualities 10..90; the best mean Y-PSNR wins each quality, and the best mean over all
qualities is the choice when a file's quality is unknown. Writes the numbers to
results/auto_selection.json and the choice table to src/jpegsr/weights/auto.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jpegsr import metrics
from jpegsr.data import Triplet, build_triplets, list_images, split_train_val
from jpegsr.inference import upscale_array
from jpegsr.weights_io import (
    SHIPPED_DIR,
    LoadedModel,
    load_model,
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-dirs", nargs="+", default=TRAIN_DIRS)
    ap.add_argument("--val-count", type=int, default=10, help="as in the training configs")
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
    paths = [p for d in args.train_dirs for p in list_images(d)]
    train_paths, val_paths = split_train_val(paths, args.val_count)
    if args.on_training_images:
        if not args.evaluate:
            ap.error("--on-training-images needs --evaluate")
        _, val_paths = split_train_val(train_paths, args.val_count)
    val = build_triplets(val_paths, 4, QUALITIES, 8)
    if args.evaluate:
        scores = {w: validation_psnr(load_model(w), val) for w in args.evaluate}
        print(json.dumps({"val_images": [str(p) for p in val_paths], "y_psnr": scores}, indent=2))
        return
    loaded_models = {n: load_model(n) for n in shipped_models()}
    names = [n for n, m in loaded_models.items() if trained_qualities(m.metadata)]
    psnr: dict[str, dict[str, float]] = {}
    for name in names:
        psnr[name] = validation_psnr(loaded_models[name], val)
        print(name, {q: round(v, 3) for q, v in psnr[name].items()}, flush=True)
    by_quality = {str(q): max(names, key=lambda n: psnr[n][str(q)]) for q in QUALITIES}
    unknown = max(names, key=lambda n: np.mean(list(psnr[n].values())))
    command = "python scripts/select_auto_models.py"
    Path("results/auto_selection.json").write_text(json.dumps({
        "val_images": [str(p) for p in val_paths], "y_psnr": psnr,
        "by_quality": by_quality, "unknown": unknown, "command": command,
    }, indent=2) + "\n")  # fmt: skip
    (SHIPPED_DIR / "auto.json").write_text(json.dumps({
        "by_quality": by_quality, "unknown": unknown,
        "made_by": f"{command} (numbers: results/auto_selection.json)",
    }, indent=2) + "\n")  # fmt: skip
    print(json.dumps(by_quality), "unknown:", unknown)


if __name__ == "__main__":
    main()
