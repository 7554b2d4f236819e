"""The fused inference copy (jpegsr.models.fused): the same function as the trained module,
in fp32 and bf16, with and without oneDNN, and the trained module left untouched."""

from pathlib import Path

import numpy as np
import pytest
import torch

import jpegsr
from jpegsr import metrics, models
from jpegsr.imageio import load_image
from jpegsr.inference import inference_module, upscale_array
from jpegsr.models import fused as fused_mod
from jpegsr.models.fused import FusedResBlock, SplitConv1x1, fuse_for_inference

REPO = Path(__file__).resolve().parents[1]


def _random_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = models.build(name, 4).eval()
    with torch.no_grad():  # trained-like: no zero-initialised tails, so every path matters
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("name", ["slwsr16", "two_stage_slwsr16", "two_stage_slwsr32_coarse"])
@pytest.mark.parametrize("onednn", [True, False])
def test_fused_fp32_computes_the_same_function(name, onednn, monkeypatch):
    monkeypatch.setattr(fused_mod, "onednn_fusion_available", lambda device, dtype: onednn)
    model = _random_model(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(1, 3, 24, 20)
    with torch.inference_mode():
        ref = models.sr_output(model(x))
        fused = fuse_for_inference(model, torch.float32, torch.device("cpu"))
        assert fused is not None
        bodies = 1 + name.startswith("two_stage") + name.endswith("_coarse")
        blocks = [m for m in fused.modules() if isinstance(m, FusedResBlock)]
        assert len(blocks) == 26 * bodies
        splits = [m for m in fused.modules() if isinstance(m, SplitConv1x1)]
        assert len(splits) == 5 * bodies  # pool + 4 fusions per body
        assert all(b.onednn is onednn for b in blocks + splits)
        assert sum(b.in_place for b in blocks) == 20 * bodies  # the rest keep their input
        x_cl = x.contiguous(memory_format=torch.channels_last)
        out = models.sr_output(fused(x_cl))
    assert torch.equal(x_cl, x)  # the caller's input is never changed in place
    assert out.shape == ref.shape == (1, 3, 96, 80)
    # equal away from a 2-pixel border (the folded tail: see test_the_linear_tail_folds...)
    assert (out - ref)[..., 8:-8, 8:-8].abs().max().item() < 1e-4
    for k, v in model.state_dict().items():  # the trained module is not changed
        assert torch.equal(v, before[k]), k


def test_a_model_with_nothing_to_fuse_runs_as_it_is():
    loaded = jpegsr.load_model("q20")
    rcan = type(loaded)(models.build("rcan_small", 4).eval(), models.describe("rcan_small", 4),
                        "test", {})  # fmt: skip
    module, dtype = inference_module(rcan, torch.device("cpu"), half=True)
    assert module is rcan.module and dtype is None  # run under autocast, fed float32
    out = upscale_array(rcan, np.zeros((8, 8, 3), np.uint8), precision="bf16")
    assert out.shape == (32, 32, 3)


@pytest.fixture(scope="module")
def crop():
    return load_image(REPO / "examples" / "chelsea_q15.jpg").pixels[30:126, 60:180]


@pytest.mark.parametrize("precision,min_psnr", [("fp32", 80.0), ("bf16", 50.0)])
def test_shipped_model_fused_path_matches_the_fp32_reference(crop, precision, min_psnr):
    loaded = jpegsr.load_model("blind_long")
    ref = upscale_array(loaded, crop, precision="fp32", fuse=False)
    fast = upscale_array(loaded, crop, precision=precision)
    assert fast.shape == ref.shape == (384, 480, 3)
    if precision == "fp32":
        assert np.abs(fast.astype(int) - ref).max() <= 1
    assert metrics.psnr(fast, ref) > min_psnr
    key = (str(torch.device("cpu")), str(torch.bfloat16 if precision == "bf16" else torch.float32))
    assert loaded.prepared[key] is not None  # the fused copy is made once and kept
    # the tail folded, though upscale_array had made the module channels-last
    assert loaded.prepared[key].stage2.tail[0].kernel_size == (5, 5)


def test_without_onednn_the_fused_copy_falls_back_to_plain_ops(crop, monkeypatch):
    monkeypatch.setattr(fused_mod, "onednn_fusion_available", lambda device, dtype: False)
    loaded = jpegsr.load_model("blind_long")  # a fresh load: an empty cache of fused copies
    ref = upscale_array(loaded, crop, precision="fp32", fuse=False)
    fast = upscale_array(loaded, crop, precision="fp32")
    blocks = [m for m in loaded.prepared[("cpu", "torch.float32")].modules()
              if isinstance(m, FusedResBlock)]  # fmt: skip
    assert blocks and not any(b.onednn for b in blocks)
    assert np.abs(fast.astype(int) - ref).max() <= 1


def test_bf16_on_a_cpu_without_it_runs_the_plain_convolutions(crop, monkeypatch):
    """oneDNN refuses bf16 on an AVX2-only CPU: the fused copy then runs plain convolutions
    (bf16, emulated) instead of failing, close to fp32 as on a CPU with native bf16."""
    monkeypatch.setattr(fused_mod, "onednn_runs_bf16", lambda: False)
    assert fused_mod.onednn_fusion_available(torch.device("cpu"), torch.float32)
    assert not fused_mod.onednn_fusion_available(torch.device("cpu"), torch.bfloat16)
    loaded = jpegsr.load_model("blind_long")
    crop = crop[:48, :48]
    half = upscale_array(loaded, crop, precision="bf16")
    blocks = [m for m in loaded.prepared[("cpu", "torch.bfloat16")].modules()
              if isinstance(m, FusedResBlock)]  # fmt: skip
    assert blocks and not any(b.onednn for b in blocks)
    assert metrics.psnr(half, upscale_array(loaded, crop, precision="fp32", fuse=False)) > 50


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_linear_tail_folds_into_one_coarse_convolution(scale):
    from jpegsr.models.blocks import Upsampler, conv3x3
    from jpegsr.models.fused import fold_linear_tail

    torch.manual_seed(scale)
    tail = torch.nn.Sequential(Upsampler(scale, 6), conv3x3(6, 3)).double()
    tail.to(memory_format=torch.channels_last)  # as upscale_array leaves it
    folded = fold_linear_tail(tail, 6, scale)
    assert folded is not None and folded[0].kernel_size == (5, 5)
    assert folded[0].out_channels == 3 * scale * scale
    x = torch.randn(2, 6, 11, 9, dtype=torch.float64)
    with torch.no_grad():
        ref, out = tail(x), folded.double()(x)
    assert out.shape == ref.shape == (2, 3, 11 * scale, 9 * scale)
    b = 2 * scale  # within 2 coarse pixels of the border the paddings differ
    assert (out - ref)[..., b:-b, b:-b].abs().max().item() < 1e-6
    assert (out - ref).abs().max().item() > 1e-3  # ... and there they really do


def test_a_tail_that_is_not_linear_is_left_as_it_is():
    from jpegsr.models.fused import fold_linear_tail

    tail = torch.nn.Sequential(torch.nn.Conv2d(4, 16, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.PixelShuffle(2))  # fmt: skip
    assert fold_linear_tail(tail, 4, 2) is None


def test_without_native_bf16_auto_takes_the_fp32_fused_path(crop, monkeypatch):
    from jpegsr import inference

    monkeypatch.setattr(inference, "bf16_is_fast", lambda device: False)
    loaded = jpegsr.load_model("blind_long")
    auto = upscale_array(loaded, crop)  # precision "auto"
    assert list(loaded.prepared) == [("cpu", "torch.float32")]
    np.testing.assert_array_equal(auto, upscale_array(loaded, crop, precision="fp32"))


def test_tile_seams_match_the_trained_model_even_without_overlap(crop):
    """With overlap 0 every pass still reads MIN_CONTEXT pixels beyond what it keeps, so the
    folded tail's different edge never reaches a kept pixel: the fused copy agrees with the
    trained module at the seams too."""
    loaded = jpegsr.load_model("blind_long")
    kw = {"tile": 16, "overlap": 0, "precision": "fp32"}
    fused = upscale_array(loaded, crop, **kw)
    trained = upscale_array(loaded, crop, fuse=False, **kw)
    assert np.abs(fused.astype(int) - trained).max() <= 1
