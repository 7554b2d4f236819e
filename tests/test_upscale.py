"""Tiled inference, the upscale() API and the files command, with tiny stand-in models."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageCms
from torch import nn

import jpegsr
import jpegsr.inference as up
from jpegsr.batch import upscale_files
from jpegsr.cli import add_upscale_arguments, upscale_command
from jpegsr.inference import MAX_PASS_SIDE, auto_tile, upscale, upscale_array
from jpegsr.models import ModelDescriptor
from jpegsr.weights_io import LoadedModel


class Nearest(nn.Module):
    """x4 nearest neighbour: the expected output is exactly ``np.repeat``."""

    def __init__(self, two_stage: bool = False) -> None:
        super().__init__()
        self.two_stage = two_stage

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        sr = F.interpolate(x, scale_factor=4, mode="nearest")
        return (x, sr) if self.two_stage else sr


class SmallConv(nn.Module):
    """Two 3x3 convs (receptive-field radius 2) then conv + PixelShuffle x4."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1))
        self.up = nn.Sequential(nn.Conv2d(8, 48, 3, padding=1), nn.PixelShuffle(4))
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up(self.body(x)))


def standin(module: nn.Module | None = None, **desc) -> LoadedModel:
    module = Nearest() if module is None else module
    return LoadedModel(module.eval(), ModelDescriptor(name="standin", scale=4, **desc), "test", {})


def _noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _nearest(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(a, 4, axis=0), 4, axis=1)


# --------------------------------------------------------------------------- tiled inference


@pytest.mark.parametrize("size_multiple", [1, 4])
def test_tiled_equals_untiled(size_multiple):
    model = standin(SmallConv(), size_multiple=size_multiple)
    pixels = _noise((37, 30, 3))
    whole = upscale_array(model, pixels, tile=0)
    tiled = upscale_array(model, pixels, tile=8, overlap=4)
    assert whole.shape == (148, 120, 3) and whole.dtype == np.uint8
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


def test_tiles_without_overlap_differ(monkeypatch):
    # Sanity check that the previous test can fail: no context gives visible seams (every
    # pass reads MIN_CONTEXT pixels whatever the overlap, enough for this small network, so
    # it is set to 0 here).
    from jpegsr import inference

    monkeypatch.setattr(inference, "MIN_CONTEXT", 0)
    model = standin(SmallConv())
    pixels = _noise((32, 32, 3))
    whole = upscale_array(model, pixels, tile=0)
    seams = upscale_array(model, pixels, tile=8, overlap=0)
    assert np.abs(whole.astype(int) - seams.astype(int)).max() > 1


def test_nearest_standin_exact_with_padding_and_min_size():
    model = standin(Nearest(two_stage=True), size_multiple=8, min_size=16, two_stage=True)
    pixels = _noise((5, 11, 3))
    np.testing.assert_array_equal(upscale_array(model, pixels, tile=8, overlap=2), _nearest(pixels))


def test_auto_tile_bounds_each_pass():
    assert auto_tile(200, 300, 16) == 0  # fits in one pass
    # the speed test image, 480 x 320 with its border, is one pass in either precision
    assert all(auto_tile(328, 488, 16, 8, max_side=side) == 0 for side in MAX_PASS_SIDE.values())
    tile = auto_tile(750, 1000, 16)  # a 4000 x 3000 result
    assert 0 < tile and tile + 2 * 16 <= 256
    assert auto_tile(328, 488, 16, max_side=512) == 0  # 480x320 with its border: one pass
    tile = auto_tile(750, 1000, 16, max_side=512)
    assert 256 < tile and tile + 2 * 16 <= 512


def test_grey_uses_rgb_model_and_returns_one_channel():
    grey = _noise((6, 7, 1))
    out = upscale_array(standin(), grey)
    assert out.shape == (24, 28, 1)
    np.testing.assert_array_equal(out, _nearest(grey))
    assert upscale_array(standin(), grey[:, :, 0]).shape == (24, 28)


def test_rejects_non_uint8():
    with pytest.raises(TypeError):
        upscale_array(standin(), np.zeros((4, 4, 3), np.float32))


