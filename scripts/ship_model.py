"""Ship a trained run as a packaged model: weights + model card.

    python scripts/ship_model.py runs/default_q20 --name q20 --config configs/default_q20.yaml

Copies RUN/model.safetensors to src/jpegsr/weights/NAME.safetensors and writes NAME.md, the
model card: training data, degradation, iterations, wall time, machine, command, validation
PSNR, and the benchmark table from results/models/NAME_q*.json (made by `jpegsr benchmark
--method NAME ... --json results/models/NAME_qQ.json`) beside bicubic (results/baselines).
After benchmarking, `jpegsr report cards` refreshes that table in every card.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
from pathlib import Path

import yaml
from safetensors import safe_open

from jpegsr.perf import cpu_model
from jpegsr.reports.cards import benchmark_section
from jpegsr.reports.common import write_atomic
from jpegsr.validation import paired_result_path

WEIGHTS = Path("src/jpegsr/weights")
EXTRA_TERMS = (
    "The extra photos (`.extra_photos/train`, fetched by `scripts/fetch_extra_photos.py`) are "
    "from Debian wallpaper packages under CC0-1.0, CC-BY-4.0, CC-BY-SA-3.0/4.0 or GPL-2+; "
    "author, licence and source of each are in `data/extra_photos.yaml`, the attribution they "
    "require. "
)
DATA_TERMS = (
    "BSD200 is the BSDS300 training set (Berkeley; for non-commercial research and "
    "education), T91 (Yang et al.) a research benchmark; see `../shared/datasets/README.md`. "
    "The weights are released with the code under the MIT licence (`LICENSE`); whether a "
    "model trained on this data may be used commercially is for the user to judge under the "
    "datasets' terms."
)


def export_checkpoint(run: Path, dst: Path) -> None:
    """Write the checkpoint's EMA (else raw) weights with the metadata a finished run has."""
    import os
    import platform

    import torch

    from jpegsr import models
    from jpegsr.weights_io import save_weights

    config = yaml.safe_load((run / "config.yaml").read_text())
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = models.build(config["model"], config["data"]["scale"])
    model.load_state_dict(state["ema"] if "ema" in state else state["model"])
    d = config["data"]
    save_weights(model, config["model"], d["scale"], dst, extra={
        "run": config["name"],
        "iterations": str(state["iteration"]),
        "wall_seconds": f"{state['wall_seconds']:.0f}",
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, world 1",
        "train_dirs": ",".join(d["train_dirs"]),
        "qualities": ",".join(map(str, d["qualities"])),
        "input": d["input"],
    })  # fmt: skip


def add_lineage(weights: Path, config: dict, earlier: list[Path] = ()) -> None:
    """Record the device, and the init run's cost when that run is not itself shipped.

    A model fine-tuned from an unshipped run (a first GPU lease, say) would otherwise hide
    that run's training time from the budget that results/quality.md sums.
    """
    from safetensors.torch import load_file, save_file

    with safe_open(str(weights), framework="pt") as f:
        meta = dict(f.metadata())
    meta.setdefault("device", config.get("device", "cpu"))
    if config["data"].get("extra_train_dirs"):  # runs older than this metadata key
        meta.setdefault("extra_train_dirs", ",".join(config["data"]["extra_train_dirs"]))
    init = Path(config.get("init_from") or "")
    shipped = {p.read_bytes() for p in WEIGHTS.glob("*.safetensors") if p != weights}
    if init.is_file() and init.read_bytes() not in shipped:
        with safe_open(str(init), framework="pt") as f:
            init_meta = dict(f.metadata())
        # runs older than the "device" metadata key: read it from the run's config
        init_config = init.parent / "config.yaml"
        init_device = init_meta.get("device") or (
            yaml.safe_load(init_config.read_text()).get("device", "cpu")
            if init_config.is_file()
            else "cpu"
        )
        meta.update({
            "init_run": init_meta.get("run", init.stem),
            "init_iterations": init_meta.get("iterations", "0"),
            "init_wall_seconds": init_meta.get("wall_seconds", "0"),
            "init_machine": init_meta.get("machine", "unknown"),
            "init_device": init_device,
        })  # fmt: skip
    for i, path in enumerate(earlier, start=2):
        m = json.loads(path.read_text())
        keys = ("run", "iterations", "wall_seconds", "machine", "device")
        meta.update({f"init{i}_{k}": m[k] for k in keys if k in m})
    tmp = weights.with_name(weights.name + ".tmp")
    save_file(load_file(str(weights)), str(tmp), metadata=meta)
    tmp.chmod(0o644)
    tmp.replace(weights)


