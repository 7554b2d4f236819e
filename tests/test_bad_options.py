"""Bad options and configs of every command (beyond `upscale`'s input matrix in
test_bad_inputs.py): a clear one-line error, a non-zero exit, no traceback, nothing the user
had overwritten, and nothing written when the run could not be right."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from jpegsr.cli import main
from jpegsr.config import ConfigError, TrainConfig, from_dict

REPO = Path(__file__).resolve().parents[1]
BLIND = REPO / "src" / "jpegsr" / "weights" / "blind.safetensors"


@pytest.fixture
def jpegsr_cli(jpegsr_cli):
    """conftest's in-process runner, asserting that no run prints a traceback."""

    def run(*argv: str) -> tuple[int, str, str]:
        code, out, err = jpegsr_cli(*argv)
        assert "Traceback" not in err
        return code, out, err

    return run


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if "no native bf16" not in ln]
    assert len(lines) == 1, err
    return lines[0]


def _config(**overrides) -> dict:
    cfg = {"name": "x", "model": "two_stage_slwsr16", "iterations": 4}
    for key, value in overrides.items():
        section, _, leaf = key.rpartition(".")
        (cfg.setdefault(section, {}) if section else cfg)[leaf] = value
    return cfg


@pytest.mark.parametrize(
    "key,value",
    [("iterations", 0), ("iterations", -1), ("batch_size", 0), ("checkpoint_every", 0),
     ("log_every", 0), ("val_every", 0), ("threads", -3), ("data.scale", 7),
     ("data.qualities", []), ("data.qualities", [0]), ("data.qualities", [500]),
     ("data.lr_patch", 0), ("data.val_count", -1), ("data.hr_scales", [0.0]),
     ("optim.lr", -1.0), ("optim.ema_decay", 2.0), ("optim.betas", [0.9, 1.5])],
)  # fmt: skip
def test_training_config_refuses_values_that_cannot_train(key, value):
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}\b.*: must be"):
        from_dict(TrainConfig, _config(**{key: value}))
    assert isinstance(from_dict(TrainConfig, _config()), TrainConfig)  # the base is valid


def test_train_with_no_iterations_writes_no_weights(tmp_path, jpegsr_cli):
    """An untrained model must not replace a run's weights: the config is refused first."""
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "model.safetensors").write_bytes(b"the user's weights")
    cfg = tmp_path / "x.yaml"
    cfg.write_text(yaml.safe_dump(_config(out_dir=str(tmp_path / "runs"))))
    for flags in ([], ["--iterations", "-1"]):
        code, _, err = jpegsr_cli("train", str(cfg), "--iterations", "0", *flags)
        assert code == 2 and ("iterations" in err or "must be >= 1" in err)
    code, _, err = jpegsr_cli("train", str(cfg), "--threads", "100000")
    assert code == 2 and "1..1024" in err
    assert (run / "model.safetensors").read_bytes() == b"the user's weights"


def test_export_never_overwrites_without_being_asked(tmp_path, jpegsr_cli):
    weights = tmp_path / "w.safetensors"
    shutil.copy(BLIND, weights)
    before = weights.read_bytes()
    for target in (weights, tmp_path / "photo.onnx"):
        if target.suffix == ".onnx":
            target.write_bytes(b"someone's file")
        code, _, err = jpegsr_cli("export", "onnx", str(weights), "-o", str(target))
        assert code == 2 and "--overwrite" in _one_error_line(err)
    assert weights.read_bytes() == before
    assert (tmp_path / "photo.onnx").read_bytes() == b"someone's file"
    code, _, err = jpegsr_cli("export", "onnx", str(weights), "-o", str(tmp_path / "a.jpg"))
    assert code == 2 and ".onnx" in _one_error_line(err)


def test_benchmark_refuses_outputs_that_would_land_on_files_before_running(tmp_path, jpegsr_cli):
    root = tmp_path / "root"
    (root / "S").mkdir(parents=True)
    img = root / "S" / "a.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(img)
    before = img.read_bytes()
    base = ["benchmark", "--method", "bicubic", "--data-root", str(root), "--sets", "S"]
    for flags, words in ((["--json", str(img)], ".json"), (["--out", str(img)], "folder"),
                         (["--sets", ","], "no set"), (["--tile", "1"], ">= 16")):  # fmt: skip
        code, _, err = jpegsr_cli(*base, *flags)
        assert code in (1, 2) and words in err, err
    assert img.read_bytes() == before
    assert jpegsr_cli(*base, "--json", str(tmp_path / "s.json"))[0] == 0


