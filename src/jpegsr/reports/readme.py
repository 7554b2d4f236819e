"""README.md's generated blocks: the quality table (from what the ``quality`` report builds,
not from results/quality.json on disk, so that ``all`` is right in one pass) and the speed
summary (from benchmarks/results.json, ``python benchmarks/speed.py``). The rest of the
README is written by hand and left as it is."""

from __future__ import annotations

import json
from pathlib import Path

from jpegsr.reports import quality as quality_report
from jpegsr.reports.common import RESULTS, replace_block

README = Path("README.md")
SPEED = Path("benchmarks/results.json")
PEER = "Real-ESRGAN x4plus (ncnn)"


def speed_summary(res: dict) -> list[str]:
    """Two sentences: the path `jpegsr upscale` takes here, its time, peer and memory."""
    m, auto = res["machine"], res["auto_path"]
    path = res["paths"][auto]
    peer = res["a_upscale_480x320"]["seconds"].get(PEER)
    line = (f"On the benchmark machine ({m['cpu']}, {m['cores']} threads) jpegsr upscales a "
            f"decoded 480x320 JPEG to 1920x1280 in **{path['seconds']:.2f} s** ({auto}; "
            "reading and writing files not included)")  # fmt: skip
    if peer is not None:
        line += f", {peer / path['seconds']:.0f}x faster than Real-ESRGAN x4plus (ncnn)"
    line += " on the same cores"
    if path.get("peak_rss_mib") is not None:
        line += f"; a 4000x3000 output peaks at {path['peak_rss_mib']:.0f} MiB"
    return [
        line + ". Every path, the peers and the targets: "
        "[`benchmarks/README.md`](benchmarks/README.md) (`python benchmarks/speed.py`)."
    ]


def build() -> dict[Path, str]:
    text = README.read_text()
    built = quality_report.build()[RESULTS / "quality.json"]
    text = replace_block(
        text, "quality-table", quality_report.readme_table(json.loads(built)["qualities"])
    )
    text = replace_block(text, "speed", speed_summary(json.loads(SPEED.read_text())))
    return {README: text}
