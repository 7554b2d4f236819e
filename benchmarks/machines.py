"""How long ``jpegsr upscale`` takes on each CPU it has been measured on:
benchmarks/machines.{json,md}.

    python benchmarks/machines.py           # this machine's row (about a minute; keep it idle)
    python benchmarks/machines.py --render  # only rebuild the Markdown from the JSON

``benchmarks/speed.py`` times every path on one benchmark machine. The CPUs jpegsr runs on
differ: some run bf16 natively (AVX-512 BF16, AMX), many (most laptops and desktops) have AVX2
alone, and ``jpegsr upscale`` takes another path on each (``--precision auto``: bf16 where
native, else fp32). This records, per machine, the path ``auto`` takes on the speed test image
(a 480x320 JPEG, q=20, to 1920x1280; median of 5 runs after a warm-up), the fused copy's
convolution rate against a dense matmul in the same precision (the best of the same runs), and
the floor that rate sets: the fused convolutions' FLOPs over the matmul rate, the time no form
of this network on that path gets below unless its convolutions outrun a dense matmul. A run
replaces only its own machine's row; the benchmark machine of ``speed.py`` is listed from
``benchmarks/results.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
from pathlib import Path

import torch

import jpegsr
from jpegsr.inference import upscale_array, use_bf16
from jpegsr.models.fused import onednn_fusion_available
from jpegsr.perf import (
    busy_fields,
    cpu_label,
    cpu_model,
    fused_conv_flops,
    matmul,
    measured_label,
    quiet_check,
    speed_test_image,
    timed_round_robin,
    widest_isa,
)
from jpegsr.weights_io import choose_shipped

HERE = Path(__file__).resolve().parent
JSON, MARKDOWN, SPEED = HERE / "machines.json", HERE / "machines.md", HERE / "results.json"
REPEATS = 5


def auto_path(cpu: torch.device) -> str:
    """The path ``jpegsr upscale`` takes here: its precision, fused (oneDNN) or not."""
    bf16 = use_bf16("auto", cpu)
    fused = onednn_fusion_available(cpu, torch.bfloat16 if bf16 else torch.float32)
    return f"{'bf16' if bf16 else 'fp32'}, {'fused' if fused else 'fused, plain ops'}"


def measure(repeats: int = REPEATS) -> dict:
    """This machine's row: the auto path on the speed test image and the matmul beside it."""
    busy = quiet_check()
    cpu = torch.device("cpu")
    model = choose_shipped(20)  # what `jpegsr upscale` uses for a q=20 file
    loaded = jpegsr.load_model(model)
    img = speed_test_image()
    bf16 = use_bf16("auto", cpu)
    mm, mm_flop = matmul(torch.bfloat16 if bf16 else torch.float32)
    fns = {"upscale": lambda: upscale_array(loaded, img), "matmul": mm}
    times = timed_round_robin(fns, repeats, statistic=list)
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
    gflop = fused_conv_flops(loaded.module, x) / 1e9
    threads = torch.get_num_threads()
    return {
        "machine": cpu_label(cpu_model(), platform.machine(), threads, widest_isa()),
        "measured": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "model": model,
        "path": auto_path(cpu),
        "seconds": round(statistics.median(times["upscale"]), 3),
        "repeats": repeats,
        "fused_conv_gflop": round(gflop, 1),
        "conv_gflops": round(gflop / min(times["upscale"]), 1),
        "matmul_gflops": round(mm_flop / min(times["matmul"]) / 1e9, 1),
        "source": "`python benchmarks/machines.py`",
        **busy_fields(busy),
    }


def speed_machine(res: dict) -> str:
    """The label of ``benchmarks/speed.py``'s machine, from its results (which named no
    architecture before they recorded it; their CPU flags are x86's)."""
    m = res["machine"]
    return cpu_label(m["cpu"], m.get("arch", "x86_64"), m["cores"], widest_isa(m["cpu_features"]))


