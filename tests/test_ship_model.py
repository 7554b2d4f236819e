"""scripts/ship_model.py: the card's validation line for a run that held no images out, and
its losses and arithmetic as the run had them."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _ship_model():
    spec = importlib.util.spec_from_file_location("ship_model", REPO / "scripts/ship_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _paired(path: Path, candidate: str, reference: str, q20: tuple[float, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    gains = [{"quality": q, "mean_db": 0.001, "se_db": 0.0005, "n": 90} for q in (10, 30, 50)]
    gains.insert(1, {"quality": 20, "mean_db": q20[0], "se_db": q20[1], "n": 90})
    path.write_text(json.dumps({"candidate": candidate, "reference": reference, "gains": gains}))


def test_card_quotes_the_paired_comparison_under_the_config_name_or_a_label(tmp_path, monkeypatch):
    ship_model = _ship_model()
    monkeypatch.chdir(tmp_path)
    config = {"name": "continuing_cpu", "init_from": "blind_photos3", "data": {"val_quality": 20}}
    # a val log wins when the run has one
    line = ship_model.validation_line(config, [{"iteration": "100", "val_psnr": "25.1"}])
    assert "100: 25.1" in line
    # no comparison recorded yet: one clear line naming the command to run
    with pytest.raises(SystemExit, match="--label continuing_cpu --against blind_photos3"):
        ship_model.validation_line(config, [])
    results = Path("results/validation")
    _paired(results / "continuing_cpu_vs_blind_photos3.json", "continuing_cpu", "blind_photos3",
            (0.004, 0.001))  # fmt: skip
    _paired(results / "stretch7_vs_blind_photos3.json", "stretch7", "blind_photos3",
            (0.006, 0.002))  # fmt: skip
    by_name = ship_model.validation_line(config, [])
    assert "q=20 +0.0040 ± 0.0010 dB" in by_name and "continuing_cpu_vs_blind_photos3" in by_name
    by_label = ship_model.validation_line(config, [], "stretch7")
    assert "q=20 +0.0060 ± 0.0020 dB" in by_label and "stretch7_vs_blind_photos3" in by_label
    assert "against `blind_photos3` on 90 validation images" in by_label


def test_card_names_the_losses_and_the_arithmetic_the_run_had():
    ship_model = _ship_model()
    paper = {"recover": 1.0, "sr": 1.0, "cycle": 1.0}
    assert ship_model.loss_phrase(paper) == "L1 losses recover/sr/cycle = 1.0/1.0/1.0"
    l2 = ship_model.loss_phrase({**paper, "norm": "l2", "ssim": 0.1})
    assert l2 == "mean-squared-error losses recover/sr/cycle = 1.0/1.0/1.0, 1 - SSIM on Y x 0.1"
    old = "AMD EPYC (x86_64, 2 cpu), world 1"  # recorded before precision was: bf16
    fp32 = "AMD EPYC (x86_64, 2 cpu, avx2), world 1, fp32"
    assert ship_model.precision_phrase(old, True) == "bf16 autocast"
    assert ship_model.precision_phrase(old, False) == "fp32"
    assert ship_model.precision_phrase(fp32, True) == "fp32"
    mixed = f"{old}: iterations 0-2,408; {fp32}: iterations 2,408-6,000"
    assert ship_model.precision_phrase(mixed, True).startswith("bf16 autocast, fp32 on")
