"""Select the "(M)" baseline's non-local-means strengths on training images (never test sets).

For each JPEG quality, grid-search OpenCV fastNlMeansDenoisingColored's (h, hColor) for the
best mean Y-PSNR of nlm+bicubic x4 against HR on a fixed subset of BSD200, and write
results/denoise_params.json. The chosen values are copied into jpegsr.denoisers.NLM_STRENGTH.

    python scripts/select_denoise_params.py --train-dir ../shared/datasets/train/BSD200
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import cv2
import numpy as np

from jpegsr import degrade, denoisers, metrics
from jpegsr.data import list_images, read_rgb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-dir", default="../shared/datasets/train/BSD200")
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--qualities", default="10,20,30,50,90")
    ap.add_argument("--out", default="results/denoise_params.json")
    args = ap.parse_args()
    paths = list_images(args.train_dir)[:: max(1, len(list_images(args.train_dir)) // args.images)]
    paths = paths[: args.images]
    cv2.setNumThreads(1)  # leave the other core to whatever else runs
    hs = [2.0, 4.0, 6.0, 9.0, 12.0]
    hcs = [3.0, 6.0, 10.0, 15.0]
    result = {}
    for q in [int(x) for x in args.qualities.split(",")]:
        data = [degrade.degrade(read_rgb(p), 4, q) for p in paths]
        best = None
        for h, hc in itertools.product(hs, hcs):
            scores = []
            for lq, _, hr in data:
                d = denoisers.nlm(lq, q, strength=(h, hc))
                sr = degrade.imresize(d, size=hr.shape[:2])
                scores.append(metrics.psnr(sr, hr, border=4))
            score = float(np.mean(scores))
            if best is None or score > best[0]:
                best = (score, h, hc)
        plain = float(
            np.mean(
                [
                    metrics.psnr(degrade.imresize(lq, size=hr.shape[:2]), hr, border=4)
                    for lq, _, hr in data
                ]
            )
        )
        result[q] = {"h": best[1], "hColor": best[2], "psnr": best[0], "bicubic_psnr": plain}
        print(q, result[q], flush=True)
    out = {
        "images": [p.name for p in paths],
        "grid": {"h": hs, "hColor": hcs},
        "selected": result,
        "versions": degrade.versions(),
        "command": "python scripts/select_denoise_params.py",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