def from_speed(res: dict) -> dict:
    """The benchmark machine's row, from ``benchmarks/speed.py``'s results."""
    m, auto = res["machine"], res["auto_path"]
    precision = "bf16" if auto.startswith("bf16") else "fp32"
    return {
        "machine": speed_machine(res),
        "measured": res.get("measured", "-"),
        "torch": m["torch"],
        "model": res["model"],
        "path": auto,
        "seconds": round(res["paths"][auto]["seconds"], 3),
        "repeats": res["a_upscale_480x320"]["repeats"],
        "fused_conv_gflop": round(res["a_upscale_480x320"]["fused_conv_gflop"], 1),
        "conv_gflops": round(res["d_gflops"][f"conv_{precision}"], 1),
        "matmul_gflops": round(res["d_gflops"][f"matmul_{precision}"], 1),
        "source": "`python benchmarks/speed.py` (`results.json`)",
    }


def merge(old: list[dict], new: dict) -> list[dict]:
    """``old`` with ``new`` in place of the row of the same machine, fastest first."""
    rows = [r for r in old if r["machine"] != new["machine"]] + [new]
    return sorted(rows, key=lambda r: r["seconds"])


def floor_s(row: dict) -> float:
    """Seconds the fused convolutions alone take at the machine's dense matmul rate."""
    return row["fused_conv_gflop"] / row["matmul_gflops"]


def rows_with_speed(rows: list[dict], speed: dict | None) -> list[dict]:
    """This file's rows and the benchmark machine's (from speed.py's ``results.json``),
    fastest first; a row measured by this script for the same machine wins."""
    if speed is None:
        return rows
    bench = from_speed(speed)
    if any(r["machine"] == bench["machine"] for r in rows):
        return rows
    return merge(rows, bench)


def render(rows: list[dict]) -> str:
    lines = [
        "# Upscaling speed on each CPU measured",
        "",
        "Written by `python benchmarks/machines.py` (one row per machine; a run replaces only",
        "its own machine's). `jpegsr upscale` on the speed test image, a 480x320 JPEG (q=20) to",
        "1920x1280 (decoded input; reading and writing files not included), on the path it picks",
        "there: bf16 where the CPU runs it natively (AVX-512 BF16, AMX), else fp32; `fused` is",
        "the oneDNN inference copy (`jpegsr.models.fused`). Median of the runs; `conv` is the",
        "fused copy's convolution FLOPs over the best run, `matmul` a dense 2048^2 matmul in",
        "the same precision, timed between the same runs; `floor` is those FLOPs at the matmul",
        "rate, the time this network on this path does not get below unless its convolutions",
        "outrun a dense matmul. Every path on the benchmark machine, the peers and the targets:",
        "[`README.md`](README.md) (`python benchmarks/speed.py`). A date marked *busy* was",
        "measured while other processes kept that share of the CPUs busy: its times read slow.",
        "",
        "| machine | measured | torch | model | path | time (s) | runs | conv GFLOP/s "
        "| matmul GFLOP/s | conv/matmul | floor (s) | source |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        measured = measured_label(r["measured"], r.get("cpu_busy"))
        lines.append(
            f"| {r['machine']} | {measured} | {r['torch']} | {r['model']} | {r['path']} "
            f"| {r['seconds']:.3f} | {r['repeats']} | {r['conv_gflops']:.0f} "
            f"| {r['matmul_gflops']:.0f} | {r['conv_gflops'] / r['matmul_gflops']:.2f} "
            f"| {floor_s(r):.3f} | {r['source']} |"
        )
    return "\n".join(lines) + "\n"


def load(path: Path) -> list[dict]:
    return json.loads(path.read_text())["rows"] if path.exists() else []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--render", action="store_true", help="only rebuild the Markdown")
    ap.add_argument("--out", type=Path, default=JSON, help="the JSON to merge this row into")
    args = ap.parse_args()
    rows = load(args.out)
    if not args.render:
        rows = merge(rows, measure())
        args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    speed = json.loads(SPEED.read_text()) if SPEED.exists() else None
    text = render(rows_with_speed(rows, speed))
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
