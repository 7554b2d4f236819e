"""Training: config validation, losses on known tensors, batches, exact resume, torchrun."""

import csv
import os
import shutil
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

from jpegsr import degrade, models
from jpegsr.config import ConfigError, LossConfig, TrainConfig, from_dict, load_config
from jpegsr.data import (
    DataError,
    Triplet,
    TripletStore,
    build_triplets,
    list_images,
    split_train_val,
    to_unit_float,
)
from jpegsr.losses import TwoStageLoss
from jpegsr.train import learning_rate, load_data
from jpegsr.weights_io import load_model, save_weights

REPO = Path(__file__).resolve().parents[1]


def _images(folder: Path, n: int = 8, size: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        f = rng.uniform(0.05, 0.3, 3)
        img = 127 + 100 * np.stack([np.sin(f[c] * (xx + i * yy)) for c in range(3)], -1)
        Image.fromarray(img.astype(np.uint8)).save(folder / f"img{i:02d}.png")
    return folder


def _tiny_config(tmp_path: Path, name: str, **overrides) -> Path:
    cfg = {
        "name": name,
        "model": "two_stage_slwsr16",
        "iterations": 24,
        "batch_size": 2,
        "out_dir": str(tmp_path / "runs"),
        "checkpoint_every": 4,
        "val_every": 12,
        "log_every": 1,
        "threads": 1,
        "data": {
            "train_dirs": [str(_images(tmp_path / "data"))],
            "lr_patch": 8,
            "val_count": 2,
            "qualities": [20, 50],
        },
        "optim": {"lr": 2e-4, "schedule": "cosine", "warmup": 3, "ema_decay": 0.9},
    }
    cfg.update(overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_config_rejects_unknown_and_mistyped_keys(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(TrainConfig, {"name": "a", "model": "m", "iterations": 1, "itrations": 2})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(TrainConfig, {"name": "a", "model": "m", "iterations": 1, "optim": {"lrr": 1}})
    with pytest.raises(ConfigError, match="expected int"):
        from_dict(TrainConfig, {"name": "a", "model": "m", "iterations": "ten"})
    with pytest.raises(ConfigError, match="not one of"):
        from_dict(TrainConfig, {"name": "a", "model": "m", "iterations": 1,
                                "optim": {"schedule": "linear"}})  # fmt: skip
    with pytest.raises(ConfigError, match="missing"):
        from_dict(TrainConfig, {"name": "a"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)


def test_shipped_configs_load():
    paths = sorted((REPO / "configs").rglob("*.yaml"))
    assert len(paths) >= 7  # the default and the six Table 1 rows
    for path in paths:
        assert load_config(path).iterations > 0


def test_loss_on_known_offsets():
    lr = torch.rand(2, 3, 8, 8)
    hr_np = degrade.resize_float(lr[0].permute(1, 2, 0).double().numpy(), (32, 32))
    hr = torch.from_numpy(hr_np).permute(2, 0, 1)[None].float().repeat(2, 1, 1, 1)
    lr = degrade.imresize_torch(hr, (8, 8))  # so that down(hr) == lr exactly
    loss = TwoStageLoss(LossConfig(recover=1.0, sr=2.0, cycle=3.0))
    total, terms = loss(lr + 0.2, hr + 0.1, lr, hr)
    # bicubic weights sum to one, so down(hr + 0.1) = lr + 0.1
    assert float(terms["recover"]) == pytest.approx(0.2, abs=1e-5)
    assert float(terms["sr"]) == pytest.approx(0.1, abs=1e-5)
    assert float(terms["cycle"]) == pytest.approx(0.1, abs=1e-5)
    assert float(total) == pytest.approx(0.2 + 0.2 + 0.3, abs=1e-5)
    total, terms = TwoStageLoss(LossConfig(cycle=0.0))(None, hr, lr, hr)
    assert set(terms) == {"sr"} and float(total) == 0.0
    # norm l2: the same offsets, squared (a constant offset d has mean squared error d^2)
    loss = TwoStageLoss(LossConfig(recover=1.0, sr=2.0, cycle=3.0, norm="l2"))
    total, terms = loss(lr + 0.2, hr + 0.1, lr, hr)
    assert float(terms["recover"]) == pytest.approx(0.04, abs=1e-5)
    assert float(terms["sr"]) == pytest.approx(0.01, abs=1e-5)
    assert float(terms["cycle"]) == pytest.approx(0.01, abs=1e-5)
    assert float(total) == pytest.approx(0.04 + 0.02 + 0.03, abs=1e-5)
    with pytest.raises(ConfigError, match="norm"):
        from_dict(LossConfig, {"norm": "l3"})


def test_ssim_term_is_one_minus_the_benchmark_ssim_on_y_and_trains():
    """loss.ssim: 1 - SSIM on Y with the benchmark's window and constants (so on uint8 images
    it equals 1 - metrics.ssim), zero for identical images, differentiable, weighted."""
    from jpegsr.losses import ssim_y_loss
    from jpegsr.metrics import ssim

    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255

    assert float(ssim_y_loss(t(b), t(a))) == pytest.approx(1 - ssim(b, a), abs=1e-5)
    assert float(ssim_y_loss(t(a), t(a))) == pytest.approx(0.0, abs=1e-6)
    sr = t(b).requires_grad_()
    lr = degrade.imresize_torch(t(a), (10, 10))
    total, terms = TwoStageLoss(LossConfig(recover=0.0, cycle=0.0, ssim=0.5))(None, sr, lr, t(a))
    assert set(terms) == {"sr", "ssim"}
    expected = float(terms["sr"]) + 0.5 * float(terms["ssim"])
    assert float(total.detach()) == pytest.approx(expected, abs=1e-6)
    total.backward()
    assert sr.grad is not None and torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0
    _, plain = TwoStageLoss(LossConfig())(None, t(b), lr, t(a))
    assert "ssim" not in plain  # off by default: the paper's recipe


def test_learning_rate_schedules():
    cfg = from_dict(TrainConfig, {"name": "a", "model": "m", "iterations": 100,
                                  "optim": {"lr": 1e-3, "halve_every": 10}}).optim  # fmt: skip
    assert learning_rate(cfg, 0, 100) == 1e-3
    assert learning_rate(cfg, 25, 100) == pytest.approx(2.5e-4)
    cos = from_dict(TrainConfig, {"name": "a", "model": "m", "iterations": 100,
                                  "optim": {"lr": 1e-3, "schedule": "cosine", "warmup": 10,
                                            "min_lr": 0.0}}).optim  # fmt: skip
    assert learning_rate(cos, 0, 100) == pytest.approx(1e-4)
    assert learning_rate(cos, 10, 100) == pytest.approx(1e-3)
    assert learning_rate(cos, 55, 100) == pytest.approx(5e-4)
    assert learning_rate(cos, 100, 100) == pytest.approx(0.0, abs=1e-12)


def _reference_crop(a: np.ndarray, y: int, x: int, p: int, t: int) -> np.ndarray:
    """The slow, obvious crop + transform (numbered 2 * quarter_turns + flip)."""
    out = np.rot90(a[y : y + p, x : x + p], t // 2)
    return out[:, ::-1] if t % 2 else out


def test_store_crops_equal_the_reference_crops(tmp_path):
    paths = list_images(_images(tmp_path / "d", n=4))
    train, val = split_train_val(paths, 1)
    assert len(train) == 3 and len(val) == 1 and not set(train) & set(val)
    triplets = build_triplets(train, 4, [20, 50], min_lr_side=8)
    store = TripletStore(triplets, 4)
    plan = store.plan(64, 8, seed=1, iteration=7)
    assert set(plan.transform) == set(range(8)) and set(plan.quality) == {0, 1}
    got = {k: v.permute(0, 2, 3, 1).numpy() for k, v in store.cut(plan, 8).items()}
    assert got["lq"].shape == got["lr"].shape == (64, 8, 8, 3)
    assert got["hr"].shape == (64, 32, 32, 3) and got["hr"].dtype == np.uint8
    for i in range(64):
        t = triplets[plan.image[i]]
        y, x, k = int(plan.y[i]), int(plan.x[i]), int(plan.transform[i])
        lq = t.compressed[[20, 50][plan.quality[i]]]
        assert np.array_equal(got["lq"][i], _reference_crop(lq, y, x, 8, k))
        assert np.array_equal(got["lr"][i], _reference_crop(t.lr, y, x, 8, k))
        assert np.array_equal(got["hr"][i], _reference_crop(t.hr, 4 * y, 4 * x, 32, k))


def test_store_batches_are_aligned_reproducible_and_channels_last(tmp_path):
    folder = _images(tmp_path / "d", n=3, size=64)
    Image.fromarray(np.asarray(Image.open(folder / "img00.png"))[:, :40]).save(folder / "tall.png")
    Image.fromarray(np.asarray(Image.open(folder / "img01.png"))[:40]).save(folder / "wide.png")
    triplets = build_triplets(list_images(folder), 4, [20], min_lr_side=8)
    store = TripletStore(triplets, 4)
    assert store.lr.shape == (5, 16, 16, 3)  # 16 x 10 (turned) and 10 x 16 fit 16 x 16
    assert sorted(map(tuple, store.sizes.tolist())) == [(10, 16), (10, 16), (16, 16), (16, 16),
                                                        (16, 16)]  # fmt: skip
    a = store.batch(32, 8, seed=1, iteration=7)
    b = store.batch(32, 8, seed=1, iteration=7)
    c = store.batch(32, 8, seed=1, iteration=8)
    d = store.batch(32, 8, seed=1, iteration=7, rank=1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["hr"], c["hr"]) and not torch.equal(a["hr"], d["hr"])
    assert a["hr"].is_contiguous(memory_format=torch.channels_last)
    f = {k: to_unit_float(v) for k, v in a.items()}
    assert f["hr"].dtype == torch.float32 and float(f["hr"].max()) <= 1.0
    # alignment, turned images included: the clean LR crop is the MATLAB-bicubic downscale of
    # the HR crop (rotation/flip commute with the separable, symmetric resize off the borders)
    for i in range(32):
        hr = a["hr"][i].permute(1, 2, 0).numpy()
        lr = a["lr"][i].permute(1, 2, 0).numpy().astype(np.int64)
        down = degrade.imresize(hr, size=(8, 8)).astype(np.int64)
        assert np.abs(down[2:-2, 2:-2] - lr[2:-2, 2:-2]).max() <= 2
    with pytest.raises(DataError, match="smaller than"):
        store.plan(4, 12, seed=0, iteration=0)


def test_quality_weights_oversample_and_are_checked(tmp_path):
    triplets = build_triplets(list_images(_images(tmp_path / "d", n=2)), 4, [10, 20, 50],
                              min_lr_side=8)  # fmt: skip
    uniform = TripletStore(triplets, 4)
    cfg = from_dict(TrainConfig, {"name": "a", "model": "m", "iterations": 1,
                                  "data": {"qualities": [50, 10, 20],
                                           "quality_weights": [1, 6, 1]}})  # fmt: skip
    probs = cfg.data.quality_probabilities()
    assert probs == pytest.approx({50: 0.125, 10: 0.75, 20: 0.125})
    weighted = TripletStore(triplets, 4, quality_probabilities=probs)
    counts = np.bincount(weighted.plan(4000, 8, seed=3, iteration=0).quality, minlength=3)
    assert counts[0] / 4000 == pytest.approx(0.75, abs=0.03)  # quality 10 is index 0
    assert counts[1] / 4000 == pytest.approx(0.125, abs=0.03)
    # a weighted plan is as reproducible as a uniform one; uniform plans are unchanged by
    # the feature (same draws as before it existed: image, then quality, ...)
    a = weighted.plan(16, 8, seed=3, iteration=5)
    assert np.array_equal(a.quality, weighted.plan(16, 8, seed=3, iteration=5).quality)
    rng = np.random.default_rng([3, 5, 0])
    rng.integers(len(uniform), size=16)
    assert np.array_equal(uniform.plan(16, 8, seed=3, iteration=5).quality,
                          rng.integers(3, size=16))  # fmt: skip
    with pytest.raises(DataError, match="exactly the stored qualities"):
        TripletStore(triplets, 4, quality_probabilities={10: 1.0, 20: 1.0})
    for bad in ([1, 2], [1, -1, 1], [0, 0, 0]):
        with pytest.raises(ConfigError, match="quality_weights"):
            from_dict(TrainConfig, {"name": "a", "model": "m", "iterations": 1,
                                    "data": {"qualities": [10, 20, 50],
                                             "quality_weights": bad}})  # fmt: skip
    with pytest.raises(ConfigError, match="repeated"):
        from_dict(TrainConfig, {"name": "a", "model": "m", "iterations": 1,
                                "data": {"qualities": [20, 20]}})  # fmt: skip


def _losses(log: Path) -> list[tuple[str, ...]]:
    with log.open() as f:
        return [(r["iteration"], r["loss"], r["sr"], r["recover"], r["cycle"])
                for r in csv.DictReader(f)]  # fmt: skip


def _train_cmd(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jpegsr.cli", "train", str(config), "--no-progress", *extra]


def _wait_past_iteration_10(proc: subprocess.Popen, run_dir: Path) -> None:
    """Wait until a training process has logged past iteration 10, still running."""
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        log = run_dir / "train_log.csv"
        if log.exists() and len(log.read_text().splitlines()) > 11:  # past iteration 10
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be interrupted"


def test_resume_after_kill_gives_identical_losses(tmp_path):
    ref_cfg = _tiny_config(tmp_path, "ref")
    subprocess.run(_train_cmd(ref_cfg), check=True, cwd=tmp_path)
    cfg = _tiny_config(tmp_path, "killed")
    run_dir = tmp_path / "runs" / "killed"
    proc = subprocess.Popen(_train_cmd(cfg), cwd=tmp_path)
    _wait_past_iteration_10(proc, run_dir)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # without --resume an existing run is refused, nothing is overwritten
    refused = subprocess.run(_train_cmd(cfg), cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode != 0 and "--resume" in refused.stderr
    subprocess.run(_train_cmd(cfg, "--resume"), check=True, cwd=tmp_path)
    ref = _losses(tmp_path / "runs" / "ref" / "train_log.csv")
    got = _losses(run_dir / "train_log.csv")
    assert len(ref) == 24
    assert got == ref
    a = load_model(tmp_path / "runs" / "ref" / "model.safetensors").module.state_dict()
    killed = load_model(run_dir / "model.safetensors")
    b = killed.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # resumed on the same machine: one machine, named as for the run that never stopped
    ref_machine = load_model(tmp_path / "runs" / "ref" / "model.safetensors").metadata["machine"]
    assert killed.metadata["machine"] == ref_machine and "iterations" not in ref_machine


def test_export_checkpoint_marks_partial_weights_with_the_checkpoints_machines(tmp_path):
    """scripts/export_checkpoint.py: a cut-short run's checkpoint becomes weights marked
    partial, with the iterations reached and the machines the checkpoint records."""
    cfg = _tiny_config(tmp_path, "cut", iterations=8)
    subprocess.run(_train_cmd(cfg), check=True, cwd=tmp_path)
    run_dir = tmp_path / "runs" / "cut"
    finished = load_model(run_dir / "model.safetensors").metadata
    (run_dir / "model.safetensors").unlink()
    script = [sys.executable, str(REPO / "scripts/export_checkpoint.py"), str(cfg)]
    subprocess.run(script, check=True, cwd=tmp_path, capture_output=True)
    exported = load_model(run_dir / "model.safetensors").metadata
    assert exported["iterations"] == "8" and exported["partial"].startswith("true")
    assert exported["machine"] == finished["machine"]


def test_a_run_resumed_elsewhere_names_each_machine_and_its_iterations():
    from jpegsr.train import describe_spans, with_span

    spans = with_span([], "Intel Xeon (x86_64, 2 cpu), world 1", 0, 1000)
    spans = with_span(spans, "Intel Xeon (x86_64, 2 cpu), world 1", 1000, 5000)
    assert describe_spans(spans) == "Intel Xeon (x86_64, 2 cpu), world 1"
    spans = with_span(spans, "AMD EPYC (x86_64, 2 cpu), world 1", 5000, 20000)
    assert describe_spans(spans) == (
        "Intel Xeon (x86_64, 2 cpu), world 1: iterations 0-5,000; "
        "AMD EPYC (x86_64, 2 cpu), world 1: iterations 5,000-20,000"
    )
    # a checkpoint from before machines were recorded says so for its iterations
    legacy = with_span([["machine not recorded", 0, 2000]], "AMD EPYC", 2000, 3000)
    assert describe_spans(legacy) == (
        "machine not recorded: iterations 0-2,000; AMD EPYC: iterations 2,000-3,000"
    )


def test_bf16_is_asked_for_but_trains_in_fp32_where_the_device_lacks_it(monkeypatch, capsys):
    """A CPU with only AVX2 emulates bf16 about ten times slower than fp32: ``bf16: true``
    then trains in fp32, says so once, and the machine string records the arithmetic."""
    from jpegsr import train as training

    config = {"name": "p", "model": "two_stage_slwsr16", "iterations": 1}
    asked = from_dict(TrainConfig, config)
    monkeypatch.setattr(training, "bf16_is_fast", lambda device: False)
    got = training.native_precision(asked)
    assert asked.bf16 and not got.bf16
    assert "training in fp32" in capsys.readouterr().err
    assert training.machine_description(got).endswith("world 1, fp32")
    monkeypatch.setattr(training, "widest_isa", lambda: "avx2")
    assert "cpu, avx2), world 1, fp32" in training.machine_description(got)
    monkeypatch.setattr(training, "bf16_is_fast", lambda device: True)
    assert training.native_precision(asked) is asked
    assert training.machine_description(asked).endswith("world 1, bf16")
    assert capsys.readouterr().err == ""
    off = from_dict(TrainConfig, config | {"bf16": False})
    assert training.native_precision(off) is off  # fp32 asked for: nothing to say


def test_a_run_in_fp32_for_want_of_bf16_keeps_the_asked_config(tmp_path, monkeypatch):
    """The run folder's config.yaml keeps ``bf16: true`` as asked (a resume elsewhere decides
    afresh); the exported weights' machine line says the run was fp32."""
    from jpegsr import train as training

    monkeypatch.setattr(training, "bf16_is_fast", lambda device: False)
    config = load_config(_tiny_config(tmp_path, "nobf16", iterations=2, val_every=1000))
    weights = training.train(config, progress=False)
    kept = yaml.safe_load((weights.parent / "config.yaml").read_text())
    assert kept["bf16"] is True
    assert load_model(weights).metadata["machine"].endswith("world 1, fp32")


def test_a_signal_stops_training_with_a_checkpoint_where_it_stopped(tmp_path):
    """Ctrl-C (SIGINT) or SIGTERM: the run saves a checkpoint after the iteration it is in
    (not only at the last periodic one), says so in one line, exits 128 + the signal, and
    --resume then ends exactly where an uninterrupted run ends."""
    ref_cfg = _tiny_config(tmp_path, "ref", checkpoint_every=1000)
    subprocess.run(_train_cmd(ref_cfg), check=True, cwd=tmp_path, capture_output=True)
    ref = _losses(tmp_path / "runs" / "ref" / "train_log.csv")
    a = load_model(tmp_path / "runs" / "ref" / "model.safetensors").module.state_dict()
    for sig in (signal.SIGINT, signal.SIGTERM):
        cfg = _tiny_config(tmp_path, sig.name, checkpoint_every=1000)
        run_dir = tmp_path / "runs" / sig.name
        proc = subprocess.Popen(_train_cmd(cfg), cwd=tmp_path, stderr=subprocess.PIPE, text=True)
        _wait_past_iteration_10(proc, run_dir)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 128 + sig, err
        state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
        stopped_at = int(state["iteration"])
        assert 10 < stopped_at < 24 and not (run_dir / "model.safetensors").exists()
        notice = "no native bf16"  # on a CPU without bf16 the run first says it trains in fp32
        assert [line for line in err.strip().splitlines() if notice not in line] == [
            f"jpegsr: train: stopped by {sig.name} after iteration {stopped_at}; checkpoint "
            f"saved in {run_dir} (the same command with --resume "
            "continues exactly)"
        ]
        subprocess.run(_train_cmd(cfg, "--resume"), check=True, cwd=tmp_path, capture_output=True)
        assert _losses(run_dir / "train_log.csv") == ref
        b = load_model(run_dir / "model.safetensors").module.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_stop_request_leaves_signals_alone_where_it_cannot_stop_cleanly():
    """Off for distributed ranks and outside the main thread (Python only delivers signals
    there): the handlers stay as they were; on, it restores them when the loop ends."""
    import threading

    from jpegsr.train import StopRequest

    before = signal.getsignal(signal.SIGINT)
    with StopRequest(enabled=False) as off:
        assert not off.enabled and signal.getsignal(signal.SIGINT) is before
    seen = []
    worker = threading.Thread(target=lambda: seen.append(StopRequest().enabled))
    worker.start()
    worker.join()
    assert seen == [False]
    with StopRequest() as on:
        assert signal.getsignal(signal.SIGTERM) == on._handle
    assert signal.getsignal(signal.SIGINT) is before


def test_torchrun_two_ranks(tmp_path):
    cfg = _tiny_config(tmp_path, "ddp", iterations=6, threads=0)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "jpegsr.cli", "train", str(cfg), "--no-progress"]  # fmt: skip
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    run_dir = tmp_path / "runs" / "ddp"
    assert [r[0] for r in _losses(run_dir / "train_log.csv")] == [str(i) for i in range(1, 7)]
    loaded = load_model(run_dir / "model.safetensors")
    assert ", world 2, " in loaded.metadata["machine"]


def test_scale_augmentation_adds_smaller_copies_and_skips_too_small_ones(tmp_path):
    paths = list_images(_images(tmp_path / "d", n=2, size=64))  # LR side 16 at x4
    plain = build_triplets(paths, 4, [20], min_lr_side=8)
    more = build_triplets(paths, 4, [20], min_lr_side=8, hr_scales=[1.0, 0.75, 0.25])
    # 0.75 -> 48 px HR (12 px LR) is kept; 0.25 -> 16 px HR (4 px LR) is under min_lr_side
    assert len(plain) == 2 and len(more) == 4
    shrunk = [t for t in more if t.hr.shape[0] == 48]
    assert len(shrunk) == 2 and all(t.lr.shape[:2] == (12, 12) for t in shrunk)
    assert np.array_equal(more[0].hr, plain[0].hr)  # factor 1.0 is the image itself
    with pytest.raises(DataError, match="hr_scales"):
        build_triplets(paths, 4, [20], min_lr_side=8, hr_scales=[1.5])


def test_device_is_checked(tmp_path, capsys):
    with pytest.raises(ConfigError, match="device"):
        load_config(_tiny_config(tmp_path, "gpu", device="gpu"))
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: training on it is not an error here")
    from jpegsr.cli import main

    assert main(["train", str(_tiny_config(tmp_path, "c", device="cuda"))]) == 2
    err = capsys.readouterr().err
    assert "no GPU" in err and len(err.strip().splitlines()) == 1


def _plain_and_fixed_steps(tmp_path, device: str):
    """Six updates of the plain step and of cuda_graph's fixed-tensor step from one init."""
    from jpegsr.train_step import TrainStep

    triplets = build_triplets(list_images(_images(tmp_path / "d", n=3)), 4, [20], min_lr_side=8)
    store = TripletStore(triplets, 4, device)
    steps = {}
    for graph in (False, True):
        cfg = from_dict(TrainConfig, {"name": "a", "model": "two_stage_slwsr16", "iterations": 6,
                                      "cuda_graph": graph, "bf16": False, "device": device,
                                      "optim": {"lr": 1e-3, "ema_decay": 0.9}})  # fmt: skip
        torch.manual_seed(0)
        step = TrainStep(models.build("two_stage_slwsr16", 4), cfg)
        losses = [step(store.batch(4, 8, seed=0, iteration=it), 1e-3 / (1 + it), it).loss
                  for it in range(6)]  # fmt: skip
        steps[graph] = (step, torch.stack(losses).cpu())
    return steps[False], steps[True]


def _assert_same_updates(plain, a, fixed, b, rtol: float) -> None:
    assert a[0] == b[0]  # the first loss precedes any update
    torch.testing.assert_close(a, b, rtol=rtol, atol=1e-7)
    for p, q in zip(plain.model.parameters(), fixed.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=10 * rtol, atol=1e-6)
    for p, q in zip(plain.ema.parameters(), fixed.ema.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=10 * rtol, atol=1e-6)
    init = models.build("two_stage_slwsr16", 4).parameters()
    moved = max(float((p.cpu() - q).detach().abs().max()) for p, q in
                zip(plain.model.parameters(), init, strict=True))  # fmt: skip
    assert moved > 1e-4  # the runs did train
    assert float(fixed.optimizer.param_groups[0]["lr"]) == pytest.approx(1e-3 / 6)


def test_fixed_tensor_step_for_cuda_graphs_matches_the_plain_step(tmp_path):
    """cuda_graph's step (batch, lr and EMA weight in fixed tensors refilled each call; on a
    CPU it runs eagerly) makes the same updates as the plain step."""
    (plain, a), (fixed, b) = _plain_and_fixed_steps(tmp_path, "cpu")
    # equal up to float32 rounding: the fixed learning rate is a float32 tensor, the plain
    # one a Python float
    _assert_same_updates(plain, a, fixed, b, rtol=1e-5)


def test_train_only_trains_the_named_part_and_leaves_the_rest_as_loaded(tmp_path):
    """optim.train_only: Adam holds only the named parameters, the others (and their EMA)
    do not move; a prefix that names nothing is refused."""
    from jpegsr.train_step import TrainStep

    triplets = build_triplets(list_images(_images(tmp_path / "d", n=3)), 4, [20], min_lr_side=8)
    store = TripletStore(triplets, 4, "cpu")
    cfg = from_dict(TrainConfig, {"name": "a", "model": "two_stage_slwsr16", "iterations": 3,
                                  "bf16": False, "optim": {"lr": 1e-3, "ema_decay": 0.9,
                                                           "train_only": ["stage2."]}})  # fmt: skip
    torch.manual_seed(0)
    model = models.build("two_stage_slwsr16", 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step = TrainStep(model, cfg)
    trained = {id(p) for p in step.model.stage2.parameters()}
    adam = [p for g in step.optimizer.param_groups for p in g["params"]]
    assert adam and {id(p) for p in adam} == trained
    for it in range(3):
        step(store.batch(4, 8, seed=0, iteration=it), 1e-3, it)
    for states in (step.model.state_dict(), step.ema.state_dict()):
        for k, v in states.items():
            assert torch.equal(v, before[k]) != k.startswith("stage2."), k
    bad = from_dict(TrainConfig, {"name": "a", "model": "two_stage_slwsr16", "iterations": 3,
                                  "optim": {"train_only": ["coarse."]}})  # fmt: skip
    with pytest.raises(ConfigError, match="no parameter of the model starts with 'coarse.'"):
        TrainStep(models.build("two_stage_slwsr16", 4), bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (a lent one)")
def test_cuda_graph_is_captured_and_replays_the_plain_step_on_a_gpu(tmp_path):
    """On a GPU the step really is captured (Adam capturable, no fallback to eager) and its
    replays make the plain step's updates."""
    (plain, a), (fixed, b) = _plain_and_fixed_steps(tmp_path, "cuda")
    assert fixed._graph is not None and not fixed._graph_failed
    _assert_same_updates(plain, a, fixed, b, rtol=1e-4)


def test_cuda_graph_needs_a_gpu_and_one_eager_process(tmp_path, capsys):
    from jpegsr.cli import main

    assert main(["train", str(_tiny_config(tmp_path, "g", cuda_graph=True))]) == 2
    err = capsys.readouterr().err
    assert "cuda_graph needs device: cuda" in err and len(err.strip().splitlines()) == 1


def test_gpu_driver_fits_iterations_to_the_budget(tmp_path):
    """scripts/gpu_train.sh on CPU configs: calibrates, then trains the count it announces."""
    config = _tiny_config(tmp_path, "fit", iterations=5, val_every=1000, log_every=5)
    env = dict(os.environ, PYTHON=sys.executable, CALIB_ITERS="5", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO / "src")
    for cap in ("", "50"):  # a second call must not trip over the first one's calibration runs
        run = subprocess.run(
            ["bash", str(REPO / "scripts" / "gpu_train.sh"), "50", str(config)],
            cwd=tmp_path, env=dict(env, MAX_ITERS=cap), capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        announced = int(run.stdout.split("training ")[1].split()[0])
        weights = tmp_path / "runs" / "gpu" / "fit" / "model.safetensors"
        assert load_model(weights).metadata["iterations"] == str(announced)
        assert announced == 50 if cap else announced >= 100  # MAX_ITERS caps the count
        shutil.rmtree(tmp_path / "runs" / "gpu")


def test_gpu_table1_script_trains_whole_rows_and_packs_them(tmp_path):
    """scripts/gpu_table1.sh on tiny CPU configs: trains the rows one after another, packs
    weights and logs in parts that scripts/table1.sh --unpack puts back; a row projected to
    end past the lease is stopped early and the next row still trained."""
    configs = tmp_path / "configs"
    configs.mkdir()
    for name, iterations in (("row_a", 6), ("row_long", 10**6), ("row_b", 6)):
        src = _tiny_config(tmp_path, name, iterations=iterations, val_every=10**7,
                           checkpoint_every=10**7, log_every=2,
                           out_dir="runs/table1_20k")  # fmt: skip
        src.rename(configs / f"{name}.yaml")
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1",
               TABLE1_CONFIGS=str(configs), OUT=str(tmp_path / "out"))  # fmt: skip
    env["PYTHONPATH"] = str(REPO / "src")
    script = str(REPO / "scripts" / "gpu_table1.sh")
    t0 = time.monotonic()
    run = subprocess.run(["bash", script, "400", "row_a", "row_long", "row_b"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:] + run.stdout[-2000:]
    assert "row_long: " in run.stdout and "past the lease: stopped" in run.stdout
    assert "finished: row_a row_b;" in run.stdout
    assert time.monotonic() - t0 < 300  # the long row was stopped, not waited for
    assert not (tmp_path / "runs/table1_20k/row_long/model.safetensors").exists()
    parts = sorted((tmp_path / "out").glob("table1_20k.tar.gz.part-*"))
    assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    back = tmp_path / "back"
    back.mkdir()
    unpack = subprocess.run(
        ["bash", str(REPO / "scripts" / "table1.sh"), "--unpack", str(tmp_path / "out")],
        cwd=back, capture_output=True, text=True,
    )  # fmt: skip
    assert unpack.returncode == 0, unpack.stderr
    assert sorted(p.name for p in (back / "runs/table1_20k").iterdir()) == ["row_a", "row_b"]
    for name in ("row_a", "row_b"):
        loaded = load_model(back / "runs/table1_20k" / name / "model.safetensors")
        assert loaded.metadata["iterations"] == "6"
        assert (back / "runs/table1_20k" / name / "train_log.csv").exists()
    # too little time for any row: a clear message and a failure, nothing packed
    run = subprocess.run(["bash", script, "41", "row_a"], cwd=tmp_path,
                         env=dict(env, OUT=str(tmp_path / "out2")), capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert run.returncode == 1 and "no row finished in this lease" in run.stdout
    assert not list((tmp_path / "out2").glob("table1_20k.tar.gz*"))


def test_gpu_lease_script_brings_back_weights_and_logs(tmp_path):
    """scripts/gpu_lease.sh on a CPU config (speed rows skipped): what a lease returns."""
    config = _tiny_config(tmp_path, "lease", iterations=5, val_every=1000, log_every=5)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable, CALIB_ITERS="5", OMP_NUM_THREADS="1",
               CONFIG=str(config), BENCH_DEVICE="cpu", SKIP_BENCH="1", OUT=str(out),
               GPU_RUNS=str(tmp_path / "runs" / "gpu"))  # fmt: skip
    run = subprocess.run(["bash", "scripts/gpu_lease.sh", "90"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "train_log.csv", "gpu_lease_log.txt", "config.yaml"} <= names
    assert len(names) <= 8  # what a lease can bring back
    iterations = load_model(out / "model.safetensors").metadata["iterations"]
    assert f"training {iterations} iterations" in (out / "gpu_lease_log.txt").read_text()


def test_tensorboard_scalars_beside_the_csv_logs(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is optional")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _tiny_config(tmp_path, "board", iterations=6, val_every=3, log_every=2)
    subprocess.run(_train_cmd(cfg), check=True, cwd=tmp_path)
    events = EventAccumulator(str(tmp_path / "runs" / "board" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss", "sr", "recover", "cycle", "lr", "val_psnr"} <= tags
    assert [e.step for e in events.Scalars("loss")] == [2, 4, 6]
    assert [e.step for e in events.Scalars("val_psnr")] == [3, 6]


def test_extra_train_dirs_add_training_images_and_keep_the_held_out_split(tmp_path):
    plain = load_config(_tiny_config(tmp_path, "plain"))
    extra_dir = _images(tmp_path / "extra", n=3, size=48)
    data = {**yaml.safe_load(_tiny_config(tmp_path, "x").read_text())["data"],
            "extra_train_dirs": [str(extra_dir)]}  # fmt: skip
    extra = load_config(_tiny_config(tmp_path, "extra", data=data))
    train0, val0 = load_data(plain)
    train1, val1 = load_data(extra)
    assert len(train1) == len(train0) + 3 and len(val1) == len(val0) == 2
    assert all(np.array_equal(a.hr, b.hr) for a, b in zip(val0, val1, strict=True))
    assert {t.hr.shape for t in train1[len(train0) :]} == {(48, 48, 3)}


def test_pack_training_images_is_lossless_and_sizes_what_travels(tmp_path):
    """scripts/pack_training_images.py: WebP copies with the very pixels, the same held-out
    split, and the sum that would travel to a lent GPU against its cap."""
    src = _images(tmp_path / "Tiny", n=12, size=40)
    out = tmp_path / "packed"
    run = subprocess.run([sys.executable, "scripts/pack_training_images.py", str(src), "-o",
                          str(out)], cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "would travel to a lent GPU, of the 64 MiB allowed" in run.stdout
    packed = list_images(out / "Tiny")
    assert [p.stem for p in packed] == [p.stem for p in list_images(src)]
    for a, b in zip(list_images(src), packed, strict=True):
        assert np.array_equal(np.asarray(Image.open(a).convert("RGB")),
                              np.asarray(Image.open(b).convert("RGB")))  # fmt: skip


def test_pack_with_extra_photos_drops_the_held_out_images_and_fits_the_cap(tmp_path):
    """--extra --fit: the extra folder whole, only the training split of the others (their
    held-out images never travel), pixels unchanged, and packed.txt listing what was packed."""
    a, b = _images(tmp_path / "A", n=12, size=40), _images(tmp_path / "B", n=8, size=36)
    extra = _images(tmp_path / "more" / "train", n=3, size=44)
    out = tmp_path / "packed"
    run = subprocess.run([sys.executable, "scripts/pack_training_images.py", str(a), str(b),
                          "--extra", str(extra), "--fit", "-o", str(out)], cwd=REPO,
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "training split: 10 of 10 images fit" in run.stdout
    train, held_out = split_train_val(list_images(a) + list_images(b), 10)
    packed = {(p.parent.name, p.stem) for d in ("A", "B") for p in list_images(out / d)}
    assert packed == {(p.parent.name, p.stem) for p in train}
    assert not packed & {(p.parent.name, p.stem) for p in held_out}
    assert [p.stem for p in list_images(out / "extra" / "train")] == ["img00", "img01", "img02"]
    for src in [*train, *list_images(extra)]:
        sub = "extra/train" if src.parent == extra else src.parent.name
        dst = out / sub / f"{src.stem}.webp"
        assert np.array_equal(np.asarray(Image.open(src).convert("RGB")),
                              np.asarray(Image.open(dst).convert("RGB")))  # fmt: skip
    assert len((out / "packed.txt").read_text().splitlines()) == 13
    assert not (out / ".staging").exists()


def test_fit_without_extras_packs_the_training_split_that_table1_20k_trains_on(tmp_path):
    """--fit alone (Table 1's .gpu_train): the training split only; with val_count 0 a config
    on the pack trains on exactly the images a val_count 10 config on the sources does."""
    from jpegsr.config import load_config

    a, b = _images(tmp_path / "A", n=12, size=40), _images(tmp_path / "B", n=8, size=36)
    out = tmp_path / "packed"
    command = [sys.executable, "scripts/pack_training_images.py", str(a), str(b), "--fit"]
    run = subprocess.run([*command, "-o", str(out)], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "training split: 10 of 10 images fit\n" in run.stdout
    train, _ = split_train_val(list_images(a) + list_images(b), 10)
    packed, none_held = split_train_val(list_images(out / "A") + list_images(out / "B"), 0)
    assert none_held == [] and [p.stem for p in packed] == [p.stem for p in train]
    for row in sorted((REPO / "configs" / "table1_20k").glob("*.yaml")):
        data = load_config(row).data
        assert data.val_count == 0 and all(d.startswith(".gpu_train/") for d in data.train_dirs)


def test_fit_evenly_keeps_the_most_images_spread_over_the_list(tmp_path, repo_script):
    pack = repo_script("scripts/pack_training_images.py")
    files = []
    for i in range(10):
        files.append(tmp_path / f"f{i}")
        files[-1].write_bytes(b"x" * 100)
    assert pack.fit_evenly(files, 1000) == files
    assert pack.fit_evenly(files, 599) == [files[0], files[2], files[4], files[6], files[8]]
    assert pack.fit_evenly(files, 99) == []


def test_train_speed_profile_names_where_the_step_spends_its_time(repo_script):
    """benchmarks/train_speed.py --profile: the eager step's operators by self time, with
    the convolutions (forward and backward) among them, rendered as a table."""
    ts = repo_script("benchmarks/train_speed.py")
    rng = np.random.default_rng(0)
    triplets = []
    for _ in range(2):
        hr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        lr = hr[::4, ::4].copy()
        triplets.append(Triplet(lr=lr, hr=hr, compressed={q: lr for q in ts.QUALITIES}))
    prof = ts.profile_step(TripletStore(triplets, 4), "cpu", 2, 8, bf16=False)
    names = [o["op"] for o in prof["ops"]]
    assert "aten::convolution_backward" in names and 0 < len(names) <= 12
    assert (
        all(0 < o["share"] <= 1 for o in prof["ops"]) and sum(o["share"] for o in prof["ops"]) <= 1
    )
    assert prof["ops"] == sorted(prof["ops"], key=lambda o: -o["ms_per_iter"])
    text = ts.render_profile({"cpu": prof})
    assert "batch 2 x 8 px" in text and "| `aten::convolution_backward` |" in text


def test_train_speed_keeps_each_machines_rows(repo_script):
    """benchmarks/train_speed.py: a run replaces only the rows it remeasured on the same
    machine; another CPU's or GPU's rows of the same shape stay."""
    ts = repo_script("benchmarks/train_speed.py")

    def row(device: str, machine: str, ms: float, compile_: object = False) -> dict:
        return {"device": device, "machine": machine, "compile": compile_, "batch": 16,
                "patch": 48, "ms_per_iter": ms}  # fmt: skip

    old = [
        row("cpu", "Xeon", 510.0),
        row("cuda", "H200", 46.0),
        row("cuda", "H100", 37.0, "default"),
    ]
    merged = ts.merge_rows(old, [row("cpu", "EPYC", 800.0), row("cuda", "H200", 40.0)])
    assert [(r["machine"], r["ms_per_iter"]) for r in merged] == [
        ("EPYC", 800.0),
        ("Xeon", 510.0),
        ("H100", 37.0),
        ("H200", 40.0),
    ]
    # one CPU model name covers chips with and without native bf16: an fp32 row (an AVX2-only
    # EPYC) sits beside the bf16 one (older rows carry no precision: they were bf16)
    fp32 = row("cpu", "EPYC", 4500.0) | {"precision": "fp32"}
    merged = ts.merge_rows(merged, [fp32])
    assert [(r["machine"], ts.precision(r), r["ms_per_iter"]) for r in merged][:3] == [
        ("EPYC", "bf16", 800.0),
        ("EPYC", "fp32", 4500.0),
        ("Xeon", "bf16", 510.0),
    ]


def test_train_speed_marks_targets_under_the_conv_floor(repo_script):
    """benchmarks/train_speed.py: the conv floor is the step's convolution FLOPs over the
    matmul rate, and a target below it is marked as such; one above it is not."""
    ts = repo_script("benchmarks/train_speed.py")

    def row(machine: str, matmul: float) -> dict:
        return {"device": "cpu", "machine": machine, "date": "d", "compile": False,
                "batch": 16, "patch": 48, "ms_per_iter": 500.0, "samples_per_s": 32.0,
                "data_share": 0.01, "conv_tflop_per_iter": 0.3, "conv_tflops": 0.6,
                "matmul_tflops": matmul}  # fmt: skip

    slow, fast = row("slow", 1.0), row("fast", 2.0)
    assert ts.conv_floor_ms(slow) == pytest.approx(300.0)
    assert ts.conv_floor_ms(fast) == pytest.approx(150.0)
    table = [ln for ln in ts.render([slow, fast]).splitlines() if ln.startswith("| cpu |")]
    lines = {ln.split(" | ")[1]: ln for ln in table}
    assert "| 300.0 | <= 250 ms: **no** (under the floor) |" in lines["slow"]
    assert "| 150.0 | <= 250 ms: **no** |" in lines["fast"]
    # emulated bf16 (a CPU without it): the matmul rate rounds to zero, so no ratio, no floor
    emulated = row("avx2", 0.0) | {"ms_per_iter": 44000.0, "samples_per_s": 0.4}
    line = next(ln for ln in ts.render([emulated]).splitlines() if ln.startswith("| cpu |"))
    assert "| 44000.0 | 0.4 | 1.0% | 0.600 | < 0.001 | - | - | <= 250 ms: **no**" in line


def test_widest_isa_tells_chips_of_one_model_name_apart(monkeypatch):
    from jpegsr import perf

    def features(*present: str) -> dict[str, bool]:
        return {f: f in present for f in perf.CPU_FEATURES}

    for present, expected in [
        (("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"), "amx_bf16"),
        (("avx2", "avx512f", "avx512_bf16"), "avx512_bf16"),
        (("avx2", "avx512f"), "avx512f"),
        (("avx2",), "avx2"),
        ((), ""),
    ]:
        monkeypatch.setattr(perf, "cpu_features", lambda p=present: features(*p))
        assert perf.widest_isa() == expected


def test_grow_model_starts_as_its_source_and_refuses_misfits(tmp_path):
    """scripts/grow_model.py: the grown model computes exactly the source's function; a target
    that adds nothing, or has no place for the source's tensors, is refused in one line."""
    source = tmp_path / "source.safetensors"
    torch.manual_seed(0)
    trained = models.build("two_stage_slwsr32", 4)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_weights(trained, "two_stage_slwsr32", 4, source)
    script = [sys.executable, str(REPO / "scripts" / "grow_model.py"), str(source)]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    grown_path = tmp_path / "grown.safetensors"
    run = subprocess.run([*script, "two_stage_slwsr32_coarse", "-o", str(grown_path)], env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    grown = load_model(grown_path)
    assert grown.metadata["jpegsr_arch"] == "two_stage_slwsr32_coarse"
    assert grown.metadata["grown_from"] == str(source)
    x = torch.rand(1, 3, 15, 18)
    with torch.no_grad():
        for a, b in zip(grown.module(x), load_model(source).module(x), strict=True):
            assert torch.equal(a, b)
    for arch, message in (("two_stage_slwsr32", "adds nothing"), ("slwsr32", "no place")):
        out = tmp_path / f"{arch}.safetensors"
        run = subprocess.run([*script, arch, "-o", str(out)], env=env, capture_output=True,
                             text=True)  # fmt: skip
        assert run.returncode == 1 and message in run.stderr and "Traceback" not in run.stderr
        assert not out.exists()


def test_stage_oracle_measures_each_stage(tmp_path):
    """scripts/stage_oracle.py: with Stage I an exact identity, the LR after it equals the JPEG
    input and its correction is zero; Stage II on the clean LR is scored apart from the whole
    model; a single-stage model is refused in one line."""
    _images(tmp_path / "data" / "validation" / "SunHays80", n=2, size=48)
    torch.manual_seed(0)
    model = models.build("two_stage_slwsr16", 4)
    with torch.no_grad():
        model.stage1.tail.weight.zero_()
        model.stage1.tail.bias.zero_()
    weights = tmp_path / "identity_stage1.safetensors"
    save_weights(model, "two_stage_slwsr16", 4, weights)
    out = tmp_path / "oracle.json"
    script = [sys.executable, str(REPO / "scripts" / "stage_oracle.py")]
    common = ["--images", "2", "--data-root", str(tmp_path / "data"), "--json", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    run = subprocess.run([*script, str(weights), *common], env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = yaml.safe_load(out.read_text())  # JSON is YAML
    assert result["images"] == ["SunHays80/img00.png", "SunHays80/img01.png"]
    assert sorted(result["psnr_y_db"]) == ["10", "20", "30", "50"]
    for row in result["psnr_y_db"].values():
        assert row["lr_stage1"] == row["lr_in"] and row["stage1_rms"] == 0.0
        assert row["sr"] != row["sr_from_clean_lr"] and "coarse_rms" not in row
    single = tmp_path / "single.safetensors"
    save_weights(models.build("slwsr16", 4), "slwsr16", 4, single)
    run = subprocess.run([*script, str(single), *common], env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 1 and "not a two-stage model" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_table1_cpu_row_is_its_gpu_row_on_the_cpu():
    """configs/table1_20k_cpu/ holds rows for sessions without a GPU: the same recipe as the
    row of configs/table1_20k/ of the same name, only the device and the output folder differ."""
    import dataclasses

    rows = sorted((REPO / "configs" / "table1_20k_cpu").glob("*.yaml"))
    assert rows
    for row in rows:
        cpu = dataclasses.asdict(load_config(row))
        gpu = dataclasses.asdict(load_config(REPO / "configs" / "table1_20k" / row.name))
        where = (cpu["device"], cpu["cuda_graph"], cpu["out_dir"])
        assert where == ("cpu", False, "runs/table1_20k_cpu")
        for key in ("device", "cuda_graph", "out_dir"):
            cpu.pop(key), gpu.pop(key)
        assert cpu == gpu


def test_denoised_input_feeds_the_benchmarks_dncnn_output_and_trains(tmp_path):
    """input: denoised (the (M) rows, trained on pre-denoised JPEGs as the paper's section
    4.2.2): the network's input is exactly what `dncnn+` feeds it at test time, for training
    and validation alike; clean LR and HR stay as they were; a run trains on it."""
    from jpegsr.denoisers import make_denoiser

    data = {**yaml.safe_load(_tiny_config(tmp_path, "x").read_text())["data"], "qualities": [20]}
    plain = load_config(_tiny_config(tmp_path, "plain", data=data))
    denoised = load_config(_tiny_config(tmp_path, "m", data={**data, "input": "denoised"}))
    (train0, val0), (train1, val1) = load_data(plain), load_data(denoised)
    dncnn = make_denoiser("dncnn")
    for a, b in zip([*train0, *val0], [*train1, *val1], strict=True):
        assert np.array_equal(a.lr, b.lr) and np.array_equal(a.hr, b.hr)
        assert np.array_equal(b.compressed[20], dncnn(a.compressed[20]))
        assert not np.array_equal(b.compressed[20], a.compressed[20])
    model = _tiny_config(tmp_path, "m_run", model="slwsr16", iterations=4, val_every=4,
                         loss={"recover": 0.0, "sr": 1.0, "cycle": 0.0},
                         data={**data, "input": "denoised"})  # fmt: skip
    subprocess.run(_train_cmd(model), check=True, capture_output=True)
    loaded = load_model(tmp_path / "runs" / "m_run" / "model.safetensors")
    assert loaded.metadata["input"] == "denoised" and loaded.metadata["iterations"] == "4"


def test_table1_script_benchmarks_each_row_as_it_was_trained(tmp_path):
    """scripts/table1.sh (a stand-in `jpegsr` records its calls): a clean-trained row is
    benchmarked on the JPEG and, as 'DnCNN at test only', on denoised input; an (M) row
    (*_denoised, trained on denoised input) only on denoised input; then the table is built."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "jpegsr"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "calls.txt"}\n')
    fake.chmod(0o755)
    for row in ("slwsr32_clean", "slwsr32_denoised"):
        (tmp_path / "runs/table1_20k" / row).mkdir(parents=True)
        (tmp_path / "runs/table1_20k" / row / "model.safetensors").write_bytes(b"")
    env = dict(os.environ, BUDGET="20k", PATH=f"{bin_dir}:{os.environ['PATH']}")
    run = subprocess.run(["bash", str(REPO / "scripts" / "table1.sh"), "slwsr32_clean",
                          "slwsr32_denoised"], cwd=tmp_path, env=env, capture_output=True,
                         text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    calls = [c.split() for c in (tmp_path / "calls.txt").read_text().splitlines()]
    benchmarked = {c[c.index("--json") + 1]: c[c.index("--method") + 1] for c in calls[:-1]}
    weights = "runs/table1_20k/{}/model.safetensors"
    assert benchmarked == {
        "results/table1_20k/slwsr32_clean.json": weights.format("slwsr32_clean"),
        "results/table1_20k/slwsr32_clean_M.json": "dncnn+" + weights.format("slwsr32_clean"),
        "results/table1_20k/slwsr32_denoised.json": "dncnn+" + weights.format("slwsr32_denoised"),
    }
    assert calls[-1] == ["report", "table1"]
