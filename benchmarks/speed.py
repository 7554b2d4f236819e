"""Speed and memory of jpegsr on this machine, against its peers: benchmarks/results.json and
the tables in benchmarks/README.md (both written by this script).

    python benchmarks/speed.py            # everything (about 5 minutes; keep the machine idle)
    python benchmarks/speed.py --quick    # a smoke run with fewer repeats, no peak-RSS child

(a) wall time to upscale a 480x320 JPEG (q=20) to 1920x1280 with the model ``jpegsr upscale``
    picks for a q=20 file (``MODEL``), median of
    5 runs, all cores, in fp32, bf16 and the default precision (``auto``); (b) peak RSS of a
    4000x3000 tiled output in a fresh process at the default precision; (c) training seconds
    per iteration (batch 16, 48 px, two-stage, bf16 + channels_last, cycle loss); (d) achieved
    convolution GFLOP/s of (a) against dense matmul GFLOP/s measured in the same run; (e) the
    peers on the same image and cores: Pillow bicubic and, when ``pip install -e ".[bench]"``
    is done, Real-ESRGAN x4plus through ncnn; and Y-PSNR/SSIM of every method on Set5 at q=20.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import jpegsr
from jpegsr import degrade, models
from jpegsr.benchmark import cpu_model, evaluate_set, resolve_set
from jpegsr.inference import upscale_array, use_bf16
from jpegsr.losses import TwoStageLoss
from jpegsr.weights_io import choose_shipped

OUT = Path(__file__).resolve().parent
MODEL = choose_shipped(20)  # what `jpegsr upscale` uses for the q=20 test image
OURS = f"jpegsr {MODEL}"
sys.path.insert(0, str(OUT))

TARGETS = {  # issue #6
    "a_default_s": 1.0,
    "b_peak_rss_mib": 1.5 * 1024,
    "c_train_s_per_iter": 0.6,
    "d_fraction_of_matmul": 0.8,
    "speedup_vs_realesrgan": 20.0,
    "bf16_psnr_delta_db": 0.02,
}


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def conv_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds x 2 of every Conv2d for input ``x`` (counted with forward hooks)."""
    total = 0.0

    def hook(mod, _inp, out):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total += 2.0 * mod.in_channels // mod.groups * k * out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d)]  # fmt: skip
    with torch.inference_mode():
        model(x)
    for h in handles:
        h.remove()
    return total


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / timed(lambda: torch.mm(a, b), repeats) / 1e9


def test_image() -> np.ndarray:
    """A 480x320 JPEG q=20 input: a BSD100 image when the data is there, else synthetic."""
    bsd = Path("../shared/datasets/benchmark/BSD100")
    if bsd.is_dir():
        hr = np.asarray(Image.open(sorted(bsd.glob("*.png"))[0]).convert("RGB"))
        if hr.shape[0] > hr.shape[1]:
            hr = hr.transpose(1, 0, 2)
        src = hr[:320, :480]
    else:
        yy, xx = np.mgrid[0:320, 0:480]
        src = np.stack([xx % 255, yy % 255, (xx * yy) % 255], -1).astype(np.uint8)
    return degrade.jpeg_roundtrip(np.ascontiguousarray(src), 20)


PEAK_RSS_CODE = """
import re, resource, numpy as np, jpegsr
from pathlib import Path
from jpegsr.inference import upscale_array
x = np.random.default_rng(0).integers(0, 256, ({h}, {w}, 3), dtype=np.uint8)
upscale_array(jpegsr.load_model("{model}"), x)
status = Path("/proc/self/status")
if status.exists():  # VmHWM: this process's own peak (ru_maxrss can include the forking parent)
    print(re.search(r"VmHWM:\\s+(\\d+) kB", status.read_text()).group(1))
else:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_child(h: int, w: int) -> float:
    """Peak RSS (MiB) of a fresh process that upscales an h x w image at default settings."""
    code = PEAK_RSS_CODE.format(h=h, w=w, model=MODEL)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # KiB -> MiB


def train_step_seconds(repeats: int) -> float:
    model = models.build("two_stage_slwsr32", 4).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    loss_fn = TwoStageLoss()
    x = torch.rand(16, 3, 48, 48).contiguous(memory_format=torch.channels_last)
    lr, hr = torch.rand(16, 3, 48, 48), torch.rand(16, 3, 192, 192)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rec, sr = model(x)
        loss, _ = loss_fn(rec, sr, lr, hr)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return timed(step, repeats)


def peers(threads: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The methods compared, each uint8 LR -> uint8 x4."""
    loaded = jpegsr.load_model(MODEL)

    def bicubic_pillow(lq: np.ndarray) -> np.ndarray:
        h, w = lq.shape[:2]
        return np.asarray(Image.fromarray(lq).resize((w * 4, h * 4), Image.Resampling.BICUBIC))

    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "Pillow bicubic": bicubic_pillow,
        f"{OURS}, fp32": lambda lq: upscale_array(loaded, lq, precision="fp32"),
        f"{OURS}, bf16": lambda lq: upscale_array(loaded, lq, bf16="bf16"),
    }
    try:
        from realesrgan_ncnn import RealESRGAN

        methods["Real-ESRGAN x4plus (ncnn)"] = RealESRGAN(threads)
    except ImportError as exc:
        print(f"Real-ESRGAN peer skipped ({exc}); pip install -e '.[bench]'", file=sys.stderr)
    return methods