def test_real_two_stage_model_shapes():
    from jpegsr import models

    name = "two_stage_slwsr16"
    loaded = LoadedModel(models.build(name, 4).eval(), models.describe(name, 4), "test", {})
    assert upscale_array(loaded, _noise((9, 7, 3))).shape == (36, 28, 3)


# --------------------------------------------------------------------------- upscale() API


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("RGB", "RGB"), ("L", "L"), ("LA", "LA"), ("RGBA", "RGBA"), ("P", "RGB"), ("I;16", "L")],
)
def test_api_pil_round_trip(mode, expected):
    im = Image.new(mode, (5, 3))
    out = upscale(im, model=standin())
    assert isinstance(out, Image.Image) and out.mode == expected and out.size == (20, 12)


def test_api_pil_keeps_icc():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    im = Image.new("RGB", (4, 4))
    im.info["icc_profile"] = icc
    assert upscale(im, model=standin()).info["icc_profile"] == icc


@pytest.mark.parametrize("shape", [(5, 3), (5, 3, 1), (5, 3, 3), (5, 3, 4)])
def test_api_numpy_round_trip(shape):
    a = _noise(shape)
    out = upscale(a, model=standin())
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8
    assert out.shape == (20, 12) + shape[2:]
    if len(shape) == 3 and shape[2] == 4:
        np.testing.assert_array_equal(out[:, :, :3], _nearest(a[:, :, :3]))
    else:
        np.testing.assert_array_equal(out, _nearest(a))


def test_api_rejects_other_inputs():
    with pytest.raises(TypeError):
        upscale(np.zeros((4, 4), np.float32), model=standin())
    with pytest.raises(TypeError):
        upscale([[0]], model=standin())


def test_models_are_cached_by_name(monkeypatch):
    calls = []

    def fake_load(name):
        calls.append(name)
        return standin()

    monkeypatch.setattr(up, "load_model", fake_load)
    up._load_cached.cache_clear()
    try:
        for _ in range(3):
            upscale(np.zeros((2, 2), np.uint8), model="some-model")
    finally:
        up._load_cached.cache_clear()
    assert calls == ["some-model"]


def test_package_exposes_api_lazily():
    assert callable(jpegsr.upscale) and callable(jpegsr.load_model)
    out = jpegsr.upscale(np.zeros((2, 2), np.uint8), model=standin())
    assert out.shape == (8, 8)


def test_precision_choices_resolve():
    cpu = torch.device("cpu")
    assert up.use_bf16("fp32", cpu) is False and up.use_bf16(False, cpu) is False
    assert up.use_bf16("bf16", cpu) is True and up.use_bf16(True, cpu) is True
    assert up.use_bf16("auto", cpu) == up.use_bf16(None, cpu) == up.bf16_is_fast(cpu)
    with pytest.raises(ValueError, match="precision must be one of"):
        up.use_bf16("int4", cpu)