def test_upscale_suffix_cannot_leave_the_output_folder(tmp_path, jpegsr_cli, monkeypatch):
    src = tmp_path / "a.png"
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(src)
    monkeypatch.chdir(tmp_path)
    for suffix in ("/../../x", "../x", ".."):
        code, _, err = jpegsr_cli("upscale", str(src), "-o", "out", "--suffix", suffix)
        assert code == 2 and "--suffix" in _one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


@pytest.mark.parametrize(
    "argv,words",
    [(["upscale", "a.png", "--threads", "100000"], "1..1024"),
     (["upscale", "a.png", "--tile", "1"], ">= 16"),
     (["upscale", "a.png", "--engine", "ray", "--actors", "100000"], "1..1024"),
     (["upscale", "a.png", "--max-pixels", "99999999999999999999"], "out of range"),
     (["upscale", "a.png", "--threads", "-1"], "must be >= 1"),
     (["serve", "--port", "99999"], "1..65535"),
     (["export", "onnx", "blind", "-o", "x.onnx", "--opset", "999"], "7..20"),
     (["serve", "--max-upload-mb", "nan"], "above 0"),
     (["serve", "--max-upload-mb", "0"], "above 0"),
     (["models", "--scale", "5"], "invalid choice"),
     (["benchmark", "--method", "bicubic", "--quality", "0"], "1..100")],
)  # fmt: skip
def test_option_values_out_of_range_are_usage_errors(argv, words, jpegsr_cli):
    code, _, err = jpegsr_cli(*argv)
    assert code == 2 and words in err.strip().splitlines()[-1]


def test_serve_refuses_a_model_it_cannot_load_before_it_starts(tmp_path, jpegsr_cli):
    code, _, err = jpegsr_cli("serve", "--model", "no_such_model", "--port", "1")
    assert code == 1 and "serving" not in err and "no_such_model" in _one_error_line(err)


def test_validate_refuses_an_empty_image_folder_and_extra_labels(tmp_path, jpegsr_cli):
    (tmp_path / "empty").mkdir()
    code, _, err = jpegsr_cli("validate", "blind", "--images", str(tmp_path / "empty"),
                              "--no-progress", "--out", str(tmp_path / "v"))  # fmt: skip
    assert code == 1 and "no images" in _one_error_line(err)
    code, _, err = jpegsr_cli("validate", "blind", "--label", "a", "--label", "b",
                              "--images", str(tmp_path / "empty"))  # fmt: skip
    assert code == 1 and "--label" in _one_error_line(err)


def test_unexpected_errors_and_os_errors_are_one_line(tmp_path, jpegsr_cli, monkeypatch):
    """Whatever a command raises ends as one line and exit 1; with JPEGSR_TRACEBACK=1 it
    raises (for whoever debugs it)."""
    import jpegsr.cli as cli

    def boom(args):
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(cli, "_cmd_models", boom)
    code, _, err = jpegsr_cli("models")
    assert code == 1 and _one_error_line(err).startswith("jpegsr: error: RuntimeError: first")

    def denied(args):
        raise PermissionError(13, "Permission denied", "results/.x.tmp")

    monkeypatch.setattr(cli, "_cmd_models", denied)
    code, _, err = jpegsr_cli("models")
    assert code == 1 and _one_error_line(err) == (
        "jpegsr: error: Permission denied: results/.x.tmp"
    )
    monkeypatch.setenv(cli.TRACEBACK_ENV, "1")
    monkeypatch.setattr(cli, "_cmd_models", boom)
    with pytest.raises(RuntimeError):
        main(["models"])


def test_invalid_yaml_is_one_line_with_where(tmp_path, jpegsr_cli):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("name: x\nqualities: [10, 20\nmodel: y\n")
    code, _, err = jpegsr_cli("train", str(cfg))
    line = _one_error_line(err)
    assert code == 2 and "invalid YAML at line" in line and str(cfg) in line
