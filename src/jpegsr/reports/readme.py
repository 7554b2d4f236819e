"""README.md's generated blocks: the quality table (from what the ``quality`` report builds,
not from results/quality.json on disk, so that ``all`` is right in one pass) and the speed
summary (from benchmarks/results.json, ``python benchmarks/speed.py``, and
benchmarks/machines.json, ``python benchmarks/machines.py``). The rest of the
README is written by hand and left as it is."""

from __future__ import annotations

import json
from pathlib import Path

from jpegsr.reports import quality as quality_report
from jpegsr.reports.common import RESULTS, replace_block

README = Path("README.md")
SPEED = Path("benchmarks/results.json")
MACHINES = Path("benchmarks/machines.json")  # python benchmarks/machines.py
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


def machines_summary(rows: list[dict]) -> list[str]:
    """One sentence: the same image on each CPU measured by ``benchmarks/machines.py`` (many
    have no native bf16 and run fp32). Empty where there are none."""
    if not rows:
        return []
    times = "; ".join(f"{r['seconds']:.2f} s on {r['machine']} ({r['path']})" for r in rows)
    return [
        f"The same image on each CPU measured since: {times} "
        "([`benchmarks/machines.md`](benchmarks/machines.md), `python benchmarks/machines.py`)."
    ]


def build() -> dict[Path, str]:
    text = README.read_text()
    built = quality_report.build()[RESULTS / "quality.json"]
    text = replace_block(
        text, "quality-table", quality_report.readme_table(json.loads(built)["qualities"])
    )
    speed = json.loads(SPEED.read_text())
    machines = json.loads(MACHINES.read_text())["rows"] if MACHINES.exists() else []
    summary = speed_summary(speed) + machines_summary(machines)
    text = replace_block(text, "speed", summary)
    return {README: text}
