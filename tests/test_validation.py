"""Validation: paired gains, their standard error, the shipping rule, and `jpegsr validate`."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from jpegsr import models, validation
from jpegsr.cli import main
from jpegsr.validation import (
    PairedGain,
    paired_gains,
    scores_for,
    ship_verdict,
    validation_images,
)
from jpegsr.weights_io import save_weights


def _scores(values: dict[int, list[float]]) -> dict[str, dict[str, float]]:
    n = len(next(iter(values.values())))
    return {f"img{i}": {str(q): v[i] for q, v in values.items()} for i in range(n)}


def test_paired_gain_is_the_mean_difference_with_its_standard_error():
    ref = _scores({20: [20.0, 25.0, 30.0, 35.0]})
    cand = _scores({20: [20.1, 25.3, 30.1, 35.1]})  # differences 0.1, 0.3, 0.1, 0.1
    (g,) = paired_gains(cand, ref, [20])
    d = np.array([0.1, 0.3, 0.1, 0.1])
    assert g.n == 4 and g.mean_db == pytest.approx(0.15)
    assert g.se_db == pytest.approx(d.std(ddof=1) / 2)
    # the scene spread (20..35 dB) does not enter: only the differences do
    assert g.se_db < 0.06
    with pytest.raises(ValueError, match="two images"):
        paired_gains({"a": {"20": 1.0}}, {"a": {"20": 1.0}}, [20])


def test_ship_rule():
    def gains(q20, se20, others):
        return [PairedGain(20, q20, se20, 90)] + [PairedGain(q, m, 0.01, 90) for q, m in others]

    ok, why = ship_verdict(gains(0.05, 0.01, [(10, 0.0), (50, -0.01)]))
    assert ok and "5.0 standard errors" in why
    ok, why = ship_verdict(gains(0.05, 0.03, [(10, 0.1)]))
    assert not ok and "not above 2 standard errors (0.0600 dB)" in why
    ok, why = ship_verdict(gains(0.2, 0.01, [(10, 0.1), (50, -0.03)]))
    assert not ok and "q=50" in why
    assert math.isinf(PairedGain(20, 0.1, 0.0, 3).z)


def test_validation_images_are_sun_hays_and_held_out_training_images(tmp_path):
    for folder, n in (("validation/SunHays80", 3), ("train/BSD200", 12), ("train/T91", 8)):
        (tmp_path / folder).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (32, 32), (i, 0, 0)).save(tmp_path / folder / f"{i:02d}.png")
    paths = validation_images(tmp_path)
    assert [p.parent.name for p in paths[:3]] == ["SunHays80"] * 3
    assert len(paths) == 13 and all(p.parent.name in ("BSD200", "T91") for p in paths[3:])


def _data_root(root, seed=0):
    """A tiny data root: 2 Sun-Hays images and 12 training images, 2 of them held out."""
    rng = np.random.default_rng(seed)
    for folder, n in (("validation/SunHays80", 2), ("train/BSD200", 10), ("train/T91", 2)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{i:02d}.png")


def test_validate_command_scores_caches_and_compares(tmp_path, capsys):
    _data_root(tmp_path)
    weights = []
    for seed in (0, 1):
        torch_model = models.build("two_stage_slwsr16", 4)
        weights.append(tmp_path / f"m{seed}.safetensors")
        save_weights(
            torch_model, "two_stage_slwsr16", 4, weights[-1], extra={"input": "compressed"}
        )
    out = tmp_path / "val"
    args = ["validate", str(weights[0]), "--against", str(weights[1]), "--data-root",
            str(tmp_path), "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "ship rule" in printed and "| 20 |" in printed
    saved = json.loads((out / "m0.json").read_text())
    assert len(saved["scores"]) == 12 and set(saved["scores"]["SunHays80/00.png"]) == {
        "10", "20", "30", "50"}  # fmt: skip
    assert set(saved["ssim_scores"]) == set(saved["scores"])
    assert all(-1 <= v <= 1 for row in saved["ssim_scores"].values() for v in row.values())
    record = json.loads((out / "m0_vs_m1.json").read_text())
    assert record["gains"][0]["n"] == 12 and isinstance(record["ship"], bool)
    assert [g["quality"] for g in record["ssim_gains"]] == [10, 20, 30, 50]
    assert "Y-SSIM, the same images:" in printed
    # cached: a second run reads the scores back instead of measuring again
    stamp = (out / "m0.json").stat().st_mtime_ns
    assert main(args) == 0 and (out / "m0.json").stat().st_mtime_ns == stamp
    # a file from before SSIM was measured is measured again, to the same PSNR
    old = {k: v for k, v in saved.items() if k != "ssim_scores"}
    (out / "m0.json").write_text(json.dumps(old))
    assert main(args) == 0
    again = json.loads((out / "m0.json").read_text())
    assert again["scores"] == saved["scores"] and again["ssim_scores"] == saved["ssim_scores"]
    # a file cut short, or not a scores record, is measured again with one warning, not a crash
    for broken in ('{"weights": "m0", "scor', '["not", "a", "record"]'):
        (out / "m0.json").write_text(broken)
        assert main(args) == 0
        err = capsys.readouterr().err
        assert f"{out / 'm0.json'}: unreadable scores" in err and "Traceback" not in err
        assert json.loads((out / "m0.json").read_text())["scores"] == saved["scores"]
    # --against-label files the reference under another name (the run that made it), and the
    # record cites the whole command
    labelled = [*args, "--label", "cand", "--against-label", "start"]
    assert main(labelled) == 0
    record = json.loads((out / "cand_vs_start.json").read_text())
    assert record["reference"] == "start" and (out / "start.json").is_file()
    assert record["command"].endswith("--label cand --against " + str(weights[1])
                                      + " --against-label start")  # fmt: skip
    capsys.readouterr()
    assert main(["validate", str(weights[0]), "--against-label", "x", "--data-root",
                 str(tmp_path)]) != 0  # fmt: skip
    assert "give --against too" in capsys.readouterr().err
    # a missing data root is one line on stderr, not a traceback
    assert main(["validate", str(weights[0]), "--data-root", str(tmp_path / "nope")]) != 0
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err


def test_validate_on_another_image_folder(tmp_path, capsys):
    """--images scores that folder's images (e.g. the extra photos' holdout) into their own
    results folder, leaving the standard set's scores alone."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "holdout"
    folder.mkdir()
    for i in range(3):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i}.png")
    assert validation_images(tmp_path / "unused", folder) == sorted(folder.glob("*.png"))
    weights = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        weights.append(tmp_path / f"m{seed}.safetensors")
        save_weights(models.build("two_stage_slwsr16", 4), "two_stage_slwsr16", 4,
                     weights[-1], extra={"input": "compressed"})  # fmt: skip
    out = tmp_path / "val"
    args = ["validate", str(weights[0]), "--against", str(weights[1]), "--images", str(folder),
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert "on 3 validation images" in capsys.readouterr().out
    saved = json.loads((out / "m0.json").read_text())
    assert list(saved["scores"]) == ["holdout/p0.png", "holdout/p1.png", "holdout/p2.png"]
    record = json.loads((out / "m0_vs_m1.json").read_text())
    assert record["command"].endswith(f"--images {folder}") and record["gains"][0]["n"] == 3


def test_scores_for_measures_only_the_qualities_its_file_lacks(tmp_path, monkeypatch):
    """`--model auto`'s selection (q 10..90) extends the files `jpegsr validate` keeps
    (q 10/20/30/50) instead of measuring them again."""
    _data_root(tmp_path, seed=2)
    weights = tmp_path / "m.safetensors"
    save_weights(models.build("two_stage_slwsr16", 4), "two_stage_slwsr16", 4, weights,
                 extra={"input": "compressed"})  # fmt: skip
    out = tmp_path / "val"
    first = scores_for(str(weights), "m", tmp_path, out, False, qualities=(10, 20))
    measured = []
    real_score = validation.score

    def counting_score(loaded, paths, qualities, on_image=None):
        measured.append(list(qualities))
        return real_score(loaded, paths, qualities, on_image)

    monkeypatch.setattr(validation, "score", counting_score)
    second = scores_for(str(weights), "m", tmp_path, out, False, qualities=(10, 40, 20))
    assert measured == [[40]]
    saved = json.loads((out / "m.json").read_text())
    assert list(saved["scores"]["SunHays80/00.png"]) == ["10", "20", "40"]
    for image, row in first.psnr.items():
        assert {q: second.psnr[image][q] for q in ("10", "20")} == row
        assert 0 < second.psnr[image]["40"] < 100 and -1 <= second.ssim[image]["40"] <= 1
    # everything asked for is in the file now: nothing is measured
    scores_for(str(weights), "m", tmp_path, out, False, qualities=(40,))
    assert measured == [[40]]
    # other weights under the same label are measured afresh, at the qualities asked
    torch.manual_seed(5)
    save_weights(models.build("two_stage_slwsr16", 4), "two_stage_slwsr16", 4, weights,
                 extra={"input": "compressed"})  # fmt: skip
    scores_for(str(weights), "m", tmp_path, out, False, qualities=(10, 20))
    assert measured == [[40], [10, 20]]
    assert list(json.loads((out / "m.json").read_text())["scores"]["T91/00.png"]) == ["10", "20"]


def test_auto_selection_script_reports_a_missing_data_root_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "select_auto_models.py"
    done = subprocess.run([sys.executable, str(script), "--data-root", str(tmp_path / "nope")],
                          capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"error: image folder not found: {tmp_path / 'nope'}/train/BSD200"
    assert not (tmp_path / "results").exists()  # nothing written