def test_forcing_bf16_on_a_cpu_without_it_warns_and_is_honoured(monkeypatch, tmp_path):
    import warnings

    cpu = torch.device("cpu")
    monkeypatch.setattr(up, "bf16_is_fast", lambda device: False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert up.use_bf16("bf16", cpu) is True  # still honoured: emulated, slow
        assert up.use_bf16("auto", cpu) is False and up.use_bf16("fp32", cpu) is False
    assert [str(w.message) for w in caught] == [up.EMULATED_BF16]
    monkeypatch.setattr(up, "bf16_is_fast", lambda device: True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert up.use_bf16("bf16", cpu) is True
    assert caught == []


def test_bf16_close_to_fp32_and_actually_used():
    model = standin(SmallConv())
    pixels = _noise((24, 20, 3), seed=3)
    full = upscale_array(model, pixels, precision="fp32").astype(int)
    half = upscale_array(model, pixels, precision="bf16").astype(int)
    diff = np.abs(full - half)
    assert diff.max() <= 3  # bf16 keeps 8 mantissa bits: a few grey levels at most
    assert diff.max() > 0  # the bf16 path really ran in reduced precision


# --------------------------------------------------------------------------- files and CLI


@pytest.fixture
def cli(monkeypatch):
    """Parse and run the upscale command with the stand-in in place of any named model."""
    monkeypatch.setattr(up, "resolve_model", lambda model, jpeg_quality=None: standin())

    def run(*argv: str) -> int:
        parser = argparse.ArgumentParser()
        add_upscale_arguments(parser)
        return upscale_command(parser.parse_args(list(argv)))

    return run


def test_files_kinds_and_outputs(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_noise((8, 8, 3))).save(src / "rgb.jpg")
    Image.fromarray(_noise((8, 8)), "L").save(src / "grey.png")
    Image.fromarray(_noise((8, 8, 4)), "RGBA").save(src / "alpha.png")
    (src / "notes.txt").write_text("skipped: not an image suffix")
    summary = upscale_files([src], tmp_path / "out", model=standin(), suffix="_x4")
    assert summary.exit_code == 0 and len(summary.ok) == 3 and not summary.failed
    modes = {}
    for name in ("rgb_x4.png", "grey_x4.png", "alpha_x4.png"):
        with Image.open(tmp_path / "out" / name) as im:
            assert im.size == (32, 32)
            modes[name] = im.mode
    assert modes == {"rgb_x4.png": "RGB", "grey_x4.png": "L", "alpha_x4.png": "RGBA"}


def test_files_exif_rotated_and_icc(tmp_path):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_noise((8, 16, 3))).save(tmp_path / "r.jpg", exif=exif, icc_profile=icc)
    summary = upscale_files([tmp_path / "r.jpg"], tmp_path / "out", model=standin(), fmt="jpg")
    assert summary.exit_code == 0
    with Image.open(tmp_path / "out" / "r.jpg") as im:
        assert im.size == (32, 64)  # rotated: 16 x 8 LR, portrait
        assert im.getexif()[0x0112] == 1
        assert im.info["icc_profile"] == icc


def test_one_failure_does_not_stop_the_rest(tmp_path):
    Image.fromarray(_noise((8, 8, 3))).save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_bytes(b"")
    lines = []
    summary = upscale_files(
        [tmp_path / "bad.jpg", tmp_path / "good.png", tmp_path / "missing.png"],
        tmp_path / "out",
        model=standin(),
        log=lines.append,
    )
    assert [p.name for p, _ in summary.ok] == ["good.png"]
    assert len(summary.failed) == 2 and summary.exit_code == 1
    assert any(line.endswith("bad.jpg: empty file (0 bytes)") for line in lines)
    assert any("missing.png: no such file" in line for line in lines)


def test_glob_and_recursive(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for p in ("a.png", "b.jpg", "sub/c.png"):
        Image.fromarray(_noise((4, 4, 3))).save(src / p)
    (src / "sub" / "notes.png.txt").write_text("not an image suffix")

    def names(summary):
        return sorted(p.name for p, _ in summary.ok)

    by_glob = upscale_files([str(src / "*.png")], tmp_path / "o1", model=standin())
    assert names(by_glob) == ["a.png"]
    assert names(upscale_files([src], tmp_path / "o2", model=standin())) == ["a.png", "b.jpg"]
    out = src / "out"  # inside the input folder: earlier results must not become inputs
    for _ in range(2):
        deep = upscale_files([src], out, model=standin(), recursive=True, overwrite=True)
        assert names(deep) == ["a.png", "b.jpg", "c.png"] and not deep.failed


def test_sub_folders_of_the_inputs_are_kept_below_the_output_folder(tmp_path):
    """--recursive and '**' patterns mirror the sub-folders they found files in (the same
    name in two sub-folders is no clash); explicitly named files stay flat; temporaries that a
    killed run left in such a sub-folder are removed by the next run."""
    src = tmp_path / "archive"
    for p in ("top.png", "a/x.png", "b/x.png", "b/c/y.jpg"):
        (src / p).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_noise((4, 4, 3))).save(src / p)
    expected = ["a/x.png", "b/c/y.png", "b/x.png", "top.png"]

    def written(out: Path) -> list[str]:
        return sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))

    deep = upscale_files([src], tmp_path / "o1", model=standin(), recursive=True)
    assert not deep.failed and written(tmp_path / "o1") == expected
    pattern = upscale_files([str(src / "**" / "*.*")], tmp_path / "o2", model=standin())
    assert not pattern.failed and written(tmp_path / "o2") == expected
    flat = upscale_files([src / "a/x.png", src / "b/x.png"], tmp_path / "o3", model=standin())
    assert len(flat.ok) == 1 and "already produced" in flat.failed[0][1]
    stale = tmp_path / "o1" / "b" / "c" / ".jpegsr-999999999-0badf00d.tmp"
    stale.write_bytes(b"partial")
    again = upscale_files([src], tmp_path / "o1", model=standin(), recursive=True,
                          skip_existing=True)  # fmt: skip
    assert len(again.skipped) == 4 and not stale.exists()


