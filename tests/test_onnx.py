"""ONNX export and the onnxruntime backend: the same pixels as PyTorch in fp32 (within one grey
level on uint8 output), dynamic sizes, metadata, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime", reason="needs the onnx extra")
pytest.importorskip("onnx", reason="needs the onnx extra")

from jpegsr.cli import main  # noqa: E402
from jpegsr.inference import resolve_model, upscale_array  # noqa: E402
from jpegsr.onnx_export import as_onnxruntime, export_onnx, load_onnx  # noqa: E402
from jpegsr.weights_io import load_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1  # grey levels: fp32 in both runtimes, different kernels and summation orders


def _photo(h: int, w: int) -> np.ndarray:
    image = np.asarray(Image.open(REPO / "examples" / "astronaut_q20.jpg").convert("RGB"))
    return np.ascontiguousarray(image[40 : 40 + h, 60 : 60 + w])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "blind_long.onnx"
    export_onnx(load_model("blind_long"), path)
    return path


@pytest.mark.parametrize("shape", [(24, 32), (37, 29)])
def test_onnxruntime_matches_pytorch_fp32(exported, shape, monkeypatch):
    monkeypatch.chdir(REPO)
    pixels = _photo(*shape)
    ref = upscale_array(load_model("blind_long"), pixels, precision="fp32").astype(int)
    ort = load_onnx(exported)
    out = upscale_array(ort, pixels, precision="auto").astype(int)  # ORT always runs fp32
    assert out.shape == ref.shape == (4 * shape[0], 4 * shape[1], 3)
    assert np.abs(out - ref).max() <= TOLERANCE


def test_metadata_and_backend_choice(exported):
    ort = load_onnx(exported)
    assert ort.descriptor.scale == 4 and not ort.descriptor.bf16
    assert ort.metadata["jpegsr_arch"] == "two_stage_slwsr32" and ort.metadata["opset"] == "17"
    assert ort.metadata["run"] == load_model("blind_long").metadata["run"]
    assert resolve_model(str(exported)).source == str(exported)
    converted = as_onnxruntime(load_model("blind_long"))
    assert type(converted.module).__name__ == "OnnxRuntimeModule"


def test_cli_export_and_upscale_with_onnx(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "m.onnx"
    assert main(["export", "onnx", "blind_long", "-o", str(out)]) == 0 and out.is_file()
    Image.fromarray(_photo(20, 24)).save(tmp_path / "a.png")
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o1"),
                 "--model", str(out)]) == 0  # fmt: skip
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o2"),
                 "--model", "blind_long", "--backend", "onnxruntime"]) == 0  # fmt: skip
    a = np.asarray(Image.open(tmp_path / "o1" / "a.png"))
    b = np.asarray(Image.open(tmp_path / "o2" / "a.png"))
    assert a.shape == (80, 96, 3) and np.array_equal(a, b)
    capsys.readouterr()
    assert main(["upscale", str(tmp_path / "a.png"), "--model", str(tmp_path / "no.onnx")]) == 2
    err = capsys.readouterr().err
    assert "ONNX file not found" in err and len(err.strip().splitlines()) == 1
