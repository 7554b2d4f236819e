"""Measuring speed: the machine (CPU model and the features the fast paths depend on), wall
time, the convolution work of a model and the dense-matmul rate it is compared with, and the
one test image the speed benchmarks share.

Used by the speed benchmarks (``benchmarks/``) and recorded with their results; nothing here
changes what inference does (``jpegsr.inference`` detects features for itself).
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from jpegsr import degrade
from jpegsr.models.fused import fuse_for_inference

T = TypeVar("T")

# CPU flags (as /proc/cpuinfo names them) that decide which kernels oneDNN can use
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_model() -> str:
    """The CPU's model name (recorded with speed results and in model cards)."""
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def cpu_features() -> dict[str, bool]:
    """Which of :data:`CPU_FEATURES` this CPU reports (all False where it cannot be read)."""
    flags: set[str] = set()
    for line in _cpuinfo():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return {f: f in flags for f in CPU_FEATURES}


def widest_isa(features: dict[str, bool] | None = None) -> str:
    """The widest of this CPU's vector extensions that the fast paths tell apart: ``amx_bf16``,
    ``avx512_bf16``, ``avx512f`` or ``avx2`` (``""`` where none or unreadable). One model name
    ("AMD EPYC") covers chips with and without native bf16; this names which one ran.
    ``features``: a :func:`cpu_features` dict recorded elsewhere, instead of this CPU's."""
    features = cpu_features() if features is None else features
    for isa in ("amx_bf16", "avx512_bf16", "avx512f", "avx2"):
        if features[isa]:
            return isa
    return ""


def cpu_label(cpu: str, arch: str, threads: int, isa: str) -> str:
    """A CPU as the speed tables name it: model name, architecture, threads used and the
    widest vector extension (:func:`widest_isa`), since one model name can cover chips with
    and without native bf16."""
    return f"{cpu} ({arch}, {threads} threads, {isa or 'no avx2'})"


def _cpu_jiffies(stat: Path) -> tuple[int, int] | None:
    """(busy, total) time of all CPUs so far, from the first line of ``stat`` (Linux's
    /proc/stat: user nice system idle iowait irq softirq steal ...); None where unreadable."""
    try:
        fields = stat.read_text().split("\n", 1)[0].split()
        values = [int(v) for v in fields[1:9]]
    except (OSError, ValueError):
        return None
    if fields[:1] != ["cpu"] or len(values) < 5:
        return None
    total = sum(values)
    return total - values[3] - values[4], total


def cpu_busy(interval: float = 1.0, stat: Path = Path("/proc/stat")) -> float | None:
    """The share of all CPUs' time that other processes kept busy over ``interval`` seconds
    while this one slept (0..1), or None where the kernel does not say (no /proc/stat). A
    speed benchmark records it with its rows: a job left running beside it (a training run
    at nice 19 included) takes cores from what it times, and its numbers read slow."""
    before = _cpu_jiffies(stat)
    time.sleep(interval)
    after = _cpu_jiffies(stat)
    if before is None or after is None or after[1] <= before[1]:
        return None
    return min(1.0, max(0.0, (after[0] - before[0]) / (after[1] - before[1])))


BUSY_WARNING = 0.10  # cpu_busy above this: say that the machine was not quiet


def quiet_check(interval: float = 1.0) -> float | None:
    """:func:`cpu_busy` before a benchmark measures, with a warning on stderr where other
    processes were using the CPUs (the value is for the benchmark's rows)."""
    busy = cpu_busy(interval)
    if busy is not None and busy > BUSY_WARNING:
        print(f"warning: other processes kept {busy:.0%} of the CPUs busy before measuring; "
              "the timings will read slow (pause them, e.g. kill -STOP, and run again)",
              file=sys.stderr)  # fmt: skip
    return busy


def busy_fields(busy: float | None) -> dict[str, float]:
    """:func:`quiet_check`'s reading as a result row's fields (none where it was not read)."""
    return {} if busy is None else {"cpu_busy": round(busy, 3)}


def measured_label(date: str, busy: float | None) -> str:
    """A speed row's date as the tables show it: marked *busy* where :func:`cpu_busy` found
    other processes using the CPUs before it was measured (None: not recorded)."""
    if busy is not None and busy > BUSY_WARNING:
        return f"{date} (*busy {busy:.0%}*)"
    return date


def timed(
    fn: Callable[[], object],
    repeats: int,
    statistic: Callable[[list[float]], float] = statistics.median,
) -> float:
    """Wall time of ``repeats`` calls, after one warm-up call: their median, or another
    ``statistic`` of them (``min``: the best the machine attains)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistic(times)


def timed_round_robin(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    statistic: Callable[[list[float]], T] = statistics.median,
) -> dict[str, T]:
    """:func:`timed` for several functions at once, their calls interleaved (one warm-up call
    each, then ``repeats`` rounds of one call each), so that a slow spell of a shared machine
    falls on all of them alike rather than on whichever ran during it. ``statistic=list``
    keeps every time."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistic(ts) for name, ts in times.items()}


def conv_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds x 2 of every convolution ``model`` runs on ``x`` (PyTorch's FLOP counter:
    module calls and functional calls alike; oneDNN's fused ops are not counted, so count a
    fused copy with its ``onednn`` switched off)."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return float(sum(n for op, n in counter.get_flop_counts()["Global"].items()
                     if "convolution" in str(op)))  # fmt: skip


def fused_conv_flops(module: torch.nn.Module, x: torch.Tensor) -> float:
    """The convolution work of ``module``'s fused inference copy on ``x`` (counted on its
    plain-PyTorch form, which runs the same convolutions as the oneDNN one); ``module``'s own
    where it has no fused copy."""
    fused = fuse_for_inference(module, torch.float32, torch.device("cpu"))
    if fused is None:
        return conv_flops(module, x)
    for m in fused.modules():
        if hasattr(m, "onednn"):
            m.onednn = False
    return conv_flops(fused, x.contiguous(memory_format=torch.channels_last))


def matmul(dtype: torch.dtype, n: int = 2048) -> tuple[Callable[[], object], float]:
    """A dense n x n matmul in ``dtype`` to time, and its FLOP count: the reference that
    convolution rates are held against."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return (lambda: torch.mm(a, b)), 2.0 * n**3


def speed_test_image(data_root: Path = Path("../shared/datasets")) -> np.ndarray:
    """The speed benchmarks' input, a 480x320 JPEG q=20 (decoded): a crop of the first BSD100
    image when the data is there, else synthetic."""
    bsd = data_root / "benchmark/BSD100"
    if bsd.is_dir():
        hr = np.asarray(Image.open(sorted(bsd.glob("*.png"))[0]).convert("RGB"))
        if hr.shape[0] > hr.shape[1]:
            hr = hr.transpose(1, 0, 2)
        src = hr[:320, :480]
    else:
        yy, xx = np.mgrid[0:320, 0:480]
        src = np.stack([xx % 255, yy % 255, (xx * yy) % 255], -1).astype(np.uint8)
    return degrade.jpeg_roundtrip(np.ascontiguousarray(src), 20)
