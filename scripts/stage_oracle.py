"""Where a two-stage model loses: Stage I's recovery against Stage II fed the clean LR.

    python scripts/stage_oracle.py MODEL --images N --json OUT.json

On the first N validation images (Sun-Hays 80, never a benchmark set), at q = 10, 20, 30, 50:
Y-PSNR of the whole model's SR, of Stage II run on the clean LR (what a perfect Stage I would
give), and of the LR before and after Stage I against the clean LR; and how large each
part's correction is (RMS in 0..255 levels: Stage I's change to its input and, in a model
grown with a half-resolution refinement, that refinement's change). A large gap between the
first two with a small Stage I gain says the model is limited by its JPEG recovery.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from jpegsr import metrics
from jpegsr.data import list_images, read_rgb
from jpegsr.degrade import degrade, versions
from jpegsr.validation import image_key
from jpegsr.weights_io import load_model

QUALITIES = (10, 20, 30, 50)


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255


def _image(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _rms(delta: torch.Tensor) -> float:
    return float(delta.square().mean().sqrt()) * 255


def measure(model: str, paths: list[Path]) -> dict:
    loaded = load_model(model)
    if not loaded.descriptor.two_stage:
        raise ValueError(f"{model} is not a two-stage model")
    module = loaded.module.float()
    rows = {}
    for q in QUALITIES:
        cols: dict[str, list[float]] = {
            "sr": [],
            "sr_from_clean_lr": [],
            "lr_in": [],
            "lr_stage1": [],
            "stage1_rms": [],
        }
        if module.coarse is not None:
            cols["coarse_rms"] = []
        for path in paths:
            lq, lr, hr = degrade(read_rgb(path), 4, q)
            x = _tensor(lq)
            with torch.no_grad():  # the model's forward, one stage at a time
                first = module.stage1(x)
                recovered = first if module.coarse is None else module.coarse(first)
                sr = module.stage2(recovered)
                sr_clean = module.stage2(_tensor(lr))
            cols["stage1_rms"].append(_rms(first - x))
            if module.coarse is not None:
                cols["coarse_rms"].append(_rms(recovered - first))
            cols["sr"].append(metrics.psnr(_image(sr), hr, border=4))
            cols["sr_from_clean_lr"].append(metrics.psnr(_image(sr_clean), hr, border=4))
            cols["lr_in"].append(metrics.psnr(lq, lr, border=1))
            cols["lr_stage1"].append(metrics.psnr(_image(recovered), lr, border=1))
        rows[str(q)] = {k: float(np.mean(v)) for k, v in cols.items()}
    return {"model": model, "images": [image_key(p) for p in paths], "psnr_y_db": rows,
            "versions": versions()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--images", type=int, default=20, help="first N Sun-Hays 80 images")
    parser.add_argument("--data-root", default="../shared/datasets")
    parser.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    paths = list_images(Path(args.data_root) / "validation" / "SunHays80")[: args.images]
    try:
        result = measure(args.model, paths)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result["command"] = "python scripts/stage_oracle.py " + " ".join(argv or sys.argv[1:])
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for q, row in result["psnr_y_db"].items():
        print(f"q={q}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
