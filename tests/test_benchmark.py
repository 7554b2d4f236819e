"""The benchmark command: results on tiny synthetic sets, the JSON/CSV outputs, and errors."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jpegsr import degrade, metrics, models
from jpegsr.cli import main
from jpegsr.weights_io import save_weights

REPO = Path(__file__).resolve().parents[1]

SHARED_BENCH = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "benchmark"


def _set(root: Path, name: str = "Tiny", n: int = 2) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:50, 0:42]
    for i in range(n):
        img = 128 + 90 * np.sin((xx * (i + 1) + yy) / 5.0)[..., None] * rng.uniform(0.5, 1, 3)
        Image.fromarray(img.astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["benchmark", "--no-progress", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_bicubic_on_a_tiny_set_matches_direct_computation(tmp_path, capsys):
    root = tmp_path / "bench"
    folder = _set(root)
    code, out, _ = _run(
        capsys, "--method", "bicubic", "--sets", "Tiny", "--data-root", str(root),
        "--quality", "30", "--json", str(tmp_path / "r.json"), "--out", str(tmp_path / "csv"),
    )  # fmt: skip
    assert code == 0
    expected = []
    for p in sorted(folder.iterdir()):
        lq, _, hr = degrade.degrade(np.asarray(Image.open(p).convert("RGB")), 4, 30)
        sr = degrade.imresize(lq, size=hr.shape[:2])
        expected.append(metrics.psnr(sr, hr, border=4))
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["method"] == "bicubic" and summary["scale"] == 4 and summary["quality"] == 30
    assert summary["sets"]["Tiny"]["n"] == 2
    assert summary["sets"]["Tiny"]["psnr"] == pytest.approx(np.mean(expected), abs=1e-9)
    assert {"pillow", "libjpeg"} <= set(summary["versions"])
    with (tmp_path / "csv" / "Tiny.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == ["im0.png", "im1.png"]
    assert float(rows[0]["psnr"]) == pytest.approx(expected[0], abs=1e-4)
    assert "| bicubic |" in out


def test_denoise_prefix_and_weights_file_methods(tmp_path, capsys):
    root = tmp_path / "bench"
    _set(root, n=1)
    weights = tmp_path / "m.safetensors"
    save_weights(models.build("slwsr16", 4), "slwsr16", 4, weights)
    for method in ("denoise+bicubic", str(weights), f"denoise+{weights}"):
        code, out, _ = _run(capsys, "--method", method, "--sets", "Tiny", "--data-root", str(root))
        assert code == 0, method
        assert f"| {method} |" in out


def test_precision_is_recorded(tmp_path, capsys):
    root = tmp_path / "bench"
    _set(root, n=1)
    weights = tmp_path / "m.safetensors"
    save_weights(models.build("slwsr16", 4), "slwsr16", 4, weights)
    out = {}
    for precision in ("fp32", "bf16"):
        js = tmp_path / f"{precision}.json"
        argv = ["--method", str(weights), "--sets", "Tiny", "--data-root", str(root)]
        code, _, _ = _run(capsys, *argv, "--precision", precision, "--json", str(js))
        assert code == 0
        out[precision] = json.loads(js.read_text())
        assert out[precision]["precision"] == precision
    assert "--precision bf16" in out["bf16"]["command"]
    assert "--precision" not in out["fp32"]["command"]
    p32, p16 = (out[p]["sets"]["Tiny"]["psnr"] for p in ("fp32", "bf16"))
    assert p32 != p16 and abs(p32 - p16) < 0.5


def test_the_models_training_budget_is_recorded(tmp_path, capsys):
    """A model's benchmark JSON repeats how its weights were trained (Table 1 shows it)."""
    root = tmp_path / "bench"
    _set(root, n=1)
    weights = tmp_path / "m.safetensors"
    meta = {
        "run": "r",
        "iterations": "2000",
        "batch_size": "16",
        "lr_patch": "48",
        "wall_seconds": "863",
        "device": "cpu",
        "machine": "x86_64 2 cpu",
        "input": "clean",
    }
    save_weights(models.build("slwsr16", 4), "slwsr16", 4, weights, extra=meta)
    records = {}
    for method in ("bicubic", f"nlm+{weights}"):
        js = tmp_path / "r.json"
        argv = ["--method", method, "--sets", "Tiny", "--data-root", str(root), "--json", str(js)]
        assert _run(capsys, *argv)[0] == 0
        records[method] = json.loads(js.read_text())["training"]
    assert records["bicubic"] is None
    assert records[f"nlm+{weights}"] == {k: v for k, v in meta.items() if k != "input"}