def data_counts(config: dict) -> tuple[int, int, int]:
    """(images found, used for training, held out) exactly as jpegsr.train selects them
    (``data.extra_train_dirs`` are trained on whole)."""
    from PIL import Image

    from jpegsr.data import list_images, split_train_val

    d = config["data"]
    paths = [p for folder in d["train_dirs"] for p in list_images(folder)]
    train, val = split_train_val(paths, d["val_count"])
    extra = [p for folder in d.get("extra_train_dirs", []) for p in list_images(folder)]
    paths, train = paths + extra, train + extra
    side = d["lr_patch"] * d["scale"]
    used = sum(1 for p in train if min(Image.open(p).size) >= side)
    return len(paths), used, len(val)


def loss_phrase(loss: dict) -> str:
    """The card's losses: their distance (the paper's L1 unless ``norm: l2``) and weights."""
    kind = "L1" if loss.get("norm", "l1") == "l1" else "mean-squared-error"
    text = f"{kind} losses recover/sr/cycle = {loss['recover']}/{loss['sr']}/{loss['cycle']}"
    if loss.get("ssim"):
        text += f", 1 - SSIM on Y x {loss['ssim']}"
    return text


def precision_phrase(machine: str, bf16: bool) -> str:
    """The card's arithmetic, from the run's machine record: `jpegsr train` notes ", fp32" on
    each stretch that ran without native bf16 (records from before name bf16 stretches only
    by omission); ``bf16``: the config's request."""
    stretches = machine.split("; ")
    fp32 = [", fp32" in s or not bf16 for s in stretches]
    if all(fp32):
        return "fp32"
    if any(fp32):
        return "bf16 autocast, fp32 on the stretches the wall time marks so"
    return "bf16 autocast"


