"""What would issue #5's quality targets cost? Benchmark PSNR against training cost.

The blind line of models (``blind``, then ``blind_long``, each trained further from the one
before on random JPEG qualities) gives points of (CPU-equivalent training hours, Y-PSNR).
Each target cell gets a least-squares line of PSNR against log2(hours), and the hours at
which that line would reach the target: the last point's hours times 2**(gap / dB per
doubling). Gains per doubling usually shrink as training goes on, so these are optimistic.

Each experiment folder in EXPERIMENTS adds a point beyond ``blind_long``: it holds
``bench_qQ.json`` (``jpegsr benchmark ... --json``) and ``model_metadata.json`` (the run's
weights metadata, whose ``wall_seconds`` on this CPU is added to ``blind_long``'s cost).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from jpegsr.reports.common import (
    PAPER_Q20,
    RESULTS,
    SETS,
    cpu_equivalent_hours,
    load_sets,
    training_stages,
)

EXPERIMENTS = [RESULTS / "experiments/blind_long_cpu"]

# Each shipped model was trained from the one before it (see their cards), so a model's cost
# is its own stages plus all of its ancestors'.
LINEAGE = ["q20", "blind", "blind_long"]
CURVE_MODELS = ["blind", "blind_long"]  # the mixed-quality models: one recipe family
TARGET_QUALITIES = [10, 20, 30, 50]


def lineage_hours(name: str) -> float:
    """CPU-equivalent hours of a shipped model and its ancestors (GPU iterations converted)."""
    ancestors = LINEAGE[: LINEAGE.index(name) + 1]
    return cpu_equivalent_hours([st for a in ancestors for st in training_stages(a)])


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares y = a + b*log2(h): returns (a, b), b in units per doubling."""
    xs = [math.log2(h) for h, _ in points]
    ys = [y for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - b * mx, b


def hours_to_reach(points: list[tuple[float, float]], target: float) -> tuple[float, float | None]:
    """(units per doubling, hours at which the fitted line reaches target; None if never)."""
    a, b = fit(points)
    if b <= 0:
        return b, None
    return b, max(2 ** ((target - a) / b), points[-1][0])


def build(experiments: list[Path] | None = None) -> dict[Path, str]:
    """results/compute_curve.md and .json, with the experiments of EXPERIMENTS as points."""
    experiments = EXPERIMENTS if experiments is None else experiments

    # name -> (hours, {quality: sets})
    curve: dict[str, tuple[float, dict[int, dict]]] = {}
    for name in CURVE_MODELS:
        per_quality = {q: load_sets(RESULTS / f"models/{name}_q{q}.json") for q in TARGET_QUALITIES}
        curve[name] = (lineage_hours(name), per_quality)
    for folder in experiments:
        meta = json.loads((folder / "model_metadata.json").read_text())
        hours = lineage_hours(LINEAGE[-1]) + int(meta["wall_seconds"]) / 3600
        per_quality = {q: load_sets(folder / f"bench_q{q}.json") for q in TARGET_QUALITIES}
        curve[folder.name] = (hours, per_quality)

    def points(q: int, s: str, key: str) -> list[tuple[float, float]]:
        return sorted((h, r[q][s][key]) for h, r in curve.values() if r[q] is not None)

    rows = []
    for s in SETS:
        for key, target in (("psnr", PAPER_Q20[s][0]), ("ssim", PAPER_Q20[s][1])):
            rows.append((f"paper at q=20, {s} {key.upper()}", 20, s, key, target))
    for q in TARGET_QUALITIES:
        base = load_sets(RESULTS / f"baselines/bicubic_q{q}.json")
        rows.append((f"bicubic + 1.0 dB at q={q}, Set5 PSNR", q, "Set5", "psnr",
                     base["Set5"]["psnr"] + 1.0))  # fmt: skip

    lines = [
        "# What the quality targets of issue #5 would cost (extrapolated)",
        "",
        "Made by `jpegsr report curve` (experiments: "
        + ", ".join(f"`{f}`" for f in experiments)
        + "). Points: benchmark Y-PSNR/SSIM (x4, `results/models/NAME_qQ.json`) against the "
        "CPU-equivalent hours of all training behind each model (GPU iterations at this "
        "CPU's measured s/iter, as in `results/quality.md`). Line: least squares against "
        "log2(hours). Last point: the model with the most training. Needed: the hours at "
        "which that line reaches the target. Gains per doubling usually shrink, so the "
        "needed hours are optimistic.",
        "",
        "| point | CPU-equivalent hours |",
        "|---|---|",
        *(f"| {n} | {h:.2f} |" for n, (h, _) in curve.items()),
        "",
        "| target | last point | per doubling of training | needed (h of this CPU) |",
        "|---|---|---|---|",
    ]  # fmt: skip
    out = []
    for label, q, s, key, target in rows:
        pts = points(q, s, key)
        now = pts[-1][1]
        if now >= target:
            rate, need, text = fit(pts)[1], pts[-1][0], "met"
        else:
            rate, need = hours_to_reach(pts, target)
            text = "never at this rate" if need is None else f"{need:,.0f}"
        fmt = ".2f" if key == "psnr" else ".4f"
        lines.append(f"| {label}: {target:{fmt}} | {now:{fmt}} | {rate:+{fmt}} | {text} |")
        out.append({"target": label, "value": target, "now": now, "per_doubling": rate,
                    "hours_needed": need, "points": pts})  # fmt: skip
    lines.append("")
    hours = {n: h for n, (h, _) in curve.items()}
    return {
        RESULTS / "compute_curve.md": "\n".join(lines),
        RESULTS / "compute_curve.json": json.dumps({"hours": hours, "targets": out}, indent=2)
        + "\n",
    }
