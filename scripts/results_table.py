"""Render benchmark JSON files (from `jpegsr benchmark --json`) as one Markdown table.

python scripts/results_table.py results/baselines/*.json > results/baselines/README.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SETS = ["Set5", "Set14", "BSD100", "Urban100"]


def main(paths: list[str]) -> None:
    print("| method | JPEG q | " + " | ".join(SETS) + " | command |")
    print("|---|---|" + "---|" * len(SETS) + "---|")
    for p in paths:
        r = json.loads(Path(p).read_text())
        cells = [
            f"{r['sets'][s]['psnr']:.2f}/{r['sets'][s]['ssim']:.4f}" if s in r["sets"] else "-"
            for s in SETS
        ]
        method = r["method"] + (" (self-ensemble)" if r.get("self_ensemble") else "")
        print(f"| {method} | {r['quality']} | " + " | ".join(cells) + f" | `{r['command']}` |")
    print()
    print("x4, Y-PSNR (dB) / SSIM, border 4; made by `python scripts/results_table.py "
          + " ".join(paths) + "`")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