@pytest.mark.parametrize(
    "setup,expected",
    [
        ("missing_root", "data root not found"),
        ("empty", "no images in"),
        ("not_image", "not a readable image"),
        ("missing_set", "not found under"),
        ("bad_method", "no shipped model or weights file"),
    ],
)
def test_errors_are_one_line_and_nonzero(tmp_path, capsys, setup, expected):
    root = tmp_path / "bench"
    (root / "Tiny").mkdir(parents=True)
    method = "bicubic"
    if setup == "missing_root":
        root = tmp_path / "nowhere"
    elif setup == "not_image":
        (root / "Tiny" / "fake.png").write_text("this is not a picture")
    elif setup == "missing_set":
        root = tmp_path
    elif setup == "bad_method":
        _set(tmp_path / "b2")
        root = tmp_path / "b2"
        method = "no_such_model"
    code, _, err = _run(capsys, "--method", method, "--sets", "Tiny", "--data-root", str(root))
    assert code != 0
    assert expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.skipif(not (SHARED_BENCH / "Set5").is_dir(), reason="needs ../shared/datasets")
def test_set5_bicubic_q20_golden(capsys):
    # Independent figure (Pillow bicubic down/up, Pillow JPEG q=20): 25.29 dB; ours, with the
    # MATLAB-style resize, lands on it.
    code, out, _ = _run(
        capsys, "--method", "bicubic", "--sets", "Set5", "--data-root", str(SHARED_BENCH)
    )
    assert code == 0
    assert "| bicubic | 25.29/0.67" in out


def test_auto_method_uses_the_model_upscale_would_pick(tmp_path, capsys, monkeypatch):
    import jpegsr.weights_io as wio

    root = tmp_path / "bench"
    _set(root, n=1)
    shipped = tmp_path / "shipped"
    for name, qs, seed in (("spec", "20", 0), ("wide", "10,30,50,70,90", 1)):
        torch.manual_seed(seed)
        save_weights(models.build("slwsr16", 4), "slwsr16", 4, shipped / f"{name}.safetensors",
                     {"qualities": qs, "input": "compressed"})  # fmt: skip
    monkeypatch.setattr(wio, "SHIPPED_DIR", shipped)
    argv = ["--sets", "Tiny", "--data-root", str(root), "--quality", "60"]
    psnr = {}
    for method in ("auto", "wide", str(shipped / "spec.safetensors")):
        js = tmp_path / "r.json"
        code, _, _ = _run(capsys, "--method", method, *argv, "--json", str(js))
        assert code == 0
        psnr[method] = json.loads(js.read_text())["sets"]["Tiny"]["psnr"]
    assert psnr["auto"] == psnr["wide"] != psnr[str(shipped / "spec.safetensors")]


def test_conv_flops_counts_every_convolution_once():
    from jpegsr.perf import conv_flops

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 2, 1))
    flops = conv_flops(net, torch.zeros(1, 3, 10, 10))
    assert flops == 2 * (3 * 9 * 8 + 8 * 1 * 2) * 100


def test_cpu_features_are_read_not_assumed():
    from jpegsr.perf import CPU_FEATURES, cpu_features

    feats = cpu_features()
    assert list(feats) == list(CPU_FEATURES) and all(isinstance(v, bool) for v in feats.values())
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    assert feats["avx2"] == (" avx2 " in flags.replace("\n", " "))


def test_timed_round_robin_interleaves_the_calls(monkeypatch):
    from jpegsr import perf

    clock = iter(range(1000))  # each perf_counter reading is one tick later
    monkeypatch.setattr(perf.time, "perf_counter", lambda: float(next(clock)))
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    assert perf.timed_round_robin(fns, 3) == {"a": 1.0, "b": 1.0}
    assert calls == ["a", "b"] + ["a", "b"] * 3  # one warm-up each, then rounds


def test_cpu_busy_reads_the_kernels_cpu_times(tmp_path):
    """Two /proc/stat readings a second apart: busy = non-idle over all (idle and iowait are
    idle); a file that is not /proc/stat's shape gives None, not a number."""
    from jpegsr import perf

    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n")
    assert perf._cpu_jiffies(stat) == (150, 1000)
    for text in ("", "intr 1 2 3\n", "cpu  a b c d e\n", "cpu  1 2\n"):
        stat.write_text(text)
        assert perf._cpu_jiffies(stat) is None
    assert perf.cpu_busy(0.01, tmp_path / "missing") is None


def test_cpu_busy_sees_a_process_spinning_beside_it():
    """One busy core of N reads as about 1/N busy: a benchmark run beside a training run is
    marked (a real child process, not a mock)."""
    import os
    import subprocess
    import sys

    from jpegsr import perf

    if perf.cpu_busy(0.01) is None:
        pytest.skip("no /proc/stat here")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = perf.cpu_busy(1.0)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy is not None and 0.8 / (os.cpu_count() or 1) <= busy <= 1.0


