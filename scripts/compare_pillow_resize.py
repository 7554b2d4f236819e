"""How far Pillow's BICUBIC resize is from jpegsr's MATLAB-style imresize.

Two measures, written to results/pillow_vs_matlab_resize.{md,json}:
1. pixel level: mean/max absolute difference of the x1/4 downscale (uint8) per set;
2. the bicubic baseline (down x4, JPEG q, up x4) measured both ways on the four sets.

    python scripts/compare_pillow_resize.py --quality 20
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from jpegsr import degrade, metrics
from jpegsr.benchmark import resolve_set
from jpegsr.data import list_images, read_rgb
from jpegsr.defaults import DEFAULT_SETS


def pillow_resize(img: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize(size_hw[::-1], Image.Resampling.BICUBIC))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quality", type=int, default=20)
    ap.add_argument("--data-root", type=Path)
    args = ap.parse_args()
    rows = {}
    for name in DEFAULT_SETS:
        diffs, maxd, ours, pil = [], 0, [], []
        for path in list_images(resolve_set(args.data_root, name)):
            hr = degrade.crop_to_scale(read_rgb(path), 4)
            h, w = hr.shape[0] // 4, hr.shape[1] // 4
            lr_m, lr_p = degrade.imresize(hr, size=(h, w)), pillow_resize(hr, (h, w))
            d = np.abs(lr_m.astype(int) - lr_p)
            diffs.append(d.mean())
            maxd = max(maxd, int(d.max()))
            up_m = degrade.imresize(degrade.jpeg_roundtrip(lr_m, args.quality), size=hr.shape[:2])
            up_p = pillow_resize(degrade.jpeg_roundtrip(lr_p, args.quality), hr.shape[:2])
            ours.append(metrics.psnr(up_m, hr, border=4))
            pil.append(metrics.psnr(up_p, hr, border=4))
        rows[name] = {
            "downscale_mean_abs_diff": float(np.mean(diffs)),
            "downscale_max_abs_diff": maxd,
            "bicubic_psnr_matlab_style": float(np.mean(ours)),
            "bicubic_psnr_pillow": float(np.mean(pil)),
        }
        print(name, rows[name], flush=True)
    out = Path("results")
    cmd = f"python scripts/compare_pillow_resize.py --quality {args.quality}"
    (out / "pillow_vs_matlab_resize.json").write_text(
        json.dumps(
            {"quality": args.quality, "sets": rows, "versions": degrade.versions(), "command": cmd},
            indent=2,
        )
        + "\n"  # fmt: skip
    )
    lines = [
        f"# Pillow BICUBIC vs jpegsr's MATLAB-style imresize (x4, JPEG q={args.quality})",
        "",
        f"Made by `{cmd}`.",
        "",
        "| set | mean abs diff of LR (grey levels) | max abs diff | bicubic Y-PSNR, MATLAB-style"
        " | bicubic Y-PSNR, Pillow |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['downscale_mean_abs_diff']:.3f} | {r['downscale_max_abs_diff']} | "
            f"{r['bicubic_psnr_matlab_style']:.3f} | {r['bicubic_psnr_pillow']:.3f} |"
        )
    (out / "pillow_vs_matlab_resize.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
