"""Model cards. Each shipped upscaler's card (src/jpegsr/weights/NAME.md) has its benchmark
section rebuilt from results/models/NAME_qQ.json beside bicubic (results/baselines); the rest
of such a card (data, degradation, iterations, wall time, machine, command) is written once,
when the model ships (`scripts/ship_model.py`), from its run folder.

The denoiser's card (src/jpegsr/weights/denoisers/dncnn.md) is built whole: from its weights'
metadata, its denoising PSNR (results/denoiser/dncnn.json, `scripts/eval_denoiser.py`) and
the (M) input it makes (results/baselines, `bash scripts/baselines.sh`).
"""

from __future__ import annotations

import json
from pathlib import Path

from jpegsr.reports.common import RESULTS, SETS, cell
from jpegsr.weights_io import SHIPPED_DIR, read_metadata, shipped_models

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


DENOISER_CARD = SHIPPED_DIR / "denoisers" / "dncnn.md"


def denoiser_card() -> str:
    """The DnCNN card, whole, from committed files."""
    weights = DENOISER_CARD.with_suffix(".safetensors")
    meta = read_metadata(weights)
    scores = json.loads((RESULTS / "denoiser/dncnn.json").read_text())
    lines = [
        "# dncnn: the (M) rows' pre-denoiser",
        "",
        "DnCNN-B (Zhang et al., 2017), as MATLAB 2018's default `denoisingNetwork('DnCNN')`,",
        "which the paper ran on the compressed input of its (M) rows: 20 layers, 64 features,",
        "one channel, residual. Colour images go through it channel by channel, as MathWorks'",
        "colour example does (`jpegsr.denoisers.dncnn`). Used by `jpegsr benchmark --method",
        "denoise+X` (or `dncnn+X`); `nlm+X` runs the earlier OpenCV non-local-means stand-in.",
        "Table 1's (M) models are also trained on its output, as the paper's (`data.input:",
        "denoised` in `configs/table1*/*_denoised.yaml`).",
        "It is not an upscaler: `jpegsr upscale` refuses it.",
        "",
        "## Training",
        "",
        f"- data: grayscale (ITU-R 601 luma) copies of `{meta['train_dirs']}` (BSD200 + T91,",
        "  the same pixels as `../shared/datasets/train`; the"
        f" {len(scores['held_out_files'])} images the config holds out",
        "  are never trained on), plus copies downscaled as the config says",
        f"- degradation: additive {meta['noise']} (0..255 scale), drawn per crop",
        f"- crops: {meta['patch']} px, batch {meta['batch_size']}, iterations:"
        f" {meta['iterations']}",
        f"- wall time: {int(meta['wall_seconds']) / 60:.0f} min on {meta['machine']}"
        f" (device {meta['device']}), sharing its cores with other work",
        f"- command: `jpegsr train configs/{meta['run']}.yaml` (Adam, cosine schedule)",
        "- far shorter than DnCNN's published training (tens of epochs over hundreds of",
        "  thousands of 50 px patches), so likely weaker than MATLAB's pretrained network;",
        "  `configs/gpu/dncnn.yaml` is the same recipe at DnCNN-B's batch and crops for a lent",
        "  GPU (`bash scripts/gpu_train.sh SECONDS configs/gpu/dncnn.yaml`).",
        "",
        "## Denoising PSNR on held-out images (grayscale, dB, no border)",
        "",
        "| held-out set | images | sigma | noisy input | denoised | gain |",
        "|---|---|---|---|---|---|",
    ]
    for set_name, per_sigma in scores["sets"].items():
        for sigma, r in per_sigma.items():
            if r["noisy_psnr"] is None:  # sigma 0: the clean image fed as it is
                lines.append(f"| {set_name} | {r['n']} | 0 (clean input) | - | "
                             f"{r['denoised_psnr']:.2f} | - |")  # fmt: skip
                continue
            gain = r["denoised_psnr"] - r["noisy_psnr"]
            lines.append(f"| {set_name} | {r['n']} | {sigma} | {r['noisy_psnr']:.2f} | "
                         f"{r['denoised_psnr']:.2f} | {gain:+.2f} |")  # fmt: skip
    lines += ["", f"Command: `{scores['command']}` (results/denoiser/dncnn.json)", "",
              "## As the (M) input: x4 bicubic on the pre-denoised JPEG (Y-PSNR/SSIM, border 4)",
              "", "| JPEG q | input | " + " | ".join(SETS) + " |",
              "|---|---|" + "---|" * len(SETS)]  # fmt: skip
    for q in (20, 50):
        for label, stem in (("as decoded", "bicubic"), ("DnCNN", "dncnn_bicubic"),
                            ("NLM", "nlm_bicubic")):  # fmt: skip
            path = RESULTS / f"baselines/{stem}_q{q}.json"
            if path.exists():
                res = json.loads(path.read_text())
                lines.append(f"| {q} | {label} | "
                             + " | ".join(cell(res["sets"], s) for s in SETS) + " |")  # fmt: skip
    lines += ["", "Commands: `bash scripts/baselines.sh` (results/baselines/); this card:",
              "`jpegsr report cards`.", ""]  # fmt: skip
    return "\n".join(lines)


def build() -> dict[Path, str]:
    texts = {}
    for name in shipped_models():
        card = SHIPPED_DIR / f"{name}.md"
        texts[card] = card_with_benchmarks(card.read_text(), name)
    if DENOISER_CARD.with_suffix(".safetensors").exists():
        texts[DENOISER_CARD] = denoiser_card()
    return texts
