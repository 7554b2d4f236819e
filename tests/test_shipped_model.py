"""The shipped models: loads offline, upscales the README's example, beats bicubic."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jpegsr
from jpegsr import degrade, metrics
from jpegsr.cli import main
from jpegsr.data import list_images, read_rgb

REPO = Path(__file__).resolve().parents[1]
SET5 = REPO.parent / "shared" / "datasets" / "benchmark" / "Set5"


def test_q20_model_is_shipped_with_a_card():
    loaded = jpegsr.load_model("q20")
    assert loaded.descriptor.scale == 4 and loaded.descriptor.two_stage
    assert Path(loaded.source).with_suffix(".md").is_file()
    assert int(loaded.metadata["iterations"]) > 0


def test_the_old_name_default_loads_q20_with_a_warning(tmp_path, capsys):
    with pytest.warns(FutureWarning, match="'default' is now named 'q20'"):
        old = jpegsr.load_model("default")
    assert Path(old.source).name == "q20.safetensors"
    example = str(REPO / "examples" / "astronaut_q20.jpg")
    assert main(["upscale", example, "-o", str(tmp_path), "--model", "default"]) == 0
    err = capsys.readouterr().err
    assert "jpegsr: warning: model 'default' is now named 'q20'\n" in err
    assert "FutureWarning" not in err and (tmp_path / "astronaut_q20.png").is_file()


def test_readme_example_upscales_offline(tmp_path):
    code = main(["upscale", str(REPO / "examples" / "astronaut_q20.jpg"), "-o", str(tmp_path)])
    assert code == 0
    with Image.open(tmp_path / "astronaut_q20.png") as out:
        assert out.size == (1024, 1024) and out.mode == "RGB"


@pytest.mark.skipif(not SET5.is_dir(), reason="needs ../shared/datasets")
@pytest.mark.parametrize(
    "name,quality,min_gain", [("q20", 20, 0.3), ("blind", 50, 0.5), ("blind_long", 10, 0.3)]
)
def test_shipped_model_beats_bicubic_on_set5_images(name, quality, min_gain):
    loaded = jpegsr.load_model(name)
    gains = []
    for path in list_images(SET5)[:3]:
        lq, _, hr = degrade.degrade(read_rgb(path), 4, quality)
        sr = jpegsr.upscale(lq, model=loaded)
        bic = degrade.imresize(lq, size=hr.shape[:2])
        gains.append(metrics.psnr(sr, hr, border=4) - metrics.psnr(bic, hr, border=4))
    assert np.mean(gains) > min_gain


@pytest.mark.parametrize("precision,tolerance", [("fp32", 1), ("bf16", 2)])
def test_shipped_model_tiled_equals_untiled(precision, tolerance):
    from jpegsr.imageio import load_image
    from jpegsr.inference import upscale_array

    loaded = jpegsr.load_model("q20")
    # a corner of the photo, 2 x 3 tiles of 64 (the last ones partial): enough seams, and
    # quick where bf16 is emulated (a CPU without AVX-512 BF16 or AMX)
    pixels = load_image(REPO / "examples" / "chelsea_q15.jpg").pixels[:80, :136]
    whole = upscale_array(loaded, pixels, tile=0, precision=precision).astype(int)
    tiled = upscale_array(loaded, pixels, tile=64, precision=precision).astype(int)
    assert whole.shape == (320, 544, 3)
    assert np.abs(whole - tiled).max() <= tolerance


@pytest.mark.parametrize(
    "name",
    ["blind", "blind_long", "blind_photos", "blind_photos2", "blind_photos3", "blind_photos4"],
)
def test_blind_models_are_shipped_with_a_card(name):
    loaded = jpegsr.load_model(name)
    assert loaded.descriptor.scale == 4 and loaded.descriptor.two_stage
    assert Path(loaded.source).with_suffix(".md").is_file()
    qualities = [int(q) for q in loaded.metadata["qualities"].split(",")]
    assert min(qualities) <= 10 and max(qualities) >= 90


def test_gpu_trained_model_declares_its_device_and_unshipped_init_run():
    """results/quality.md's training budget counts GPU stages from these fields."""
    meta = jpegsr.load_model("blind_long").metadata
    assert meta["device"] == "cuda" and "NVIDIA" in meta["machine"]
    assert meta["init_device"] == "cuda" and int(meta["init_iterations"]) > 0
    assert int(meta["init_wall_seconds"]) > 0