def test_cli_dry_run_lists_the_plan_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """--dry-run: one "input -> output" line per file, refusals as usual, no model loaded and
    no output folder made; exit 1 when anything would be refused."""

    def no_model(*_: object, **__: object) -> None:
        raise AssertionError("a dry run must not load a model")

    monkeypatch.setattr(up, "resolve_model", no_model)
    parser = argparse.ArgumentParser()
    add_upscale_arguments(parser)
    src = tmp_path / "in"
    for p in ("a.png", "sub/b.png"):
        (src / p).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_noise((4, 4, 3))).save(src / p)
    out = tmp_path / "out"
    argv = [str(src), "--recursive", "-o", str(out), "--dry-run", "--format", "webp"]
    assert upscale_command(parser.parse_args(argv)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{src / 'a.png'} -> {out / 'a.webp'}",
        f"{src / 'sub/b.png'} -> {out / 'sub/b.webp'}",
        "jpegsr: dry run: 2 would be upscaled, 0 refused, 0 skipped; nothing written",
    ]
    assert not out.exists()
    (src / "sub/a.png").write_bytes((src / "a.png").read_bytes())
    clash = [str(src / "a.png"), str(src / "sub/a.png"), "-o", str(out), "--dry-run"]
    assert upscale_command(parser.parse_args(clash)) == 1
    assert "already produced" in capsys.readouterr().err and not out.exists()


def test_duplicate_output_names_reported(tmp_path):
    Image.fromarray(_noise((4, 4, 3))).save(tmp_path / "x.png")
    Image.fromarray(_noise((4, 4, 3))).save(tmp_path / "x.jpg")
    summary = upscale_files(
        [tmp_path / "x.jpg", tmp_path / "x.png"], tmp_path / "out", model=standin()
    )
    assert len(summary.ok) == 1 and len(summary.failed) == 1
    assert "already produced" in summary.failed[0][1]


def test_output_equal_to_input_refused(tmp_path, cli):
    src = tmp_path / "a.png"
    Image.fromarray(_noise((4, 4, 3))).save(src)
    before = src.read_bytes()
    assert cli(str(src), "-o", str(tmp_path), "--overwrite") == 1
    assert src.read_bytes() == before


def test_cli_exit_codes_and_overwrite(tmp_path, cli, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(_noise((4, 4, 3))).save(src)
    out = tmp_path / "out"
    assert cli(str(src), "-o", str(out)) == 0
    assert "1 upscaled, 0 failed" in capsys.readouterr().out
    (out / "a.png").write_bytes(b"old")
    assert cli(str(src), "-o", str(out)) == 1
    assert (out / "a.png").read_bytes() == b"old"  # untouched without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert cli(str(src), "-o", str(out), "--overwrite", "--format", "webp") == 0
    assert cli(str(src), "-o", str(out), "--overwrite") == 0
    with Image.open(out / "a.png") as im:
        assert im.size == (16, 16)
    assert cli(str(tmp_path / "nothing*.png"), "-o", str(out)) == 2
    assert "no image files match this pattern" in capsys.readouterr().err


def test_cli_output_file_for_one_input(tmp_path, cli, capsys):
    """`-o NAME.png|.webp|.jpg` with one input file writes that file, in that format; with
    several inputs, a contradicting --format or a --suffix it is a one-line usage error; an
    existing folder with such a name stays a folder."""
    src = tmp_path / "a.jpg"
    Image.fromarray(_noise((4, 6, 3))).save(src, quality=50)
    for name, fmt in (("b.png", "PNG"), ("sub/c.WEBP", "WEBP"), ("d.jpeg", "JPEG")):
        assert cli(str(src), "-o", str(tmp_path / name)) == 0
        assert f"output in {tmp_path / name}" in capsys.readouterr().out
        with Image.open(tmp_path / name) as im:
            assert (im.format, im.size) == (fmt, (24, 16))
    before = (tmp_path / "b.png").read_bytes()
    assert cli(str(src), "-o", str(tmp_path / "b.png")) == 1  # exists: kept
    assert (tmp_path / "b.png").read_bytes() == before
    assert cli(str(src), "-o", str(src)) == 1  # the input itself: refused
    assert "would overwrite an input" in capsys.readouterr().err
    usage = [
        ((str(src), str(src), "-o", str(tmp_path / "e.png")), "exactly one input file"),
        ((str(tmp_path), "-o", str(tmp_path / "e.png")), "exactly one input file"),
        ((str(src), "-o", str(tmp_path / "e.jpg"), "--format", "png"), "contradicts"),
        ((str(src), "-o", str(tmp_path / "e.png"), "--suffix", "_x"), "--suffix"),
    ]
    for argv, message in usage:
        assert cli(*argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "e.png").exists() and not (tmp_path / "e.jpg").exists()
    folder = tmp_path / "f.png"
    folder.mkdir()
    assert cli(str(src), "-o", str(folder)) == 0
    assert (folder / "a.png").is_file()


def _jpegsr(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "jpegsr.cli", "upscale", *argv]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=300)


