"""results/baselines/README.md: the baseline benchmark JSONs (`bash scripts/baselines.sh`) as
one Markdown table."""

from __future__ import annotations

import json
from pathlib import Path

from jpegsr.reports.common import RESULTS, SETS, cell

FILES = [
    RESULTS / "baselines" / name
    for q in (20, 50)
    for name in (f"bicubic_q{q}.json", f"dncnn_bicubic_q{q}.json", f"nlm_bicubic_q{q}.json")
]  # fmt: skip


def build(files: list[Path] | None = None) -> dict[Path, str]:
    files = FILES if files is None else files
    lines = [
        "| method | JPEG q | " + " | ".join(SETS) + " | command |",
        "|---|---|" + "---|" * len(SETS) + "---|",
    ]
    for path in files:
        r = json.loads(path.read_text())
        cells = " | ".join(cell(r["sets"], s) for s in SETS)
        method = r["method"] + (" (self-ensemble)" if r.get("self_ensemble") else "")
        lines.append(f"| {method} | {r['quality']} | {cells} | `{r['command']}` |")
    lines += ["", "x4, Y-PSNR (dB) / SSIM, border 4; made by `jpegsr report baselines`", ""]
    return {RESULTS / "baselines" / "README.md": "\n".join(lines)}