def precision_delta() -> float:
    """Max |Y-PSNR bf16 - fp32| of MODEL over the four sets (committed results)."""
    root = OUT.parent / "results"
    fp32 = json.loads((root / f"models/{MODEL}_q20.json").read_text())["sets"]
    bf16 = json.loads((root / f"precision/{MODEL}_q20_bf16.json").read_text())["sets"]
    return max(abs(fp32[s]["psnr"] - bf16[s]["psnr"]) for s in fp32)


def markdown(res: dict) -> str:
    a, d, m = res["a_upscale_480x320"], res["d_gflops"], res["machine"]
    rows = [
        "# Speed and memory benchmarks",
        "",
        "Everything below is written by one command (keep the machine otherwise idle; about",
        '5 minutes; the Real-ESRGAN peer needs `pip install -e ".[bench]"`):',
        "",
        "```bash",
        "python benchmarks/speed.py        # -> benchmarks/results.json and this README",
        "python benchmarks/fast_paths.py   # -> benchmarks/fast_paths.{json,md}",
        "```",
        "",
        "[`fast_paths.md`](fast_paths.md) times the fast-path candidates on one tile and shows",
        "where the time goes. Precision: `jpegsr upscale` uses bf16 autocast where the CPU runs",
        "it natively (`--precision auto`, the default) and fp32 elsewhere; on the four benchmark",
        f"sets the bf16 path changes Y-PSNR by at most {precision_delta():.4f} dB",
        f"([`results/precision/{MODEL}_q20_bf16.json`](../results/precision/{MODEL}_q20_bf16.json)"
        f" vs [`results/models/{MODEL}_q20.json`](../results/models/{MODEL}_q20.json)).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} torch threads, torch {m['torch']}, "
        f"Python {m['python']}. Command: `{res['command']}`. Default precision here: "
        f"**{res['default_precision']}**.",
        "",
        "## (a, e) 480x320 JPEG (q=20) to 1920x1280, same image and cores; Set5 q=20 x4 quality",
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
        "warm-up. bf16 vs fp32 on this image: max difference "
        f"{a['bf16_vs_fp32_max_abs_diff']} grey levels.",
        "",
        "## Targets (issue #6)",
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
        f"Convolutions of `{MODEL}` on the 480x320 input: {a['conv_gflop']:.0f} GFLOP "
        "(whole image; tiling overlap adds work that is not counted, so these rates are low "
        "bounds).",
        "",
        "| precision | conv GFLOP/s | dense 2048^2 matmul GFLOP/s | fraction |",
        "|---|---|---|---|",
        f"| fp32 | {d['conv_fp32']:.0f} | {d['matmul_fp32']:.0f} | "
        f"{d['conv_fp32'] / d['matmul_fp32']:.2f} |",
        f"| bf16 | {d['conv_bf16']:.0f} | {d['matmul_bf16']:.0f} | "
        f"{d['conv_bf16'] / d['matmul_bf16']:.2f} |",
    ]
    return "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 2 if args.quick else 5
    threads = torch.get_num_threads()
    loaded = jpegsr.load_model(MODEL)
    img = test_image()
    res: dict[str, object] = {
        "machine": {"cpu": cpu_model(), "cores": threads,
                    "torch": torch.__version__, "python": platform.python_version()},
        "versions": degrade.versions(),
        "model": MODEL,
        "default_precision": "bf16" if use_bf16("auto", torch.device("cpu")) else "fp32",
    }  # fmt: skip

    methods = peers(threads)
    seconds = {f"{OURS} (auto)": timed(lambda: upscale_array(loaded, img), n)}
    peer_repeats = 1 if args.quick else 3
    for name, fn in methods.items():
        reps = peer_repeats if name.startswith("Real-ESRGAN") else n
        seconds[name] = timed(lambda fn=fn: fn(img), reps)
    a32 = upscale_array(loaded, img, precision="fp32")
    a16 = upscale_array(loaded, img, bf16="bf16")
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
    gflop = conv_flops(loaded.module, x) / 1e9
    res["a_upscale_480x320"] = {
        "seconds": seconds, "repeats": n, "peer_repeats": peer_repeats,
        "bf16_vs_fp32_max_abs_diff": int(np.abs(a32.astype(int) - a16).max()),
        "conv_gflop": gflop,
    }  # fmt: skip
    set5 = resolve_set(None, "Set5")
    res["e_set5_q20"] = {
        name: {"psnr": r.psnr, "ssim": r.ssim, "n": r.n}
        for name, fn in methods.items()
        for r in [evaluate_set(fn, set5, 4, 20, progress=False)]
    }
    res["b_peak_rss_mib_4000x3000_out"] = None if args.quick else peak_rss_child(750, 1000)
    res["c_train_s_per_iter"] = train_step_seconds(3 if args.quick else 10)
    res["d_gflops"] = {
        "conv_fp32": gflop / seconds[f"{OURS}, fp32"],
        "conv_bf16": gflop / seconds[f"{OURS}, bf16"],
        "matmul_fp32": matmul_gflops(torch.float32), "matmul_bf16": matmul_gflops(torch.bfloat16),
    }  # fmt: skip
    res["targets"] = check_targets(res)
    res["command"] = "python benchmarks/speed.py" + (" --quick" if args.quick else "")
    name = "results_quick" if args.quick else "results"
    (OUT / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    (OUT / ("results_quick.md" if args.quick else "README.md")).write_text(markdown(res))
    print(markdown(res))


def check_targets(res: dict) -> list[tuple[str, str, str, bool]]:
    """(label, measured, target, met) for each target of issue #6 that this run measures."""
    a, d, e = res["a_upscale_480x320"], res["d_gflops"], res["e_set5_q20"]
    prec = res["default_precision"]
    t_default = a["seconds"][f"{OURS} (auto)"]
    out = [(f"(a) {MODEL}, {prec}", f"{t_default:.3f} s", "<= 1.0 s",
            t_default <= TARGETS["a_default_s"])]  # fmt: skip
    delta = abs(e[f"{OURS}, bf16"]["psnr"] - e[f"{OURS}, fp32"]["psnr"])
    out.append(("bf16 vs fp32 Set5 PSNR", f"{delta:.4f} dB", "<= 0.02 dB",
                delta <= TARGETS["bf16_psnr_delta_db"]))  # fmt: skip
    rss = res["b_peak_rss_mib_4000x3000_out"]
    if rss is not None:
        out.append(("(b) peak RSS, 4000x3000 output", f"{rss:.0f} MiB", "<= 1536 MiB",
                    rss <= TARGETS["b_peak_rss_mib"]))  # fmt: skip
    c = res["c_train_s_per_iter"]
    out.append(("(c) train s/iter", f"{c:.3f}", "<= 0.6", c <= TARGETS["c_train_s_per_iter"]))
    for p in ("fp32", "bf16"):
        f = d[f"conv_{p}"] / d[f"matmul_{p}"]
        out.append((f"(d) conv / matmul, {p}", f"{f:.2f}", ">= 0.80",
                    f >= TARGETS["d_fraction_of_matmul"]))  # fmt: skip
    peer = "Real-ESRGAN x4plus (ncnn)"
    if peer in a["seconds"]:
        speedup = a["seconds"][peer] / t_default
        out.append(("speed-up over Real-ESRGAN", f"{speedup:.1f}x", ">= 20x",
                    speedup >= TARGETS["speedup_vs_realesrgan"]))  # fmt: skip
        ours = e[f"{OURS}, bf16" if prec == "bf16" else f"{OURS}, fp32"]["psnr"]
        out.append((f"Set5 PSNR, {MODEL} vs Real-ESRGAN", f"{ours:.2f} vs {e[peer]['psnr']:.2f}",
                    "higher", ours > e[peer]["psnr"]))  # fmt: skip
    return out


if __name__ == "__main__":
    main()