def test_photo_trained_model_records_its_extra_photos_and_whole_lineage():
    """blind_photos: trained with the wallpaper photos, from two unshipped stretches."""
    loaded = jpegsr.load_model("blind_photos")
    meta = loaded.metadata
    assert meta["extra_train_dirs"] == ".extra_photos/train"
    assert meta["init_run"] == "continuing_cpu" and meta["init2_run"] == "continuing"
    assert meta["init2_device"] == "cuda" and int(meta["init2_iterations"]) > 0
    card = Path(loaded.source).with_suffix(".md").read_text()
    assert "data/extra_photos.yaml" in card and "Before that" in card


def test_second_photo_model_is_fine_tuned_from_the_first_with_more_photos():
    """blind_photos2: blind_photos trained further with the budgie-backgrounds photos."""
    loaded = jpegsr.load_model("blind_photos2")
    meta = loaded.metadata
    assert meta["run"] == "lever_budgie_cpu" and meta["extra_train_dirs"] == ".extra_photos/train"
    assert "init_run" not in meta  # its init is shipped: blind_photos' card holds that cost
    card = Path(loaded.source).with_suffix(".md").read_text()
    assert "Fine-tuned from**: `blind_photos`" in card and "budgie-backgrounds" in card


@pytest.mark.parametrize(
    ("name", "run", "label", "start"),
    [
        ("blind_photos3", "lever_restart_cpu", "lever_restart_cpu", "blind_photos2"),
        ("blind_photos4", "continuing_cpu", "continuing_cpu6", "blind_photos3"),
    ],
)
def test_restarted_model_cites_its_paired_validation_against_its_start(name, run, label, start):
    """blind_photos3: blind_photos2 restarted at a higher lr; blind_photos4: the same restart
    again from blind_photos3 (stretch 6 of the continuing run). Trained with no held-out
    images, so each card quotes the paired comparison `jpegsr validate` wrote, not a val log."""
    import json

    loaded = jpegsr.load_model(name)
    meta = loaded.metadata
    assert meta["run"] == run and "init_run" not in meta
    card = Path(loaded.source).with_suffix(".md").read_text()
    assert f"Fine-tuned from**: `{start}`" in card
    paired = REPO / "results" / "validation" / f"{label}_vs_{start}.json"
    q20 = next(g for g in json.loads(paired.read_text())["gains"] if g["quality"] == 20)
    assert f"q=20 {q20['mean_db']:+.4f} ± {q20['se_db']:.4f} dB" in card
    assert q20["mean_db"] > 2 * q20["se_db"]  # the ship rule it was shipped under


def test_auto_selection_table_names_shipped_models():
    import json

    from jpegsr.weights_io import SHIPPED_DIR, choose_shipped, shipped_models

    table = json.loads((SHIPPED_DIR / "auto.json").read_text())
    assert set(table["by_quality"].values()) | {table["unknown"]} <= set(shipped_models())
    for q, name in table["by_quality"].items():
        assert choose_shipped(int(q)) == name
    assert choose_shipped(None) == table["unknown"]


def test_auto_selection_numbers_back_the_table():
    """auto.json's choice at each quality is the best mean Y-PSNR in results/auto_selection.json
    on the 90 validation images, and the runner-up's margin is recorded beside it."""
    import json

    from jpegsr.weights_io import SHIPPED_DIR

    table = json.loads((SHIPPED_DIR / "auto.json").read_text())
    numbers = json.loads((REPO / "results" / "auto_selection.json").read_text())
    assert len(numbers["val_images"]) == 90
    psnr = numbers["y_psnr"]
    for q, name in table["by_quality"].items():
        assert name == numbers["by_quality"][q] == max(psnr, key=lambda n: psnr[n][q])
        margin = numbers["margin_over_runner_up"][q]
        assert margin["runner_up"] != name and margin["n"] == 90
        assert margin["gain_db"] == pytest.approx(psnr[name][q] - psnr[margin["runner_up"]][q])
