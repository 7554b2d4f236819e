"""Speed and memory of jpegsr on this machine, path by path and against its peers:
benchmarks/results.json and the tables in benchmarks/README.md (both written by this script).

    python benchmarks/speed.py            # everything (about 8 minutes; keep the machine idle)
    python benchmarks/speed.py --quick    # a smoke run with fewer repeats, no peak-RSS children

(a) wall time to upscale a 480x320 JPEG (q=20) to 1920x1280 with the model ``jpegsr upscale``
    picks for a q=20 file (``MODEL``), median of 5 runs on all cores, for each inference path
    (fp32 or bf16; the model as trained or its fused copy, ``jpegsr.models.fused``; tiled or in
    one pass) beside the path the tool picks here (``auto``), with each path's Set5 Y-PSNR
    change against fp32 as trained; (b) each path's peak RSS for a 4000x3000 output in a fresh
    process; (d) achieved convolution GFLOP/s against dense matmul GFLOP/s measured in the same
    run and precision; (e) the peers on the same image and cores: Pillow bicubic and, when
    ``pip install -e ".[bench]"`` is done, Real-ESRGAN x4plus through ncnn; and Y-PSNR/SSIM of
    every method on Set5 at q=20. The machine's CPU features are recorded with the results.
    Training speed has its own benchmark (``benchmarks/train_speed.py``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import jpegsr
from jpegsr import degrade
from jpegsr.allocator import keep_freed_memory
from jpegsr.benchmark import evaluate_set, resolve_set
from jpegsr.imageio import PNG_COMPRESS_LEVEL
from jpegsr.inference import MAX_PASS_SIDE, upscale_array, use_bf16
from jpegsr.models.fused import onednn_fusion_available
from jpegsr.perf import (
    BUSY_WARNING,
    busy_fields,
    conv_flops,
    cpu_features,
    cpu_model,
    fused_conv_flops,
    matmul,
    quiet_check,
    speed_test_image,
    timed,
    timed_round_robin,
)
from jpegsr.weights_io import LoadedModel, choose_shipped

OUT = Path(__file__).resolve().parent
MODEL = choose_shipped(20)  # what `jpegsr upscale` uses for the q=20 test image
OURS = f"jpegsr {MODEL}"
REFERENCE = "fp32, as trained"
# the inference paths: upscale_array keyword arguments (tile None = auto tiling)
PATHS: dict[str, dict[str, object]] = {
    REFERENCE: {"precision": "fp32", "fuse": False},
    "fp32, fused": {"precision": "fp32"},
    "bf16 autocast, as trained": {"precision": "bf16", "fuse": False},
    "bf16, fused": {"precision": "bf16"},
    "bf16, fused, one pass (no tiles)": {"precision": "bf16", "tile": 0},
}
PEER = "Real-ESRGAN x4plus (ncnn)"

TARGETS = {  # issue #15
    "a_auto_s": 0.25,
    "psnr_delta_db": 0.02,
    "b_peak_rss_mib": 1.5 * 1024,
    "d_fraction_of_matmul": 0.6,
    "speedup_vs_realesrgan": 100.0,
}


def auto_path() -> str:
    """The path ``jpegsr upscale`` takes on this machine (precision ``auto``, fused)."""
    return "bf16, fused" if use_bf16("auto", torch.device("cpu")) else "fp32, fused"


PEAK_RSS_CODE = """
import re, resource, numpy as np, jpegsr
from pathlib import Path
from jpegsr.allocator import keep_freed_memory
from jpegsr.inference import upscale_array
keep_freed_memory()
x = np.random.default_rng(0).integers(0, 256, ({h}, {w}, 3), dtype=np.uint8)
upscale_array(jpegsr.load_model("{model}"), x, **{kwargs!r})
status = Path("/proc/self/status")
if status.exists():  # VmHWM: this process's own peak (ru_maxrss can include the forking parent)
    print(re.search(r"VmHWM:\\s+(\\d+) kB", status.read_text()).group(1))
else:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_child(h: int, w: int, kwargs: dict[str, object]) -> float:
    """Peak RSS (MiB) of a fresh process that upscales an h x w image along one path."""
    code = PEAK_RSS_CODE.format(h=h, w=w, model=MODEL, kwargs=kwargs)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # KiB -> MiB


def peers(threads: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The methods compared with the path jpegsr takes, each uint8 LR -> uint8 x4."""
    loaded = jpegsr.load_model(MODEL)

    def bicubic_pillow(lq: np.ndarray) -> np.ndarray:
        h, w = lq.shape[:2]
        return np.asarray(Image.fromarray(lq).resize((w * 4, h * 4), Image.Resampling.BICUBIC))

    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        f"{OURS} (auto: {auto_path()})": lambda lq: upscale_array(loaded, lq),
        "Pillow bicubic": bicubic_pillow,
    }
    try:
        from realesrgan_ncnn import RealESRGAN

        methods[PEER] = RealESRGAN(threads)
    except ImportError as exc:
        print(f"Real-ESRGAN peer skipped ({exc}); pip install -e '.[bench]'", file=sys.stderr)
    return methods


def precision_delta(model: str) -> float:
    """Max |Y-PSNR bf16 - fp32| of ``model`` over the four sets (committed results)."""
    root = OUT.parent / "results"
    fp32 = json.loads((root / f"models/{model}_q20.json").read_text())["sets"]
    bf16 = json.loads((root / f"precision/{model}_q20_bf16.json").read_text())["sets"]
    return max(abs(fp32[s]["psnr"] - bf16[s]["psnr"]) for s in fp32)


def measure_paths(img: np.ndarray, n: int, quick: bool) -> dict[str, dict[str, float | None]]:
    """Each path's time on ``img`` (the paths' runs interleaved), Set5 q=20 Y-PSNR change
    against fp32 as trained, and peak RSS for a 4000x3000 output (None in a quick run)."""
    loaded = jpegsr.load_model(MODEL)
    set5 = resolve_set(None, "Set5")
    runs = {
        name: (lambda lq, kw=kwargs: upscale_array(loaded, lq, **kw))  # noqa: E731
        for name, kwargs in PATHS.items()
    }
    seconds = timed_round_robin({name: partial(run, img) for name, run in runs.items()}, n)
    rows: dict[str, dict[str, float | None]] = {}
    for name, run in runs.items():
        rows[name] = {
            "seconds": seconds[name],
            "set5_psnr": evaluate_set(run, set5, 4, 20, progress=False).psnr,
            "peak_rss_mib": None if quick else peak_rss_child(750, 1000, PATHS[name]),
        }
    ref = rows[REFERENCE]["set5_psnr"]
    for row in rows.values():
        row["set5_psnr_change_db"] = row["set5_psnr"] - ref  # type: ignore[operator]
    return rows


def throughput(loaded: LoadedModel, img: np.ndarray, fused_gflop: float, n: int) -> dict:
    """GFLOP/s of the fused paths' convolutions and of a dense matmul, per precision: the
    best of ``n`` runs each, all interleaved, so that both rates are what the machine attains
    at the same moments."""
    fns: dict[str, Callable[[], object]] = {}
    flop: dict[str, float] = {}
    for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        fns[f"conv_{p}"] = partial(upscale_array, loaded, img, precision=p)
        flop[f"conv_{p}"] = fused_gflop * 1e9
        fns[f"matmul_{p}"], flop[f"matmul_{p}"] = matmul(dtype)
    best = timed_round_robin(fns, n, min)
    return {name: flop[name] / best[name] / 1e9 for name in fns} | {"repeats": n}


def busy_note(busy: float | None) -> str:
    """A clause for the machine line where other processes were using the CPUs before the
    run measured (results from before this was recorded: none)."""
    if busy is None or busy <= BUSY_WARNING:
        return ""
    return f"; other processes kept {busy:.0%} of the CPUs busy as it began: its times read slow"


def markdown(res: dict) -> str:
    a, d, m, paths = res["a_upscale_480x320"], res["d_gflops"], res["machine"], res["paths"]
    model = res["model"]  # the results' own model: MODEL may have changed since they were taken
    feats = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in m["cpu_features"].items())
    rows = [
        "# Speed and memory benchmarks",
        "",
        "Everything below is written by one command (keep the machine otherwise idle; about",
        '8 minutes; the Real-ESRGAN peer needs `pip install -e ".[bench]"`):',
        "",
        "```bash",
        "python benchmarks/speed.py        # -> benchmarks/results.json and this README",
        "python benchmarks/fast_paths.py   # -> benchmarks/fast_paths.{json,md}",
        "python benchmarks/png_encode.py   # -> benchmarks/png_encode.{json,md}",
        "python benchmarks/train_speed.py  # -> benchmarks/train_speed.{json,md}",
        "python benchmarks/ray_throughput.py  # -> benchmarks/ray_throughput.{json,md}",
        "python benchmarks/int8_pt2e.py   # -> benchmarks/int8_pt2e.{json,md} (needs torchao)",
        "python benchmarks/page_faults.py  # -> benchmarks/page_faults.{json,md}",
        "python benchmarks/machines.py    # -> benchmarks/machines.{json,md} (this CPU's row)",
        "python benchmarks/pass_side.py   # -> benchmarks/pass_side.{json,md}",
        "```",
        "",
        "[`fast_paths.md`](fast_paths.md) times the fast-path candidates on one tile and shows",
        "where the time goes; [`int8_pt2e.md`](int8_pt2e.md) why int8 is not shipped (compiled",
        "int8 ran slower than the fused bf16 path and cost more than 0.05 dB);",
        "[`png_encode.md`](png_encode.md) what writing the result costs",
        f"(`jpegsr upscale` writes PNG at zlib level {PNG_COMPRESS_LEVEL});",
        "[`machines.md`](machines.md) the time on each CPU measured (many have no native",
        "bf16 and run fp32); [`pass_side.md`](pass_side.md) how large auto tiling's passes",
        "are, and why. `jpegsr upscale` runs",
        "the model's fused inference copy",
        "(`jpegsr.models.fused`: oneDNN convolutions with the ReLU and residual adds as post-ops,",
        "no concatenations, folded constants, the upsampling tail folded into one convolution)",
        "in bf16 where the CPU runs bf16 natively",
        "(`--precision auto`, the default) and in fp32 elsewhere; without oneDNN the same copy",
        "runs on plain PyTorch ops. On the four benchmark sets bf16 changes Y-PSNR by at most",
        f"{precision_delta(model):.4f} dB",
        f"([`results/precision/{model}_q20_bf16.json`](../results/precision/{model}_q20_bf16.json)"
        f" vs [`results/models/{model}_q20.json`](../results/models/{model}_q20.json)).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} torch threads, torch {m['torch']}, "
        f"Python {m['python']}. Command: `{res['command']}`" + busy_note(res.get("cpu_busy")) + ".",
        "",
        f"CPU features: {feats}; oneDNN fusion: {'yes' if m['onednn_fusion'] else 'no'}; "
        f"bf16 native: {'yes' if m['bf16_native'] else 'no'}, so `auto` takes "
        f"**{res['auto_path']}**.",
        "",
        "Every path runs as `jpegsr upscale` runs it, in a process that keeps freed memory "
        "for reuse (`jpegsr.allocator.keep_freed_memory`: "
        f"{'applied' if res.get('keep_freed_memory') else 'not available here'}; "
        "[`page_faults.md`](page_faults.md) shows what it saves).",
        "",
        "## (a, b) 480x320 JPEG (q=20) to 1920x1280, path by path",
        "",
        "| path | time (s) | Set5 q=20 Y-PSNR change vs fp32 as trained (dB) | "
        "peak RSS, 4000x3000 output (MiB) |",
        "|---|---|---|---|",
    ]
    for name, r in paths.items():
        rss = "-" if r["peak_rss_mib"] is None else f"{r['peak_rss_mib']:.0f}"
        mark = " (auto)" if name == res["auto_path"] else ""
        rows.append(f"| {name}{mark} | {r['seconds']:.3f} | {r['set5_psnr_change_db']:+.4f} "
                    f"| {rss} |")  # fmt: skip
    rows += [
        "",
        f"Median of {a['repeats']} runs each, after one warm-up, the paths' runs "
        f"interleaved; the same image for every path. Auto tiling bounds each forward pass "
        f"to {a['max_pass_side']['bf16']}^2 LR "
        f"pixels in bf16, {a['max_pass_side']['fp32']}^2 in fp32"
        + (
            "."
            if a["max_pass_side"] == MAX_PASS_SIDE
            else f" (jpegsr now uses {MAX_PASS_SIDE['bf16']}^2 and {MAX_PASS_SIDE['fp32']}^2: "
            "[`pass_side.md`](pass_side.md))."
        ),
        "",
        "## (e) The peers on the same image and cores; Set5 q=20 x4 quality",
        "",
        "| method | time (s) | Set5 Y-PSNR | Set5 SSIM |",
        "|---|---|---|---|",
    ]
    for name, t in a["seconds"].items():
        q = res["e_set5_q20"].get(name)
        cell = f"{q['psnr']:.2f} | {q['ssim']:.4f}" if q else "- | -"
        rows.append(f"| {name} | {t:.3f} | {cell} |")
    rows += [
        "",
        f"Median of {a['repeats']} runs each (Real-ESRGAN: {a['peer_repeats']}), after one "
        "warm-up; jpegsr's time is its path's in (a).",
        "",
        "## Targets (issue #15)",
        "",
        "| measure | result | target | met |",
        "|---|---|---|---|",
    ]
    for label, value, target, ok in res["targets"]:
        rows.append(f"| {label} | {value} | {target} | {'yes' if ok else '**no**'} |")
    rows += [
        "",
        "## (d) Throughput",
        "",
        f"Convolutions the fused copy of `{model}` runs on the 480x320 input: "
        f"{a['fused_conv_gflop']:.0f} GFLOP (the model as trained: {a['conv_gflop']:.0f}; "
        "the fused copy folds the upsampling tail into one convolution). Whole image, border "
        "and tiling overlap not counted, so these rates are low bounds. Each rate is the best of "
        f"{d.get('repeats', 10)} runs (the fused paths of (a); the matmul), all "
        "interleaved, so that both are measured at the same moments of a shared machine.",
        "",
        "| precision | conv GFLOP/s | dense 2048^2 matmul GFLOP/s | fraction |",
        "|---|---|---|---|",
    ]
    for p in ("fp32", "bf16"):
        rows.append(f"| {p} | {d[f'conv_{p}']:.0f} | {d[f'matmul_{p}']:.0f} | "
                    f"{d[f'conv_{p}'] / d[f'matmul_{p}']:.2f} |")  # fmt: skip
    return "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--markdown-only", action="store_true",
                    help="rewrite README.md from results.json without measuring")  # fmt: skip
    args = ap.parse_args()
    if args.markdown_only:
        (OUT / "README.md").write_text(markdown(json.loads((OUT / "results.json").read_text())))
        return
    n = 2 if args.quick else 5
    kept = keep_freed_memory()  # as `jpegsr upscale` does (benchmarks/page_faults.md)
    busy = quiet_check()
    threads = torch.get_num_threads()
    loaded = jpegsr.load_model(MODEL)
    img = speed_test_image()
    cpu = torch.device("cpu")
    res: dict[str, object] = {
        "machine": {"cpu": cpu_model(), "arch": platform.machine(), "cores": threads,
                    "torch": torch.__version__, "python": platform.python_version(),
                    "cpu_features": cpu_features(),
                    "onednn_fusion": onednn_fusion_available(cpu),
                    "bf16_native": use_bf16("auto", cpu)},
        "versions": degrade.versions(),
        "model": MODEL,
        "measured": datetime.date.today().isoformat(),
        "auto_path": auto_path(),
        "keep_freed_memory": kept,
        **busy_fields(busy),
    }  # fmt: skip
    res["paths"] = paths = measure_paths(img, n, args.quick)

    methods = peers(threads)
    peer_repeats = 1 if args.quick else 3
    ours = next(iter(methods))
    seconds = {ours: paths[res["auto_path"]]["seconds"]}  # timed once, with the other paths
    for name, fn in list(methods.items())[1:]:
        seconds[name] = timed(lambda fn=fn: fn(img), peer_repeats if name == PEER else n)
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
    gflop = conv_flops(loaded.module, x) / 1e9
    fused_gflop = fused_conv_flops(loaded.module, x) / 1e9
    res["a_upscale_480x320"] = {
        "seconds": seconds, "repeats": n, "peer_repeats": peer_repeats,
        "conv_gflop": gflop, "fused_conv_gflop": fused_gflop, "max_pass_side": MAX_PASS_SIDE,
    }  # fmt: skip
    set5 = resolve_set(None, "Set5")
    res["e_set5_q20"] = {
        name: {"psnr": r.psnr, "ssim": r.ssim, "n": r.n}
        for name, fn in methods.items()
        for r in [evaluate_set(fn, set5, 4, 20, progress=False)]
    }
    res["d_gflops"] = throughput(loaded, img, fused_gflop, 3 if args.quick else 10)
    res["targets"] = check_targets(res)
    res["command"] = "python benchmarks/speed.py" + (" --quick" if args.quick else "")
    name = "results_quick" if args.quick else "results"
    (OUT / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    (OUT / ("results_quick.md" if args.quick else "README.md")).write_text(markdown(res))
    print(markdown(res))


def check_targets(res: dict) -> list[tuple[str, str, str, bool]]:
    """(label, measured, target, met) for each target of issue #15 that this run measures."""
    a, d, paths, auto = res["a_upscale_480x320"], res["d_gflops"], res["paths"], res["auto_path"]
    t_auto = paths[auto]["seconds"]
    out = [(f"480x320 -> 1920x1280, {res['model']}, auto ({auto})", f"{t_auto:.3f} s", "<= 0.25 s",
            t_auto <= TARGETS["a_auto_s"])]  # fmt: skip
    delta = abs(paths[auto]["set5_psnr_change_db"])
    out.append(("Y-PSNR change of auto vs fp32, Set5 q=20", f"{delta:.4f} dB", "<= 0.02 dB",
                delta <= TARGETS["psnr_delta_db"]))  # fmt: skip
    if auto.startswith("bf16"):
        four = precision_delta(res["model"])
        out.append(("Y-PSNR change of bf16 vs fp32, four sets q=20 (results/precision)",
                    f"{four:.4f} dB", "<= 0.02 dB", four <= TARGETS["psnr_delta_db"]))  # fmt: skip
    rss = paths[auto]["peak_rss_mib"]
    if rss is not None:
        out.append(("peak RSS, 4000x3000 output, auto", f"{rss:.0f} MiB", "<= 1536 MiB",
                    rss <= TARGETS["b_peak_rss_mib"]))  # fmt: skip
    p = "bf16" if auto.startswith("bf16") else "fp32"
    f = d[f"conv_{p}"] / d[f"matmul_{p}"]
    out.append((f"conv / matmul rate, {p}", f"{f:.2f}", ">= 0.60",
                f >= TARGETS["d_fraction_of_matmul"]))  # fmt: skip
    if PEER in a["seconds"]:
        speedup = a["seconds"][PEER] / t_auto
        out.append(("speed-up over Real-ESRGAN", f"{speedup:.1f}x", ">= 100x",
                    speedup >= TARGETS["speedup_vs_realesrgan"]))  # fmt: skip
    return out


if __name__ == "__main__":
    main()
