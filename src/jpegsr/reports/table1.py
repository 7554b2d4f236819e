"""results/table1.md and .json: the paper's Table 1 beside our equal-budget rows, with the
paper's claims checked on our numbers, at each training budget: 20,000 iterations
(results/table1_20k/, trained on lent GPUs by `bash scripts/gpu_table1.sh`, benchmarked by
`BUDGET=20k bash scripts/table1.sh`) and 2,000 (results/table1/, `bash scripts/table1.sh`)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from jpegsr.reports.common import PAPER_TABLE1, RESULTS, SETS, cell

# row label -> our results file (under results/, DIR: the budget's folder). The (M) rows are
# trained and tested on input pre-denoised by our DnCNN (`jpegsr.denoisers`, as the paper's
# MATLAB default denoiser; the paper trains its (M) models on the denoised input, section
# 4.2.2); denoise+bicubic runs bicubic on that input.
ROWS = {
    "bicubic": "baselines/bicubic_q20.json",
    "denoise+bicubic": "baselines/dncnn_bicubic_q20.json",
    "DBPN": "{dir}/dbpn_clean.json",
    "DBPN(M)": "{dir}/dbpn_denoised.json",
    "RCAN": "{dir}/rcan_clean.json",
    "RCAN(M)": "{dir}/rcan_denoised.json",
    "s-LWSR32": "{dir}/slwsr32_clean.json",
    "s-LWSR32(M)": "{dir}/slwsr32_denoised.json",
    "s-LWSR32(C-JPG)": "{dir}/slwsr32_cjpg.json",
    "two-stage, no cycle loss": "{dir}/two_stage_nocycle.json",
    "two-stage + cycle loss (paper's model)": "{dir}/two_stage_cycle.json",
}
DENOISER_TEXT = (
    "Rows marked (M) are trained and tested on JPEG input pre-denoised by our DnCNN "
    "(`jpegsr.denoisers`, MATLAB's default denoiser, as the paper, which trains its (M) models "
    "on the denoised input: section 4.2.2); denoise+bicubic runs bicubic on that input. The "
    "rows 'DnCNN at test only' are the clean-trained models on the same pre-denoised input, "
    "as this table's (M) rows were first made."
)
CLEAN = (("s-LWSR32", "slwsr32"), ("RCAN", "rcan"), ("DBPN", "dbpn"))
# the clean-trained models on pre-denoised input at test time only (the (M) rows as first made)
TEST_ONLY_ROWS = tuple((f"{m}, DnCNN at test only", f"{{dir}}/{f}_clean_M.json") for m, f in CLEAN)
TEST_ONLY_CLAIMS = tuple(
    (f"DnCNN at test only > clean-trained ({m})", f"{m}, DnCNN at test only", m) for m, _ in CLEAN
)


@dataclass(frozen=True)
class Budget:
    key: str
    dir: str
    iterations: str
    where: str
    note: str = ""
    extra_rows: tuple[tuple[str, str], ...] = ()  # (label, file under results/)
    extra_claims: tuple[tuple[str, str, str], ...] = ()


BUDGETS = [
    Budget("20k", "table1_20k", "20,000", "on lent GPUs (`bash scripts/gpu_table1.sh`), the "
           "rows also on the 2-core CPU (`configs/table1_20k_cpu/`, the same recipe)",
           note="A row's wall time is its own on the device; rows trained side by side shared "
           "it (what each lease ran, and how: `results/table1_20k/leases/`). A row trained on "
           "the CPU ran in the background across sessions: its wall time includes other work "
           "sharing the two cores and the pauses for tests.",
           extra_rows=TEST_ONLY_ROWS, extra_claims=TEST_ONLY_CLAIMS),
    Budget("2k", "table1", "2,000", "on a 2-core CPU (its wall times include other work "
           "sharing the two cores)",
           note="The rows marked 'NLM' are the clean-trained models on input pre-denoised by "
           "OpenCV non-local means (`nlm` in `jpegsr.denoisers`) at test time, this table's "
           "first stand-in for the (M) rows, kept for comparison.",
           extra_rows=(*TEST_ONLY_ROWS, ("denoise+bicubic, NLM", "baselines/nlm_bicubic_q20.json"),
                       *((f"{m}, NLM at test only", f"table1/{f}_clean_M_nlm.json")
                         for m, f in CLEAN)),
           extra_claims=(*TEST_ONLY_CLAIMS,
                         *((f"NLM at test only > clean-trained ({m})", f"{m}, NLM at test only", m)
                           for m, _ in CLEAN))),
]  # fmt: skip


# The paper's claims, each "a beats b": (label, row a, row b). Checked per set on Y-PSNR.
CLAIMS = [
    ("two-stage >= C-JPG straight", "two-stage + cycle loss (paper's model)", "s-LWSR32(C-JPG)"),
    ("C-JPG straight > (M)", "s-LWSR32(C-JPG)", "s-LWSR32(M)"),
    ("(M) > clean-trained (s-LWSR32)", "s-LWSR32(M)", "s-LWSR32"),
    ("(M) > clean-trained (RCAN)", "RCAN(M)", "RCAN"),
    ("(M) > clean-trained (DBPN)", "DBPN(M)", "DBPN"),
    ("cycle loss helps (two-stage)", "two-stage + cycle loss (paper's model)",
     "two-stage, no cycle loss"),
    ("two-stage beats bicubic", "two-stage + cycle loss (paper's model)", "bicubic"),
]  # fmt: skip


def check_claims(
    table: dict[str, dict], claims: list[tuple[str, str, str]] = CLAIMS
) -> tuple[list[str], list[dict]]:
    """Markdown lines and JSON records: for each claim, the PSNR margin per set."""
    lines = [
        "### The paper's claims at this budget",
        "",
        "Margin = Y-PSNR of the first row minus the second (dB); a claim holds on a set when the",
        'margin is > 0 (>= 0 for "two-stage >= C-JPG"). Computed by `jpegsr report table1`',
        "from the rows above.",
        "",
        "| claim | " + " | ".join(SETS) + " | holds |",
        "|---|" + "---|" * (len(SETS) + 1),
    ]
    records = []
    for label, a, b in claims:
        ra, rb = table[a]["ours"], table[b]["ours"]
        if not ra or not rb:
            lines.append(f"| {label} | " + " | ".join("not run" for _ in SETS) + " | - |")
            continue
        margins = [ra[s]["psnr"] - rb[s]["psnr"] for s in SETS]
        ok = [m >= 0 if ">=" in label else m > 0 for m in margins]
        verdict = "yes" if all(ok) else "no" if not any(ok) else f"on {sum(ok)} of {len(SETS)}"
        lines.append(f"| {label} | " + " | ".join(f"{m:+.2f}" for m in margins) + f" | {verdict} |")
        records.append({
            "claim": label, "a": a, "b": b,
            "margins_db": dict(zip(SETS, margins, strict=True)),
            "holds_on": [s for s, k in zip(SETS, ok, strict=True) if k],
        })  # fmt: skip
    return lines, records


PARKED = Path("parked")  # scripts/park_run.py keeps unfinished runs here between sessions


def training_now_lines(budget: Budget, missing: dict[str, str]) -> list[str]:
    """How far the rows without results (label -> row name) have come in a CPU run that
    trains them across sessions, from the log parked with its checkpoint; none: no lines."""
    found = []
    for label, row in missing.items():
        log = PARKED / "runs" / f"{budget.dir}_cpu" / row / "train_log.csv"
        if not log.is_file():
            continue
        with log.open() as f:
            done = [int(r["iteration"]) for r in csv.DictReader(f)]
        if done:
            found.append(f"- {label}: {done[-1]:,} of {budget.iterations} iterations "
                         f"(`{log.parent}/`)")  # fmt: skip
    if not found:
        return []
    head = ("Rows still training on the CPU across sessions (checkpoint and log kept in git "
            "between them by `scripts/park_run.py`):")  # fmt: skip
    return [head, "", *found, ""]


def budget_table(budget: Budget) -> tuple[list[str], dict[str, object]]:
    """One budget's section of results/table1.md and its JSON record."""
    lines = [
        f"## {budget.iterations} iterations of batch 16 (equal budget), trained {budget.where}",
        "",
        f"Configs: `configs/{budget.dir}/`. {DENOISER_TEXT} {budget.note}".rstrip(),
        "",
        "| method | " + " | ".join(SETS) + " |",
        "|---|" + "---|" * len(SETS),
    ]
    table: dict[str, object] = {}
    commands = []
    rows = {k: v.format(dir=budget.dir) for k, v in ROWS.items()}
    extra = [(label, rel.format(dir=budget.dir)) for label, rel in budget.extra_rows]
    for label, rel in [*rows.items(), *extra]:
        path = RESULTS / rel
        ours = json.loads(path.read_text()) if path.exists() else None
        paper = PAPER_TABLE1.get(label)
        cells = []
        for i, s in enumerate(SETS):
            o = ours["sets"].get(s) if ours else None
            text = cell(ours["sets"], s) if o else "not run"
            if paper:
                text += f" ({paper[i][0]:.2f}/{paper[i][1]:.4f})"
            cells.append(text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        table[label] = {"ours": ours["sets"] if ours else None, "paper": paper, "file": rel,
                        "training": ours.get("training") if ours else None}  # fmt: skip
        if ours:
            commands.append(f"- {label}: `{ours['command']}`")
    claim_lines, claims = check_claims(table, [*CLAIMS, *budget.extra_claims])
    trained = {k: table[k]["training"] for k in rows if table[k]["ours"]}
    missing = {k: Path(v).stem for k, v in ROWS.items()
               if "{dir}" in v and not table[k]["ours"]}  # fmt: skip
    lines += ["", *training_lines(trained), "", *training_now_lines(budget, missing),
              *claim_lines, "", "Commands:", "", *commands, ""]  # fmt: skip
    return lines, table | {"claims": claims}


def training_lines(trained: dict[str, dict[str, str] | None]) -> list[str]:
    """Budget, device and wall time of each trained row (label -> the "training" record of
    its benchmark JSON, None when its weights predate it); the baselines are skipped: they
    train nothing."""
    lines = [
        "Training of each row (from its weights' metadata, via its benchmark JSON):",
        "",
        "| row | iterations | batch x LR crop | device | machine | wall time |",
        "|---|---|---|---|---|---|",
    ]
    for label, t in trained.items():
        if "bicubic" in label:
            continue
        if not t or "wall_seconds" not in t:
            lines.append(f"| {label} | not recorded | | | | |")
            continue
        crop = f"{t['batch_size']} x {t['lr_patch']} px" if "batch_size" in t else "not recorded"
        wall = f"{int(t['wall_seconds']) / 60:.0f} min"
        lines.append(f"| {label} | {int(t['iterations']):,} | {crop} | {t['device']} | "
                     f"{t['machine']} | {wall} |")  # fmt: skip
    return lines


def build() -> dict[Path, str]:
    """results/table1.md and .json from the benchmark JSONs of scripts/table1.sh."""
    lines = [
        "# Table 1: x4, JPEG q=20, Y-PSNR/SSIM (ours | paper)",
        "",
        "Each trained row: its config, trained on BSD200 + T91 with 10 images held out, then",
        "benchmarked by `scripts/table1.sh` (`BUDGET=20k` for the longer budget); this file by",
        "`jpegsr report table1`. Each cell: ours, then the paper's in brackets. One section per",
        "training budget, so the reader sees how the margins move with training.",
        "",
    ]
    record: dict[str, object] = {}
    for budget in BUDGETS:
        section, record[budget.key] = budget_table(budget)
        lines += section
    return {
        RESULTS / "table1.md": "\n".join(lines),
        RESULTS / "table1.json": json.dumps(record, indent=2) + "\n",
    }
