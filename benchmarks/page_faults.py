"""Page faults and time with glibc's default handling of freed memory and with
:func:`jpegsr.allocator.keep_freed_memory` (what the command line, the server and the Ray
workers use): benchmarks/page_faults.{json,md}.

    python benchmarks/page_faults.py          # about 2 minutes; keep the machine idle
    python benchmarks/page_faults.py --quick  # a smoke run

Two workloads, each in fresh processes that alternate between the settings (so that a slow
spell of a shared machine falls on both): (1) ``upscale_array`` on the 480x320 q=20 speed-test
image with the model ``jpegsr upscale`` picks, on the path it picks; (2) one training
iteration of the shipped recipe at batch 16 x 48 px (``benchmarks/train_speed.py``'s step).
Each process warms up, then records every call's minor page faults (``ru_minflt``) and wall
time, and its peak RSS. The cost of one 4 KiB page fault on this machine is measured too, so
the time the faults take can be told apart from the machine's noise.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SETTINGS = {"glibc default": "0", "keep_freed_memory": "1"}
WORKLOADS = ("upscale", "train")


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def peak_rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def fault_cost_us(mib: int = 200, repeats: int = 3) -> float:
    """Microseconds per 4 KiB page fault: touch fresh anonymous pages one by one (best of
    ``repeats``)."""
    best = float("inf")
    for _ in range(repeats):
        with mmap.mmap(-1, mib << 20) as m:
            a = np.frombuffer(m, dtype=np.uint8)
            f0, t0 = faults(), time.perf_counter()
            a[:: mmap.PAGESIZE] = 1
            dt, n = time.perf_counter() - t0, faults() - f0
            del a
        best = min(best, dt / max(n, 1) * 1e6)
    return best


def child(workload: str, calls: int) -> dict:
    """One fresh process's measurements (the setting comes from JPEGSR_KEEP_MEMORY)."""
    from jpegsr.allocator import keep_freed_memory

    kept = keep_freed_memory()
    torch.set_num_threads(os.cpu_count() or 1)
    if workload == "upscale":
        import jpegsr
        from jpegsr.inference import upscale_array
        from jpegsr.perf import speed_test_image
        from jpegsr.weights_io import choose_shipped

        loaded, img = jpegsr.load_model(choose_shipped(20)), speed_test_image()

        def call() -> None:
            upscale_array(loaded, img)

        warm = 2
    else:
        sys.path.insert(0, str(HERE))
        from train_speed import SHAPES, recipe, training_triplets

        from jpegsr import models
        from jpegsr.data import TripletStore
        from jpegsr.train_step import TrainStep

        batch, patch = SHAPES[0]
        store = TripletStore(training_triplets(10), 4, "cpu")
        torch.manual_seed(0)
        step = TrainStep(models.build("two_stage_slwsr32", 4), recipe("cpu", batch, patch))
        counter = iter(range(10**9))

        def call() -> None:
            i = next(counter)
            step(store.batch(batch, patch, seed=0, iteration=i), 1e-4, i)

        warm = 3
    for _ in range(warm):
        call()
    seconds, counts = [], []
    for _ in range(calls):
        f0, t0 = faults(), time.perf_counter()
        call()
        seconds.append(time.perf_counter() - t0)
        counts.append(faults() - f0)
    return {"kept": kept, "seconds": seconds, "faults": counts, "peak_rss_mib": peak_rss_mib()}


def run_child(workload: str, setting: str, calls: int) -> dict:
    env = {**os.environ, "JPEGSR_KEEP_MEMORY": SETTINGS[setting]}
    cmd = [sys.executable, __file__, "--child", workload, "--calls", str(calls)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict], cost_us: float) -> dict:
    seconds = [s for r in runs for s in r["seconds"]]
    counts = [f for r in runs for f in r["faults"]]
    return {
        "calls": len(seconds),
        "median_s": round(statistics.median(seconds), 4),
        "min_s": round(min(seconds), 4),
        "faults_per_call": round(statistics.mean(counts)),
        "fault_ms_per_call": round(statistics.mean(counts) * cost_us / 1000, 1),
        "peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs)),
        "applied": all(r["kept"] for r in runs),
    }


def markdown(res: dict) -> str:
    lines = [
        "# Page faults: glibc's default against `keep_freed_memory`",
        "",
        f"Written by `python benchmarks/page_faults.py`. {res['machine']}. One 4 KiB page "
        f"fault costs **{res['fault_cost_us']:.2f} us** here (fresh pages touched one by one, "
        "best of 3). Each row: fresh processes alternating between the settings, "
        f"{res['rounds']} per setting; `fault time` is faults per call times that cost.",
        "",
        "| workload | setting | calls | median (s) | min (s) | page faults per call "
        "| fault time per call (ms) | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload, label in (
        ("upscale", "480x320 q=20 -> 1920x1280 (`upscale_array`, auto path)"),
        ("train", "one training iteration, 16 x 48 px (the shipped recipe)"),
    ):
        for setting in SETTINGS:
            r = res["results"][workload][setting]
            lines.append(
                f"| {label} | {setting} | {r['calls']} | {r['median_s']:.3f} | {r['min_s']:.3f} "
                f"| {r['faults_per_call']} | {r['fault_ms_per_call']:.1f} | {r['peak_rss_mib']} |"
            )
    lines += [
        "",
        "`jpegsr` (the command line, `jpegsr serve`, the Ray workers) calls "
        "`jpegsr.allocator.keep_freed_memory()` at start; `JPEGSR_KEEP_MEMORY=0` turns it off. "
        "The wall times are noisy on a shared machine; the fault counts are not.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=6, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke test)")
    parser.add_argument("--out", type=Path, default=HERE / "page_faults")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.calls)))
        return 0
    rounds, calls = (1, 2) if args.quick else (3, 6)
    cost = fault_cost_us()
    results: dict[str, dict[str, dict]] = {}
    for workload in WORKLOADS:
        runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
        for _ in range(rounds):
            for setting in SETTINGS:
                runs[setting].append(run_child(workload, setting, calls))
        results[workload] = {s: summarize(r, cost) for s, r in runs.items()}
    from jpegsr.perf import cpu_model

    res = {
        "command": "python benchmarks/page_faults.py" + (" --quick" if args.quick else ""),
        "machine": f"{cpu_model()}, {os.cpu_count()} threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}",
        "fault_cost_us": round(cost, 3),
        "rounds": rounds,
        "results": results,
    }
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
