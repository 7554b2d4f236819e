"""int8 on the matrix units through PyTorch 2 export quantization (issue #15): the model
``jpegsr upscale`` picks at q=20, post-training quantized with torchao's X86InductorQuantizer
(per-channel int8 weights, static per-tensor int8 activations calibrated on 16 BSD200 training
crops), compiled by inductor with freezing and run int8-mixed-bf16, against the shipped fused
bf16 path: the time of the speed benchmarks' 480x320 LR image (whole, no tiles) and the Y-PSNR
change against fp32 on SunHays80 validation photos (never a benchmark set).

    pip install torchao==0.18.0     # not a jpegsr dependency
    python benchmarks/int8_pt2e.py  # -> benchmarks/int8_pt2e.{json,md}; machine idle
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import jpegsr
from jpegsr import degrade, metrics
from jpegsr.data import list_images, read_rgb
from jpegsr.inference import upscale_array
from jpegsr.models.registry import SROnly
from jpegsr.perf import cpu_features, cpu_model, speed_test_image, timed
from jpegsr.weights_io import choose_shipped, load_model

OUT = Path(__file__).resolve().parent
H, W = 320, 480
TRAIN = Path("../shared/datasets/train/BSD200")
VALIDATION = Path("../shared/datasets/validation/SunHays80")
N_CALIBRATION, N_VALIDATION = 16, 20


def degraded(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(q=20 JPEG LR, HR), cut to at most H x W LR pixels."""
    lq, _, hr = degrade.degrade(degrade.crop_to_scale(read_rgb(path), 4), 4, 20)
    return lq[:H, :W], hr[: 4 * H, : 4 * W]


def padded(lq: np.ndarray) -> torch.Tensor:
    """The LR image reflect-padded to H x W (the compiled graph has one static shape)."""
    pad = ((0, H - lq.shape[0]), (0, W - lq.shape[1]), (0, 0))
    return torch.from_numpy(np.pad(lq, pad, mode="reflect").copy()).permute(2, 0, 1)[None] / 255


def quantized(model: torch.nn.Module) -> torch.nn.Module:
    import torch._inductor.config as inductor_config
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = torch.export.export(model, (torch.rand(1, 3, H, W),)).module()
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for path in list_images(TRAIN)[:N_CALIBRATION]:
            prepared(padded(degraded(path)[0]).float())
    inductor_config.freezing = True
    return torch.compile(convert_pt2e(prepared))


def main() -> None:
    torch.set_num_threads(2)
    name = choose_shipped(20)
    loaded = load_model(name)
    t0 = time.perf_counter()
    int8 = quantized(SROnly(loaded.module).eval())

    def run_int8(lq: np.ndarray) -> np.ndarray:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            y = int8(padded(lq).float())
        out = (y.float().clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
        return out[: 4 * lq.shape[0], : 4 * lq.shape[1]]

    val = [degraded(p) for p in list_images(VALIDATION)[:N_VALIDATION]]
    run_int8(val[0][0])  # compiles
    prepare_s = time.perf_counter() - t0
    full = speed_test_image()  # the speed benchmarks' 480x320 q=20 input
    times = {
        "fused bf16 (shipped)": timed(lambda: upscale_array(loaded, full, precision="bf16"), 7),
        "int8 PT2E + inductor": timed(lambda: run_int8(full), 7),
    }
    deltas = {"fused bf16 (shipped)": [], "int8 PT2E + inductor": []}
    for lq, hr in val:
        ref = metrics.psnr(upscale_array(loaded, lq, precision="fp32"), hr, border=4)
        bf16 = upscale_array(loaded, lq, precision="bf16")
        deltas["fused bf16 (shipped)"].append(metrics.psnr(bf16, hr, border=4) - ref)
        deltas["int8 PT2E + inductor"].append(metrics.psnr(run_int8(lq), hr, border=4) - ref)
    res = {
        "machine": cpu_model(), "cpu_features": cpu_features(), "threads": 2,
        "torch": torch.__version__, "jpegsr": jpegsr.__version__, "model": name,
        "python": platform.python_version(), "quantize_and_compile_s": prepare_s,
        "median_s": times, "validation_images": len(val),
        "psnr_change_db": {k: {"mean": float(np.mean(v)), "worst": float(np.min(v))}
                           for k, v in deltas.items()},
        "command": "python benchmarks/int8_pt2e.py",
    }  # fmt: skip
    (OUT / "int8_pt2e.json").write_text(json.dumps(res, indent=2) + "\n")
    lines = [
        f"# int8 through PT2E quantization (`{name}`, one {W}x{H} LR image, no tiles)",
        "",
        f"{res['machine']}, 2 threads, torch {res['torch']}. Command: `{res['command']}`"
        " (needs `pip install torchao==0.18.0`).",
        "",
        "| path | median s | Y-PSNR change vs fp32, mean | worst image |",
        "|---|---|---|---|",
    ]
    for k, t in times.items():
        d = res["psnr_change_db"][k]
        lines.append(f"| {k} | {t:.3f} | {d['mean']:+.3f} dB | {d['worst']:+.3f} dB |")
    lines += ["", f"PSNR change over {len(val)} SunHays80 validation photos (q=20, at most"
              f" {W}x{H} LR); quantizing and compiling took {prepare_s:.0f} s.", ""]  # fmt: skip
    (OUT / "int8_pt2e.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
