"""Throughput of ``jpegsr upscale --engine ray`` here: benchmarks/ray_throughput.{json,md}.

    python benchmarks/ray_throughput.py                       # 64 files; keep the machine idle
    python benchmarks/ray_throughput.py --files 4 --out /tmp/ray_smoke   # a smoke run

The inputs are N JPEGs of 480x320 at quality 20 (``jpegsr.degrade.jpeg_encode``), crops of
the training images (BSD200, T91) that are at least that large; synthetic only when there
are none. They are upscaled into a fresh folder by the local engine (one process, all cores:
the reference; run before Ray starts) and by the Ray engine with 1 and with 2 actors of one
thread each, on one Ray instance started here for both (its start is not timed; each run's
actor start and model load are). files/s is N over the wall time of the whole call. Each
actor's peak RSS is the kernel's high-water mark (VmHWM) of its process, read from /proc
while the run goes; whether each run's outputs are byte for byte the local engine's is
recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from jpegsr import degrade
from jpegsr.batch import BatchOptions, upscale_files
from jpegsr.perf import cpu_model
from jpegsr.weights_io import choose_shipped

HERE = Path(__file__).resolve().parent
TRAIN_DIRS = (Path("../shared/datasets/train/BSD200"), Path("../shared/datasets/train/T91"))
WIDTH, HEIGHT, QUALITY = 480, 320, 20
ACTORS = (1, 2)


def make_inputs(folder: Path, n: int) -> str:
    """Write ``n`` 480x320 q20 JPEGs into ``folder``; returns where their pixels came from."""
    sources = [p for d in TRAIN_DIRS if d.is_dir() for p in sorted(d.iterdir())]
    big = []
    for p in sources:
        with Image.open(p) as im:
            if min(im.size) >= HEIGHT and max(im.size) >= WIDTH:
                big.append(p)
    for i in range(n):
        if big:
            hr = np.asarray(Image.open(big[i % len(big)]).convert("RGB"))
            if hr.shape[0] > hr.shape[1]:
                hr = hr.transpose(1, 0, 2)
            hr = hr[:HEIGHT, :WIDTH] if i < len(big) else hr[-HEIGHT:, -WIDTH:]
        else:
            yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
            hr = np.stack([(xx + i) % 255, yy % 255, (xx * yy + i) % 255], -1).astype(np.uint8)
        data = degrade.jpeg_encode(np.ascontiguousarray(hr), QUALITY)
        (folder / f"img{i:04d}.jpg").write_bytes(data)
    return ", ".join(sorted({p.parent.name for p in big})) if big else "synthetic"


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc; Linux)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _actors() -> list[int]:
    """This process's Ray Data actor processes (their title is ``ray::MapWorker(...)``)."""
    found = []
    for pid in _children(os.getpid()):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::MapWorker"):
                found.append(pid)
        except OSError:
            continue
    return found


class ActorMemory(threading.Thread):
    """Samples the peak RSS (VmHWM, MiB) of the Ray actor processes that start after it,
    until stopped (those of an earlier run may still be exiting)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.earlier = set(_actors())
        self.peak: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            for pid in set(_actors()) - self.earlier:
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            mib = int(line.split()[1]) / 1024
                            self.peak[pid] = max(self.peak.get(pid, 0.0), mib)
                except OSError:
                    continue

    def stop(self) -> list[float]:
        self.done.set()
        self.join()
        return sorted(round(v, 1) for v in self.peak.values())


def timed_run(engine: str, src: Path, out: Path, actors: int | None) -> tuple[float, list[float]]:
    """(wall seconds, per-actor peak RSS in MiB) of one engine on the folder ``src``."""
    from jpegsr.ray_engine import upscale_files_ray

    memory = ActorMemory()
    memory.start()
    t = time.perf_counter()
    if engine == "local":
        summary = upscale_files([src], out, BatchOptions(progress=False))
    else:
        opt = BatchOptions(progress=False, threads=1)
        summary = upscale_files_ray([src], out, opt, actors=actors or 1)
    wall = time.perf_counter() - t
    peaks = memory.stop()
    if summary.failed or not summary.ok:
        raise SystemExit(f"{engine}: {summary.line()} {summary.failed[:3]}")
    return wall, peaks


def render(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Ray engine throughput",
        "",
        "Written by `python benchmarks/ray_throughput.py`: "
        f"{result['files']} JPEGs of {WIDTH}x{HEIGHT} at quality {QUALITY} (crops of "
        f"{result['source']} training images) upscaled x4 by `jpegsr upscale` with model "
        f"`{result['model']}`, on {m['cpu']} ({m['cpus']} CPUs), torch {m['torch']}, "
        f"Ray {m['ray']}, {result['date']}. Wall time of the whole call; Ray runs include "
        "starting the actors and loading the model in each, not starting Ray. Peak RSS is "
        "each actor process's high-water mark (VmHWM).",
        "",
        "| engine | actors x threads | wall (s) | files/s | vs 1 actor | peak RSS per actor "
        "(MiB) | outputs = local |",
        "|---|---|---|---|---|---|---|",
    ]
    one = next((r for r in result["runs"] if r["actors"] == 1), None)
    for r in result["runs"]:
        shape = f"{r['actors']} x 1" if r["actors"] else f"1 process x {m['torch_threads']}"
        ratio = f"{r['files_per_s'] / one['files_per_s']:.2f}x" if one and r["actors"] else "-"
        rss = ", ".join(f"{v:.0f}" for v in r["actor_peak_rss_mib"]) or "-"
        same = "-" if r["engine"] == "local" else ("yes" if r["identical_to_local"] else "no")
        lines.append(
            f"| {r['engine']} | {shape} | {r['wall_s']:.1f} | {r['files_per_s']:.3f} | "
            f"{ratio} | {rss} | {same} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=64, help="JPEGs to upscale (default 64)")
    parser.add_argument("--out", type=Path, default=HERE / "ray_throughput",
                        help="results as OUT.json and OUT.md")  # fmt: skip
    args = parser.parse_args()
    import ray

    runs = []
    with tempfile.TemporaryDirectory(prefix="jpegsr-ray-bench-") as tmp:
        src = Path(tmp, "in")
        src.mkdir()
        source = make_inputs(src, args.files)
        reference = Path(tmp, "local")

        def measure(engine: str, actors: int | None) -> None:
            out = reference if engine == "local" else Path(tmp, f"ray{actors}")
            wall, peaks = timed_run(engine, src, out, actors)
            same = all((out / p.name).read_bytes() == p.read_bytes() for p in reference.iterdir())
            runs.append({
                "engine": engine, "actors": actors, "wall_s": round(wall, 2),
                "files_per_s": round(args.files / wall, 4),
                "actor_peak_rss_mib": peaks, "identical_to_local": same,
            })  # fmt: skip
            print(json.dumps(runs[-1]), flush=True)

        measure("local", None)  # before Ray starts: no Ray process competes for the cores
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                 log_to_driver=False)  # fmt: skip
        try:
            for actors in ACTORS:
                measure("ray", actors)
        finally:
            ray.shutdown()
    result = {
        "machine": {
            "cpu": cpu_model(),
            "arch": platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "ray": ray.__version__,
            "python": platform.python_version(),
        },
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", "benchmarks/ray_throughput.py", *sys.argv[1:]]),
        "files": args.files,
        "source": source,
        "model": choose_shipped(QUALITY),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(render(result))
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
