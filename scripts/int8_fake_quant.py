"""How much Y-PSNR an int8 model would lose (issue #15's int8 lever), before building one.

    python scripts/int8_fake_quant.py    # -> results/experiments/int8_fake_quant/result.json

Simulates post-training int8 quantization of the model ``jpegsr upscale`` picks at q=20, in
fp32 arithmetic: every convolution's weights rounded to int8 per output channel (symmetric),
and every convolution's input rounded to uint8 with one scale and zero point per layer from
the min/max seen on 6 calibration crops of T91 training images. Scored on the first 10
Sun-Hays 80 validation photos (480x320 crops, JPEG q=20, x4, Y-PSNR, border 4) against the
same model in fp32; weights-only rounding is reported too. Benchmark sets are not used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from jpegsr import degrade, metrics
from jpegsr.data import list_images, read_rgb
from jpegsr.inference import upscale_array
from jpegsr.weights_io import choose_shipped, load_model

DATA = Path("../shared/datasets")
OUT = Path("results/experiments/int8_fake_quant/result.json")
QUALITY = 20


def crop(img: np.ndarray, h: int, w: int) -> np.ndarray:
    rows, cols = min(h, img.shape[0]) // 4 * 4, min(w, img.shape[1]) // 4 * 4
    return np.ascontiguousarray(img[:rows, :cols])


def _cat(x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(x, 1) if isinstance(x, list) else x  # ConcatConv1x1 takes a list


def main() -> None:
    torch.manual_seed(0)
    name = choose_shipped(QUALITY)
    loaded = load_model(name)
    convs = {n: c for n, c in loaded.module.named_modules() if isinstance(c, torch.nn.Conv2d)}
    calib = [crop(read_rgb(p), 240, 320) for p in list_images(DATA / "train/T91")[:6]]
    photos = list_images(DATA / "validation/SunHays80")[:10]
    evals = [crop(read_rgb(p), 320, 480) for p in photos]

    def run(hrs: list[np.ndarray]) -> np.ndarray:
        scores = []
        for hr in hrs:
            lq, _, target = degrade.degrade(hr, 4, QUALITY)
            sr = upscale_array(loaded, lq, precision="fp32", fuse=False)  # the hooked module
            scores.append(metrics.psnr(sr, target, border=4))
        return np.array(scores)

    # 1. calibration: each convolution's input range
    ranges: dict[str, tuple[float, float]] = {}

    def record(name: str):  # noqa: ANN202
        def hook(_mod: torch.nn.Module, inp: tuple) -> None:
            x = _cat(inp[0])
            lo, hi = ranges.get(name, (0.0, 0.0))
            ranges[name] = (min(lo, x.min().item()), max(hi, x.max().item()))

        return hook

    handles = [c.register_forward_pre_hook(record(n)) for n, c in convs.items()]
    run(calib)
    for h in handles:
        h.remove()

    # 2. the fp32 reference, then int8 weights, then int8 weights and activations
    reference = run(evals)
    for c in convs.values():
        w = c.weight.detach()
        s = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
        c.weight.data = torch.round(w / s).clamp(-128, 127) * s
    weights_only = run(evals)

    def fake_quant(name: str):  # noqa: ANN202
        lo, hi = ranges[name]
        scale = (hi - lo) / 255 or 1.0
        zp = round(-lo / scale)

        def q(t: torch.Tensor) -> torch.Tensor:
            return (torch.clamp(torch.round(t / scale) + zp, 0, 255) - zp) * scale

        def hook(_mod: torch.nn.Module, inp: tuple) -> tuple:
            x = inp[0]
            return ([q(t) for t in x],) if isinstance(x, list) else (q(x),)

        return hook

    for n, c in convs.items():
        c.register_forward_pre_hook(fake_quant(n))
    both = run(evals)
    res = {
        "model": name, "quality": QUALITY, "images": [p.name for p in photos],
        "fp32_psnr": reference.tolist(),
        "int8_weights_change_db": (weights_only - reference).tolist(),
        "int8_weights_and_activations_change_db": (both - reference).tolist(),
        "mean_change_db": {"weights": float((weights_only - reference).mean()),
                           "weights_and_activations": float((both - reference).mean())},
        "worst_change_db": float((both - reference).min()),
        "command": "python scripts/int8_fake_quant.py",
    }  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res["mean_change_db"]), "worst", res["worst_change_db"])


if __name__ == "__main__":
    main()
