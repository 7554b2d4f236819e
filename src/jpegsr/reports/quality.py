"""results/quality.md and .json (issue #5): the shipped models at JPEG q = 10, 20, 30, 50 on
the four sets, bicubic and the paper beside them, the targets checked, training time summed.
The cells come from `bash scripts/quality.sh`; self-ensemble rows from
results/self_ensemble/*.json. The README's quality table (:func:`readme_table`) is placed by
the ``readme`` report from results/quality.json."""

from __future__ import annotations

import json
from pathlib import Path

from jpegsr import models
from jpegsr.reports.common import (
    PAPER_Q20,
    RESULTS,
    SETS,
    cell,
    cpu_equivalent_hours,
    cpu_seconds_per_gpu_iteration,
    load_sets,
    shipped_metadata,
    training_stages,
)
from jpegsr.weights_io import choose_shipped, shipped_models, trained_qualities

QUALITIES = [10, 20, 30, 50]


def readme_table(table: dict[str, dict]) -> list[str]:
    """The README's summary: bicubic vs what `jpegsr upscale` picks, per quality."""
    lines = ["| JPEG q | method | " + " | ".join(SETS) + " |", "|---|---|" + "---|" * len(SETS)]
    for q in QUALITIES:
        t = table[str(q)]
        picks = [("bicubic", "bicubic")]
        if q == 20:
            picks.append(("paper two-stage", "paper two-stage (Table 1)"))
        picks.append((f"jpegsr (`{t['auto']}`)", t["auto"]))
        for label, key in picks:
            r = t["rows"].get(key)
            lines.append(f"| {q} | {label} | " + " | ".join(cell(r, s) for s in SETS) + " |")
    return lines


def stage_key(run: str, iterations: int, wall_seconds: int) -> tuple[str, int, int]:
    """What tells one training run from another: stretches of a continuing run share its
    config's name (``run``), so the name alone does not."""
    return run, iterations, wall_seconds