def test_cli_reads_standard_input_and_writes_standard_output(tmp_path):
    """`jpegsr upscale - -o -` works in a pipe with the shipped model: the image on standard
    output, every message on standard error; a bad stream fails in one line and writes
    nothing; '-' with another input is a usage error."""
    buf = io.BytesIO()
    Image.fromarray(_noise((4, 6, 3))).save(buf, "JPEG", quality=30)
    piped = _jpegsr("-", "-o", "-", "--format", "webp", stdin=buf.getvalue())
    assert piped.returncode == 0, piped.stderr
    with Image.open(io.BytesIO(piped.stdout)) as im:
        assert (im.format, im.size) == ("WEBP", (24, 16))
    assert b"1 upscaled" in piped.stderr and b"standard output" in piped.stderr
    to_file = _jpegsr("-", "-o", str(tmp_path / "x.png"), stdin=buf.getvalue())
    assert to_file.returncode == 0 and to_file.stdout.endswith(
        b"output in " + bytes(tmp_path / "x.png") + b"\n"
    )
    with Image.open(tmp_path / "x.png") as im:
        assert im.size == (24, 16)
    bad = _jpegsr("-", "-o", "-", stdin=b"not an image")
    assert bad.returncode == 1 and bad.stdout == b""
    assert bad.stderr.startswith(b"jpegsr: standard input: ") and b"/tmp" not in bad.stderr
    assert _jpegsr("-", str(tmp_path / "x.png"), "-o", "-").returncode == 2


