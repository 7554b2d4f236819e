"""Training speed of the shipped recipe: benchmarks/train_speed.{json,md}.

    python benchmarks/train_speed.py                    # this machine's device (CPU here)
    python benchmarks/train_speed.py --device cuda      # on a lent GPU: adds/replaces its rows
    python benchmarks/train_speed.py --compile          # also time torch.compile of the step
    python benchmarks/train_speed.py --device cuda --compile --compile-mode reduce-overhead
    python benchmarks/train_speed.py --device cuda --cuda-graph   # + the step as one CUDA graph
    python benchmarks/train_speed.py --device cuda --profile  # + where the eager step's time
                                                              #   goes: benchmarks/train_profile.md
    python benchmarks/train_speed.py --precision bf16 --shape 16x48  # e.g. emulated bf16
    python benchmarks/train_speed.py --render           # rebuild the Markdown from the JSON

The recipe is the shipped one: two-stage s-LWSR32, the three L1 losses, bf16 autocast
where the device runs it natively (else fp32, as `jpegsr train` does), channels_last, fused
Adam, EMA, random JPEG quality per sample; batches cut on the device
from :class:`jpegsr.data.TripletStore` (real training images when found, else synthetic).
For batch 16 x 48 px and 64 x 64 px it reports ms per iteration (median of timed windows),
samples/s, the share of an iteration spent cutting the batch, and the convolution FLOP rate
(forward + backward ~= 3x forward) against the dense matmul rate measured on the same device
in the same precision. Rows of other devices (or precisions) already in the JSON are kept,
so the CPU and a GPU row sit side by side; the Markdown is rebuilt from the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from jpegsr import models
from jpegsr.allocator import keep_freed_memory
from jpegsr.config import TrainConfig, from_dict
from jpegsr.data import Triplet, TripletStore, build_triplets, list_images
from jpegsr.inference import use_bf16
from jpegsr.perf import (
    busy_fields,
    conv_flops,
    cpu_label,
    cpu_model,
    measured_label,
    quiet_check,
    widest_isa,
)
from jpegsr.train_step import TrainStep

HERE = Path(__file__).resolve().parent

SHAPES = ((16, 48), (64, 64))
TRAIN_DIRS = ("../shared/datasets/train/BSD200", "../shared/datasets/train/T91")
QUALITIES = [10, 15, 20, 25, 30, 35, 40, 50, 60, 70, 80, 90]
TARGETS_MS = {("cpu", 16, 48): 250.0, ("cuda", 64, 64): 11.0}  # issue #12
DATA_WAIT_TARGET = 0.10


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_ms(fn: Callable[[], object], device: str, iters: int, windows: int) -> float:
    """Median over ``windows`` of the mean ms per call across ``iters`` calls."""
    out = []
    for _ in range(windows):
        sync(device)
        t = time.perf_counter()
        for _ in range(iters):
            fn()
        sync(device)
        out.append(1000 * (time.perf_counter() - t) / iters)
    return statistics.median(out)


def matmul_tflops(device: str, bf16: bool = True) -> float:
    n = 8192 if device == "cuda" else 2048
    dtype = torch.bfloat16 if bf16 else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    ms = median_ms(lambda: torch.mm(a, b), device, iters=10 if device == "cuda" else 2, windows=3)
    return 2 * n**3 / (ms / 1000) / 1e12


def training_triplets(n_images: int) -> list[Triplet]:
    """Up to ``n_images`` real training images (packed copies first: what a lease carries),
    else synthetic ones."""
    packs = (".gpu_train", ".gpu_data", ".gpu_photos")
    packed = [(f"{pack}/BSD200", f"{pack}/T91") for pack in packs]
    for dirs in (*packed, TRAIN_DIRS):
        if all(Path(d).is_dir() for d in dirs):
            paths = [p for d in dirs for p in list_images(d)]
            step = max(1, len(paths) // n_images)
            return build_triplets(paths[::step][:n_images], 4, QUALITIES, 64)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n_images):
        hr = rng.integers(0, 256, (320, 480, 3), dtype=np.uint8)
        lr = hr[::4, ::4].copy()
        out.append(Triplet(lr=lr, hr=hr, compressed={q: lr for q in QUALITIES}))
    return out


def machine(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} ({platform.machine()}, {os.cpu_count()} cpu)"
    # rows from before the extension was recorded name none
    return cpu_label(cpu_model(), platform.machine(), torch.get_num_threads(), widest_isa())


def recipe(
    device: str,
    batch: int,
    patch: int,
    compile_: bool = False,
    mode: str = "default",
    graph: bool = False,
    bf16: bool = True,
) -> TrainConfig:
    """The shipped recipe's training config at one batch shape, as the benchmark runs it
    (``bf16``: autocast, where the device runs it natively)."""
    return from_dict(
        TrainConfig,
        {
            "name": "speed",
            "model": "two_stage_slwsr32",
            "iterations": 1,
            "batch_size": batch,
            "device": device,
            "compile": compile_,
            "compile_mode": mode,
            "cuda_graph": graph,
            "bf16": bf16,
            "data": {"lr_patch": patch, "qualities": QUALITIES},
            "optim": {"ema_decay": 0.999},
        },
    )


def measure(
    store: TripletStore,
    device: str,
    batch: int,
    patch: int,
    compile_: bool,
    fast: bool,
    mode: str = "default",
    graph: bool = False,
    bf16: bool = True,
) -> dict:
    config = recipe(device, batch, patch, compile_, mode, graph, bf16)
    torch.manual_seed(0)
    step = TrainStep(models.build("two_stage_slwsr32", 4), config)
    counter = iter(range(10**9))

    def data() -> dict[str, torch.Tensor]:
        return store.batch(batch, patch, seed=0, iteration=next(counter))

    def iteration() -> None:
        step(data(), 1e-4, next(counter))

    gpu = device == "cuda"
    warm = 15 if gpu else 3
    if compile_ or graph:
        warm += 5  # compilation, or the eager warm-up calls and the capture
    for _ in range(warm):
        iteration()
    iters, windows = (50, 5) if gpu else ((4, 3) if not fast else (2, 2))
    if not gpu and batch * patch * patch > 16 * 48 * 48:
        iters = 2 if not fast else 1
    step_ms = median_ms(iteration, device, iters, windows)
    data_ms = median_ms(data, device, iters, windows)
    x = torch.rand(batch, 3, patch, patch, device=device)
    fwd_flop = conv_flops(step.model, x)
    conv_tflops = 3 * fwd_flop / (step_ms / 1000) / 1e12
    return {
        "batch": batch,
        "patch": patch,
        "compile": "cuda-graph" if graph else compile_ and mode or False,
        "ms_per_iter": round(step_ms, 2),
        "samples_per_s": round(1000 * batch / step_ms, 1),
        "data_ms": round(data_ms, 3),
        "data_share": round(data_ms / step_ms, 4),
        "conv_tflop_per_iter": round(3 * fwd_flop / 1e12, 4),
        "conv_tflops": round(conv_tflops, 4),
    }


def profile_step(store: TripletStore, device: str, batch: int, patch: int, bf16: bool) -> dict:
    """The eager step's operators by self time on ``device`` (a CUDA graph's replay would show
    as one opaque call, so the step is profiled unfused), top 12 with their shares."""
    torch.manual_seed(0)
    config = recipe(device, batch, patch, bf16=bf16)
    step = TrainStep(models.build("two_stage_slwsr32", 4), config)
    for it in range(5):
        step(store.batch(batch, patch, seed=0, iteration=it), 1e-4, it)
    sync(device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for it in range(5, 10):
            step(store.batch(batch, patch, seed=0, iteration=it), 1e-4, it)
        sync(device)

    def self_us(e: object) -> float:
        key = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
        return float(getattr(e, key))

    ops = sorted(prof.key_averages(), key=self_us, reverse=True)
    total = sum(self_us(e) for e in ops)
    top = [{"op": e.key[:90], "calls_per_iter": e.count // 5, "ms_per_iter": self_us(e) / 5000,
            "share": self_us(e) / total} for e in ops[:12]]  # fmt: skip
    return {"device": device, "machine": machine(device), "date": time.strftime("%Y-%m-%d"),
            "precision": "bf16" if bf16 else "fp32",
            "torch": torch.__version__, "batch": batch, "patch": patch,
            "ms_per_iter_profiled": total / 5000, "ops": top}  # fmt: skip


def profile_key(prof: dict) -> str:
    """Profiles are kept per device, machine and precision (a run replaces only its own)."""
    return f"{prof['device']}, {prof['machine']}, {precision(prof)}"


def render_profile(profiles: dict[str, dict]) -> str:
    lines = [
        "# Where the training step's time goes",
        "",
        "Written by `python benchmarks/train_speed.py --profile` (add `--device cuda` on a",
        "GPU): the eager step of the shipped recipe (as in `train_speed.md`), 5 iterations",
        "under `torch.profiler`, operators by self time on the device (CUDA kernels on a GPU,",
        "CPU operators on a CPU). The profiler's own overhead inflates the total.",
    ]
    for _, prof in sorted(profiles.items()):
        lines += ["", f"## {prof['device']}: {prof['machine']}, {precision(prof)}, "
                  f"{measured_label(prof['date'], prof.get('cpu_busy'))}, torch {prof['torch']}, "
                  f"batch {prof['batch']} x {prof['patch']} px, "
                  f"{prof['ms_per_iter_profiled']:.1f} ms per iteration profiled", "",
                  "| operator | calls per iteration | ms per iteration | share |",
                  "|---|---|---|---|"]  # fmt: skip
        lines += [f"| `{o['op']}` | {o['calls_per_iter']} | {o['ms_per_iter']:.2f} | "
                  f"{o['share']:.0%} |" for o in prof["ops"]]  # fmt: skip
    return "\n".join(lines) + "\n"


def _compile_label(value: bool | str) -> str:
    """Rows record False, True (the default mode, older rows) or the mode's name."""
    if value is True or value == "default":
        return "yes"
    return str(value) if value else "no"