def experiments_section(shipped_stages: set[tuple[str, int, int]]) -> list[str]:
    """The compute spent on training runs of upscalers that were measured but not shipped
    (a shipped run's is in the training sum above; a denoiser's run is on its own card).
    ``shipped_stages``: the :func:`stage_key` of every stage behind a shipped model."""
    rows = []
    for path in sorted((RESULTS / "experiments").glob("*/model_metadata.json")):
        m = json.loads(path.read_text())
        if models.task_of(m.get("jpegsr_arch", "")) == "denoise":
            continue
        key = stage_key(m.get("run", path.parent.name), int(m.get("iterations", 0)),
                        int(m["wall_seconds"]))  # fmt: skip
        if key in shipped_stages:
            continue
        rows.append(
            f"| [`{path.parent.name}`](experiments/{path.parent.name}/) | "
            f"{m.get('machine', m.get('device', '?'))} | {m.get('iterations', '?')} | "
            f"{int(m['wall_seconds']) / 3600:.2f} h |"
        )
    if not rows:
        return []
    return [
        "## Compute spent on runs not shipped",
        "",
        "Each measured against the shipped models on validation and not shipped (outcomes: "
        "[`experiments/README.md`](experiments/README.md)); their weights metadata:",
        "",
        "| run | machine | iterations | wall time |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def build() -> dict[Path, str]:
    """results/quality.md and .json."""
    names = shipped_models()
    lines = [
        "# Quality: shipped models at every JPEG quality (x4, Y-PSNR/SSIM, border 4)",
        "",
        "Made by `bash scripts/quality.sh` (one `jpegsr benchmark --method NAME --sets "
        "Set5,Set14,BSD100,Urban100 --scale 4 --quality Q` per cell row, fp32), then "
        "`jpegsr report quality`. `auto` is the model `jpegsr upscale` picks "
        "for a file of that quality: `src/jpegsr/weights/auto.json`, chosen per quality on "
        "the 90 validation images (Sun-Hays 80 + 10 held-out training images) by "
        "`python scripts/select_auto_models.py` "
        "(`results/auto_selection.json`).",
    ]
    table: dict[str, dict] = {}
    for q in QUALITIES:
        base = load_sets(RESULTS / f"baselines/bicubic_q{q}.json")
        rows = {"bicubic": base}
        if q == 20:
            rows["paper two-stage (Table 1)"] = {
                s: {"psnr": p, "ssim": v} for s, (p, v) in PAPER_Q20.items()
            }
        for n in names:
            rows[n] = load_sets(RESULTS / f"models/{n}_q{q}.json")
        pick = choose_shipped(q)
        lines += ["", f"## JPEG quality {q}", "", "| method | " + " | ".join(SETS) + " |",
                  "|---|" + "---|" * len(SETS)]  # fmt: skip
        for label, r in rows.items():
            lines.append(f"| {label} | " + " | ".join(cell(r, s) for s in SETS) + " |")
        auto = rows[pick]
        if auto and base:
            gains = [f"{auto[s]['psnr'] - base[s]['psnr']:+.2f}" for s in SETS]
            lines.append(f"| auto (= {pick}): gain over bicubic, dB | " + " | ".join(gains) + " |")
        table[str(q)] = {"rows": rows, "auto": pick}

    ensembles = sorted((RESULTS / "self_ensemble").glob("*.json"))
    if ensembles:
        lines += ["", "## With the x8 self-ensemble (`--self-ensemble`, 8x the compute)", "",
                  "| method | JPEG q | precision | " + " | ".join(SETS) + " | command |",
                  "|---|---|---|" + "---|" * len(SETS) + "---|"]  # fmt: skip
        for path in ensembles:
            r = json.loads(path.read_text())
            cells = " | ".join(cell(r["sets"], s) for s in SETS)
            lines.append(f"| {r['method']} x8 | {r['quality']} | {r.get('precision', 'fp32')} | "
                         f"{cells} | `{r['command']}` |")  # fmt: skip
    lines += ["", "## Targets (issues #5 and #12)", "", "| target | result | met |"]
    lines += ["|---|---|---|"]
    targets = []
    spec = table["20"]["rows"].get("q20")
    pick20 = table["20"]["auto"]
    shipped20 = table["20"]["rows"].get(pick20)
    if shipped20:
        short = [s for s in SETS for k in ("psnr", "ssim")
                 if shipped20[s][k] < PAPER_Q20[s][0 if k == "psnr" else 1]]  # fmt: skip
        gaps = ", ".join(
            f"{s} {shipped20[s]['psnr'] - PAPER_Q20[s][0]:+.2f} dB / "
            f"{shipped20[s]['ssim'] - PAPER_Q20[s][1]:+.4f}"
            for s in SETS
        )
        targets.append((f"shipped default at q=20 (auto = `{pick20}`) >= paper on every set, "
                        "PSNR and SSIM", gaps, not short))  # fmt: skip
    # the blind model: the one auto uses when a file's quality is unknown
    unknown = choose_shipped(None)
    blind = unknown if len(trained_qualities(shipped_metadata(unknown))) > 1 else None
    if blind:
        gains = []
        for q in QUALITIES:
            r, b = table[str(q)]["rows"].get(blind), table[str(q)]["rows"]["bicubic"]
            gains.append((q, r["Set5"]["psnr"] - b["Set5"]["psnr"] if r and b else None))
        ok = all(g is not None and g >= 1.0 for _, g in gains)
        text = ", ".join(f"q{q} {g:+.2f}" if g is not None else f"q{q} -" for q, g in gains)
        targets.append((f"blind (`{blind}`) gains >= +1.0 dB over bicubic on Set5 at q "
                        "10/20/30/50", text, ok))  # fmt: skip
        rb, rs = table["20"]["rows"].get(blind), spec
        if rb and rs:
            d = {s: rb[s]["psnr"] - rs[s]["psnr"] for s in SETS}
            text = ", ".join(f"{s} {v:+.2f}" for s, v in d.items())
            targets.append((f"blind (`{blind}`) within 0.1 dB of the q=20 specialist at q=20"
                            " (every set)",
                            text, all(v >= -0.1 for v in d.values())))  # fmt: skip
    stages = [st for n in names for st in training_stages(n)]
    cpu_h = sum(st["hours"] for st in stages if st["device"] == "cpu")
    gpu = [st for st in stages if st["device"] != "cpu"]
    gpu_iters = sum(st["iterations"] for st in gpu)
    cpu_spi = cpu_seconds_per_gpu_iteration()
    equivalent_h = gpu_iters * cpu_spi / 3600
    parts = " + ".join(f"{st['run']} {st['hours']:.2f} h" for st in stages if st["device"] == "cpu")
    result = f"on this CPU: {parts} = {cpu_h:.2f} h"
    if gpu:
        gpu_parts = " + ".join(f"{st['run']} {st['hours'] * 60:.1f} min" for st in gpu)
        result += (
            f"; on a GPU: {gpu_parts} ({gpu_iters} iterations, about {equivalent_h:.2f} h on "
            f"this CPU at its measured {cpu_spi:.2f} s/iter); total CPU-equivalent "
            f"{cpu_equivalent_hours(stages):.2f} h"
        )
    # a record, not a target: issue #12 withdrew issue #5's 6 h CPU budget ("spend whatever
    # compute the project gets, but spend it efficiently, and record it")
    targets.append(("training behind the shipped models (recorded; issue #12 withdrew issue "
                    "#5's 6 h CPU budget)", result, None))  # fmt: skip
    hours = {st["run"]: st["hours"] for st in stages}
    for label, result, ok in targets:
        met = "-" if ok is None else "yes" if ok else "**no**"
        lines.append(f"| {label} | {result} | {met} |")
    lines += ["", "How many hours of this CPU each target would take if the gain per doubling of "
              "training measured so far held: [`compute_curve.md`](compute_curve.md) "
              "(`jpegsr report curve`).", ""]  # fmt: skip
    lines += experiments_section(
        {stage_key(st["run"], st["iterations"], st["wall_seconds"]) for st in stages}
    )
    out = {
        "qualities": table,
        "training_hours": hours,
        "targets": [{"target": t, "result": r, "met": ok} for t, r, ok in targets],
    }
    return {
        RESULTS / "quality.md": "\n".join(lines),
        RESULTS / "quality.json": json.dumps(out, indent=2) + "\n",
    }