def test_speed_rows_measured_on_a_busy_machine_are_marked(repo_script):
    from jpegsr.perf import BUSY_WARNING, measured_label

    assert measured_label("2026-12-08", None) == "2026-12-08"
    assert measured_label("2026-12-08", BUSY_WARNING) == "2026-12-08"
    assert measured_label("2026-12-08", 0.97) == "2026-12-08 (*busy 97%*)"
    train_speed = repo_script("benchmarks/train_speed.py")
    row = {"device": "cpu", "machine": "M", "precision": "fp32", "date": "2026-12-08",
           "matmul_tflops": 0.1, "batch": 16, "patch": 48, "compile": False,
           "ms_per_iter": 5000.0, "samples_per_s": 3.2, "data_share": 0.01,
           "conv_tflop_per_iter": 0.26, "conv_tflops": 0.05}  # fmt: skip
    quiet = train_speed.render([row]).splitlines()[-1]
    busy = train_speed.render([{**row, "cpu_busy": 0.5}]).splitlines()[-1]
    assert "| 2026-12-08 |" in quiet and "| 2026-12-08 (*busy 50%*) |" in busy


def test_machines_table_keeps_each_cpus_row_and_lists_the_benchmark_machine(repo_script):
    """benchmarks/machines.py: a run replaces only its own machine's row; speed.py's machine
    comes from the committed results.json (labelled by its recorded CPU flags), unless this
    script measured it too; the floor is the fused FLOPs at the matmul rate."""
    machines = repo_script("benchmarks/machines.py")

    def row(machine: str, seconds: float) -> dict:
        return {"machine": machine, "measured": "d", "torch": "t", "model": "m",
                "path": "fp32, fused", "seconds": seconds, "repeats": 5,
                "fused_conv_gflop": 300.0, "conv_gflops": 100.0, "matmul_gflops": 150.0,
                "source": "s"}  # fmt: skip

    rows = machines.merge([row("A", 3.0), row("B", 1.0)], row("A", 2.5))
    assert [(r["machine"], r["seconds"]) for r in rows] == [("B", 1.0), ("A", 2.5)]
    assert machines.floor_s(rows[0]) == pytest.approx(2.0)
    speed = json.loads((REPO / "benchmarks" / "results.json").read_text())
    bench = machines.from_speed(speed)
    m = speed["machine"]
    assert bench["machine"].startswith(f"{m['cpu']} (x86_64, {m['cores']} threads, ")
    assert bench["seconds"] == round(speed["paths"][speed["auto_path"]]["seconds"], 3)
    listed = machines.rows_with_speed(rows, speed)
    assert [r["machine"] for r in listed].count(bench["machine"]) == 1 and len(listed) == 3
    mine = row(bench["machine"], 9.0)
    assert machines.rows_with_speed([mine], speed) == [mine]
    table = machines.render(listed).splitlines()
    line = next(ln for ln in table if ln.startswith("| A |"))
    assert "| 2.500 | 5 | 100 | 150 | 0.67 | 2.000 | s |" in line


def test_readme_names_every_cpu_of_the_machines_table():
    from jpegsr.reports import readme

    rows = json.loads((REPO / "benchmarks" / "machines.json").read_text())["rows"]
    text = "\n".join(readme.machines_summary(rows))
    assert rows and all(f"{r['seconds']:.2f} s on {r['machine']}" in text for r in rows)
    assert readme.machines_summary([]) == []


def test_training_profiles_are_kept_per_machine_and_precision(repo_script):
    """benchmarks/train_speed.py --profile: a profile replaces only its own machine's and
    precision's (the AMX CPU's bf16 profile stays beside an AVX2 CPU's fp32 one)."""
    train_speed = repo_script("benchmarks/train_speed.py")

    def prof(machine: str, precision: str, ms: float) -> dict:
        return {"device": "cpu", "machine": machine, "precision": precision, "date": "d",
                "torch": "t", "batch": 16, "patch": 48, "ms_per_iter_profiled": ms,
                "ops": [{"op": "aten::convolution_backward", "calls_per_iter": 120,
                         "ms_per_iter": ms / 2, "share": 0.5}]}  # fmt: skip

    profiles: dict[str, dict] = {}
    runs = (prof("AMX", "bf16", 400.0), prof("AVX2", "fp32", 4000.0), prof("AVX2", "fp32", 3900.0))
    for p in runs:
        profiles[train_speed.profile_key(p)] = p
    assert len(profiles) == 2
    text = train_speed.render_profile(profiles)
    assert "## cpu: AMX, bf16, d, torch t" in text and "## cpu: AVX2, fp32, d" in text
    assert "3900.0 ms per iteration profiled" in text and "4000.0" not in text
    assert "| `aten::convolution_backward` | 120 | 1950.00 | 50% |" in text