def precision(row: dict) -> str:
    """The row's arithmetic: rows from before fp32 fallback were all bf16."""
    return row.get("precision", "bf16")


def conv_floor_ms(row: dict) -> float:
    """ms the row's convolutions (forward + backward) would take at its device's matmul rate
    (infinite where that rate rounded to zero: emulated bf16 on a CPU without it)."""
    if row["matmul_tflops"] <= 0:
        return math.inf
    return 1000.0 * row["conv_tflop_per_iter"] / row["matmul_tflops"]


def _matmul_cells(row: dict, floor: float) -> str:
    """The matmul rate, conv/matmul and conv floor cells (a rate too small to show: less
    than the last digit kept, no ratio, no floor)."""
    if math.isinf(floor):
        return "< 0.001 | - | -"
    ratio = row["conv_tflops"] / row["matmul_tflops"]
    return f"{row['matmul_tflops']:.3f} | {ratio:.2f} | {floor:.1f}"


def render(rows: list[dict]) -> str:
    lines = [
        "# Training speed",
        "",
        "Written by `python benchmarks/train_speed.py` (add `--device cuda` on a GPU); the shipped",
        "recipe (two-stage s-LWSR32, three L1 losses, channels_last, fused Adam, EMA) in the",
        "`precision` `jpegsr train` uses there: bf16 autocast where the device runs bf16",
        "natively (a GPU, a CPU with AVX-512 BF16 or AMX), else fp32. Batches are cut on the",
        "device from `TripletStore`. `data` is the share of an iteration spent cutting its",
        "batch; `conv/matmul` is the convolutions' FLOP rate over the whole step (forward +",
        "backward counted as 3x forward) against a dense matmul in the same precision, measured",
        "on the same device in the same run. `conv floor` is the time the step's convolutions",
        "alone would take at that matmul rate (their FLOPs over it): unless convolutions outrun",
        "a dense matmul, no faster form of this recipe in this precision on this device gets",
        "below it. Targets (issue #12): CPU <= 250 ms at 16 x 48 px; GPU <= 11",
        "ms at 64 x 64 px with data <= 10%; a target under its row's floor is marked so. The",
        "process keeps freed memory for reuse, as `jpegsr train` does",
        "(`jpegsr.allocator.keep_freed_memory`; [`page_faults.md`](page_faults.md)). A date",
        "marked *busy* was measured while other processes kept that share of the CPUs busy",
        "(`jpegsr.perf.cpu_busy`, just before measuring): its times read slow. Where the",
        "step's time goes, operator by operator: [`train_profile.md`](train_profile.md)",
        "(`--profile`).",
        "",
        "| device | machine | precision | measured | batch x px | compile | ms/iter | samples/s |"
        " data | conv TFLOP/s | matmul TFLOP/s | conv/matmul | conv floor ms | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        floor = conv_floor_ms(r)
        target = TARGETS_MS.get((r["device"], r["batch"], r["patch"]))
        if target is None:
            verdict = ""
        else:
            ok = r["ms_per_iter"] <= target and (
                r["device"] == "cpu" or r["data_share"] <= DATA_WAIT_TARGET
            )
            verdict = f"<= {target:g} ms: {'yes' if ok else '**no**'}"
            if floor > target:
                verdict += " (under the floor)"
        measured = measured_label(r["date"], r.get("cpu_busy"))
        lines.append(
            f"| {r['device']} | {r['machine']} | {precision(r)} | {measured} | "
            f"{r['batch']} x {r['patch']} | "
            f"{_compile_label(r['compile'])} | {r['ms_per_iter']:.1f} | "
            f"{r['samples_per_s']:.{0 if r['samples_per_s'] >= 10 else 1}f} | "
            f"{100 * r['data_share']:.1f}% | "
            f"{r['conv_tflops']:.3f} | {_matmul_cells(r, floor)} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """The table after a run: each old row stays unless the run measured the same kind on the
    same machine (device, machine, precision, compile, shape), so the CPUs and GPUs of
    different leases and sessions keep their own rows (a CPU model name covers chips with
    and without native bf16: their rows differ in precision)."""

    def key(r: dict) -> tuple:
        return (r["device"], r["machine"], precision(r), r["compile"] or False, r["batch"],
                r["patch"])  # fmt: skip

    remeasured = {key(r) for r in new}
    kept = [r for r in old if key(r) not in remeasured]
    return sorted(kept + new, key=lambda r: (*key(r)[:3], str(r["compile"]), r["batch"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument(
        "--compile-mode",
        default="default",
        choices=["default", "reduce-overhead", "max-autotune-no-cudagraphs"],
    )
    parser.add_argument(
        "--cuda-graph", action="store_true", help="also time the step captured as a CUDA graph"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile the eager step at the last shape"
    )
    parser.add_argument(
        "--shape", action="append", default=[], metavar="BxP",
        help="batch x LR crop px to time (repeatable; default 16x48 and 64x64)",
    )  # fmt: skip
    parser.add_argument(
        "--precision", choices=["auto", "bf16", "fp32"], default="auto",
        help="auto (default): bf16 where the device runs it natively, else fp32, as "
        "`jpegsr train` does; bf16/fp32 force one (e.g. to time emulated bf16)",
    )  # fmt: skip
    parser.add_argument("--images", type=int, default=40, help="training images to cache")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    parser.add_argument("--out", type=Path, default=HERE / "train_speed")
    parser.add_argument(
        "--render", action="store_true", help="only rebuild the Markdown from the JSON"
    )
    args = parser.parse_args()
    json_path = args.out.with_suffix(".json")
    if args.render:
        if not json_path.exists():
            parser.error(f"--render: no {json_path} to render")
        rows = json.loads(json_path.read_text())["rows"]
        args.out.with_suffix(".md").write_text(render(rows))
        return 0
    keep_freed_memory()  # as `jpegsr train` does
    device = args.device
    try:
        shapes = [tuple(int(v) for v in x.split("x")) for x in args.shape] or list(SHAPES)
    except ValueError:
        parser.error("--shape takes BATCHxPATCH, e.g. 16x48")
    store = TripletStore(training_triplets(args.images), 4, device)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    bf16 = use_bf16(args.precision, torch.device(device))  # auto: as `jpegsr train` decides
    busy = quiet_check()
    common = {
        "device": device,
        "machine": machine(device),
        "precision": "bf16" if bf16 else "fp32",
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "matmul_tflops": round(matmul_tflops(device, bf16), 3),
        **busy_fields(busy),
    }
    rows = []
    if args.cuda_graph and device != "cuda":
        parser.error("--cuda-graph needs --device cuda")
    variants = [(False, False)] + [(True, False)] * args.compile + [(False, True)] * args.cuda_graph
    for compile_, graph in variants:
        for batch, patch in shapes:
            mode = args.compile_mode
            found = measure(store, device, batch, patch, compile_, args.quick, mode, graph, bf16)
            row = {**common, **found}
            print(json.dumps(row), flush=True)
            rows.append(row)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(json_path.read_text())["rows"] if json_path.exists() else []
    all_rows = merge_rows(old, rows)
    json_path.write_text(json.dumps({"rows": all_rows}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(render(all_rows))
    print(render(all_rows))
    if args.profile:
        path = args.out.with_name("train_profile.json")
        profiles = json.loads(path.read_text()) if path.exists() else {}
        found = profile_step(store, device, *shapes[-1], bf16)
        found |= busy_fields(busy)
        profiles[profile_key(found)] = found  # one per machine and precision, as the rows
        path.write_text(json.dumps(profiles, indent=1) + "\n")
        path.with_suffix(".md").write_text(render_profile(profiles))
        print(render_profile(profiles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