def validation_line(config: dict, val: list[dict], label: str = "") -> str:
    """The card's validation line: the run's own val log (Y-PSNR on its held-out training
    images), or, for a run that held none out (``val_count: 0``), the paired comparison
    with the model it started from that `jpegsr validate --label LABEL` wrote
    (``results/validation/``; LABEL defaults to the config's name)."""
    if val:
        return (
            f"- **Validation** (Y-PSNR on the held-out training images, q="
            f"{config['data']['val_quality']}): "
            + ", ".join(f"{r['iteration']}: {r['val_psnr']}" for r in val)
        )
    run, start = label or config["name"], config.get("init_from")
    paired = paired_result_path(run, start)
    if not paired.exists():
        raise SystemExit(
            f"error: {run} has no val_log.csv and no {paired}: run `jpegsr validate "
            f"RUN/model.safetensors --label {run} --against {start}` first"
        )
    result = json.loads(paired.read_text())
    gains = ", ".join(
        f"q={g['quality']} {g['mean_db']:+.4f} ± {g['se_db']:.4f} dB" for g in result["gains"]
    )
    return (
        f"- **Validation**: none during training (`val_count: 0`); against "
        f"`{result['reference']}` on {result['gains'][0]['n']} validation images (paired Y-PSNR "
        f"gain ± standard error, `{paired}`): {gains}."
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument(
        "--from-checkpoint",
        action="store_true",
        help="ship the EMA weights of RUN/checkpoint.pt (a run still training or cut short)",
    )
    ap.add_argument(
        "--label",
        default="",
        help="the label RUN's `jpegsr validate --against` comparison was recorded under "
        "(default: the config's name; a stretch of a continuing run has its own)",
    )
    ap.add_argument("--note", default="", help="a line for the card (e.g. what changed)")
    ap.add_argument("--earlier", nargs="*", type=Path, default=[], metavar="METADATA_JSON",
                    help="model_metadata.json of the unshipped runs before the init run, "
                    "newest first (init2_, init3_... keys: their cost counts too)")  # fmt: skip
    args = ap.parse_args()
    config = yaml.safe_load((args.run / "config.yaml").read_text())
    val_log = args.run / "val_log.csv"
    validation = validation_line(
        config, list(csv.DictReader(val_log.open())) if val_log.exists() else [], args.label
    )
    dst = WEIGHTS / f"{args.name}.safetensors"
    if args.from_checkpoint:
        export_checkpoint(args.run, dst)
    else:
        shutil.copyfile(args.run / "model.safetensors", dst)
    add_lineage(dst, config, args.earlier)
    with safe_open(str(dst), framework="pt") as f:
        meta = dict(f.metadata())
    d = config["data"]
    found, used, held_out = data_counts(config)
    on_gpu = config.get("device") == "cuda"
    # a GPU run's length was fitted to its lease by scripts/gpu_train.sh: name the count it ran
    train_command = (
        f"jpegsr train {args.config} --iterations {meta['iterations']}"
        if on_gpu
        else f"jpegsr train {args.config} --resume"
    )
    lines = [
        f"# Model card: `{args.name}`",
        "",
        f"- **Architecture**: `{meta['jpegsr_arch']}` (x{meta['scale']}), see "
        "`src/jpegsr/models/`; weights in safetensors (float32).",
        f"- **Training data**: {', '.join(d['train_dirs'] + d.get('extra_train_dirs', []))}: "
        f"{found} images, {held_out} held "
        f"out for validation, {used} used for training (images under "
        f"{d['lr_patch'] * d['scale']} px on a side cannot give a {d['lr_patch']} px LR crop).",
        f"- **Training data terms**: {EXTRA_TERMS if d.get('extra_train_dirs') else ''}"
        f"{DATA_TERMS}",
        f"- **Degradation**: HR cropped to x{d['scale']}, MATLAB-style bicubic down x{d['scale']},"
        f" Pillow JPEG quality {d['qualities']} with 4:2:0 chroma (`jpegsr.degrade`); network "
        f"input: {d['input']} LR.",
        f"- **Training**: {meta['iterations']} of {config['iterations']} iterations, "
        f"batch {config['batch_size']} of "
        f"{d['lr_patch']} px LR crops, Adam, peak lr {config['optim']['lr']} "
        f"({config['optim']['schedule']}, warmup {config['optim']['warmup']}), EMA "
        f"{config['optim']['ema_decay']}, {loss_phrase(config['loss'])}, "
        f"{precision_phrase(meta['machine'], config.get('bf16', True))}.",
        f"- **Wall time**: {int(meta['wall_seconds']) / 3600:.2f} h on {meta['machine']}"
        + (
            ""
            if "cpu_model" in meta or on_gpu or cpu_model() in meta["machine"]
            else f" ({cpu_model()}, read when shipping on the training machine; no GPU)"
        )
        + ".",
        f"- **Command**: `{train_command}`, then "
        f"`python scripts/ship_model.py {args.run} --name {args.name} --config {args.config}"
        + (" --from-checkpoint" if args.from_checkpoint else "")
        + (f" --label {args.label}" if args.label else "")
        + (f" --note {shlex.quote(args.note)}" if args.note else "")
        + "".join(f" --earlier {p}" for p in args.earlier)
        + "`.",
        *(
            [
                f"- **Fine-tuned from**: `{config['init_from']}` (its own training time is in its "
                "card; `results/quality.md` sums the shipped models' training)."
            ]
            if config.get("init_from") and "init_run" not in meta
            else []
        ),
        *(
            [
                f"- **Fine-tuned from**: `{config['init_from']}`, the unshipped run "
                f"`{meta['init_run']}`: {meta['init_iterations']} iterations, "
                f"{int(meta['init_wall_seconds']) / 3600:.2f} h on {meta['init_machine']} "
                "(counted in `results/quality.md`'s training sum)."
            ]
            if "init_run" in meta
            else []
        ),
        *(
            f"- **Before that** (unshipped): `{meta[f'init{i}_run']}`, "
            f"{meta[f'init{i}_iterations']} iterations, "
            f"{int(meta[f'init{i}_wall_seconds']) / 3600:.2f} h on {meta[f'init{i}_machine']}."
            for i in range(2, 100)
            if f"init{i}_run" in meta
        ),
        *([f"- **Note**: {args.note}"] if args.note else []),
        validation,
        "",
        *benchmark_section(args.name),
        "",
    ]
    write_atomic(WEIGHTS / f"{args.name}.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
