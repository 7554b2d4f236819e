"""The benchmark section of every shipped model's card (src/jpegsr/weights/NAME.md): the rows
of results/models/NAME_qQ.json beside bicubic (results/baselines), rebuilt from them.

The rest of a card (data, degradation, iterations, wall time, machine, command) is written
once, when the model ships (`scripts/ship_model.py`), from its run folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from jpegsr.reports.common import RESULTS, SETS, cell
from jpegsr.weights_io import SHIPPED_DIR, shipped_models

HEADING = "## Benchmarks (x4, Y-PSNR/SSIM, border 4)"


def benchmark_section(name: str) -> list[str]:
    """The card's last section: per JPEG quality, bicubic, the model and the gain."""
    rows = [HEADING, "", "| JPEG q | method | " + " | ".join(SETS) + " |",
            "|---|---|" + "---|" * len(SETS)]  # fmt: skip
    for path in sorted((RESULTS / "models").glob(f"{name}_q*.json")):
        ours = json.loads(path.read_text())
        q = ours["quality"]
        base_path = RESULTS / f"baselines/bicubic_q{q}.json"
        base = json.loads(base_path.read_text()) if base_path.exists() else None
        for label, res in (("bicubic", base), (name, ours)):
            if res is not None:
                rows.append(f"| {q} | {label} | " + " | ".join(cell(res["sets"], s) for s in SETS)
                            + " |")  # fmt: skip
        if base:
            gains = [
                f"{ours['sets'][s]['psnr'] - base['sets'][s]['psnr']:+.2f} dB"
                if s in ours["sets"] and s in base["sets"] else "-"
                for s in SETS
            ]  # fmt: skip
            rows.append(f"| {q} | gain over bicubic | " + " | ".join(gains) + " |")
        rows.append(f"|  | command: `{ours['command']}` |" + " |" * len(SETS))
    return rows


def card_with_benchmarks(text: str, name: str) -> str:
    """A card's text with its benchmark section (from HEADING to the end) rebuilt."""
    head = text.split(HEADING, 1)[0] if HEADING in text else text.rstrip("\n") + "\n\n"
    return head + "\n".join(benchmark_section(name)) + "\n"


def build() -> dict[Path, str]:
    texts = {}
    for name in shipped_models():
        card = SHIPPED_DIR / f"{name}.md"
        texts[card] = card_with_benchmarks(card.read_text(), name)
    return texts
