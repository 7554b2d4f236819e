"""Golden tests of the degradation: MATLAB-style bicubic, JPEG round trip, denoiser."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, JpegImagePlugin

from jpegsr import degrade


def test_downscale_x2_weights_are_matlabs_antialiased_cubic():
    # Hand-computed: cubic(a=-0.5) at distances 0.25, 0.75, 1.25, 1.75 (kernel widened x2),
    # normalised: the well-known MATLAB imresize x0.5 taps.
    m = degrade.resize_matrix(16, 8)
    expected = [-0.01171875, -0.03515625, 0.11328125, 0.43359375] * 1
    expected = expected + expected[::-1]
    np.testing.assert_allclose(m[3, 3:11], expected, atol=1e-12)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)


def test_upscale_x4_border_weights_fold_by_symmetric_mirroring():
    # Output pixel 1 of a x4 enlargement sits at u = 0.625: taps on pixels 2,1,1,2 (mirrored)
    # with cubic(1.625), cubic(0.625), cubic(0.375), cubic(1.375).
    m = degrade.resize_matrix(8, 32)
    assert m[0, 0] == pytest.approx(0.3896484375 + 0.7275390625, abs=1e-12)
    assert m[0, 1] == pytest.approx(-0.0439453125 - 0.0732421875, abs=1e-12)
    assert np.count_nonzero(m[0]) == 2


def test_imresize_keeps_constant_images_and_exact_sizes():
    img = np.full((40, 28, 3), 117, np.uint8)
    small = degrade.imresize(img, 0.25)
    assert small.shape == (10, 7, 3) and np.all(small == 117)
    big = degrade.imresize(small, size=(40, 28))
    assert big.shape == (40, 28, 3) and np.all(big == 117)


def test_imresize_rejects_float_input():
    with pytest.raises(TypeError):
        degrade.imresize(np.zeros((8, 8, 3), np.float32), 0.5)


def test_torch_resize_matches_numpy_and_is_differentiable():
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 24, 20))
    ref = np.stack([degrade.resize_float(im.transpose(1, 2, 0), (6, 5)) for im in x])
    t = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    out = degrade.imresize_torch(t, (6, 5))
    np.testing.assert_allclose(out.detach().numpy(), ref.transpose(0, 3, 1, 2), atol=1e-5)
    out.sum().backward()
    assert t.grad is not None and torch.isfinite(t.grad).all()


def test_degrade_crops_to_scale_and_returns_aligned_triplet():
    hr = np.random.default_rng(1).integers(0, 256, (50, 37, 3), dtype=np.uint8)
    lq, lr, hr_c = degrade.degrade(hr, scale=4, quality=20)
    assert hr_c.shape == (48, 36, 3)
    assert lr.shape == lq.shape == (12, 9, 3)
    assert lq.dtype == lr.dtype == np.uint8
    with pytest.raises(ValueError):
        degrade.downscale(hr, 4)
    with pytest.raises(ValueError):
        degrade.downscale(hr_c, 5)


def test_jpeg_uses_420_subsampling_and_requested_quality():
    img = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    with Image.open(io.BytesIO(degrade.jpeg_encode(img, 90))) as im:
        assert JpegImagePlugin.get_sampling(im) == 2  # 4:2:0
    err = {q: np.abs(degrade.jpeg_roundtrip(img, q).astype(int) - img).mean() for q in (20, 90)}
    assert err[90] < err[20]
    np.testing.assert_array_equal(degrade.jpeg_roundtrip(img, 20), degrade.jpeg_roundtrip(img, 20))
    with pytest.raises(ValueError):
        degrade.jpeg_encode(img, 0)


# IJG (libjpeg) standard tables, Annex K of the JPEG standard, in natural order.
IJG_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40,
            57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35,
            55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112,
            100, 103, 99]  # fmt: skip


@pytest.mark.parametrize("quality", [10, 20, 50])
def test_jpeg_quantisation_table_is_ijg_scaling_of_the_standard_table(quality):
    # Independent reference: libjpeg's quality scaling, 5000/q below 50, 200-2q above.
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    expected = [min(255, max(1, (v * scale + 50) // 100)) for v in IJG_LUMA]
    img = np.zeros((16, 16, 3), np.uint8)
    with Image.open(io.BytesIO(degrade.jpeg_encode(img, quality))) as im:
        luma = list(im.quantization[0])
    assert luma == expected  # Pillow reports tables in natural (row-major) order


def test_jpeg_decode_agrees_with_opencv_decoder():
    import cv2

    yy, xx = np.mgrid[0:32, 0:32]
    img = np.stack([yy * 8, xx * 8, (yy + xx) * 4], axis=-1).astype(np.uint8)
    data = np.frombuffer(degrade.jpeg_encode(img, 20), np.uint8)
    ref = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    ours = degrade.jpeg_roundtrip(img, 20)
    assert np.abs(ours.astype(int) - ref).max() <= 1


def test_versions_record_pillow_and_libjpeg():
    v = degrade.versions()
    assert {"pillow", "libjpeg", "libjpeg_turbo"} <= set(v)


@pytest.mark.parametrize("quality", [5, 10, 20, 35, 50, 75, 85, 95])
def test_jpeg_quality_is_recovered_from_the_quantisation_table(quality):
    img = np.random.default_rng(quality).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with Image.open(io.BytesIO(degrade.jpeg_encode(img, quality))) as im:
        assert degrade.estimate_jpeg_quality(im.quantization[0]) == quality
