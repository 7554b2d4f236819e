"""The bad-input matrix of `jpegsr upscale` (issue #13), a fuzz test and the corner test.

Each matrix case puts one odd input beside a good file and runs the real command line
(in-process, with a nearest-neighbour stand-in model where the model does not matter). It
checks the exit code, that the odd file gets exactly one line ``jpegsr: <file>: <reason>``
(or is upscaled), that no traceback appears, that the good file is still written, and that
no input file changed.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import jpegsr
import jpegsr.inference as up
from jpegsr.imageio import ImageLoadError, load_image
from jpegsr.models import ModelDescriptor, build
from jpegsr.weights_io import LoadedModel, load_model, save_weights


class Nearest(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=4, mode="nearest")


STANDIN = LoadedModel(Nearest().eval(), ModelDescriptor(name="nearest", scale=4), "test", {})


def _noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture
def run_cli(monkeypatch, jpegsr_cli):
    """Run `jpegsr ...` in-process with the stand-in model; returns (exit code, out, err)."""
    monkeypatch.setattr(up, "resolve_model", lambda model, jpeg_quality=None: STANDIN)
    return jpegsr_cli


def _jpeg(pixels: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", **kw)
    return buf.getvalue()


def _write(path: Path, make) -> Path:  # noqa: ANN001
    if isinstance(make, bytes):
        path.write_bytes(make)
    else:
        make(path)
    return path


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _animated(path: Path) -> None:
    frames = [Image.fromarray(_noise((6, 6, 3), s)).convert("P") for s in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])


# name, file content (bytes or a writer), expected: None = upscaled to (h, w), else the
# substring of its one error line
GOOD = _noise((6, 8, 3))
MATRIX = {
    "truncated.jpg": (_jpeg(_noise((32, 32, 3)))[:200], "truncated"),
    "zero.jpg": (b"", "empty file"),
    "text.jpg": (b"this is not an image\n" * 10, "not an image"),
    "renamed_png.jpg": (lambda p: Image.fromarray(GOOD).save(p, "PNG"), (6, 8)),
    "cmyk.jpg": (lambda p: Image.fromarray(GOOD).convert("CMYK").save(p), (6, 8)),
    "palette.png": (lambda p: Image.fromarray(GOOD).convert("P").save(p), (6, 8)),
    "la.png": (lambda p: Image.fromarray(_noise((6, 8, 2)), "LA").save(p), (6, 8)),
    "sixteen.png": (
        lambda p: Image.fromarray(_noise((6, 8)).astype(np.uint16) * 257).save(p),
        (6, 8),
    ),  # fmt: skip
    "alpha.png": (lambda p: Image.fromarray(_noise((6, 8, 4)), "RGBA").save(p), (6, 8)),
    "grey.jpg": (lambda p: Image.fromarray(_noise((6, 8)), "L").save(p), (6, 8)),
    "exif6.jpg": (lambda p: Image.fromarray(GOOD).save(p, exif=_exif(6)), (8, 6)),
    "exif8.jpg": (lambda p: Image.fromarray(GOOD).save(p, exif=_exif(8)), (8, 6)),
    "exif3.jpg": (lambda p: Image.fromarray(GOOD).save(p, exif=_exif(3)), (6, 8)),
    "progressive.jpg": (_jpeg(GOOD, progressive=True), (6, 8)),
    "animated.gif": (_animated, (6, 6)),
    "picture.webp": (lambda p: Image.fromarray(GOOD).save(p, "WEBP", lossless=True), (6, 8)),
    "one.png": (lambda p: Image.fromarray(_noise((1, 1, 3))).save(p), (1, 1)),
    "three_by_two.png": (lambda p: Image.fromarray(_noise((2, 3, 3))).save(p), (2, 3)),
    "bomb.png": (lambda p: Image.new("L", (6000, 5000)).save(p), "image too large"),
    "café_日本.png": (lambda p: Image.fromarray(GOOD).save(p), (6, 8)),
    "x" * 240 + ".png": (lambda p: Image.fromarray(GOOD).save(p), "name too long"),
}


@pytest.mark.parametrize("name", list(MATRIX))
def test_bad_input_matrix(tmp_path, run_cli, name):
    src = tmp_path / "in"
    src.mkdir()
    content, expected = MATRIX[name]
    odd = _write(src / name, content)
    good = src / "good.png"
    Image.fromarray(GOOD).save(good)
    before = {p: p.read_bytes() for p in (odd, good)}
    out = tmp_path / "out"
    code, stdout, err = run_cli("upscale", str(odd), str(good), "-o", str(out),
                                "--suffix", "_upscaled_x4")  # fmt: skip
    assert "Traceback" not in err
    assert (out / "good_upscaled_x4.png").is_file()
    assert {p: p.read_bytes() for p in before} == before  # no input changed
    mine = [line for line in err.splitlines() if line.startswith(f"jpegsr: {odd}:")]
    errors = [line for line in mine if "warning:" not in line]
    if isinstance(expected, str):
        assert code == 1
        assert len(errors) == 1 and expected in errors[0], err
    else:
        assert code == 0 and not errors, err
        with Image.open(out / f"{odd.stem}_upscaled_x4.png") as im:
            assert im.size == (4 * expected[1], 4 * expected[0])
    assert not list(out.glob(".jpegsr-*"))  # no temporaries left


def test_endless_and_special_inputs_are_refused_without_reading(tmp_path, run_cli):
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)  # opening it would block until a writer comes: it must not be opened
    good = tmp_path / "good.png"
    Image.fromarray(GOOD).save(good)
    code, _, err = run_cli("upscale", "/dev/zero", str(fifo), str(good), "-o",
                           str(tmp_path / "out"))  # fmt: skip
    assert code == 1 and "Traceback" not in err
    assert "jpegsr: /dev/zero: not a regular file" in err
    assert f"jpegsr: {fifo}: not a regular file" in err
    assert (tmp_path / "out" / "good.png").is_file()


def test_byte_limit_is_checked_before_reading(tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(_noise((64, 64, 3))).save(big)
    with big.open("ab") as f:
        f.write(bytes(2 * 2**20))  # trailing bytes Pillow would ignore: 2 MiB in all
    with pytest.raises(ImageLoadError, match="file too large"):
        load_image(big, max_pixels=10)  # 10 pixels allow 80 bytes + 1 MiB of headers
    sparse = tmp_path / "sparse.jpg"
    with sparse.open("wb") as f:
        f.truncate(300 * 2**20)  # 300 MiB without data: refused from its size, not read
    with pytest.raises(ImageLoadError, match="file too large"):
        load_image(sparse)


@pytest.mark.parametrize(
    ("outdir", "message"),
    [("a_file", "not a folder"), ("a_file/below", "cannot create output folder")],
)
def test_invalid_output_paths(tmp_path, run_cli, outdir, message):
    (tmp_path / "a_file").write_text("x")
    good = tmp_path / "good.png"
    Image.fromarray(GOOD).save(good)
    code, _, err = run_cli("upscale", str(good), "-o", str(tmp_path / outdir))
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


def test_same_name_collision_and_bad_flags(tmp_path, run_cli):
    Image.fromarray(GOOD).save(tmp_path / "x.png")
    Image.fromarray(GOOD).save(tmp_path / "x.jpg")
    code, _, err = run_cli("upscale", str(tmp_path / "x.jpg"), str(tmp_path / "x.png"),
                           "-o", str(tmp_path / "out"))  # fmt: skip
    assert code == 1 and "already produced" in err
    for flags in (["--tile", "-1"], ["--threads", "0"], ["--format", "gif"],
                  ["--overwrite", "--skip-existing"]):  # fmt: skip
        code, _, err = run_cli("upscale", str(tmp_path / "x.png"), *flags)
        assert code == 2 and "Traceback" not in err and "usage:" in err


def test_glob_with_double_star_descends_without_recursive(tmp_path, run_cli):
    for rel in ("a.jpg", "one/b.jpg", "one/two/c.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(GOOD).save(tmp_path / rel)
    code, out, _ = run_cli("upscale", str(tmp_path / "**" / "*.jpg"), "-o", str(tmp_path / "o"))
    assert code == 0 and "3 upscaled" in out


def test_files_without_image_suffix_are_counted_as_skipped(tmp_path, run_cli):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(GOOD).save(folder / "a.png")
    Image.fromarray(GOOD).save(folder / "no_extension", "PNG")
    code, out, _ = run_cli("upscale", str(folder), "-o", str(tmp_path / "o"))
    assert code == 0 and "1 upscaled, 0 failed, 1 skipped" in out


@pytest.mark.parametrize("dry_run", [False, True])
def test_when_no_input_is_found_each_says_why_in_one_line(tmp_path, run_cli, dry_run):
    (tmp_path / "empty").mkdir()
    cases = {
        str(tmp_path / "missing.jpg"): "no such file or directory",
        str(tmp_path / "empty"): "no image files in this folder",
        str(tmp_path / "empty" / "*.jpg"): "no image files match this pattern",
    }
    for name, why in cases.items():
        argv = ["upscale", name, "-o", str(tmp_path / "out"), *(["--dry-run"] if dry_run else [])]
        code, _, err = run_cli(*argv)
        assert code == 2 and err.splitlines() == [f"jpegsr: {name}: {why}"], err
    assert not (tmp_path / "out").exists()


def test_no_empty_output_folder_when_every_input_fails(tmp_path, run_cli):
    (tmp_path / "bad.jpg").write_bytes(b"")
    code, _, _ = run_cli("upscale", str(tmp_path / "bad.jpg"), "-o", str(tmp_path / "new"))
    assert code == 1 and not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()  # a folder that was there stays
    run_cli("upscale", str(tmp_path / "bad.jpg"), "-o", str(tmp_path / "kept"))
    assert (tmp_path / "kept").is_dir()


def test_allocation_failure_is_one_readable_line(tmp_path, run_cli, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: not enough "
            "memory: you tried to allocate 1000000000000 bytes."
        )

    monkeypatch.setattr(up, "upscale_array", fail)
    Image.fromarray(GOOD).save(tmp_path / "a.png")
    code, _, err = run_cli("upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"))
    assert code == 1 and err.strip() == f"jpegsr: {tmp_path / 'a.png'}: out of memory (try a " \
        "smaller --tile)"  # fmt: skip


def test_version(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"jpegsr {jpegsr.__version__}"


def test_api_applies_exif_orientation(tmp_path):
    path = tmp_path / "exif6.jpg"
    Image.fromarray(_noise((6, 10, 3))).save(path, exif=_exif(6))
    with Image.open(path) as im:
        result = jpegsr.upscale(im, model=STANDIN)
    assert result.size == (24, 40)  # upright: 6 wide, 10 tall before x4
    assert Image.open(io.BytesIO(_png_with_exif(result))).getexif()[0x0112] == 1


def _png_with_exif(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", exif=im.info["exif"])
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["F", "I;16"])
def test_api_warns_when_sample_range_is_changed(mode):
    im = Image.fromarray(np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8), "F")
    if mode == "I;16":
        im = Image.fromarray(_noise((6, 8)).astype(np.uint16) * 257)
    with pytest.warns(UserWarning, match="scaled to 8 bits"):
        out = jpegsr.upscale(im, model=STANDIN)
    assert out.mode == "L" and out.size == (32, 24)


def test_kill_mid_batch_then_skip_existing_resumes(tmp_path):
    weights = tmp_path / "tiny.safetensors"
    torch.manual_seed(0)
    save_weights(build("two_stage_slwsr16", 4), "two_stage_slwsr16", 4, weights)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(40):
        Image.fromarray(_noise((96, 96, 3), i)).save(src / f"img{i:02d}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "jpegsr.cli", "upscale", str(src), "-o", str(out),
           "--model", str(weights), "--threads", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.png"))) < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(out.glob("*.png")))
    assert 2 <= done < 40, "the batch must be cut in the middle"
    # what a kill during a write leaves: a temporary of a process that no longer exists
    (out / f".jpegsr-{proc.pid}-0badf00d.tmp").write_bytes(b"partial")
    rerun = subprocess.run([*cmd, "--skip-existing"], capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{40 - done} upscaled, 0 failed, {done} skipped" in rerun.stdout
    assert len(list(out.glob("*.png"))) == 40 and not list(out.glob(".jpegsr-*"))
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "--skip-existing" in again.stderr  # without it: refused
    assert "Traceback" not in again.stderr


# --------------------------------------------------------------------------- fuzz


def _corrupt(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    kind = rng.integers(4)
    if kind == 0:  # bit flips anywhere
        for pos in rng.integers(0, len(b), size=int(rng.integers(1, 20))):
            b[pos] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # truncation
        b = b[: int(rng.integers(0, len(b)))]
    elif kind == 2:  # marker damage: a 0xFF xx marker byte replaced
        markers = [i for i in range(len(b) - 1) if b[i] == 0xFF and b[i + 1] not in (0, 0xFF)]
        for pos in rng.choice(markers, size=min(3, len(markers)), replace=False):
            b[pos + 1] = int(rng.integers(256))
    else:  # a random run of bytes overwritten
        start = int(rng.integers(0, len(b)))
        n = int(rng.integers(1, 64))
        b[start : start + n] = rng.integers(0, 256, size=len(b[start : start + n]),
                                           dtype=np.uint8).tobytes()  # fmt: skip
    return bytes(b)


def test_fuzzed_jpegs_end_in_an_image_or_one_line(tmp_path, run_cli):
    rng = np.random.default_rng(1234)
    base = _jpeg(_noise((24, 32, 3)), quality=40, progressive=False)
    folder = tmp_path / "fuzz"
    folder.mkdir()
    for i in range(300):
        (folder / f"f{i:03d}.jpg").write_bytes(_corrupt(base, rng))
    code, out, err = run_cli("upscale", str(folder), "-o", str(tmp_path / "out"))
    assert "Traceback" not in err and code in (0, 1)
    written = len(list((tmp_path / "out").glob("*.png")))
    errors = [line for line in err.splitlines() if "warning:" not in line]
    assert all(line.startswith(f"jpegsr: {folder}/f") for line in errors), errors[:5]
    assert written + len(errors) == 300, out
    assert f"{written} upscaled, {len(errors)} failed" in out


# --------------------------------------------------------------------------- corners


@pytest.fixture(scope="module")
def shipped():
    return load_model("blind_long")


@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (2, 3), (9, 9), (40, 60), (300, 280)])
def test_flat_colour_comes_back_flat_corners_included(shipped, shape):
    """Bound: every output pixel within 3 levels of the input colour (before the fix the
    corners of a 40 x 60 image were 35 levels off and a 1x1 image came back (122,113,93))."""
    colour = np.array((200, 100, 50))
    flat = np.broadcast_to(colour.astype(np.uint8), shape + (3,)).copy()
    out = up.upscale_array(shipped, flat, precision="fp32").astype(int)
    assert out.shape == (4 * shape[0], 4 * shape[1], 3)
    assert np.abs(out - colour).max() <= 3


def test_natural_image_corners_within_interior_behaviour(shipped):
    """Bound: each corner's 8x8 output block mean is no further from its 2x2 input block mean
    than the worst interior block is from its own."""
    image = np.asarray(Image.open(Path(__file__).parents[1] / "examples" / "astronaut_q20.jpg"))
    for crop in (image, image[100:140, 100:160], image[200:, 200:]):
        out = up.upscale_array(shipped, np.ascontiguousarray(crop), precision="fp32").astype(float)
        h, w = crop.shape[:2]

        def block(y: int, x: int, out=out, crop=crop) -> float:  # noqa: ANN001
            sr = out[4 * y : 4 * y + 8, 4 * x : 4 * x + 8].mean((0, 1))
            return float(np.abs(sr - crop[y : y + 2, x : x + 2].mean((0, 1))).max())

        corners = [block(0, 0), block(0, w - 2), block(h - 2, 0), block(h - 2, w - 2)]
        interior = max(block(y, x) for y in range(4, h - 6, 7) for x in range(4, w - 6, 7))
        assert max(corners) <= interior


def test_grey_stored_as_colour_stays_grey(shipped):
    """An R=G=B picture saved as a colour JPEG: the output has R=G=B everywhere (before the
    fix, channels up to 26 levels apart)."""
    rng = np.random.default_rng(0)
    g = (np.add.outer(np.arange(48), np.arange(64)) * 3 % 256).astype(int)
    g = np.clip(g + rng.integers(-20, 20, g.shape), 0, 255).astype(np.uint8)
    im = Image.open(io.BytesIO(_jpeg(np.dstack([g, g, g]), quality=30)))
    assert im.mode == "RGB"
    out = np.asarray(jpegsr.upscale(im, model=shipped)).astype(int)
    assert out.shape == (192, 256, 3)
    assert (out.max(axis=2) - out.min(axis=2)).max() == 0


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_xmp_is_carried_to_every_output_format(tmp_path, run_cli, fmt):
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
        b'02/22-rdf-syntax-ns#"><rdf:Description dc:title="kept"/></rdf:RDF></x:xmpmeta>'
    )
    src = tmp_path / "x.jpg"
    Image.fromarray(GOOD).save(src, "JPEG", xmp=xmp)
    code, _, err = run_cli("upscale", str(src), "-o", str(tmp_path / "o"), "--format", fmt)
    assert code == 0, err
    with Image.open(tmp_path / "o" / f"x.{fmt}") as im:
        im.load()
        assert im.info.get("xmp") == xmp