def test_cli_refuses_image_data_on_a_terminal(monkeypatch, cli, tmp_path, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(_noise((4, 4, 3))).save(src)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert cli(str(src), "-o", "-") == 2
    assert "would write image data to a terminal" in capsys.readouterr().err


def test_cli_output_quality_sets_the_encoders_quality(tmp_path, cli, capsys):
    """--output-quality Q: JPEG outputs carry quantisation tables of quality Q (default 95),
    WebP ones get smaller; for PNG it is a one-line usage error."""
    from jpegsr.imageio import jpeg_quality

    src = tmp_path / "a.png"
    Image.fromarray(_noise((16, 16, 3))).save(src)
    found = {}
    for q in (None, 40):
        out = tmp_path / f"q{q}"
        extra = [] if q is None else ["--output-quality", str(q)]
        assert cli(str(src), "-o", str(out), "--format", "jpg", *extra) == 0
        with Image.open(out / "a.jpg") as im:
            found[q] = jpeg_quality(im)
        assert cli(str(src), "-o", str(out), "--format", "webp", *extra) == 0
        found[f"webp{q}"] = (out / "a.webp").stat().st_size
    assert found[None] == 95 and found[40] == 40 and found["webp40"] < found["webpNone"]
    capsys.readouterr()
    assert cli(str(src), "-o", str(tmp_path / "p"), "--output-quality", "40") == 2
    assert "PNG is lossless" in capsys.readouterr().err and not (tmp_path / "p").exists()


def test_cli_bomb_limit_and_override(tmp_path, cli):
    src = tmp_path / "a.png"
    Image.fromarray(_noise((16, 16, 3))).save(src)
    out = tmp_path / "out"
    assert cli(str(src), "-o", str(out), "--max-pixels", "100") == 1
    assert not (out / "a.png").exists()
    assert cli(str(src), "-o", str(out), "--max-pixels", "256", "--tile", "0") == 0


def test_cli_unwritable_output_folder(tmp_path, cli, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(_noise((4, 4, 3))).save(src)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be")
    assert cli(str(src), "-o", str(blocker / "out")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot create output folder" in err[0]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes all")
def test_cli_read_only_output_folder(tmp_path, cli, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(_noise((4, 4, 3))).save(src)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert cli(str(src), "-o", str(out)) == 1
        assert "not writable" in capsys.readouterr().err
    finally:
        out.chmod(0o755)


def test_cli_precision_flag(tmp_path, cli, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(_noise((6, 5, 3))).save(src)
    assert cli(str(src), "-o", str(tmp_path / "o"), "--precision", "fp32") == 0
    assert (tmp_path / "o" / "a.png").is_file()
    with pytest.raises(SystemExit) as exc:
        cli(str(src), "-o", str(tmp_path / "o"), "--precision", "fp8")
    assert exc.value.code == 2


def test_cli_threads_restored(tmp_path, cli):
    src = tmp_path / "a.png"
    Image.fromarray(_noise((4, 4, 3))).save(src)
    before = torch.get_num_threads()
    assert cli(str(src), "-o", str(tmp_path / "out"), "--threads", "1") == 0
    assert torch.get_num_threads() == before


def test_cli_rejects_bad_numbers():
    parser = argparse.ArgumentParser()
    add_upscale_arguments(parser)
    for argv in (["a", "--tile", "-1"], ["a", "--threads", "0"], ["a", "--max-pixels", "x"]):
        with pytest.raises(SystemExit) as info:
            parser.parse_args(argv)
        assert info.value.code == 2


def test_files_auto_model_sees_each_files_jpeg_quality(tmp_path, monkeypatch):
    seen = []

    def choose(quality):
        seen.append(quality)
        return "chosen"

    monkeypatch.setattr(up, "choose_shipped", choose)
    monkeypatch.setattr(up, "_load_cached", lambda name: standin())
    for q in (30, 70):
        Image.fromarray(_noise((16, 16, 3))).save(tmp_path / f"q{q}.jpg", quality=q)
    summary = upscale_files([str(tmp_path / "q30.jpg"), str(tmp_path / "q70.jpg")],
                               tmp_path / "out", model="auto")  # fmt: skip
    assert summary.exit_code == 0
    assert seen == [None, 30, 70]  # the up-front load check, then one choice per file


def test_api_auto_reads_quality_of_pil_jpeg(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(up, "choose_shipped", lambda q: seen.append(q) or "chosen")
    monkeypatch.setattr(up, "_load_cached", lambda name: standin())
    Image.fromarray(_noise((8, 8, 3))).save(tmp_path / "a.jpg", quality=40)
    with Image.open(tmp_path / "a.jpg") as im:
        assert jpegsr.upscale(im).size == (32, 32)
    jpegsr.upscale(_noise((8, 8, 3)))
    assert seen == [40, None]


def test_old_bf16_keyword_still_works_with_a_deprecation_warning(tmp_path):
    pixels = _noise((6, 8, 3))
    with pytest.warns(DeprecationWarning, match="precision="):
        old = upscale_array(standin(), pixels, bf16="fp32")
    assert np.array_equal(old, upscale_array(standin(), pixels, precision="fp32"))
    Image.fromarray(pixels).save(tmp_path / "a.png")
    with pytest.warns(DeprecationWarning, match="precision="):
        summary = upscale_files([tmp_path / "a.png"], tmp_path / "o", model=standin(), bf16="fp32")
    assert summary.exit_code == 0
    with pytest.raises(TypeError, match="unexpected keyword"):
        upscale_array(standin(), pixels, bf61="fp32")


def test_quality_override_changes_the_model_choice(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(up, "choose_shipped", lambda q: seen.append(q) or "chosen")
    monkeypatch.setattr(up, "_load_cached", lambda name: standin())
    Image.fromarray(_noise((16, 16, 3))).save(tmp_path / "resaved.jpg", quality=90)
    parser = argparse.ArgumentParser()
    add_upscale_arguments(parser)
    args = ["--model", "auto", "-o", str(tmp_path / "o"), str(tmp_path / "resaved.jpg")]
    assert upscale_command(parser.parse_args(args)) == 0
    assert upscale_command(parser.parse_args([*args, "--overwrite", "--quality", "15"])) == 0
    assert seen == [None, 90, None, 15]  # the load check, then the file's tables / the override
    with pytest.raises(SystemExit):
        parser.parse_args([*args, "--quality", "101"])


@pytest.mark.parametrize(
    ("flags", "size"),
    [([], (64, 48)), (["--outscale", "2"], (32, 24)), (["--outscale", "3"], (48, 36)),
     (["--outscale", "1.5"], (24, 18)), (["--width", "40"], (40, 30)),
     (["--height", "30"], (40, 30)), (["--width", "64"], (64, 48))],
)  # fmt: skip
def test_output_size_flags(tmp_path, cli, flags, size):
    Image.fromarray(_noise((12, 16, 4)), "RGBA").save(tmp_path / "a.png")
    assert cli(str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), *flags) == 0
    with Image.open(tmp_path / "o" / "a.png") as im:
        assert im.size == size and im.mode == "RGBA"


def test_output_size_limits(tmp_path, cli, capsys):
    Image.fromarray(_noise((12, 16, 3))).save(tmp_path / "a.png")
    for flags in (["--outscale", "5"], ["--outscale", "0"], ["--width", "10", "--height", "5"]):
        with pytest.raises(SystemExit):
            cli(str(tmp_path / "a.png"), *flags)
    assert cli(str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--width", "65") == 1
    assert "width must be in 1..64 (4x), not 65" in capsys.readouterr().err


def test_api_output_size():
    arr = _noise((12, 16, 3))
    assert upscale(arr, model=standin(), outscale=2).shape == (24, 32, 3)
    assert upscale(arr[:, :, 0], model=standin(), width=20).shape == (15, 20)
    im = upscale(Image.fromarray(arr), model=standin(), height=36)
    assert im.size == (48, 36)
    # x4 then Lanczos down equals the same downscale of the x4 result
    big = upscale(arr, model=standin())
    ref = np.asarray(Image.fromarray(big).resize((32, 24), Image.Resampling.LANCZOS))
    assert np.array_equal(upscale(arr, model=standin(), outscale=2), ref)


def test_16bit_png_in_gives_16bit_png_out(tmp_path, cli, capsys):
    import cv2

    rgb = np.random.default_rng(3).integers(0, 65536, (6, 8, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), rgb[:, :, ::-1])
    assert cli(str(tmp_path / "deep.png"), "-o", str(tmp_path / "o")) == 0
    out = cv2.imread(str(tmp_path / "o" / "deep.png"), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
    assert out.dtype == np.uint16 and np.array_equal(out, _nearest(rgb))  # all 16 bits kept
    assert cli(str(tmp_path / "deep.png"), "-o", str(tmp_path / "o"), "--format", "jpg") == 0
    assert "written as 8-bit" in capsys.readouterr().err
    arr = upscale(rgb, model=standin())
    assert arr.dtype == np.uint16 and np.array_equal(arr, _nearest(rgb))


def test_a_batch_wraps_each_model_once():
    from jpegsr.batch import BatchOptions, model_picker
    from jpegsr.weights_io import choose_shipped

    model_for = model_picker(BatchOptions(self_ensemble=True))
    first = model_for(20)
    assert model_for(20) is first
    assert type(first.module).__name__ == "SelfEnsemble"
    # qualities auto maps to the same shipped model share one wrapped model, others do not
    qualities = range(10, 100, 10)
    same = [q for q in qualities if q != 20 and choose_shipped(q) == choose_shipped(20)]
    other = [q for q in qualities if choose_shipped(q) != choose_shipped(20)]
    assert same, "auto.json maps no other quality to q=20's model"
    assert all(model_for(q) is first for q in same)
    assert all(model_for(q) is not first for q in other)
