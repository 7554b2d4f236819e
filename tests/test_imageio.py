"""Input and output policies of jpegsr.imageio, one test per kind of file and per error."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image, ImageCms

from jpegsr.imageio import (
    ImageLoadError,
    ImageSaveError,
    icc_colour_space,
    load_image,
    save_image,
)


def _noise(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if c == 1 else (h, w, c)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# --------------------------------------------------------------------------- input kinds


def test_rgb_jpeg(tmp_path):
    path = tmp_path / "a.jpg"
    Image.fromarray(_noise(16, 24)).save(path, quality=90)
    img = load_image(path)
    assert img.pixels.shape == (16, 24, 3) and img.pixels.dtype == np.uint8
    assert img.alpha is None and img.format == "JPEG" and img.source_mode == "RGB"
    assert img.warnings == []


def test_grayscale_stays_one_channel(tmp_path):
    path = tmp_path / "g.png"
    data = _noise(8, 10, 1)
    Image.fromarray(data, "L").save(path)
    img = load_image(path)
    assert img.pixels.shape == (8, 10, 1)
    np.testing.assert_array_equal(img.pixels[:, :, 0], data)


def test_rgba_alpha_kept(tmp_path):
    path = tmp_path / "a.png"
    data = _noise(8, 8, 4)
    Image.fromarray(data, "RGBA").save(path)
    img = load_image(path)
    np.testing.assert_array_equal(img.pixels, data[:, :, :3])
    np.testing.assert_array_equal(img.alpha, data[:, :, 3])


def test_la_is_grey_plus_alpha(tmp_path):
    path = tmp_path / "la.png"
    data = _noise(8, 8, 2)
    Image.fromarray(data, "LA").save(path)
    img = load_image(path)
    assert img.pixels.shape == (8, 8, 1)
    np.testing.assert_array_equal(img.pixels[:, :, 0], data[:, :, 0])
    np.testing.assert_array_equal(img.alpha, data[:, :, 1])


def test_palette_with_transparency(tmp_path):
    path = tmp_path / "p.png"
    im = Image.new("P", (4, 4), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    im.putpixel((1, 1), 1)
    im.save(path, transparency=1)
    img = load_image(path)
    assert img.pixels.shape == (4, 4, 3) and img.alpha is not None
    assert img.alpha[1, 1] == 0 and img.alpha[0, 0] == 255
    assert tuple(img.pixels[0, 0]) == (255, 0, 0)


def test_palette_without_transparency_is_rgb(tmp_path):
    path = tmp_path / "p.gif"
    Image.new("P", (4, 4), 0).save(path)
    img = load_image(path)
    assert img.pixels.shape == (4, 4, 3) and img.alpha is None


def test_cmyk_jpeg_to_rgb(tmp_path):
    path = tmp_path / "c.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path, quality=95)
    img = load_image(path)
    assert img.source_mode == "CMYK" and img.pixels.shape == (8, 8, 3)
    r, g, b = img.pixels[4, 4].astype(int)
    assert r > 200 and g < 60 and b < 60  # pure red


def test_cmyk_profile_dropped(tmp_path):
    # A profile whose header says CMYK must not be attached to the RGB result.
    fake = bytearray(_srgb_icc())
    fake[16:20] = b"CMYK"
    path = tmp_path / "c.jpg"
    Image.new("CMYK", (8, 8)).save(path, icc_profile=bytes(fake))
    img = load_image(path)
    assert img.icc_profile is None
    assert any("CMYK ICC profile dropped" in w for w in img.warnings)


def test_16bit_png_keeps_16_bits(tmp_path):
    import cv2

    path = tmp_path / "16.png"
    data = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    Image.fromarray(data).save(path)
    img = load_image(path)
    assert img.pixels.dtype == np.uint16 and img.pixels.shape == (1, 4, 1)
    assert img.pixels[0, :, 0].tolist() == [0, 257, 65535, 32896]
    rgba = np.random.default_rng(1).integers(0, 65536, (5, 7, 4), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "rgba16.png"), rgba[:, :, [2, 1, 0, 3]])
    img = load_image(tmp_path / "rgba16.png")
    assert np.array_equal(img.pixels, rgba[:, :, :3]) and np.array_equal(img.alpha, rgba[:, :, 3])


def test_16bit_png_written_with_metadata(tmp_path):
    import cv2

    rgb = np.random.default_rng(2).integers(0, 65536, (6, 9, 3), dtype=np.uint16)
    exif = Image.Exif()
    exif[0x010F] = "maker"
    notes = save_image(tmp_path / "o.png", rgb, None, _srgb_icc(), exif.tobytes(), xmp=b"<x/>")
    assert notes == []
    back = cv2.imread(str(tmp_path / "o.png"), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
    assert back.dtype == np.uint16 and np.array_equal(back, rgb)
    with Image.open(tmp_path / "o.png") as im:
        im.load()
        assert im.info["icc_profile"] == _srgb_icc() and im.getexif()[0x010F] == "maker"
        assert im.info["xmp"] == b"<x/>"
    notes = save_image(tmp_path / "o.jpg", rgb, None)  # JPEG has 8 bits only
    assert notes == ["JPG has no 16-bit samples: written as 8-bit (PNG keeps 16)"]


def test_exif_orientation_applied_and_reset(tmp_path):
    path = tmp_path / "rot.jpg"
    data = np.zeros((16, 32, 3), np.uint8)
    data[:, :16] = (255, 0, 0)  # left half red
    data[:, 16:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    exif[0x010F] = "jpegsr-test"  # Make, to check other tags survive
    Image.fromarray(data).save(path, exif=exif, quality=95)
    img = load_image(path)
    assert img.pixels.shape == (32, 16, 3)
    assert img.pixels[4, 8, 0] > 200 and img.pixels[4, 8, 2] < 60  # red on top
    assert img.pixels[28, 8, 2] > 200 and img.pixels[28, 8, 0] < 60  # blue at the bottom
    with Image.open(path) as ref:
        from PIL import ImageOps

        np.testing.assert_array_equal(img.pixels, np.asarray(ImageOps.exif_transpose(ref)))
    out_exif = Image.Exif()
    out_exif.load(img.exif)
    assert out_exif[0x0112] == 1 and out_exif[0x010F] == "jpegsr-test"


def test_icc_profile_carried_through_save(tmp_path):
    icc = _srgb_icc()
    assert icc_colour_space(icc) == "RGB"
    src = tmp_path / "icc.png"
    Image.fromarray(_noise(8, 8)).save(src, icc_profile=icc)
    img = load_image(src)
    assert img.icc_profile == icc
    for fmt in ("png", "webp", "jpg"):
        dst = tmp_path / f"out.{fmt}"
        save_image(dst, img.pixels, icc_profile=img.icc_profile, format=fmt)
        with Image.open(dst) as out:
            assert out.info.get("icc_profile") == icc, fmt


def test_exif_carried_through_save(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "jpegsr-test"
    for fmt in ("png", "webp", "jpg"):
        dst = tmp_path / f"out.{fmt}"
        save_image(dst, _noise(8, 8), exif=exif.tobytes(), format=fmt)
        with Image.open(dst) as out:
            assert out.getexif().get(0x010F) == "jpegsr-test", fmt


def test_animated_gif_first_frame_and_warning(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    img = load_image(path)
    assert tuple(img.pixels[0, 0]) == (255, 0, 0)
    assert any("2 frames" in w and "first frame" in w for w in img.warnings)


# --------------------------------------------------------------------------- load errors


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.jpg")


def test_zero_bytes(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty file"):
        load_image(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not an image\n")
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(path)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_noise(64, 64)).save(buf, format="JPEG", quality=95)
    path = tmp_path / "trunc.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="truncated") as info:
        load_image(path)
    assert "\n" not in str(info.value)


def test_corrupt_png(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_noise(32, 32)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    start = data.index(b"IDAT") + 8
    data[start : start + 64] = bytes(64)  # garbage in the compressed stream
    path = tmp_path / "bad.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageLoadError, match="corrupt"):
        load_image(path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads all")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.png"
    Image.fromarray(_noise(4, 4)).save(path)
    path.chmod(0)
    try:
        with pytest.raises(ImageLoadError, match="permission denied"):
            load_image(path)
    finally:
        path.chmod(0o644)


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


@pytest.mark.parametrize("limit", [1000, 3000])  # Pillow's own guard (2x) and ours
def test_decompression_bomb_refused_and_override(tmp_path, limit):
    path = tmp_path / "big.png"
    Image.fromarray(_noise(64, 64)).save(path)  # 4096 pixels
    saved = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(path, max_pixels=limit)
    assert Image.MAX_IMAGE_PIXELS == saved  # the global limit is restored
    assert load_image(path, max_pixels=4096).pixels.shape == (64, 64, 3)
    assert load_image(path, max_pixels=None).pixels.shape == (64, 64, 3)


# --------------------------------------------------------------------------- saving


def test_save_refuses_existing_then_overwrites(tmp_path):
    dst = tmp_path / "out.png"
    dst.write_bytes(b"keep me")
    with pytest.raises(ImageSaveError, match="exists"):
        save_image(dst, _noise(4, 4))
    assert dst.read_bytes() == b"keep me"
    save_image(dst, _noise(4, 4), overwrite=True)
    with Image.open(dst) as im:
        assert im.size == (4, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temp file left


def test_save_never_writes_over_input(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(_noise(4, 4)).save(src)
    before = src.read_bytes()
    with pytest.raises(ImageSaveError, match="input"):
        save_image(src, _noise(8, 8), overwrite=True, protect=[src])
    assert src.read_bytes() == before


def test_save_modes(tmp_path):
    grey, alpha = _noise(4, 4, 1), _noise(4, 4, 1, seed=1)
    save_image(tmp_path / "g.png", grey)
    save_image(tmp_path / "la.png", grey, alpha)
    save_image(tmp_path / "rgba.png", _noise(4, 4), alpha)
    notes = save_image(tmp_path / "flat.jpg", _noise(4, 4), alpha)
    for name, mode in [("g.png", "L"), ("la.png", "LA"), ("rgba.png", "RGBA"), ("flat.jpg", "RGB")]:
        with Image.open(tmp_path / name) as im:
            assert im.mode == mode, name
    assert any("alpha" in n for n in notes)


def test_save_into_missing_folder(tmp_path):
    with pytest.raises(ImageSaveError, match="does not exist"):
        save_image(tmp_path / "no" / "out.png", _noise(4, 4))


def test_png_outputs_use_the_faster_zlib_level_and_stay_lossless(tmp_path):
    import struct
    import zlib

    from jpegsr.imageio import PNG_COMPRESS_LEVEL, save_image

    rng = np.random.default_rng(3)
    pixels = (np.add.outer(np.arange(64), np.arange(96))[:, :, None] // 3 % 256).astype(np.uint8)
    pixels = np.repeat(pixels, 3, axis=2) ^ rng.integers(0, 4, (64, 96, 3), dtype=np.uint8)
    out = tmp_path / "x.png"
    save_image(out, pixels, None, format="png")
    data = out.read_bytes()
    pos, idat = 8, b""
    while pos < len(data):  # the PNG's chunks: length, type, body, CRC
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        idat += data[pos + 8 : pos + 8 + length] if kind == b"IDAT" else b""
        pos += 12 + length
    flevel = idat[1] >> 6  # zlib header: 0 fastest (1), 1 fast (2-5), 2 default (6), 3 max
    assert PNG_COMPRESS_LEVEL == 4 and flevel == 1
    assert zlib.decompress(idat)  # a valid stream
    with Image.open(out) as back:
        np.testing.assert_array_equal(np.asarray(back), pixels)
