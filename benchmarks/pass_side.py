"""How large auto tiling's forward passes should be: time and memory per pass size, on this
machine, in the precision ``jpegsr upscale`` picks here: benchmarks/pass_side.{json,md}.

    python benchmarks/pass_side.py          # about 3 minutes; keep the machine idle
    python benchmarks/pass_side.py --quick  # a smoke run

``jpegsr.inference.MAX_PASS_SIDE`` bounds every forward pass to about side^2 LR pixels.
Smaller passes cost time (each reads overlapping context, and small convolutions run less
efficiently); larger ones cost memory. For each side this times the speed test image (a
480x320 JPEG, q=20, to 1920x1280; median of the runs, the sides' runs interleaved) and
measures the peak RSS of a fresh process that upscales a 1000x750 image (a 4000x3000 output),
as ``benchmarks/speed.py`` does; issue #15 bounds that peak to 1.5 GiB.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import jpegsr
from jpegsr import inference
from jpegsr.allocator import keep_freed_memory
from jpegsr.perf import cpu_label, cpu_model, speed_test_image, widest_isa
from jpegsr.weights_io import choose_shipped

HERE = Path(__file__).resolve().parent
SIDES = (256, 320, 384, 448, 512)
RSS_LIMIT_MIB = 1536  # issue #15: a 4000x3000 output under 1.5 GiB
PEAK_RSS_CODE = """
import re, numpy as np, jpegsr
from pathlib import Path
from jpegsr import inference
from jpegsr.allocator import keep_freed_memory
keep_freed_memory()
inference.MAX_PASS_SIDE[{precision!r}] = {side}
x = np.random.default_rng(0).integers(0, 256, (750, 1000, 3), dtype=np.uint8)
inference.upscale_array(jpegsr.load_model({model!r}), x, precision={precision!r})
print(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
"""


def peak_rss_mib(model: str, precision: str, side: int) -> float:
    code = PEAK_RSS_CODE.format(model=model, precision=precision, side=side)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-1]) / 1024


def measure(repeats: int, rss: bool) -> dict:
    keep_freed_memory()  # as `jpegsr upscale` does
    model = choose_shipped(20)
    loaded = jpegsr.load_model(model)
    precision = "bf16" if inference.use_bf16("auto", torch.device("cpu")) else "fp32"
    img = speed_test_image()
    shipped = inference.MAX_PASS_SIDE[precision]
    times: dict[int, list[float]] = {side: [] for side in SIDES}
    try:
        for round_ in range(repeats + 1):  # the first round warms up
            for side in SIDES:
                inference.MAX_PASS_SIDE[precision] = side
                t = time.perf_counter()
                inference.upscale_array(loaded, img, precision=precision)
                if round_:
                    times[side].append(time.perf_counter() - t)
    finally:
        inference.MAX_PASS_SIDE[precision] = shipped
    rows = [
        {
            "side": side,
            "seconds": round(statistics.median(times[side]), 3),
            "peak_rss_mib": round(peak_rss_mib(model, precision, side)) if rss else None,
        }
        for side in SIDES
    ]
    return {
        "machine": cpu_label(
            cpu_model(), platform.machine(), torch.get_num_threads(), widest_isa()
        ),
        "measured": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "model": model,
        "precision": precision,
        "shipped_side": shipped,
        "repeats": repeats,
        "rows": rows,
    }


def render(res: dict) -> str:
    lines = [
        "# Auto tiling: forward-pass size against time and memory",
        "",
        "Written by `python benchmarks/pass_side.py`: the speed test image (480x320 JPEG, q=20,",
        "to 1920x1280) with `jpegsr.inference.MAX_PASS_SIDE` set to each side (median of "
        f"{res['repeats']}",
        "runs, the sides' runs interleaved), and the peak RSS of a fresh process upscaling a",
        f"1000x750 image (a 4000x3000 output; issue #15 bounds it to {RSS_LIMIT_MIB} MiB).",
        "",
        f"Machine: {res['machine']}, torch {res['torch']}, measured {res['measured']}; model "
        f"`{res['model']}`, {res['precision']} (what `--precision auto` picks here). Shipped "
        f"side for {res['precision']}: **{res['shipped_side']}**.",
        "",
        "| max pass side (LR px) | 480x320 time (s) | peak RSS, 4000x3000 output (MiB) |",
        "|---|---|---|",
    ]
    for r in res["rows"]:
        rss = "-" if r["peak_rss_mib"] is None else f"{r['peak_rss_mib']}"
        mark = " (shipped)" if r["side"] == res["shipped_side"] else ""
        lines.append(f"| {r['side']}{mark} | {r['seconds']:.3f} | {rss} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 runs per side, no RSS children")
    ap.add_argument("--out", type=Path, default=HERE / "pass_side.json")
    args = ap.parse_args()
    res = measure(2 if args.quick else 5, rss=not args.quick)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(render(res))
    print(render(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
