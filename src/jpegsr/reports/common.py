"""What every report shares: the sets, the paper's Table 1, the cell format, reading results
and weights metadata, the training cost of shipped models, generated blocks inside a
hand-written file, and atomic writes."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from jpegsr.weights_io import SHIPPED_DIR, read_metadata

RESULTS = Path("results")
SETS = ["Set5", "Set14", "BSD100", "Urban100"]
# The paper's Table 1 (x4, JPEG q=20, Y-PSNR/SSIM per set), from ../shared/paper/README.md.
PAPER_TABLE1: dict[str, list[tuple[float, float]] | None] = {
    "DBPN": [(24.63, 0.6437), (23.33, 0.5629), (23.79, 0.5540), (21.26, 0.5372)],
    "DBPN(M)": [(25.80, 0.7135), (24.17, 0.6060), (24.42, 0.5735), (22.08, 0.5845)],
    "RCAN": [(24.45, 0.6355), (23.17, 0.5559), (23.65, 0.5367), (21.12, 0.5302)],
    "RCAN(M)": [(25.76, 0.7123), (24.15, 0.6051), (24.40, 0.5725), (22.04, 0.5836)],
    "s-LWSR32": [(24.73, 0.6487), (23.44, 0.5669), (23.86, 0.5467), (21.39, 0.5424)],
    "s-LWSR32(M)": [(25.82, 0.7153), (24.21, 0.6087), (24.43, 0.5742), (22.10, 0.5860)],
    "s-LWSR32(C-JPG)": [(26.34, 0.7488), (24.58, 0.6275), (24.63, 0.5874), (22.54, 0.6186)],
    "two-stage, no cycle loss": None,
    "two-stage + cycle loss (paper's model)": [
        (26.37, 0.7525), (24.61, 0.6286), (24.64, 0.5882), (22.55, 0.6208)
    ],
}  # fmt: skip
PAPER_MODEL = "two-stage + cycle loss (paper's model)"
# the paper's two-stage model at q=20: set -> (PSNR, SSIM)
PAPER_Q20 = dict(zip(SETS, PAPER_TABLE1[PAPER_MODEL] or [], strict=True))
# Steady-state s/iter of the GPU recipe run on this CPU (the last row of
# `jpegsr train configs/gpu/blind_long_more.yaml --device cpu --iterations 60`)
CPU_SPEED_LOG = RESULTS / "experiments/blind_long_more/cpu_speed_train_log.csv"


def cell(sets: dict | None, s: str) -> str:
    """One table cell: PSNR/SSIM of set ``s``, or "-" when not measured."""
    return f"{sets[s]['psnr']:.2f}/{sets[s]['ssim']:.4f}" if sets and s in sets else "-"


def load_sets(path: Path) -> dict | None:
    """The per-set results of a `jpegsr benchmark --json` file, None if absent."""
    return json.loads(path.read_text())["sets"] if path.exists() else None


def shipped_metadata(name: str) -> dict[str, str]:
    return read_metadata(SHIPPED_DIR / f"{name}.safetensors")


def training_stages(name: str) -> list[dict]:
    """The training runs behind a shipped model, from its metadata.

    Its own run (plain keys), an unshipped init run (``init_`` keys, by ship_model.py) and
    the unshipped runs before it (``init2_``, ``init3_``... by ship_model.py --earlier), and
    the other runs of a weight average (``also1_``, ``also2_``... by average_weights.py).
    """
    m = shipped_metadata(name)
    prefixes = ["", "init_", *(f"init{i}_" for i in range(2, 100)),
                *(f"also{i}_" for i in range(1, 100))]  # fmt: skip
    return [
        {"run": m.get(f"{p}run", name), "device": m.get(f"{p}device", "cpu"),
         "wall_seconds": int(m[f"{p}wall_seconds"]),
         "hours": int(m[f"{p}wall_seconds"]) / 3600,
         "iterations": int(m.get(f"{p}iterations", 0))}
        for p in prefixes if f"{p}wall_seconds" in m
    ]  # fmt: skip


def cpu_seconds_per_gpu_iteration() -> float:
    with CPU_SPEED_LOG.open() as f:
        return float(list(csv.DictReader(f))[-1]["sec_per_iter"])


def cpu_equivalent_hours(stages: list[dict]) -> float:
    """Hours of this CPU for training stages: CPU wall time, GPU iterations at CPU s/iter."""
    spi = cpu_seconds_per_gpu_iteration()
    return sum(st["hours"] if st["device"] == "cpu" else st["iterations"] * spi / 3600
               for st in stages)  # fmt: skip


def replace_block(text: str, name: str, lines: list[str]) -> str:
    """``text`` with the lines between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``
    replaced by ``lines`` (the markers stay)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text:
        raise ValueError(f"no {begin} ... {end} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + "\n" + "\n".join(lines) + "\n" + end + tail


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
