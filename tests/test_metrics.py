"""Golden tests of PSNR/SSIM on Y against hand-computed values and scikit-image."""

import math

import numpy as np
import pytest
import torch

from jpegsr import metrics

skimage_metrics = pytest.importorskip("skimage.metrics")


def _pair(seed=0, shape=(40, 52, 3), noise=12.0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape).astype(np.uint8)
    b = np.clip(a + rng.normal(0, noise, shape), 0, 255).astype(np.uint8)
    return a, b


def test_rgb_to_y_uses_bt601_studio_range():
    assert metrics.rgb_to_y(np.zeros((1, 1, 3), np.uint8))[0, 0] == pytest.approx(16.0)
    assert metrics.rgb_to_y(np.full((1, 1, 3), 255, np.uint8))[0, 0] == pytest.approx(235.0)
    red = np.array([[[255, 0, 0]]], np.uint8)
    assert metrics.rgb_to_y(red)[0, 0] == pytest.approx(16 + 65.481)


def test_psnr_hand_computed_grey_offset():
    # A grey image off by one level everywhere: Y differs by 219/255 in every pixel.
    a = np.full((20, 20, 3), 100, np.uint8)
    b = a + 1
    expected = 20 * math.log10(255 / (219 / 255))
    assert metrics.psnr(b, a) == pytest.approx(expected, abs=1e-9)
    assert metrics.psnr(b, a, y_channel=False) == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_psnr_border_is_cropped():
    a = np.full((20, 20, 3), 100, np.uint8)
    b = a.copy()
    b[:4] = 0
    b[:, -4:] = 255
    assert metrics.psnr(b, a, border=4) == math.inf
    assert metrics.psnr(b, a, border=3) < 30


def test_psnr_rounds_and_clips_float_output():
    a = np.full((10, 10, 3), 100, np.uint8)
    assert metrics.psnr(a + 0.4, a) == math.inf
    assert (
        metrics.psnr(np.full((10, 10, 3), 300.0), np.full((10, 10, 3), 255, np.uint8)) == math.inf
    )


@pytest.mark.parametrize("border", [0, 4])
def test_psnr_matches_skimage_on_y(border):
    a, b = _pair()
    ya, yb = metrics.rgb_to_y(a), metrics.rgb_to_y(b)
    if border:
        ya, yb = ya[border:-border, border:-border], yb[border:-border, border:-border]
    ref = skimage_metrics.peak_signal_noise_ratio(ya, yb, data_range=255)
    assert metrics.psnr(b, a, border=border) == pytest.approx(ref, abs=1e-10)


def test_rgb_psnr_matches_skimage():
    a, b = _pair(1)
    ref = skimage_metrics.peak_signal_noise_ratio(a, b, data_range=255)
    assert metrics.psnr(b, a, y_channel=False) == pytest.approx(ref, abs=1e-10)


@pytest.mark.parametrize("seed,noise", [(0, 12.0), (3, 40.0)])
def test_ssim_matches_skimage_gaussian_settings(seed, noise):
    a, b = _pair(seed, noise=noise)
    ya, yb = metrics.rgb_to_y(a)[4:-4, 4:-4], metrics.rgb_to_y(b)[4:-4, 4:-4]
    ref = skimage_metrics.structural_similarity(
        ya, yb, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert metrics.ssim(b, a, border=4) == pytest.approx(ref, abs=1e-9)


def test_ssim_identical_is_one_and_rgb_mode_averages_channels():
    a, b = _pair(2)
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    per_channel = [
        skimage_metrics.structural_similarity(
            a[..., c].astype(float),
            b[..., c].astype(float),
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for c in range(3)
    ]
    assert metrics.ssim(b, a, y_channel=False) == pytest.approx(np.mean(per_channel), abs=1e-9)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        metrics.psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))


def test_psnr_module_agrees_with_function():
    a, b = _pair(4, shape=(24, 24, 3))
    ta = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
    tb = torch.from_numpy(b).permute(2, 0, 1)[None].float() / 255
    got = float(metrics.PSNR(border=2)(tb, ta)[0])
    assert got == pytest.approx(metrics.psnr(b, a, border=2), abs=1e-6)
