"""The (M) pre-denoisers: the shipped DnCNN, NLM, method names, and the denoiser's training."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors import safe_open

from jpegsr import degrade, denoisers
from jpegsr.benchmark import make_method
from jpegsr.config import ConfigError, DenoiserTrainConfig, TrainConfig, load_config
from jpegsr.data import DataError, transform_grid
from jpegsr.train_denoiser import GrayStore
from jpegsr.weights_io import WeightsError, load_model

REPO = Path(__file__).resolve().parents[1]


def _smooth(h: int = 48, w: int = 40) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy * 3, xx * 4, (yy + xx) * 2], axis=-1).clip(0, 255).astype(np.uint8)


def test_method_names_pick_the_denoiser():
    assert denoisers.split_method("bicubic") == (None, "bicubic")
    assert denoisers.split_method("denoise+bicubic") == ("dncnn", "bicubic")
    assert denoisers.split_method("nlm+w.safetensors") == ("nlm", "w.safetensors")
    assert denoisers.split_method("dncnn+auto") == ("dncnn", "auto")
    with pytest.raises(ValueError, match="unknown pre-denoiser 'bm3d'"):
        denoisers.split_method("bm3d+bicubic")


def test_shipped_dncnn_is_a_deterministic_one_channel_denoiser():
    loaded = denoisers.load_dncnn()
    assert loaded.descriptor.task == "denoise" and loaded.descriptor.in_channels == 1
    with safe_open(str(denoisers.DNCNN_WEIGHTS), "pt") as f:
        meta = f.metadata()
    assert int(meta["iterations"]) > 0 and "gaussian" in meta["noise"]
    img = _smooth()
    a, b = denoisers.dncnn(img, loaded), denoisers.dncnn(img, loaded)
    assert a.shape == img.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    # each channel is denoised on its own: a channel's output depends only on that channel
    swapped = denoisers.dncnn(img[..., ::-1], loaded)
    assert np.array_equal(swapped, a[..., ::-1])


def test_shipped_dncnn_removes_gaussian_noise():
    clean = degrade.imresize(_smooth(96, 80), size=(96, 80))[..., 1]
    rows = denoisers.denoising_psnr(denoisers.load_dncnn(), [clean], sigma=25.0, seed=0)
    assert rows[0]["noisy_psnr"] == pytest.approx(20.17, abs=0.2)  # 20 log10(255 / 25)
    assert rows[0]["denoised_psnr"] > rows[0]["noisy_psnr"] + 6


def test_a_denoiser_file_is_refused_as_an_upscaler(tmp_path):
    with pytest.raises(WeightsError, match="holds a denoiser, not an upscaler"):
        load_model(denoisers.DNCNN_WEIGHTS)
    src = tmp_path / "in.png"
    Image.fromarray(_smooth()).save(src)
    run = subprocess.run(
        [sys.executable, "-m", "jpegsr.cli", "upscale", str(src), "-o", str(tmp_path / "out"),
         "--model", str(denoisers.DNCNN_WEIGHTS)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode != 0 and "holds a denoiser" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("pre", ["denoise", "dncnn", "nlm"])
def test_pre_denoised_bicubic_runs_end_to_end_on_a_tiny_image(pre):
    lq = degrade.jpeg_roundtrip(_smooth(20, 16), 20)
    sr = make_method(f"{pre}+bicubic", 4, 20)(lq)
    plain = make_method("bicubic", 4, 20)(lq)
    assert sr.shape == (80, 64, 3) and sr.dtype == np.uint8
    assert not np.array_equal(sr, plain)


def test_nlm_reduces_jpeg_error_on_a_smooth_image():
    img = _smooth(64, 64)
    lq = degrade.jpeg_roundtrip(img, 10)
    den = denoisers.nlm(lq, 10)
    assert den.shape == lq.shape and den.dtype == np.uint8
    assert np.abs(den.astype(int) - img).mean() < np.abs(lq.astype(int) - img).mean()


def test_nlm_strength_interpolates_between_selected_points():
    assert denoisers.nlm_strength(20) == denoisers.NLM_STRENGTH[20]
    mid = denoisers.nlm_strength(15)
    assert mid[0] == pytest.approx(np.mean([denoisers.NLM_STRENGTH[q][0] for q in (10, 20)]))
    assert denoisers.nlm_strength(5) == denoisers.nlm_strength(10)  # clamped


def test_gray_store_batches_are_reproducible_transformed_crops_with_the_drawn_noise():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (30, 24), dtype=np.uint8),
              rng.integers(0, 256, (20, 36), dtype=np.uint8)]  # fmt: skip
    store = GrayStore(images)
    clean, noisy = store.batch(256, 12, 55.0, seed=4, iteration=9)
    again = store.batch(256, 12, 55.0, seed=4, iteration=9)
    other = store.batch(256, 12, 55.0, seed=4, iteration=10)
    assert clean.shape == noisy.shape == (256, 1, 12, 12)
    assert torch.equal(clean, again[0]) and torch.equal(noisy, again[1])
    assert not torch.equal(clean, other[0])
    # every crop is some transformed window of a stored (upright) image
    grids = transform_grid(12)
    stored = [store.pixels[i].numpy() for i in range(2)]
    for crop in (clean[:20, 0].numpy() * 255).round().astype(np.uint8):
        assert any(
            np.array_equal(crop, img[y + grids[t, ..., 0], x + grids[t, ..., 1]])
            for img, (h, w) in zip(stored, store.sizes, strict=True)
            for y in range(h - 11) for x in range(w - 11) for t in range(8)
        )  # fmt: skip
    # noise strength uniform in [0, 55]: the residual's spread lies in that range
    spread = (noisy - clean).flatten(1).std(dim=1) * 255
    assert float(spread.max()) < 55 * 1.3 and float(spread.min()) >= 0
    assert 18 < float(spread.mean()) < 37
    with pytest.raises(DataError, match="smaller than"):
        store.batch(2, 32, 55.0, seed=0, iteration=0)


def _denoiser_config(tmp_path: Path, **overrides) -> Path:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    cfg = {"name": "dn", "model": "dncnn", "iterations": 6, "train_dirs": [str(folder)],
           "val_count": 1, "patch": 16, "batch_size": 3, "out_dir": str(tmp_path / "runs"),
           "checkpoint_every": 3, "log_every": 1, "threads": 1,
           "optim": {"lr": 1e-3, "schedule": "step", "halve_every": 100000}}  # fmt: skip
    cfg.update(overrides)
    path = tmp_path / f"{cfg['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train(config: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jpegsr.cli", "train", str(config), "--no-progress", *extra],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_denoiser_config_is_chosen_by_the_model_and_checked(tmp_path):
    assert isinstance(load_config(REPO / "configs/dncnn.yaml"), DenoiserTrainConfig)
    assert isinstance(load_config(REPO / "configs/blind.yaml"), TrainConfig)
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(_denoiser_config(tmp_path, qualities=[20]))


def test_denoiser_training_exports_loadable_weights_and_resumes_exactly(tmp_path):
    straight = _train(_denoiser_config(tmp_path))
    assert straight.returncode == 0, straight.stderr
    two = _denoiser_config(tmp_path, name="dn2")
    first = _train(two, "--iterations", "3")
    assert first.returncode == 0, first.stderr
    again = _train(two, "--iterations", "6")
    assert again.returncode != 0 and "--resume" in again.stderr  # never overwrites a run
    resumed = _train(two, "--iterations", "6", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = load_model(tmp_path / "runs/dn/model.safetensors", task="denoise")
    b = load_model(tmp_path / "runs/dn2/model.safetensors", task="denoise")
    assert a.metadata["iterations"] == "6" and a.descriptor.task == "denoise"
    for (name, p), q in zip(a.module.state_dict().items(), b.module.state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(p, q), name
    log = (tmp_path / "runs/dn2/train_log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["1", "2", "3", "4", "5", "6"]


def test_denoiser_training_stopped_by_sigterm_resumes_exactly(tmp_path):
    """SIGTERM: a checkpoint after the iteration it is in, exit 143, and --resume ends where
    an uninterrupted run ends (weights and log)."""
    # the stop lands a few iterations after the poll sees row 6: 150 leaves room even on a
    # fast CPU (a few ms per iteration) and keeps the three runs short on a slow one
    common = {"iterations": 150, "checkpoint_every": 100000}
    straight = _train(_denoiser_config(tmp_path, **common))
    assert straight.returncode == 0, straight.stderr
    cfg = _denoiser_config(tmp_path, name="dn2", **common)
    cmd = [sys.executable, "-m", "jpegsr.cli", "train", str(cfg), "--no-progress"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "runs/dn2/train_log.csv"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) > 6:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "stopped by SIGTERM after iteration" in err, err
    stopped_at = torch.load(tmp_path / "runs/dn2/checkpoint.pt", weights_only=True)["iteration"]
    assert 5 < stopped_at < 150
    resumed = _train(cfg, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = load_model(tmp_path / "runs/dn/model.safetensors", task="denoise").module.state_dict()
    b = load_model(tmp_path / "runs/dn2/model.safetensors", task="denoise").module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [line.split(",")[:2] for line in log.read_text().splitlines()]
    ref = [
        line.split(",")[:2]
        for line in (tmp_path / "runs/dn/train_log.csv").read_text().splitlines()
    ]
    assert rows == ref
