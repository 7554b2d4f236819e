"""Denoising PSNR of a denoiser's weights on held-out images, for its card (issue #19).

Two held-out sets, neither trained on: the images the training config holds out of its own
training folders, and validation/SunHays80 (a 256 px centre crop of each photo). Grayscale
(ITU-R 601 luma), Gaussian noise of each sigma (0..255 scale) drawn from a fixed seed, PSNR
without border, no clipping of the noisy input; sigma 0 is the clean image itself (what the
denoiser costs an input with no noise). Writes a JSON with the command.

    python scripts/eval_denoiser.py src/jpegsr/weights/denoisers/dncnn.safetensors \
        --config configs/dncnn.yaml --json results/denoiser/dncnn.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from jpegsr.config import DenoiserTrainConfig, load_config
from jpegsr.data import list_images, read_rgb
from jpegsr.denoisers import centre_crop, denoising_psnr, gray
from jpegsr.train_denoiser import split_paths
from jpegsr.weights_io import load_model

CROP = 256


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights")
    ap.add_argument("--config", default="configs/dncnn.yaml", help="the run's training config")
    ap.add_argument("--validation", default="../shared/datasets/validation/SunHays80")
    ap.add_argument("--sigmas", default="0,5,15,25,50", help="0: the clean image itself")
    ap.add_argument("--json", required=True)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config)
    assert isinstance(config, DenoiserTrainConfig), "--config must be a denoiser's config"
    loaded = load_model(args.weights, task="denoise")
    held_out = split_paths(config)[1]
    sets = {
        "held-out training images": [gray(read_rgb(p)) for p in held_out],
        f"SunHays80 ({CROP} px centre crops)": [
            centre_crop(gray(read_rgb(p)), CROP) for p in list_images(args.validation)
        ],
    }
    out: dict[str, object] = {
        "weights": args.weights,
        "weights_sha256": hashlib.sha256(Path(args.weights).read_bytes()).hexdigest(),
        "held_out_files": [p.name for p in held_out],
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "sets": {},
    }
    for name, images in sets.items():
        per_sigma = {}
        for sigma in (float(s) for s in args.sigmas.split(",")):
            rows = denoising_psnr(loaded, images, sigma)
            noisy = [r["noisy_psnr"] for r in rows]
            per_sigma[f"{sigma:g}"] = {
                "noisy_psnr": None if sigma == 0 else float(np.mean(noisy)),
                "denoised_psnr": float(np.mean([r["denoised_psnr"] for r in rows])),
                "n": len(rows),
            }
            print(name, sigma, per_sigma[f"{sigma:g}"], flush=True)
        out["sets"][name] = per_sigma  # type: ignore[index]
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
