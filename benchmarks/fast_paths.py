"""Candidate fast paths for the model ``jpegsr upscale`` picks at q=20, timed on one 256x256 LR
tile (what auto tiling feeds the network), with the per-operator profile of the shipped path
that explains the gap to matmul speed.

    python benchmarks/fast_paths.py     # writes benchmarks/fast_paths.{json,md}; machine idle

onnxruntime (``pip install -e ".[bench]"``) and OpenVINO (``pip install openvino``) are
optional candidates. Each variant's max abs difference to the fp32 eager output is recorded
(in [0, 1] units), away from the 2-pixel LR border that every pass of ``upscale_array`` crops
(the fused copy's folded tail differs there).
"""

from __future__ import annotations

import copy
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

import jpegsr
from jpegsr.models.fused import fuse_for_inference
from jpegsr.models.registry import SROnly, sr_output
from jpegsr.perf import cpu_model, timed
from jpegsr.weights_io import choose_shipped

OUT = Path(__file__).resolve().parent
MODEL = choose_shipped(20)  # what `jpegsr upscale` uses for a q=20 file


def variants(model: torch.nn.Module, x: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    xb = x.to(torch.bfloat16)
    bf16_weights = copy.deepcopy(model).to(torch.bfloat16)

    def autocast_bf16() -> torch.Tensor:
        with torch.autocast("cpu", torch.bfloat16):
            return sr_output(model(x))

    traced = torch.jit.optimize_for_inference(
        torch.jit.freeze(torch.jit.trace(bf16_weights, xb, check_trace=False))
    )
    fused32 = fuse_for_inference(model, torch.float32)
    fused16 = fuse_for_inference(model, torch.bfloat16)
    assert fused32 is not None and fused16 is not None
    found = {
        "eager fp32": lambda: sr_output(model(x)),
        "fused fp32 (`--precision fp32`)": lambda: sr_output(fused32(x)),
        "eager bf16 autocast (the path before fusion)": autocast_bf16,
        "eager bf16 weights": lambda: sr_output(bf16_weights(xb)),
        "fused bf16 (the shipped path where bf16 is native)": lambda: sr_output(fused16(xb)),
        "TorchScript frozen, bf16 weights": lambda: sr_output(traced(xb)),
    }
    try:
        found["onnxruntime fp32 (CPU provider)"] = onnxruntime_variant(model, x)
    except ImportError:
        print("onnxruntime not installed: that variant is skipped")
    try:
        found["OpenVINO bf16 (CPU plugin)"] = openvino_variant(model, x)
    except ImportError:
        print("openvino not installed (pip install openvino): that variant is skipped")
    return found


def openvino_variant(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The model converted by OpenVINO from PyTorch and compiled for its CPU plugin with a bf16
    inference precision (its own fusions and AMX kernels), same threads."""
    import openvino as ov

    converted = ov.convert_model(SROnly(model), example_input=x.contiguous())
    config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(),
              "INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"}  # fmt: skip
    request = ov.Core().compile_model(converted, "CPU", config).create_infer_request()
    feed = x.contiguous().numpy()
    return lambda: torch.from_numpy(request.infer([feed])[0].copy())


def onnxruntime_variant(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The model exported to ONNX (fp32) and run by onnxruntime's CPU provider, same threads."""
    import tempfile

    import onnxruntime as ort

    path = Path(tempfile.mkdtemp()) / "model.onnx"
    torch.onnx.export(SROnly(model), (x.contiguous(),), str(path), input_names=["lq"],
                      output_names=["sr"], dynamo=False)  # fmt: skip
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {"lq": x.contiguous().numpy()}
    return lambda: torch.from_numpy(session.run(None, feed)[0])


def single_conv_gflops() -> list[dict[str, object]]:
    """The body's typical layer alone (3x3, 32 -> 32, one 256x256 tile) and the same-shape GEMM
    (65536 x 288 by 288 x 32): the ceiling for a 32-channel network, before any other op."""
    x = torch.randn(1, 32, 256, 256).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(32, 32, 3, padding=1).eval().to(memory_format=torch.channels_last)
    flop = 2 * 32 * 9 * 32 * 256 * 256
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(65536, 288, dtype=dtype), torch.randn(288, 32, dtype=dtype)
        with torch.autocast("cpu", torch.bfloat16, enabled=dtype == torch.bfloat16):
            conv_s = timed(lambda: conv(x), 5)
        gemm_s = timed(lambda a=a, b=b: a @ b, 5)
        rows.append({"dtype": str(dtype).removeprefix("torch."),
                     "conv3x3_32_gflops": flop / conv_s / 1e9,
                     "same_shape_gemm_gflops": flop / gemm_s / 1e9})  # fmt: skip
    int8 = int8_conv_seconds(x, conv)
    if int8 is not None:
        conv_s, gemm_s = int8
        rows.append({"dtype": "int8 (u8 x s8, oneDNN qconv, fp32 out)",
                     "conv3x3_32_gflops": flop / conv_s / 1e9,
                     "same_shape_gemm_gflops": flop / gemm_s / 1e9})  # fmt: skip
    return rows


def int8_conv_seconds(x: torch.Tensor, conv: torch.nn.Conv2d) -> tuple[float, float] | None:
    """The same layer in int8 (what a quantized model would run: u8 activations with a zero
    point, per-channel s8 weights, oneDNN's qconv) and the same-shape int8 GEMM; None where
    this PyTorch build lacks the ops. A measure of the ceiling only: jpegsr ships no int8."""
    qconv = getattr(torch.ops.onednn, "qconv2d_pointwise", None)
    if qconv is None or not hasattr(torch, "_int_mm"):
        return None
    with torch.no_grad():
        w = conv.weight.detach()
        x_scale = float(x.abs().max()) / 127
        qx = (torch.round(x / x_scale) + 128).clamp(0, 255).to(torch.uint8)
        w_scale = (w.abs().amax(dim=(1, 2, 3)) / 127).float()
        qw = torch.round(w / w_scale.view(-1, 1, 1, 1)).clamp(-128, 127).to(torch.int8)
        shape = list(x.shape)
        packed = torch.ops.onednn.qconv_prepack(qw, w_scale, x_scale, 128, [1, 1], [1, 1],
                                                [1, 1], 1, shape)  # fmt: skip
        zp = torch.zeros(w.shape[0], dtype=torch.int64)
        conv_s = timed(lambda: qconv(qx.contiguous(memory_format=torch.channels_last), x_scale,
                                     128, packed, w_scale, zp, conv.bias, [1, 1], [1, 1], [1, 1],
                                     1, 1.0, 0, torch.float32, "none", [None], ""), 5)  # fmt: skip
        a = torch.randint(-128, 127, (65536, 288), dtype=torch.int8)
        b = torch.randint(-128, 127, (288, 32), dtype=torch.int8)
        gemm_s = timed(lambda: torch._int_mm(a, b), 5)
    return conv_s, gemm_s


def max_diff(out: torch.Tensor, ref: torch.Tensor, border: int = 8) -> float:
    """Max abs difference inside the output, ``border`` pixels (2 LR pixels at x4) in."""
    crop = (..., slice(border, -border), slice(border, -border))
    return (out[crop] - ref[crop]).abs().max().item()


def main() -> None:
    torch.manual_seed(0)
    model = jpegsr.load_model(MODEL).module.eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 256, 256).contiguous(memory_format=torch.channels_last)
    rows = []
    with torch.inference_mode():
        ref = sr_output(model(x)).float()
        for name, fn in variants(model, x).items():
            seconds = timed(fn, 5)
            diff = max_diff(fn().float(), ref)
            rows.append({"variant": name, "seconds": seconds, "max_abs_diff": diff})
        compiled = torch.compile(copy.deepcopy(model).to(torch.bfloat16))
        xb = x.to(torch.bfloat16)
        t0 = time.perf_counter()
        out = sr_output(compiled(xb)).float()
        compile_s = time.perf_counter() - t0
        rows.append({"variant": "torch.compile (inductor), bf16 weights",
                     "seconds": timed(lambda: compiled(xb), 5),
                     "max_abs_diff": max_diff(out, ref),
                     "first_call_seconds": compile_s})  # fmt: skip
        fused16 = fuse_for_inference(model, torch.bfloat16)
        assert fused16 is not None
        with torch.profiler.profile() as prof:
            for _ in range(3):
                fused16(x.to(torch.bfloat16))
        layer = single_conv_gflops()
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops)
    profile = [{"op": e.key, "share": e.self_cpu_time_total / total} for e in ops[:6]]
    res = {"machine": {"cpu": cpu_model(), "threads": torch.get_num_threads(),
                       "torch": torch.__version__, "python": platform.python_version()},
           "input": "1x3x256x256 (one auto tile)", "variants": rows,
           "fused_bf16_profile": profile, "single_layer": layer,
           "command": "python benchmarks/fast_paths.py"}  # fmt: skip
    (OUT / "fast_paths.json").write_text(json.dumps(res, indent=2) + "\n")
    lines = [
        f"# Fast-path candidates (one 256x256 LR tile, `{MODEL}`)",
        "",
        f"{res['machine']['cpu']}, {res['machine']['threads']} threads, torch "
        f"{res['machine']['torch']}. Command: `{res['command']}`.",
        "",
        "| variant | s per tile | max abs diff vs fp32 (2-pixel LR border excluded) |",
        "|---|---|---|",
        *[f"| {r['variant']} | {r['seconds']:.3f} | {r['max_abs_diff']:.4f} |" for r in rows],
        "",
        f"torch.compile's first call (compilation) took {compile_s:.1f} s.",
        "",
        "Where the fused bf16 forward spends its time (share of operator self time):",
        "",
        "| operator | share |",
        "|---|---|",
        *[f"| {p['op']} | {p['share']:.0%} |" for p in profile],
        "",
        "One body layer alone (3x3 conv, 32 -> 32 channels, 256x256) and the GEMM of the same",
        "shape (65536x288 by 288x32), GFLOP/s:",
        "",
        "| precision | conv alone | same-shape GEMM |",
        "|---|---|---|",
        *[
            f"| {r['dtype']} | {r['conv3x3_32_gflops']:.0f} | {r['same_shape_gemm_gflops']:.0f} |"
            for r in layer
        ],
    ]
    (OUT / "fast_paths.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
