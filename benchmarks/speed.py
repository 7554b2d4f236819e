"""Speed and memory of jpegsr on this machine, written to benchmarks/results.{json,md}.

    python benchmarks/speed.py            # all measurements (a few minutes, machine idle!)
    python benchmarks/speed.py --quick    # a smoke run with fewer repeats

(a) wall time to upscale a 480x320 JPEG (q=20) to 1920x1280 with the default model, median
    of N runs, fp32 and bf16 autocast, all cores; (b) peak RSS of a 4000x3000 tiled output,
    in a fresh process; (c) training seconds per iteration (batch 16, 48 px, two-stage, bf16 +
    channels_last, with the cycle loss); (d) achieved conv GFLOP/s against dense matmul
    GFLOP/s measured in the same run; (e) Pillow bicubic as the floor peer.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import jpegsr
from jpegsr import degrade, models
from jpegsr.benchmark import cpu_model
from jpegsr.inference import upscale_array
from jpegsr.losses import TwoStageLoss

OUT = Path(__file__).resolve().parent


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
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


def peak_rss_child(h: int, w: int) -> float:
    code = (
        "import numpy as np, resource, jpegsr;"
        "from jpegsr.inference import upscale_array;"
        f"x=np.random.default_rng(0).integers(0,256,({h},{w},3),dtype=np.uint8);"
        "upscale_array(jpegsr.load_model('default'), x);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 2 if args.quick else 5
    loaded = jpegsr.load_model("default")
    img = test_image()
    res: dict[str, object] = {
        "machine": {"cpu": cpu_model(), "cores": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version()},
        "versions": degrade.versions(),
        "model": loaded.source,
    }  # fmt: skip
    fp32 = timed(lambda: upscale_array(loaded, img), n)
    bf16 = timed(lambda: upscale_array(loaded, img, bf16=True), n)
    a32, a16 = upscale_array(loaded, img), upscale_array(loaded, img, bf16=True)
    bic = timed(lambda: Image.fromarray(img).resize((1920, 1280), Image.Resampling.BICUBIC), n)
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
    gflop = conv_flops(loaded.module, x) / 1e9
    res["a_upscale_480x320"] = {
        "fp32_s": fp32, "bf16_s": bf16, "pillow_bicubic_s": bic,
        "bf16_vs_fp32_max_abs_diff": int(np.abs(a32.astype(int) - a16).max()),
        "conv_gflop": gflop,
    }  # fmt: skip
    res["b_peak_rss_mib_4000x3000_out"] = None if args.quick else peak_rss_child(750, 1000)
    res["c_train_s_per_iter"] = train_step_seconds(3 if args.quick else 10)
    res["d_gflops"] = {
        "conv_fp32": gflop / fp32, "conv_bf16": gflop / bf16,
        "matmul_fp32": matmul_gflops(torch.float32), "matmul_bf16": matmul_gflops(torch.bfloat16),
    }  # fmt: skip
    res["command"] = "python benchmarks/speed.py" + (" --quick" if args.quick else "")
    name = "results_quick" if args.quick else "results"
    (OUT / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
